"""Peak memory of fitting from a backed ``.h5ad`` against the in-memory path, as a table.

    PYTHONPATH=. python benchmarks/bench_backed.py --dir /tmp/backed [--cells 200000]
        [--peaks 100000] [--genes 2000] [--max-batches 30] [--keep]

1. Writes synthetic paired counts (10 cell types, Poisson draws from a per-type profile) to
   ``rna.h5ad`` and ``atac.h5ad`` in ``--dir``, streamed: one block of 10,000 cells is made
   and appended at a time, so nothing cells x features is ever held (let alone dense).
2. Fits FactVAE (default hyperparameters, ``max_epochs=1``) in a fresh process per path:
   - ``memory``: ``anndata.read_h5ad`` loads the counts, ``fit`` gets scipy CSR matrices;
   - ``backed``: ``factvae_sk.anndata.backed_counts`` opens them on disk, ``fit`` checks and
     preprocesses them in passes over row blocks and reads one batch of rows at a time.
   Each run covers the whole fit except the epoch's length: the checks, the preprocessing
   (PCA, LSI), ``--max-batches`` training batches (a callback then stops the epoch, as
   Ctrl-C would), and the end of the fit (codes of every cell, peak calibration). A full
   epoch of 200k x 100k is ~40+ min on 2 shared cores; its time is extrapolated from the
   median batch time.
3. Prints a Markdown table: peak resident memory (``VmHWM`` of the fitting process, the
   interpreter and torch included; ``benchmarks.harness.memory``) and the time of each
   stage.

The files are deleted at the end unless ``--keep``. Check ``df -h`` first: 200k x 100k with
~500 non-zero peaks per cell is ~1 GB on disk.
"""

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from benchmarks.harness.memory import peak_rss_mb, run_fresh

BLOCK = 10_000


def _profiles(rng, n_types, n_features, concentration):
    """Per-type feature probabilities: a shared baseline times type-specific factors."""
    base = rng.gamma(concentration, 1.0, n_features)
    factors = rng.gamma(2.0, 0.5, (n_types, n_features))
    weights = base * factors
    return weights / weights.sum(axis=1, keepdims=True)


def _block_counts(rng, types, profiles, mean_draws):
    """CSR counts of one block of cells: Poisson(mean_draws) draws from each type's profile."""
    n_cells, n_features = len(types), profiles.shape[1]
    draws = rng.poisson(mean_draws, n_cells).clip(1)
    rows = np.repeat(np.arange(n_cells), draws)
    cols = np.empty(rows.size, dtype=np.int64)
    cumulative = np.cumsum(profiles, axis=1)
    for t in np.unique(types):
        at = np.flatnonzero(types[rows] == t)
        cols[at] = np.searchsorted(cumulative[t], rng.random(at.size) * cumulative[t, -1])
    cols = np.minimum(cols, n_features - 1)
    data = np.ones(rows.size, dtype=np.float32)
    counts = sp.csr_matrix((data, (rows, cols)), shape=(n_cells, n_features))
    counts.sum_duplicates()
    return counts


def generate(folder, n_cells, n_genes, n_peaks, atac_draws, rna_draws, seed=0):
    """Write ``rna.h5ad`` and ``atac.h5ad`` block by block; return the seconds taken."""
    import anndata
    import h5py
    import pandas as pd
    from anndata.io import sparse_dataset, write_elem

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_types = 10
    types = rng.integers(0, n_types, n_cells)
    spec = {
        "rna": (_profiles(rng, n_types, n_genes, 0.3), rna_draws, "gene"),
        "atac": (_profiles(rng, n_types, n_peaks, 0.5), atac_draws, "peak"),
    }
    for name, (profiles, draws, prefix) in spec.items():
        path = folder / f"{name}.h5ad"
        with h5py.File(path, "w") as handle:
            for begin in range(0, n_cells, BLOCK):
                block = _block_counts(rng, types[begin : begin + BLOCK], profiles, draws)
                if begin == 0:
                    write_elem(handle, "X", block)
                    matrix = sparse_dataset(handle["X"])
                else:
                    matrix.append(block)
            obs = pd.DataFrame(
                {"cell_type": pd.Categorical(types.astype(str))},
                index=[f"cell{i}" for i in range(n_cells)],
            )
            n_features = profiles.shape[1]
            write_elem(handle, "obs", obs)
            write_elem(
                handle, "var", pd.DataFrame(index=[f"{prefix}{i}" for i in range(n_features)])
            )
            for key in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
                write_elem(handle, key, {})
            handle.attrs["encoding-type"] = "anndata"
            handle.attrs["encoding-version"] = "0.1.0"
        opened = anndata.read_h5ad(path, backed="r")  # a valid h5ad
        assert opened.shape == (n_cells, profiles.shape[1]), opened.shape
        opened.file.close()
    return time.perf_counter() - start


