"""Gene-peak prior: which ATAC peaks are linked to which genes, from genomic coordinates.

Two recipes of the FactVAE method (SPEC section 1), both strand-aware:

- ``mode="body_upstream"`` (default): a peak is linked to a gene when it overlaps the gene body
  extended by a promoter of ``upstream`` bp (2 kb) on the transcription start site (TSS) side.
  Binary links.
- ``mode="tss_window"``: a peak is linked to a gene when it lies within ``window`` bp (150 kb)
  of the TSS, weighted by the distance decay ``((d + 1000) / 1000) ** -0.75``.

Pure numpy/pandas: peaks are sorted by start per chromosome, and each gene's candidate peaks
are found by binary search, so no external tool (bedtools) is needed.
"""

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .data._coordinates import (
    check_gene_peak_tables,
    check_prior_links,
    standard_columns,
    standard_strands,
    warn,
)

__all__ = ["build_gene_peak_prior", "gene_peak_prior", "parse_peak_names", "tss_distance"]

_GENE_COLUMNS = ("chrom", "start", "end", "strand")
_PEAK_COLUMNS = ("chrom", "start", "end")


def _check_table(table, columns, what, say=warn):
    """``table`` (a DataFrame) with ``columns`` under their standard names and sane
    intervals: the table itself, or a new one where column names or strands were changed."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(table).__name__}.")
    table = standard_columns(table, columns, what)
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
    if "strand" in columns:
        strand, message = standard_strands(table["strand"], what)
        if message:
            say(message + ".")
            table = table.assign(strand=strand)
    return table


def _select(table, names, key, what):
    """Rows of ``table`` in the order of ``names``, matched on column ``key`` or on the index."""
    if names is None:
        return table
    labels = pd.Index(table[key] if key in table.columns else table.index)
    where = "column " + repr(key) if key in table.columns else "index"
    if not labels.is_unique:
        repeated = labels[labels.duplicated()].unique()[:3].tolist()
        raise ValueError(
            f"{what} {where} repeats names (e.g. {repeated}), so {key}_names is ambiguous: "
            "make the names unique first (e.g. AnnData's var_names_make_unique()), or "
            f"select the rows yourself and leave {key}_names out."
        )
    names = pd.Index(np.asarray(names, dtype=object).ravel())
    positions = labels.get_indexer(names)
    if (positions < 0).any():
        absent = list(names[positions < 0][:5])
        raise ValueError(
            f"{(positions < 0).sum()} of {key}_names are not in the {where} of {what}, "
            f"e.g. {absent}."
        )
    # take() returns a new frame, so the caller's table is left untouched.
    return table.take(positions)


def _check_tables(genes, peaks, *, gene_names=None, peak_names=None, what=None, checked=False):
    """Gene and peak tables ready to be joined by chromosome: columns under their standard
    names, strands as '+'/'-', the rows of ``gene_names``/``peak_names``, and chromosome
    names that agree (see :mod:`factvae_sk.data._coordinates`), with a
    :class:`~factvae_sk.exceptions.FactVAEWarning` for each thing changed or left unlinked.
    ``what`` names the two tables in messages (default ``("genes", "peaks")``);
    ``checked=True`` for tables this function already returned (no warnings again)."""
    what = what or ("genes", "peaks")
    say = (lambda message: None) if checked else warn
    peaks = _as_peak_table(peaks)
    genes = _check_table(genes, _GENE_COLUMNS, what[0], say)
    peaks = _check_table(peaks, _PEAK_COLUMNS, what[1], say)
    genes = _select(genes, gene_names, "gene", what[0])
    peaks = _select(peaks, peak_names, "peak", what[1])
    return check_gene_peak_tables(genes, peaks, what, checked=checked)


def _by_chrom(chrom):
    """Map each chromosome name to the positions of its rows; missing names are skipped."""
    chrom = pd.Series(np.asarray(chrom, dtype=object)).astype("string")
    return chrom.groupby(chrom, sort=False, dropna=True).indices


# chrom, then start and end separated by ':'/'-'/'_' as in `chr1:100-200` (Cell Ranger ARC),
# `chr1-100-200` (Signac) or `chr1_100_200` (ArchR). The greedy chrom lets contig names that
# contain '-' or '_' (chrUn_KI270742v1) through.
_PEAK_NAME = r"^(?P<chrom>.+)[:_-](?P<start>\d+)[_-](?P<end>\d+)$"

MODES = ("body_upstream", "tss_window")


def parse_peak_names(names):
    """Parse peak names such as ``chr1:100-200`` into a table of coordinates.

    The separators may be ``chr:start-end``, ``chr-start-end`` or ``chr_start_end``. The
    coordinates are taken as written, in the convention of the peak calls (BED-style 0-based
    half-open for Cell Ranger ARC, MACS2 and the bundled data).

    Parameters
    ----------
    names : sequence of str
        One name per peak.

    Returns
    -------
    peaks : pandas.DataFrame
        Columns ``peak`` (the name), ``chrom``, ``start``, ``end`` (int64), in the given order.

    Raises
    ------
    ValueError
        If a name does not have that form or has ``end < start``; the message shows the
        offending names.

    Examples
    --------
    >>> parse_peak_names(["chr1:100-200", "chrX-5-10", "chrUn_KI270742v1_0_50"])
                        peak             chrom  start  end
    0           chr1:100-200              chr1    100  200
    1              chrX-5-10              chrX      5   10
    2  chrUn_KI270742v1_0_50  chrUn_KI270742v1      0   50
    """
    if isinstance(names, (str, bytes)):
        raise TypeError("peak names must be a sequence of strings, not a single string.")
    names = pd.Series(np.asarray(names, dtype=object).ravel(), dtype=object)
    parts = names.astype("string").str.extract(_PEAK_NAME)
    bad = parts["chrom"].isna().to_numpy()
    if bad.any():
        shown = ", ".join(repr(name) for name in names[bad][:5])
        raise ValueError(
            f"{bad.sum()} peak name(s) are not of the form 'chrom:start-end' "
            f"(or chrom-start-end, chrom_start_end), e.g. {shown}."
        )
    start = parts["start"].astype(np.int64).to_numpy()
    end = parts["end"].astype(np.int64).to_numpy()
    reversed_ = end < start
    if reversed_.any():
        shown = ", ".join(repr(name) for name in names[reversed_][:5])
        raise ValueError(f"{reversed_.sum()} peak name(s) have end < start, e.g. {shown}.")
    return pd.DataFrame(
        {
            "peak": names.to_numpy(),
            "chrom": parts["chrom"].to_numpy(dtype=object),
            "start": start,
            "end": end,
        }
    )


def _as_peak_table(peaks):
    """A DataFrame of peaks from a DataFrame (returned as is) or from a sequence of names."""
    if isinstance(peaks, pd.DataFrame):
        return peaks
    if isinstance(peaks, (pd.Series, pd.Index, np.ndarray, list, tuple)):
        return parse_peak_names(peaks)
    raise TypeError(
        "peaks must be a pandas DataFrame with chrom/start/end columns or a sequence of "
        f"'chrom:start-end' names, got {type(peaks).__name__}."
    )


def _check_length(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of bp, got {value!r}.")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of bp >= 0, got {value}.")


def _overlapping_pairs(gene_chrom, region_start, region_end, peak_chrom, peak_start, peak_end):
    """All (gene, peak) index pairs whose half-open intervals overlap on the same chromosome.

    Regions or peaks with a missing chromosome or coordinate take part in no pair.
    """
    peak_groups = _by_chrom(peak_chrom)
    rows, cols = [], []
    for chrom, gene_idx in _by_chrom(gene_chrom).items():
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
    if not rows:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    return np.concatenate(rows), np.concatenate(cols)


def _tss_bases(start, end, strand):
    """Each gene's TSS base, as ``(first, last)``: the same base on '+' (``start``) and '-'
    (``end - 1``); both ends of the gene when the strand is unknown."""
    return np.where(strand == "-", end - 1, start), np.where(strand == "+", start, end - 1)


def _distance_to_tss(first, last, peak_start, peak_end):
    """Distance in bp from the nearer of the TSS bases ``first``/``last`` to the nearest
    base of the peak [start, end); 0 when the peak covers it."""

    def to(tss):
        return np.maximum(np.maximum(peak_start - tss, tss - (peak_end - 1)), 0.0)

    return np.minimum(to(first), to(last))


def build_gene_peak_prior(
    genes,
    peaks,
    *,
    mode="body_upstream",
    upstream=2000,
    window=150_000,
    gene_names=None,
    peak_names=None,
):
    """Gene x peak prior matrix from genomic coordinates.

    All intervals are 0-based and half-open (BED convention): a gene ``[start, end)`` covers the
    bases ``start`` to ``end - 1``; its TSS is the base ``start`` on the '+' strand and
    ``end - 1`` on the '-' strand. A peak ``[ps, pe)`` overlaps a region ``[rs, re)`` exactly
    when ``ps < re`` and ``pe > rs``: intervals that only touch do not overlap.

    ``mode="body_upstream"`` (the default, the method's usual recipe)
        A peak is linked (weight 1) when it overlaps the gene body extended by ``upstream`` bp
        on the TSS side: ``[start - upstream, end)`` on '+', ``[start, end + upstream)`` on '-'.
        Genes whose strand is neither '+' nor '-' ('.', missing) are extended on both sides,
        since their TSS could be at either end. Region starts are clipped at 0.
    ``mode="tss_window"``
        A peak is linked when its distance ``d`` to the TSS is at most ``window`` bp, with
        weight ``((d + 1000) / 1000) ** -0.75`` (1 at the TSS, 0.18 at 10 kb, 0.023 at
        150 kb). ``d`` is the number of bp from the TSS base to the nearest base of the peak:
        ``d = max(ps - tss, tss - (pe - 1), 0)``, so 0 when the peak contains the TSS and 1
        for a peak that starts right after it or ends right before it. For genes of unknown
        strand ``d`` is the smaller distance to either end of the gene.

    Parameters
    ----------
    genes : pandas.DataFrame
        One row per gene with columns ``chrom``, ``start``, ``end`` and ``strand`` ('+' or
        '-'), e.g. from :func:`read_gtf_genes` or ``load_snare_cellline().genes``. ``start``
        and ``end`` may be float with NaN for genes whose coordinates are unknown: such genes
        (and genes with a missing ``chrom``) get an all-zero row. Row order is the gene order
        of the output unless ``gene_names`` is given.
    peaks : pandas.DataFrame or sequence of str
        Either a table with one row per peak and columns ``chrom``, ``start`` and ``end``, or
        peak names ``chrom:start-end`` (also ``chrom-start-end`` and ``chrom_start_end``; see
        :func:`parse_peak_names`). Peaks may overlap each other and have different lengths.
        Peaks with a missing coordinate get an all-zero column. The order is the peak order
        of the output unless ``peak_names`` is given.
    mode : {"body_upstream", "tss_window"}, default="body_upstream"
        Which recipe links peaks to genes (see above).
    upstream : int or float, default=2000
        ``body_upstream`` mode: promoter length in bp added on the TSS side; must be >= 0.
    window : int or float, default=150_000
        ``tss_window`` mode: the largest TSS-peak distance in bp that is linked; >= 0.
    gene_names : sequence of str, optional
        If given, the output rows follow these names, looked up in the ``gene`` column of
        ``genes`` if it has one and in its index otherwise. Every name must be present once.
    peak_names : sequence of str, optional
        If given, the output columns follow these names, looked up in the ``peak`` column of
        ``peaks`` if it has one and in its index otherwise (peaks given as names are looked
        up among those names). Every name must be present once.

    Returns
    -------
    prior : scipy.sparse.csr_matrix of shape (n_genes, n_peaks), dtype float32
        Link weights (1.0 in ``body_upstream`` mode, the distance decay in ``tss_window``
        mode), no stored entry where there is no link. Pass it to ``FactVAE.fit(...,
        prior=prior)``.

    Raises
    ------
    TypeError
        If ``genes`` is not a DataFrame, ``peaks`` is neither a DataFrame nor a sequence of
        names, or ``upstream``/``window`` is not a number.
    ValueError
        If ``mode`` is unknown, a table lacks a required column, ``start``/``end`` are not
        numeric, a row has ``end < start``, a peak name is malformed, ``upstream``/``window``
        is negative or not finite, a name in ``gene_names``/``peak_names`` cannot be found
        (or the names it is looked up in repeat), no gene (or no peak) has coordinates,
        the two tables share no chromosome, or the prior links no gene to any peak: an
        empty prior is never returned (fit with ``prior=None`` to go without one).

    Warns
    -----
    FactVAEWarning
        When the tables name chromosomes differently and were matched (``chr1`` and ``1``,
        ``chrM`` and ``MT``, UCSC and Ensembl contig names: the genes' names are read in
        the peaks' spelling; the tables themselves are not changed), when strands are
        written ``1``/``-1`` (read as '+'/'-'), when genes or peaks lack coordinates (they
        get no link), when gene or peak names repeat, when most peaks lie on contigs
        without genes, and when the prior links fewer than 1% of the genes.

    Notes
    -----
    Coordinate columns may also carry other tools' names: ``Chromosome``, ``Start``,
    ``End``, ``Strand`` (pyranges), ``seqnames`` (GenomicRanges), ``chromosome_name``,
    ``start_position``, ``end_position`` (BioMart), ``chromStart``, ``chromEnd`` (UCSC).

    See Also
    --------
    read_gtf_genes : gene coordinates from a GENCODE/Ensembl GTF file.

    Examples
    --------
    >>> import pandas as pd
    >>> genes = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [5000, 20000],
    ...                       "end": [8000, 25000], "strand": ["+", "-"]})
    >>> peaks = ["chr1:3500-4000", "chr1:7000-7500", "chr1:26000-26500"]
    >>> build_gene_peak_prior(genes, peaks).toarray()
    array([[1., 1., 0.],
           [0., 0., 1.]], dtype=float32)

    The first peak is in the promoter of the '+' gene (2 kb before its start), the third in the
    promoter of the '-' gene (after its end). Without the promoter only the gene body counts:

    >>> build_gene_peak_prior(genes, peaks, upstream=0).toarray()
    array([[0., 1., 0.],
           [0., 0., 0.]], dtype=float32)

    Within 150 kb of the TSS every peak is linked, weighted by its distance: the first peak
    ends 1001 bp before the '+' gene's TSS (base 5000), the second starts 2000 bp after it;
    the third starts 1001 bp after the '-' gene's TSS (base 24999).

    >>> build_gene_peak_prior(genes, peaks, mode="tss_window").toarray().round(3)
    array([[0.594, 0.439, 0.098],
           [0.098, 0.112, 0.594]], dtype=float32)
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    _check_length(upstream, "upstream")
    _check_length(window, "window")
    genes, peaks = _check_tables(genes, peaks, gene_names=gene_names, peak_names=peak_names)
    prior = _prior_matrix(genes, peaks, mode=mode, upstream=upstream, window=window)
    check_prior_links(prior, genes)
    return prior


