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
  (:func:`benchmarks.harness.clustering.kmeans_scores`);
- :func:`celltype_asw`: scib's ``silhouette``: the mean silhouette of the cell types over
  all cells, scaled ``(ASW + 1) / 2`` (1: tight, separate types);
- :func:`isolated_label_asw`: scib's isolated-label score in its ASW form, as
  ``scib_metrics.isolated_labels`` computes it (scib's own default is an F1 of an optimised
  Louvain clustering; the ASW form needs no clustering and no tuning): the types found in
  the fewest samples are "isolated"; each one's score is the mean scaled silhouette
  ``(s + 1) / 2`` of its cells, the silhouette taken against all types; mean over them.
  When every type is in every sample (as in most simulated studies), every type counts
  and the score is the class-balanced cell-type ASW.
"""

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import silhouette_samples, silhouette_score

from benchmarks.harness.clustering import kmeans_scores

# The kNN mixing summary.json reports (the CLI's --batch), and its neighbour lists: one
# definition for the package and the benchmarks.
from factvae_sk.app._scores import _neighbours, knn_mixing  # noqa: F401


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


def celltype_asw(X, labels):
    """scib's cell-type ASW: ``(mean silhouette of the labels + 1) / 2``, Euclidean."""
    return float((silhouette_score(X, np.asarray(labels)) + 1) / 2)


def isolated_label_asw(X, labels, batch):
    """scib's isolated-label ASW (``scib_metrics.isolated_labels``): the mean, over the
    labels present in the fewest samples, of their cells' mean ``(silhouette + 1) / 2``."""
    names, codes = np.unique(np.asarray(labels), return_inverse=True)
    _, batch_codes = np.unique(np.asarray(batch), return_inverse=True)
    present = np.zeros((len(names), batch_codes.max() + 1), dtype=bool)
    present[codes, batch_codes] = True
    n_batches = present.sum(axis=1)
    isolated = n_batches == n_batches.min()
    scaled = (silhouette_samples(X, codes) + 1) / 2
    per_label = np.bincount(codes, weights=scaled) / np.bincount(codes)
    return float(per_label[isolated].mean())
