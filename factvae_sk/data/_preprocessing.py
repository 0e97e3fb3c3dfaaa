"""Encoder inputs: low-dimensional views of the counts, fitted in ``fit`` and re-applied later.

Both transformers accept sparse counts and never densify them: RNA scaling divides by the
gene's standard deviation and leaves centering to PCA's implicit centering, which gives
exactly the principal components of the scaled data; TF-IDF keeps the sparsity pattern.

Counts on disk (:class:`~factvae_sk.data._row_blocks.RowBlockCounts`) are fitted in passes over
blocks of rows instead: statistics from a counting pass, then a randomized SVD from block
products (:mod:`factvae_sk.data._block_svd`). The fitted attributes are the same scikit-learn
objects, so transforming, saving and loading do not depend on how the fit was read.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.preprocessing import StandardScaler, normalize
from sklearn.utils.sparsefuncs import mean_variance_axis
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l1

from ._block_svd import randomized_svd_blocks
from ._row_blocks import RowBlockCounts
from ._threaded_svd import default_threads, randomized_svd, row_split_product


def _n_components(requested, shape):
    """Cap the component count for small inputs (no more than samples - 1 or features)."""
    n_samples, n_features = shape
    return max(1, min(requested, n_samples - 1, n_features))


def _as_float_csr(X):
    return sp.csr_matrix(X, dtype=np.float64, copy=True)


def _reverse_within_rows(X, block_entries=1 << 22):
    """Reverse the order of each row's entries of the CSR matrix ``X``, in place, a block of
    rows at a time (scratch memory: one block)."""
    indptr = X.indptr
    bounds = np.unique(np.searchsorted(indptr, np.arange(0, indptr[-1], block_entries)))
    for lo, hi in zip(bounds, np.r_[bounds[1:], len(indptr) - 1], strict=True):
        first, last = indptr[lo], indptr[hi]
        starts, ends = indptr[lo:hi] - first, indptr[lo + 1 : hi + 1] - first
        order = np.repeat(starts + ends - 1, ends - starts) - np.arange(last - first)
        X.data[first:last] = X.data[first:last][order]
        X.indices[first:last] = X.indices[first:last][order]
    X.has_sorted_indices = False


def _column_moments(blocks, n_features):
    """Per-column sum and sum of squares over ``blocks()`` (float64)."""
    total = np.zeros(n_features)
    squares = np.zeros(n_features)
    for _, rows in blocks():
        total += np.asarray(rows.sum(axis=0)).ravel()
        squares += np.asarray(rows.multiply(rows).sum(axis=0)).ravel()
    return total, squares


def _block_transform(transform, X):
    """``transform`` applied to each block of rows of a RowBlockCounts, stacked."""
    parts = [transform(rows) for _, rows in X.blocks()]
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, 0), np.float32)


class RNAEncoderInput(TransformerMixin, BaseEstimator):
    """Normalize each cell to ``target_sum`` counts, log1p, scale genes, PCA.

    Parameters
    ----------
    n_components : int, default=100
        Principal components kept (capped at ``n_samples - 1`` and ``n_features``).
    target_sum : float, default=1e4
    random_state : int or None
        Seeds ARPACK's start vector.

    Attributes
    ----------
    scaler_ : StandardScaler
        Per-gene scale of the log-normalized data.
    pca_ : PCA
    """

    def __init__(self, n_components=100, target_sum=1e4, random_state=None):
        self.n_components = n_components
        self.target_sum = target_sum
        self.random_state = random_state

    def _log_normalize(self, X):
        X = normalize(_as_float_csr(X), norm="l1") * self.target_sum
        X.data = np.log1p(X.data)
        return X

    def fit(self, X, y=None):
        if isinstance(X, RowBlockCounts):
            return self._fit_blocks(X)
        X = self._log_normalize(X)
        self.scaler_ = StandardScaler(with_mean=False).fit(X)
        X = self.scaler_.transform(X)
        n_components = _n_components(self.n_components, X.shape)
        # ARPACK needs k < min(shape); tiny inputs use the exact covariance solver instead.
        solver = "arpack" if n_components < min(X.shape) else "covariance_eigh"
        self.pca_ = PCA(n_components, svd_solver=solver, random_state=self.random_state).fit(X)
        return self

    def transform(self, X):
        if isinstance(X, RowBlockCounts):
            return _block_transform(self.transform, X)
        X = self.scaler_.transform(self._log_normalize(X))
        return self.pca_.transform(X).astype(np.float32)

    def _fit_blocks(self, X):
        """The same transformer from passes over row blocks: one pass for the genes'
        moments, then a randomized SVD of the centred, scaled data (``2 * 7 + 2`` passes)."""
        n_cells, n_genes = X.shape

        def log_normalized():
            return ((start, self._log_normalize(rows)) for start, rows in X.blocks())

        total, squares = _column_moments(log_normalized, n_genes)
        mean = total / n_cells
        var = np.maximum(squares / n_cells - mean**2, 0.0)
        scaler = StandardScaler(with_mean=False)
        scale = np.sqrt(var)
        scaler.n_features_in_, scaler.n_samples_seen_ = n_genes, n_cells
        scaler.mean_, scaler.var_ = mean, var
        scaler.scale_ = np.where(scale > np.finfo(np.float64).eps * 10 * np.abs(mean), scale, 1.0)
        self.scaler_ = scaler

        def scaled():
            return ((start, scaler.transform(rows)) for start, rows in log_normalized())

        center = mean / scaler.scale_
        n_components = _n_components(self.n_components, X.shape)
        # More power iterations and directions than LSI's: the in-memory PCA is ARPACK's
        # exact one, and genes are few, so the extra passes are cheap.
        U, S, Vt = randomized_svd_blocks(
            scaled,
            X.shape,
            n_components,
            center=center,
            n_oversamples=20,
            n_iter=7,
            random_state=self.random_state,
        )
        pca = PCA(n_components, svd_solver="randomized", random_state=self.random_state)
        explained = S**2 / max(1, n_cells - 1)
        total_variance = float((var / scaler.scale_**2).sum() * n_cells / max(1, n_cells - 1))
        pca.n_features_in_, pca.n_samples_, pca._fit_svd_solver = n_genes, n_cells, "randomized"
        pca.mean_, pca.components_, pca.n_components_ = center, Vt, n_components
        pca.explained_variance_, pca.singular_values_ = explained, S
        pca.explained_variance_ratio_ = explained / total_variance
        rest = min(n_cells, n_genes) - n_components
        pca.noise_variance_ = np.float64(
            max(0.0, total_variance - explained.sum()) / rest if rest > 0 else 0.0
        )
        self.pca_ = pca
        return self


class ATACEncoderInput(TransformerMixin, BaseEstimator):
    """TF-IDF, truncated SVD (LSI), then each cell's components standardized.

    TF-IDF follows the common LSI recipe: counts times the inverse document frequency
    ``n_cells / peak_total`` (fitted), each cell scaled to sum 1, times ``scale_factor``,
    log1p. The cell's coordinates are the left singular vectors (``X V / S``), so new cells
    are projected the same way as the training cells.

    Parameters
    ----------
    n_components : int, default=100
    scale_factor : float, default=1e4
    random_state : int or None
        Seeds the randomized SVD.

    Attributes
    ----------
    idf_ : ndarray of shape (n_peaks,)
    svd_ : TruncatedSVD
    """

    def __init__(self, n_components=100, scale_factor=1e4, random_state=None):
        self.n_components = n_components
        self.scale_factor = scale_factor
        self.random_state = random_state

    def _tfidf(self, X):
        X = _as_float_csr(X)
        if not X.has_canonical_format:
            X = normalize(X @ sp.diags(self.idf_), norm="l1") * self.scale_factor
            X.data = np.log1p(X.data)
            return X
        # The same numbers in place, in one copy of the counts instead of three at a time
        # (gigabytes at a 10x Multiome's size): the product with the diagonal drops zeros and
        # lists each row's entries in reverse, which the sums over a row then follow.
        X.data *= self.idf_[X.indices]
        X.eliminate_zeros()
        _reverse_within_rows(X)
        inplace_csr_row_normalize_l1(X)
        X.data *= self.scale_factor
        np.log1p(X.data, out=X.data)
        return X

    def fit(self, X, y=None):
        if isinstance(X, RowBlockCounts):
            return self._fit_blocks(X)
        peak_totals = np.asarray(X.sum(axis=0), dtype=np.float64).ravel()
        # Peaks never seen in training carry no information: weight them 0, not infinity.
        self.idf_ = np.divide(
            X.shape[0], peak_totals, out=np.zeros_like(peak_totals), where=peak_totals > 0
        )
        X = self._tfidf(X)
        n_components = _n_components(self.n_components, X.shape)
        # TruncatedSVD(algorithm="randomized")'s fit, the same numbers, its sparse products
        # split between threads (scipy's take one core: minutes at a 10x Multiome's size).
        threads = default_threads()
        _, S, Vt = randomized_svd(
            X, n_components, random_state=self.random_state, n_threads=threads
        )
        svd = TruncatedSVD(n_components, algorithm="randomized", random_state=self.random_state)
        svd.n_features_in_, svd.components_, svd.singular_values_ = X.shape[1], Vt, S
        svd.explained_variance_ = np.var(row_split_product(X, Vt.T, threads), axis=0)
        svd.explained_variance_ratio_ = svd.explained_variance_ / mean_variance_axis(X, 0)[1].sum()
        self.svd_ = svd
        return self

    def _set_idf(self, peak_totals, n_cells):
        # Peaks never seen in training carry no information: weight them 0, not infinity.
        self.idf_ = np.divide(
            n_cells, peak_totals, out=np.zeros_like(peak_totals), where=peak_totals > 0
        )

    def _fit_blocks(self, X):
        """The same transformer from passes over row blocks: a counting pass for the idf,
        one for the TF-IDF variances, then a randomized SVD (``2 * 5 + 2`` passes)."""
        self._set_idf(np.asarray(X.sum(axis=0), dtype=np.float64).ravel(), X.shape[0])

        def tfidf():
            return ((start, self._tfidf(rows)) for start, rows in X.blocks())

        total, squares = _column_moments(tfidf, X.shape[1])
        n_cells = X.shape[0]
        n_components = _n_components(self.n_components, X.shape)
        U, S, Vt = randomized_svd_blocks(
            tfidf, X.shape, n_components, random_state=self.random_state
        )
        svd = TruncatedSVD(n_components, algorithm="randomized", random_state=self.random_state)
        svd.n_features_in_, svd.components_, svd.singular_values_ = X.shape[1], Vt, S
        svd.explained_variance_ = np.var(U * S, axis=0)
        full_variance = float((squares / n_cells - (total / n_cells) ** 2).sum())
        svd.explained_variance_ratio_ = svd.explained_variance_ / full_variance
        self.svd_ = svd
        return self

    def transform(self, X):
        if isinstance(X, RowBlockCounts):
            return _block_transform(self.transform, X)
        singular_values = np.where(self.svd_.singular_values_ > 0, self.svd_.singular_values_, 1.0)
        # TruncatedSVD.transform's product, its rows split between threads.
        tfidf = self._tfidf(X)
        U = row_split_product(tfidf, self.svd_.components_.T, default_threads()) / singular_values
        U = U - U.mean(axis=1, keepdims=True)
        std = U.std(axis=1, ddof=1, keepdims=True) if U.shape[1] > 1 else np.ones((len(U), 1))
        return (U / np.where(std > 0, std, 1.0)).astype(np.float32)
