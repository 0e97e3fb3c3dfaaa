"""Reading Cell Ranger ARC's feature-barcode matrix (10x Genomics Multiome ATAC + Gene Exp.).

Cell Ranger ARC writes one matrix of features x barcodes in which genes and peaks are rows,
told apart by their feature type (``Gene Expression``, ``Peaks``), in two forms:

- ``filtered_feature_bc_matrix.h5``: an HDF5 group ``matrix`` with ``data``, ``indices``,
  ``indptr`` and ``shape`` (features x barcodes, compressed over barcodes), ``barcodes``, and
  a group ``features`` with ``id``, ``name``, ``feature_type``, ``genome`` and ``interval``
  (``chr1:100-200``; empty or ``NA`` for a gene without coordinates);
- ``filtered_feature_bc_matrix/``: ``matrix.mtx.gz`` (Matrix Market, features x barcodes),
  ``barcodes.tsv.gz`` and ``features.tsv.gz`` (no header; id, name, feature type, and for
  Cell Ranger ARC also chrom, start, end).

Both become the layout of :func:`factvae_sk.load_snare_cellline`, counts kept sparse.
Intervals are read as 10x's peak BED file defines them: 0-based start, exclusive end.
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from sklearn.utils import Bunch

from ..exceptions import FactVAEWarning, InputFileError
from ..gtf import read_gtf_genes
from ._io import (
    _check_coordinates,
    _checked_counts,
    _existing,
    _name_column,
    _reading,
    annotate_cells,
    finish_tables,
)

__all__ = ["read_10x_multiome"]

GENE_EXPRESSION = "Gene Expression"
PEAKS = "Peaks"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_FOLDER_FILES = ("matrix.mtx", "features.tsv", "barcodes.tsv")


def read_10x_multiome(path, gtf=None, cells=None):
    """Read Cell Ranger ARC's feature-barcode matrix: paired RNA and ATAC counts of a 10x Multiome.

    Genes and peaks share one matrix in Cell Ranger ARC's output; they are split by their
    feature type into RNA (``Gene Expression``) and ATAC (``Peaks``) counts, kept sparse, with
    a gene, a peak and a cell table as :func:`load_snare_cellline` returns them, so the result
    goes wherever the bundled data goes (:func:`factvae_sk.app._job.run_job`, ``factvae-sk fit
    --10x``).

    Parameters
    ----------
    path : path-like
        ``filtered_feature_bc_matrix.h5`` (needs h5py: ``pip install 'factvae_sk[tenx]'``), or
        the folder ``filtered_feature_bc_matrix/`` with ``matrix.mtx.gz``,
        ``features.tsv.gz`` and ``barcodes.tsv.gz`` (uncompressed files work too), or the
        ``outs/`` folder holding it.
    gtf : path-like, optional
        A GTF annotation of the same genome build (GENCODE, Ensembl; e.g. the ``genes.gtf.gz``
        of the Cell Ranger ARC reference). Genes are matched by their Ensembl id (the
        feature id; version suffixes ignored), else by name. It gives every gene its strand,
        and its coordinates where the file has none. Without it a gene's strand is unknown
        ('.'), which the prior treats by extending the gene on both sides.
    cells : path-like, optional
        A cell annotation table (TSV/CSV with a header row: a ``barcode`` column, else the
        first, and e.g. cell types or samples from another tool), joined by barcode: only
        the annotated cells are kept, in the matrix's order (what either side lacks is said
        in a warning).

    Returns
    -------
    data : Bunch
        - ``rna``: float32 CSR matrix (n_cells, n_genes) of RNA counts.
        - ``atac``: float32 CSR matrix (n_cells, n_peaks) of ATAC counts.
        - ``genes``: DataFrame with ``gene`` (the symbol; a repeated symbol gets ``-1``,
          ``-2``, ... appended to its later occurrences, with a warning), ``gene_id``,
          ``chrom``, ``start``, ``end`` (0-based half-open; NaN where unknown) and ``strand``.
        - ``peaks``: DataFrame with ``peak`` (its name, ``chr1:100-200``), ``chrom``,
          ``start``, ``end``.
        - ``cells``: DataFrame with ``barcode`` (those with counts in both modalities) and
          the columns of ``cells``.
        - ``located``: whether any gene has coordinates (needed for a gene-peak prior).

    Raises
    ------
    InputFileError
        Naming the file and the problem: not in 10x's layout, no gene or no peak features,
        counts that are not counts, a GTF that names none of the genes.

    Warns
    -----
    FactVAEWarning
        When gene symbols repeat (they are made unique), when features of other types
        (e.g. ``Antibody Capture``) are left out, when barcodes without counts in one
        modality are left out, and when a GTF lacks some genes.

    Examples
    --------
    >>> from factvae_sk.datasets import read_10x_multiome
    >>> data = read_10x_multiome("outs/filtered_feature_bc_matrix.h5")  # doctest: +SKIP
    >>> data.rna.shape, data.atac.shape  # doctest: +SKIP
    ((11909, 36601), (11909, 108377))
    """
    path = Path(path)
    if path.is_dir():
        matrix, features, barcodes, source = _read_folder(path)
    else:
        source = _existing(path, "Cell Ranger ARC's filtered_feature_bc_matrix.h5 or its folder")
        with open(source, "rb") as handle:
            if handle.read(8) != _HDF5_SIGNATURE:
                raise InputFileError(
                    source,
                    "not an HDF5 file; give Cell Ranger ARC's filtered_feature_bc_matrix.h5 "
                    "or the filtered_feature_bc_matrix/ folder",
                )
        matrix, features, barcodes = _read_h5(source)
    annotation = cells
    split, cells = _split_by_type(matrix, features, barcodes, source)
    del matrix  # from here on only the two halves are held, never the whole matrix as well
    data = _paired_bundle(split, cells, source, gtf)
    return data if annotation is None else annotate_cells(data, annotation)


def _import_h5py(path):
    try:
        import h5py
    except ImportError:
        raise InputFileError(
            path,
            "reading a .h5 file needs h5py: pip install 'factvae_sk[tenx]' (or give the "
            "filtered_feature_bc_matrix/ folder, which needs nothing more)",
        ) from None
    return h5py


def _strings(values):
    """HDF5 strings (fixed-length bytes or variable-length) as a str array."""
    values = np.asarray(values)
    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8").astype(object)
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], object)


def _read_h5(path):
    """``(features x barcodes CSC counts, feature table, barcodes)`` of an HDF5 matrix."""
    h5py = _import_h5py(path)
    with _reading(path, "Cell Ranger ARC's HDF5 feature-barcode matrix"), h5py.File(path) as h5:
        if "matrix" not in h5:
            raise InputFileError(
                path,
                f"has no 'matrix' group (it has {sorted(h5.keys())}); Cell Ranger ARC's "
                "filtered_feature_bc_matrix.h5 has one (files of Cell Ranger < 3 are not "
                "supported)",
            )
        group = h5["matrix"]
        needed = ["data", "indices", "indptr", "shape", "barcodes", "features"]
        missing = [key for key in needed if key not in group]
        if missing:
            raise InputFileError(path, f"the 'matrix' group lacks {missing}")
        shape = tuple(int(n) for n in group["shape"][()])
        indptr = group["indptr"][()]
        # 32-bit indices where they fit (10x writes 64-bit ones) and float32 counts (exact up
        # to 2**24, what the estimator uses): half the memory of the arrays as stored.
        index = np.int32 if indptr[-1] < np.iinfo(np.int32).max else np.int64
        matrix = sp.csc_matrix(
            (
                group["data"][()].astype(np.float32),
                group["indices"][()].astype(index),
                indptr.astype(index),
            ),
            shape=shape,
        )
        found = group["features"]
        missing = [key for key in ("id", "name", "feature_type") if key not in found]
        if missing:
            raise InputFileError(path, f"the 'matrix/features' group lacks {missing}")
        features = pd.DataFrame(
            {key: _strings(found[key][()]) for key in ("id", "name", "feature_type")}
        )
        if "interval" in found:
            intervals = _parse_intervals(_strings(found["interval"][()]))
            features = pd.concat([features, intervals], axis=1)
        barcodes = _strings(group["barcodes"][()])
    return matrix, features, barcodes


def _parse_intervals(intervals):
    """``chrom``/``start``/``end`` of ``chr:start-end`` strings; missing for ``""``/``NA``."""
    parts = pd.Series(intervals, dtype=object).str.extract(r"^(.+):(\d+)-(\d+)$")
    parts.columns = ["chrom", "start", "end"]
    return parts


def _find(folder, name):
    """``name`` or ``name.gz`` in ``folder`` (None if neither)."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _read_folder(folder):
    """``(features x barcodes counts, feature table, barcodes, matrix path)`` of a folder."""
    if _find(folder, "matrix.mtx") is None and (folder / "filtered_feature_bc_matrix").is_dir():
        folder = folder / "filtered_feature_bc_matrix"  # the outs/ folder was given
    paths = {name: _find(folder, name) for name in _FOLDER_FILES}
    missing = [f"{name}.gz" for name, found in paths.items() if found is None]
    if missing:
        raise InputFileError(
            folder,
            f"lacks {', '.join(missing)}; Cell Ranger ARC's filtered_feature_bc_matrix/ "
            "folder has matrix.mtx.gz, features.tsv.gz and barcodes.tsv.gz",
        )
    features_path = _existing(paths["features.tsv"], "10x's features.tsv.gz")
    with _reading(features_path, "10x's features.tsv.gz (tab-separated, no header)"):
        table = pd.read_csv(features_path, sep="\t", header=None, dtype=str, keep_default_na=False)
    if table.shape[1] < 3:
        raise InputFileError(
            features_path,
            f"has {table.shape[1]} column(s); 10x's features.tsv.gz has id, name, feature type "
            "(and chrom, start, end from Cell Ranger ARC)",
        )
    features = table.iloc[:, :3].set_axis(["id", "name", "feature_type"], axis=1)
    if table.shape[1] >= 6:
        coords = table.iloc[:, 3:6].set_axis(["chrom", "start", "end"], axis=1)
        features = pd.concat([features, coords.replace({"": np.nan, "NA": np.nan})], axis=1)
    barcodes_path = _existing(paths["barcodes.tsv"], "10x's barcodes.tsv.gz")
    with _reading(barcodes_path, "10x's barcodes.tsv.gz (one barcode a line)"):
        barcodes = pd.read_csv(barcodes_path, sep="\t", header=None, dtype=str).iloc[:, 0]
    matrix_path = _existing(paths["matrix.mtx"], "10x's matrix.mtx.gz")
    with _reading(matrix_path, "counts in Matrix Market format"):
        matrix = sp.csc_matrix(scipy.io.mmread(matrix_path), dtype=np.float32)
    return matrix, features, barcodes.to_numpy(dtype=object), matrix_path