def _prior_matrix(genes, peaks, *, mode, upstream=2000, window=150_000):
    """:func:`build_gene_peak_prior` of tables :func:`_check_tables` returned."""
    # Work on numpy copies only; float64 keeps NaN and is exact for genomic coordinates.
    gene_start = genes["start"].to_numpy(dtype=np.float64)
    gene_end = genes["end"].to_numpy(dtype=np.float64)
    strand = genes["strand"].to_numpy(dtype=object)
    plus = strand == "+"
    minus = strand == "-"
    peak_start = peaks["start"].to_numpy(dtype=np.float64)
    peak_end = peaks["end"].to_numpy(dtype=np.float64)

    if mode == "body_upstream":
        # The TSS is at `start` on '+' and at `end` on '-'; unknown strand: extend both sides.
        region_start = np.where(minus, gene_start, gene_start - upstream)
        region_end = np.where(plus, gene_end, gene_end + upstream)
        region_start = np.maximum(region_start, 0.0)  # NaN stays NaN
    else:
        # The bases within `window` of the TSS base: [tss - window, tss + 1 + window). With an
        # unknown strand both ends are candidate TSSs; the span between them is filtered below.
        first, last = _tss_bases(gene_start, gene_end, strand)
        region_start = first - window
        region_end = last + 1 + window
    rows, cols = _overlapping_pairs(
        genes["chrom"], region_start, region_end, peaks["chrom"], peak_start, peak_end
    )

    if mode == "body_upstream":
        weights = np.ones(rows.size, dtype=np.float64)
    else:
        d = _distance_to_tss(first[rows], last[rows], peak_start[cols], peak_end[cols])
        keep = d <= window
        rows, cols, d = rows[keep], cols[keep], d[keep]
        weights = ((d + 1000.0) / 1000.0) ** -0.75

    # Each (gene, peak) pair is produced at most once, so no duplicates are summed here.
    prior = sp.csr_matrix(
        (weights.astype(np.float32), (rows, cols)),
        shape=(len(genes), len(peaks)),
        dtype=np.float32,
    )
    prior.sort_indices()
    return prior


