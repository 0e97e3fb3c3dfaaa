"""Gene-peak link scores on simulated multiome data with known links, as Markdown tables.

    python benchmarks/simulate_links.py [--epochs 100] [--seeds 0 1 2] [--levels easy hard]

The simulator (:func:`simulate`): cells share latent states (clusters plus a continuous
component); a gene's expression and a peak's accessibility are log-linear in the state
through their loadings; a peak linked to a gene carries the gene's loading plus noise
(``strength`` sets the share), every other peak its own random loading. Genes and peaks
sit on synthetic chromosomes, each gene with linked and unlinked peaks within 50 kb of its
TSS; as on real CRISPRi screens, the chance that a peak is linked falls with its distance to
the TSS (linked peaks' distances follow a power law, unlinked ones are uniform). Counts
are negative binomial around ``library * softmax(logits)``: RNA about
``rna_depth`` UMIs per cell, ATAC far sparser (``atac_depth`` fragments over all peaks).

The benchmark gives FactVAE (faithful defaults) a prior made of half the true links plus
decoys (unlinked peaks near the same genes, a quarter of the prior), and ranks the other
half of the true links among every in-window pair that is not in the prior. Each model
score is reported beside the pseudobulk correlation of the counts over the true states
and over k-means metacells (:func:`factvae_sk.links.peak_gene_correlation`), which need
no model, and beside distance to the TSS alone and the distance-aware scores of
``regulatory_links`` (the shipped link model, ABC). AUROC and AUPRC, mean and standard
deviation over seeds, per difficulty level.
"""

import argparse
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.utils import Bunch

from factvae_sk import FactVAE, build_gene_peak_prior
from factvae_sk.analysis import _link_model
from factvae_sk.links import peak_gene_correlation
from factvae_sk.prior import tss_distance

# Difficulty levels: how much of a linked peak's loading is its gene's, and sequencing depth.
LEVELS = {
    "easy": dict(strength=0.8, rna_depth=2000, atac_depth=1500),
    "medium": dict(strength=0.6, rna_depth=1000, atac_depth=500),
    "hard": dict(strength=0.4, rna_depth=500, atac_depth=150),
}
SCORES = ("cosine", "correlation", "log_mean_correlation")
BACKGROUND = 30


