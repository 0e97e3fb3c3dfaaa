"""The yardstick: a straightforward torch implementation of FactVAE as SPEC.md words it.

Everything is done the obvious way, as the method's reference code does it:

- the whole RNA and ATAC count matrices are densified up front as float tensors;
- the decoder runs three separate products (``z @ W``, ``z @ D``, ``z @ Pi``) and returns
  ``mu = exp(s) * softmax(z @ W)`` and ``theta = exp(softmax(z @ D))`` on the natural scale;
- the ZINB log-likelihood is the textbook dense formula (``log(mu + eps)``, ``lgamma`` on
  every entry);
- the prior loss forms the dense genes x peaks cosine-similarity matrix every step and reads
  the prior's non-zero entries from it;
- the distillation step re-runs both encoders after the main update.

Same architecture, initialisation, hyperparameters and order of random draws as
``factvae_sk``, so from the same weights and batches both give the same losses up to
floating-point noise (``tests/test_yardstick.py`` checks this). Used by
``benchmarks/bench_training.py`` to measure how much faster the package is; not part of the
package.
"""

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn


class Encoder(nn.Module):
    """MLP (Linear, ELU, Dropout per hidden layer) with mean and log-variance heads."""

    def __init__(self, n_input, hidden_sizes, n_latent, dropout):
        super().__init__()
        layers, n_in = [], n_input
        for n_out in hidden_sizes:
            layers += [nn.Linear(n_in, n_out), nn.ELU(), nn.Dropout(dropout)]
            n_in = n_out
        self.body = nn.Sequential(*layers)
        self.mean = nn.Linear(n_in, n_latent)
        self.logvar = nn.Linear(n_in, n_latent)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        h = self.body(x)
        mean, logvar = self.mean(h), self.logvar(h)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if self.training else mean
        return mean, logvar, z


class Decoder(nn.Module):
    """Three embedding matrices, three products."""

    def __init__(self, n_latent, n_features):
        super().__init__()
        self.feature_embedding = nn.Parameter(torch.empty(n_latent, n_features))
        self.dispersion_embedding = nn.Parameter(torch.empty(n_latent, n_features))
        self.dropout_embedding = nn.Parameter(torch.empty(n_latent, n_features))
        for weight in (self.feature_embedding, self.dispersion_embedding, self.dropout_embedding):
            nn.init.xavier_normal_(weight)

    def forward(self, z, library):
        mu = library.unsqueeze(1) * torch.softmax(z @ self.feature_embedding, dim=1)
        theta = torch.exp(torch.softmax(z @ self.dispersion_embedding, dim=1))
        pi_logits = z @ self.dropout_embedding
        return mu, theta, pi_logits


class Model(nn.Module):
    """Both encoders and decoders, with the parameter names of ``FactVAEModule``."""

    def __init__(
        self,
        n_input_rna,
        n_genes,
        n_input_atac,
        n_peaks,
        n_latent,
        rna_hidden,
        atac_hidden,
        dropout,
    ):
        super().__init__()
        self.encoder_rna = Encoder(n_input_rna, rna_hidden, n_latent, dropout)
        self.decoder_rna = Decoder(n_latent, n_genes)
        self.encoder_atac = Encoder(n_input_atac, atac_hidden, n_latent, dropout)
        self.decoder_atac = Decoder(n_latent, n_peaks)


def zinb_log_prob(x, mu, theta, pi_logits, eps=1e-8):
    """The textbook ZINB log-pmf, every term on every entry."""
    softplus_pi = F.softplus(-pi_logits)
    log_theta_eps = torch.log(theta + eps)
    log_theta_mu_eps = torch.log(theta + mu + eps)
    pi_theta_log = -pi_logits + theta * (log_theta_eps - log_theta_mu_eps)
    case_zero = F.softplus(pi_theta_log) - softplus_pi
    case_nonzero = (
        -softplus_pi
        + pi_theta_log
        + x * (torch.log(mu + eps) - log_theta_mu_eps)
        + torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
    )
    return torch.where(x < eps, case_zero, case_nonzero)


def kl(mean, logvar):
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def dense_prior_loss(rna_embedding, atac_embedding, rows, cols, values):
    """Cosine similarity of every gene with every peak, then the prior's entries read off."""
    similarity = F.normalize(rna_embedding, dim=0).T @ F.normalize(atac_embedding, dim=0)
    return (similarity[rows, cols] - values).pow(2).mean()


def similarity_loss(z_teacher, z_student):
    sim_t = F.cosine_similarity(z_teacher.unsqueeze(1), z_teacher.unsqueeze(0), dim=2)
    sim_s = F.cosine_similarity(z_student.unsqueeze(1), z_student.unsqueeze(0), dim=2)
    return (1.0 - F.cosine_similarity(sim_t, sim_s, dim=1)).mean()


def _dense(matrix):
    matrix = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    return torch.as_tensor(np.asarray(matrix, dtype=np.float32))


