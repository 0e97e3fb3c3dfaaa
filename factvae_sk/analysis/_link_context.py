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
- ``promoter_cpm``: the accessibility of the gene's promoter (peaks within
  :data:`PROMOTER_WINDOW` of its TSS), from the caller's per-peak activity;
- ``expressed_everywhere``: the gene is expressed in every group of cells (ubiquitous genes
  have fewer distal enhancers, scE2G's ``ubiquitousExpressedGene``).

Every position is a base: a gene's TSS (``prior._tss_bases``; for an unknown strand the
gene's start) and a peak's midpoint. "Between" is strict on both ends, so neither the gene's
own TSS nor the element itself is counted. Counts use sorted positions per chromosome and
``searchsorted``: time ~ (pairs + features) log(features), memory one value per pair.
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
CONTEXT_FEATURES = ("tss_between", "peaks_between", "peaks_near")


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
    counts = np.zeros(len(low), dtype=np.int64)
    sites = _by_chrom(site_chrom)
    for name, queries in _by_chrom(chrom).items():
        where = sites.get(name)
        if where is None:
            continue
        positions = np.unique(site_position[where])
        positions = positions[np.isfinite(positions)]
        lo, hi = low[queries], high[queries]
        known = np.isfinite(lo) & np.isfinite(hi)
        n = np.searchsorted(positions, hi, side="left") - np.searchsorted(
            positions, lo, side="right"
        )
        counts[queries] = np.where(known, np.maximum(n, 0), 0)
    return counts


def genomic_context(gene_table, peak_table, rows, cols, annotation=None):
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
        Every gene of the genome (the same columns) whose TSSs count for ``tss_between``;
        ``None`` uses ``gene_table``.

    Returns
    -------
    DataFrame
        ``tss_between``, ``peaks_between``, ``peaks_near`` (int), one row per pair.
    """
    rows, cols = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
    tss, gene_chrom = tss_positions(gene_table)
    middle, peak_chrom = peak_midpoints(peak_table)
    every_tss, every_chrom = tss_positions(gene_table if annotation is None else annotation)
    same = _same_chrom(gene_chrom[rows], peak_chrom[cols])
    chrom = peak_chrom[cols]
    element, promoter = middle[cols], np.where(same, tss[rows], np.nan)
    near = count_between(
        chrom, element - NEAR_WINDOW - 1, element + NEAR_WINDOW + 1, peak_chrom, middle
    )
    return pd.DataFrame(
        {
            "tss_between": count_between(chrom, element, promoter, every_chrom, every_tss),
            "peaks_between": count_between(chrom, element, promoter, peak_chrom, middle),
            # Distinct midpoints within the window, the element's own one left out.
            "peaks_near": np.maximum(near - 1, 0),
        }
    )


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