def _rss_gb():
    return peak_rss_mb() / 1024


def fit_once(folder, mode, max_batches, threads):
    """One fit in this process; prints a JSON line with its timings and peak memory."""
    import torch
    from skorch.callbacks import Callback

    from factvae_sk import FactVAE
    from factvae_sk.anndata import backed_counts

    torch.set_num_threads(threads)

    class StopAfter(Callback):
        """Ends the epoch after ``n`` batches (as Ctrl-C would), timing each batch."""

        def __init__(self, n):
            self.n = n

        def initialize(self):
            self.times, self.begin = [], None
            return self

        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            self.begin = time.perf_counter()

        def on_batch_end(self, net, batch=None, training=False, **kwargs):
            self.times.append(time.perf_counter() - self.begin)
            if len(self.times) >= self.n:
                raise KeyboardInterrupt

    start = time.perf_counter()
    if mode == "memory":
        import anndata

        X_rna = anndata.read_h5ad(folder / "rna.h5ad").X
        X_atac = anndata.read_h5ad(folder / "atac.h5ad").X
    else:
        X_rna, X_atac = backed_counts(folder / "rna.h5ad"), backed_counts(folder / "atac.h5ad")
    load_s = time.perf_counter() - start
    load_gb = _rss_gb()
    stop = StopAfter(max_batches)
    marks = {}

    class Marks(Callback):
        def on_train_begin(self, net, **kwargs):
            marks["train_begin"] = time.perf_counter()

        def on_train_end(self, net, **kwargs):
            marks["train_end"] = time.perf_counter()

    model = FactVAE(max_epochs=1, random_state=0, callbacks=[("stop", stop), ("marks", Marks())])
    begin = time.perf_counter()
    model.fit(X_rna, X_atac)
    end = time.perf_counter()
    batch = statistics.median(stop.times[1:] or stop.times)
    n_cells = X_rna.shape[0]
    print(
        json.dumps(
            {
                "mode": mode,
                "load_s": load_s,
                "load_gb": load_gb,
                "before_training_s": marks["train_begin"] - begin,
                "batches": len(stop.times),
                "batch_s": batch,
                "after_training_s": end - marks["train_end"],
                "epoch_estimate_min": batch * (n_cells // model.batch_size) / 60,
                "peak_gb": _rss_gb(),
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--peaks", type=int, default=100_000)
    parser.add_argument("--atac-draws", type=int, default=600, help="mean ATAC reads per cell")
    parser.add_argument("--rna-draws", type=int, default=800, help="mean RNA reads per cell")
    parser.add_argument("--max-batches", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--modes", default="backed,memory")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--fit", choices=["memory", "backed"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit:
        return fit_once(args.dir, args.fit, args.max_batches, args.threads)

    args.dir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        if not (args.dir / "atac.h5ad").exists():
            seconds = generate(
                args.dir, args.cells, args.genes, args.peaks, args.atac_draws, args.rna_draws
            )
            print(f"wrote the synthetic files in {seconds:.0f} s", file=sys.stderr)
        sizes = {p.name: p.stat().st_size / 2**30 for p in args.dir.glob("*.h5ad")}
        for mode in args.modes.split(","):
            command = ["--dir", args.dir, "--fit", mode, "--max-batches", args.max_batches]
            try:
                result = run_fresh(
                    __file__, *command, "--threads", args.threads, threads=args.threads
                )
            except RuntimeError as error:
                print(error, file=sys.stderr)
                results.append({"mode": mode, "failed": True})
                continue
            results.append(result)
            print(json.dumps(result), file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)

    import anndata  # noqa: F401  (only to report the version)

    print(
        f"\n{args.cells:,} cells x {args.genes:,} genes x {args.peaks:,} peaks; files: "
        + ", ".join(f"{name} {size:.2f} GB" for name, size in sorted(sizes.items()))
        + f"; {args.threads} thread(s); {args.max_batches} training batches of 128 cells\n"
    )
    print(
        "| path | peak RSS (GB) | RSS after loading (GB) | load (s) | checks + PCA/LSI (s) "
        "| s / batch | end of fit (s) | 1 epoch, extrapolated (min) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if "failed" in r:
            print(f"| {r['mode']} | failed (see stderr) | | | | | | |")
            continue
        print(
            f"| {r['mode']} | {r['peak_gb']:.2f} | {r['load_gb']:.2f} | {r['load_s']:.0f} "
            f"| {r['before_training_s']:.0f} | {r['batch_s']:.2f} | {r['after_training_s']:.0f} "
            f"| {r['epoch_estimate_min']:.0f} |"
        )


if __name__ == "__main__":
    main()
