"""The main job at a 10x Multiome experiment's size: time per phase and peak memory.

    PYTHONPATH=. python benchmarks/bench_scale.py [--cells 12000] [--epochs N] [--threads 2]

A PBMC-10k-sized experiment (12,000 cells, 36,000 genes, 108,000 peaks, about 2,200 genes
and 7,200 peaks detected per cell) is generated as synthetic counts, written as the files a
user gives ``factvae-sk fit`` (``rna.npz``, ``atac.npz``, ``genes.tsv``, ``peaks.tsv``,
``cells.tsv``), and the command runs end to end in a fresh process: reading, gene selection,
the prior, the fit, clustering, links, the map and every output file. It prints the time
of each phase and the peak resident memory (``VmHWM``, :mod:`benchmarks.harness.memory`) of
that process. ``--epochs`` omitted runs the CLI's default length; ``--cells`` scales the
cells down (genes and peaks stay at full size).

The counts: cells of 10 types; each feature has a detection weight drawn log-normally
(a few features detected everywhere, most rarely, as in real data), perturbed per type on
5 % of the features; each cell draws its reads from its type's weights (its depth
log-normal around the target detection), and a feature's count is how often it was
drawn. Genes and peaks lie on 22 chromosomes of a 3 Gb genome, so the default prior
(gene body and 2 kb upstream) links each selected gene to a few peaks, as real data does.
Generation runs in blocks of cells: its memory is about that of the final counts.

Phases (wall-clock, each function's time without the phases it calls): ``read`` (the
files), ``preprocessing`` (gene selection, prior, the encoders' PCA and LSI inputs),
``epochs`` (the training loop; also listed per epoch from the history), ``post-fit``
(the fitted statistics after training, the embeddings, clustering), ``links``
(``top_links.csv``'s evidence, ``links.png``'s genes and links), ``map`` (the 2-D map),
``writing`` (CSV tables, the model file, PNGs) and ``other`` (what the rest leaves).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchmarks.harness.memory import peak_rss_mb, run_fresh

PBMC = {"cells": 12_000, "genes": 36_000, "peaks": 108_000}
DETECTED = {"genes": 2_200, "peaks": 7_200}
N_TYPES = 10
GENOME = 3.0e9
N_CHROMS = 22

# --------------------------------------------------------------------------- the data


def _weights(rng, n_features, spread):
    """Per-type sampling probabilities: a log-normal base, 5 % of features perturbed per type."""
    base = rng.lognormal(0.0, spread, n_features)
    probs = np.empty((N_TYPES, n_features))
    for t in range(N_TYPES):
        effect = np.ones(n_features)
        markers = rng.random(n_features) < 0.05
        effect[markers] = rng.lognormal(0.0, 1.5, markers.sum())
        probs[t] = base * effect / (base * effect).sum()
    return probs


def _draws_for(probs, detected):
    """Draws per cell whose expected number of distinct features is ``detected``."""
    lo, hi = float(detected), 100.0 * detected
    for _ in range(50):
        mid = (lo + hi) / 2
        expected = (1 - np.exp(-mid * probs)).sum(axis=1).mean()
        lo, hi = (mid, hi) if expected < detected else (lo, mid)
    return lo


def _counts(rng, cell_types, probs, detected, block=500):
    """Cells x features float32 CSR: each cell's reads drawn from its type's weights."""
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    draws = _draws_for(probs, detected)
    n_features = probs.shape[1]
    blocks = []
    for start in range(0, len(cell_types), block):
        types = cell_types[start : start + block]
        depth = np.maximum(rng.lognormal(np.log(draws), 0.35, len(types)).astype(np.int64), 1)
        rows = np.repeat(np.arange(len(types)), depth)
        cols = np.empty(rows.size, dtype=np.int32)
        offsets = np.concatenate([[0], np.cumsum(depth)])
        for t in np.unique(types):
            where = np.flatnonzero(types == t)
            take = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in where])
            cols[take] = np.searchsorted(cdf[t], rng.random(take.size), side="right")
        np.minimum(cols, n_features - 1, out=cols)
        data = np.ones(rows.size, dtype=np.float32)
        matrix = sp.csr_matrix((data, (rows, cols)), shape=(len(types), n_features))
        matrix.sum_duplicates()
        blocks.append(matrix)
    return sp.vstack(blocks, format="csr", dtype=np.float32)


def _positions(rng, n, length):
    """``n`` sorted start positions spread over the chromosomes of a ``GENOME``-bp genome."""
    chrom_len = GENOME / N_CHROMS
    chrom = rng.integers(0, N_CHROMS, n)
    start = rng.integers(10_000, int(chrom_len) - length.max() - 10_000, n)
    order = np.lexsort((start, chrom))
    return np.array([f"chr{c + 1}" for c in chrom[order]]), start[order]


def generate(folder, n_cells, seed=0):
    """Write the synthetic experiment's files to ``folder``; returns the ``fit`` arguments."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_genes, n_peaks = PBMC["genes"], PBMC["peaks"]
    gene_length = np.clip(rng.lognormal(np.log(20_000), 1.0, n_genes), 500, 2_000_000).astype(int)
    chrom, start = _positions(rng, n_genes, gene_length)
    genes = pd.DataFrame(
        {
            "gene": [f"G{i:05d}" for i in range(n_genes)],
            "chrom": chrom,
            "start": start,
            "end": start + gene_length,
            "strand": rng.choice(["+", "-"], n_genes),
        }
    )
    width = rng.integers(300, 1500, n_peaks)
    chrom, start = _positions(rng, n_peaks, width)
    peaks = pd.DataFrame({"chrom": chrom, "start": start, "end": start + width})
    peaks.insert(
        0, "peak", peaks.chrom + ":" + peaks.start.astype(str) + "-" + peaks.end.astype(str)
    )
    cell_types = rng.integers(0, N_TYPES, n_cells)
    cells = pd.DataFrame(
        {
            "barcode": [f"CELL{i:06d}-1" for i in range(n_cells)],
            "cell_type": [f"type{t}" for t in cell_types],
        }
    )
    rna = _counts(rng, cell_types, _weights(rng, n_genes, 2.0), DETECTED["genes"])
    sp.save_npz(folder / "rna.npz", rna, compressed=False)
    detected = {"genes": float(np.diff(rna.indptr).mean()), "rna_counts": float(rna.data.mean())}
    del rna
    atac = _counts(rng, cell_types, _weights(rng, n_peaks, 1.0), DETECTED["peaks"])
    sp.save_npz(folder / "atac.npz", atac, compressed=False)
    detected.update(peaks=float(np.diff(atac.indptr).mean()), atac_counts=float(atac.data.mean()))
    del atac
    genes.to_csv(folder / "genes.tsv", sep="\t", index=False)
    peaks.to_csv(folder / "peaks.tsv", sep="\t", index=False)
    cells.to_csv(folder / "cells.tsv", sep="\t", index=False)
    (folder / "detected.json").write_text(json.dumps(detected))
    return detected


