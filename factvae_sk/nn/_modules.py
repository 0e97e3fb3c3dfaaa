"""The FactVAE torch modules: encoders, factorized decoders and the model that joins them.

Pure torch: no data handling, no preprocessing, no losses. Tensors in, tensors out.
"""

import torch
import torch.nn.functional as F
from torch import nn


def _xavier_init(module):
    """Xavier-normal weights and zero biases for every Linear layer (the method's init)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Encoder(nn.Module):
    """MLP encoder giving a diagonal Gaussian posterior q(z | x).

    Parameters
    ----------
    n_input : int
        Size of the encoder input (e.g. 100 principal components).
    hidden_sizes : sequence of int
        Width of each hidden layer (Linear -> ELU -> Dropout).
    n_latent : int
        Size of the latent code.
    dropout : float
        Dropout probability after every hidden layer.
    """

    def __init__(self, n_input, hidden_sizes, n_latent, dropout):
        super().__init__()
        layers = []
        for n_in, n_out in zip((n_input, *hidden_sizes[:-1]), hidden_sizes, strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ELU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*layers)
        n_last = hidden_sizes[-1] if len(hidden_sizes) else n_input
        self.mean = nn.Linear(n_last, n_latent)
        self.logvar = nn.Linear(n_last, n_latent)
        self.apply(_xavier_init)

    def forward(self, x):
        """Return ``(mean, logvar, z)``; z is sampled in training and is the mean in eval."""
        h = self.body(x)
        # float32 out also under bfloat16 autocast: the KL and the sampling stay float32
        # (``.float()`` returns a float32 tensor itself, so full precision is unchanged).
        mean, logvar = self.mean(h).float(), self.logvar(h).float()
        if self.training:
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        else:
            z = mean
        return mean, logvar, z


class FactorizedDecoder(nn.Module):
    """Decoder whose parameters are per-feature embeddings in latent space.

    For a code ``z`` and log library size ``s``: ``mu = exp(s) * softmax(z @ W)``,
    ``theta = exp(softmax(z @ D))`` and zero-inflation logits ``z @ Pi``. The columns of
    ``W`` are the feature (gene or peak) embeddings.

    Parameters
    ----------
    n_latent : int
    n_features : int
    intercept : bool, default=False
        Add a learned per-feature offset ``b`` to the mean's logits: ``softmax(z @ W + b)``.
        The rank-``n_latent`` product then no longer has to carry each feature's baseline.
    n_batch : int, default=0
        Number of samples (batches). With ``n_batch > 0`` every sample ``k`` has its own
        per-feature logit offset ``B[k]``: ``softmax(z @ W + b + B[k])``, a multiplicative
        effect of the sample on each feature's expected share, which the cell code then
        need not carry. (A one-hot batch appended to ``z`` with its own rows of ``W``.)
    batch_dispersion : bool, default=False
        With ``n_batch > 0``: every sample also gets per-feature offsets on the dispersion
        logits (``softmax(z @ D + E[k])``) and on the zero-inflation logits
        (``z @ Pi + F[k]``): sample-specific noise, as scVI's ``dispersion="gene-batch"``.
    """

    def __init__(self, n_latent, n_features, intercept=False, n_batch=0, batch_dispersion=False):
        super().__init__()
        # None, not an absent attribute, so the state dict of a model without it is unchanged.
        self.intercept = nn.Parameter(torch.zeros(n_features)) if intercept else None
        # Zeros: no random draw, so the other weights are initialized as without batches.
        self.batch_effect = nn.Parameter(torch.zeros(n_batch, n_features)) if n_batch else None
        noise = n_batch and batch_dispersion
        self.batch_dispersion = nn.Parameter(torch.zeros(n_batch, n_features)) if noise else None
        self.batch_dropout = nn.Parameter(torch.zeros(n_batch, n_features)) if noise else None
        self.feature_embedding = nn.Parameter(torch.empty(n_latent, n_features))
        self.dispersion_embedding = nn.Parameter(torch.empty(n_latent, n_features))
        self.dropout_embedding = nn.Parameter(torch.empty(n_latent, n_features))
        for weight in (self.feature_embedding, self.dispersion_embedding, self.dropout_embedding):
            nn.init.xavier_normal_(weight)

    def forward(self, z, log_library, batch=None):
        """Return ``(log_mu, log_theta, pi_logits)``, each of shape (n, n_features).

        ``batch``: one-hot sample rows (n, n_batch), needed when the decoder has batches.
        """
        # Under bfloat16 autocast the three products run in bfloat16; the softmaxes and
        # everything the likelihood sums see stay float32.
        logits = (z @ self.feature_embedding).float()
        if self.intercept is not None:
            logits = logits + self.intercept
        if self.batch_effect is not None:
            logits = logits + (batch @ self.batch_effect).float()
        log_mu = log_library.unsqueeze(-1) + F.log_softmax(logits, dim=-1)
        # The reference's dispersion: theta = exp(softmax(.)), so log theta is the softmax.
        dispersion_logits = (z @ self.dispersion_embedding).float()
        pi_logits = (z @ self.dropout_embedding).float()
        if self.batch_dispersion is not None:
            dispersion_logits = dispersion_logits + (batch @ self.batch_dispersion).float()
            pi_logits = pi_logits + (batch @ self.batch_dropout).float()
        log_theta = F.softmax(dispersion_logits, dim=-1)
        return log_mu, log_theta, pi_logits


class FactVAEModule(nn.Module):
    """Encoders and factorized decoders for RNA and, optionally, ATAC.

    Parameters
    ----------
    n_input_rna, n_genes : int
        Encoder-input size and number of genes.
    n_input_atac, n_peaks : int or None
        The same for ATAC; ``None`` builds the RNA half alone.
    n_latent : int
    rna_hidden_sizes, atac_hidden_sizes : sequence of int
    dropout : float
    atac_intercepts : bool or ndarray of shape (n_peaks,), default=False
        Per-peak intercepts in the ATAC decoder's mean (see :class:`FactorizedDecoder`);
        an array gives their initial values (zeros otherwise).
    n_batch : int, default=0
        Number of samples. With ``n_batch > 0`` both decoders get per-sample feature
        offsets (see :class:`FactorizedDecoder`) and ``forward`` needs ``batch``.
    batch_in_encoders : bool, default=True
        With ``n_batch > 0``: also append the one-hot sample to both encoders' inputs
        (scVI's ``encode_covariates``), so that the codes can shed the sample's effects.
    batch_dispersion : bool, default=False
        With ``n_batch > 0``: per-sample dispersion and zero-inflation offsets in both
        decoders (see :class:`FactorizedDecoder`).
    """

    def __init__(
        self,
        n_input_rna,
        n_genes,
        n_input_atac=None,
        n_peaks=None,
        n_latent=50,
        rna_hidden_sizes=(512, 256),
        atac_hidden_sizes=(256,),
        dropout=0.2,
        atac_intercepts=False,
        n_batch=0,
        batch_in_encoders=True,
        batch_dispersion=False,
    ):
        super().__init__()
        self.n_batch = n_batch
        self.batch_in_encoders = bool(n_batch) and batch_in_encoders
        n_extra = n_batch if self.batch_in_encoders else 0
        self.encoder_rna = Encoder(
            n_input_rna + n_extra, tuple(rna_hidden_sizes), n_latent, dropout
        )
        self.decoder_rna = FactorizedDecoder(
            n_latent, n_genes, n_batch=n_batch, batch_dispersion=batch_dispersion
        )
        self.has_atac = n_peaks is not None
        if self.has_atac:
            self.encoder_atac = Encoder(
                n_input_atac + n_extra, tuple(atac_hidden_sizes), n_latent, dropout
            )
            has_intercepts = atac_intercepts is not False and atac_intercepts is not None
            self.decoder_atac = FactorizedDecoder(
                n_latent,
                n_peaks,
                intercept=has_intercepts,
                n_batch=n_batch,
                batch_dispersion=batch_dispersion,
            )
            if has_intercepts and not isinstance(atac_intercepts, bool):
                with torch.no_grad():
                    self.decoder_atac.intercept.copy_(torch.as_tensor(atac_intercepts))

    def encode(self, modality, x, batch=None):
        """``(mean, logvar, z)`` of one modality's encoder ("rna" or "atac"); ``batch``
        (one-hot rows) is appended to its input when the encoders see the sample."""
        if self.batch_in_encoders:
            x = torch.cat([x, batch], dim=1)
        return getattr(self, f"encoder_{modality}")(x)

    def forward(
        self, rna_input, rna_log_library, atac_input=None, atac_log_library=None, batch=None
    ):
        """Encode, sample and decode each modality present.

        ``batch``: one-hot sample rows (n, n_batch), needed when ``n_batch > 0``.

        Returns
        -------
        dict
            ``{"rna": out, "atac": out}`` (``"atac"`` only with ATAC), each ``out`` a dict
            with ``mean``, ``logvar``, ``z``, ``log_mu``, ``log_theta``, ``pi_logits``.
        """
        outputs = {"rna": self._run("rna", rna_input, rna_log_library, batch)}
        if self.has_atac and atac_input is not None:
            outputs["atac"] = self._run("atac", atac_input, atac_log_library, batch)
        return outputs

    def _run(self, modality, x, log_library, batch):
        mean, logvar, z = self.encode(modality, x, batch)
        log_mu, log_theta, pi_logits = getattr(self, f"decoder_{modality}")(z, log_library, batch)
        return {
            "mean": mean,
            "logvar": logvar,
            "z": z,
            "log_mu": log_mu,
            "log_theta": log_theta,
            "pi_logits": pi_logits,
        }
