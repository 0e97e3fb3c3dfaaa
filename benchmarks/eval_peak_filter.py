"""How many peaks each minimum-detection threshold drops, and what it does to clustering.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/eval_peak_filter.py \
        [--dataset snare kidney] [--thresholds 0 3 5 10 1%] [--epochs 60] [--seed 0]

Per dataset (the SNARE cell lines with their 2000 highly variable genes, the sci-CAR kidney
with all 5000 genes, as benchmarks/harness/data.py loads them) and per threshold (a number of
cells, or a percentage of the cells as in MultiVI's tutorial), the peaks detected in fewer
cells are dropped (``informative_peaks``, what the command line's ``--min-peak-cells`` does),
the gene-body + 2 kb prior is rebuilt on the kept peaks, FactVAE is fitted for ``--epochs``
epochs (a short fit, one seed: cheap, not the default 300) and each embedding is clustered
by KMeans (k = number of labels, mean ARI over 3 KMeans seeds). A threshold that drops no
peak on a dataset gives the unfiltered model there, so it is not refitted.
"""

import argparse
import time

import numpy as np

from benchmarks.harness.clustering import kmeans_scores
from benchmarks.harness.data import load_dataset
from factvae_sk import FactVAE, gene_peak_prior
from factvae_sk.app._peak_filter import informative_peaks


def threshold_cells(text, n_cells):
    """Cells a threshold asks for: ``"10"`` -> 10, ``"1%"`` -> ceil(1% of the cells)."""
    if text.endswith("%"):
        return int(np.ceil(float(text[:-1]) / 100 * n_cells))
    return int(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", nargs="+", default=["snare", "kidney"])
    parser.add_argument("--thresholds", nargs="+", default=["0", "3", "5", "10", "1%"])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = []
    for name in args.dataset:
        data = load_dataset(name)
        n_cells, n_peaks = data.atac.shape
        fitted = {}
        for text in args.thresholds:
            keep = informative_peaks(data.atac, threshold_cells(text, n_cells))
            n_kept = int(keep.sum())
            if n_kept not in fitted:
                atac = data.atac[:, keep]
                cells = atac.getnnz(axis=1) > 0  # cells left without ATAC counts
                peaks = data.peaks[keep].reset_index(drop=True)
                prior = gene_peak_prior(data.genes, peaks)
                model = FactVAE(max_epochs=args.epochs, random_state=args.seed, embedding="joint")
                start = time.perf_counter()
                Z = model.fit_transform(data.rna[cells], atac[cells], prior=prior)
                seconds = time.perf_counter() - start
                k, labels = model.n_latent, data.labels[cells]
                scores = {
                    part: kmeans_scores(z, labels)[0]
                    for part, z in (("RNA", Z[:, :k]), ("ATAC", Z[:, k:]), ("joint", Z))
                }
                fitted[n_kept] = (scores, int(prior.nnz), int((~cells).sum()), seconds)
            scores, links, lost, seconds = fitted[n_kept]
            rows.append(
                f"| {name} | {text} | {n_peaks - n_kept} of {n_peaks} | {lost} | {links} | "
                f"{scores['RNA']:.3f} | {scores['ATAC']:.3f} | {scores['joint']:.3f} | "
                f"{seconds:.0f} |"
            )
            print(rows[-1], flush=True)
    print(
        f"\n{args.epochs} epochs, seed {args.seed}; KMeans ARI, mean of 3 KMeans seeds\n\n"
        "| dataset | min cells | peaks dropped | cells left out | prior links | RNA ARI | "
        "ATAC ARI | joint ARI | fit s |\n|---|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
