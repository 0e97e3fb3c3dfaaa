"""How well imputed accessibility matches observed counts: per cell and per peak.

Used by ``benchmarks/eval_imputation.py`` and ``benchmarks/eval_batches.py`` to compare
imputations of held-out cells (evaluation only: not part of the package). Each metric works
in blocks of rows, so a sparse ``observed`` is densified one block at a time.
"""

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

# Entries of one dense block of observed counts: ~32 MB in float64.
BLOCK_ENTRIES = 1 << 22


def per_cell_pearson(observed, predicted):
    """Pearson r between each cell's observed counts and its prediction, over peaks.

    Parameters
    ----------
    observed : {ndarray, sparse matrix} of shape (n_cells, n_peaks)
    predicted : ndarray of shape (n_cells, n_peaks)

    Returns
    -------
    ndarray of shape (n_cells,)
        NaN where either row is constant.
    """
    return np.concatenate(
        [_row_pearson(obs, pred) for obs, pred in _row_blocks(observed, predicted)]
    )


def per_cell_auroc(observed, predicted):
    """AUROC of each cell's prediction for which of its peaks have counts (observed > 0).

    Returns
    -------
    ndarray of shape (n_cells,)
        NaN for cells whose peaks are all open or all closed.
    """
    return np.concatenate(
        [_row_auroc(obs > 0, pred) for obs, pred in _row_blocks(observed, predicted)]
    )


def per_peak_auroc(observed, predicted):
    """AUROC of each peak's predictions across cells for which cells have counts in it.

    Returns
    -------
    ndarray of shape (n_peaks,)
        NaN for peaks open in all or none of the cells.
    """
    observed = observed.T.tocsr() if sp.issparse(observed) else np.asarray(observed).T
    return per_cell_auroc(observed, np.asarray(predicted).T)


def _row_blocks(observed, predicted):
    predicted = np.asarray(predicted)
    if observed.shape != predicted.shape:
        raise ValueError(
            f"observed and predicted differ in shape: {observed.shape} and {predicted.shape}."
        )
    rows = max(1, BLOCK_ENTRIES // max(observed.shape[1], 1))
    for start in range(0, observed.shape[0], rows):
        obs = observed[start : start + rows]
        obs = obs.toarray() if sp.issparse(obs) else np.asarray(obs)
        yield obs.astype(np.float64), predicted[start : start + rows].astype(np.float64)


def _row_pearson(a, b):
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    denominator = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(1) / denominator, np.nan)


def _row_auroc(labels, scores):
    """Mann-Whitney AUROC per row; ties get average ranks, as in roc_auc_score."""
    ranks = rankdata(scores, axis=1)
    n_pos = labels.sum(1)
    n_neg = labels.shape[1] - n_pos
    u = (ranks * labels).sum(1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