def _unique_names(names, path):
    """Repeated names made unique as scanpy's ``var_names_make_unique``: the first keeps its
    name, later ones get ``-1``, ``-2``, ... (skipping names already taken)."""
    names = pd.Series(names, dtype=object).reset_index(drop=True)
    repeated = names.duplicated()
    if not repeated.any():
        return names
    taken = set(names)
    counters = {}
    for i in np.flatnonzero(repeated.to_numpy()):
        name = names[i]
        n = counters.get(name, 0)
        while f"{name}-{n + 1}" in taken:
            n += 1
        counters[name] = n + 1
        names[i] = f"{name}-{n + 1}"
        taken.add(names[i])
    shown = names[repeated].head(3).tolist()
    warnings.warn(
        f"{path}: {int(repeated.sum())} gene symbol(s) repeat; their later occurrences were "
        f"renamed (e.g. {shown}) as scanpy's var_names_make_unique does; the gene_id column "
        "tells them apart",
        FactVAEWarning,
        stacklevel=5,  # the caller of read_10x_multiome
    )
    return names


def _without_version(ids):
    """Ensembl ids without their ``.version`` suffix."""
    return pd.Series(ids, dtype=object).str.replace(r"\.\d+$", "", regex=True).to_numpy()


def _gene_table(features, path, gtf):
    """Genes with coordinates from the file, strands (and missing coordinates) from ``gtf``."""
    genes = pd.DataFrame(
        {
            "gene": _unique_names(features["name"], path),
            "gene_id": features["id"].to_numpy(dtype=object),
        }
    )
    for column in ("chrom", "start", "end"):
        genes[column] = features[column].to_numpy() if column in features else np.nan
    genes["strand"] = "."
    genes = _check_coordinates(genes, path, "the gene features", None)
    if gtf is not None:
        gtf = _existing(gtf, "a GTF annotation")
        with _reading(gtf, "a GTF annotation"):
            annotation = read_gtf_genes(gtf)
        by_id = annotation.assign(key=_without_version(annotation["gene_id"]))
        by_id = by_id.drop_duplicates("key").set_index("key")
        by_name = annotation.drop_duplicates("gene").set_index("gene")
        columns = ["chrom", "start", "end", "strand"]
        found = by_id.reindex(_without_version(genes["gene_id"]))[columns].reset_index(drop=True)
        by_name = by_name.reindex(features["name"].to_numpy())[columns].reset_index(drop=True)
        found = found.where(found["chrom"].notna(), by_name, axis=0)
        matched = found["chrom"].notna().to_numpy()
        if not matched.any():
            raise InputFileError(
                gtf,
                f"none of the {len(genes)} genes of {path} is in it, by Ensembl id or by "
                "name; is it the annotation of the same genome?",
            )
        if not matched.all():
            warnings.warn(
                f"{int((~matched).sum())} of {len(genes)} genes of {path} are not in {gtf.name}: "
                "their strand is unknown, and those without coordinates in the file get no "
                "prior links",
                FactVAEWarning,
                stacklevel=4,  # the caller of read_10x_multiome
            )
        genes.loc[matched, "strand"] = found.loc[matched, "strand"].to_numpy()
        unplaced = matched & genes["chrom"].isna().to_numpy()
        for column in ("chrom", "start", "end"):
            genes.loc[unplaced, column] = found.loc[unplaced, column].to_numpy()
    return genes, bool(genes["chrom"].notna().any())


