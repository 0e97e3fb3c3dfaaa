"""How well the job's embeddings cluster and mix: what ``summary.json`` reports per embedding.

- ARI and NMI of KMeans against the known labels (``--labels``);
- with samples (``--batch``), the kNN mixing of the samples: the share of each cell's 15
  nearest neighbours from another sample over the share a random draw would give (1: as
  mixed as chance, 0: the samples apart). The benchmarks score with the same function
  (``benchmarks/harness/batch_metrics.py``).
"""

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.neighbors import NearestNeighbors


def _neighbours(X, k):
    """Indices of each cell's ``k`` nearest other cells (itself excluded)."""
    k = min(k, len(X) - 1)
    index = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X, return_distance=False)
    # A cell is its own first neighbour unless it has duplicates; drop itself wherever it is.
    own = index == np.arange(len(X))[:, None]
    drop_last = ~own.any(axis=1)
    own[drop_last, -1] = True
    return index[~own].reshape(len(X), k)


def knn_mixing(X, batch, k=15):
    """Observed over expected fraction of each cell's ``k`` neighbours from another sample.

    The expectation for a cell of sample ``b`` is ``(n - n_b) / (n - 1)``, the share of
    other cells that are from another sample. Returns the ratio of the means over cells.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.repeat(np.arange(4.0), 4)[:, None]  # four tight groups of 4 cells
    >>> knn_mixing(X, np.tile([0, 1], 8), k=3) > knn_mixing(X, np.repeat([0, 1], 8), k=3)
    True
    """
    batch = np.asarray(batch)
    neighbours = _neighbours(X, k)
    observed = (batch[neighbours] != batch[:, None]).mean(axis=1)
    _, inverse, counts = np.unique(batch, return_inverse=True, return_counts=True)
    expected = (len(batch) - counts[inverse]) / (len(batch) - 1)
    return float(observed.mean() / expected.mean())


def cluster_scores(embeddings, labels, n_clusters, seed, batch=None):
    """KMeans on each embedding: the clusters, and a table with one row per embedding of
    ARI/NMI against ``labels`` (when given) and the kNN mixing of ``batch`` (when given;
    empty without either)."""
    clusters, rows = {}, []
    for name, Z in embeddings.items():
        clusters[name] = KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(Z)
        row = {"embedding": name}
        if labels is not None:
            row["ARI"] = adjusted_rand_score(labels, clusters[name])
            row["NMI"] = normalized_mutual_info_score(labels, clusters[name])
        if batch is not None:
            row["kNN mixing"] = knn_mixing(Z, batch)
        if len(row) > 1:
            rows.append(row)
    return clusters, pd.DataFrame(rows)
