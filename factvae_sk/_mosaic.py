"""Cells measured by one modality (mosaic data): which cells have which modality.

``rna_observed`` and ``atac_observed`` flag, per cell, whether its row of ``X_rna`` /
``X_atac`` holds a measurement. Unobserved rows (zeros, or anything: they are never read)
get a zero encoder input and a zero log library, and the losses skip them. Codes of the
modality a cell lacks come from its paired training neighbours (``fill_missing``).
"""

import numpy as np
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


def fill_missing(codes, observed, training_codes, n_latent):
    """Replace the missing modality's code of unpaired cells, in place.

    ``codes``: (n_cells, 2 * n_latent), RNA then ATAC posterior means (the missing block
    holds the encoder's output on a zero input). A cell without ATAC gets the mean ATAC code
    of the ``N_NEIGHBORS`` paired training cells nearest to it in RNA code space, and the
    other way round: codes on the same manifold as the paired cells' (a ridge map would
    shrink them towards the mean).
    """
    blocks = {"rna": slice(0, n_latent), "atac": slice(n_latent, 2 * n_latent)}
    k = min(N_NEIGHBORS, len(training_codes))
    for missing, present in (("atac", "rna"), ("rna", "atac")):
        cells = np.flatnonzero(~observed[missing])
        if not len(cells):
            continue
        index = NearestNeighbors(n_neighbors=k).fit(training_codes[:, blocks[present]])
        neighbours = index.kneighbors(codes[cells, blocks[present]], return_distance=False)
        codes[cells, blocks[missing]] = training_codes[neighbours][:, :, blocks[missing]].mean(1)
    return codes