def simulate(
    n_cells=1200,
    n_genes=600,
    n_states=6,
    n_factors=8,
    strength=0.6,
    rna_depth=1000,
    atac_depth=500,
    linked_per_gene=2,
    unlinked_per_gene=4,
    window=50_000,
    decay=5_000,
    seed=0,
):
    """Paired RNA and ATAC counts with known gene-peak links.

    Linked peaks lie nearer their gene's TSS than unlinked ones: their distance follows a
    power law with scale ``decay`` bp (``None``: uniform in the window, like the others).

    Returns
    -------
    Bunch
        ``rna``, ``atac`` (CSR counts), ``labels`` (state of each cell), ``genes`` and
        ``peaks`` (coordinate tables), ``links`` (genes x peaks CSR, 1 on true links) and
        ``window`` (genes x peaks CSR, 1 on every pair within ``window`` bp of the TSS).
    """
    rng = np.random.default_rng(seed)
    # Cell states: cluster centres plus a continuous spread within and across clusters.
    centres = rng.normal(0, 1.0, (n_states, n_factors))
    labels = rng.integers(0, n_states, n_cells)
    states = centres[labels] + rng.normal(0, 0.5, (n_cells, n_factors))

    gene_loadings = rng.normal(0, 0.6, (n_genes, n_factors))
    # Genes every 150 kb on average, on 8 chromosomes: windows of neighbours overlap.
    chrom_of_gene = np.sort(rng.integers(0, 8, n_genes))
    tss = np.zeros(n_genes, dtype=np.int64)
    for chrom in range(8):
        on = chrom_of_gene == chrom
        tss[on] = np.sort(rng.integers(100_000, 100_000 + 150_000 * on.sum(), on.sum()))
    peak_gene, peak_linked = [], []
    for gene in range(n_genes):
        peak_gene += [gene] * (linked_per_gene + unlinked_per_gene)
        peak_linked += [True] * linked_per_gene + [False] * unlinked_per_gene
    peak_gene, peak_linked = np.array(peak_gene), np.array(peak_linked)
    n_peaks = len(peak_gene)
    # Distance from the TSS: unlinked peaks anywhere in the window; linked ones from a power
    # law, density ~ 1 / (d + decay), so that, as on CRISPRi screens, the chance that a
    # peak is a link falls with its distance (decay=None: uniform, the earlier simulator).
    span = window - 500
    distance = rng.uniform(0, span, n_peaks)
    if decay is not None:
        u = rng.random(n_peaks)
        power_law = decay * ((1 + span / decay) ** u - 1)
        distance = np.where(peak_linked, power_law, distance)
    sign = np.where(rng.random(n_peaks) < 0.5, -1, 1)
    centre = tss[peak_gene] + (sign * distance).astype(np.int64)
    own = rng.normal(0, 0.6, (n_peaks, n_factors))
    mix = np.where(peak_linked, strength, 0.0)[:, None]
    peak_loadings = mix * gene_loadings[peak_gene] + np.sqrt(1 - mix**2) * own

    rna = _counts(states @ gene_loadings.T + rng.normal(0, 1, n_genes), rna_depth, 5.0, rng)
    atac = _counts(states @ peak_loadings.T + rng.normal(0, 1, n_peaks), atac_depth, 2.0, rng)

    chroms = np.array([f"chr{c + 1}" for c in chrom_of_gene])
    genes = pd.DataFrame(
        {
            "gene": [f"g{i}" for i in range(n_genes)],
            "chrom": chroms,
            "start": tss,
            "end": tss + 10_000,
            "strand": "+",
        }
    )
    order = np.lexsort((centre, chrom_of_gene[peak_gene]))
    peaks = pd.DataFrame(
        {
            "chrom": chroms[peak_gene],
            "start": centre - 250,
            "end": centre + 250,
        }
    )
    peaks.insert(
        0, "peak", peaks.chrom + ":" + peaks.start.astype(str) + "-" + peaks.end.astype(str)
    )
    # Peaks in genome order, as real peak sets come.
    peaks, atac = peaks.iloc[order].reset_index(drop=True), atac[:, order]
    peak_gene, peak_linked = peak_gene[order], peak_linked[order]
    links = sp.csr_matrix(
        (np.ones(peak_linked.sum()), (peak_gene[peak_linked], np.flatnonzero(peak_linked))),
        shape=(n_genes, n_peaks),
    )
    in_window = build_gene_peak_prior(genes, peaks, mode="tss_window", window=window)
    return Bunch(
        rna=rna,
        atac=atac,
        labels=labels,
        genes=genes,
        peaks=peaks,
        links=links,
        window=(in_window != 0).astype(np.float32).tocsr(),
    )


def _counts(logits, depth, dispersion, rng):
    """Negative binomial counts with mean ``library * softmax(logits)`` per cell, as CSR."""
    library = depth * rng.lognormal(0, 0.4, len(logits))
    logits = logits - logits.max(axis=1, keepdims=True)
    mean = np.exp(logits)
    mean *= (library / mean.sum(axis=1))[:, None]
    counts = rng.poisson(rng.gamma(dispersion, mean / dispersion))
    # Every cell needs a read in each modality: give an empty cell one at its likeliest feature.
    empty = counts.sum(axis=1) == 0
    counts[empty, np.argmax(mean[empty], axis=1)] = 1
    return sp.csr_matrix(counts.astype(np.float32))


def prior_and_held_out(data, seed=0, decoys=0.25):
    """Prior (half the true links plus decoys) and the held-out candidates with labels.

    Returns ``(prior, rows, cols, labels)``: the candidates are every in-window pair not in
    the prior; ``labels`` marks the held-out true links among them.
    """
    rng = np.random.default_rng(seed)
    links = sp.coo_matrix(data.links)
    given = rng.random(links.nnz) < 0.5
    window = sp.coo_matrix(data.window)
    is_link = np.asarray(data.links[window.row, window.col]).ravel() > 0
    non_links = np.flatnonzero(~is_link)
    n_decoys = int(round(decoys / (1 - decoys) * given.sum()))
    chosen = rng.choice(non_links, n_decoys, replace=False)
    rows = np.r_[links.row[given], window.row[chosen]]
    cols = np.r_[links.col[given], window.col[chosen]]
    prior = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=data.links.shape)
    in_prior = np.asarray(prior[window.row, window.col]).ravel() > 0
    keep = ~in_prior
    return prior, window.row[keep], window.col[keep], is_link[keep]


