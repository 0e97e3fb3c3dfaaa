"""Time of ``motif_matches`` with the numpy and the MOODS scanner, on a synthetic genome.

    PYTHONPATH=. python benchmarks/bench_motif_scan.py [--peaks 2000] [--motifs 100]

500-bp peaks on a synthetic genome (``simulate_motifs.py``); the motifs are the first
``--motifs`` JASPAR 2024 CORE vertebrate matrices when ``pyjaspar`` is installed (its
database ships inside the wheel: no network), else random PFMs. Both engines use the same
thresholds (p < 5e-5); the table says whether their matrices are identical.
"""

import argparse
import time

import numpy as np
import pandas as pd

from benchmarks.simulate_motifs import decoy_motifs, synthetic_genome
from factvae_sk.motifs import motif_matches


def load_motifs(n):
    try:
        from pyjaspar import jaspardb
    except ImportError:
        return decoy_motifs(np.random.default_rng(0), n), "random PFMs"
    found = jaspardb(release="JASPAR2024").fetch_motifs(
        collection="CORE", tax_group=["vertebrates"]
    )
    return found[:n], "JASPAR2024 CORE vertebrates"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peaks", type=int, default=2000)
    parser.add_argument("--motifs", type=int, default=100)
    args = parser.parse_args()
    genome = synthetic_genome(n_chrom=4, length=args.peaks * 700 // 4, n_peaks=args.peaks)
    motifs, source = load_motifs(args.motifs)
    rows, results = [], {}
    for engine in ("numpy", "moods"):
        try:
            start = time.perf_counter()
            results[engine] = motif_matches(genome.peaks, genome.genome, motifs, engine=engine)
            seconds = time.perf_counter() - start
        except ImportError:
            continue
        found = results[engine].matches
        rows.append({"engine": engine, "seconds": seconds, "matches": found.nnz})
    if len(results) == 2:
        same = (results["numpy"].matches != results["moods"].matches).nnz == 0
        for row in rows:
            row["identical"] = same
    print(f"{len(genome.peaks)} peaks x 500 bp, {args.motifs} motifs ({source})\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".1f"))


if __name__ == "__main__":
    main()
