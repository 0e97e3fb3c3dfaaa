"""Gene-peak link scores (model-based correlation, background z-scores), the pseudobulk
correlation yardstick and the link simulator, each against a direct dense computation."""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import FAST
from scipy.special import logsumexp

from benchmarks import simulate_links
from factvae_sk import FactVAE
from factvae_sk.analysis import _link_scores
from factvae_sk.links import peak_gene_correlation

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fitted(small):
    model = FactVAE(random_state=0, **FAST)
    return model.fit(small["rna"], small["atac"], prior=small["prior"])


def _dense_logits(model, small):
    """Training cells' posterior means times the decoder embeddings: cells x features."""
    z = model.set_params(embedding="joint").transform(small["rna"], small["atac"])
    model.set_params(embedding="rna")
    d = model.n_latent
    return (
        z[:, :d].astype(np.float64) @ model.feature_embeddings_.rna.to_numpy().T,
        z[:, d:].astype(np.float64) @ model.feature_embeddings_.atac.to_numpy().T,
    )


def _pairs(shape, n, seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)
    pattern = sp.csr_matrix((np.ones(n, np.float32), (rows, cols)), shape=shape)
    pattern.sum_duplicates()
    coo = pattern.tocoo()
    return pattern, coo.row, coo.col


def _corr_of_columns(a, b):
    a = (a - a.mean(0)) / a.std(0)
    b = (b - b.mean(0)) / b.std(0)
    return (a * b).mean(0)


@pytest.mark.parametrize("score", ["correlation", "log_mean_correlation"])
def test_model_correlation_equals_the_correlation_of_the_decoders_logits(fitted, small, score):
    logits_rna, logits_atac = _dense_logits(fitted, small)
    if score == "log_mean_correlation":  # log-softmax: each decoder's log expected fraction
        logits_rna -= logsumexp(logits_rna, axis=1, keepdims=True)
        logits_atac -= logsumexp(logits_atac, axis=1, keepdims=True)
    pattern, rows, cols = _pairs(small["prior"].shape, 300)
    expected = _corr_of_columns(logits_rna[:, rows], logits_atac[:, cols])
    got = fitted.regulatory_scores(pattern, score=score)
    np.testing.assert_allclose(np.asarray(got[rows, cols]).ravel(), expected, atol=2e-4)
    # The same scores through the table, and the "all" search (top 3 of two genes).
    links = fitted.regulatory_links(pattern, score=score)
    assert links.attrs["score"] == score
    assert len(links) == len(rows)
    genes = [int(rows[0]), int(rows[1])]
    full = _corr_of_columns(
        np.repeat(logits_rna[:, genes], logits_atac.shape[1], axis=1),
        np.tile(logits_atac, 2),
    ).reshape(2, -1)
    best = fitted.regulatory_links("all", genes=genes, top_k=3, score=score)
    np.testing.assert_allclose(
        best.score.to_numpy().reshape(2, 3), -np.sort(-full, axis=1)[:, :3], atol=2e-4
    )


def test_background_zscores_against_a_direct_computation(fitted, small):
    mean = np.asarray(small["atac"].mean(axis=0)).ravel()
    np.testing.assert_allclose(fitted.atac_peak_mean_, mean, rtol=1e-6)
    background = _link_scores.background_peaks(fitted.atac_peak_mean_, 20)
    n_peaks = len(mean)
    assert background.shape == (n_peaks, 20)
    assert not (background == np.arange(n_peaks)[:, None]).any()  # never the peak itself
    # Matched: within a bin of 200 ranks of mean accessibility (the last bin a little wider).
    order = np.argsort(fitted.atac_peak_mean_, kind="stable")
    rank = np.argsort(order, kind="stable")
    assert np.abs(rank[background] - rank[:, None]).max() < 2 * 200
    again = _link_scores.background_peaks(fitted.atac_peak_mean_, 20)
    np.testing.assert_array_equal(background, again)  # seeded

    dense = fitted.regulatory_scores(score="correlation")
    pattern, rows, cols = _pairs(dense.shape, 200, seed=1)
    null = dense[rows[:, None], background[cols]]
    expected = (dense[rows, cols] - null.mean(1)) / null.std(1, ddof=1)
    got = fitted.regulatory_scores(pattern, score="correlation", background=20)
    np.testing.assert_allclose(np.asarray(got[rows, cols]).ravel(), expected, rtol=1e-4, atol=1e-4)
    links = fitted.regulatory_links(pattern, score="correlation", background=20)
    assert links.attrs["score"] == "correlation z-score"


def test_score_arguments_are_checked(fitted, small):
    with pytest.raises(ValueError, match="score must be one of"):
        fitted.regulatory_scores(score="pearson")
    with pytest.raises(ValueError, match="background must be an integer"):
        fitted.regulatory_scores(small["prior"], background=1)
    with pytest.raises(ValueError, match="need pairs"):
        fitted.regulatory_scores(background=10)
    with pytest.raises(ValueError, match="not 'all'"):
        fitted.regulatory_links("all", top_k=2, background=10)


