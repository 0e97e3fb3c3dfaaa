"""Count matrices read a block of rows at a time (e.g. a backed ``.h5ad`` on disk).

:class:`RowBlockCounts` is what ``FactVAE.fit`` accepts in place of an in-memory matrix
when the counts do not fit in memory. It offers the few operations fitting needs, each a
pass over blocks of rows or a read of a few rows: the input checks, row and column sums,
the rows of one training batch, and the blocks themselves for the preprocessing's passes.
Memory is one block (a bounded number of non-zeros) plus per-cell and per-feature vectors.
"""

import warnings

import numpy as np
import scipy.sparse as sp

from ..exceptions import FactVAEWarning

# Non-zeros per block: a block of CSR rows is at most ~100 MB as float64 after transforms.
BLOCK_NONZEROS = 2**23


def _stored_nonzeros(matrix):
    """Total stored entries of a CSR matrix or of anndata's on-disk CSR dataset."""
    if sp.issparse(matrix):
        return int(matrix.nnz)
    group = getattr(matrix, "group", None)
    if group is not None and "indptr" in group:
        return int(group["indptr"][-1])
    return int(np.prod(matrix.shape))  # dense: every entry


class RowBlockCounts:
    """A cells x features count matrix read in blocks of rows.

    Parameters
    ----------
    matrix : anndata on-disk CSR dataset, scipy sparse matrix or ndarray
        Anything that returns rows as a CSR matrix or an array for ``matrix[start:stop]`` and
        ``matrix[sorted_positions]``: anndata's ``sparse_dataset`` of a ``.h5ad`` group (see
        :func:`factvae_sk.anndata.backed_counts`), or an in-memory matrix (tests).
    name : str, default="counts"
        Names the source in messages.
    block_rows : int, default=None
        Rows per block; by default about ``BLOCK_NONZEROS`` stored entries per block.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from factvae_sk.data._row_blocks import RowBlockCounts
    >>> counts = RowBlockCounts(sp.csr_matrix([[1.0, 0.0], [2.0, 3.0]]), block_rows=1)
    >>> counts.sum(axis=0)
    array([[3., 3.]])
    >>> counts[[1, 0]].toarray()
    array([[2., 3.],
           [1., 0.]], dtype=float32)
    """

    def __init__(self, matrix, name="counts", block_rows=None):
        if len(matrix.shape) != 2:
            raise ValueError(f"{name}: counts must be 2-D, got shape {matrix.shape}.")
        self.matrix = matrix
        self.name = name
        self.shape = tuple(int(n) for n in matrix.shape)
        if block_rows is None:
            per_row = max(1.0, _stored_nonzeros(matrix) / max(1, self.shape[0]))
            block_rows = int(max(1, BLOCK_NONZEROS // per_row))
        self.block_rows = int(block_rows)

    ndim = 2
    dtype = np.dtype(np.float32)

    def __repr__(self):
        return f"RowBlockCounts({self.name!r}, shape={self.shape})"

    def __len__(self):
        return self.shape[0]

    @staticmethod
    def _as_csr(rows):
        rows = sp.csr_matrix(rows, dtype=np.float32)
        rows.sum_duplicates()
        return rows

    def rows(self, index):
        """Rows ``index`` (any order, repeats allowed) as float32 CSR.

        On-disk datasets are read at sorted unique positions, then put in the asked order.
        """
        index = np.asarray(index, dtype=np.int64).ravel()
        if index.size and (index.min() < -self.shape[0] or index.max() >= self.shape[0]):
            raise IndexError(f"{self.name}: row index out of range for {self.shape[0]} rows.")
        index = index % max(1, self.shape[0])
        unique, inverse = np.unique(index, return_inverse=True)
        if unique.size == 0:
            return sp.csr_matrix((0, self.shape[1]), dtype=np.float32)
        rows = self._as_csr(self.matrix[unique])
        return rows if np.array_equal(unique, index) else rows[inverse]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.rows(np.arange(self.shape[0])[index])
        if isinstance(index, tuple):
            raise IndexError("RowBlockCounts selects rows only.")
        return self.rows(np.atleast_1d(index))

    def blocks(self):
        """Yield ``(start, rows)`` over consecutive blocks of rows, rows as float32 CSR."""
        for start in range(0, self.shape[0], self.block_rows):
            stop = min(start + self.block_rows, self.shape[0])
            yield start, self._as_csr(self.matrix[start:stop])

    def sum(self, axis=None):
        """Row (``axis=1``, shape (n, 1)) or column (``axis=0``, shape (1, p)) sums, in
        float64, as scipy's ``sum`` shapes them; ``None``: the total."""
        if axis == 1:
            parts = [np.asarray(rows.sum(axis=1), dtype=np.float64) for _, rows in self.blocks()]
            return np.concatenate(parts, axis=0) if parts else np.zeros((0, 1))
        total = np.zeros((1, self.shape[1]), dtype=np.float64)
        for _, rows in self.blocks():
            total += np.asarray(rows.sum(axis=0), dtype=np.float64)
        return total if axis == 0 else float(total.sum())

    def mean(self, axis=0):
        """Column means (``axis=0``), shape (1, p)."""
        if axis != 0:
            raise ValueError("RowBlockCounts.mean supports axis=0 only.")
        return self.sum(axis=0) / max(1, self.shape[0])

    def check(self, what, n_features=None, ensure_min_samples=2):
        """The estimator's count checks in one pass: finite, >= 0, integer (else a warning),
        every cell with a positive total, two features (or ``n_features``)."""
        n_cells, n_columns = self.shape
        if n_cells < ensure_min_samples:
            raise ValueError(
                f"{what}: found {n_cells} cell(s) while a minimum of {ensure_min_samples} is "
                "required."
            )
        if n_features is not None and n_columns != n_features:
            raise ValueError(
                f"{what} has {n_columns} features, but FactVAE was fitted with {n_features}."
            )
        if n_features is None and n_columns < 2:
            raise ValueError(f"{what}: found {n_columns} feature(s); at least 2 are required.")
        empty, fractional = [], False
        for start, rows in self.blocks():
            values = rows.data
            if not np.isfinite(values).all():
                raise ValueError(f"{what} ({self.name}) holds NaN or infinite counts.")
            if (values < 0).any():
                raise ValueError(f"{what} ({self.name}) holds negative counts.")
            fractional = fractional or bool((values != np.floor(values)).any())
            totals = np.asarray(rows.sum(axis=1)).ravel()
            empty.extend((start + np.flatnonzero(totals <= 0)).tolist())
        if empty:
            raise ValueError(
                f"{what} ({self.name}) has {len(empty)} cell(s) with zero total counts (first "
                f"rows: {', '.join(map(str, empty[:5]))}); remove those cells."
            )
        if fractional:
            warnings.warn(
                f"{what} ({self.name}) holds non-integer values: FactVAE models raw counts.",
                FactVAEWarning,
                stacklevel=3,
            )
        return self
