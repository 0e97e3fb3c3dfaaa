"""Reading users' paired data from files: count matrices and their feature/cell tables.

Everything is returned in the layout of :func:`factvae_sk.load_snare_cellline`, so the
command line runs the same job on the bundled data and on a user's own.
"""

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from sklearn.utils import Bunch

from .exceptions import InputFileError
from .gtf import read_gtf_genes
from .prior import parse_peak_names

__all__ = ["read_counts", "read_paired_files", "read_paired_h5ad"]

_COORDINATES = ["chrom", "start", "end", "strand"]


@contextmanager
def _reading(path, what):
    """Any failure to parse ``path`` becomes an :class:`InputFileError` naming the file: a
    truncated gzip stream (``EOFError``), a bad zip, text where numbers belong, ..."""
    try:
        yield
    except InputFileError:
        raise
    except MemoryError:
        raise
    except Exception as error:
        problem = str(error) or type(error).__name__
        raise InputFileError(path, f"cannot read it as {what} ({problem})") from error


def read_counts(path, n_features, *, what, transpose=None):
    """A cells x features CSR count matrix from ``.npz`` (scipy) or ``.mtx[.gz]``.

    ``transpose=None`` orients the matrix by the feature table: a matrix whose columns do not
    match ``n_features`` but whose rows do (10x's ``matrix.mtx`` is features x cells) is
    transposed. ``True``/``False`` force it.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".npz"):
        with _reading(path, f"{what} counts in scipy .npz format"):
            matrix = sp.csr_matrix(sp.load_npz(path))
    elif name.endswith((".mtx", ".mtx.gz")):
        with _reading(path, f"{what} counts in Matrix Market format"):
            matrix = sp.csr_matrix(scipy.io.mmread(path))
    else:
        raise InputFileError(path, f"{what} counts must be a scipy .npz or a Matrix Market .mtx")
    if transpose is None:
        transpose = matrix.shape[1] != n_features and matrix.shape[0] == n_features
        if transpose:
            print(f"{what}: {path.name} is features x cells {matrix.shape}; transposing it.")
    if transpose:
        matrix = matrix.T.tocsr()
    if matrix.shape[1] != n_features:
        raise ValueError(
            f"{what}: {path.name} has shape {matrix.shape} but the feature table has "
            f"{n_features} rows; counts must be cells x features (or features x cells)."
        )
    return matrix


def _read_table(path, what):
    table = pd.read_csv(path, sep=None if str(path).endswith(".csv") else "\t", engine="python")
    if table.empty:
        raise ValueError(f"{what}: {path} has no rows.")
    return table


def _gene_table(genes, gtf):
    """Genes with coordinates: from the table's own columns, or looked up by name in a GTF."""
    if gtf is not None:
        annotation = read_gtf_genes(gtf).drop_duplicates("gene").set_index("gene")
        coords = annotation.reindex(genes["gene"])[_COORDINATES].reset_index(drop=True)
        genes = pd.concat([genes.drop(columns=_COORDINATES, errors="ignore"), coords], axis=1)
        missing = int(coords["chrom"].isna().sum())
        if missing:
            print(f"{missing} of {len(genes)} genes are not in {Path(gtf).name}: no prior links.")
    elif not set(_COORDINATES) <= set(genes.columns):
        raise ValueError(
            f"the gene table needs the columns {_COORDINATES} (0-based half-open), or pass a "
            f"GTF to look them up by gene name; it has {list(genes.columns)}."
        )
    return genes


def _peak_table(peaks):
    """Peaks with coordinates: the table's chrom/start/end, or parsed from the names."""
    if {"chrom", "start", "end"} <= set(peaks.columns):
        return peaks
    return parse_peak_names(peaks["peak"].astype(str).tolist())


def _name_column(table, name, what):
    """Make sure ``table`` has a ``name`` column: use it, or take the first column."""
    if name not in table.columns:
        table = table.rename(columns={table.columns[0]: name})
    if table[name].duplicated().any():
        shown = table[name][table[name].duplicated()].head(3).tolist()
        raise ValueError(f"{what} has duplicate names, e.g. {shown}.")
    return table.reset_index(drop=True)


