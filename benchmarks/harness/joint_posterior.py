"""A joint posterior for FactVAE, as a benchmark variant: a product of experts (MVAE, Wu and
Goodman 2018; MultiVI's "joint" cells), measured against the method's two separate codes.

The method encodes each modality into its own code and decodes each modality from its own
code; the two meet only through the distillation step and the prior on the feature
embeddings. Here, for paired cells, the two encoders are experts whose Gaussians multiply
with the N(0, I) prior into one posterior,

    precision = 1 + 1 / var_rna + 1 / var_atac,
    mean = (mean_rna / var_rna + mean_atac / var_atac) / precision,

one z is sampled from it and both decoders read that z. The objective is the method's, term
for term: each modality's NLL is of the shared z, and each KL term is the joint posterior's
(so the joint KL weighs ``rna_kl_weight + atac_kl_weight``). The distillation step is
unchanged. Nothing else differs: the same settings, encoder inputs, optimizers and schedule.

Embeddings of a fit: each expert's mean (``transform`` as usual) and the joint posterior's
mean (``joint_transform``, n_latent columns instead of the concatenation's 2 n_latent).

Kept in benchmarks: it is measured here (``eval_embeddings.py --options poe``) and is not a
constructor option of the estimator.
"""

import numpy as np
import torch

from factvae_sk import FactVAE
from factvae_sk.nn._modules import FactVAEModule


def product_of_experts(means, logvars):
    """Mean and log-variance of the product of Gaussian experts and the N(0, I) prior."""
    precisions = [torch.exp(-logvar) for logvar in logvars]
    precision = 1.0 + sum(precisions)
    mean = sum(m * p for m, p in zip(means, precisions, strict=True)) / precision
    return mean, -torch.log(precision)


class ProductOfExpertsModule(FactVAEModule):
    """FactVAE's module whose two decoders read one code sampled from the joint posterior."""

    def joint(self, rna_input, atac_input, batch=None):
        """``(mean, logvar)`` of the joint posterior of paired cells."""
        mean_rna, logvar_rna, _ = self.encode("rna", rna_input, batch)
        mean_atac, logvar_atac, _ = self.encode("atac", atac_input, batch)
        return product_of_experts((mean_rna, mean_atac), (logvar_rna, logvar_atac))

    def forward(
        self, rna_input, rna_log_library, atac_input=None, atac_log_library=None, batch=None
    ):
        if not self.has_atac or atac_input is None:
            return super().forward(rna_input, rna_log_library, batch=batch)
        mean, logvar = self.joint(rna_input, atac_input, batch)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if self.training else mean
        outputs = {}
        for modality, log_library in (("rna", rna_log_library), ("atac", atac_log_library)):
            log_mu, log_theta, pi_logits = getattr(self, f"decoder_{modality}")(
                z, log_library, batch
            )
            outputs[modality] = {
                "mean": mean,
                "logvar": logvar,
                "z": z,
                "log_mu": log_mu,
                "log_theta": log_theta,
                "pi_logits": pi_logits,
            }
        return outputs


class ProductOfExpertsFactVAE(FactVAE):
    """``FactVAE`` trained through :class:`ProductOfExpertsModule`; ``joint_transform``
    gives the joint posterior's mean (``transform`` is the estimator's own: the experts'
    means, alone or side by side)."""

    def _build_net(self, *args, **kwargs):
        net = super()._build_net(*args, **kwargs)
        net.module = ProductOfExpertsModule
        return net

    def joint_transform(self, X_rna, X_atac):
        """The joint posterior's mean of paired cells, (n_cells, n_latent)."""
        X_rna, X_atac = self._validate_counts(X_rna, X_atac, reset=False)
        dataset = self._dataset(X_rna, X_atac, with_counts=False, batch_onehot=None)
        module = self.net_.module_
        parts = []
        with torch.no_grad():
            for X, _ in self._inference_batches(dataset):
                mean, _ = module.joint(X["rna_input"], X["atac_input"], X.get("batch"))
                parts.append(mean.cpu().numpy())
        return np.concatenate(parts, axis=0)