def _peak_table(features, path):
    """Peaks with coordinates from their interval, else their ``chr:start-end`` name."""
    peaks = pd.DataFrame({"peak": features["name"].to_numpy(dtype=object)})
    if {"chrom", "start", "end"} <= set(features.columns):
        coords = features[["chrom", "start", "end"]].reset_index(drop=True)
    else:
        coords = _parse_intervals(peaks["peak"].to_numpy())
    unplaced = np.flatnonzero(coords["chrom"].isna().to_numpy())
    if unplaced.size:
        coords.loc[unplaced] = _parse_intervals(peaks["peak"].to_numpy()[unplaced]).to_numpy()
    unplaced = np.flatnonzero(coords["chrom"].isna().to_numpy())
    if unplaced.size:
        raise InputFileError(
            path,
            f"{unplaced.size} peak(s) have neither an interval nor a 'chrom:start-end' name, "
            f"e.g. {peaks['peak'].iloc[unplaced[0]]!r}",
        )
    peaks = pd.concat([peaks, coords], axis=1)
    peaks = _name_column(peaks, "peak", path, "the peak features", None)
    return _check_coordinates(peaks, path, "the peak features", None)


def _split_by_type(matrix, features, barcodes, path):
    """The features x barcodes matrix as cells x genes and cells x peaks counts, each with
    its feature rows: ``({"rna": (counts, features), "atac": ...}, cell table)``."""
    if matrix.shape != (len(features), len(barcodes)):
        raise InputFileError(
            path,
            f"the matrix is {matrix.shape[0]} x {matrix.shape[1]} but there are "
            f"{len(features)} features and {len(barcodes)} barcodes",
        )
    kind = features["feature_type"].to_numpy(dtype=object)
    types = list(dict.fromkeys(kind))
    for needed, what in ((GENE_EXPRESSION, "genes"), (PEAKS, "peaks")):
        if needed not in types:
            raise InputFileError(
                path,
                f"has no {needed!r} features ({what}); its feature types are {types}. FactVAE "
                "needs paired RNA and ATAC counts, as Cell Ranger ARC writes them",
            )
    others = [t for t in types if t not in (GENE_EXPRESSION, PEAKS)]
    if others:
        warnings.warn(
            f"{path}: features of type(s) {others} are left out (only {GENE_EXPRESSION!r} "
            f"and {PEAKS!r} are modelled)",
            FactVAEWarning,
            stacklevel=3,
        )
    cells = _name_column(pd.DataFrame({"barcode": barcodes}), "barcode", path, "the barcodes", None)
    # Cells x features without a copy: the transpose of a CSC matrix is CSR.
    counts = matrix.T.tocsr()
    split = {}
    for name, feature_type in (("rna", GENE_EXPRESSION), ("atac", PEAKS)):
        columns = np.flatnonzero(kind == feature_type)
        split[name] = (counts[:, columns], features.iloc[columns].reset_index(drop=True))
    return split, cells