def test_new_attributes_survive_save_and_an_older_file_still_loads(fitted, small, tmp_path):
    path = fitted.save(tmp_path / "model.npz")
    loaded = FactVAE.load(path, device="cpu")
    np.testing.assert_array_equal(loaded.code_covariance_, fitted.code_covariance_)
    pairs = small["prior"]
    np.testing.assert_array_equal(
        loaded.regulatory_scores(pairs, score="correlation").toarray(),
        fitted.regulatory_scores(pairs, score="correlation").toarray(),
    )
    # A file written before these attributes existed: drop them from the archive.
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(arrays["__meta__.json"].tobytes())
    for key in ("code_covariance_", "atac_peak_mean_"):
        del meta["fitted"][key]
        arrays.pop(key)
    arrays["__meta__.json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    older = FactVAE.load(old, device="cpu")
    np.testing.assert_array_equal(
        older.regulatory_scores(pairs, score="cosine").toarray(),
        fitted.regulatory_scores(pairs, score="cosine").toarray(),
    )
    with pytest.raises(ValueError, match="fit the model again"):
        older.regulatory_scores(pairs)  # the default score needs code_covariance_


def test_peak_gene_correlation_matches_pandas(small):
    rna, atac, labels = small["rna"], small["atac"], small["labels"]
    pattern, rows, cols = _pairs((rna.shape[1], atac.shape[1]), 400, seed=2)
    rna_before, atac_before = rna.copy(), atac.copy()
    got = peak_gene_correlation(rna, atac, pattern, groups=labels)
    assert sp.isspmatrix_csr(got)
    assert (rna != rna_before).nnz == 0 and (atac != atac_before).nnz == 0

    def log_cpm(counts):
        bulk = pd.DataFrame(counts.toarray()).groupby(labels).sum()
        return np.log1p(bulk.div(bulk.sum(axis=1), axis=0) * 1e6)

    genes, peaks = log_cpm(rna), log_cpm(atac)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = [genes[g].corr(peaks[p]) for g, p in zip(rows, cols, strict=True)]
    expected = np.nan_to_num(np.array(expected))  # a constant feature scores 0
    np.testing.assert_allclose(np.asarray(got[rows, cols]).ravel(), expected, atol=1e-5)

    # Metacells: deterministic for a seed, and the same as passing their labels as groups.
    first = peak_gene_correlation(rna, atac, pattern, n_metacells=10, random_state=0)
    again = peak_gene_correlation(rna, atac, pattern, n_metacells=10, random_state=0)
    np.testing.assert_array_equal(first.toarray(), again.toarray())
    with pytest.raises(ValueError, match="at least 3 groups"):
        peak_gene_correlation(rna, atac, pattern, groups=labels == labels[0])
    with pytest.raises(ValueError, match="pairs must have shape"):
        peak_gene_correlation(rna, atac, pattern[:5])
    with pytest.raises(ValueError, match="one label per cell"):
        peak_gene_correlation(rna, atac, pattern, groups=labels[:10])


def test_simulator_links_are_recoverable_and_the_split_is_clean():
    data = simulate_links.simulate(n_cells=300, n_genes=80, seed=0, **simulate_links.LEVELS["easy"])
    assert data.rna.shape == (300, 80) and data.atac.shape == (300, 480)
    assert data.links.nnz == 160
    assert data.window.multiply(data.links).nnz == 160  # every link lies in its window
    # The chance of a link falls with distance to the TSS, as on CRISPRi screens.
    window = data.window.tocoo()
    linked = np.asarray(data.links[window.row, window.col]).ravel() > 0
    distance = simulate_links.tss_distance(data.genes, data.peaks, window.row, window.col)
    near, far = distance < 10_000, distance >= 25_000
    assert linked[near].mean() > 2 * linked[far].mean()
    prior, rows, cols, labels = simulate_links.prior_and_held_out(data, seed=0)
    in_prior = np.asarray(prior[rows, cols]).ravel()
    assert not in_prior.any()  # candidates are non-prior pairs
    assert (np.asarray(data.window[rows, cols]).ravel() > 0).all()
    np.testing.assert_array_equal(labels, np.asarray(data.links[rows, cols]).ravel() > 0)
    assert labels.sum() + data.links.multiply(prior).nnz == data.links.nnz
    # Decoys: a quarter of the prior is not a link.
    decoys = prior.nnz - data.links.multiply(prior).nnz
    assert decoys == round(prior.nnz / 4)
    # The yardstick finds the held-out links on the easy level; its ranking metric is sklearn's.
    pattern = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=prior.shape)
    r = peak_gene_correlation(data.rna, data.atac, pattern, groups=data.labels)
    auroc, auprc = simulate_links.ranking(labels, np.asarray(r[rows, cols]).ravel())
    assert auroc > 0.75 and auprc > 2 * labels.mean()
    # Missing scores rank last.
    scores = np.where(labels, 1.0, 0.0)
    scores[np.flatnonzero(labels)[0]] = np.nan
    assert simulate_links.ranking(labels, scores)[0] < 1.0


def test_link_evidence_is_reused_until_the_weights_change(small):
    """The evidence over all cells is computed once per set of weights: a second call gives
    the same arrays, and training on (a warm start) or refitting gives fresh evidence, equal
    to a direct computation."""
    model = FactVAE(random_state=0, warm_start=True, **FAST)
    model.fit(small["rna"], small["atac"], prior=small["prior"])

    def assert_same(got, expected):
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            parts = value if isinstance(value, tuple) else (value,)
            got_parts = got[key] if isinstance(value, tuple) else (got[key],)
            for a, b in zip(got_parts, parts, strict=True):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=key)

    first = model._link_evidence(None, None)
    again = model._link_evidence(None, None)
    assert again["activity"] is first["activity"]
    assert_same(again, model._compute_link_evidence(None, None))
    again["abc_total"] = 0  # a caller's additions stay its own
    assert "abc_total" not in model._link_evidence(None, None)
    model.set_params(max_epochs=1).fit(small["rna"], small["atac"], prior=small["prior"])
    after = model._link_evidence(None, None)
    assert not np.array_equal(after["activity"], first["activity"])
    assert_same(after, model._compute_link_evidence(None, None))
