"""The batch evaluation (``benchmarks/eval_batches.py``) and its metrics
(``benchmarks/harness/batch_metrics.py``) against hand-computed small cases."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from benchmarks.harness import batch_metrics, samples


@pytest.fixture(scope="module")
def metrics():
    return batch_metrics


LINE = np.array([[0.0], [1.0], [10.0], [11.0]])


def test_knn_mixing_by_hand(metrics):
    # k=1: every cell's neighbour is from the other sample (observed 1); a random
    # neighbour would be with probability 2/3 (two of the three other cells).
    assert metrics.knn_mixing(LINE, ["a", "b", "a", "b"], k=1) == pytest.approx(1.5)
    assert metrics.knn_mixing(LINE, ["a", "a", "b", "b"], k=1) == 0.0
    # k=2, samples a,a,b,b: cell 0's neighbours 1 (a) and 2 (b): 1/2; likewise every cell.
    assert metrics.knn_mixing(LINE, ["a", "a", "b", "b"], k=2) == pytest.approx(0.5 / (2 / 3))


def test_ilisi_by_hand(metrics):
    # Each cell and its neighbour: one of each sample, inverse Simpson 2, scaled to 1.
    assert metrics.ilisi(LINE, ["a", "b", "a", "b"], k=1) == pytest.approx(1.0)
    assert metrics.ilisi(LINE, ["a", "a", "b", "b"], k=1) == pytest.approx(0.0)
    # k=2 with a,a,b,b: {0,1,2} -> shares 2/3, 1/3 -> 1 / (4/9 + 1/9) = 9/5 for every cell.
    assert metrics.ilisi(LINE, ["a", "a", "b", "b"], k=2) == pytest.approx(9 / 5 - 1)


def test_batch_asw_by_hand(metrics):
    # One cell type; samples a = {0, 1}, b = {10, 11}: silhouettes (b - a) / max(a, b).
    s = np.array([9.5 / 10.5, 8.5 / 9.5, 8.5 / 9.5, 9.5 / 10.5])
    got = metrics.batch_asw(LINE, ["a", "a", "b", "b"], ["t"] * 4)
    assert got == pytest.approx(np.mean(1 - s))
    # A type present in one sample only is skipped.
    X = np.vstack([LINE, [[50.0], [51.0]]])
    got = metrics.batch_asw(X, ["a", "a", "b", "b", "a", "a"], ["t"] * 4 + ["u"] * 2)
    assert got == pytest.approx(np.mean(1 - s))


def test_graph_connectivity_by_hand(metrics):
    # Type x at 0 and 100, y at 1 and 101: with k=1 each x's neighbour is a y, so each type
    # falls apart into two single cells: 1/2 for both.
    X = np.array([[0.0], [1.0], [100.0], [101.0]])
    assert metrics.graph_connectivity(X, ["x", "y", "x", "y"], k=1) == pytest.approx(0.5)
    assert metrics.graph_connectivity(X, ["x", "x", "y", "y"], k=1) == pytest.approx(1.0)


def test_cluster_agreement_on_separated_groups(metrics):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    X = labels[:, None] * 50.0 + rng.normal(size=(60, 2))
    assert metrics.cluster_agreement(X, labels) == pytest.approx((1.0, 1.0))


def test_celltype_asw_by_hand(metrics):
    # Types t = {0, 1}, u = {10, 11}: silhouettes as in the batch ASW case; scaled (s+1)/2.
    s = np.array([9.5 / 10.5, 8.5 / 9.5, 8.5 / 9.5, 9.5 / 10.5])
    assert metrics.celltype_asw(LINE, ["t", "t", "u", "u"]) == pytest.approx((s.mean() + 1) / 2)
    # Types interleaved: cell 0 has a = 10, b = mean(1, 11) = 6, s = -4/10; cell 1 has
    # a = 10, b = mean(1, 9) = 5, s = -5/10; cells 2 and 3 mirror them.
    s = np.array([-0.4, -0.5, -0.5, -0.4])
    assert metrics.celltype_asw(LINE, ["t", "u", "t", "u"]) == pytest.approx((s.mean() + 1) / 2)


def test_isolated_label_asw_by_hand(metrics):
    # x at 0, 1 and y at 10, 11 in samples a and b; z at 20, 22 in sample a only: z is the
    # isolated type. z at 20: a = 2, b = min(19.5 (x), 9.5 (y)); z at 22: a = 2, b = 11.5.
    X = np.array([[0.0], [1.0], [10.0], [11.0], [20.0], [22.0]])
    labels = ["x", "x", "y", "y", "z", "z"]
    s_z = np.array([7.5 / 9.5, 9.5 / 11.5])
    got = metrics.isolated_label_asw(X, labels, ["a", "b", "a", "b", "a", "a"])
    assert got == pytest.approx(np.mean((s_z + 1) / 2))
    # Every type in both samples: each type counts, then the mean over types.
    s_x = np.array([9.5 / 10.5, 8.5 / 9.5])  # x at 0: a = 1, b = 10.5; at 1: b = 9.5
    s_y = np.array([(9.5 - 1) / 9.5, (10 - 1) / 10])  # y: b = 9.5 (x), then 10 (z)
    got = metrics.isolated_label_asw(X, labels, ["a", "b", "a", "b", "a", "b"])
    expected = np.mean([np.mean((s + 1) / 2) for s in (s_x, s_y, s_z)])
    assert got == pytest.approx(expected)


def test_study_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    rna = sp.random(30, 8, density=0.5, format="csr", random_state=0, dtype=np.float32)
    atac = sp.random(30, 12, density=0.3, format="csr", random_state=1, dtype=np.float32)
    study = {
        "rna": rna,
        "atac": atac,
        "rna_b": rna * 2,
        "atac_b": atac * 3,
        "prior": sp.random(8, 12, density=0.2, format="csr", random_state=2),
        "labels": np.array(["B cell", "T"] * 15, dtype=object),
        "sample": rng.integers(0, 3, 30),
        "genes": np.array([f"g{i}" for i in range(8)], dtype=object),
        "peaks": np.array([f"chr1-{i}" for i in range(12)], dtype=object),
        "effects": {"gene": rng.random((3, 8)), "peak": rng.random((3, 12))},
    }
    samples.write_study(tmp_path / "s.npz", study)
    back = samples.read_study(tmp_path / "s.npz")
    for key in ("rna", "atac", "rna_b", "atac_b", "prior"):
        assert back[key].format == "csr"
        np.testing.assert_array_equal(back[key].toarray(), study[key].toarray())
    for key in ("labels", "sample", "genes", "peaks"):
        np.testing.assert_array_equal(back[key], study[key])
    np.testing.assert_array_equal(back["gene_effect"], study["effects"]["gene"])
    np.testing.assert_array_equal(back["peak_effect"], study["effects"]["peak"])


def _tiny_study(rng, n_cells=90):
    labels = np.repeat(["p", "q", "r"], n_cells // 3)
    sample = samples.assign_samples(labels, 3, rng)
    means = rng.gamma(1.0, 2.0, size=(3, 40))[np.unique(labels, return_inverse=True)[1]]
    rna = sp.csr_matrix(rng.poisson(means).astype(np.float32))
    atac = sp.csr_matrix(rng.poisson(0.5, size=(n_cells, 30)).astype(np.float32))
    rna_b, atac_b, effects = samples.simulate_samples(rna, atac, sample, rng, True)
    return {
        **dict(rna=rna, atac=atac, rna_b=rna_b, atac_b=atac_b, labels=labels, sample=sample),
        "prior": sp.csr_matrix((40, 30)),
        "genes": np.array([f"g{i}" for i in range(40)]),
        "peaks": np.array([f"p{i}" for i in range(30)]),
        "effects": effects,
    }


def test_peers_scores_saved_embeddings(tmp_path):
    from benchmarks import eval_batches

    rng = np.random.default_rng(0)
    study = _tiny_study(rng)
    samples.write_study(samples.study_path(tmp_path, "tiny", 0), study)
    latent = rng.normal(size=(90, 5))
    (tmp_path / "Mine").mkdir()
    np.savez(samples.study_path(tmp_path / "Mine", "tiny", 0), latent=latent, seconds_per_epoch=2.5)
    rows = eval_batches.run_peers(tmp_path, ["tiny"], [0])
    assert [row["method"] for row in rows][-2:] == ["Harmony on RNA PCA", "Mine"]
    expected = eval_batches.scores(latent, study["sample"], study["labels"])
    assert rows[-1] == {
        "method": "Mine",
        "dataset": "tiny",
        "seed": 0,
        **expected,
        "seconds_per_epoch": 2.5,
    }
    assert json.loads((tmp_path / "peers.json").read_text()) == rows
    np.savez(samples.study_path(tmp_path / "Mine", "tiny", 0), latent=latent[:80])
    with pytest.raises(
        ValueError, match="80 cells in the embedding of tiny seed 0, 90 in the study"
    ):
        eval_batches.run_peers(tmp_path, ["tiny"], [0])


def test_simulated_samples():
    rng = np.random.default_rng(0)
    labels = np.repeat(["p", "q"], 600)
    sample = samples.assign_samples(labels, 3, rng)
    for label in ("p", "q"):
        assert set(sample[labels == label]) == {0, 1, 2}
    rna = sp.csr_matrix(np.full((1200, 1000), 20.0, dtype=np.float32))
    atac = sp.csr_matrix(np.full((1200, 300), 20.0, dtype=np.float32))
    rna_b, atac_b = samples.simulate_samples(rna, atac, sample, rng)
    depth = [rna_b[sample == s].sum() / (sample == s).sum() for s in range(3)]
    # Depth x1, x0.6, x0.4 times log-normal gene effects (mean exp(sd^2 / 2) each).
    np.testing.assert_allclose(np.divide(depth, depth[0]), [1.0, 0.6, 0.4], rtol=0.1)
    closed = np.asarray(atac_b[sample == 2].sum(0)).ravel() == 0
    assert 0.12 < closed.mean() < 0.28  # 20% of the peaks dropped in sample 2
    assert not (np.asarray(atac_b[sample == 0].sum(0)).ravel() == 0).any()
    assert rna.nnz == 1200 * 1000  # the inputs are not modified
