"""Genomic context of gene-peak pairs: what enhancer-gene predictors read besides distance.

ENCODE-rE2G and its single-cell version scE2G rank an element-gene pair with a few features
that need only coordinates and the accessibility of the peaks, beside the ABC score and the
co-variation (``_link_model``):

- ``tss_between``: the number of other genes' TSSs between the element and the gene's TSS
  (from every gene of the annotation, not only the modelled ones): a gene with others in
  between is less likely to be the element's target;
- ``peaks_between``: the number of peaks between the element and the TSS (candidate
  elements that may take the contacts first);
- ``peaks_near``: the number of other peaks within :data:`NEAR_WINDOW` of the element (dense
  clusters of elements, super-enhancer-like);
- ``expressed_closer``: the number of *expressed* genes whose TSS lies strictly closer to
  the element than the gene's TSS does, on either side of the element (ABC's "closer active
  genes": an element with expressed genes nearer to it is less likely to act on a farther
  one); which genes are expressed: :func:`expressed_sites`;
- ``promoter_cpm``: the accessibility of the gene's promoter (peaks within
  :data:`PROMOTER_WINDOW` of its TSS), from the caller's per-peak activity;
- ``expressed_everywhere``: the gene is expressed in every group of cells (ubiquitous genes
  have fewer distal enhancers, scE2G's ``ubiquitousExpressedGene``).

Every position is a base: a gene's TSS (``prior._tss_bases``; for an unknown strand the
gene's start) and a peak's midpoint. "Between" is strict on both ends, so neither the gene's
own TSS nor the element itself is counted; "closer" is strict too (a gene exactly as far as
the pair's gene, on either side, does not count), and a gene's own TSS never counts for it.
Counts use sorted positions per chromosome and ``searchsorted``: time ~ (pairs + features)
log(features), memory one value per pair.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..prior import _as_peak_table, _by_chrom, _check_table, _tss_bases, build_gene_peak_prior

# scE2G counts the elements within 5 kb of an element.
NEAR_WINDOW = 5_000
# A peak is at the gene's promoter when it lies within this many bp of its TSS (ABC's
# promoter is TSS +-250 bp; peaks are 200-1000 bp wide, so any overlap of that region).
PROMOTER_WINDOW = 500
CONTEXT_FEATURES = ("tss_between", "peaks_between", "peaks_near", "expressed_closer")


def tss_positions(genes):
    """Each gene's TSS base (float, NaN when unknown) and chromosome (object)."""
    _check_table(genes, ("chrom", "start", "end", "strand"), "gene_table")
    first, _ = _tss_bases(
        genes["start"].to_numpy(dtype=np.float64),
        genes["end"].to_numpy(dtype=np.float64),
        genes["strand"].to_numpy(dtype=object),
    )
    return first, genes["chrom"].to_numpy(dtype=object)


def peak_midpoints(peaks):
    """Each peak's middle base (float) and chromosome (object)."""
    peaks = _as_peak_table(peaks)
    _check_table(peaks, ("chrom", "start", "end"), "peak_table")
    start = peaks["start"].to_numpy(dtype=np.float64)
    end = peaks["end"].to_numpy(dtype=np.float64)
    return np.floor((start + end - 1) / 2), peaks["chrom"].to_numpy(dtype=object)


