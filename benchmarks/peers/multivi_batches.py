"""MultiVI (scvi-tools) on the simulated multi-sample studies, in its own environment.

    python -m venv /work/venv-scvi
    /work/venv-scvi/bin/pip install torch==2.13.0     # the CPU build, first
    /work/venv-scvi/bin/pip install scvi-tools==1.3.3
    PYTHONPATH=. nice -n 10 /work/venv-scvi/bin/python benchmarks/peers/multivi_batches.py DIR \\
        [--dataset snare|kidney|both] [--seeds 0 1 2] [--epochs 100]
    PYTHONPATH=. python benchmarks/eval_batches.py --peers DIR    # scores it (main environment)

scvi-tools is a peer for the benchmark only, never a dependency of the package: this script
does not import ``factvae_sk``. It reads the studies that ``eval_batches.py --write-samples
DIR`` wrote (:func:`benchmarks.harness.samples.read_study`: the counts with the simulated
sample effects), builds one AnnData per study as MultiVI's tutorial does (genes, then peaks,
in ``.var``; raw counts in ``.X``; the sample in ``.obs["sample"]``), registers it with
``MULTIVI.setup_anndata(adata, batch_key="sample")``, fits ``MULTIVI(adata, n_genes=...,
n_regions=...)`` with ``train(max_epochs=--epochs)`` and otherwise default settings (early
stopping on a 10% validation split included, as a user gets it) on the CPU with one torch
thread and ``scvi.settings.seed = seed``, and saves ``get_latent_representation()`` with the
training time to ``DIR/MultiVI/<dataset>_s<seed>.npz`` (``latent``, ``seconds_per_epoch``,
``epochs``, ``fit_s``).

``--time-cells N`` times instead a few epochs on N synthetic cells of a 10x-multiome-sized
panel (``--time-genes``, ``--time-peaks``; Poisson counts at 10x-like sparsity) and prints
the seconds per epoch.
"""

import argparse
import sys
import time
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp
import scvi
import torch

from benchmarks.harness.samples import read_study, study_path


def multivi_adata(rna, atac, sample):
    """Genes then peaks in one AnnData (MultiVI's layout), counts as CSR float32."""
    X = sp.hstack([rna, atac], format="csr", dtype=np.float32)
    names = [f"gene{i}" for i in range(rna.shape[1])] + [f"peak{i}" for i in range(atac.shape[1])]
    modality = ["Gene Expression"] * rna.shape[1] + ["Peaks"] * atac.shape[1]
    var = pd.DataFrame({"modality": modality}, index=names)
    obs = pd.DataFrame({"sample": pd.Categorical(np.asarray(sample).astype(str))})
    obs.index = obs.index.astype(str)
    return anndata.AnnData(X=X, obs=obs, var=var)


def fit_multivi(adata, n_genes, n_regions, epochs, seed):
    """The fitted MULTIVI, its latent, the epochs it ran and its training seconds."""
    scvi.settings.seed = seed
    scvi.model.MULTIVI.setup_anndata(adata, batch_key="sample")
    model = scvi.model.MULTIVI(adata, n_genes=n_genes, n_regions=n_regions)
    start = time.perf_counter()
    model.train(max_epochs=epochs, accelerator="cpu")
    seconds = time.perf_counter() - start
    epochs_run = len(model.history["elbo_train"])
    return model.get_latent_representation(), epochs_run, seconds


def time_epochs(n_cells, n_genes, n_peaks, epochs, seed):
    """Seconds per epoch on synthetic counts (no early stopping, no validation split)."""
    rng = np.random.default_rng(seed)
    # 10x multiome-like sparsity: ~2000 genes and ~5000 peaks detected per cell.
    rna = sp.random(n_cells, n_genes, density=2000 / n_genes, format="csr", random_state=rng)
    atac = sp.random(n_cells, n_peaks, density=5000 / n_peaks, format="csr", random_state=rng)
    rna.data = rng.poisson(2.0, rna.nnz).astype(np.float32) + 1
    atac.data = rng.poisson(0.5, atac.nnz).astype(np.float32) + 1
    adata = multivi_adata(rna, atac, rng.integers(0, 3, n_cells))
    scvi.settings.seed = seed
    scvi.model.MULTIVI.setup_anndata(adata, batch_key="sample")
    model = scvi.model.MULTIVI(adata, n_genes=n_genes, n_regions=n_peaks)
    start = time.perf_counter()
    model.train(max_epochs=epochs, accelerator="cpu", train_size=1.0, early_stopping=False)
    return (time.perf_counter() - start) / epochs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="where eval_batches.py --write-samples wrote")
    parser.add_argument("--dataset", choices=("snare", "kidney", "both"), default="both")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--time-cells", type=int, default=None)
    parser.add_argument("--time-genes", type=int, default=36601)
    parser.add_argument("--time-peaks", type=int, default=100000)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scvi.settings.num_threads = args.threads
    scvi.settings.dl_num_workers = 0
    print(f"scvi-tools {scvi.__version__}, torch {torch.__version__}", file=sys.stderr)
    if args.time_cells:
        seconds = time_epochs(
            args.time_cells, args.time_genes, args.time_peaks, args.epochs, args.seeds[0]
        )
        print(
            f"MultiVI {scvi.__version__}: {args.time_cells} cells, {args.time_genes} genes, "
            f"{args.time_peaks} peaks: {seconds:.2f} s per epoch ({args.epochs} epochs, "
            f"{args.threads} torch threads)"
        )
        return
    names = ("snare", "kidney") if args.dataset == "both" else (args.dataset,)
    out = Path(args.directory) / "MultiVI"
    out.mkdir(exist_ok=True)
    for name in names:
        for seed in args.seeds:
            study = read_study(study_path(args.directory, name, seed))
            rna, atac = study["rna_b"], study["atac_b"]
            adata = multivi_adata(rna, atac, study["sample"])
            latent, epochs, seconds = fit_multivi(
                adata, rna.shape[1], atac.shape[1], args.epochs, seed
            )
            np.savez(
                study_path(out, name, seed),
                latent=latent.astype(np.float32),
                seconds_per_epoch=seconds / epochs,
                epochs=epochs,
                fit_s=seconds,
            )
            print(
                f"{name} seed {seed}: {len(latent)} cells, {epochs} epochs, "
                f"{seconds / epochs:.2f} s per epoch",
                flush=True,
            )


if __name__ == "__main__":
    main()
