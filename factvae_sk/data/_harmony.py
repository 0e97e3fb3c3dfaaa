"""Harmony (Korsunsky et al. 2019) on encoder inputs, with a per-cell mapping.

:func:`fit_harmony` follows the published algorithm (as in harmonypy): cells are
cosine-normalized, clustered by soft k-means whose assignments carry a diversity penalty
``((E + 1) / (O + 1)) ** theta`` (a cluster holding more of a sample than its share is
penalized for that sample), and each cluster removes a ridge regression of the codes on the
sample (the intercept neither penalized nor removed), weighted by the cells' assignments.
Clustering and correction alternate until the objective stops falling.

What it keeps is what a new cell needs (Symphony, Kang et al. 2021): the final centroids and
each cluster's per-sample coefficients. :func:`harmony_correct` maps any cell with them,
alone: it soft-assigns the cell to the centroids from its current corrected code (no
diversity term: that needs a population) and subtracts the assignment-weighted
coefficients of its sample, a few times. The training cells go through the same mapping, so
``transform`` of a training cell gives exactly what the model was trained on, and a cell's
correction never depends on the other cells of the call.

Pure numpy (plus scikit-learn's KMeans for the initial centroids); float64 inside.
"""

import numpy as np
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state

# Rows mapped at once by harmony_correct: bounds its temporaries to a block x clusters.
_BLOCK_ROWS = 8192
# Number of k-means objectives summed on each side of harmonypy's convergence test.
_WINDOW = 3


def _unit_rows(Z):
    """Rows scaled to unit Euclidean norm (all-zero rows stay zero)."""
    norm = np.linalg.norm(Z, axis=1, keepdims=True)
    return Z / np.maximum(norm, 1e-12)


def _soft_assign(Z_cos, centroids, sigma):
    """Soft k-means assignments (n_cells, K) of unit rows to unit centroids, no penalty."""
    scaled = -2.0 * (1.0 - Z_cos @ centroids.T) / sigma
    scaled -= scaled.max(axis=1, keepdims=True)  # stable exp
    R = np.exp(scaled)
    return R / R.sum(axis=1, keepdims=True)


def _ridge_coefficients(Z, R, batch_codes, n_batches, lamb):
    """Per-cluster ridge of ``Z`` on [intercept, one-hot sample], weighted by ``R``.

    The intercept is unpenalized, sample b's coefficient has penalty ``lamb_b`` (a number,
    or an array (K, n_batches) of per-cluster penalties); the normal equations have a
    closed form: with ``n_b``, ``m_b`` the assignment mass and weighted mean of sample b in
    the cluster, ``w_b = n_b / (n_b + lamb_b)`` and ``v_b = lamb_b w_b``, the intercept is
    ``sum_b v_b m_b / sum_b v_b`` and coefficient b is ``w_b (m_b - intercept)``.
    ``lamb = 0`` is the limit of small equal penalties (the coefficients centred on the
    unweighted mean over samples), where the unpenalized system is singular. Returns the
    coefficients (K, n_batches, d); the intercept is dropped: Harmony does not remove it.
    """
    K, d = R.shape[1], Z.shape[1]
    mass = np.zeros((K, n_batches))
    sums = np.zeros((K, n_batches, d))
    for b in range(n_batches):
        cells = batch_codes == b
        mass[:, b] = R[cells].sum(0)
        sums[:, b] = R[cells].T @ Z[cells]
    present = mass > 0
    means = np.where(present[..., None], sums / np.where(present, mass, 1.0)[..., None], 0.0)
    lamb = np.broadcast_to(np.asarray(lamb, dtype=np.float64), mass.shape)
    limit = not lamb.any()  # lamb = 0: the limit of small equal penalties
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(present, mass / (mass + lamb), 0.0)
    weight = np.where(present, 1.0, 0.0) if limit else weight
    votes = weight if limit else lamb * weight
    intercept = (votes[..., None] * means).sum(1) / np.maximum(votes.sum(1), 1e-300)[:, None]
    return weight[..., None] * (means - intercept[:, None, :])