def tss_distance(genes, peaks, rows, cols):
    """Distance in bp from gene ``rows[i]``'s TSS to peak ``cols[i]``, as in ``tss_window``.

    The distance is to the nearest base of the peak (0 when the peak covers the TSS); for a
    gene of unknown strand, to the nearer of its two ends. Pairs on different chromosomes or
    with unknown coordinates get NaN. The tables are checked and their chromosome names
    matched as in :func:`build_gene_peak_prior` (``chr1`` and ``1`` are the same, with a
    warning); tables that share no chromosome are an error.

    Parameters
    ----------
    genes : pandas.DataFrame
        ``chrom``, ``start``, ``end``, ``strand`` of every gene.
    peaks : pandas.DataFrame or sequence of str
        ``chrom``, ``start``, ``end`` of every peak, or names like ``chr1:100-200``.
    rows, cols : array-like of int
        The pairs: positions in ``genes`` and ``peaks``.

    Returns
    -------
    distance : ndarray of float64, one per pair

    Examples
    --------
    >>> import pandas as pd
    >>> genes = pd.DataFrame({"chrom": ["chr1"], "start": [5000], "end": [8000],
    ...                       "strand": ["-"]})
    >>> tss_distance(genes, ["chr1:7000-7500", "chr1:9000-9100", "chr2:1-5"], [0, 0, 0], [0, 1, 2])
    array([ 500., 1001.,   nan])
    """
    genes, peaks = _check_tables(genes, peaks)
    return _tss_distance(genes, peaks, rows, cols)


def _tss_distance(genes, peaks, rows, cols):
    """:func:`tss_distance` of tables :func:`_check_tables` returned."""
    rows, cols = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
    first, last = _tss_bases(
        genes["start"].to_numpy(dtype=np.float64)[rows],
        genes["end"].to_numpy(dtype=np.float64)[rows],
        genes["strand"].to_numpy(dtype=object)[rows],
    )
    distance = _distance_to_tss(
        first,
        last,
        peaks["start"].to_numpy(dtype=np.float64)[cols],
        peaks["end"].to_numpy(dtype=np.float64)[cols],
    )
    gene_chrom = pd.Series(genes["chrom"].to_numpy(dtype=object)[rows], dtype="string")
    peak_chrom = pd.Series(peaks["chrom"].to_numpy(dtype=object)[cols], dtype="string")
    same = (gene_chrom == peak_chrom).fillna(False).to_numpy(dtype=bool)
    return np.where(same, distance, np.nan)


# The original name, kept so existing code keeps working: the same function.
gene_peak_prior = build_gene_peak_prior
