"""factvae_sk: FactVAE, a factorized VAE for paired single-cell RNA + ATAC, for scikit-learn.

Architecture, one responsibility per module:

- ``_estimator``: :class:`FactVAE`, the scikit-learn estimator users call.
- ``_net``: the skorch net (main step + distillation step per batch).
- ``_callbacks``: skorch callbacks (per-optimizer learning-rate decay, progress).
- ``_modules``: pure torch modules (encoders, factorized decoders).
- ``_losses``: the objective (criterion, prior loss, distillation loss, MMD across samples).
- ``_distributions``: NB / ZINB log-likelihoods and the Gaussian KL.
- ``_preprocessing``: encoder inputs (RNA PCA, ATAC LSI).
- ``_data``: sparse-preserving batching.
- ``_row_blocks``, ``_block_svd``: counts on disk read in blocks of rows, and the randomized
  SVD from block products that fits their PCA and LSI.
- ``anndata``: MuData in (counts, tables, prior), results out (obsm, varm, uns, a layer),
  backed ``.h5ad`` counts for ``fit`` (optional extra ``anndata``).
- ``_validation``: input checks and :class:`GenePeakPrior`.
- ``_persistence``: weights-only model files (``FactVAE.save`` / ``FactVAE.load``).
- ``_accessibility``, ``_links``, ``_differential``: augmented accessibility, regulatory
  links and differential peaks, computed in bounded blocks.
- ``_atomic``: writes that replace a file only once complete (save, command-line outputs).
- ``_memory``: refusing dense results larger than the machine's memory, before allocating.
- ``_io``, ``_job``, ``cli``: users' files in, the ``factvae-sk`` job, the command line.
- ``exceptions``: ``FactVAEWarning``, ``InputFileError``, ``NonFiniteLossError``,
  ``ResultTooLargeError``.
- ``prior``: :func:`build_gene_peak_prior`, the gene x peak prior from coordinates.
- ``links``: :func:`peak_gene_correlation`, the pseudobulk peak-gene correlation (the
  model-free yardstick for link scores).
- ``gtf``: :func:`read_gtf_genes`, gene coordinates from a GTF annotation.
- ``motifs``: motif files, motif matches on a genome FASTA, chromVAR deviations and
  differential motifs (with ``_motif_scan``, the PWM scanner, and ``_chromvar``, the
  deviations in blocks of cells).
- ``datasets``: :func:`load_snare_cellline`, :func:`load_scicar_kidney`, the bundled real data.
"""

from ._estimator import FactVAE
from ._validation import GenePeakPrior
from .datasets import load_scicar_kidney, load_snare_cellline
from .gtf import read_gtf_genes
from .links import peak_gene_correlation
from .prior import build_gene_peak_prior, gene_peak_prior

__version__ = "0.1.0"

__all__ = [
    "FactVAE",
    "GenePeakPrior",
    "build_gene_peak_prior",
    "gene_peak_prior",
    "load_scicar_kidney",
    "load_snare_cellline",
    "peak_gene_correlation",
    "read_gtf_genes",
    "__version__",
]