def _finish(rna, atac, genes, peaks, cells, gtf):
    if rna.shape[0] != atac.shape[0]:
        raise ValueError(
            f"RNA has {rna.shape[0]} cells but ATAC has {atac.shape[0]}: the modalities must "
            "be paired, one row per cell in the same order."
        )
    for matrix, what in ((rna, "RNA"), (atac, "ATAC")):
        # FactVAE models counts: normalized or log values would silently fit nonsense.
        if matrix.data.size and not np.array_equal(matrix.data, np.round(matrix.data)):
            raise ValueError(f"{what} has non-integer values: FactVAE needs raw counts.")
    if cells is None:
        cells = pd.DataFrame({"barcode": [f"cell{i}" for i in range(rna.shape[0])]})
    if len(cells) != rna.shape[0]:
        raise ValueError(f"the cell table has {len(cells)} rows but the counts {rna.shape[0]}.")
    genes = _gene_table(_name_column(genes, "gene", "the gene table"), gtf)
    peaks = _peak_table(_name_column(peaks, "peak", "the peak table"))
    return Bunch(
        rna=rna,
        atac=atac,
        cells=_name_column(cells, "barcode", "the cell table"),
        genes=genes,
        peaks=peaks,
    )


def read_paired_files(rna, atac, genes, peaks, *, cells=None, gtf=None, transpose=None):
    """Paired counts from ``.npz``/``.mtx`` files and TSV/CSV tables with a header row.

    ``genes``: a ``gene`` column (else the first column) and ``chrom``/``start``/``end``/
    ``strand`` unless ``gtf`` is given. ``peaks``: ``chrom``/``start``/``end`` columns or
    ``chrom:start-end`` names in a ``peak`` (else the first) column. ``cells``: a ``barcode``
    (else the first) column and any annotation columns.
    """
    genes = _read_table(genes, "genes")
    peaks = _read_table(peaks, "peaks")
    cells = None if cells is None else _read_table(cells, "cells")
    rna = read_counts(rna, len(genes), what="RNA", transpose=transpose)
    atac = read_counts(atac, len(peaks), what="ATAC", transpose=transpose)
    return _finish(rna, atac, genes, peaks, cells, gtf)


def _index_as_column(frame, name):
    """The frame with its index as column ``name``, unless it already has such a column."""
    if name in frame.columns:
        return frame.reset_index(drop=True)
    return frame.rename_axis(None).reset_index(names=name)


def read_paired_h5ad(rna, atac, *, layer=None, gtf=None):
    """Paired counts from two ``.h5ad`` files (cells x features), with anndata.

    Gene coordinates come from ``var`` columns ``chrom``/``start``/``end``/``strand`` or from
    ``gtf``; peaks from ``var`` columns ``chrom``/``start``/``end`` or ``var_names``; cell
    annotations from the RNA file's ``obs``. ``layer`` picks raw counts stored in a layer.
    """
    try:
        import anndata
    except ImportError as error:
        raise ImportError(
            "reading .h5ad needs anndata: pip install anndata (or factvae_sk[anndata])."
        ) from error
    adatas = [anndata.read_h5ad(path) for path in (rna, atac)]
    if (
        adatas[0].n_obs == adatas[1].n_obs
        and not (adatas[0].obs_names == adatas[1].obs_names).all()
    ):
        raise ValueError("the RNA and ATAC .h5ad files list different cells (obs_names).")
    counts = [sp.csr_matrix(adata.X if layer is None else adata.layers[layer]) for adata in adatas]
    genes = _index_as_column(adatas[0].var, "gene")
    peaks = _index_as_column(adatas[1].var, "peak")
    cells = _index_as_column(adatas[0].obs, "barcode")
    return _finish(*counts, genes, peaks, cells, gtf)