def fit_args(folder):
    folder = Path(folder)
    args = ["fit"]
    for option in ("rna", "atac"):
        args += [f"--{option}", str(folder / f"{option}.npz")]
    for option in ("genes", "peaks", "cells"):
        args += [f"--{option}", str(folder / f"{option}.tsv")]
    return args + ["--labels", "cell_type"]


# ------------------------------------------------------------------------ the phases


class _Phases:
    """Wall time per phase: each wrapped function's time, less that of wrapped functions it
    calls (so nothing is counted twice)."""

    def __init__(self):
        self.seconds, self.cpu, self._stack = {}, {}, []

    def wrap(self, owner, name, phase):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            self._stack.append((0.0, 0.0))
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                cpu = time.process_time() - cpu_start
                inner, inner_cpu = self._stack.pop()
                self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed - inner
                self.cpu[phase] = self.cpu.get(phase, 0.0) + cpu - inner_cpu
                if self._stack:
                    outer, outer_cpu = self._stack[-1]
                    self._stack[-1] = (outer + elapsed, outer_cpu + cpu)

        setattr(owner, name, timed)


def child(out, argv):
    """In a fresh process: run ``factvae-sk`` with its phases timed; print one JSON line."""
    import joblib

    from factvae_sk import cli
    from factvae_sk.app import _job, _plots
    from factvae_sk.data import _preprocessing
    from factvae_sk.model._estimator import FactVAE

    phases = _Phases()
    for owner, name, phase in [
        (cli, "_load_user_data", "read"),
        (cli, "highly_variable_genes", "preprocessing"),
        (_job, "build_gene_peak_prior", "preprocessing"),
        (_preprocessing.RNAEncoderInput, "fit", "preprocessing"),
        (_preprocessing.ATACEncoderInput, "fit", "preprocessing"),
        (FactVAE, "_raw_dataset", "preprocessing"),
        (FactVAE, "_run_training", "epochs"),
        (FactVAE, "_finish_fit", "post-fit"),
        (FactVAE, "transform", "post-fit"),
        (
            _job,
            "cluster_scores" if hasattr(_job, "cluster_scores") else "_cluster_scores",
            "post-fit",
        ),
        (FactVAE, "link_features", "links"),
        (FactVAE, "regulatory_links", "links"),
        (_job, "_variable_genes", "links"),
        (_job, "cell_map", "map"),
        (pd.DataFrame, "to_csv", "writing"),
        *([(_job, "write_csv", "writing")] if hasattr(_job, "write_csv") else []),
        (joblib, "dump", "writing"),
        (_job, "plot_losses", "writing"),
        (_job, "plot_cell_map", "writing"),
        (_job, "plot_links", "writing"),
    ]:
        phases.wrap(owner, name, phase)
    del _plots
    start, cpu_start = time.perf_counter(), time.process_time()
    result = cli.run([*argv, "--out", out])
    total, total_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    history = result.model.history_
    seconds = {k: round(v, 1) for k, v in phases.seconds.items()}
    seconds["other"] = round(total - sum(phases.seconds.values()), 1)
    cpu = {k: round(v, 1) for k, v in phases.cpu.items()}
    cpu["other"] = round(total_cpu - sum(phases.cpu.values()), 1)
    files = {p.name: p.stat().st_size for p in Path(out).iterdir()}
    print(
        json.dumps(
            {
                "total_s": round(total, 1),
                "phases_s": seconds,
                "total_cpu_s": round(total_cpu, 1),
                "phases_cpu_s": cpu,
                "epoch_s": [round(d, 2) for d in history[:, "dur"]],
                "n_epochs": len(history),
                "max_epochs": int(result.model.net_.max_epochs),
                "peak_rss_gb": round(peak_rss_mb() / 1024, 2),
                "model_file_mb": round(files.get("model.joblib", 0) / 2**20, 1),
                "scores": result.summary["scores"],
            }
        )
    )


