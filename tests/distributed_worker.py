"""One process of the 2-process test of ``FactVAE(distributed=True)`` (tests/test_distributed.py).

    torchrun --standalone --nproc_per_node 2 tests/distributed_worker.py OUT_DIR

Every process fits the same small real data; each writes the encoder-input rows of every
training batch it saw (``rows_rank{r}.npy``) and, on rank 0, the fitted model (joblib), its
weights, history and embedding. The test compares them with a one-process fit.

Training draws no noise here (dropout 0, the reparameterization noise set to zero), so the
one-process and two-process fits can be compared number for number: what is compared is how
the batches are split and how the gradients and the distillation are combined.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from conftest import FAST  # this script's folder is on sys.path
from skorch.callbacks import Callback

from factvae_sk import FactVAE, gene_peak_prior, load_snare_cellline

SETTINGS = dict(FAST, dropout=0.0, random_state=0, device="cpu")


def small_data():
    """240 real SNARE-seq cells, the highly variable genes, 3000 most open peaks, the prior."""
    data = load_snare_cellline()
    hvg = data.genes.highly_variable.to_numpy()
    cells = np.arange(0, 960, 4)
    peaks = np.sort(np.argsort(-np.asarray(data.atac.sum(axis=0)).ravel(), kind="stable")[:3000])
    prior = gene_peak_prior(data.genes[hvg], data.peaks)[:, peaks]
    return data.rna[cells][:, hvg], data.atac[cells][:, peaks], prior


def no_sampling_noise():
    """The encoders' reparameterization noise becomes zero (z = mean) in this process."""
    torch.randn_like = torch.zeros_like


class BatchRows(Callback):
    """Keeps the RNA encoder-input rows of every training batch (they identify the cells)."""

    def __init__(self):
        self.rows = []

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training:
            self.rows.append(batch[0]["rna_input"].detach().cpu().numpy().copy())


def cell_indices(model, X_rna, rows):
    """The positions in ``X_rna`` of the cells whose encoder inputs are ``rows``."""
    where = {row.tobytes(): i for i, row in enumerate(model.rna_encoder_input_.transform(X_rna))}
    return np.array([[where[row.tobytes()] for row in batch] for batch in rows])


def main(out):
    import joblib
    import torch.distributed as dist

    # The recorder's class by its module name, not __main__'s, so the pickle loads in the test.
    from distributed_worker import BatchRows

    no_sampling_noise()
    X_rna, X_atac, prior = small_data()
    record = BatchRows()
    model = FactVAE(distributed=True, callbacks=[record], **SETTINGS)
    model.fit(X_rna, X_atac, prior=prior)
    rank = dist.get_rank()
    out = Path(out)
    np.save(out / f"cells_rank{rank}.npy", cell_indices(model, X_rna, record.rows))
    np.save(out / f"codes_rank{rank}.npy", model.transform(X_rna))
    if rank == 0:
        joblib.dump(model, out / "model.joblib")
        model.save(out / "model.npz")
        np.savez(
            out / "weights.npz", **{k: v.numpy() for k, v in model.module_.state_dict().items()}
        )
        np.save(out / "train_loss.npy", np.array(model.history_[:, "train_loss"]))
    dist.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
