"""Reading users' paired data from files: count matrices and their feature/cell tables.

Everything is returned in the layout of :func:`factvae_sk.load_snare_cellline`, so the
command line runs the same job on the bundled data and on a user's own. Every problem with a
file, whatever it holds, is an :class:`~factvae_sk.exceptions.InputFileError` naming the file
and the problem; counts pass the estimator's own checks as soon as they are read, before
anything computes with them.
"""

import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from sklearn.utils import Bunch

from ..exceptions import FactVAEWarning, InputFileError
from ..gtf import read_gtf_genes
from ..prior import parse_peak_names
from ._coordinates import (
    check_gene_peak_tables,
    make_names_unique,
    standard_columns,
    standard_strands,
    warn,
)
from ._validation import check_counts

__all__ = [
    "paired_from_anndata",
    "read_counts",
    "read_h5mu",
    "read_paired_files",
    "read_paired_h5ad",
    "read_paired_h5mu",
]

_COORDINATES = ["chrom", "start", "end", "strand"]
_STRANDS = {"+", "-", ".", "*"}  # '.' and '*' (GenomicRanges): unknown


def _one_line(text):
    return " ".join(str(text).split())


@contextmanager
def _reading(path, what):
    """Any failure to parse ``path`` becomes an :class:`InputFileError` naming the file: a
    truncated gzip stream (``EOFError``), a bad zip, text where numbers belong, ..."""
    try:
        yield
    except (InputFileError, MemoryError):
        raise
    except Exception as error:
        # The exception's name helps where its text alone is cryptic (KeyError: 'format').
        problem = f"{type(error).__name__}: {_one_line(error)}".rstrip(": ")
        raise InputFileError(path, f"cannot read it as {what} ({problem})") from error


