"""factvae_sk: FactVAE, a factorized VAE for paired single-cell RNA + ATAC, for scikit-learn.

The public API is :class:`FactVAE` and the names below, plus the modules ``prior``, ``gtf``,
``datasets``, ``hvg``, ``exceptions``, ``links``, ``motifs``, ``anndata`` and ``cli``. The
private code sits in subpackages, each importing only those listed after it:

- ``app``: the ``factvae-sk`` command-line job, its plots and cell map;
- ``model``: the :class:`FactVAE` estimator and its mixins;
- ``analysis``: accessibility, link scores, differential tests, chromVAR, motif scanning;
- ``train``: the skorch net, callbacks, held-out split, data-parallel training;
- ``nn``: pure torch modules, distributions and the objective;
- ``data``: input validation, encoder inputs, row blocks, samples, users' files;
- ``utils``: memory limits, atomic writes, allocator and device.
"""

from . import _legacy
from .data._validation import GenePeakPrior
from .datasets import load_scicar_kidney, load_snare_cellline
from .gtf import read_gtf_genes
from .links import peak_gene_correlation
from .model._estimator import FactVAE
from .model._settings import PAPER_SETTINGS
from .prior import build_gene_peak_prior, gene_peak_prior

__version__ = "0.1.0"

_legacy.install()  # model.joblib files pickled before the subpackages

__all__ = [
    "FactVAE",
    "GenePeakPrior",
    "PAPER_SETTINGS",
    "build_gene_peak_prior",
    "gene_peak_prior",
    "load_scicar_kidney",
    "load_snare_cellline",
    "peak_gene_correlation",
    "read_gtf_genes",
    "__version__",
]