class _SoftKMeans:
    """Harmony's clustering state: assignments ``R``, expected and observed sample mass per
    cluster ``E``, ``O``, and the objective history."""

    def __init__(self, Z_cos, onehot, centroids, sigma, theta, block_size, rng):
        self.onehot, self.sigma, self.theta = onehot, sigma, theta
        self.block_size, self.rng = block_size, rng
        self.share = onehot.mean(0)  # each sample's share of the cells
        self.Z_cos, self.centroids = Z_cos, centroids
        self.R = _soft_assign(Z_cos, centroids, sigma).T.copy()  # (K, n_cells), as harmonypy
        self._masses()
        self.objectives = [self.objective()]

    def _masses(self):
        self.E = np.outer(self.R.sum(1), self.share)
        self.O = self.R @ self.onehot

    def objective(self):
        """k-means error + sigma-weighted entropy + diversity cross-entropy (harmonypy)."""
        distance = 2.0 * (1.0 - self.centroids @ self.Z_cos.T)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = np.where(self.R > 0, self.R * np.log(self.R), 0.0)
        penalty = (self.theta[None, :] * np.log((self.O + 1) / (self.E + 1))) @ self.onehot.T
        sigma = self.sigma[:, None]
        return float(
            (self.R * distance).sum() + (entropy * sigma).sum() + (self.R * sigma * penalty).sum()
        )

    def _update_assignments(self):
        """Recompute R in random blocks of cells, the penalty refreshed between blocks."""
        scaled = -2.0 * (1.0 - self.centroids @ self.Z_cos.T) / self.sigma[:, None]
        scaled = np.exp(scaled - scaled.max(0))
        n_cells = scaled.shape[1]
        order = self.rng.permutation(n_cells)
        for block in np.array_split(order, int(np.ceil(1.0 / self.block_size))):
            if not len(block):
                continue
            phi = self.onehot[block]
            self.E -= np.outer(self.R[:, block].sum(1), self.share)
            self.O -= self.R[:, block] @ phi
            R = scaled[:, block] * (((self.E + 1) / (self.O + 1)) ** self.theta[None, :] @ phi.T)
            self.R[:, block] = R / R.sum(0)
            self.E += np.outer(self.R[:, block].sum(1), self.share)
            self.O += self.R[:, block] @ phi

    def cluster(self, max_iter, tol):
        """Alternate centroid and assignment updates until the windowed objective settles."""
        for i in range(max_iter):
            centroids = self.R @ self.Z_cos
            self.centroids = _unit_rows(centroids)
            self._update_assignments()
            self.objectives.append(self.objective())
            if i > _WINDOW:
                old = sum(self.objectives[-2 - j] for j in range(_WINDOW))
                new = sum(self.objectives[-1 - j] for j in range(_WINDOW))
                if abs(old - new) / abs(old) < tol:
                    break
        return self.objectives[-1]


def fit_harmony(
    Z,
    batch_codes,
    n_batches,
    *,
    n_clusters=None,
    theta=2.0,
    sigma=0.1,
    lamb=1.0,
    alpha=0.2,
    max_iter=10,
    max_iter_cluster=20,
    block_size=0.05,
    tol=1e-4,
    tol_cluster=1e-5,
    random_state=None,
):
    """Fit Harmony on cell coordinates; return the state :func:`harmony_correct` maps with.

    Parameters
    ----------
    Z : ndarray of shape (n_cells, n_components)
        Cell coordinates (e.g. PCA or LSI), one row per cell.
    batch_codes : ndarray of shape (n_cells,)
        Each cell's sample, as an integer in ``[0, n_batches)``.
    n_batches : int
        Number of samples (codes not present get zero coefficients).
    n_clusters : int, default=None
        Number of soft clusters; ``None`` takes ``min(100, round(n_cells / 30))`` (at least
        1), as harmonypy.
    theta : float, default=2.0
        Diversity penalty: how strongly a cluster is pushed to hold every sample in its
        share of the cells. 0 is plain soft k-means.
    sigma : float, default=0.1
        Width of the soft k-means kernel (entropy weight): larger is softer.
    lamb : float or None, default=1.0
        Ridge penalty of the per-sample coefficients (the intercept is not penalized);
        0 takes the limit of small penalties. None estimates it per cluster and sample as
        ``alpha`` times the sample's expected mass in the cluster (harmony 1.2 / harmonypy
        2's default), which corrects a sample less where it is under-represented.
    alpha : float, default=0.2
        Scale of the estimated penalties (``lamb=None`` only).
    max_iter : int, default=10
        Maximum rounds of clustering and correction.
    max_iter_cluster : int, default=20
        Maximum soft k-means iterations per round.
    block_size : float, default=0.05
        Share of the cells whose assignments are updated at once.
    tol : float, default=1e-4
        The rounds stop when the objective falls by less than this fraction.
    tol_cluster : float, default=1e-5
        Soft k-means stops when its windowed objective changes by less than this fraction.
    random_state : int, RandomState instance or None, default=None
        Seeds the k-means initialisation and the block order.

    Returns
    -------
    state : dict
        ``centroids`` (K, n_components), unit rows; ``coefficients`` (K, n_batches,
        n_components), each cluster's per-sample offsets; ``sigma`` (K,); ``objective``,
        the objective after each round (float64 arrays).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> batch = np.repeat([0, 1], 100)
    >>> Z = rng.normal(size=(200, 5)) + 3.0 * batch[:, None]
    >>> state = fit_harmony(Z, batch, 2, n_clusters=4, random_state=0)
    >>> state["coefficients"].shape
    (4, 2, 5)
    >>> corrected = harmony_correct(Z, batch, state)
    >>> bool(abs(corrected[batch == 0].mean() - corrected[batch == 1].mean()) < 1.0)
    True
    """
    Z = np.asarray(Z, dtype=np.float64)
    batch_codes = np.asarray(batch_codes, dtype=np.int64)
    n_cells = Z.shape[0]
    if batch_codes.shape != (n_cells,):
        raise ValueError(f"batch_codes must have shape ({n_cells},); got {batch_codes.shape}.")
    if n_cells and (batch_codes.min() < 0 or batch_codes.max() >= n_batches):
        raise ValueError(f"batch_codes must lie in [0, {n_batches}).")
    if n_clusters is None:
        n_clusters = int(min(100, round(n_cells / 30.0)))
    n_clusters = max(1, min(int(n_clusters), n_cells))
    rng = check_random_state(random_state)
    onehot = np.zeros((n_cells, n_batches))
    onehot[np.arange(n_cells), batch_codes] = 1.0
    theta = np.full(n_batches, float(theta))
    sigma = np.full(n_clusters, float(sigma))

    Z_cos = _unit_rows(Z)
    kmeans = KMeans(
        n_clusters=n_clusters, init="k-means++", n_init=10, max_iter=25, random_state=rng
    ).fit(Z_cos)
    clusters = _SoftKMeans(
        Z_cos, onehot, _unit_rows(kmeans.cluster_centers_), sigma, theta, block_size, rng
    )
    objective = [clusters.objectives[-1]]
    for _ in range(max_iter):
        objective.append(clusters.cluster(max_iter_cluster, tol_cluster))
        penalty = alpha * clusters.E if lamb is None else lamb
        coefficients = _ridge_coefficients(Z, clusters.R.T, batch_codes, n_batches, penalty)
        corrected = Z - _correction(clusters.R.T, coefficients, batch_codes)
        clusters.Z_cos = _unit_rows(corrected)
        if (objective[-2] - objective[-1]) / abs(objective[-2]) < tol:
            break
    return {
        "centroids": clusters.centroids,
        "coefficients": coefficients,
        "sigma": sigma,
        "objective": np.asarray(objective),
    }


