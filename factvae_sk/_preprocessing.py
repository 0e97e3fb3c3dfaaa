"""Encoder inputs: low-dimensional views of the counts, fitted in ``fit`` and re-applied later.

Both transformers accept sparse counts and never densify them: RNA scaling divides by the
gene's standard deviation and leaves centering to PCA's implicit centering, which gives
exactly the principal components of the scaled data; TF-IDF keeps the sparsity pattern.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.preprocessing import StandardScaler, normalize


def _n_components(requested, shape):
    """Cap the component count for small inputs (no more than samples - 1 or features)."""
    n_samples, n_features = shape
    return max(1, min(requested, n_samples - 1, n_features))


def _as_float_csr(X):
    return sp.csr_matrix(X, dtype=np.float64, copy=True)


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
        X = self._log_normalize(X)
        self.scaler_ = StandardScaler(with_mean=False).fit(X)
        X = self.scaler_.transform(X)
        n_components = _n_components(self.n_components, X.shape)
        # ARPACK needs k < min(shape); tiny inputs use the exact covariance solver instead.
        solver = "arpack" if n_components < min(X.shape) else "covariance_eigh"
        self.pca_ = PCA(n_components, svd_solver=solver, random_state=self.random_state).fit(X)
        return self

    def transform(self, X):
        X = self.scaler_.transform(self._log_normalize(X))
        return self.pca_.transform(X).astype(np.float32)


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
        X = normalize(_as_float_csr(X) @ sp.diags(self.idf_), norm="l1") * self.scale_factor
        X.data = np.log1p(X.data)
        return X

    def fit(self, X, y=None):
        peak_totals = np.asarray(X.sum(axis=0), dtype=np.float64).ravel()
        # Peaks never seen in training carry no information: weight them 0, not infinity.
        self.idf_ = np.divide(
            X.shape[0], peak_totals, out=np.zeros_like(peak_totals), where=peak_totals > 0
        )
        X = self._tfidf(X)
        n_components = _n_components(self.n_components, X.shape)
        self.svd_ = TruncatedSVD(
            n_components, algorithm="randomized", random_state=self.random_state
        ).fit(X)
        return self

    def transform(self, X):
        singular_values = np.where(self.svd_.singular_values_ > 0, self.svd_.singular_values_, 1.0)
        U = self.svd_.transform(self._tfidf(X)) / singular_values
        U = U - U.mean(axis=1, keepdims=True)
        std = U.std(axis=1, ddof=1, keepdims=True) if U.shape[1] > 1 else np.ones((len(U), 1))
        return (U / np.where(std > 0, std, 1.0)).astype(np.float32)
