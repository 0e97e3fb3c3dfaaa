"""Batch-mixing and biology-conservation scores of an embedding (scib's definitions, simplified).

All take an embedding ``X`` (cells x dimensions, Euclidean) and per-cell labels. Each is
small, exact and tested against hand-computed cases (``tests/test_batch_metrics.py``):

- :func:`knn_mixing`: the fraction of each cell's ``k`` nearest neighbours from another
  sample, divided by what a random draw of neighbours would give (1: as mixed as chance,
  0: samples apart);
- :func:`ilisi`: the inverse Simpson index of the samples among each cell's ``k`` nearest
  neighbours (unweighted: scib weighs them by a Gaussian kernel of fixed perplexity),
  scaled from 1..n_samples to 0..1;
- :func:`batch_asw`: scib's batch ASW: ``1 - |silhouette|`` of the samples within each
  cell type, averaged over each type's cells, then over types (1: mixed);
- :func:`graph_connectivity`: scib's: for each cell type, the share of its cells in the
  largest connected component of the ``k``-nearest-neighbour graph restricted to the type,
  averaged over types (1: each type is one connected piece);
- :func:`cluster_agreement`: ARI and NMI of KMeans (k = number of types) against the types
  (:func:`benchmarks.harness.clustering.kmeans_scores`).
"""

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import silhouette_samples
from sklearn.neighbors import NearestNeighbors

from benchmarks.harness.clustering import kmeans_scores


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
    """
    batch = np.asarray(batch)
    neighbours = _neighbours(X, k)
    observed = (batch[neighbours] != batch[:, None]).mean(axis=1)
    _, inverse, counts = np.unique(batch, return_inverse=True, return_counts=True)
    expected = (len(batch) - counts[inverse]) / (len(batch) - 1)
    return float(observed.mean() / expected.mean())


def ilisi(X, batch, k=15):
    """Mean inverse Simpson index of the samples among each cell's ``k`` neighbours (the
    cell itself included, as in scib), scaled to ``(index - 1) / (n_samples - 1)``."""
    batch = np.asarray(batch)
    _, codes = np.unique(batch, return_inverse=True)
    n_samples = codes.max() + 1
    neighbours = np.column_stack([np.arange(len(X)), _neighbours(X, k)])
    shares = np.stack([(codes[neighbours] == s).mean(axis=1) for s in range(n_samples)], 1)
    simpson = 1.0 / (shares**2).sum(axis=1)
    return float((simpson.mean() - 1) / (n_samples - 1))


def batch_asw(X, batch, labels):
    """scib's batch ASW: per cell type, mean ``1 - |silhouette|`` of the samples; mean over
    types. Types found in one sample alone (no silhouette) are skipped."""
    batch, labels = np.asarray(batch), np.asarray(labels)
    scores = []
    for label in np.unique(labels):
        cells = labels == label
        if len(np.unique(batch[cells])) < 2 or cells.sum() < 3:
            continue
        scores.append(np.mean(1 - np.abs(silhouette_samples(X[cells], batch[cells]))))
    return float(np.mean(scores))


def graph_connectivity(X, labels, k=15):
    """scib's graph connectivity on the ``k``-nearest-neighbour graph of all cells."""
    labels = np.asarray(labels)
    neighbours = _neighbours(X, k)
    scores = []
    for label in np.unique(labels):
        cells = np.flatnonzero(labels == label)
        position = np.full(len(labels), -1)
        position[cells] = np.arange(len(cells))
        rows = np.repeat(np.arange(len(cells)), neighbours.shape[1])
        cols = position[neighbours[cells].ravel()]
        keep = cols >= 0
        graph = coo_matrix(
            (np.ones(keep.sum()), (rows[keep], cols[keep])), shape=(len(cells), len(cells))
        )
        _, component = connected_components(graph, directed=False)
        scores.append(np.bincount(component).max() / len(cells))
    return float(np.mean(scores))


def cluster_agreement(X, labels, seeds=(0, 1, 2)):
    """Mean ARI and NMI over KMeans seeds, with as many clusters as labels."""
    return kmeans_scores(X, labels, seeds)
