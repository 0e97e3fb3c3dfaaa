"""Likelihoods and KL against independent references (scipy.stats, closed forms)."""

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import expit

from factvae_sk.nn._distributions import gaussian_kl, nb_log_prob, zinb_log_prob


@pytest.fixture
def nb_case():
    """Random integer counts with many zeros and some very large counts."""
    rng = np.random.default_rng(0)
    shape = (40, 300)
    mu = np.exp(rng.uniform(-12, 8, size=shape))  # from underflow-scale to ~3000
    theta = np.exp(rng.uniform(-3, 3, size=shape))
    x = rng.negative_binomial(theta, theta / (theta + mu)).astype(np.float64)
    x[rng.random(shape) < 0.5] = 0.0
    x[0, :5] = [1e4, 5e4, 2e5, 1, 7]  # large counts
    pi_logits = rng.normal(0, 3, size=shape)
    return x, mu, theta, pi_logits


def _t(a):
    return torch.as_tensor(a, dtype=torch.float64)


def test_nb_matches_scipy(nb_case):
    x, mu, theta, _ = nb_case
    expected = stats.nbinom.logpmf(x, theta, theta / (theta + mu))
    got = nb_log_prob(_t(x), _t(np.log(mu)), _t(np.log(theta))).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_zinb_matches_scipy(nb_case):
    x, mu, theta, pi_logits = nb_case
    pi = expit(pi_logits)
    nb = stats.nbinom.logpmf(x, theta, theta / (theta + mu))
    expected = np.where(x == 0, np.log(pi + (1 - pi) * np.exp(nb)), np.log1p(-pi) + nb)
    got = zinb_log_prob(_t(x), _t(np.log(mu)), _t(np.log(theta)), _t(pi_logits)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-8)


def test_zinb_is_a_distribution():
    """Probabilities over 0..N sum to one (mass beyond N is negligible for these parameters)."""
    x = torch.arange(0, 2000, dtype=torch.float64)
    for mu, theta, logit in [(0.3, 1.5, -2.0), (20.0, 2.7, 1.0), (1e-6, 1.1, 0.0)]:
        params = (_t(np.log(mu)), _t(np.log(theta)), _t(logit))
        p = zinb_log_prob(x, *params).exp()
        assert p.sum().item() == pytest.approx(1.0, abs=1e-9)


def test_float32_is_finite_where_softmax_underflows():
    """A mean of 1e-40 (a softmax entry below float32's normal range) must not give -inf/nan."""
    x = torch.tensor([[0.0, 1.0, 3.0]])
    log_mu = torch.tensor([[-92.0, -92.0, 5.0]])  # exp(-92) ~ 1e-40
    out = zinb_log_prob(x, log_mu, torch.zeros(1, 3), torch.zeros(1, 3))
    assert torch.isfinite(out).all()
    # theta = 1: P(1) = mu / (1 + mu)^2, times (1 - pi) = 1/2. scipy's p rounds to 1 here.
    reference = -92.0 - 2 * np.log1p(np.exp(-92.0)) + np.log(0.5)
    assert out[0, 1].item() == pytest.approx(reference, rel=1e-6)


def test_gradients_flow_to_all_parameters(nb_case):
    x, mu, theta, pi_logits = nb_case
    params = [
        _t(np.log(mu)).requires_grad_(),
        _t(np.log(theta)).requires_grad_(),
        _t(pi_logits).requires_grad_(),
    ]
    zinb_log_prob(_t(x), *params).sum().backward()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in params)


def test_gradient_matches_finite_differences():
    torch.manual_seed(0)
    x = torch.tensor([[0.0, 2.0, 0.0, 11.0]], dtype=torch.float64)
    inputs = tuple(torch.randn(1, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda a, b, c: zinb_log_prob(x, a, b, c), inputs)
    assert torch.autograd.gradcheck(lambda a, b: nb_log_prob(x, a, b), inputs[:2])


def test_gaussian_kl_closed_form():
    rng = np.random.default_rng(1)
    mean, logvar = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    var = np.exp(logvar)
    # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2)/2 - 1/2, per dimension.
    expected = (-0.5 * logvar + (var + mean**2) / 2 - 0.5).sum(axis=1)
    np.testing.assert_allclose(gaussian_kl(_t(mean), _t(logvar)).numpy(), expected, rtol=1e-12)
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0
