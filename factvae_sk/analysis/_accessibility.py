"""Augmented accessibility ``exp(s) * softmax(z @ W)`` in blocks, for any subset of peaks.

The softmax runs over every peak, but its normalizer is one number per cell: it is computed
once, in blocks of cells, and then any block of peaks costs only ``z @ W[:, block]``. So a
caller asking for a few peaks of 100k never holds a cells x peaks array.
"""

import numpy as np
import torch

from ..utils._memory import check_dense_size

# Entries of one float32 block (cells x peaks) computed at once: ~64 MB.
BLOCK_ENTRIES = 1 << 24


def log_normalizer(z, embedding, bias=None):
    """``logsumexp(z @ W + bias)`` per cell, over all peaks.

    Parameters
    ----------
    z : ndarray of shape (n_cells, n_latent)
    embedding : tensor of shape (n_latent, n_peaks)
        The peak embeddings ``W`` (on the device to compute on).
    bias : ndarray of shape (n_peaks,), default=None
        Per-peak logit offsets (the decoder's learned intercepts, the calibration of
        :func:`calibration_bias`, or their sum).
    """
    rows = max(1, BLOCK_ENTRIES // embedding.shape[1])
    parts = []
    with torch.no_grad():
        for start in range(0, len(z), rows):
            logits = _on(z[start : start + rows], embedding) @ embedding
            if bias is not None:
                logits = logits + _on(bias, embedding)
            parts.append(torch.logsumexp(logits, dim=1).cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def result_array(out, n_cells, n_peaks):
    """Check a caller's ``out`` array; or, without one, that the result fits in memory."""
    shape = (n_cells, n_peaks)
    if out is None:
        check_dense_size(
            4 * n_cells * n_peaks,
            f"impute_atac's dense {n_cells} x {n_peaks} float32 result",
            "ask for fewer peaks (peaks=...), impute the cells in batches, or pass out= a "
            "float32 np.memmap of that shape to write it to disk.",
        )
        return None
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != np.float32:
        got = (getattr(out, "shape", None), getattr(out, "dtype", type(out).__name__))
        raise ValueError(
            f"out must be a float32 ndarray (or np.memmap) of shape {shape}; got {got}."
        )
    if not out.flags.writeable:
        raise ValueError("out is read-only.")
    return out


def accessibility(z, log_offset, embedding, peak_index, bias=None, out=None):
    """``exp(z @ W[:, peak_index] + bias + log_offset)`` as a float32 (n_cells, n_selected) array.

    ``log_offset`` is each cell's log library size minus its :func:`log_normalizer`. ``out``,
    if given, receives the result (checked by :func:`result_array`).
    """
    columns = embedding[:, torch.as_tensor(peak_index, device=embedding.device)]
    offsets = None if bias is None else _on(bias[peak_index], columns)
    if out is None:
        out = np.empty((len(z), len(peak_index)), dtype=np.float32)
    rows = max(1, BLOCK_ENTRIES // max(len(peak_index), 1))
    with torch.no_grad():
        for start in range(0, len(z), rows):
            block = slice(start, start + rows)
            logits = _on(z[block], columns) @ columns + _on(log_offset[block], columns)[:, None]
            if offsets is not None:
                logits = logits + offsets
            out[block] = logits.exp().cpu().numpy()
    return out


def mixture_log_offset(z, log_scale, embedding, bias=None):
    """``log_scale`` minus :func:`log_normalizer` of every component of every cell.

    Parameters
    ----------
    z : ndarray of shape (n_cells, n_components, n_latent)
        Several codes per cell (posterior samples, neighbours' codes).
    log_scale : ndarray of shape (n_cells,)
        Log library size of each cell.

    Returns
    -------
    ndarray of shape (n_cells, n_components)
    """
    n_cells, n_components, n_latent = z.shape
    flat = z.reshape(n_cells * n_components, n_latent)
    log_offset = np.repeat(np.asarray(log_scale, np.float32), n_components)
    return (log_offset - log_normalizer(flat, embedding, bias)).reshape(n_cells, n_components)


def mixture_accessibility(z, log_offset, embedding, peak_index, bias=None, out=None):
    """Mean over components of ``exp(log_scale) * softmax(z_j @ W + bias)``, per cell.

    The average of the components' denoised profiles (a mixture), not the profile of
    their average code.

    Parameters
    ----------
    z : ndarray of shape (n_cells, n_components, n_latent)
    log_offset : ndarray of shape (n_cells, n_components)
        From :func:`mixture_log_offset`.
    embedding, peak_index, bias, out
        As for :func:`accessibility`.

    Returns
    -------
    ndarray of shape (n_cells, n_selected), float32
    """
    n_cells, n_components, n_latent = z.shape
    if n_components == 1:
        return accessibility(z[:, 0], log_offset[:, 0], embedding, peak_index, bias, out=out)
    flat, flat_offset = z.reshape(-1, n_latent), log_offset.reshape(-1)
    if out is None:
        out = np.empty((n_cells, len(peak_index)), dtype=np.float32)
    # Cells per block, so that their components' cells x peaks array stays ~64 MB.
    rows = max(1, BLOCK_ENTRIES // max(len(peak_index) * n_components, 1))
    for start in range(0, n_cells, rows):
        block = slice(start * n_components, min(start + rows, n_cells) * n_components)
        values = accessibility(flat[block], flat_offset[block], embedding, peak_index, bias)
        out[start : start + rows] = values.reshape(-1, n_components, len(peak_index)).mean(1)
    return out


def calibration_bias(
    z, log_library, embedding, observed_totals, bias=None, groups=None, group_bias=None
):
    """Per-peak logit offsets that make the decoder's totals over cells match the counts.

    The rank-``n_latent`` softmax cannot follow every peak's mean exactly; adding
    ``log((observed + 1) / (predicted + 1))`` to each peak's logit (one pseudo-read on both
    sides keeps unseen peaks finite) corrects that bias while keeping each cell's
    deviations from the decoder. ``bias`` is a logit offset already in the decoder (its
    learned per-peak intercepts); the result is added to it. ``groups`` (each cell's
    sample position) and ``group_bias`` (n_samples, n_peaks): the decoder's per-sample
    offsets, added to the logits of each sample's cells.
    """
    predicted = np.zeros(embedding.shape[1], dtype=np.float64)
    if groups is None:
        parts = [(np.arange(len(z)), bias)]
    else:
        base = 0.0 if bias is None else bias
        parts = [(np.flatnonzero(groups == g), base + group_bias[g]) for g in np.unique(groups)]
    rows = max(1, BLOCK_ENTRIES // embedding.shape[1])
    all_peaks = np.arange(embedding.shape[1])
    for cells, part_bias in parts:
        z_part = z[cells]
        log_offset = log_library[cells] - log_normalizer(z_part, embedding, part_bias)
        for start in range(0, len(z_part), rows):
            block = slice(start, start + rows)
            predicted += accessibility(
                z_part[block], log_offset[block], embedding, all_peaks, part_bias
            ).sum(0)
    observed = np.asarray(observed_totals, dtype=np.float64)
    return np.log((observed + 1.0) / (predicted + 1.0)).astype(np.float32)


def peak_blocks(peak_index, n_cells):
    """Split ``peak_index`` into blocks whose cells x peaks array stays ~64 MB."""
    size = max(1, BLOCK_ENTRIES // max(n_cells, 1))
    return [peak_index[start : start + size] for start in range(0, len(peak_index), size)]


def _on(array, like):
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=like.device)
