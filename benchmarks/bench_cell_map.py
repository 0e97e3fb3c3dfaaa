"""Time the cell map of ``factvae-sk`` pictures at growing numbers of cells, per method.

    PYTHONPATH=. python benchmarks/bench_cell_map.py [--sizes 5000 50000 200000] [--threads 2]

Synthetic joint embeddings (100 dimensions, 20 Gaussian clusters of unequal size) stand in for
FactVAE codes. Methods: scikit-learn's t-SNE on every cell (skipped above --max-full-tsne
cells: hours), the same t-SNE on the default stratified subsample (what ``factvae-sk`` does
without the extras), openTSNE and UMAP when installed. Prints a Markdown table of seconds.
"""

import argparse
import os
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000, 200000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-full-tsne", type=int, default=20000)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    import numpy as np

    from factvae_sk.app._cell_map import MAX_TSNE_CELLS, available_methods, cell_map

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(20, 100))
    weights = rng.dirichlet(np.full(20, 0.7))
    methods = ["tsne (all cells)", f"tsne (subsample of {MAX_TSNE_CELLS})"]
    methods += [m for m in available_methods() if m != "tsne"]
    rows = []
    for n in args.sizes:
        labels = rng.choice(20, size=n, p=weights)
        Z = (centres[labels] + rng.normal(size=(n, 100))).astype(np.float32)
        row = {"cells": n}
        for method in methods:
            if method == "tsne (all cells)" and n > args.max_full_tsne:
                row[method] = "not run"
                continue
            name = "tsne" if method.startswith("tsne") else method
            limit = n if method == "tsne (all cells)" else MAX_TSNE_CELLS
            start = time.perf_counter()
            cell_map(Z, labels, method=name, max_cells=limit, random_state=0)
            row[method] = f"{time.perf_counter() - start:.1f}"
            print(f"{n} cells, {method}: {row[method]} s", flush=True)
        rows.append(row)
    print("\n| cells | " + " | ".join(methods) + " |")
    print("| --- |" + " --- |" * len(methods))
    for row in rows:
        print(f"| {row['cells']} | " + " | ".join(str(row[m]) for m in methods) + " |")


if __name__ == "__main__":
    main()
