"""Bundled real data: the SNARE-seq cell-line mixture (Chen et al. 2019, GEO GSE126074) and
the sci-CAR mouse kidney (Cao et al. 2018, GEO GSE117089); and :func:`read_10x_multiome`, which
reads a 10x Multiome experiment (Cell Ranger ARC's output) into the same layout."""

from importlib import resources

import pandas as pd
import scipy.sparse as sp
from sklearn.utils import Bunch

from .data._tenx import read_10x_multiome

__all__ = ["load_scicar_kidney", "load_snare_cellline", "read_10x_multiome"]


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
    return _load("snare_cellline")


def load_scicar_kidney():
    """Load the sci-CAR adult mouse kidney: paired RNA and ATAC counts of 4749 cells.

    14 annotated cell types of one tissue, among them three proximal-tubule populations; a
    hard dataset: shallow RNA (about 180 genes with counts per cell) and very sparse ATAC
    (about 19 peaks with counts per cell). 5000 genes and 9998 peaks as selected by the
    integration benchmarks that distribute it; raw integer counts, mm10 coordinates. Ships
    with the package.

    Returns
    -------
    data : Bunch
        - ``rna``: CSR matrix (4749, 5000) of RNA counts (cells x genes).
        - ``atac``: CSR matrix (4749, 9998) of ATAC counts (cells x peaks).
        - ``cells``: DataFrame with ``barcode`` and ``cell_type`` (the annotation).
        - ``genes``: DataFrame with ``gene``, ``chrom``, ``start``, ``end``, ``strand``
          (0-based half-open; empty for 215 genes without coordinates).
        - ``peaks``: DataFrame with ``peak``, ``chrom``, ``start``, ``end``.

    Examples
    --------
    >>> from factvae_sk import load_scicar_kidney
    >>> data = load_scicar_kidney()
    >>> data.rna.shape, data.atac.shape
    ((4749, 5000), (4749, 9998))
    >>> data.cells.cell_type.nunique()
    14
    """
    return _load("scicar_kidney")


def _load(name):
    folder = resources.files("factvae_sk") / "data" / name

    def table(file):
        with resources.as_file(folder / file) as path:
            return pd.read_csv(path, sep="\t")

    def counts(file):
        with resources.as_file(folder / file) as path:
            return sp.csr_matrix(sp.load_npz(path))

    return Bunch(
        rna=counts("rna_counts.npz"),
        atac=counts("atac_counts.npz"),
        cells=table("cells.tsv.gz"),
        genes=table("genes.tsv.gz"),
        peaks=table("peaks.tsv.gz"),
    )
