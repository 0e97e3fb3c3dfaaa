"""FactVAE's embeddings of the simulated multi-sample studies, for ``eval_batches.py --peers``.

    PYTHONPATH=. python benchmarks/eval_batches.py --write-samples DIR   # the studies, once
    PYTHONPATH=. python benchmarks/embed_batches.py DIR [--epochs 100] [--seeds 0 1 2]
    PYTHONPATH=. python benchmarks/eval_batches.py --peers DIR           # every method, tabled

Each study (:mod:`benchmarks.harness.samples`) is fitted twice with the default settings and
``random_state=seed``: without ``batch`` and with ``batch=`` the sample labels. The
embeddings (RNA, what ``transform`` returns) go to ``DIR/<method>/<dataset>_s<seed>.npz``
as ``latent``, beside the fit's last training loss (``loss``) and its seconds (``fit_s``),
the layout the peers (MultiVI) use, so that one table scores them all:

- ``FactVAE no batch``: the fit without ``batch``;
- ``Harmony on FactVAE no batch``: Harmony (theta 2, harmonypy's default) on those codes,
  by sample, what MultiVI users do by hand;
- ``FactVAE batch, posterior means``: the fit with ``batch``, its encoders' posterior means
  (what ``transform`` returned before the integration step);
- ``FactVAE batch (default)``: ``transform(..., batch=)``, the integrated embedding;
- ``FactVAE batch, code Harmony theta=T``: the integration step with Harmony's diversity
  penalty ``T`` instead of the default's (the candidates it was chosen among).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.eval_batches import harmony
from benchmarks.harness.samples import read_study, study_path
from factvae_sk import FactVAE
from factvae_sk.data import _harmony

THETAS = (0.0, 1.0, 2.0)


def _save(directory, method, name, seed, latent, **extra):
    path = study_path(Path(directory) / method, name, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, latent=np.asarray(latent, dtype=np.float32), **extra)


def embed(directory, name, seed, epochs):
    """Fit the two models on one study and write every embedding of the module docstring."""
    study = read_study(study_path(directory, name, seed))
    rna, atac, sample = study["rna_b"], study["atac_b"], study["sample"]
    fits = {}
    for key, batch in (("no batch", None), ("batch", sample)):
        start = time.perf_counter()
        model = FactVAE(max_epochs=epochs, random_state=seed)
        model.fit(rna, atac, prior=study["prior"], batch=batch)
        info = {"loss": model.history_[-1, "train_loss"], "fit_s": time.perf_counter() - start}
        fits[key] = (model, info)
    plain, info = fits["no batch"]
    codes = plain.transform(rna)
    _save(directory, "FactVAE no batch", name, seed, codes, **info)
    _save(directory, "Harmony on FactVAE no batch", name, seed, harmony(codes, sample, seed))
    model, info = fits["batch"]
    _save(directory, "FactVAE batch (default)", name, seed, model.transform(rna, batch=sample))
    states, model.batch_code_harmony_ = model.batch_code_harmony_, None
    means = model.transform(rna)  # the posterior means, before the integration step
    model.batch_code_harmony_ = states
    _save(directory, "FactVAE batch, posterior means", name, seed, means, **info)
    codes = np.searchsorted(model.batch_categories_, sample)
    for theta in THETAS:
        state = _harmony.fit_harmony(means, codes, codes.max() + 1, theta=theta, random_state=seed)
        corrected = _harmony.harmony_correct(means, codes, state)
        _save(directory, f"FactVAE batch, code Harmony theta={theta:g}", name, seed, corrected)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="the studies of eval_batches.py --write-samples")
    parser.add_argument("--datasets", nargs="+", default=["snare", "kidney"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args(argv)
    for name in args.datasets:
        for seed in args.seeds:
            embed(args.directory, name, seed, args.epochs)
            print(f"{name} seed {seed}: written", flush=True)


if __name__ == "__main__":
    main()
