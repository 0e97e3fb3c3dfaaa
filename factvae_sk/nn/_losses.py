"""FactVAE's objective: the weighted main loss (a skorch criterion) and the distillation loss."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._distributions import count_log_prob_sum, gaussian_kl


def per_cell_nll(likelihood, counts, out, nonzero=None):
    """Negative log-likelihood of each cell's counts, summed over features: shape (n,).

    ``nonzero``: flat indices of the non-zero counts, when the batching code has them.
    """
    log_prob = count_log_prob_sum(
        likelihood, counts, out["log_mu"], out["log_theta"], out["pi_logits"], nonzero
    )
    return -log_prob


def per_cell_kl(out):
    """KL(q(z|x) || N(0, I)) of each cell: shape (n,)."""
    return gaussian_kl(out["mean"], out["logvar"])


def _cell_mean(values, observed):
    """Mean over the batch's cells, or over its observed cells when a mask is given
    (cells measured by the other modality alone do not count)."""
    if observed is None:
        return values.mean()
    return (values * observed).sum() / observed.sum().clamp(min=1.0)


def prior_loss(rna_embedding, atac_embedding, rows, cols, values):
    """Mean squared gap between embedding cosines and the prior, over the prior's non-zeros.

    Only the listed (gene, peak) pairs are touched: the dense genes x peaks similarity is
    never formed.

    Parameters
    ----------
    rna_embedding : Tensor of shape (n_latent, n_genes)
    atac_embedding : Tensor of shape (n_latent, n_peaks)
    rows, cols : LongTensor of shape (nnz,)
        Gene and peak index of each non-zero prior entry.
    values : Tensor of shape (nnz,)
        The prior's value at each entry.

    Returns
    -------
    Tensor
        Scalar ``mean((cos(W_r[:, g], W_a[:, p]) - B[g, p]) ** 2)``.
    """
    # Normalizing columns first makes each cosine one gathered dot product.
    rna_unit = F.normalize(rna_embedding, dim=0)
    atac_unit = F.normalize(atac_embedding, dim=0)
    cosine = (rna_unit[:, rows] * atac_unit[:, cols]).sum(dim=0)
    return (cosine - values).pow(2).mean()


def similarity_distillation_loss(z_teacher, z_student):
    """``mean_i (1 - cos(S_t[i], S_s[i]))`` where S are cell-by-cell cosine-similarity matrices.

    The caller detaches the teacher; this function only compares the two structures.
    """
    unit_t = F.normalize(z_teacher, dim=1)
    unit_s = F.normalize(z_student, dim=1)
    sim_t = unit_t @ unit_t.T
    sim_s = unit_s @ unit_s.T
    return (1.0 - F.cosine_similarity(sim_t, sim_s, dim=1)).mean()


# Kernel bandwidths of the MMD penalty, as multiples of the batch's median squared distance
# between codes: one scale per order of magnitude around it, so neither tight clusters nor
# distant ones escape the penalty (a multi-scale kernel as in trVAE / scVI's MMD variants).
MMD_SCALES = (0.1, 1.0, 10.0)


def gaussian_mmd(codes, in_group, scales=MMD_SCALES):
    """Squared MMD between the codes flagged by ``in_group`` and the others (biased V-statistic).

    ``k(x, y) = mean_s exp(-|x - y|^2 / (s m))``, ``m`` the (lower) median squared distance
    between distinct codes of the batch (held constant: the bandwidth follows the codes' scale
    without the penalty shrinking it). ``MMD^2 = mean k(A, A) + mean k(B, B) - 2 mean k(A, B)``.

    Parameters
    ----------
    codes : Tensor of shape (n, d)
    in_group : BoolTensor of shape (n,)
        Both groups must be non-empty.
    scales : tuple of float, default=MMD_SCALES

    Returns
    -------
    Tensor
        Scalar, >= 0 up to rounding.
    """
    sq_dist = torch.cdist(codes, codes).pow(2)
    n = codes.shape[0]
    off_diagonal = sq_dist[~torch.eye(n, dtype=torch.bool, device=codes.device)]
    median = off_diagonal.detach().median().clamp(min=1e-8)
    kernel = sum(torch.exp(-sq_dist / (scale * median)) for scale in scales) / len(scales)
    a, b = in_group, ~in_group
    return kernel[a][:, a].mean() + kernel[b][:, b].mean() - 2 * kernel[a][:, b].mean()


def sample_mmd(codes, batch_onehot, observed=None):
    """Mean over the batch's samples of the MMD between each sample's codes and the rest's.

    ``batch_onehot``: one-hot sample rows (n, n_samples); ``observed``: the cells that have
    the modality (the others' codes are not computed from data and are left out). Zero when
    fewer than two samples are present.
    """
    if observed is not None:
        keep = observed > 0
        codes, batch_onehot = codes[keep], batch_onehot[keep]
    present = batch_onehot.sum(0) > 0
    if int(present.sum()) < 2:
        return codes.new_zeros(())
    sample = batch_onehot.argmax(1)
    terms = [gaussian_mmd(codes, sample == k) for k in present.nonzero().flatten().tolist()]
    return torch.stack(terms).mean()


class FactVAELoss(nn.Module):
    """The main objective, used as the skorch criterion.

    ``L = w_nll_r NLL_r + w_kl_r KL_r + w_nll_a NLL_a + w_kl_a KL_a + w_prior exp(L_prior)``,
    NLL and KL summed over features / latent dimensions and averaged over the batch's cells;
    with ``batch_mmd_weight > 0`` and sample labels, plus ``w_mmd (MMD_r + MMD_a)``, the
    samples' MMD of the posterior means (:func:`sample_mmd`), logged as ``mmd``.

    Parameters
    ----------
    rna_likelihood, atac_likelihood : {"zinb", "nb"}
    rna_nll_weight, rna_kl_weight, atac_nll_weight, atac_kl_weight, prior_weight : float
    batch_mmd_weight : float, default=0.0
        Weight of the MMD across samples; 0 leaves the objective (and its graph) as without.
    prior : tuple of arrays (rows, cols, values) or None
        The prior's non-zero entries; ``None`` switches the prior term off. Stored as buffers
        so they follow the criterion to its device and into pickles.
    """

    def __init__(
        self,
        rna_likelihood="zinb",
        atac_likelihood="zinb",
        rna_nll_weight=0.1,
        rna_kl_weight=0.001,
        atac_nll_weight=0.002,
        atac_kl_weight=0.001,
        prior_weight=1.0,
        prior=None,
        batch_mmd_weight=0.0,
    ):
        super().__init__()
        self.rna_likelihood = rna_likelihood
        self.atac_likelihood = atac_likelihood
        self.rna_nll_weight = rna_nll_weight
        self.rna_kl_weight = rna_kl_weight
        self.atac_nll_weight = atac_nll_weight
        self.atac_kl_weight = atac_kl_weight
        self.prior_weight = prior_weight
        self.batch_mmd_weight = batch_mmd_weight
        self.has_prior = prior is not None and len(prior[0]) > 0
        if self.has_prior:
            rows, cols, values = prior
            self.register_buffer("prior_rows", torch.as_tensor(np.asarray(rows), dtype=torch.long))
            self.register_buffer("prior_cols", torch.as_tensor(np.asarray(cols), dtype=torch.long))
            self.register_buffer(
                "prior_values", torch.as_tensor(np.asarray(values), dtype=torch.float32)
            )

    def per_cell_terms(self, outputs, counts):
        """Each cell's NLL and KL of every modality in ``outputs``: ``{"nll_rna": (n,),
        "kl_rna": (n,), "nll_atac": ..., "kl_atac": ...}``, unweighted and unmasked."""
        cells = {}
        for block, likelihood in (("rna", self.rna_likelihood), ("atac", self.atac_likelihood)):
            if block in outputs:
                cells[f"nll_{block}"] = per_cell_nll(
                    likelihood, counts[block], outputs[block], counts.get(f"{block}_nonzero")
                )
                cells[f"kl_{block}"] = per_cell_kl(outputs[block])
        return cells

    def per_cell_elbo(self, outputs, counts):
        """Each cell's evidence lower bound, ``-(NLL + KL)`` summed over the modalities it
        has (``counts["<block>_observed"]`` masks the others): what ``FactVAE.score``
        averages."""
        cells = self.per_cell_terms(outputs, counts)
        elbo = 0.0
        for block in ("rna", "atac"):
            if f"nll_{block}" not in cells:
                continue
            nll, kl = cells[f"nll_{block}"], cells[f"kl_{block}"]
            mask = counts.get(f"{block}_observed")
            if mask is not None:  # a modality a cell lacks adds nothing
                nll, kl = nll * mask, kl * mask
            elbo = elbo - nll - kl
        return elbo

    def forward(self, outputs, counts, rna_embedding=None, atac_embedding=None, batch=None):
        """Return ``(loss, terms)``; ``terms`` maps each unweighted term's name to a detached
        scalar tensor (converted to floats by the caller, once per step, so that a GPU step
        is not interrupted by host synchronisations). ``batch``: the one-hot sample rows,
        read only by the MMD term."""
        cells = self.per_cell_terms(outputs, counts)
        rna_observed = counts.get("rna_observed")
        terms = {
            "nll_rna": _cell_mean(cells["nll_rna"], rna_observed),
            "kl_rna": _cell_mean(cells["kl_rna"], rna_observed),
        }
        loss = self.rna_nll_weight * terms["nll_rna"] + self.rna_kl_weight * terms["kl_rna"]
        if "atac" in outputs:
            atac_observed = counts.get("atac_observed")
            terms["nll_atac"] = _cell_mean(cells["nll_atac"], atac_observed)
            terms["kl_atac"] = _cell_mean(cells["kl_atac"], atac_observed)
            loss = (
                loss
                + self.atac_nll_weight * terms["nll_atac"]
                + self.atac_kl_weight * terms["kl_atac"]
            )
            if self.has_prior:
                terms["prior"] = prior_loss(
                    rna_embedding,
                    atac_embedding,
                    self.prior_rows,
                    self.prior_cols,
                    self.prior_values,
                )
                loss = loss + self.prior_weight * terms["prior"].exp()
        if self.batch_mmd_weight > 0 and batch is not None:
            terms["mmd"] = sum(
                sample_mmd(outputs[block]["mean"], batch, counts.get(f"{block}_observed"))
                for block in outputs
            )
            loss = loss + self.batch_mmd_weight * terms["mmd"]
        return loss, {name: value.detach() for name, value in terms.items()}
