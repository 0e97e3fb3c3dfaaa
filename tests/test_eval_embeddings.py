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


def test_product_of_experts_is_the_normalised_product_of_densities():
    """The joint posterior's Gaussian against the product of the three densities (the two
    experts and N(0, 1)), evaluated on a grid: their log ratio must be constant."""
    import torch

    from benchmarks.harness.joint_posterior import product_of_experts

    means = (torch.tensor([1.5, -2.0]).double(), torch.tensor([-0.5, 3.0]).double())
    logvars = (torch.tensor([0.3, -1.0]).double(), torch.tensor([-0.7, 2.0]).double())
    mean, logvar = product_of_experts(means, logvars)
    x = np.linspace(-4, 4, 41)[:, None]

    def log_normal(x, m, v):
        return -0.5 * (np.log(2 * np.pi * v) + (x - m) ** 2 / v)

    product = log_normal(x, 0.0, 1.0)
    for m, lv in zip(means, logvars, strict=True):
        product = product + log_normal(x, m.numpy(), np.exp(lv.numpy()))
    ratio = product - log_normal(x, mean.numpy(), np.exp(logvar.numpy()))
    np.testing.assert_allclose(ratio - ratio[0], 0.0, atol=1e-9)


def test_joint_posterior_variant_decodes_both_modalities_from_one_code(small):
    import torch

    from benchmarks.harness.joint_posterior import ProductOfExpertsFactVAE

    X_rna, X_atac = small["rna"][:150], small["atac"][:150]
    model = ProductOfExpertsFactVAE(max_epochs=2, n_latent=6, random_state=0).fit(X_rna, X_atac)
    module = model.net_.module_.train()
    torch.manual_seed(0)
    n_rna, n_atac = module.encoder_rna.body[0].in_features, module.encoder_atac.body[0].in_features
    outputs = module(torch.randn(4, n_rna), torch.ones(4), torch.randn(4, n_atac), torch.ones(4))
    # Both decoders read the one code sampled from the joint posterior.
    assert outputs["rna"]["z"] is outputs["atac"]["z"]
    assert outputs["rna"]["log_mu"].shape == (4, X_rna.shape[1])
    assert outputs["atac"]["log_mu"].shape == (4, X_atac.shape[1])
    # joint_transform is the product of the experts' posteriors of the same cells.
    module.eval()
    joint = model.joint_transform(X_rna, X_atac)
    codes = model.set_params(embedding="joint").transform(X_rna, X_atac)
    assert joint.shape == (150, 6)
    assert np.abs(joint).max() <= np.abs(codes).max()
    assert not np.allclose(joint, codes[:, :6]) and not np.allclose(joint, codes[:, 6:])
