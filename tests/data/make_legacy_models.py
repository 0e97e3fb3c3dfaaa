"""Write ``legacy_model.npz`` (weights-only ``FactVAE.save``), ``legacy_model.joblib`` and
``legacy_outputs.npz``: a small fit saved by factvae_sk 0.1 before its modules moved into
subpackages (commit 5959949). ``test_legacy_files.py`` checks that this package still loads
both files and that the loaded models transform as the saved ones did.

Run from a checkout of that code: ``PYTHONPATH=/path/to/checkout python make_legacy_models.py``.
"""

from pathlib import Path

import joblib
import numpy as np
import torch

from factvae_sk import FactVAE, load_snare_cellline

HERE = Path(__file__).resolve().parent


def legacy_data():
    data = load_snare_cellline()
    hvg = np.flatnonzero(data.genes.highly_variable.to_numpy())[:400]
    cells = np.arange(1, 600, 6)
    return data.rna[cells][:, hvg], data.atac[cells][:, :2000]


if __name__ == "__main__":
    torch.set_num_threads(1)
    rna, atac = legacy_data()
    settings = dict(max_epochs=2, n_latent=4, rna_hidden_sizes=(16,), atac_hidden_sizes=(16,))
    model = FactVAE(**settings, rna_n_components=10, atac_n_components=10, random_state=0)
    model.fit(rna, atac)
    model.save(HERE / "legacy_model.npz")
    joblib.dump(model, HERE / "legacy_model.joblib", compress=3)
    np.savez(HERE / "legacy_outputs.npz", codes=model.transform(rna, atac))
    print("wrote", HERE / "legacy_model.npz", HERE / "legacy_model.joblib")
