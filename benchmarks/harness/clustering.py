"""Agreement of an embedding's clusters with known labels: KMeans with k = number of labels
(10 initialisations), scored by the adjusted Rand index (ARI) and normalized mutual
information (NMI) against the labels."""

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def kmeans_clusters(X, labels, seed=0):
    """KMeans clusters of the rows of ``X``, as many clusters as distinct ``labels``."""
    return KMeans(len(np.unique(labels)), n_init=10, random_state=seed).fit_predict(X)


def kmeans_ari(X, labels, seed=0):
    """ARI of one KMeans run (``seed``) against ``labels``."""
    return float(adjusted_rand_score(labels, kmeans_clusters(X, labels, seed)))


def kmeans_scores(X, labels, seeds=(0, 1, 2)):
    """``(ARI, NMI)``, each the mean over KMeans runs with the given ``seeds``."""
    ari, nmi = [], []
    for seed in seeds:
        clusters = kmeans_clusters(X, labels, seed)
        ari.append(adjusted_rand_score(labels, clusters))
        nmi.append(normalized_mutual_info_score(labels, clusters))
    return float(np.mean(ari)), float(np.mean(nmi))
