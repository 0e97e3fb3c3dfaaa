"""scikit-learn's randomized truncated SVD of a sparse matrix, the same numbers, its sparse
products split between threads.

The LSI of the ATAC encoder input (``TruncatedSVD(algorithm="randomized")`` of the TF-IDF)
spends nearly all its time in products of the sparse matrix with thin dense ones, which
scipy computes on one core: at a 10x Multiome's size (90 million non-zeros) minutes. Each
row of such a product is computed by the same scipy kernel over the same entries in the same
order whether the rows are done in one call or in blocks, so splitting the rows between
threads (scipy's kernels release the GIL) changes no bit of the result. A product with the
transpose is a row-split product of the transpose held as CSR, whose rows list their entries
in the order scipy's CSC kernel visits them: one copy of the matrix while the SVD runs.

:func:`randomized_svd` follows ``TruncatedSVD.fit`` step by step (Halko et al.'s range
finder with LU-normalized power iterations, as scikit-learn runs it); ``tests/
test_preprocessing.py`` checks it against ``TruncatedSVD`` bit for bit.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import scipy.sparse as sp
from scipy import linalg
from sklearn.utils import check_random_state
from sklearn.utils.extmath import svd_flip

# Below this many non-zeros per thread a product is done in one call: a thread costs more
# than it saves.
MIN_ENTRIES_PER_THREAD = 1_000_000


def default_threads():
    """The threads torch is allowed (what the user set for the fit), at most the usable CPUs."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(torch.get_num_threads(), usable or 1))


class RowSplitMatrix:
    """A CSR matrix whose products with dense matrices run over blocks of rows in threads.

    Only what the SVD needs: ``shape``, ``dtype``, ``A @ dense``, ``dense @ A`` and ``A.T``
    (the transpose, built once as CSR and kept).

    Parameters
    ----------
    csr : scipy.sparse.csr_matrix
    n_threads : int
    """

    # ``ndarray @ RowSplitMatrix`` then defers to __rmatmul__ instead of making an array of it.
    __array_ufunc__ = None

    def __init__(self, csr, n_threads, transpose=None):
        self.csr = csr
        self.n_threads = n_threads
        self.shape = csr.shape
        self.dtype = csr.dtype
        self._transpose = transpose

    @property
    def T(self):
        if self._transpose is None:
            # CSC rows sorted by row: the order in which scipy's CSC kernel visits them.
            by_column = self.csr.tocsc()
            by_column.sort_indices()
            self._transpose = RowSplitMatrix(by_column.T, self.n_threads, transpose=self)
        return self._transpose

    def __matmul__(self, dense):
        return row_split_product(self.csr, dense, self.n_threads)

    def __rmatmul__(self, dense):
        # What scipy does for ``dense @ sparse``: ``(sparse.T @ dense.T).T``.
        return (self.T @ np.asarray(dense).T).T


def _row_blocks(indptr, n_blocks):
    """Row boundaries splitting the non-zeros into ``n_blocks`` near-equal parts."""
    targets = np.linspace(0, indptr[-1], n_blocks + 1)
    bounds = np.searchsorted(indptr, targets, side="left")
    bounds[0], bounds[-1] = 0, len(indptr) - 1
    return np.unique(bounds)


def row_split_product(csr, dense, n_threads):
    """``csr @ dense`` (``dense`` 2-D), the rows computed in ``n_threads`` blocks at once;
    the same array as scipy's single call."""
    dense = np.ascontiguousarray(dense)
    n_threads = int(min(n_threads, max(1, csr.nnz // MIN_ENTRIES_PER_THREAD)))
    if n_threads <= 1:
        return csr @ dense
    out = np.empty((csr.shape[0], dense.shape[1]), dtype=np.result_type(csr.dtype, dense.dtype))
    bounds = _row_blocks(csr.indptr, n_threads)

    def block(lo, hi):
        first, last = csr.indptr[lo], csr.indptr[hi]
        rows = sp.csr_matrix(
            (csr.data[first:last], csr.indices[first:last], csr.indptr[lo : hi + 1] - first),
            shape=(hi - lo, csr.shape[1]),
        )
        out[lo:hi] = rows @ dense

    with ThreadPoolExecutor(len(bounds) - 1) as pool:
        list(pool.map(block, bounds[:-1], bounds[1:]))
    return out


def _range_finder(A, size, n_iter, random_state):
    """scikit-learn's ``randomized_range_finder`` with its default normalizer: LU between
    the power iterations (none for ``n_iter <= 2``), QR at the end."""
    Q = random_state.normal(size=(A.shape[1], size))
    if A.dtype == np.float32:
        Q = Q.astype(np.float32, copy=False)
    if n_iter <= 2:
        normalizer = lambda x: (x, None)  # noqa: E731
    else:
        normalizer = partial(linalg.lu, permute_l=True, check_finite=False)
    for _ in range(n_iter):
        Q, _ = normalizer(A @ Q)
        Q, _ = normalizer(A.T @ Q)
    Q, _ = linalg.qr(A @ Q, mode="economic", check_finite=False)
    return Q


def randomized_svd(X, n_components, *, n_oversamples=10, n_iter=5, random_state=None, n_threads=1):
    """``U, S, Vt`` of ``TruncatedSVD(n_components, algorithm="randomized")`` fitted on the
    CSR matrix ``X``, its products split between ``n_threads`` threads.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix of shape (n, p)
    n_components : int
    n_oversamples, n_iter : int, default=10, 5
        ``TruncatedSVD``'s defaults.
    random_state : int, RandomState or None
    n_threads : int, default=1

    Returns
    -------
    U : ndarray of shape (n, n_components)
    S : ndarray of shape (n_components,)
    Vt : ndarray of shape (n_components, p)

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from sklearn.decomposition import TruncatedSVD
    >>> from factvae_sk.data._threaded_svd import randomized_svd
    >>> X = sp.random(60, 40, density=0.2, format="csr", random_state=0)
    >>> U, S, Vt = randomized_svd(X, 5, random_state=0, n_threads=2)
    >>> svd = TruncatedSVD(5, random_state=0).fit(X)
    >>> bool(np.array_equal(Vt, svd.components_) and np.array_equal(S, svd.singular_values_))
    True
    """
    random_state = check_random_state(random_state)
    M = RowSplitMatrix(sp.csr_matrix(X), n_threads)
    n_samples, n_features = M.shape
    transpose = n_samples < n_features
    if transpose:
        M = M.T
    Q = _range_finder(M, n_components + n_oversamples, n_iter, random_state)
    B = Q.T @ M
    Uhat, s, Vt = linalg.svd(B, full_matrices=False, lapack_driver="gesdd")
    del B
    U = Q @ Uhat
    if transpose:
        U, s, Vt = Vt[:n_components].T, s[:n_components], U[:, :n_components].T
    else:
        U, s, Vt = U[:, :n_components], s[:n_components], Vt[:n_components]
    U, Vt = svd_flip(U, Vt, u_based_decision=False)  # TruncatedSVD's sign convention
    return U, s, Vt
