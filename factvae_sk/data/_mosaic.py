"""Cells measured by one modality (mosaic data): which cells have which modality.

``rna_observed`` and ``atac_observed`` flag, per cell, whether its row of ``X_rna`` /
``X_atac`` holds a measurement. Unobserved rows (zeros, or anything: they are never read)
get a zero encoder input and a zero log library, and the losses skip them. The code of the
modality a cell lacks is carried over from the code it has, by a map learned on the paired
training cells (``fill_missing``): a linear map whose outputs keep the spread of real codes
(``transport_map``), or the mean code of its nearest paired neighbours.
"""

import warnings

import numpy as np
from scipy import linalg
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_array

# Neighbours (paired training cells) whose code of the other modality a cell borrows.
N_NEIGHBORS = 15


def check_observed(rna_observed, atac_observed, n_cells, has_atac):
    """The two masks as boolean arrays, or ``None`` when neither is given (all paired).

    Raises ``ValueError`` for a mask of the wrong shape, ``atac_observed`` without
    ``X_atac``, or a cell with neither modality.
    """
    if rna_observed is None and atac_observed is None:
        return None
    if not has_atac:
        raise ValueError("rna_observed / atac_observed describe paired data: they need X_atac.")
    masks = {}
    for name, mask in (("rna_observed", rna_observed), ("atac_observed", atac_observed)):
        if mask is None:
            masks[name] = np.ones(n_cells, dtype=bool)
            continue
        mask = check_array(mask, ensure_2d=False, dtype=None, input_name=name)
        if mask.shape != (n_cells,) or mask.dtype.kind not in "bui":
            raise ValueError(
                f"{name} must be one boolean per cell, of shape ({n_cells},); got "
                f"shape {mask.shape} and dtype {mask.dtype}."
            )
        if mask.dtype.kind != "b" and not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans (or 0/1).")
        masks[name] = mask.astype(bool)
    rna, atac = masks["rna_observed"], masks["atac_observed"]
    neither = np.flatnonzero(~rna & ~atac)
    if len(neither):
        raise ValueError(
            f"{len(neither)} cell(s) have neither modality observed (first rows: "
            f"{', '.join(map(str, neither[:5]))}): drop them."
        )
    return {"rna": rna, "atac": atac}


def encoder_input(transformer, X, mask):
    """The fitted encoder-input transform of the observed rows; zeros for the others."""
    out = np.zeros((X.shape[0], transformer_width(transformer)), dtype=np.float32)
    if mask.any():
        out[mask] = transformer.transform(X[mask])
    return out


def transformer_width(transformer):
    svd = getattr(transformer, "svd_", None)
    return svd.components_.shape[0] if svd is not None else transformer.pca_.n_components_


def log_library(X, mask):
    """log total of each observed row; 0 for the others (their likelihood is masked)."""
    totals = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    return np.log(np.where(mask, totals, 1.0)).astype(np.float32)


def _psd_powers(matrix, *powers):
    """``matrix ** power`` for each power, of a symmetric positive semi-definite matrix
    (one eigendecomposition; eigenvalues floored at 1e-10 of the largest, so a flat
    direction never divides by zero)."""
    values, vectors = linalg.eigh(matrix)
    values = np.maximum(values, 1e-10 * max(values.max(), np.finfo(float).tiny))
    return [(vectors * values**power) @ vectors.T for power in powers]


def transport_map(source, target):
    """The affine map ``x -> x @ A + b`` from ``source`` codes to ``target`` codes of the same
    cells: the least-squares prediction, then the optimal-transport map between Gaussians
    that gives the predictions the targets' covariance.

    A regression alone pulls its predictions towards the mean (it keeps only the predictable
    part of the variance), so the carried-over codes would sit in tight clumps among the
    measured ones; the second step spreads them back, moving each as little as possible
    (Gaussian OT: ``T = C_p^-1/2 (C_p^1/2 C_t C_p^1/2)^1/2 C_p^-1/2``, ``C_p`` and ``C_t`` the
    covariances of the predictions and of the targets). On the paired cells the mapped codes
    have exactly the targets' mean and covariance.

    Parameters
    ----------
    source, target : ndarray of shape (n_cells, n_latent)

    Returns
    -------
    A : ndarray of shape (n_latent, n_latent)
    b : ndarray of shape (n_latent,)
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    design = np.column_stack([source, np.ones(len(source))])
    coef, *_ = linalg.lstsq(design, target)
    predicted = design @ coef
    mean = target.mean(0)  # also the predictions' mean: least squares with an intercept
    half, inverse_half = _psd_powers(np.cov(predicted, rowvar=False), 0.5, -0.5)
    (middle,) = _psd_powers(half @ np.cov(target, rowvar=False) @ half, 0.5)
    transport = inverse_half @ middle @ inverse_half  # symmetric: x @ T == T @ x
    A = coef[:-1] @ transport
    b = (coef[-1] - mean) @ transport + mean
    return A, b


def fill_missing(codes, observed, training_codes, n_latent, method="transport"):
    """Replace the missing modality's code of unpaired cells, in place.

    ``codes``: (n_cells, 2 * n_latent), RNA then ATAC posterior means (the missing block
    holds the encoder's output on a zero input). ``training_codes``: both codes of the
    paired training cells. ``method="transport"``: the :func:`transport_map` from the
    present modality's codes to the missing one's, fitted on ``training_codes``;
    ``"neighbors"``: the mean code of the ``N_NEIGHBORS`` paired training cells nearest in
    the present modality's code space (averages: they clump).
    """
    blocks = {"rna": slice(0, n_latent), "atac": slice(n_latent, 2 * n_latent)}
    k = min(N_NEIGHBORS, len(training_codes))
    if method == "transport" and len(training_codes) < 2 * (n_latent + 1):
        # Fewer cells than twice the map's coefficients per output: it fits them by heart.
        warnings.warn(
            f"Only {len(training_codes)} paired training cells for {n_latent}-dimensional "
            "codes: the transport map of missing_code='transport' is poorly determined; "
            "missing_code='neighbors' may be safer.",
            UserWarning,
            stacklevel=3,
        )
    for missing, present in (("atac", "rna"), ("rna", "atac")):
        cells = np.flatnonzero(~observed[missing])
        if not len(cells):
            continue
        source = training_codes[:, blocks[present]]
        if method == "transport":
            A, b = transport_map(source, training_codes[:, blocks[missing]])
            codes[cells, blocks[missing]] = codes[cells, blocks[present]] @ A + b
            continue
        index = NearestNeighbors(n_neighbors=k).fit(source)
        neighbours = index.kneighbors(codes[cells, blocks[present]], return_distance=False)
        codes[cells, blocks[missing]] = training_codes[neighbours][:, :, blocks[missing]].mean(1)
    return codes
