"""bfloat16 against float32 training: seconds per epoch and KMeans ARI on the bundled data.

    PYTHONPATH=. python benchmarks/bench_precision.py [--epochs 20] [--threads 2]

For each bundled dataset (``benchmarks.harness.data.load_dataset``) FactVAE is fitted with
the method's defaults for ``--epochs`` epochs (a short fit: compare the two rows, not with 300-epoch
scores), once with ``precision="32"`` and once with ``precision="bf16"``, same seed, in
``--rounds`` alternating chunks of epochs (warm starts, which continue exactly). Reported:
median seconds per epoch (first epoch excluded), the ratio of the two, and the KMeans ARI
(k = number of labels, 10 inits) of the RNA and ATAC embeddings against the labels. On a CPU
bfloat16 is fast only with AVX512-BF16 / AMX (``lscpu``); elsewhere autocast emulates it.
"""

import argparse
import statistics

import torch

from benchmarks.harness.clustering import kmeans_ari
from benchmarks.harness.data import DATASETS, load_dataset
from factvae_sk import FactVAE

PRECISIONS = ("32", "bf16")


def fit_interleaved(data, epochs, rounds):
    """Both precisions trained ``epochs`` epochs in ``rounds`` alternating chunks (warm
    starts continue exactly), so that a change in the machine's load hits both alike."""
    chunk = epochs // rounds
    models = {
        p: FactVAE(max_epochs=chunk, precision=p, random_state=0, device="cpu", warm_start=True)
        for p in PRECISIONS
    }
    for _ in range(rounds):
        for model in models.values():
            model.fit(data.rna, data.atac, prior=data.prior)
    rows = {}
    for precision, model in models.items():
        durations = model.history_[:, "dur"]
        rows[precision] = {
            "epoch": statistics.median(durations[1:]),
            "rna": kmeans_ari(model.transform(data.rna), data.labels),
            "atac": kmeans_ari(
                model.set_params(embedding="atac").transform(data.rna, data.atac), data.labels
            ),
        }
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.epochs} epochs, {args.threads} threads, torch {torch.__version__}\n")
    print("| dataset | precision | s/epoch | vs float32 | ARI RNA | ARI ATAC |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets:
        data = load_dataset(name)
        rows = fit_interleaved(data, args.epochs, args.rounds)
        for precision, row in rows.items():
            ratio = row["epoch"] / rows["32"]["epoch"]
            print(
                f"| {name} | {precision} | {row['epoch']:.2f} | {ratio:.2f}x | "
                f"{row['rna']:.3f} | {row['atac']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