def ranking(labels, scores):
    """AUROC and AUPRC of ranking the positives first (missing scores rank last)."""
    scores = np.asarray(scores, dtype=np.float64)
    missing = np.isnan(scores)
    scores = np.where(missing, np.nanmin(scores) - 1 if (~missing).any() else 0, scores)
    return roc_auc_score(labels, scores), average_precision_score(labels, scores)


def auc_summary(tables):
    """Mean and sd over seeds of each score's AUROC and AUPRC (one row per score)."""
    results = pd.concat(tables)
    summary = results.groupby("score", sort=False)[["AUROC", "AUPRC"]].agg(["mean", "std"])
    summary.columns = [f"{metric} {stat}" for metric, stat in summary.columns]
    return summary


def evaluate(data, epochs, seed):
    """One row per score: AUROC and AUPRC of the held-out links of one simulated dataset."""
    prior, rows, cols, labels = prior_and_held_out(data, seed)
    pattern = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=prior.shape)

    def values(matrix):
        return np.asarray(matrix[rows, cols]).ravel()

    found = {}
    start = time.perf_counter()
    model = FactVAE(max_epochs=epochs, random_state=seed).fit(data.rna, data.atac, prior=prior)
    fit_seconds = time.perf_counter() - start
    for score in SCORES:
        found[score] = values(model.regulatory_scores(pattern, score=score))
        zscores = model.regulatory_scores(pattern, score=score, background=BACKGROUND)
        found[f"{score}, z vs {BACKGROUND} bg"] = values(zscores)
    found["distance to TSS"] = -tss_distance(data.genes, data.peaks, rows, cols)
    features = model.link_features(rows, cols, data.genes, data.peaks)
    for score in ("logistic", "abc", "abc_correlation"):
        found[score] = _link_model.combine(features, score)
    for name, groups in [
        ("pseudobulk r, true states", data.labels),
        ("pseudobulk r, metacells", None),
    ]:
        r = peak_gene_correlation(data.rna, data.atac, pattern, groups=groups, random_state=seed)
        found[name] = values(r)
    rows_out = [
        {"score": name, **dict(zip(["AUROC", "AUPRC"], ranking(labels, v), strict=True))}
        for name, v in found.items()
    ]
    return pd.DataFrame(rows_out), labels.mean(), fit_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--levels", nargs="+", choices=list(LEVELS), default=list(LEVELS))
    parser.add_argument("--cells", type=int, default=800)
    parser.add_argument("--genes", type=int, default=400)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for level in args.levels:
        tables, chance = [], []
        for seed in args.seeds:
            data = simulate(n_cells=args.cells, n_genes=args.genes, seed=seed, **LEVELS[level])
            table, positives, seconds = evaluate(data, args.epochs, seed)
            nonzero = data.atac.nnz / data.atac.shape[0]
            print(
                f"{level}, seed {seed}: fit {seconds:.0f} s; ATAC {nonzero:.0f} non-zero "
                f"peaks per cell of {data.atac.shape[1]}; RNA "
                f"{data.rna.sum() / data.rna.shape[0]:.0f} UMI per cell",
                flush=True,
            )
            print(table.to_markdown(index=False, floatfmt=".3f"), flush=True)
            tables.append(table)
            chance.append(positives)
        summary = auc_summary(tables)
        print(
            f"\n### Simulated links, {level} ({LEVELS[level]}; {args.cells} cells, "
            f"{args.genes} genes; {args.epochs} epochs; seeds {args.seeds}; chance AUPRC "
            f"{np.mean(chance):.3f})\n"
        )
        print(summary.reset_index().to_markdown(index=False, floatfmt=".3f"), flush=True)


if __name__ == "__main__":
    main()
