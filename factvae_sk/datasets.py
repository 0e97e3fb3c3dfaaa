"""Bundled real data: the SNARE-seq cell-line mixture (Chen et al. 2019, GEO GSE126074)."""

from importlib import resources

import pandas as pd
import scipy.sparse as sp
from sklearn.utils import Bunch


def load_snare_cellline():
    """Load the SNARE-seq cell-line mixture: paired RNA and ATAC counts of 1047 cells.

    Four human cell lines (BJ, H1, K562, GM12878) profiled with RNA and chromatin
    accessibility in the same cells; raw integer counts, GRCh38 coordinates. Ships with the
    package, so loading needs no network.

    Returns
    -------
    data : Bunch
        - ``rna``: CSR matrix (1047, 18666) of RNA counts (cells x genes).
        - ``atac``: CSR matrix (1047, 27399) of ATAC counts (cells x peaks).
        - ``cells``: DataFrame with ``barcode`` and ``cell_line`` (the ground truth).
        - ``genes``: DataFrame with ``gene``, ``chrom``, ``start``, ``end``, ``strand``
          (0-based half-open; NaN where unknown) and ``highly_variable`` (2000 genes).
        - ``peaks``: DataFrame with ``peak``, ``chrom``, ``start``, ``end``.

    Examples
    --------
    >>> from factvae_sk import load_snare_cellline
    >>> data = load_snare_cellline()
    >>> data.rna.shape, data.atac.shape
    ((1047, 18666), (1047, 27399))
    >>> data.cells.cell_line.nunique()
    4
    """
    folder = resources.files("factvae_sk") / "data" / "snare_cellline"

    def table(name):
        with resources.as_file(folder / name) as path:
            return pd.read_csv(path, sep="\t")

    def counts(name):
        with resources.as_file(folder / name) as path:
            return sp.csr_matrix(sp.load_npz(path))

    return Bunch(
        rna=counts("rna_counts.npz"),
        atac=counts("atac_counts.npz"),
        cells=table("cells.tsv.gz"),
        genes=table("genes.tsv.gz"),
        peaks=table("peaks.tsv.gz"),
    )
