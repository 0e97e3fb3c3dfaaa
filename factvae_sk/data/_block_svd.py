"""Randomized truncated SVD of a matrix seen only as blocks of rows (Halko et al. 2011).

The matrix ``A`` (n x p) is never held: each pass calls ``blocks()``, which yields
``(start, rows)`` with ``rows`` a transformed block (sparse or dense) of consecutive rows.
Optional centering subtracts a column-mean vector implicitly, as PCA of sparse data needs.
Each product ``A @ M`` or ``A.T @ M`` is one pass; the whole fit is
``2 * n_iter + 2`` passes. Memory: n x k and p x k dense factors, one block at a time.
"""

import numpy as np
from scipy import linalg
from sklearn.utils import check_random_state


def _times(blocks, n_rows, right, center):
    """``(A - 1 center) @ right``, shape (n_rows, k)."""
    out = np.empty((n_rows, right.shape[1]), dtype=np.float64)
    shift = 0.0 if center is None else center @ right
    for start, rows in blocks():
        out[start : start + rows.shape[0]] = rows @ right - shift
    return out


def _transpose_times(blocks, n_columns, left, center):
    """``(A - 1 center).T @ left``, shape (n_columns, k)."""
    out = np.zeros((n_columns, left.shape[1]), dtype=np.float64)
    for start, rows in blocks():
        out += rows.T @ left[start : start + rows.shape[0]]
    if center is not None:
        out -= np.outer(center, left.sum(axis=0))
    return out


def randomized_svd_blocks(
    blocks, shape, n_components, *, center=None, n_oversamples=10, n_iter=5, random_state=None
):
    """Truncated SVD ``U S Vt`` of ``A - 1 center`` from passes over row blocks.

    Parameters
    ----------
    blocks : callable
        ``blocks()`` yields ``(start, rows)`` covering the rows of ``A`` in order.
    shape : tuple of int
        ``(n, p)``, the shape of ``A``.
    n_components : int
    center : ndarray of shape (p,), default=None
        Column vector subtracted from every row (PCA's centering), never materialized.
    n_oversamples, n_iter : int, default=10, 5
        Extra random directions and power iterations (scikit-learn's defaults for
        ``TruncatedSVD``); QR re-orthonormalizes after every product.
    random_state : int, RandomState or None

    Returns
    -------
    U : ndarray of shape (n, n_components)
    S : ndarray of shape (n_components,)
    Vt : ndarray of shape (n_components, p)

    Examples
    --------
    >>> import numpy as np
    >>> from factvae_sk.data._block_svd import randomized_svd_blocks
    >>> A = np.random.default_rng(0).normal(size=(40, 6))
    >>> blocks = lambda: ((s, A[s : s + 16]) for s in range(0, 40, 16))
    >>> U, S, Vt = randomized_svd_blocks(blocks, A.shape, 3, random_state=0)
    >>> bool(np.allclose(S, np.linalg.svd(A, compute_uv=False)[:3]))
    True
    """
    n, p = shape
    k = min(n_components + n_oversamples, n, p)
    rng = check_random_state(random_state)
    Q = _times(blocks, n, rng.normal(size=(p, k)), center)
    Q, _ = linalg.qr(Q, mode="economic")
    for _ in range(n_iter):
        P, _ = linalg.qr(_transpose_times(blocks, p, Q, center), mode="economic")
        Q, _ = linalg.qr(_times(blocks, n, P, center), mode="economic")
    B_t = _transpose_times(blocks, p, Q, center)  # (Q^T A)^T, p x k
    U_b, S, Vt = linalg.svd(B_t.T, full_matrices=False)
    U = Q @ U_b
    # The same sign convention as scikit-learn's randomized SVD (svd_flip on U).
    signs = np.sign(U[np.abs(U).argmax(axis=0), np.arange(U.shape[1])])
    signs[signs == 0] = 1.0
    U, Vt = U * signs, Vt * signs[:, None]
    return U[:, :n_components], S[:n_components], Vt[:n_components]