def _paired_bundle(split, cells, path, gtf):
    """The bundle's layout from the split counts: barcodes without counts in a modality left
    out, counts checked, gene and peak tables."""
    # A barcode without counts in one modality has no library size there: it cannot be
    # modelled. A filtered matrix rarely holds one; it is left out, and said so.
    empty = {name: np.asarray(part.sum(axis=1)).ravel() <= 0 for name, (part, _) in split.items()}
    keep = ~(empty["rna"] | empty["atac"])
    if not keep.any():
        raise InputFileError(path, "no barcode has both Gene Expression and Peaks counts")
    if not keep.all():
        warnings.warn(
            f"{path}: {int((~keep).sum())} of {len(keep)} barcodes are left out: "
            f"{int(empty['rna'].sum())} have no Gene Expression counts, "
            f"{int(empty['atac'].sum())} no Peaks counts (e.g. {cells.barcode[~keep].iloc[0]})",
            FactVAEWarning,
            stacklevel=3,
        )
        cells = cells[keep].reset_index(drop=True)
        split = {name: (part[keep], table) for name, (part, table) in split.items()}
    genes, located = _gene_table(split["rna"][1], path, gtf)
    # The readers' common checks: chromosome names matched between the genes (from a GTF,
    # say, in Ensembl's naming) and the peaks, names made unique, problems named.
    genes, peaks = finish_tables(
        genes, _peak_table(split["atac"][1], path), located, (path, path), gtf
    )
    return Bunch(
        rna=_checked_counts(split["rna"][0], path, "RNA"),
        atac=_checked_counts(split["atac"][0], path, "ATAC"),
        genes=genes,
        peaks=peaks,
        cells=cells,
        located=located,
    )
