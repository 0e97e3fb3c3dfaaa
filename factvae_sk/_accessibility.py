"""Augmented accessibility ``exp(s) * softmax(z @ W)`` in blocks, for any subset of peaks.

The softmax runs over every peak, but its normalizer is one number per cell: it is computed
once, in blocks of cells, and then any block of peaks costs only ``z @ W[:, block]``. So a
caller asking for a few peaks of 100k never holds a cells x peaks array.
"""

import numpy as np
import torch

# Entries of one float32 block (cells x peaks) computed at once: ~64 MB.
BLOCK_ENTRIES = 1 << 24


def log_normalizer(z, embedding):
    """``logsumexp(z @ W)`` per cell, over all peaks.

    Parameters
    ----------
    z : ndarray of shape (n_cells, n_latent)
    embedding : tensor of shape (n_latent, n_peaks)
        The peak embeddings ``W`` (on the device to compute on).
    """
    rows = max(1, BLOCK_ENTRIES // embedding.shape[1])
    parts = []
    with torch.no_grad():
        for start in range(0, len(z), rows):
            logits = _on(z[start : start + rows], embedding) @ embedding
            parts.append(torch.logsumexp(logits, dim=1).cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def accessibility(z, log_offset, embedding, peak_index):
    """``exp(z @ W[:, peak_index] + log_offset)`` as a float32 (n_cells, n_selected) array.

    ``log_offset`` is each cell's log library size minus its :func:`log_normalizer`.
    """
    columns = embedding[:, torch.as_tensor(peak_index, device=embedding.device)]
    out = np.empty((len(z), len(peak_index)), dtype=np.float32)
    rows = max(1, BLOCK_ENTRIES // max(len(peak_index), 1))
    with torch.no_grad():
        for start in range(0, len(z), rows):
            block = slice(start, start + rows)
            logits = _on(z[block], columns) @ columns + _on(log_offset[block], columns)[:, None]
            out[block] = logits.exp().cpu().numpy()
    return out


def peak_blocks(peak_index, n_cells):
    """Split ``peak_index`` into blocks whose cells x peaks array stays ~64 MB."""
    size = max(1, BLOCK_ENTRIES // max(n_cells, 1))
    return [peak_index[start : start + size] for start in range(0, len(peak_index), size)]


def _on(array, like):
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=like.device)
