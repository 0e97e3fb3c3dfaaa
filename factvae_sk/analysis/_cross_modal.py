"""Codes for the ATAC decoder of cells measured by RNA alone, and posterior samples.

The RNA and ATAC encoders share a latent size but not a space (they are aligned only in
their cell-cell similarities), so an RNA code is carried to the ATAC decoder by a map
learned on the paired training cells: a ridge regression between their codes, or their
nearest neighbours in RNA latent space. Every function returns *components*: an array of
shape (n_cells, n_components, n_latent) whose decoded profiles are averaged per cell.
"""

import numpy as np
from sklearn.neighbors import NearestNeighbors

RNA_MAPS = ("ridge", "knn_code", "knn_profile")


def posterior_components(mean, logvar, n_samples, random_state):
    """The posterior mean (one component), or ``n_samples`` draws ``mean + eps * std``.

    Parameters
    ----------
    mean, logvar : ndarray of shape (n_cells, n_latent)
    n_samples : int or None
    random_state : RandomState
        Draws ``eps`` of shape (n_cells, n_samples, n_latent) in one call.
    """
    if n_samples is None:
        return mean[:, None, :]
    eps = random_state.standard_normal((len(mean), n_samples, mean.shape[1]))
    samples = mean[:, None, :] + eps * np.exp(0.5 * logvar)[:, None, :]
    return samples.astype(np.float32)


def map_rna_to_atac(rna_components, rna_map, ridge, training_codes, n_neighbors):
    """Carry RNA code components to ATAC code components.

    Parameters
    ----------
    rna_components : ndarray of shape (n_cells, n_components, n_latent)
    rna_map : {"ridge", "knn_code", "knn_profile"}
        ``"ridge"``: the fitted ridge regression of ATAC on RNA codes. ``"knn_code"``: the
        mean ATAC code of the ``n_neighbors`` training cells nearest in RNA latent space.
        ``"knn_profile"``: each of those neighbours' ATAC codes as a component of its own,
        so the decoded profile is the mean of the neighbours' denoised profiles.
    ridge : fitted regressor with ``predict``
    training_codes : ndarray of shape (n_training_cells, 2 * n_latent)
        RNA codes then ATAC codes of the training cells.
    n_neighbors : int

    Returns
    -------
    ndarray of shape (n_cells, n_components or n_components * n_neighbors, n_latent)
    """
    n_cells, n_components, n_latent = rna_components.shape
    flat = rna_components.reshape(-1, n_latent)
    if rna_map == "ridge":
        return ridge.predict(flat).astype(np.float32).reshape(n_cells, n_components, -1)
    train_rna, train_atac = training_codes[:, :n_latent], training_codes[:, n_latent:]
    k = min(n_neighbors, len(train_rna))
    index = NearestNeighbors(n_neighbors=k).fit(train_rna).kneighbors(flat, return_distance=False)
    neighbours = train_atac[index]  # (n_cells * n_components, k, n_latent)
    if rna_map == "knn_code":
        return neighbours.mean(1).astype(np.float32).reshape(n_cells, n_components, -1)
    return neighbours.astype(np.float32).reshape(n_cells, n_components * k, -1)