def _existing(path, what):
    """``path`` as a Path, if it is a non-empty file."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, f"no such file (expected {what})")
    if not path.is_file():
        raise InputFileError(path, f"not a file (expected {what})")
    if path.stat().st_size == 0:
        raise InputFileError(path, f"the file is empty (expected {what})")
    return path


def _checked_counts(matrix, path, what):
    """The estimator's count checks (numeric, finite, >= 0, integer, no empty cell) on a
    freshly read matrix, as float32 CSR; a failure names the file."""
    with warnings.catch_warnings():
        # For a file, non-integer values are an error: the job fits raw counts only.
        warnings.simplefilter("error", FactVAEWarning)
        try:
            return check_counts(matrix, what=f"{what} counts")
        except (ValueError, TypeError, FactVAEWarning) as error:
            raise InputFileError(path, _one_line(error)) from error


def read_counts(path, n_features, *, what, transpose=None, table=None):
    """A checked cells x features CSR count matrix from ``.npz`` (scipy) or ``.mtx[.gz]``.

    ``transpose=None`` orients the matrix by the feature table: a matrix whose columns do not
    match ``n_features`` but whose rows do (10x's ``matrix.mtx`` is features x cells) is
    transposed. ``True``/``False`` force it. ``table`` names the feature table in messages.
    """
    path = _existing(path, f"{what} counts")
    name = path.name.lower()
    if name.endswith(".npz"):
        with open(path, "rb") as handle:
            if handle.read(2) != b"PK":  # numpy would call anything else a pickle
                raise InputFileError(path, "not a zip archive, which a scipy .npz file is")
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
        raise InputFileError(
            path,
            f"{what} counts of shape {matrix.shape}, but the feature table "
            f"{table or ''} has {n_features} rows; counts must be cells x features (or "
            "features x cells)",
        )
    return _checked_counts(matrix, path, what)


# A BED file's columns, for a peak table without a header row (peaks.bed of Cell Ranger ARC).
_BED_COLUMNS = ["chrom", "start", "end", "name", "score", "strand"]


def _read_table(path, what, bed=False):
    """A table with a header row; with ``bed``, also a BED file without one (its first line
    is data: a chromosome, then two whole numbers), which gets BED's column names and
    ``attrs["first_line"] = 1``."""
    path = _existing(path, what)
    sep = None if path.name.endswith(".csv") else "\t"
    with _reading(path, what):
        table = pd.read_csv(path, sep=sep, engine="python")
    header = [str(column) for column in table.columns]
    if bed and len(header) >= 3 and header[1].isdigit() and header[2].isdigit():
        with _reading(path, what):
            table = pd.read_csv(path, sep=sep, engine="python", header=None)
        extra = [f"column{i + 1}" for i in range(len(_BED_COLUMNS), table.shape[1])]
        table.columns = (_BED_COLUMNS + extra)[: table.shape[1]]
        table.attrs["first_line"] = 1
    if table.empty:
        raise InputFileError(path, f"{what} has a header but no rows")
    return table


def _rows(index, first_line):
    """Where rows are, for messages: file line numbers (the header is line 1) or positions."""
    index = np.asarray(index)[:3]
    if first_line is None:
        return "rows " + ", ".join(str(i) for i in index)
    return "lines " + ", ".join(str(i + first_line) for i in index)


def _check_coordinates(table, path, what, first_line):
    """``start``/``end`` as whole numbers >= 0 with ``end >= start`` (missing: no links), and
    strands '+', '-' or '.'; returns the table with numeric coordinates."""
    table = table.copy()
    for column in ("start", "end"):
        raw = table[column]
        values = pd.to_numeric(raw, errors="coerce").astype(np.float64)
        for bad, problem in (
            (values.isna() & raw.notna(), "are not numbers"),
            (np.isinf(values), "are infinite"),
            (values < 0, "are negative"),
            (values.notna() & (values != np.floor(values)), "are not whole numbers"),
        ):
            bad = np.flatnonzero(np.asarray(bad, dtype=bool))
            if bad.size:
                raise InputFileError(
                    path,
                    f"{what}: {bad.size} value(s) of column {column!r} {problem}, e.g. "
                    f"'{raw.iloc[bad[0]]}' ({_rows(bad, first_line)})",
                )
        table[column] = values
    reversed_ = np.flatnonzero((table["end"] < table["start"]).to_numpy())
    if reversed_.size:
        raise InputFileError(
            path,
            f"{what}: {reversed_.size} row(s) have end < start ({_rows(reversed_, first_line)})",
        )
    if "strand" in table.columns:
        strand, message = standard_strands(table["strand"], f"{path}: {what}")
        if message:
            warn(message + ".")
            table["strand"] = strand
        strand = table["strand"]
        bad = np.flatnonzero((strand.notna() & ~strand.astype(str).isin(_STRANDS)).to_numpy())
        if bad.size:
            raise InputFileError(
                path,
                f"{what}: strand must be '+', '-' or '.' (or 1/-1), got "
                f"{strand.iloc[bad[0]]!r} ({_rows(bad, first_line)})",
            )
    return table


# Where a BED-like table (coordinates first) keeps its names: other tools' columns.
_NAME_COLUMNS = {
    "gene": ("gene_name", "gene_symbol", "symbol", "gene_id", "gene_ids", "name"),
    "peak": ("name", "interval", "region", "peak_id"),
}


def _name_column(table, name, path, what, first_line, repeats=False):
    """``table`` with a ``name`` column of non-missing strings: the given column, a column
    other tools name so, names ``chrom:start-end`` made from a peak table's coordinates, else
    the first column that is not a coordinate. Repeated names are an error unless
    ``repeats`` (then :func:`finish_tables` makes them unique)."""
    if name not in table.columns:
        table = _find_names(table, name, path, what)
    table = table.reset_index(drop=True)
    missing = np.flatnonzero(table[name].isna().to_numpy())
    if missing.size:
        raise InputFileError(
            path, f"{what}: {missing.size} row(s) have no {name} ({_rows(missing, first_line)})"
        )
    table[name] = table[name].astype(str)
    duplicated = table[name].duplicated()
    if duplicated.any() and not repeats:
        shown = table[name][duplicated].unique()[:3].tolist()
        raise InputFileError(
            path,
            f"{what} has {int(duplicated.sum())} duplicated {name}(s), e.g. {shown}; each "
            "row must be a different one",
        )
    return table


def _find_names(table, name, path, what):
    """``table`` with its names as column ``name``: the first column, unless that is a
    coordinate (a BED-like table); then a column other tools name so, names
    ``chrom:start-end`` made from a peak table's coordinates, or the first other column."""
    if name not in _NAME_COLUMNS:
        return table.rename(columns={table.columns[0]: name})
    coordinates = _standard_columns(table, _COORDINATES, path, what)
    renamed = dict(zip(table.columns, coordinates.columns, strict=True))
    if renamed[table.columns[0]] not in ("chrom", "start", "end", "strand"):
        return table.rename(columns={table.columns[0]: name})
    lower = {str(column).lower(): column for column in table.columns}
    for alias in _NAME_COLUMNS[name]:
        if alias in lower:
            return table.rename(columns={lower[alias]: name})
    if name == "peak" and {"chrom", "start", "end"} <= set(coordinates.columns):
        # The names 10x and Signac use, chrom:start-end (missing where a coordinate is).
        start, end = (pd.to_numeric(coordinates[c], errors="coerce") for c in ("start", "end"))
        known = start.notna() & end.notna()
        names = coordinates["chrom"].astype(str) + ":" + start.map("{:.0f}".format)
        names = (names + "-" + end.map("{:.0f}".format)).where(known)
        return pd.concat([names.rename(name), table], axis=1)
    others = [c for c in table.columns if renamed[c] not in ("chrom", "start", "end", "strand")]
    return table.rename(columns={(others or list(table.columns))[0]: name})


def _gtf_coordinates(annotation, names):
    """Coordinates of the genes ``names`` in a GTF's genes, looked up by gene_name, or by
    gene_id (without its version: 10x lists ENSG00000243485, GENCODE ENSG00000243485.5),
    whichever finds more."""

    def unversioned(ids):
        return (
            pd.Series(np.asarray(ids, dtype=object))
            .astype(str)
            .str.replace(r"\.\d+(_PAR_Y)?$", "", regex=True)
        )

    by_name = annotation.drop_duplicates("gene").set_index("gene")[_COORDINATES]
    ids = annotation.assign(gene_id=unversioned(annotation["gene_id"]).to_numpy())
    by_id = ids.drop_duplicates("gene_id").set_index("gene_id")[_COORDINATES]
    found = [by_name.reindex(names), by_id.reindex(unversioned(names))]
    best = max(found, key=lambda coords: int(coords["chrom"].notna().sum()))
    return best.reset_index(drop=True)


def _standard_columns(table, columns, path, what):
    """:func:`standard_columns`, its error naming the file."""
    try:
        return standard_columns(table, columns, what)
    except ValueError as error:
        raise InputFileError(path, _one_line(error)) from error


def _gene_table(genes, path, gtf, coordinates, first_line):
    """Genes with coordinates from a GTF or the table's own columns; ``(genes, located)``.

    Without any coordinate column and without a GTF the genes cannot be placed (``located``
    is False) and the caller runs without a prior; a table with only some of the columns is
    an error (probably a typo).
    """
    if not coordinates:
        return genes, False
    genes = _standard_columns(genes, _COORDINATES, path, "the gene table")
    if gtf is not None:
        gtf = _existing(gtf, "a GTF annotation")
        with _reading(gtf, "a GTF annotation"):
            annotation = read_gtf_genes(gtf)
        coords = _gtf_coordinates(annotation, genes["gene"])
        genes = pd.concat([genes.drop(columns=_COORDINATES, errors="ignore"), coords], axis=1)
        missing = int(coords["chrom"].isna().sum())
        if missing == len(genes):
            raise InputFileError(
                gtf,
                f"none of the {len(genes)} genes of {path} is in it (e.g. "
                f"{genes['gene'].head(3).tolist()}); give the GTF of the annotation the gene "
                "names come from (symbols are matched to gene_name, IDs to gene_id)",
            )
        # Genes missing from the GTF are reported with the other tables' checks.
        return genes, True
    present = [column for column in _COORDINATES if column in genes.columns]
    if not present:
        return genes, False
    if len(present) < len(_COORDINATES):
        raise InputFileError(
            path,
            f"the gene table needs the columns {_COORDINATES} (0-based half-open), or pass "
            f"--gtf to look them up by gene name, or --no-prior; it has {list(genes.columns)}",
        )
    return _check_coordinates(genes, path, "the gene table", first_line), True


def _peak_table(peaks, path, first_line):
    """Peaks with coordinates: the table's chrom/start/end, or parsed from the names."""
    peaks = _standard_columns(peaks, ("chrom", "start", "end"), path, "the peak table")
    if {"chrom", "start", "end"} <= set(peaks.columns):
        return _check_coordinates(peaks, path, "the peak table", first_line)
    try:
        parsed = parse_peak_names(peaks["peak"].tolist())
    except ValueError as error:
        raise InputFileError(
            path,
            f"the peak table has no chrom/start/end columns and {_one_line(error).rstrip('.')} "
            "(or run with --no-prior)",
        ) from error
    peaks = peaks.drop(columns=["chrom", "start", "end"], errors="ignore")
    return pd.concat([peaks, parsed.drop(columns="peak")], axis=1)


def finish_tables(genes, peaks, located, sources, gtf=None, first_line=None):
    """The gene and peak tables of a reader, ready for the job: peak coordinates, chromosome
    names that agree between the tables, and unique names; ``(genes, peaks)``.

    ``sources`` names the gene and the peak table (paths) in messages, ``first_line`` the
    file line of the first row (None: not a text file). With coordinates
    (``located``) the tables go through :func:`~factvae_sk.data._coordinates.
    check_gene_peak_tables`: a warning for what it changes or leaves unlinked, an
    :class:`InputFileError` naming the table when no link is possible. Repeated gene or peak
    names are made unique as AnnData's ``var_names_make_unique`` does (``A``, ``A-1``),
    with a warning: each row is still its own feature.
    """
    gene_source, peak_source = sources
    if located:
        peaks = _peak_table(peaks, peak_source, first_line)
        # File names, not paths: the messages name both tables, and stay one short line.
        gene_what = f"the gene table {Path(str(gene_source)).name}"
        if gtf is not None:
            gene_what += f" (coordinates from {Path(gtf).name})"
        what = (gene_what, f"the peak table {Path(str(peak_source)).name}")
        try:
            genes, peaks = check_gene_peak_tables(genes, peaks, what)
        except ValueError as error:
            raise InputFileError(gene_source, _one_line(error)) from error
    for kind, source in (("gene", gene_source), ("peak", peak_source)):
        table = genes if kind == "gene" else peaks
        names, repeated = make_names_unique(table[kind])
        if repeated:
            warn(
                f"{source}: {len(repeated)} {kind} name(s) repeat, e.g. {repeated[:3]}; made "
                f"them unique as AnnData's var_names_make_unique() does ('{repeated[0]}', "
                f"'{repeated[0]}-1', ...) in the outputs. Give unique names to silence this."
            )
            table = table.assign(**{kind: names})
            genes, peaks = (table, peaks) if kind == "gene" else (genes, table)
    return genes, peaks


def _paired(rna, atac, paths):
    if rna.shape[0] != atac.shape[0]:
        raise InputFileError(
            paths[1],
            f"ATAC counts have {atac.shape[0]} cells but the RNA counts ({paths[0]}) have "
            f"{rna.shape[0]}: the modalities must be paired, one row per cell in the same order",
        )


def read_paired_files(rna, atac, genes, peaks, *, cells=None, gtf=None, transpose=None, prior=True):
    """Paired counts from ``.npz``/``.mtx`` files and TSV/CSV tables with a header row.

    Parameters
    ----------
    rna, atac : path-like
        Count matrices, cells x features (or features x cells, see ``transpose``).
    genes : path-like
        A ``gene`` column (else the first column) and ``chrom``/``start``/``end``/``strand``
        unless ``gtf`` is given; names only: no prior (``located`` is False).
    peaks : path-like
        ``chrom``/``start``/``end`` columns or ``chrom:start-end`` names in a ``peak`` (else
        the first) column; or a BED file without a header row.
    cells : path-like, optional
        A ``barcode`` (else the first) column and any annotation columns.
    gtf : path-like, optional
        Gene coordinates looked up by name.
    transpose : bool, optional
        Force (or forbid) reading the matrices as features x cells.
    prior : bool, default=True
        Whether coordinates are wanted; without a prior they are neither read nor checked.

    Returns
    -------
    data : Bunch
        ``rna``, ``atac`` (checked float32 CSR), ``genes``, ``peaks``, ``cells`` and
        ``located`` (whether the genes have coordinates for a prior).

    Raises
    ------
    InputFileError
        Naming the file and the problem.
    """
    gene_table = _name_column(
        _read_table(genes, "the gene table"), "gene", genes, "the gene table", 2, repeats=True
    )
    peak_table = _read_table(peaks, "the peak table", bed=True)
    peak_first = peak_table.attrs.get("first_line", 2)
    peak_table = _name_column(peak_table, "peak", peaks, "the peak table", peak_first, repeats=True)
    cell_table = None
    if cells is not None:
        cell_table = _name_column(
            _read_table(cells, "the cell table"), "barcode", cells, "the cell table", 2
        )
    rna_counts = read_counts(rna, len(gene_table), what="RNA", transpose=transpose, table=genes)
    atac_counts = read_counts(atac, len(peak_table), what="ATAC", transpose=transpose, table=peaks)
    _paired(rna_counts, atac_counts, (rna, atac))
    if cell_table is None:
        cell_table = pd.DataFrame({"barcode": [f"cell{i}" for i in range(rna_counts.shape[0])]})
    elif len(cell_table) != rna_counts.shape[0]:
        raise InputFileError(
            cells, f"the cell table has {len(cell_table)} rows but the counts have "
            f"{rna_counts.shape[0]} cells"
        )  # fmt: skip
    gene_table, located = _gene_table(gene_table, genes, gtf, prior, 2)
    gene_table, peak_table = finish_tables(
        gene_table, peak_table, located, (genes, peaks), gtf, first_line=peak_first
    )
    return Bunch(
        rna=rna_counts,
        atac=atac_counts,
        genes=gene_table,
        peaks=peak_table,
        cells=cell_table,
        located=located,
    )


def annotate_cells(data, cells):
    """``data`` with its cell table joined, by barcode, to the annotation table ``cells``.

    For counts that carry their own barcodes (Cell Ranger ARC's matrix): the annotation
    (cell types, samples) usually comes from another tool, after its own quality control, so
    it may cover fewer cells, or name a few the counts lack. The cells of both are kept, in
    the counts' order, and what is left out on either side is said in a warning; barcodes
    that match nothing are an error that shows both sides' barcodes.

    Parameters
    ----------
    data : Bunch
        ``rna``, ``atac`` (cells x features) and ``cells`` (a ``barcode`` column), as the
        readers return them.
    cells : path-like
        A TSV/CSV table with a header row: a ``barcode`` column (else the first) and the
        annotation columns.

    Returns
    -------
    data : Bunch
        A new bundle (``data`` is not modified) whose ``cells`` has the table's columns, and
        whose counts keep only the annotated cells.

    Raises
    ------
    InputFileError
        When the table repeats a barcode, or none of its barcodes is among the counts'.
    """
    table = _name_column(
        _read_table(cells, "the cell table"), "barcode", cells, "the cell table", 2
    )
    barcodes = data.cells["barcode"].astype(str)
    found = barcodes.isin(table["barcode"]).to_numpy()
    if not found.any():
        raise InputFileError(
            cells,
            f"none of the cell table's {len(table)} barcodes is among the counts' "
            f"{len(barcodes)} (e.g. the table's {table['barcode'].iloc[:2].tolist()}, the "
            f"counts' {barcodes.iloc[:2].tolist()}); the 'barcode' column (else the first) "
            "must hold the barcodes as the counts name them",
        )
    unknown = int((~table["barcode"].isin(barcodes)).sum())
    if not found.all() or unknown:
        warnings.warn(
            f"{cells}: {int(found.sum())} cells are annotated and kept; "
            f"{int((~found).sum())} of the counts' barcodes are not in the table and are left "
            f"out, and {unknown} of the table's are not among the counts",
            FactVAEWarning,
            stacklevel=2,
        )
    extra = table.drop(columns=[c for c in data.cells.columns if c != "barcode"], errors="ignore")
    joined = data.cells[found].merge(extra, on="barcode", how="left", validate="one_to_one")
    keep = np.flatnonzero(found)
    out = Bunch(**data)
    out.update(rna=data.rna[keep], atac=data.atac[keep], cells=joined.reset_index(drop=True))
    return out


def _index_as_column(frame, name):
    """The frame with its index as column ``name``, unless it already has such a column."""
    if name in frame.columns:
        return frame.reset_index(drop=True)
    return frame.rename_axis(None).reset_index(names=name)


def _h5ad_counts(adata, path, what, layer):
    if layer is not None and layer not in adata.layers:
        raise InputFileError(
            path, f"has no layer {layer!r}; its layers are {list(adata.layers.keys())}"
        )
    matrix = adata.X if layer is None else adata.layers[layer]
    if matrix is None:
        raise InputFileError(path, "has no X matrix (pass --layer to read counts from a layer)")
    with _reading(path, f"{what} counts"):
        matrix = sp.csr_matrix(matrix)
    return _checked_counts(matrix, path, what)


def read_paired_h5ad(rna, atac, *, layer=None, gtf=None, prior=True):
    """Paired counts from two ``.h5ad`` files (cells x features), with anndata.

    Gene coordinates come from ``var`` columns ``chrom``/``start``/``end``/``strand`` or from
    ``gtf``; peaks from ``var`` columns ``chrom``/``start``/``end`` or ``var_names``; cell
    annotations from the RNA file's ``obs``. ``layer`` picks raw counts stored in a layer.
    The two files must list the same cells (``obs_names``) in the same order. Returns and
    raises as :func:`read_paired_files`.
    """
    anndata = _import_anndata(rna)
    adatas = []
    for path, what in ((rna, "RNA"), (atac, "ATAC")):
        path = _existing(path, f"{what} AnnData (.h5ad)")
        with _reading(path, f"{what} AnnData (.h5ad)"):
            adatas.append(anndata.read_h5ad(path))
    return paired_from_anndata(*adatas, (rna, atac), layer=layer, gtf=gtf, prior=prior)


def read_h5mu(path):
    """A MuData file read with mudata; any failure is an :class:`InputFileError`."""
    mudata = _import_anndata(path, "mudata")
    path = _existing(path, "a MuData file (.h5mu)")
    with _reading(path, "MuData (.h5mu)"):
        return mudata.read_h5mu(path)


def read_paired_h5mu(path, rna="rna", atac="atac", *, layer=None, gtf=None, prior=True):
    """Paired counts from the ``rna`` and ``atac`` modalities of a ``.h5mu`` file.

    As :func:`read_paired_h5ad`, with both modalities in one MuData file. Returns and
    raises as :func:`read_paired_files`.
    """
    mdata = read_h5mu(path)
    for name, what in ((rna, "RNA"), (atac, "ATAC")):
        if name not in mdata.mod:
            raise InputFileError(
                path,
                f"has no {what} modality {name!r}; its modalities are {list(mdata.mod.keys())}",
            )
    sources = (f"{path}[{rna}]", f"{path}[{atac}]")
    return paired_from_anndata(
        mdata.mod[rna], mdata.mod[atac], sources, layer=layer, gtf=gtf, prior=prior
    )


def _import_anndata(where, package="anndata"):
    try:
        return __import__(package)
    except ImportError as error:
        raise InputFileError(
            where,
            f"reading it needs {package}: pip install {package} (or factvae_sk[anndata])",
        ) from error


def paired_from_anndata(rna, atac, sources, *, layer=None, gtf=None, prior=True):
    """Paired counts and tables from two in-memory AnnData objects (RNA, ATAC).

    ``sources`` names the two objects in messages (file paths, or e.g. ``"mdata['rna']"``).
    Shared by :func:`read_paired_h5ad`, :func:`factvae_sk.anndata.fit_inputs_from_mudata`
    and the command line. Returns and raises as :func:`read_paired_files`.
    """
    adatas = (rna, atac)
    rna_obs, atac_obs = (pd.Index(adata.obs_names.astype(str)) for adata in adatas)
    if len(rna_obs) != len(atac_obs):
        raise InputFileError(
            sources[1],
            f"has {len(atac_obs)} cells but {sources[0]} has {len(rna_obs)}: the modalities "
            "must be paired",
        )
    differ = np.flatnonzero(rna_obs.to_numpy() != atac_obs.to_numpy())
    if differ.size:
        i = differ[0]
        raise InputFileError(
            sources[1],
            f"lists different cells (obs_names) from {sources[0]}: {differ.size} differ, first "
            f"at row {i} ({atac_obs[i]!r} vs {rna_obs[i]!r}); both must list the same cells "
            "in order",
        )
    counts = [
        _h5ad_counts(adata, path, what, layer)
        for adata, path, what in zip(adatas, sources, ("RNA", "ATAC"), strict=True)
    ]
    rna_path, atac_path = sources
    genes = _name_column(
        _index_as_column(rna.var, "gene"), "gene", rna_path, "var (genes)", None, repeats=True
    )
    peaks = _name_column(
        _index_as_column(atac.var, "peak"), "peak", atac_path, "var (peaks)", None, repeats=True
    )
    cells = _name_column(
        _index_as_column(rna.obs, "barcode"), "barcode", rna_path, "obs (cells)", None
    )
    genes, located = _gene_table(genes, rna_path, gtf, prior, None)
    genes, peaks = finish_tables(genes, peaks, located, sources, gtf)
    return Bunch(
        rna=counts[0], atac=counts[1], genes=genes, peaks=peaks, cells=cells, located=located
    )
