"""Highly variable genes from raw counts (Seurat v3's variance-stabilizing recipe)."""

import numpy as np
import scipy.sparse as sp

__all__ = ["highly_variable_genes"]


def _loess(x, y, span=0.3, n_points=200):
    """Local quadratic regression of y on x with tricube weights (loess, degree 2).

    Fitted at ``n_points`` quantiles of x and linearly interpolated in between: the trend of
    log-variance on log-mean is smooth, and this keeps the cost at O(n_points * n).
    """
    k = min(x.size, max(3, int(np.ceil(span * x.size))))
    grid = np.unique(np.quantile(x, np.linspace(0, 1, n_points)))
    fitted = np.empty(grid.size)
    for i, x0 in enumerate(grid):
        dist = np.abs(x - x0)
        near = np.argpartition(dist, k - 1)[:k]
        radius = max(dist[near].max(), 1e-12)
        w = (1 - (dist[near] / radius) ** 3) ** 3
        t = x[near] - x0
        design = np.stack([np.ones_like(t), t, t * t], axis=1) * np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(design, y[near] * np.sqrt(w), rcond=None)
        fitted[i] = coef[0]  # the local polynomial at t = 0
    return np.interp(x, grid, fitted)


def highly_variable_genes(X, n_top_genes=2000):
    """Select highly variable genes from raw RNA counts, as Seurat v3 (``seurat_v3``) does.

    Each gene's variance is compared with the variance expected for its mean: a loess trend of
    log10(variance) on log10(mean) gives the expected standard deviation, counts are
    standardized with it (clipped at sqrt(n_cells) to limit single-cell outliers) and genes
    are ranked by the variance of their standardized counts.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_cells, n_genes)
        Raw counts, cells x genes. Not modified.
    n_top_genes : int, default=2000
        How many genes to select (all genes if there are fewer).

    Returns
    -------
    mask : ndarray of bool, shape (n_genes,)
        True for the selected genes, in the input's gene order.

    Examples
    --------
    >>> from factvae_sk import load_snare_cellline
    >>> from factvae_sk.hvg import highly_variable_genes
    >>> data = load_snare_cellline()
    >>> int(highly_variable_genes(data.rna, 2000).sum())
    2000
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    n_cells, n_genes = X.shape
    if n_top_genes >= n_genes:
        return np.ones(n_genes, dtype=bool)
    mean = np.asarray(X.mean(axis=0)).ravel()
    sq_mean = np.asarray(X.multiply(X).mean(axis=0)).ravel()
    var = (sq_mean - mean**2) * n_cells / max(n_cells - 1, 1)
    varying = var > 0
    reg_std = np.ones(n_genes)
    trend = _loess(np.log10(mean[varying]), np.log10(var[varying]))
    reg_std[varying] = np.sqrt(10**trend)
    # Clip each count at mean + sqrt(n_cells) * expected std; only stored (non-zero) counts
    # can exceed it, so the clipping stays sparse.
    clip = mean + reg_std * np.sqrt(n_cells)
    clipped = X.copy()
    clipped.data = np.minimum(clipped.data, clip[clipped.indices])
    total = np.asarray(clipped.sum(axis=0)).ravel()
    total_sq = np.asarray(clipped.multiply(clipped).sum(axis=0)).ravel()
    norm_var = (n_cells * mean**2 + total_sq - 2 * total * mean) / ((n_cells - 1) * reg_std**2)
    norm_var[~varying] = -np.inf
    top = np.argsort(-norm_var, kind="stable")[:n_top_genes]
    mask = np.zeros(n_genes, dtype=bool)
    mask[top] = True
    return mask
