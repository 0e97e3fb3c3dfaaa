"""The embedding harness (``benchmarks/eval_embeddings.py``): its baselines and metrics."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_blobs


@pytest.fixture(scope="module")
def harness():
    from benchmarks import eval_embeddings

    return eval_embeddings


def test_joint_blocks_weigh_the_same(harness):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 5)), 1000 * rng.normal(size=(40, 3)) + 7
    joint = harness._unit_blocks(a, b)
    assert joint.shape == (40, 8)
    for block in (joint[:, :5], joint[:, 5:]):
        np.testing.assert_allclose(block.mean(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose((block**2).sum(axis=1).mean(), 1.0)
    # a block's scale does not matter
    np.testing.assert_allclose(harness._unit_blocks(a, b / 1000), joint)


def test_scanpy_pca_matches_a_dense_reference(harness):
    rng = np.random.default_rng(1)
    counts = rng.poisson(rng.gamma(0.5, 2.0, size=(60, 30)))
    counts[:, 0] += 1  # no empty cells
    X = counts / counts.sum(axis=1, keepdims=True) * 1e4
    X = np.log1p(X)
    X = np.clip((X - X.mean(axis=0)) / X.std(axis=0, ddof=1), None, 10)
    U, S, _ = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    expected = U[:, :5] * S[:5]
    got = harness.scanpy_pca(sp.csr_matrix(counts), n_components=5)
    # components are defined up to sign
    np.testing.assert_allclose(np.abs(got), np.abs(expected), atol=1e-8)


def test_metrics_separate_structure_from_noise(harness):
    pytest.importorskip("igraph")
    X, labels = make_blobs(300, n_features=5, centers=3, cluster_std=0.5, random_state=0)
    ari, leiden, nmi, accuracy, balanced, asw = harness.embedding_metrics(X, labels)
    assert ari == pytest.approx(1.0) and nmi == pytest.approx(1.0)
    assert leiden == pytest.approx(1.0)
    assert accuracy == pytest.approx(1.0) and balanced == pytest.approx(1.0)
    assert asw > 0.7
    shuffled = np.random.default_rng(0).permutation(labels)
    ari, leiden, nmi, accuracy, balanced, asw = harness.embedding_metrics(X, shuffled)
    assert abs(ari) < 0.05 and abs(leiden) < 0.05 and nmi < 0.05
    assert balanced < 0.5 and asw < 0.05


def test_leiden_is_bisected_to_the_number_of_labels(harness):
    pytest.importorskip("igraph")
    X, labels = make_blobs(400, n_features=5, centers=4, cluster_std=0.5, random_state=0)
    assert harness.leiden_ari(X, labels) == pytest.approx(1.0)
    shuffled = np.random.default_rng(0).permutation(labels)
    assert abs(harness.leiden_ari(X, shuffled)) < 0.05


def test_wnn_weights_favour_the_modality_that_predicts_its_cells(harness):
    X, labels = make_blobs(300, n_features=6, centers=3, cluster_std=0.5, random_state=0)
    noise = np.random.default_rng(0).normal(size=(300, 6))
    blocks = [harness._unit_blocks(X), harness._unit_blocks(noise)]
    weights = harness.wnn_weights(blocks)
    assert weights.shape == (300, 2)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert weights[:, 0].mean() > 0.6
    # The weighted embedding clusters like the informative block.
    joint = harness.wnn_joint(X, noise)
    assert harness.kmeans_scores(joint, labels)[0] > 0.9
