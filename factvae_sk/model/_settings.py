"""The method's published settings, one documented step from the estimator's defaults."""

from types import MappingProxyType

# Every number of the method's reference code and figure (SPEC section 1): encoder inputs,
# layer sizes, likelihoods, objective weights, optimizers and schedule. Read-only, so that
# ``FactVAE(**PAPER_SETTINGS)`` always means the published method.
PAPER_SETTINGS = MappingProxyType(
    {
        "n_latent": 50,
        "rna_hidden_sizes": (512, 256),
        "atac_hidden_sizes": (256,),
        "dropout": 0.2,
        "rna_likelihood": "zinb",
        "atac_likelihood": "zinb",
        "atac_intercepts": False,
        "rna_nll_weight": 0.1,
        "rna_kl_weight": 0.001,
        "atac_nll_weight": 0.002,
        "atac_kl_weight": 0.001,
        "prior_weight": 1.0,
        "lr": 1e-3,
        "lr_distillation": 5e-4,
        "lr_decay": 0.995,
        "max_epochs": 300,
        "batch_size": 128,
        "rna_n_components": 100,
        "atac_n_components": 100,
        "target_sum": 1e4,
    }
)
