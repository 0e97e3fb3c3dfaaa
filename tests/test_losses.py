"""The prior loss, the distillation loss and the criterion against dense reference formulas."""

import numpy as np
import scipy.sparse as sp
import torch

from factvae_sk.nn._losses import FactVAELoss, prior_loss, similarity_distillation_loss


def test_sparse_prior_loss_equals_dense_formula():
    rng = np.random.default_rng(0)
    W_r = torch.as_tensor(rng.normal(size=(6, 9)))
    W_a = torch.as_tensor(rng.normal(size=(6, 14)))
    B = sp.random(9, 14, density=0.2, random_state=1, format="coo")
    B.data = B.data * 2 - 0.5  # values in [-0.5, 1.5]: negative and > 1 too
    # Dense reference: the full gene x peak cosine matrix, averaged over B's non-zeros.
    Wr, Wa = W_r.numpy(), W_a.numpy()
    cos = (Wr.T @ Wa) / np.outer(np.linalg.norm(Wr, axis=0), np.linalg.norm(Wa, axis=0))
    mask = B.toarray() != 0
    expected = ((cos - B.toarray())[mask] ** 2).mean()
    got = prior_loss(
        W_r,
        W_a,
        torch.as_tensor(B.row).long(),
        torch.as_tensor(B.col).long(),
        torch.as_tensor(B.data),
    )
    assert np.isclose(got.item(), expected, rtol=1e-12)


def test_distillation_loss_reference_and_zero_when_structures_match():
    rng = np.random.default_rng(2)
    z_t, z_s = rng.normal(size=(10, 4)), rng.normal(size=(10, 7))

    def cos_matrix(z):
        u = z / np.linalg.norm(z, axis=1, keepdims=True)
        return u @ u.T

    S_t, S_s = cos_matrix(z_t), cos_matrix(z_s)
    row_cos = (S_t * S_s).sum(1) / (np.linalg.norm(S_t, axis=1) * np.linalg.norm(S_s, axis=1))
    got = similarity_distillation_loss(torch.as_tensor(z_t), torch.as_tensor(z_s)).item()
    assert np.isclose(got, np.mean(1 - row_cos), rtol=1e-12)
    # A rotated and scaled copy has the same cosine structure: zero loss.
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    same = similarity_distillation_loss(torch.as_tensor(z_t), torch.as_tensor(3 * z_t @ Q))
    assert abs(same.item()) < 1e-12


def test_criterion_weights_and_prior_term():
    torch.manual_seed(0)
    n, g, p, d = 5, 4, 6, 3

    def fake(n_features):
        return {
            "mean": torch.randn(n, d),
            "logvar": torch.randn(n, d),
            "log_mu": torch.randn(n, n_features),
            "log_theta": torch.rand(n, n_features),
            "pi_logits": torch.randn(n, n_features),
        }

    outputs = {"rna": fake(g), "atac": fake(p)}
    counts = {
        "rna": torch.randint(0, 4, (n, g)).float(),
        "atac": torch.randint(0, 2, (n, p)).float(),
    }
    W_r, W_a = torch.randn(d, g), torch.randn(d, p)
    prior = (np.array([0, 3]), np.array([1, 5]), np.array([1.0, 0.5]))
    loss, terms = FactVAELoss(prior=prior)(outputs, counts, W_r, W_a)
    expected = (
        0.1 * terms["nll_rna"]
        + 0.001 * terms["kl_rna"]
        + 0.002 * terms["nll_atac"]
        + 0.001 * terms["kl_atac"]
        + np.exp(terms["prior"])
    )
    assert np.isclose(loss.item(), expected, rtol=1e-6)
    rna_only, rna_terms = FactVAELoss()({"rna": outputs["rna"]}, counts, W_r, None)
    assert set(rna_terms) == {"nll_rna", "kl_rna"}
    assert np.isclose(rna_only.item(), 0.1 * terms["nll_rna"] + 0.001 * terms["kl_rna"], rtol=1e-6)