def _correction(R, coefficients, batch_codes):
    """Each cell's ``sum_k R_ik coefficients[k, batch_i]``: (n_cells, d)."""
    out = np.empty((R.shape[0], coefficients.shape[2]))
    for b in np.unique(batch_codes):
        cells = batch_codes == b
        out[cells] = R[cells] @ coefficients[:, b]
    return out


def harmony_correct(Z, batch_codes, state, n_iter=5):
    """Correct cells one by one with a fitted Harmony ``state`` (see :func:`fit_harmony`).

    Each cell is soft-assigned to the centroids from its current corrected code (cosine
    distance, the fitted kernel width, no diversity term), and its sample's
    assignment-weighted coefficients are subtracted from its original code; ``n_iter``
    such fixed-point steps, starting from the uncorrected code. A cell's result never
    depends on the other rows passed with it.

    Parameters
    ----------
    Z : ndarray of shape (n_cells, n_components)
        Cell coordinates, in the space Harmony was fitted on.
    batch_codes : ndarray of shape (n_cells,)
        Each cell's sample, as its integer code at fit.
    state : dict
        The output of :func:`fit_harmony`.
    n_iter : int, default=5
        Fixed-point steps.

    Returns
    -------
    corrected : ndarray of shape (n_cells, n_components), float32

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> batch = np.repeat([0, 1], 100)
    >>> Z = rng.normal(size=(200, 5)) + 3.0 * batch[:, None]
    >>> state = fit_harmony(Z, batch, 2, n_clusters=4, random_state=0)
    >>> all_cells = harmony_correct(Z, batch, state)
    >>> np.array_equal(harmony_correct(Z[:7], batch[:7], state), all_cells[:7])
    True
    """
    centroids, coefficients = state["centroids"], state["coefficients"]
    sigma = np.asarray(state["sigma"], dtype=np.float64)
    batch_codes = np.asarray(batch_codes, dtype=np.int64)
    out = np.empty(np.shape(Z), dtype=np.float32)
    for start in range(0, out.shape[0], _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        original = np.asarray(Z[rows], dtype=np.float64)
        codes = batch_codes[rows]
        corrected = original
        for _ in range(n_iter):
            R = _soft_assign(_unit_rows(corrected), centroids, sigma)
            corrected = original - _correction(R, coefficients, codes)
        out[rows] = corrected
    return out