def count_between(chrom, low, high, site_chrom, site_position):
    """Per query ``i``, the number of distinct sites on ``chrom[i]`` strictly between
    ``low[i]`` and ``high[i]`` (order of the two ends free; NaN ends count 0)."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    low, high = np.minimum(low, high), np.maximum(low, high)
    known = np.isfinite(low) & np.isfinite(high)
    return _count_inside(chrom, low, high, known, site_chrom, site_position, distinct=True)


def count_closer(chrom, position, distance, site_chrom, site_position):
    """Per query ``i``, the number of sites on ``chrom[i]`` strictly closer to
    ``position[i]`` than ``distance[i]`` (``|site - position| < distance``, every site
    counted, repeated positions as often as they occur; NaN positions or distances count 0)."""
    position = np.asarray(position, dtype=np.float64)
    distance = np.asarray(distance, dtype=np.float64)
    known = np.isfinite(position) & np.isfinite(distance)
    return _count_inside(
        chrom,
        position - distance,
        position + distance,
        known,
        site_chrom,
        site_position,
        distinct=False,
    )


def _count_inside(chrom, low, high, known, site_chrom, site_position, distinct):
    """Per query ``i``, the sites on ``chrom[i]`` with ``low[i] < site < high[i]`` (0 where
    ``known[i]`` is false); ``distinct``: a repeated position counts once. Sorted positions
    per chromosome and ``searchsorted``."""
    counts = np.zeros(len(low), dtype=np.int64)
    sites = _by_chrom(site_chrom)
    for name, queries in _by_chrom(chrom).items():
        where = sites.get(name)
        if where is None:
            continue
        positions = site_position[where]
        positions = np.unique(positions) if distinct else np.sort(positions)
        positions = positions[np.isfinite(positions)]
        n = np.searchsorted(positions, high[queries], side="left") - np.searchsorted(
            positions, low[queries], side="right"
        )
        counts[queries] = np.where(known[queries], np.maximum(n, 0), 0)
    return counts


def above_average(expression):
    """``expression >= `` the average gene's share (its mean): the scale-free rule of
    :func:`expressed_everywhere`, for one group's expression (any units)."""
    expression = np.asarray(expression, dtype=np.float64)
    return expression >= expression.sum() / len(expression)


def expressed_column(table, what="annotation"):
    """The boolean ``expressed`` column of a gene table (``None`` when it has none)."""
    if "expressed" not in table.columns:
        return None
    column = table["expressed"]
    if column.isna().any():
        raise ValueError(f"{what}['expressed'] has missing values; it needs True or False.")
    values = column.to_numpy()
    if values.dtype != bool:
        if not np.isin(values, [0, 1, True, False]).all():
            raise ValueError(
                f"{what}['expressed'] must be boolean (True/False or 1/0); got values such as "
                f"{list(pd.unique(column[~column.isin([0, 1, True, False])])[:3])}."
            )
        values = values.astype(bool)
    return values


def gene_keys(table, other):
    """Keys (str) that match genes between two gene tables: the ``gene`` names when both
    have them, else the coordinates (chromosome, start, end, strand)."""
    if "gene" in table.columns and "gene" in other.columns:
        return table["gene"].astype(str).to_numpy(dtype=object)
    parts = [table[column].astype(str) for column in ("chrom", "start", "end", "strand")]
    return (parts[0] + "|" + parts[1] + "|" + parts[2] + "|" + parts[3]).to_numpy(dtype=object)


def expressed_sites(gene_table, annotation, modelled):
    """Which genes of the site table (``annotation``, or ``gene_table`` when ``None``) count
    as expressed for ``expressed_closer``.

    The table's boolean ``expressed`` column when it has one (e.g. from
    :func:`factvae_sk.links.expressed_genes`); else the modelled genes' flags ``modelled``
    (one per row of ``gene_table``; :func:`above_average` of the model's expression),
    the annotation's genes matched to them by :func:`gene_keys`; annotation genes that are not
    modelled count as expressed (nothing is known against them).
    """
    sites = gene_table if annotation is None else annotation
    given = expressed_column(sites, "gene_table" if annotation is None else "annotation")
    if given is not None:
        return given
    modelled = np.asarray(modelled, dtype=bool)
    if annotation is None:
        return modelled
    flags = pd.Series(modelled).groupby(gene_keys(gene_table, annotation)).max()
    matched = flags.reindex(gene_keys(annotation, gene_table)).to_numpy(dtype=object)
    return np.where(pd.isna(matched), True, matched).astype(bool)


