"""Encoder inputs against dense reference computations on real counts."""

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA

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
