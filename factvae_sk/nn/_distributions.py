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
    index = nonzero_index(x)
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


class _CountLogProbSum(torch.autograd.Function):
    """Per-row sum of the ZINB (or NB) log-pmf with a hand-written backward pass.

    Training needs only each cell's total log-likelihood. Written out, the zero-count
    log-probability and its gradients are a few elementwise expressions over the dense
    (cells x features) parameters, and everything that depends on the counts is a
    correction at the non-zero entries alone: about a dozen passes over the dense tensors
    forward and ten backward, where autograd records some forty for the elementwise formula.

    With ``t = theta``, ``u = log mu - log theta``, ``s = softplus(u)`` (so
    ``log NB(0) = -t s``) and, for ZINB, ``r = sigmoid(pi_logits + t s)`` (the posterior
    probability that a zero is a dropout) and ``w = 1 - r``, a zero count's log-probability
    is ``softplus(pi_logits + t s) - t s - softplus(pi_logits)`` and its gradients are
    ``d/d log_mu = -w t sigmoid(u)``, ``d/d log_theta = -w t (s - sigmoid(u))`` and
    ``d/d pi_logits = r - sigmoid(pi_logits)``. A count ``x > 0`` has ``w = 1, r = 0`` and
    the extra terms ``x (1 - sigmoid(u))`` and
    ``-x (1 - sigmoid(u)) + t (digamma(x + t) - digamma(t))``.
    """

    @staticmethod
    def forward(ctx, log_mu, log_theta, pi_logits, index, values):
        n_features = log_mu.shape[-1]
        theta = log_theta.exp()
        u = log_mu - log_theta
        s = F.softplus(u)
        neg_log_nb_zero = theta * s
        if pi_logits is None:
            log_prob_zero, dropout = None, None
            total = neg_log_nb_zero.sum(dim=-1).neg_()
        else:
            q = pi_logits + neg_log_nb_zero
            log_prob_zero = F.softplus(q).sub_(neg_log_nb_zero).sub_(F.softplus(pi_logits))
            total = log_prob_zero.sum(dim=-1)
            dropout = q.sigmoid_()

        # Non-zero counts: replace each one's zero-count term by its full log-pmf.
        rows = torch.div(index, n_features, rounding_mode="floor")
        t_i = theta.reshape(-1).index_select(0, index)
        s_i = s.reshape(-1).index_select(0, index)
        u_i = u.reshape(-1).index_select(0, index)
        log_prob = (
            values * (u_i - s_i)
            + torch.lgamma(values + t_i)
            - torch.lgamma(t_i)
            - torch.lgamma(values + 1.0)
        )
        if pi_logits is None:
            # The zero-count term -t s cancels against the NB's own theta log(theta/(theta+mu)).
            correction = log_prob
        else:
            log_prob = (
                log_prob - t_i * s_i - F.softplus(pi_logits.reshape(-1).index_select(0, index))
            )
            correction = log_prob - log_prob_zero.reshape(-1).index_select(0, index)
        total = total.index_add(0, rows, correction)

        sigma = u.sigmoid_()  # sigmoid(u) = mu / (mu + theta); u is no longer needed
        ctx.save_for_backward(theta, s, sigma, dropout, pi_logits, index, values)
        ctx.n_features = n_features
        return total

    @staticmethod
    def backward(ctx, grad_total):
        theta, s, sigma, dropout, pi_logits, index, values = ctx.saved_tensors
        grad = grad_total.unsqueeze(-1)
        scaled = theta * grad.neg()  # -w t g, with w = 1 - r (= 1 for NB)
        if dropout is not None:
            dropout = dropout.reshape(-1).index_fill(0, index, 0.0).view_as(dropout)
            scaled = torch.addcmul(scaled, scaled, dropout, value=-1.0)
        grad_log_mu = scaled * sigma
        grad_log_theta = (s - sigma).mul_(scaled)

        rows = torch.div(index, ctx.n_features, rounding_mode="floor")
        g_i = grad_total.index_select(0, rows)
        t_i = theta.reshape(-1).index_select(0, index)
        x_rest = values * (1.0 - sigma.reshape(-1).index_select(0, index))
        grad_log_mu.view(-1).index_add_(0, index, g_i * x_rest)
        extra = t_i * (torch.digamma(values + t_i) - torch.digamma(t_i)) - x_rest
        grad_log_theta.view(-1).index_add_(0, index, g_i * extra)

        grad_pi = None
        if dropout is not None and ctx.needs_input_grad[2]:
            grad_pi = dropout.sub_(torch.sigmoid(pi_logits)).mul_(grad)
        return grad_log_mu, grad_log_theta, grad_pi, None, None


def nonzero_index(x):
    """Flat (row-major) indices of the non-zero entries of a count tensor."""
    return torch.flatten(x > 0).nonzero().squeeze(1)


def count_log_prob_sum(likelihood, x, log_mu, log_theta, pi_logits, nonzero=None):
    """Each row's summed log-pmf: ``count_log_prob(...).sum(-1)``, faster and leaner.

    Parameters
    ----------
    likelihood : {"zinb", "nb"}
    x : Tensor of shape (n, n_features)
        Counts.
    log_mu, log_theta, pi_logits : Tensor of shape (n, n_features)
        The distribution's parameters, as in :func:`zinb_log_prob`.
    nonzero : LongTensor, optional
        Flat indices of the non-zero entries of ``x`` in row-major order (the batching
        code reads them off the sparse matrix, sparing a scan of the dense batch and,
        on a GPU, a host synchronisation). Computed from ``x`` when not given.

    Returns
    -------
    Tensor of shape (n,)
    """
    if likelihood not in ("zinb", "nb"):
        raise ValueError(f"Unknown likelihood {likelihood!r}; expected 'zinb' or 'nb'.")
    if not (x.shape == log_mu.shape == log_theta.shape) or x.dim() != 2:
        # Broadcast parameters: the elementwise formula handles them.
        return count_log_prob(likelihood, x, log_mu, log_theta, pi_logits).sum(dim=-1)
    if nonzero is None:
        nonzero = nonzero_index(x)
    values = x.reshape(-1).index_select(0, nonzero)
    pi = pi_logits.expand_as(x) if likelihood == "zinb" else None
    return _CountLogProbSum.apply(log_mu, log_theta, pi, nonzero, values)
