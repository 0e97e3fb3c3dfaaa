"""Count likelihoods and the Gaussian KL divergence, written for numerical stability and speed.

Every function works on log-scale parameters: the factorized decoder produces
``log mu = s + log_softmax(z @ W)`` directly, and over tens of thousands of peaks a
softmax entry can underflow float32, so ``log(mu + eps)`` would be wrong exactly where
the data are sparsest. ``log(theta + mu)`` is ``log theta + softplus(log mu - log theta)``
and ``logaddexp(a, b)`` is ``b + softplus(a - b)``: the same values as ``logaddexp``,
with a much cheaper backward pass. Zero inflation is parameterized by logits.

Count matrices are mostly zeros (ATAC often > 95 %), and a zero count's log-probability
needs no ``lgamma``: the count-dependent terms are evaluated at the non-zero entries only.
"""

import torch
import torch.nn.functional as F


def _log_prob(x, log_mu, log_theta, pi_logits):
    """ZINB log-pmf (NB when ``pi_logits`` is None), elementwise."""
    shape = torch.broadcast_shapes(x.shape, log_mu.shape, log_theta.shape)
    log_mu, log_theta = log_mu.expand(shape), log_theta.expand(shape)
    theta = log_theta.exp()
    # theta * log(theta / (theta + mu)), the NB log-probability of a zero count, with
    # log(theta + mu) = log theta + softplus(log mu - log theta).
    log_nb_zero = -theta * F.softplus(log_mu - log_theta)
    if pi_logits is None:
        log_prob = log_nb_zero
    else:
        # log(pi + (1 - pi) NB(0)) = logaddexp(pi_logits, log NB(0)) - softplus(pi_logits).
        pi_logits = pi_logits.expand(shape)
        log_prob = log_nb_zero + F.softplus(pi_logits - log_nb_zero) - F.softplus(pi_logits)

    # Non-zero counts: gather the three parameters once and finish the log-pmf there.
    index = torch.flatten(x > 0).nonzero().squeeze(1)
    if index.numel() == 0:
        return log_prob
    xs = x.expand(shape).reshape(-1).index_select(0, index)
    ls_mu = log_mu.reshape(-1).index_select(0, index)
    ls_theta = log_theta.reshape(-1).index_select(0, index)
    thetas = ls_theta.exp()
    log_theta_mu = ls_theta + F.softplus(ls_mu - ls_theta)
    log_nb = (
        thetas * (ls_theta - log_theta_mu)
        + xs * (ls_mu - log_theta_mu)
        + torch.lgamma(xs + thetas)
        - torch.lgamma(thetas)
        - torch.lgamma(xs + 1.0)
    )
    if pi_logits is not None:
        log_nb = log_nb - F.softplus(pi_logits.reshape(-1).index_select(0, index))
    return log_prob.reshape(-1).index_copy(0, index, log_nb).reshape(shape)


def nb_log_prob(x, log_mu, log_theta):
    """Elementwise log-pmf of the negative binomial (mean ``mu``, inverse dispersion ``theta``).

    ``P(x) = Gamma(x + theta) / (Gamma(theta) x!) (theta / (theta + mu))^theta
    (mu / (theta + mu))^x``, i.e. scipy's ``nbinom(n=theta, p=theta / (theta + mu))``.

    Parameters
    ----------
    x : Tensor
        Counts (non-negative; need not be integers).
    log_mu, log_theta : Tensor
        Log mean and log inverse dispersion, broadcastable to ``x``.

    Returns
    -------
    Tensor
        Log-probabilities, the shape of ``x``.
    """
    return _log_prob(x, log_mu, log_theta, None)


def zinb_log_prob(x, log_mu, log_theta, pi_logits):
    """Elementwise log-pmf of the zero-inflated negative binomial.

    With ``pi = sigmoid(pi_logits)`` the probability of an extra zero:
    ``P(0) = pi + (1 - pi) NB(0)`` and ``P(x) = (1 - pi) NB(x)`` for ``x > 0``.

    Parameters
    ----------
    x : Tensor
        Counts (non-negative).
    log_mu, log_theta : Tensor
        Log mean and log inverse dispersion of the NB component.
    pi_logits : Tensor
        Logits of the zero-inflation probability.

    Returns
    -------
    Tensor
        Log-probabilities, the shape of ``x``.
    """
    return _log_prob(x, log_mu, log_theta, pi_logits)


def gaussian_kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)), summed over the last dimension.

    Parameters
    ----------
    mean, logvar : Tensor of shape (n, d)

    Returns
    -------
    Tensor of shape (n,)
    """
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def count_log_prob(likelihood, x, log_mu, log_theta, pi_logits):
    """Dispatch on the likelihood name (``"zinb"`` or ``"nb"``)."""
    if likelihood == "zinb":
        return zinb_log_prob(x, log_mu, log_theta, pi_logits)
    if likelihood == "nb":
        return nb_log_prob(x, log_mu, log_theta)
    raise ValueError(f"Unknown likelihood {likelihood!r}; expected 'zinb' or 'nb'.")
