"""Input checks with errors that name the problem. Nothing here modifies the caller's data."""

import os
import re
import sys
import warnings
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.utils.validation import check_array, check_non_negative

from ..exceptions import FactVAEWarning

SPARSE_FORMATS = ("csr", "csc", "coo")

# numpy's messages when an object or text entry is not a number.
_NOT_A_NUMBER = re.compile(r"could not convert|argument must be a string|not a number")


class GenePeakPrior:
    """A gene x peak prior that cross-validation tools will not split by rows.

    scikit-learn's ``GridSearchCV``, ``cross_validate`` and ``cross_val_score`` slice every
    fit parameter whose length equals the number of cells. A prior is per gene, not per
    cell, but when the number of genes happens to equal the number of training cells a
    plain matrix would be cut. This wrapper has no length or shape, so it always reaches
    :meth:`FactVAE.fit` whole.

    Parameters
    ----------
    matrix : array-like, sparse matrix or DataFrame of shape (n_genes, n_peaks)

    Examples
    --------
    >>> import numpy as np
    >>> from factvae_sk import GenePeakPrior
    >>> prior = GenePeakPrior(np.eye(3))
    >>> prior.matrix.shape
    (3, 3)
    """

    def __init__(self, matrix):
        self.matrix = matrix

    def __repr__(self):
        shape = getattr(self.matrix, "shape", None)
        return f"GenePeakPrior(shape={shape})"


def feature_names(X):
    """Column names of a DataFrame as an object array, or None."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    return np.asarray([str(c) for c in columns], dtype=object)


@contextmanager
def naming_errors(what):
    """Put the argument's name in front of scikit-learn's input errors (``what: ...``).

    A matrix whose entries are not numbers (text, dicts in an object array) is a
    ``TypeError``; every other input error stays a ``ValueError``.
    """
    try:
        yield
    except (ValueError, TypeError) as error:
        if type(error) not in (ValueError, TypeError):  # e.g. InvalidParameterError
            raise
        message = str(error)
        if _NOT_A_NUMBER.search(message):
            raise TypeError(
                f"{what} must hold numeric counts, not text or objects: {message}"
            ) from error
        if message.startswith(what):
            raise
        raise type(error)(f"{what}: {message}") from error


def reject_text(X, what):
    """Counts given as strings (a text array) are refused rather than parsed."""
    dtype = getattr(X, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind in "USV":
        raise TypeError(
            f"{what} must hold numeric counts, got an array of dtype {dtype} (text). "
            "Convert it to numbers first, e.g. X.astype(np.float32)."
        )


def check_counts(
    X, *, what, estimator_name="FactVAE", n_features=None, ensure_min_samples=2, observed=None
):
    """Validate a cells x features count matrix; return it as float32 CSR.

    Checks: numeric, 2-D, finite, non-negative, at least ``ensure_min_samples`` cells (two
    to fit, one to transform) and two features, every cell with a positive total (its log
    library size is part of the model), and, when given, the feature count. Non-integer
    values get a :class:`~factvae_sk.exceptions.FactVAEWarning`. ``what`` names the input
    in messages (e.g. ``"X_atac"``). ``observed``: boolean mask of the cells whose row is a
    measurement (rows standing in for a missing modality may be empty).
    """
    reject_text(X, what)
    with naming_errors(what):
        X = check_array(
            X,
            accept_sparse=SPARSE_FORMATS,
            dtype=(np.float32, np.float64),
            ensure_min_samples=ensure_min_samples,
            # LSI needs two peaks, and a softmax over one feature has nothing to learn. (After
            # fit, n_features is given and a wrong count gets its own message below.)
            ensure_min_features=2 if n_features is None else 1,
            input_name=what,
            estimator=estimator_name,
        )
    return finish_counts(
        X, what=what, estimator_name=estimator_name, n_features=n_features, observed=observed
    )


def finish_counts(X, *, what, estimator_name="FactVAE", n_features=None, observed=None):
    """The count-specific checks on an array already passed through ``check_array``.

    Returns a new float32 CSR matrix: the caller's array is never written to. Only the
    ``observed`` rows (all by default) must have a positive total.
    """
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{what} has {X.shape[1]} features, but {estimator_name} was fitted with "
            f"{n_features} {what} features."
        )
    check_non_negative(X, f"{estimator_name} ({what})")
    # float32 holds integer counts exactly up to 2**24 and halves the memory of float64.
    X = sp.csr_matrix(X, dtype=np.float32)
    _warn_non_integer(X, what)
    totals = np.asarray(X.sum(axis=1)).ravel()
    empty = np.flatnonzero((totals <= 0) if observed is None else (totals <= 0) & observed)
    if len(empty):
        first = ", ".join(str(i) for i in empty[:5])
        raise ValueError(
            f"{what} has {len(empty)} cell(s) with zero total counts (first rows: {first}"
            f"{', ...' if len(empty) > 5 else ''}). {estimator_name} models each cell's log "
            "library size, and log(0) is undefined: remove these cells first, e.g. keep the "
            "rows where X.sum(axis=1) > 0 in both modalities."
        )
    return X


def _warn_non_integer(X, what):
    """Warn once when a count matrix (CSR) has non-integer values; checks non-zeros only."""
    fractional = X.data != np.floor(X.data)
    if fractional.any():
        warnings.warn(
            f"{what} has {np.count_nonzero(fractional)} non-integer value(s), e.g. "
            f"{X.data[fractional][0]:g}. FactVAE's likelihoods are for counts: pass the raw "
            "counts, not normalized, scaled or log-transformed data.",
            FactVAEWarning,
            stacklevel=_user_stacklevel(),
        )


def _user_stacklevel():
    """``stacklevel`` of the first frame outside factvae_sk and scikit-learn's wrappers, so
    a warning points at the user's call whatever path led to the check."""
    package = os.path.dirname(os.path.dirname(__file__))  # factvae_sk/, above data/
    inside = (package, os.path.dirname(sklearn.__file__))
    frame, level = sys._getframe(1), 1  # the function calling warnings.warn
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def check_paired(X_rna, X_atac):
    """Both modalities must describe the same cells."""
    if X_rna.shape[0] != X_atac.shape[0]:
        raise ValueError(
            f"X_rna and X_atac must have the same cells (rows): X_rna has {X_rna.shape[0]}, "
            f"X_atac has {X_atac.shape[0]}."
        )


