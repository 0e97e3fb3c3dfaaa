"""Synthetic genome, peaks with planted motifs and paired counts, for the motif-activity checks.

A few chromosomes of random sequence at 41% GC (the human average) with soft-masked
(lower-case) stretches and runs of N; 500-bp peaks on them; a known motif planted in a
subset of peaks; paired RNA + ATAC counts of groups of cells in which each group opens its
own peaks and the planted-motif peaks open further in the ``target`` group. Used by
``tests/test_motifs.py`` and ``benchmarks/eval_motifs.py``.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils import Bunch

BASES = np.array(list("ACGT"))
# A GATA-like 10-bp motif (counts of 20 sites; a little degenerate, as real motifs are).
PLANTED = np.array(
    [
        [2, 14, 2, 2],
        [17, 1, 1, 1],
        [1, 1, 17, 1],
        [18, 0, 1, 1],
        [1, 0, 0, 19],
        [19, 0, 1, 0],
        [17, 1, 1, 1],
        [1, 1, 17, 1],
        [2, 2, 14, 2],
        [5, 5, 5, 5],
    ],
    dtype=float,
)


def random_sequence(rng, length, gc=0.41):
    p = np.array([1 - gc, gc, gc, 1 - gc]) / 2
    return BASES[rng.choice(4, size=length, p=p)]


def decoy_motifs(rng, n, length=(8, 14)):
    """Random informative PFMs (Dirichlet columns), as counts of 20 sites."""
    motifs = {}
    for i in range(n):
        width = rng.integers(length[0], length[1] + 1)
        motifs[f"decoy{i:02d}"] = np.round(rng.dirichlet(np.full(4, 0.4), size=width) * 20)
    return motifs


def sample_site(rng, pfm):
    p = pfm / pfm.sum(axis=1, keepdims=True)
    return "".join(BASES[rng.choice(4, p=row)] for row in p)


def synthetic_genome(
    n_chrom=3, length=500_000, n_peaks=2000, peak_width=500, planted_fraction=0.1, seed=0
):
    """Chromosomes, a peak table and which peaks hold the planted motif.

    Returns a Bunch: ``genome`` ({contig: str}, soft-masked stretches and N runs included),
    ``peaks`` (chrom, start, end, peak), ``planted`` (bool per peak).
    """
    rng = np.random.default_rng(seed)
    genome = {}
    per_chrom = n_peaks // n_chrom
    rows, planted = [], []
    for c in range(n_chrom):
        name = f"chr{c + 1}"
        chars = random_sequence(rng, length)
        # Peaks on a regular grid with jitter, never overlapping.
        slot = length // per_chrom
        starts = np.arange(per_chrom) * slot + rng.integers(0, slot - peak_width, per_chrom)
        for start in starts:
            holds = rng.random() < planted_fraction
            if holds:
                for _ in range(rng.integers(1, 3)):  # one or two sites
                    site = sample_site(rng, PLANTED)
                    if rng.random() < 0.5:  # either strand
                        site = site[::-1].translate(str.maketrans("ACGT", "TGCA"))
                    at = start + rng.integers(0, peak_width - len(site))
                    chars[at : at + len(site)] = list(site)
            rows.append((name, int(start), int(start + peak_width)))
            planted.append(holds)
        text = "".join(chars)
        # Soft-masking (repeats in lower case) and N runs, as real assemblies have.
        for at in rng.integers(0, length - 300, 40):
            text = text[:at] + text[at : at + 300].lower() + text[at + 300 :]
        for at in rng.integers(0, length - 50, 5):
            text = text[:at] + "N" * 50 + text[at + 50 :]
        genome[name] = text
    peaks = pd.DataFrame(rows, columns=["chrom", "start", "end"])
    peaks["peak"] = peaks.chrom + ":" + peaks.start.astype(str) + "-" + peaks.end.astype(str)
    return Bunch(genome=genome, peaks=peaks, planted=np.array(planted))


def write_fasta(genome, path, width=60):
    with open(path, "w") as handle:
        for name, sequence in genome.items():
            handle.write(f">{name}\n")
            for start in range(0, len(sequence), width):
                handle.write(sequence[start : start + width] + "\n")
    return path


def paired_counts(
    planted,
    n_cells=1000,
    n_groups=4,
    depth=1000,
    rna_depth=1500,
    n_genes=400,
    effect=0.7,
    target=0,
    seed=0,
):
    """Paired RNA and ATAC counts of ``n_groups`` groups; planted peaks open in ``target``.

    Each group opens 10% of the peaks (log-mean +1.5) and raises 10% of the genes; the
    planted peaks get ``effect`` more log-accessibility in the ``target`` group. ATAC cells
    hold ``depth`` fragments in peaks on average (Poisson, cell depth varies log-normally).
    """
    rng = np.random.default_rng(seed)
    n_peaks = len(planted)
    groups = np.arange(n_cells) % n_groups
    base = rng.normal(0, 1, n_peaks)
    opened = rng.random((n_groups, n_peaks)) < 0.1
    log_atac = base + 1.5 * opened
    log_atac[target] += effect * planted
    log_rna = rng.normal(0, 1, n_genes) + 2.0 * (rng.random((n_groups, n_genes)) < 0.1)

    def counts(log_mean, total):
        p = np.exp(log_mean - log_mean.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        scale = total * np.exp(rng.normal(0, 0.3, n_cells))
        values = rng.poisson(p[groups] * scale[:, None])
        values[values.sum(axis=1) == 0, 0] = 1  # every cell needs a count
        return sp.csr_matrix(values.astype(np.float32))

    return Bunch(
        rna=counts(log_rna, rna_depth),
        atac=counts(log_atac, depth),
        groups=np.array([f"group{g}" for g in groups], dtype=object),
        target=f"group{target}",
    )
