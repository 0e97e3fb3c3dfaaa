"""Time and peak memory of reading Cell Ranger ARC's ``filtered_feature_bc_matrix.h5``.

    PYTHONPATH=. python benchmarks/bench_read_10x.py [--cells 2000] [--genes 36000]
        [--peaks 108000] [--genes-per-cell 2200] [--peaks-per-cell 7200]

Writes a synthetic file of PBMC-10k's features (random counts 1-3 at random positions, as
many per cell as PBMC-10k detects) in 10x's layout (``benchmarks/harness/tenx_files.py``),
then reads it with :func:`factvae_sk.datasets.read_10x_multiome` in a fresh process, which
reports its own peak resident memory (``VmHWM``) after importing the package and after
reading, and the bytes of the counts it returns.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchmarks.harness.memory import peak_rss_mb, run_fresh
from benchmarks.harness.tenx_files import features_frame, write_10x_h5


def _random_counts(rng, n_cells, n_features, per_cell):
    rows = np.repeat(np.arange(n_cells), per_cell)
    columns = rng.integers(0, n_features, n_cells * per_cell)
    values = rng.integers(1, 4, n_cells * per_cell)
    return sp.csr_matrix((values, (rows, columns)), shape=(n_cells, n_features))


def write(path, args):
    rng = np.random.default_rng(0)
    rna = _random_counts(rng, args.cells, args.genes, args.genes_per_cell)
    atac = _random_counts(rng, args.cells, args.peaks, args.peaks_per_cell)
    genes = pd.DataFrame(
        {
            "gene": [f"G{i}" for i in range(args.genes)],
            "chrom": "chr1",
            "start": np.arange(args.genes) * 1000,
            "end": np.arange(args.genes) * 1000 + 500,
        }
    )
    starts = np.arange(args.peaks) * 300
    peaks = pd.DataFrame({"chrom": "chr2", "start": starts, "end": starts + 200})
    barcodes = [f"B{i}-1" for i in range(args.cells)]
    write_10x_h5(path, rna, atac, features_frame(genes, peaks), barcodes)
    return rna.nnz + atac.nnz


def read(path):
    from factvae_sk.datasets import read_10x_multiome

    imported = peak_rss_mb()
    start = time.perf_counter()
    data = read_10x_multiome(path)
    seconds = time.perf_counter() - start
    kept = sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in (data.rna, data.atac))
    print(json.dumps({"seconds": seconds, "import_mb": imported, "peak_mb": peak_rss_mb(),
                      "counts_mb": kept / 2**20}))  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read", help=argparse.SUPPRESS)  # the fresh process's part
    for name, default in (("cells", 2000), ("genes", 36000), ("peaks", 108000)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--genes-per-cell", type=int, default=2200)
    parser.add_argument("--peaks-per-cell", type=int, default=7200)
    args = parser.parse_args(argv)
    if args.read:
        return read(args.read)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "filtered_feature_bc_matrix.h5"
        nnz = write(path, args)
        result = run_fresh(__file__, "--read", path)
    print(
        f"| {args.cells} | {args.genes} | {args.peaks} | {nnz / 1e6:.1f} M | "
        f"{result['seconds']:.1f} | {result['peak_mb'] - result['import_mb']:.0f} | "
        f"{result['counts_mb']:.0f} |"
    )


if __name__ == "__main__":
    sys.exit(main())
