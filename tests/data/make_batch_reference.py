"""Write ``batch_reference.npz``: outputs of a small fit with ``batch=`` made with the code
of ``main`` before ``batch_mmd_weight`` existed. ``test_batches.py`` checks that a fit with
``batch`` and ``batch_mmd_weight=0`` still gives them, i.e. that the MMD option at its
default leaves the sample-conditioned model untouched.

Run from a checkout of that code: ``PYTHONPATH=/path/to/main python make_batch_reference.py``.
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_no_batch_reference import SETTINGS, reference_data  # noqa: E402

from factvae_sk import FactVAE  # noqa: E402


def donors(n):
    return np.array(["d1", "d2", "d3"])[np.arange(n) % 3]


def posterior_means(model, rna, atac):
    """The encoders' posterior means (of ``model.embedding``): what ``transform`` returned
    when this file was written, before a fit with ``batch`` integrated the samples by
    Harmony on them."""
    inputs = {"rna": rna, "atac": atac}
    blocks = {"rna": ["rna"], "atac": ["atac"], "joint": ["rna", "atac"]}[model.embedding]
    means = []
    with torch.no_grad():
        for block in blocks:
            encoder_input = getattr(model, f"{block}_encoder_input_")
            x = torch.from_numpy(np.asarray(encoder_input.transform(inputs[block])))
            means.append(model.module_.encode(block, x)[0].numpy())
    return np.hstack(means)


def reference_outputs(model, rna, atac, batch):
    return dict(
        codes=posterior_means(model, rna, atac),
        score=np.float64(model.score(rna, atac, batch=batch)),
        imputed=model.impute_atac(atac[:20], batch=batch[:20], peaks=np.arange(50)),
        loss=np.asarray(model.history_[:, "train_loss"]),
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    rna, atac, prior = reference_data()
    batch = donors(rna.shape[0])
    model = FactVAE(**SETTINGS).fit(rna, atac, prior=prior, batch=batch)
    out = Path(__file__).with_name("batch_reference.npz")
    np.savez(out, **reference_outputs(model, rna, atac, batch))
    print("wrote", out)
