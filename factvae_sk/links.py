"""Peak-gene correlation of the counts across pseudobulks: the yardstick for link scores.

Signac's ``LinkPeaks`` and ArchR's ``peak2gene`` link a peak to a gene when the peak's
accessibility and the gene's expression rise and fall together across cells or groups of
cells. :func:`peak_gene_correlation` computes that correlation on the raw counts, pooled
into groups (known labels, or k-means metacells), with no model at all.
:func:`expressed_genes` flags the genes a sample expresses, for the ``expressed`` column of
the ``annotation`` of :meth:`~factvae_sk.FactVAE.regulatory_links`.
"""

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_non_negative

from .analysis._link_context import above_average
from .data._preprocessing import RNAEncoderInput
from .data._validation import (
    SPARSE_FORMATS,
    check_counts,
    check_paired,
    naming_errors,
    reject_text,
)

# Pair values gathered at once (groups x pairs, float64): ~64 MB.
_BLOCK_ENTRIES = 1 << 23


def peak_gene_correlation(
    X_rna, X_atac, pairs, *, groups=None, n_metacells=None, n_components=30, random_state=None
):
    """Pearson correlation of expression and accessibility across pseudobulks, per pair.

    Cells are pooled into groups; each group's counts are summed, scaled to counts per
    million and log1p-transformed, separately per modality; each candidate pair gets the
    correlation, across groups, of its gene's and its peak's values. Without ``groups``
    the groups are metacells: k-means clusters of the cells' RNA principal components
    (normalize, log1p, scale, PCA). Only groups x features arrays are ever held, so memory
    does not grow with cells x features.

    Parameters
    ----------
    X_rna : {array-like, sparse matrix} of shape (n_cells, n_genes)
        Raw RNA counts.
    X_atac : {array-like, sparse matrix} of shape (n_cells, n_peaks)
        Raw ATAC counts of the same cells.
    pairs : {array-like, sparse matrix} of shape (n_genes, n_peaks)
        Which gene-peak pairs to score: its non-zero pattern (e.g. a TSS window).
    groups : array-like of shape (n_cells,), default=None
        A group label per cell (e.g. cell types or clusters); at least 3 groups.
        ``None`` builds metacells.
    n_metacells : int, default=None
        Number of k-means metacells when ``groups`` is None; ``None`` means one per 50
        cells, between 3 and 200.
    n_components : int, default=30
        Principal components the metacells are clustered on.
    random_state : int, RandomState instance or None, default=None
        Seeds the PCA and k-means of the metacells.

    Returns
    -------
    scores : csr_matrix of shape (n_genes, n_peaks), float32
        The correlations at the pairs' positions (a gene or peak constant across groups
        scores 0).

    Examples
    --------
    >>> from factvae_sk import gene_peak_prior, load_snare_cellline
    >>> from factvae_sk.links import peak_gene_correlation
    >>> data = load_snare_cellline()
    >>> hvg = data.genes.highly_variable.to_numpy()
    >>> pairs = gene_peak_prior(data.genes[hvg], data.peaks)
    >>> r = peak_gene_correlation(data.rna[:, hvg], data.atac, pairs,
    ...                           groups=data.cells.cell_line)
    >>> r.shape, bool(abs(r.data).max() <= 1)
    ((2000, 27399), True)
    """
    X_rna = check_counts(X_rna, what="X_rna", estimator_name="peak_gene_correlation")
    X_atac = check_counts(X_atac, what="X_atac", estimator_name="peak_gene_correlation")
    check_paired(X_rna, X_atac)
    rows, cols = _pair_positions(pairs, X_rna.shape[1], X_atac.shape[1])
    if groups is None:
        groups = _metacells(X_rna, n_metacells, n_components, random_state)
    indicator = _group_indicator(groups, X_rna.shape[0])
    genes = _standardized_log_cpm(indicator @ X_rna)
    peaks = _standardized_log_cpm(indicator @ X_atac)
    values = np.empty(len(rows), dtype=np.float64)
    step = max(1, _BLOCK_ENTRIES // genes.shape[0])
    for start in range(0, len(rows), step):
        block = slice(start, start + step)
        values[block] = np.einsum("gi,gi->i", genes[:, rows[block]], peaks[:, cols[block]])
    values /= genes.shape[0]
    shape = (X_rna.shape[1], X_atac.shape[1])
    return sp.csr_matrix((values.astype(np.float32), (rows, cols)), shape=shape)


def expressed_genes(X_rna):
    """Genes whose share of the counts is at least the average gene's.

    The ``expressed`` flags of a gene table: :meth:`~factvae_sk.FactVAE.regulatory_links`
    counts, for each gene-peak pair, the expressed genes whose TSS is closer to the peak
    than the gene's (``expressed_closer``, ABC's "closer active genes"). A gene is
    expressed when its pseudobulk counts per million (its counts over every cell, per
    million counts of every gene) are at least ``1e6 / n_genes``, the average gene's
    share: the rule the link model uses for the modelled genes' denoised expression when
    no flags are given, and for ``expressed_everywhere``. It needs no threshold and does not
    depend on sequencing depth (a detection rate, such as "seen in 1% of the cells", grows
    with depth); the share is that of the genes of the matrix, so pass every gene's counts
    as read, not only the modelled ones. On the bundled SNARE-seq mixture it flags 4,028 of
    18,666 genes.

    Parameters
    ----------
    X_rna : {array-like, sparse matrix} of shape (n_cells, n_genes)
        Raw RNA counts of the cells of interest (e.g. every cell, or one cell type's) for
        every gene.

    Returns
    -------
    ndarray of bool of shape (n_genes,)

    Examples
    --------
    >>> from factvae_sk import load_snare_cellline
    >>> from factvae_sk.links import expressed_genes
    >>> data = load_snare_cellline()
    >>> annotation = data.genes.assign(expressed=expressed_genes(data.rna))
    >>> int(annotation.expressed.sum())
    4028
    """
    reject_text(X_rna, "X_rna")
    with naming_errors("X_rna"):
        # Cells without counts are allowed here (they add nothing): no per-cell checks.
        X_rna = check_array(
            X_rna,
            accept_sparse=SPARSE_FORMATS,
            dtype=(np.float32, np.float64),
            input_name="X_rna",
            estimator="expressed_genes",
        )
    check_non_negative(X_rna, "expressed_genes (X_rna)")
    totals = np.asarray(X_rna.sum(axis=0, dtype=np.float64)).ravel()
    if not totals.sum() > 0:
        raise ValueError("expressed_genes needs counts: X_rna sums to 0.")
    return above_average(totals)


def _pair_positions(pairs, n_genes, n_peaks):
    if pairs is None or not (sp.issparse(pairs) or hasattr(pairs, "shape")):
        pairs = np.asarray(pairs)
    if pairs.shape != (n_genes, n_peaks):
        raise ValueError(
            f"pairs must have shape (n_genes, n_peaks) = ({n_genes}, {n_peaks}); got {pairs.shape}."
        )
    coo = sp.coo_matrix(pairs)
    keep = coo.data != 0
    return coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64)


