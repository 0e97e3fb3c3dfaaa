"""Peak memory and time of ``FactVAE.motif_deviations`` at scale, in a fresh process.

    PYTHONPATH=. python benchmarks/bench_motif_memory.py [--cells 20000] [--peaks 100000]
        [--motifs 800] [--density 0.005] [--background 50] [--json]

A FactVAE with ``--peaks`` peaks is fitted for 1 epoch on 200 synthetic cells (the weights do
not matter here, only the shapes) and saved (or loaded from ``--model``). A fresh process
loads it, so the fit's own memory is not counted, then runs ``motif_deviations(X_rna=...)``
on ``--cells`` cells measured by RNA alone against a random sparse peaks x motifs match
matrix (a ``--density`` fraction of the peaks per motif: 0.5% is what a p < 5e-5 scan of
500-bp peaks gives for short motifs, about 5% for long ones). Prints that process's peak
resident memory (``VmHWM``, ``benchmarks.harness.memory``) before and after the call, and
the call's time.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import joblib
import numpy as np
import scipy.sparse as sp

from benchmarks.harness.memory import peak_rss_mb, run_fresh
from benchmarks.harness.models import load_or_fit

N_GENES = 200


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--peaks", type=int, default=100_000)
    parser.add_argument("--motifs", type=int, default=800)
    parser.add_argument("--density", type=float, default=0.005)
    parser.add_argument("--background", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON line")

    parser.add_argument(
        "--model", default=None, help="reuse this fitted model file (fitted and saved if missing)"
    )
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)

    def counts(n, p, density):
        X = sp.random(n, p, density=density, format="csr", random_state=rng, dtype=np.float32)
        X.data = np.ceil(X.data * 3)
        X[np.flatnonzero(X.getnnz(axis=1) == 0), 0] = 1
        return X

    if args.measure is not None:
        # The fresh process: load the model, measure, print one JSON line.
        print(json.dumps(measure(joblib.load(args.measure), args, rng, counts)))
        return 0

    def fit():
        from factvae_sk import FactVAE

        model = FactVAE(
            max_epochs=1,
            n_latent=10,
            rna_hidden_sizes=(32,),
            atac_hidden_sizes=(32,),
            rna_n_components=10,
            atac_n_components=10,
            random_state=0,
        )
        return model.fit(counts(200, N_GENES, 0.2), counts(200, args.peaks, 0.01))

    with tempfile.TemporaryDirectory() as folder:
        path = args.model or os.path.join(folder, "model.joblib")
        load_or_fit(path, fit, message=None)
        measured = [f"--{key}={value}" for key, value in vars(args).items() if key != "json"]
        measured = [m for m in measured if not m.startswith(("--model=", "--measure="))]
        report = run_fresh(__file__, *measured, "--measure", path)
    if args.json:
        print(json.dumps(report))
    else:
        print("| " + " | ".join(report) + " |")
        print("|" + "---|" * len(report))
        print("| " + " | ".join(str(v) for v in report.values()) + " |")
    return 0


def measure(model, args, rng, counts):
    """Run ``motif_deviations`` on ``args.cells`` RNA-only cells; its memory and time."""
    X_rna = counts(args.cells, N_GENES, 0.2)
    matches = sp.random(
        args.peaks, args.motifs, density=args.density, format="csr", random_state=rng
    )
    matches.data[:] = 1
    gc = rng.uniform(0.3, 0.6, args.peaks)
    before = peak_rss_mb()
    start = time.perf_counter()
    result = model.motif_deviations(
        X_rna=X_rna, matches=matches, gc=gc, n_background=args.background
    )
    seconds = time.perf_counter() - start
    after = peak_rss_mb()
    report = {
        "cells": args.cells,
        "peaks": args.peaks,
        "motifs": args.motifs,
        "match_nnz": int(matches.nnz),
        "background": args.background,
        "seconds": round(seconds, 1),
        "peak_rss_before_mb": round(before),
        "peak_rss_mb": round(after),
        "finite_z": float(np.isfinite(result.z.to_numpy()).mean()),
    }
    return report


if __name__ == "__main__":
    sys.exit(main())
