"""Downstream outputs on held-out cells of the real SNARE-seq cell-line data, as tables.

    python benchmarks/eval_downstream.py [--epochs 300] [--model fitted.joblib]

One FactVAE (faithful defaults) is fitted on 80% of the cells (stratified by cell line),
on the highly variable genes plus the marker genes below. On the 20% held out:

1. Cross-modal imputation. For each cell line, the mean imputed accessibility of its
   held-out cells (from RNA alone, through ``impute_atac(X_rna=...)``, and from their own
   ATAC) is correlated with their observed pseudobulk, against two baselines that use no
   held-out data: the mean accessibility of all training cells, and the training
   pseudobulk of the same cell line (an upper reference). Per cell: the correlation of a
   cell's profile with the observed pseudobulk of the *other* held-out cells of its line.
   Correlations are Pearson on log1p of accessibility per 1e4.
2. Regulatory links of known markers (COL1A2 and COL1A1 in BJ, HBG2 in K562, MS4A1 and
   CD74 in GM12878, DPPA4, POU5F1 and LIN28A in H1): of each gene's 5 best-scoring peaks
   within 150 kb of its TSS, the fraction whose observed accessibility is highest in the
   marker's cell line, against the same fraction over every peak in the window.
"""

import argparse
import time

import joblib
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from factvae_sk import FactVAE, gene_peak_prior, load_snare_cellline

MARKERS = {
    "COL1A2": "BJ",
    "COL1A1": "BJ",
    "HBG2": "K562",
    "MS4A1": "GM",
    "CD74": "GM",
    "DPPA4": "H1",
    "POU5F1": "H1",
    "LIN28A": "H1",
}


def load(seed=0):
    data = load_snare_cellline()
    keep = data.genes.highly_variable.to_numpy() | data.genes.gene.isin(MARKERS).to_numpy()
    data.genes = data.genes[keep].reset_index(drop=True)
    data.rna = data.rna[:, keep]
    data.labels = data.cells.cell_line.to_numpy()
    data.train, data.test = train_test_split(
        np.arange(len(data.labels)), test_size=0.2, stratify=data.labels, random_state=seed
    )
    return data


def _log_norm(profiles):
    profiles = np.asarray(profiles, dtype=np.float64)
    return np.log1p(1e4 * profiles / profiles.sum(axis=-1, keepdims=True))


def _corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def cross_modal_table(model, data):
    test = data.test
    from_rna = model.impute_atac(X_rna=data.rna[test], library_size=1e4)
    from_atac = model.impute_atac(data.atac[test], library_size=1e4)
    train_mean = np.asarray(data.atac[data.train].mean(axis=0)).ravel()
    rows, per_cell = [], {"RNA -> ATAC": [], "ATAC": [], "training mean": []}
    for line in np.unique(data.labels):
        held = data.labels[test] == line
        observed = np.asarray(data.atac[test[held]].sum(axis=0)).ravel()
        train_line = data.train[data.labels[data.train] == line]
        line_bulk = np.asarray(data.atac[train_line].sum(axis=0)).ravel()
        target = _log_norm(observed)
        rows.append(
            {
                "cell line": line,
                "held-out cells": int(held.sum()),
                "RNA -> ATAC": _corr(_log_norm(from_rna[held].mean(0)), target),
                "ATAC": _corr(_log_norm(from_atac[held].mean(0)), target),
                "training mean": _corr(_log_norm(train_mean), target),
                "training line bulk": _corr(_log_norm(line_bulk), target),
            }
        )
        # Per cell, against the pseudobulk of the other held-out cells of its line.
        counts = data.atac[test[held]]
        total = np.asarray(counts.sum(axis=0)).ravel()
        for i in range(counts.shape[0]):
            others = _log_norm(total - counts[i].toarray().ravel())
            per_cell["RNA -> ATAC"].append(_corr(_log_norm(from_rna[held][i]), others))
            per_cell["ATAC"].append(_corr(_log_norm(from_atac[held][i]), others))
            per_cell["training mean"].append(_corr(_log_norm(train_mean), others))
    table = pd.DataFrame(rows)
    medians = {name: float(np.median(values)) for name, values in per_cell.items()}
    return table, medians


def marker_links_table(model, data, window=150_000, top=5):
    atac = data.atac
    line_means = {
        line: np.asarray(atac[data.labels == line].sum(axis=0)).ravel()
        / atac[data.labels == line].sum()
        for line in np.unique(data.labels)
    }
    lines = np.array(list(line_means))
    top_line = lines[np.argmax(np.vstack([line_means[line] for line in lines]), axis=0)]
    links = model.regulatory_links(
        "window",
        genes=[g for g in MARKERS if g in set(data.genes.gene)],
        gene_table=data.genes,
        peak_table=data.peaks,
        window=window,
    )
    peak_line = pd.Series(top_line, index=data.peaks.peak)
    rows = []
    for gene, line in MARKERS.items():
        candidates = links[links.gene == gene]
        if candidates.empty:
            continue
        specific = peak_line.loc[candidates.peak].to_numpy() == line
        rows.append(
            {
                "gene": gene,
                "cell line": line,
                "peaks in window": len(candidates),
                f"top {top} specific": specific[:top].mean(),
                "window specific": specific.mean(),
                f"top {top} score": candidates.score.iloc[:top].mean(),
            }
        )
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="joblib file: load it if it exists, else fit and save")
    args = parser.parse_args()
    data = load(args.seed)
    try:
        model = joblib.load(args.model) if args.model else None
    except FileNotFoundError:
        model = None
    if model is None:
        prior = gene_peak_prior(data.genes, data.peaks)
        start = time.perf_counter()
        model = FactVAE(max_epochs=args.epochs, random_state=args.seed, verbose=1)
        model.fit(data.rna[data.train], data.atac[data.train], prior=prior)
        print(f"fit on {len(data.train)} cells in {time.perf_counter() - start:.0f} s")
        if args.model:
            joblib.dump(model, args.model)
    with pd.option_context("display.width", 120, "display.precision", 3):
        table, medians = cross_modal_table(model, data)
        print("\nPseudobulk correlation with the observed held-out accessibility, per line")
        print(table.to_string(index=False))
        print("\nMedian per-cell correlation with the other held-out cells of the line:")
        print("  " + "  ".join(f"{name}: {value:.3f}" for name, value in medians.items()))
        links = marker_links_table(model, data)
        print("\nMarker genes: are their best-scoring peaks accessible in their cell line?")
        print(links.to_string(index=False))
        print(
            f"\nfraction specific: top 5 {links.iloc[:, 3].mean():.2f} vs all peaks in the "
            f"window {links['window specific'].mean():.2f}"
        )


if __name__ == "__main__":
    main()
