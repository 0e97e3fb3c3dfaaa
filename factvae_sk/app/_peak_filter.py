"""Peaks that carry no information: detected in too few cells to tell cells apart.

A peak with counts in one or two cells of thousands adds a decoder column and prior pairs but
no signal; MultiVI's and Signac's tutorials drop such peaks before fitting (features in fewer
than 1% of cells; peaks in fewer than 10 cells). The job drops peaks detected in fewer than
``MIN_PEAK_CELLS`` cells; the threshold was measured on both bundled datasets
(benchmarks/eval_peak_filter.py, benchmarks/README.md "Dropping rare peaks").
"""

import numpy as np

# A count of cells, not a fraction: 1% of the cells (MultiVI's tutorial) would drop 9982 of
# the sparse kidney's 9998 peaks, and Signac's 10 cells 7102 of them. Below 3 cells, a peak is
# seen in one or two cells: none of the cell lines' peaks (they keep peaks seen in 5 cells or
# more), 460 of the kidney's (4.6%), where a short fit's KMeans ARI stayed as it was (RNA 0.393
# -> 0.411, joint 0.378 -> 0.367; one seed, within its noise).
MIN_PEAK_CELLS = 3


def informative_peaks(atac, min_cells):
    """Which peaks have counts in at least ``min_cells`` cells (a boolean mask over columns).

    Parameters
    ----------
    atac : sparse matrix of shape (n_cells, n_peaks)
        ATAC counts.
    min_cells : int
        Smallest number of cells with counts a kept peak has; 0 keeps every peak.

    Returns
    -------
    keep : ndarray of bool, shape (n_peaks,)
    """
    detected = np.asarray((atac > 0).sum(axis=0)).ravel()
    return detected >= min_cells
