"""Encoder inputs against dense reference computations on real counts."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD

from factvae_sk.data._dataset import PairedCountsDataset
from factvae_sk.data._preprocessing import ATACEncoderInput, RNAEncoderInput


def _align_signs(a, b):
    """Principal axes are defined up to sign: flip a's columns to agree with b's."""
    return a * np.sign((a * b).sum(axis=0, keepdims=True))


def test_rna_input_equals_dense_normalize_log_scale_pca(small):
    counts = small["rna"]
    got = RNAEncoderInput(n_components=20, random_state=0).fit(counts).transform(counts)
    # Dense reference: normalize to 1e4, log1p, center and scale each gene, exact PCA.
    dense = counts.toarray().astype(np.float64)
    dense = np.log1p(dense / dense.sum(axis=1, keepdims=True) * 1e4)
    std = dense.std(axis=0)
    scaled = (dense - dense.mean(axis=0)) / np.where(std > 0, std, 1.0)
    expected = PCA(20, svd_solver="full").fit_transform(scaled)
    np.testing.assert_allclose(_align_signs(got, expected), expected, rtol=1e-3, atol=1e-3)


def test_atac_input_is_standardized_lsi_and_projects_new_cells(small):
    counts = small["atac"]
    lsi = ATACEncoderInput(n_components=30, random_state=0).fit(counts[:200])
    train = lsi.transform(counts[:200])
    assert train.shape == (200, 30) and train.dtype == np.float32
    np.testing.assert_allclose(train.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=1, ddof=1), 1, atol=1e-5)
    # Before per-cell scaling the training coordinates are the left singular vectors.
    tfidf = lsi._tfidf(counts[:200])
    U = lsi.svd_.transform(tfidf) / lsi.svd_.singular_values_
    np.testing.assert_allclose(U.T @ U, np.eye(30), atol=1e-6)
    # New cells use the training IDF: a cell's coordinates do not depend on its batch mates.
    new = lsi.transform(counts[200:])
    np.testing.assert_allclose(lsi.transform(counts[250:260]), new[50:60], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 3])
def test_atac_input_is_truncated_svds_lsi_bit_for_bit(small, threads, monkeypatch):
    """The LSI's products split between threads give scikit-learn's TruncatedSVD exactly:
    every fitted attribute and the encoder input, with 1 thread and with 3 (the split forced
    on this small matrix)."""
    from factvae_sk.data import _preprocessing, _threaded_svd

    monkeypatch.setattr(_threaded_svd, "MIN_ENTRIES_PER_THREAD", 100)
    monkeypatch.setattr(_preprocessing, "default_threads", lambda: threads)
    counts = small["atac"]
    lsi = ATACEncoderInput(n_components=30, random_state=0).fit(counts[:200])
    tfidf = lsi._tfidf(counts[:200])
    svd = TruncatedSVD(30, algorithm="randomized", random_state=0).fit(tfidf)
    for name in ("components_", "singular_values_", "explained_variance_"):
        np.testing.assert_array_equal(getattr(lsi.svd_, name), getattr(svd, name), err_msg=name)
    np.testing.assert_array_equal(lsi.svd_.explained_variance_ratio_, svd.explained_variance_ratio_)
    assert lsi.svd_.n_features_in_ == svd.n_features_in_
    # The encoder input as TruncatedSVD.transform gives it, for new cells too.
    new = _preprocessing.ATACEncoderInput.transform(lsi, counts[200:])
    U = svd.transform(lsi._tfidf(counts[200:])) / svd.singular_values_
    U = U - U.mean(axis=1, keepdims=True)
    expected = (U / U.std(axis=1, ddof=1, keepdims=True)).astype(np.float32)
    np.testing.assert_array_equal(new, expected)


def test_tfidf_in_place_is_the_sparse_products_bit_for_bit(small):
    """The TF-IDF built in place (one copy of the counts) is the product with the IDF's
    diagonal, l1-normalized, scaled and log1p'd: the same entries in the same order, so every
    later sum is the same; peaks unseen in training are dropped, and input that is not in
    canonical form (unsorted entries) takes the products themselves."""
    from sklearn.preprocessing import normalize

    counts = small["atac"]
    lsi = ATACEncoderInput(n_components=30, random_state=0).fit(counts[:200])
    lsi.idf_[::7] = 0.0  # as for peaks without counts in training

    def products(X):
        X = normalize(sp.csr_matrix(X, dtype=np.float64) @ sp.diags(lsi.idf_), norm="l1") * 1e4
        X.data = np.log1p(X.data)
        return X

    shuffled = sp.csr_matrix(counts[:40], dtype=np.float64)
    for row in range(40):  # each row's entries in a random order: not canonical
        a, b = shuffled.indptr[row : row + 2]
        order = np.random.default_rng(row).permutation(b - a) + a
        shuffled.indices[a:b], shuffled.data[a:b] = shuffled.indices[order], shuffled.data[order]
    shuffled.has_sorted_indices = False
    before = counts.copy()
    for X in (counts, counts[5:9], shuffled):
        got, expected = lsi._tfidf(X), products(X)
        for name in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), name)
        assert not (got.data == 0).any()
    # The caller's matrices are read, not changed.
    assert not shuffled.has_canonical_format
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(counts, name), getattr(before, name), name)


def test_small_inputs_cap_the_component_count():
    counts = sp.csr_matrix(np.arange(1, 31, dtype=float).reshape(6, 5))
    assert RNAEncoderInput(100).fit(counts).transform(counts).shape == (6, 5)
    assert ATACEncoderInput(100).fit(counts).transform(counts).shape == (6, 5)


def test_dataset_densifies_one_batch_of_rows():
    counts = sp.random(1000, 400, density=0.01, format="csr", random_state=0, dtype=np.float32)
    dataset = PairedCountsDataset(
        rna_input=np.zeros((1000, 3), np.float32), rna_counts=counts, rna_log_library=np.ones(1000)
    )
    X, y = dataset.__getitems__([5, 999, 0])
    assert y["rna"].shape == (3, 400)
    np.testing.assert_array_equal(y["rna"].numpy(), counts[[5, 999, 0]].toarray())
    assert set(X) == {"rna_input", "rna_log_library"}
    assert sp.issparse(dataset.modalities["rna"][1])  # the stored matrix is still sparse