class ReferenceFactVAE:
    """Train FactVAE the straightforward way.

    Parameters
    ----------
    rna_input, atac_input : ndarray of shape (n_cells, n_components)
        Encoder inputs (PCA / LSI), as produced by ``factvae_sk``'s preprocessing.
    rna_counts, atac_counts : sparse matrix or ndarray
        Raw counts; densified here, whole.
    prior : tuple (rows, cols, values) or None
        The prior's non-zero entries.
    seed : int
        Seeds the initial weights.
    Other parameters are FactVAE's, with its defaults.
    """

    def __init__(
        self,
        rna_input,
        rna_counts,
        atac_input,
        atac_counts,
        prior=None,
        *,
        n_latent=50,
        rna_hidden_sizes=(512, 256),
        atac_hidden_sizes=(256,),
        dropout=0.2,
        rna_nll_weight=0.1,
        rna_kl_weight=0.001,
        atac_nll_weight=0.002,
        atac_kl_weight=0.001,
        prior_weight=1.0,
        lr=1e-3,
        lr_distillation=5e-4,
        lr_decay=0.995,
        batch_size=128,
        seed=0,
    ):
        self.rna_input, self.atac_input = _dense(rna_input), _dense(atac_input)
        self.rna_counts, self.atac_counts = _dense(rna_counts), _dense(atac_counts)
        self.rna_library = self.rna_counts.sum(dim=1)
        self.atac_library = self.atac_counts.sum(dim=1)
        self.prior = None
        if prior is not None:
            rows, cols, values = prior
            self.prior = (
                torch.as_tensor(np.asarray(rows), dtype=torch.long),
                torch.as_tensor(np.asarray(cols), dtype=torch.long),
                torch.as_tensor(np.asarray(values), dtype=torch.float32),
            )
        self.weights = (rna_nll_weight, rna_kl_weight, atac_nll_weight, atac_kl_weight)
        self.prior_weight = prior_weight
        self.batch_size = batch_size
        torch.manual_seed(seed)
        self.model = Model(
            self.rna_input.shape[1],
            self.rna_counts.shape[1],
            self.atac_input.shape[1],
            self.atac_counts.shape[1],
            n_latent,
            tuple(rna_hidden_sizes),
            tuple(atac_hidden_sizes),
            dropout,
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.optimizer_atac = torch.optim.Adam(
            self.model.encoder_atac.parameters(), lr=lr_distillation
        )
        self.schedulers = [
            torch.optim.lr_scheduler.ExponentialLR(self.optimizer, lr_decay),
            torch.optim.lr_scheduler.ExponentialLR(self.optimizer_atac, lr_decay),
        ]

    def main_loss(self, index):
        """The main objective on the cells ``index``: ``(loss, terms)``, before any update."""
        model = self.model
        model.train()
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        rna_in, atac_in = self.rna_input[index], self.atac_input[index]
        rna_x, atac_x = self.rna_counts[index], self.atac_counts[index]
        mean_r, logvar_r, z_r = model.encoder_rna(rna_in)
        mu_r, theta_r, pi_r = model.decoder_rna(z_r, self.rna_library[index])
        mean_a, logvar_a, z_a = model.encoder_atac(atac_in)
        mu_a, theta_a, pi_a = model.decoder_atac(z_a, self.atac_library[index])
        terms = {
            "nll_rna": -zinb_log_prob(rna_x, mu_r, theta_r, pi_r).sum(dim=1).mean(),
            "kl_rna": kl(mean_r, logvar_r).mean(),
            "nll_atac": -zinb_log_prob(atac_x, mu_a, theta_a, pi_a).sum(dim=1).mean(),
            "kl_atac": kl(mean_a, logvar_a).mean(),
        }
        loss = sum(w * terms[k] for w, k in zip(self.weights, terms, strict=True))
        if self.prior is not None:
            terms["prior"] = dense_prior_loss(
                model.decoder_rna.feature_embedding,
                model.decoder_atac.feature_embedding,
                *self.prior,
            )
            loss = loss + self.prior_weight * torch.exp(terms["prior"])
        return loss, terms

    def train_step(self, index):
        """Main step then distillation step on the cells ``index``; returns the loss terms."""
        model = self.model
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        rna_in, atac_in = self.rna_input[index], self.atac_input[index]
        self.optimizer.zero_grad()
        loss, terms = self.main_loss(index)
        loss.backward()
        self.optimizer.step()

        # Distillation: both encoders re-run on the batch after the update.
        self.optimizer_atac.zero_grad()
        with torch.no_grad():
            teacher, _, _ = model.encoder_rna(rna_in)
        student, _, _ = model.encoder_atac(atac_in)
        distill = similarity_loss(teacher, student)
        distill.backward()
        self.optimizer_atac.step()
        terms["distill"] = distill
        terms["loss"] = loss
        return {name: value.item() for name, value in terms.items()}

    def train_epoch(self, generator=None):
        """One shuffled epoch, incomplete last batch dropped; then the learning rates decay."""
        n_cells = self.rna_counts.shape[0]
        order = torch.randperm(n_cells, generator=generator).numpy()
        for start in range(0, n_cells - self.batch_size + 1, self.batch_size):
            self.train_step(order[start : start + self.batch_size])
        for scheduler in self.schedulers:
            scheduler.step()


def dense_bytes(n_cells, n_genes, n_peaks, n_latent=50):
    """Rough memory the yardstick needs: dense counts, and the similarity matrix with its
    normalised copies and gradient (about four genes x peaks float32 arrays)."""
    return 4 * (n_cells * (n_genes + n_peaks) + 4 * n_genes * n_peaks + 10 * n_latent * n_peaks)
