"""Downstream outputs on held-out cells of the real SNARE-seq cell-line data, as tables.

    PYTHONPATH=. python benchmarks/eval_downstream.py [--epochs 300] [--model fitted.joblib]

One FactVAE (faithful defaults) is fitted on 80% of the cells (stratified by cell line),
on the highly variable genes plus the marker genes below. On the 20% held out:

1. Cross-modal imputation. For each cell line, the mean imputed accessibility of its
   held-out cells (from RNA alone, through ``impute_atac(X_rna=...)``, and from their own
   ATAC; plain and ``calibrate=True``) is correlated with their observed pseudobulk,
   against two baselines that use no held-out data: the mean accessibility of all training
   cells, and the training pseudobulk of the same cell line (an upper reference). Per cell:
   the mean log-probability of each held-out cell's reads under each profile.
2. Regulatory links of known markers (COL1A2 and COL1A1 in BJ, HBG2 in K562, MS4A1 and
   CD74 in GM12878, DPPA4, POU5F1 and LIN28A in H1): of each gene's 5 best-scoring peaks
   within 150 kb of its TSS, the fraction whose observed accessibility is highest in the
   marker's cell line, against the same fraction over every peak in the window.
"""

import argparse

import numpy as np
import pandas as pd

from benchmarks.harness.data import load_dataset
from benchmarks.harness.models import load_or_fit
from benchmarks.harness.splits import stratified_split
from factvae_sk import FactVAE

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
    """The SNARE-seq cell lines (highly variable genes and the markers), with their prior
    and a stratified 80/20 split of the cells."""
    data = load_dataset("snare", extra_genes=list(MARKERS))
    data.train, data.test = stratified_split(data.labels, seed)
    return data


def _per_1e4(profile):
    profile = np.asarray(profile, dtype=np.float64).ravel()
    return 1e4 * profile / profile.sum()


def _pearson(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def _reads_log_likelihood(counts, profiles):
    """Mean log-probability per read of each cell's reads under its profile (multinomial)."""
    profiles = np.asarray(profiles, dtype=np.float64)
    log_p = np.log(profiles / profiles.sum(axis=-1, keepdims=True))
    if log_p.ndim == 1:
        total = counts @ log_p
    else:
        total = np.asarray(counts.multiply(log_p).sum(axis=1)).ravel()
    return total / np.asarray(counts.sum(axis=1)).ravel()


def cross_modal_tables(model, data):
    """Per cell line: how well each prediction matches the held-out cells' accessibility."""
    test, train, atac = data.test, data.train, data.atac
    predictions = {
        "RNA -> ATAC": model.impute_atac(X_rna=data.rna[test], library_size=1e4, calibrate=False),
        "RNA -> ATAC, calibrated": model.impute_atac(
            X_rna=data.rna[test], library_size=1e4, calibrate=True
        ),
        "ATAC": model.impute_atac(atac[test], library_size=1e4, calibrate=False),
        "ATAC, calibrated": model.impute_atac(atac[test], library_size=1e4, calibrate=True),
    }
    # Baselines that see no held-out data: every training cell pooled, and (an upper
    # reference that knows the held-out cells' labels) the training cells of the same line.
    train_mean = np.asarray(atac[train].sum(axis=0)).ravel() + 0.5
    line_bulk = {
        line: np.asarray(atac[train[data.labels[train] == line]].sum(axis=0)).ravel() + 0.5
        for line in np.unique(data.labels)
    }
    linear, logged = [], []
    held_labels = data.labels[test]
    for line in np.unique(data.labels):
        held = held_labels == line
        observed = _per_1e4(atac[test[held]].sum(axis=0))
        profiles = {name: _per_1e4(values[held].mean(0)) for name, values in predictions.items()}
        profiles["training mean"] = _per_1e4(train_mean)
        profiles["training line bulk"] = _per_1e4(line_bulk[line])
        head = {"cell line": line, "cells": int(held.sum())}
        linear.append({**head, **{k: _pearson(v, observed) for k, v in profiles.items()}})
        logged.append(
            {**head, **{k: _pearson(np.log1p(v), np.log1p(observed)) for k, v in profiles.items()}}
        )
    reads = {
        name: _reads_log_likelihood(atac[test], values) for name, values in predictions.items()
    }
    reads["training mean"] = _reads_log_likelihood(atac[test], train_mean)
    reads["training line bulk"] = _reads_log_likelihood(
        atac[test], np.vstack([line_bulk[line] for line in held_labels])
    )
    per_read = pd.Series({name: values.mean() for name, values in reads.items()})
    return pd.DataFrame(linear), pd.DataFrame(logged), per_read


def marker_links_table(model, data, window=150_000, top=5, score=None):
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
        # None: the model's default score.
        **({} if score is None else {"score": score}),
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

    def fit():
        model = FactVAE(max_epochs=args.epochs, random_state=args.seed, verbose=1)
        return model.fit(data.rna[data.train], data.atac[data.train], prior=data.prior)

    model = load_or_fit(args.model, fit, message=f"fit on {len(data.train)} cells in {{seconds}} s")
    with pd.option_context("display.width", 120, "display.precision", 3):
        linear, logged, per_read = cross_modal_tables(model, data)
        print("\nPearson correlation of predicted and observed held-out pseudobulk, per line")
        print(linear.to_string(index=False))
        print("\nThe same on log1p(accessibility per 1e4)")
        print(logged.to_string(index=False))
        print("\nMean log-probability per held-out read (multinomial over peaks), per cell:")
        print(per_read.to_string())
        links = marker_links_table(model, data)
        print("\nMarker genes: are their best-scoring peaks accessible in their cell line?")
        print(links.to_string(index=False))
        print(
            f"\nfraction specific: top 5 {links.iloc[:, 3].mean():.2f} vs all peaks in the "
            f"window {links['window specific'].mean():.2f}"
        )


if __name__ == "__main__":
    main()