def check_prior(prior, n_genes, n_peaks, n_cells=None):
    """Return the prior's non-zero entries as ``(rows, cols, values)`` arrays.

    Accepts a :class:`GenePeakPrior`, a scipy sparse matrix, an ndarray or a DataFrame of
    shape (n_genes, n_peaks). ``n_cells``, the number of training cells, lets the error
    say so when a cross-validation tool has cut the prior by cells.
    """
    wrapped = isinstance(prior, GenePeakPrior)
    if wrapped:
        prior = prior.matrix
    if _is_sparse_frame(prior):
        prior = prior.sparse.to_coo()
    reject_text(prior, "prior")
    with naming_errors("prior"):
        matrix = check_array(
            prior, accept_sparse=SPARSE_FORMATS, dtype=np.float32, input_name="prior"
        )
    if not wrapped and matrix.shape == (n_cells, n_peaks) and n_cells != n_genes:
        raise ValueError(
            f"prior has {n_cells} rows, as many as the training cells, but needs one per "
            f"gene ({n_genes}): it was probably split by cells by a cross-validation tool "
            "(GridSearchCV, cross_validate, ...), which splits every fit parameter with one "
            "row per cell. Pass it wrapped as factvae_sk.GenePeakPrior(prior)."
        )
    if matrix.shape != (n_genes, n_peaks):
        raise ValueError(
            f"prior must have shape (n_genes, n_peaks) = ({n_genes}, {n_peaks}), got "
            f"{matrix.shape}. If it came through GridSearchCV or cross_validate, which split "
            "fit parameters with one entry per cell, pass it as GenePeakPrior(prior)."
        )
    coo = sp.coo_matrix(matrix)
    negative = np.count_nonzero(coo.data < 0)
    if negative:
        raise ValueError(
            f"prior has {negative} negative entries; its entries are gene-peak link weights, "
            "which must be >= 0 (0 or absent: no link)."
        )
    keep = coo.data != 0
    return coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64), coo.data[keep]


def warn_empty_prior():
    """A prior without a link turns the prior term off: say so, since it is rarely meant."""
    warnings.warn(
        "prior has no non-zero entry: it links no gene to any peak, so the prior term is "
        "off (as with prior=None) and the embeddings are not tied to known regulation. If it "
        "was built from coordinates, the gene and peak tables probably do not match "
        "(chromosome names, genome assembly): build_gene_peak_prior says why. Pass "
        "prior=None to fit without a prior on purpose.",
        FactVAEWarning,
        stacklevel=_user_stacklevel(),
    )


def _is_sparse_frame(X):
    """A DataFrame whose columns are all pandas sparse (densifying it could be huge)."""
    dtypes = getattr(X, "dtypes", None)
    return (
        hasattr(X, "columns")
        and len(dtypes) > 0
        and all(str(dtype).startswith("Sparse") for dtype in dtypes)
    )