def _metacells(X_rna, n_metacells, n_components, random_state):
    n_cells = X_rna.shape[0]
    if n_metacells is None:
        n_metacells = int(np.clip(n_cells // 50, 3, 200))
    if not (isinstance(n_metacells, Integral) and 3 <= n_metacells <= n_cells):
        raise ValueError(
            f"n_metacells must be an integer between 3 and the number of cells ({n_cells}); "
            f"got {n_metacells!r}."
        )
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    components = RNAEncoderInput(n_components, random_state=seed).fit_transform(X_rna)
    return KMeans(n_metacells, n_init=3, random_state=seed).fit_predict(components)


def _group_indicator(groups, n_cells):
    """Sparse (n_groups x n_cells) 0/1 matrix: its product with counts sums each group."""
    groups = np.asarray(groups)
    if groups.shape != (n_cells,):
        raise ValueError(f"groups needs one label per cell ({n_cells}); got shape {groups.shape}.")
    labels, codes = np.unique(groups, return_inverse=True)
    if len(labels) < 3:
        raise ValueError(f"A correlation across groups needs at least 3 groups; got {len(labels)}.")
    ones = np.ones(n_cells, dtype=np.float64)
    return sp.csr_matrix((ones, (codes, np.arange(n_cells))), shape=(len(labels), n_cells))


def _standardized_log_cpm(bulk):
    """Per feature, log1p(counts per million) of each group, centered and scaled to unit sd."""
    bulk = np.asarray(bulk.todense() if sp.issparse(bulk) else bulk, dtype=np.float64)
    values = np.log1p(1e6 * bulk / bulk.sum(axis=1, keepdims=True))
    values -= values.mean(axis=0)
    sd = values.std(axis=0)
    # A feature constant across groups has no correlation to speak of: it scores 0.
    return np.divide(values, sd, out=np.zeros_like(values), where=sd > 0)