def genomic_context(gene_table, peak_table, rows, cols, annotation=None, expressed=None):
    """The pairs' counts of TSSs and peaks around them (see the module's docstring).

    Parameters
    ----------
    gene_table : DataFrame
        ``chrom``, ``start``, ``end``, ``strand`` of the genes the rows index.
    peak_table : DataFrame or sequence of str
        Coordinates of the peaks the columns index: every candidate peak of the data.
    rows, cols : ndarray of int
        The pairs.
    annotation : DataFrame, default=None
        Every gene of the genome (the same columns) whose TSSs count for ``tss_between`` and
        ``expressed_closer``; ``None`` uses ``gene_table``.
    expressed : ndarray of bool, default=None
        Per gene of that table, whether it counts for ``expressed_closer``
        (:func:`expressed_sites`); ``None``: its ``expressed`` column, and without one no
        ``expressed_closer``.

    Returns
    -------
    DataFrame
        ``tss_between``, ``peaks_between``, ``peaks_near`` and ``expressed_closer`` (int),
        one row per pair.
    """
    rows, cols = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
    tss, gene_chrom = tss_positions(gene_table)
    middle, peak_chrom = peak_midpoints(peak_table)
    sites = gene_table if annotation is None else annotation
    every_tss, every_chrom = tss_positions(sites)
    same = _same_chrom(gene_chrom[rows], peak_chrom[cols])
    chrom = peak_chrom[cols]
    element, promoter = middle[cols], np.where(same, tss[rows], np.nan)
    near = count_between(
        chrom, element - NEAR_WINDOW - 1, element + NEAR_WINDOW + 1, peak_chrom, middle
    )
    context = pd.DataFrame(
        {
            "tss_between": count_between(chrom, element, promoter, every_chrom, every_tss),
            "peaks_between": count_between(chrom, element, promoter, peak_chrom, middle),
            # Distinct midpoints within the window, the element's own one left out.
            "peaks_near": np.maximum(near - 1, 0),
        }
    )
    if expressed is None:
        expressed = expressed_column(sites, "gene_table" if annotation is None else "annotation")
    if expressed is not None:
        context["expressed_closer"] = _expressed_closer(
            gene_table, sites, rows, chrom, element, promoter, np.asarray(expressed, dtype=bool)
        )
    return context


def _expressed_closer(gene_table, sites, rows, chrom, element, promoter, expressed):
    """Expressed sites strictly closer to ``element`` than ``promoter`` (the gene's TSS; NaN
    off its chromosome), the pair's own gene left out."""
    if len(expressed) != len(sites):
        raise ValueError(f"expressed needs one flag per gene ({len(sites)}); got {len(expressed)}.")
    site_tss, site_chrom = tss_positions(sites)
    on = np.flatnonzero(expressed)
    distance = np.abs(promoter - element)
    closer = count_closer(chrom, element, distance, site_chrom[on], site_tss[on])
    if sites is not gene_table:
        # The gene's own entries of the annotation (matched by gene_keys), where their TSS
        # differs from the modelled table's (another transcript's), must not count against
        # it: the same count among the sites that carry the pair's gene's key.
        own_key = gene_keys(gene_table, sites)[rows]
        site_key = gene_keys(sites, gene_table)[on]
        closer = closer - count_closer(
            _joined(own_key, chrom),
            element,
            distance,
            _joined(site_key, site_chrom[on]),
            site_tss[on],
        )
    return closer


def _joined(key, chrom):
    """One label per (key, chromosome)."""
    key = pd.Series(key, dtype="string")
    return (key + "\t" + pd.Series(chrom, dtype="string")).to_numpy(dtype=object)


def _same_chrom(a, b):
    a = pd.Series(a, dtype="string")
    b = pd.Series(b, dtype="string")
    return (a == b).fillna(False).to_numpy(dtype=bool)


def promoter_activity(gene_table, peak_table, activity):
    """Per gene, the summed ``activity`` of the peaks within :data:`PROMOTER_WINDOW` bp of
    its TSS (0 where none is; the ``tss_window`` rule of ``build_gene_peak_prior``)."""
    near = build_gene_peak_prior(
        gene_table, _as_peak_table(peak_table), mode="tss_window", window=PROMOTER_WINDOW
    )
    pattern = sp.csr_matrix(near, dtype=np.float64)
    pattern.data[:] = 1.0
    return pattern @ np.asarray(activity, dtype=np.float64)


def expressed_everywhere(expression_by_group):
    """1.0 for genes expressed in every group, else 0.0.

    ``expression_by_group`` (n_groups, n_genes) holds each group's mean expression in counts
    per million; a gene counts as expressed in a group when it is above the average gene's
    share there (1e6 / n_genes CPM), a scale-free rule that needs no tuned threshold.
    """
    expression = np.asarray(expression_by_group, dtype=np.float64)
    share = expression.sum(axis=1, keepdims=True) / expression.shape[1]
    return (expression >= share).all(axis=0).astype(np.float64)
