"""Write ``no_batch_reference.npz``: outputs of a small fit made with the code of ``main``
before batch covariates existed. ``test_batches.py`` checks that a fit without ``batch``
still gives them, i.e. that the option leaves the method untouched.

Run from a checkout of that code: ``PYTHONPATH=/path/to/main python make_no_batch_reference.py``.
"""

from pathlib import Path

import numpy as np
import torch

from factvae_sk import FactVAE, gene_peak_prior, load_snare_cellline

# The same cells, peaks and settings as the test (tests/conftest.py: `small`, FAST).
SETTINGS = dict(
    max_epochs=3,
    rna_hidden_sizes=(64,),
    atac_hidden_sizes=(32,),
    n_latent=8,
    rna_n_components=20,
    atac_n_components=20,
    batch_size=64,
    random_state=0,
    embedding="joint",
)


def reference_data():
    data = load_snare_cellline()
    hvg = data.genes.highly_variable.to_numpy()
    prior = gene_peak_prior(data.genes[hvg].reset_index(drop=True), data.peaks)
    cells = np.arange(0, 900, 3)
    peak_order = np.argsort(-np.asarray(data.atac.sum(axis=0)).ravel(), kind="stable")
    peaks = np.sort(peak_order[:5000])
    return data.rna[:, hvg][cells], data.atac[cells][:, peaks], prior[:, peaks]


def reference_outputs(model, rna, atac):
    return dict(
        codes=model.transform(rna, atac),
        score=np.float64(model.score(rna, atac)),
        imputed=model.impute_atac(atac[:20], peaks=np.arange(50)),
        imputed_rna=model.impute_atac(X_rna=rna[:20], peaks=np.arange(50)),
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    rna, atac, prior = reference_data()
    model = FactVAE(**SETTINGS).fit(rna, atac, prior=prior)
    out = Path(__file__).with_name("no_batch_reference.npz")
    np.savez(out, **reference_outputs(model, rna, atac))
    print("wrote", out)
