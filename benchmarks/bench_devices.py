"""Seconds per training epoch on each device and precision, both bundled datasets, as a table.

    PYTHONPATH=. python benchmarks/bench_devices.py [--epochs 6] [--cpu-threads N]

Each row is one short fit with the default settings (``random_state=0``): the median epoch
after the first (which includes warm-up), the whole fit (preprocessing included), the last
training loss and whether the codes are finite. Rows for CUDA appear where a GPU is visible.
The point is the ratio between rows of one run, not the absolute seconds.
"""

import argparse
import statistics
import time

import numpy as np
import torch

from benchmarks.harness.data import load_dataset
from factvae_sk import FactVAE


def configurations(cpu_threads):
    """(device, precision, torch CPU threads) to time."""
    rows = []
    if torch.cuda.is_available():
        rows += [("cuda", "32", 1), ("cuda", "bf16", 1)]
    rows.append(("cpu", "32", cpu_threads))
    return rows


def time_fit(data, device, precision, epochs):
    model = FactVAE(max_epochs=epochs, random_state=0, device=device, precision=precision)
    start = time.perf_counter()
    model.fit(data.rna, data.atac, prior=data.prior)
    total = time.perf_counter() - start
    epoch = statistics.median(row["dur"] for row in model.net_.history[1:])
    finite = bool(np.isfinite(model.transform(data.rna, data.atac)).all())
    return epoch, total, model.net_.history[-1]["train_loss"], finite


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--cpu-threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"torch {torch.__version__}, {name}, {args.epochs} epochs per fit\n")
    print("| dataset | device | precision | CPU threads | s/epoch | fit s | train_loss | finite |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for dataset in ("snare", "kidney"):
        data = load_dataset(dataset)
        for device, precision, threads in configurations(args.cpu_threads):
            torch.set_num_threads(threads)
            epoch, total, loss, finite = time_fit(data, device, precision, args.epochs)
            print(
                f"| {dataset} | {device} | {precision} | {threads} | {epoch:.3f} | {total:.1f} "
                f"| {loss:.3f} | {finite} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