# ------------------------------------------------------------------------------ main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=PBMC["cells"])
    parser.add_argument("--epochs", type=int, default=None, help="default: the CLI's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data", default=None, help="folder for the generated files (kept and reused)"
    )
    parser.add_argument("--out", default=None, help="the job's output folder")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1:])
    import tempfile

    scratch = tempfile.mkdtemp(prefix="bench_scale_")
    data = Path(args.data or scratch) / f"cells{args.cells}_seed{args.seed}"
    if not (data / "detected.json").exists():
        start = time.perf_counter()
        detected = generate(data, args.cells, args.seed)
        print(f"generated {data} in {time.perf_counter() - start:.0f} s")
    detected = json.loads((data / "detected.json").read_text())
    print(
        f"{args.cells} cells, {PBMC['genes']} genes, {PBMC['peaks']} peaks; detected per cell: "
        f"{detected['genes']:.0f} genes (mean count {detected['rna_counts']:.2f}), "
        f"{detected['peaks']:.0f} peaks (mean count {detected['atac_counts']:.2f})"
    )
    argv = fit_args(data)
    if args.epochs is not None:
        argv += ["--epochs", str(args.epochs)]
    out = args.out or os.path.join(scratch, "results")
    print("factvae-sk " + " ".join(argv) + f" --out {out}  ({args.threads} threads)")
    run = run_fresh(__file__, "--child", out, *argv, threads=args.threads)
    epochs = run["epoch_s"]
    print(
        f"\n{run['n_epochs']} epochs (max_epochs {run['max_epochs']}); "
        f"epoch median {np.median(epochs):.1f} s"
    )
    wall, cpu = run["phases_s"], run["phases_cpu_s"]
    print("\n| phase | wall s | CPU s (all threads) |\n| --- | --- | --- |")
    for phase in (
        "read",
        "preprocessing",
        "epochs",
        "post-fit",
        "links",
        "map",
        "writing",
        "other",
    ):
        print(f"| {phase} | {wall.get(phase, 0.0):.1f} | {cpu.get(phase, 0.0):.1f} |")
    outside = run["total_s"] - wall.get("epochs", 0.0)
    outside_cpu = run["total_cpu_s"] - cpu.get("epochs", 0.0)
    print(
        f"| **total** | **{run['total_s']:.1f}** (outside the epochs {outside:.1f}) | "
        f"{run['total_cpu_s']:.1f} (outside the epochs {outside_cpu:.1f}) |"
    )
    print(f"\npeak RSS {run['peak_rss_gb']:.2f} GB; model.joblib {run['model_file_mb']:.1f} MB")
    print(json.dumps(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
