"""Gene-peak prior: which ATAC peaks are linked to which genes.

This is the usual recipe from the FactVAE method: a peak is linked to a gene when it overlaps the
gene body extended by a promoter of ``upstream`` base pairs (2 kb by default) on the
transcription start site (TSS) side. The result is a binary genes x peaks sparse matrix.

Variants that use only a window around the TSS, or weight links by a decay with distance to the
TSS, are out of scope for now.
"""

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["gene_peak_prior"]

_GENE_COLUMNS = ("chrom", "start", "end", "strand")
_PEAK_COLUMNS = ("chrom", "start", "end")


def _check_table(table, columns, what):
    """Raise unless ``table`` is a DataFrame with ``columns`` and sane intervals."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(table).__name__}.")
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(
            f"{what} is missing the column(s) {missing}; "
            f"it needs {list(columns)} and has {list(table.columns)}."
        )
    for column in ("start", "end"):
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise ValueError(
                f"{what}[{column!r}] must be numeric, got dtype {table[column].dtype}."
            )
    start = table["start"].to_numpy(dtype=np.float64)
    end = table["end"].to_numpy(dtype=np.float64)
    # NaN compares False, so rows with unknown coordinates are not reported here.
    bad = np.flatnonzero(end < start)
    if bad.size:
        shown = ", ".join(str(label) for label in table.index[bad[:5]])
        raise ValueError(
            f"{what} has {bad.size} row(s) with end < start (index labels: {shown}"
            f"{', ...' if bad.size > 5 else ''})."
        )


def _select(table, names, key, what):
    """Rows of ``table`` in the order of ``names``, matched on column ``key`` or on the index."""
    if names is None:
        return table
    labels = pd.Index(table[key] if key in table.columns else table.index)
    where = "column " + repr(key) if key in table.columns else "index"
    if not labels.is_unique:
        raise ValueError(f"{what} {where} has duplicate names, so {what[:-1]}_names is ambiguous.")
    names = pd.Index(np.asarray(names, dtype=object).ravel())
    positions = labels.get_indexer(names)
    if (positions < 0).any():
        absent = list(names[positions < 0][:5])
        raise ValueError(
            f"{(positions < 0).sum()} of {what[:-1]}_names are not in the {where} of {what}, "
            f"e.g. {absent}."
        )
    # take() returns a new frame, so the caller's table is left untouched.
    return table.take(positions)


def _by_chrom(chrom):
    """Map each chromosome name to the positions of its rows; missing names are skipped."""
    chrom = pd.Series(np.asarray(chrom, dtype=object)).astype("string")
    return chrom.groupby(chrom, sort=False, dropna=True).indices


def gene_peak_prior(genes, peaks, *, upstream=2000, gene_names=None, peak_names=None):
    """Binary gene-peak links from overlap with the gene body plus an upstream promoter.

    A peak is linked to a gene when it overlaps the gene's region: the gene body extended by
    ``upstream`` bp on the TSS side. For a '+' strand gene the region is
    ``[start - upstream, end)``, for a '-' strand gene it is ``[start, end + upstream)``. Genes
    whose strand is neither '+' nor '-' (e.g. '.' or missing) are extended by ``upstream`` on
    both sides, since their TSS could be at either end. Region starts are clipped at 0.

    All intervals are 0-based and half-open, so a peak ``[ps, pe)`` overlaps a region
    ``[rs, re)`` exactly when ``ps < re`` and ``pe > rs``; intervals that only touch do not
    overlap.

    Parameters
    ----------
    genes : pandas.DataFrame
        One row per gene with columns ``chrom``, ``start``, ``end`` and ``strand`` ('+' or
        '-'). ``start`` and ``end`` may be float with NaN for genes whose coordinates are
        unknown: such genes (and genes with a missing ``chrom``) get an all-zero row. Row order
        is the gene order of the output unless ``gene_names`` is given.
    peaks : pandas.DataFrame
        One row per peak with columns ``chrom``, ``start`` and ``end``. Peaks may overlap each
        other and have different lengths. Peaks with a missing coordinate get an all-zero
        column. Row order is the peak order of the output unless ``peak_names`` is given.
    upstream : int or float, default=2000
        Length in bp of the promoter added on the TSS side of each gene; must be >= 0.
    gene_names : sequence of str, optional
        If given, the output rows follow these names, looked up in the ``gene`` column of
        ``genes`` if it has one and in its index otherwise. Every name must be present once.
    peak_names : sequence of str, optional
        If given, the output columns follow these names, looked up in the ``peak`` column of
        ``peaks`` if it has one and in its index otherwise. Every name must be present once.

    Returns
    -------
    prior : scipy.sparse.csr_matrix of shape (n_genes, n_peaks), dtype float32
        1.0 where the peak overlaps the gene's region, and no stored entry elsewhere.

    Raises
    ------
    TypeError
        If ``genes`` or ``peaks`` is not a DataFrame, or ``upstream`` is not a number.
    ValueError
        If a table lacks a required column, if ``start``/``end`` are not numeric, if a row has
        ``end < start``, if ``upstream`` is negative or not finite, or if a name in
        ``gene_names``/``peak_names`` cannot be found (or the names it is looked up in repeat).

    Examples
    --------
    >>> import pandas as pd
    >>> genes = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [5000, 20000],
    ...                       "end": [8000, 25000], "strand": ["+", "-"]})
    >>> peaks = pd.DataFrame({"chrom": ["chr1", "chr1", "chr1"],
    ...                       "start": [3500, 7000, 26000], "end": [4000, 7500, 26500]})
    >>> prior = gene_peak_prior(genes, peaks)
    >>> prior.shape, prior.nnz
    ((2, 3), 3)
    >>> prior.toarray()
    array([[1., 1., 0.],
           [0., 0., 1.]], dtype=float32)

    The first peak is in the promoter of the '+' gene (2 kb before its start), the third in the
    promoter of the '-' gene (after its end). Without the promoter only the gene body counts:

    >>> gene_peak_prior(genes, peaks, upstream=0).toarray()
    array([[0., 1., 0.],
           [0., 0., 0.]], dtype=float32)
    """
    _check_table(genes, _GENE_COLUMNS, "genes")
    _check_table(peaks, _PEAK_COLUMNS, "peaks")
    if isinstance(upstream, bool) or not isinstance(upstream, numbers.Real):
        raise TypeError(f"upstream must be a number of bp, got {upstream!r}.")
    if not np.isfinite(upstream) or upstream < 0:
        raise ValueError(f"upstream must be a finite number of bp >= 0, got {upstream}.")
    genes = _select(genes, gene_names, "gene", "genes")
    peaks = _select(peaks, peak_names, "peak", "peaks")

    # Work on numpy copies only; float64 keeps NaN and is exact for genomic coordinates.
    gene_start = genes["start"].to_numpy(dtype=np.float64)
    gene_end = genes["end"].to_numpy(dtype=np.float64)
    strand = genes["strand"].to_numpy(dtype=object)
    plus = strand == "+"
    minus = strand == "-"
    # The TSS is at `start` on '+' and at `end` on '-'; unknown strand: extend both sides.
    region_start = np.where(minus, gene_start, gene_start - upstream)
    region_end = np.where(plus, gene_end, gene_end + upstream)
    region_start = np.maximum(region_start, 0.0)  # NaN stays NaN
    peak_start = peaks["start"].to_numpy(dtype=np.float64)
    peak_end = peaks["end"].to_numpy(dtype=np.float64)

    gene_groups = _by_chrom(genes["chrom"])
    peak_groups = _by_chrom(peaks["chrom"])
    rows, cols = [], []
    for chrom, gene_idx in gene_groups.items():
        peak_idx = peak_groups.get(chrom)
        if peak_idx is None:
            continue
        gene_idx = gene_idx[~(np.isnan(region_start[gene_idx]) | np.isnan(region_end[gene_idx]))]
        peak_idx = peak_idx[~(np.isnan(peak_start[peak_idx]) | np.isnan(peak_end[peak_idx]))]
        if gene_idx.size == 0 or peak_idx.size == 0:
            continue
        # Sorting by start makes "peak.start < region.end" a prefix of the sorted peaks. The
        # peak ends are not sorted (peaks overlap, lengths differ), but every peak ends at most
        # max_len after its start, so "peak.end > region.start" can only hold for peaks that
        # start after region.start - max_len: a contiguous range that bounds the candidates.
        order = np.argsort(peak_start[peak_idx], kind="stable")
        peak_idx = peak_idx[order]
        starts = peak_start[peak_idx]
        ends = peak_end[peak_idx]
        max_len = float(np.max(ends - starts))
        rs = region_start[gene_idx]
        re = region_end[gene_idx]
        lo = np.searchsorted(starts, rs - max_len, side="right")
        hi = np.searchsorted(starts, re, side="left")
        counts = np.maximum(hi - lo, 0)
        total = int(counts.sum())
        if total == 0:
            continue
        # Expand each gene's candidate range [lo, hi) into flat (gene, sorted peak) pairs
        # without a Python loop: position within the range = arange - offset of its range.
        gene_rep = np.repeat(np.arange(gene_idx.size), counts)
        offsets = np.repeat(np.cumsum(counts) - counts, counts)
        cand = np.repeat(lo, counts) + (np.arange(total) - offsets)
        # The range guarantees peak.start < region.end; keep those that also end after the
        # region starts (strict: touching half-open intervals do not overlap).
        keep = ends[cand] > rs[gene_rep]
        rows.append(gene_idx[gene_rep[keep]])
        cols.append(peak_idx[cand[keep]])

    shape = (len(genes), len(peaks))
    if rows:
        rows = np.concatenate(rows)
        cols = np.concatenate(cols)
    else:
        rows = cols = np.zeros(0, dtype=np.intp)
    # Each (gene, peak) pair is produced at most once, so no duplicates are summed here.
    prior = sp.csr_matrix(
        (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=shape, dtype=np.float32
    )
    prior.sort_indices()
    return prior
