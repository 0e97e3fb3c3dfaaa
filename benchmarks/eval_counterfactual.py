"""Counterfactual accessibility ("as if measured in sample b") against known sample effects.

    PYTHONPATH=. python benchmarks/eval_counterfactual.py [--dataset snare|kidney|both]
        [--epochs 80] [--kidney-cells 1500] [--seed 0]

The samples of ``eval_batches.py`` (:mod:`benchmarks.harness.samples`: three samples of
unequal cell-type composition, per-peak log-normal effects with sd 0.5, 0 / 10 / 20% of a
sample's peaks dropped, depths x1 / x0.6 / x0.4) have a known answer: decoding the same
cells as if measured in sample b rather than sample a should change each peak's share of
the counts by ``effect[b, p] / effect[a, p]``, up to one constant (the shares sum to one).
For every pair of samples each estimate of that per-peak log ratio is compared with the
truth: Pearson r over the peaks that neither sample drops and that hold at least 10 counts
in the original data, and AUROC of the estimate for telling the peaks sample b drops
(effect 0) from the others (lower is dropped).

Estimates:

- FactVAE: one fit with ``batch=`` (the default ``"decoder"`` design), then
  ``impute_atac(X_atac, batch=..., decode_batch=a / b, library_size=1e4)`` of **every**
  cell, averaged over cells per peak: the same cells in both samples, so composition
  cancels;
- pseudobulk: each sample's counts summed over its cells, as shares of its total (what a
  user gets without a model), confounded by the samples' different cell-type mix;
- pseudobulk per cell type (uses the true labels, which a user may not have): the mean over
  the types present in both samples of the types' pseudobulk log ratios.

Pseudobulks get half a count per peak so that every log ratio is finite.
"""

import argparse
import sys
import time
from itertools import combinations

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from benchmarks.eval_batches import markdown
from benchmarks.harness.samples import simulated_study
from factvae_sk import FactVAE

MIN_COUNTS = 10


def _shares(counts):
    """Per-peak share of a pseudobulk, with half a count per peak."""
    totals = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel() + 0.5
    return totals / totals.sum()


def pseudobulk_log_ratio(atac, sample, a, b):
    return np.log(_shares(atac[sample == b])) - np.log(_shares(atac[sample == a]))


def typed_pseudobulk_log_ratio(atac, sample, labels, a, b, min_cells=5):
    ratios = []
    for label in np.unique(labels):
        in_a, in_b = (labels == label) & (sample == a), (labels == label) & (sample == b)
        if in_a.sum() >= min_cells and in_b.sum() >= min_cells:
            ratios.append(np.log(_shares(atac[in_b])) - np.log(_shares(atac[in_a])))
    return np.mean(ratios, axis=0)


def decoded_profiles(model, atac, sample):
    """Per sample b: the mean over every cell of ``impute_atac(..., decode_batch=b)``."""
    return {
        target: model.impute_atac(atac, batch=sample, decode_batch=target, library_size=1e4).mean(
            axis=0, dtype=np.float64
        )
        for target in np.unique(sample)
    }


def compare(estimate, effect, a, b, informative):
    kept = informative & (effect[a] > 0) & (effect[b] > 0)
    truth = np.log(effect[b, kept]) - np.log(effect[a, kept])
    r = stats.pearsonr(estimate[kept], truth)[0]
    candidates = informative & (effect[a] > 0)
    dropped = effect[b, candidates] == 0
    auroc = (
        roc_auc_score(dropped, -estimate[candidates])
        if 0 < dropped.sum() < len(dropped)
        else np.nan
    )
    return r, auroc


def run(name, epochs, n_cells, seed):
    study = simulated_study(name, n_cells, seed)
    rna_b, atac_b, labels, sample = (study[k] for k in ("rna_b", "atac_b", "labels", "sample"))
    effects = study["effects"]
    informative = np.asarray(study["atac"].sum(axis=0)).ravel() >= MIN_COUNTS
    start = time.perf_counter()
    model = FactVAE(max_epochs=epochs, random_state=seed)
    model.fit(rna_b, atac_b, prior=study["prior"], batch=sample)
    print(f"  {name}: fit {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    profiles = decoded_profiles(model, atac_b, sample)  # each sample decoded once
    rows = []
    for a, b in combinations(range(3), 2):
        estimates = {
            "FactVAE, `decode_batch`": np.log(profiles[b]) - np.log(profiles[a]),
            "pseudobulk": pseudobulk_log_ratio(atac_b, sample, a, b),
            "pseudobulk per cell type (true labels)": typed_pseudobulk_log_ratio(
                atac_b, sample, labels, a, b
            ),
        }
        for label, estimate in estimates.items():
            r, auroc = compare(estimate, effects["peak"], a, b, informative)
            row = {"samples": f"{a} -> {b}", "estimate": label, "r": r, "dropped-peak AUROC": auroc}
            print(f"  {name}: {row}", file=sys.stderr, flush=True)
            rows.append(row)
    return rows, len(labels), int(informative.sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("snare", "kidney", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--kidney-cells", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = ("snare", "kidney") if args.dataset == "both" else (args.dataset,)
    for name in names:
        n_cells = args.kidney_cells if name == "kidney" else None
        rows, n, n_peaks = run(name, args.epochs, n_cells, args.seed)
        print(
            f"\n### {name}: {n} cells in 3 simulated samples, {n_peaks} peaks with >= "
            f"{MIN_COUNTS} counts, {args.epochs} epochs, seed {args.seed}\n"
        )
        print(markdown(rows), flush=True)


if __name__ == "__main__":
    main()
