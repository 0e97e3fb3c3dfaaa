"""A 2-D map of the cells for pictures: UMAP or FFT t-SNE when installed, else scikit-learn's
t-SNE, on a stratified subsample when there are many cells.

scikit-learn's Barnes-Hut t-SNE takes minutes at 10k cells and hours at atlas scale, longer
than the fit it illustrates. ``umap-learn`` and ``openTSNE`` (optional extra ``maps``) scale
near-linearly; without them the map is computed on at most ``max_cells`` cells, drawn
proportionally from every cluster so that small populations stay on it, and the other cells
get no coordinates (NaN).
"""

import numpy as np
from sklearn.utils import Bunch, check_random_state

METHODS = ("auto", "umap", "opentsne", "tsne")

# Cells above which scikit-learn's t-SNE runs on a subsample (about a minute on 2 cores).
MAX_TSNE_CELLS = 10_000


def available_methods():
    """The map methods importable here, best first."""
    found = []
    for method, module, name in (("umap", "umap", "UMAP"), ("opentsne", "openTSNE", "TSNE")):
        try:
            # The class, not just the module: a leftover empty folder imports as a namespace.
            getattr(__import__(module), name)
        except (ImportError, AttributeError):
            continue
        found.append(method)
    return found + ["tsne"]


def stratified_subsample(groups, n, random_state=None):
    """Sorted positions of ``n`` cells drawn from every group in proportion to its size.

    Every group keeps at least one cell (so a rare population stays on the map), which can
    take the total a little above ``n`` when there are more groups than ``n`` allows.
    """
    groups = np.asarray(groups)
    rng = check_random_state(random_state)
    labels, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    quota = np.maximum(1, np.floor(sizes * n / len(groups)).astype(int))
    # Hand out what flooring left, to the largest remainders first.
    remainders = sizes * n / len(groups) - np.floor(sizes * n / len(groups))
    for index in np.argsort(-remainders, kind="stable")[: max(0, n - quota.sum())]:
        quota[index] += 1
    quota = np.minimum(quota, sizes)
    chosen = [
        rng.choice(np.flatnonzero(inverse == label), quota[label], replace=False)
        for label in range(len(labels))
    ]
    return np.sort(np.concatenate(chosen))


def cell_map(Z, groups=None, *, method="auto", max_cells=MAX_TSNE_CELLS, random_state=0):
    """2-D coordinates of the rows of ``Z`` for plotting.

    Parameters
    ----------
    Z : ndarray of shape (n_cells, n_dims)
        Cell embeddings.
    groups : array-like of shape (n_cells,), default=None
        Labels (e.g. clusters) to stratify a subsample by.
    method : {"auto", "umap", "opentsne", "tsne"}, default="auto"
        "auto" takes UMAP, else openTSNE, else scikit-learn's t-SNE.
    max_cells : int, default=10000
        With scikit-learn's t-SNE, map a stratified subsample of this many cells when there
        are more.
    random_state : int, default=0

    Returns
    -------
    Bunch
        ``coords`` (n_cells, 2), NaN for cells left off the map; ``method`` (the one used);
        ``mapped`` (positions of the mapped cells); ``subsampled`` (bool).

    Examples
    --------
    >>> import numpy as np
    >>> from factvae_sk.app._cell_map import cell_map
    >>> Z = np.random.default_rng(0).normal(size=(300, 10))
    >>> result = cell_map(Z, method="tsne", max_cells=100)
    >>> result.coords.shape, len(result.mapped), result.subsampled
    ((300, 2), 100, True)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    if method == "auto":
        method = available_methods()[0]
    elif method not in available_methods():
        extra = {"umap": "umap-learn", "opentsne": "openTSNE"}[method]
        raise ImportError(f"method={method!r} needs {extra}: pip install {extra}")
    Z = np.asarray(Z, dtype=np.float32)
    n_cells = len(Z)
    mapped = np.arange(n_cells)
    if method == "tsne" and n_cells > max_cells:
        groups = np.zeros(n_cells) if groups is None else groups
        mapped = stratified_subsample(groups, max_cells, random_state)
    coords = np.full((n_cells, 2), np.nan, dtype=np.float32)
    coords[mapped] = _fit_map(Z[mapped], method, random_state)
    return Bunch(coords=coords, method=method, mapped=mapped, subsampled=len(mapped) < n_cells)


def _fit_map(Z, method, random_state):
    if len(Z) < 4:  # too few cells for a neighbourhood graph: the first two dimensions
        return np.pad(Z[:, :2], ((0, 0), (0, max(0, 2 - Z.shape[1]))))
    if method == "umap":
        import umap

        return umap.UMAP(random_state=random_state).fit_transform(Z)
    if method == "opentsne":
        from openTSNE import TSNE

        return np.asarray(TSNE(random_state=random_state).fit(Z))
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(Z) - 1) / 3)
    return TSNE(2, init="pca", perplexity=perplexity, random_state=random_state).fit_transform(Z)
