"""Batching that keeps count matrices sparse: one batch of rows is densified at a time."""

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset


def log_library_size(counts):
    """log of each row's total count, as float32 (counts: CSR or ndarray)."""
    return np.log(np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()).astype(np.float32)


def _dense_rows(matrix, index):
    """Rows ``index`` of a CSR matrix or ndarray as a float32 tensor."""
    rows = matrix[index]
    if hasattr(rows, "toarray"):
        rows = rows.toarray()
    return torch.from_numpy(np.asarray(rows, dtype=np.float32))


def _counts_batch(matrix, index):
    """Rows ``index`` of a count matrix, dense, and the flat indices of their non-zeros.

    The indices come from the CSR structure (no scan of the dense batch), so the likelihood
    needs neither a pass to find them nor, on a GPU, a host synchronisation.
    """
    rows = matrix[index]
    if sp.issparse(rows):
        rows = sp.csr_matrix(rows)
        rows.sum_duplicates()  # canonical: one entry per position, sorted
        rows.eliminate_zeros()  # stored zeros are zeros
        row_of = np.repeat(np.arange(rows.shape[0], dtype=np.int64), np.diff(rows.indptr))
        flat = row_of * rows.shape[1] + rows.indices
        dense = rows.toarray()
    else:
        dense = np.asarray(rows)
        flat = np.flatnonzero(dense)
    return (
        torch.from_numpy(np.asarray(dense, dtype=np.float32)),
        torch.from_numpy(flat.astype(np.int64, copy=False)),
    )


class PairedCountsDataset(Dataset):
    """Encoder inputs, log library sizes and raw counts of paired cells.

    Items are fetched a batch at a time through ``__getitems__`` (which torch's DataLoader
    calls with all of a batch's indices), so a batch of CSR rows is sliced and densified in
    one call and the full matrices stay sparse.

    Parameters
    ----------
    rna_input : ndarray of shape (n_cells, n_components) or None
        Dense encoder input for RNA.
    rna_counts : sparse matrix (CSR) or ndarray of shape (n_cells, n_genes), or None
        Raw counts, needed for the likelihood; ``None`` when only encoding.
    rna_log_library : ndarray of shape (n_cells,), optional
        Defaults to ``log(rna_counts.sum(1))``, or zeros without counts.
    atac_input, atac_counts, atac_log_library :
        The same for ATAC. Each modality is present when its input is given.
    batch : ndarray of shape (n_cells, n_batch), default=None
        One-hot sample of each cell (float32), handed to the module as ``batch``.
    observed : dict of boolean ndarrays of shape (n_cells,), default=None
        ``{"rna": mask, "atac": mask}`` for cells measured by one modality: the masks go to
        the loss as ``y["rna_observed"]`` / ``y["atac_observed"]`` (float) and their
        conjunction as ``y["paired"]`` (bool), which the distillation step reads.

    Each batch is ``(X, y)``: ``X`` holds the module's keyword inputs
    (``{modality}_input``, ``{modality}_log_library``), ``y`` the counts given
    (``{"rna": ..., "atac": ...}``, dense) and the flat row-major indices of their
    non-zero entries (``{"rna_nonzero": ..., "atac_nonzero": ...}``).
    """

    def __init__(
        self,
        rna_input=None,
        rna_counts=None,
        rna_log_library=None,
        atac_input=None,
        atac_counts=None,
        atac_log_library=None,
        batch=None,
        observed=None,
    ):
        self.batch = batch
        self.observed = observed
        given = {
            "rna": (rna_input, rna_counts, rna_log_library),
            "atac": (atac_input, atac_counts, atac_log_library),
        }
        self.modalities = {}
        for name, (encoder_input, counts, log_library) in given.items():
            if encoder_input is None:
                continue
            if log_library is None:
                log_library = (
                    log_library_size(counts)
                    if counts is not None
                    else np.zeros(encoder_input.shape[0], np.float32)
                )
            self.modalities[name] = (encoder_input, counts, log_library)
        if not self.modalities:
            raise ValueError("PairedCountsDataset needs the encoder input of a modality.")
        self.n_cells = next(iter(self.modalities.values()))[0].shape[0]

    def __len__(self):
        return self.n_cells

    def __getitems__(self, indices):
        index = np.asarray(indices, dtype=np.int64)
        X, y = {}, {}
        for name, (encoder_input, counts, log_library) in self.modalities.items():
            X[f"{name}_input"] = _dense_rows(encoder_input, index)
            X[f"{name}_log_library"] = torch.from_numpy(log_library[index])
            if counts is not None:
                y[name], y[f"{name}_nonzero"] = _counts_batch(counts, index)
        if self.batch is not None:
            X["batch"] = torch.from_numpy(self.batch[index])
        if self.observed is not None and y:
            for name, mask in self.observed.items():
                y[f"{name}_observed"] = torch.from_numpy(mask[index].astype(np.float32))
            y["paired"] = torch.from_numpy(
                self.observed["rna"][index] & self.observed["atac"][index]
            )
        return X, y

    def __getitem__(self, i):
        return self.__getitems__([i])


def collate_batch(batch):
    """The dataset already returns whole batches: pass them through unchanged."""
    return batch


def iter_batches(dataset, batch_size, device):
    """Yield ``(X, y)`` batches of ``dataset`` in order, moved to ``device`` (for inference)."""
    for start in range(0, len(dataset), batch_size):
        X, y = dataset.__getitems__(range(start, min(start + batch_size, len(dataset))))
        yield (
            {k: v.to(device) for k, v in X.items()},
            {k: v.to(device) for k, v in y.items()},
        )
