"""What a validation split and early stopping do to held-out cells, as Markdown tables.

    PYTHONPATH=. python benchmarks/eval_early_stopping.py [--dataset snare kidney]
        [--seed 0] [--every 20] [--out results.json]

Per dataset, the cells are split 80/20 stratified by label; every model is fitted on the
80% with the faithful defaults (the SNARE cell lines: the 2000 highly variable genes; the
kidney: all 5000 genes; both with the gene-body overlap prior). Compared:

- no early stopping, evaluated after 100 and 300 epochs (``--stages``; one run continued
  by warm starts, which give the same model as the total epochs at once);
- early stopping (``early_stopping=True``, ``validation_fraction=0.1`` of the training
  cells, patience ``n_iter_no_change=10``, at most 300 epochs) on the validation ELBO and
  on the validation loss (``early_stopping_metric``), with the epoch it stopped at and the
  best epoch (whose weights it keeps).

On the 20% held out: KMeans ARI (k = number of labels, 10 inits) of the ATAC and of the
RNA embedding, the mean ELBO (``score``), and per-cell Pearson r between each cell's
observed ATAC counts and its imputed accessibility, from its own ATAC
(``impute_atac(X_atac)``) and from its RNA alone (``impute_atac(X_rna=...)``), beside the
training cells' mean profile (a baseline that uses no held-out data). A second table
follows the held-out ARI and ELBO every ``--every`` epochs of the 300-epoch run, beside
the early-stopping run's validation ELBO, to show where the held-out optimum lies.
"""

import argparse
import json
import sys
import time

import numpy as np
import torch
from skorch.callbacks import Callback

from benchmarks.harness.clustering import kmeans_ari as ari
from benchmarks.harness.data import load_dataset
from benchmarks.harness.splits import stratified_split
from factvae_sk import FactVAE


def per_cell_r(observed, predict, n_cells, block=256):
    """Mean over cells of Pearson r between observed counts and a prediction, in blocks.

    ``predict(start, stop)`` gives the dense predictions of cells ``start:stop``.
    """
    rs = []
    for start in range(0, n_cells, block):
        stop = min(start + block, n_cells)
        pred = np.asarray(predict(start, stop), dtype=np.float64)
        obs = observed[start:stop].toarray().astype(np.float64)
        pred = pred - pred.mean(axis=1, keepdims=True)
        obs = obs - obs.mean(axis=1, keepdims=True)
        denom = np.sqrt((pred**2).sum(axis=1) * (obs**2).sum(axis=1))
        rs.append((pred * obs).sum(axis=1) / np.where(denom > 0, denom, np.nan))
    return float(np.nanmean(np.concatenate(rs)))


def held_out_metrics(model, data, test):
    rna, atac, labels = data.rna[test], data.atac[test], data.labels[test]
    z_rna = model.set_params(embedding="rna").transform(rna)
    z_atac = model.set_params(embedding="atac").transform(rna, atac)
    model.set_params(embedding="rna")
    return {
        "ari_atac": ari(z_atac, labels),
        "ari_rna": ari(z_rna, labels),
        "elbo": model.score(rna, atac),
        "r_from_atac": per_cell_r(atac, lambda a, b: model.impute_atac(atac[a:b]), len(test)),
        "r_from_rna": per_cell_r(atac, lambda a, b: model.impute_atac(X_rna=rna[a:b]), len(test)),
    }


class HeldOutCurve(Callback):
    """Every ``every`` epochs, the held-out cells' ATAC and RNA ARI and mean ELBO.

    The estimator's encoder inputs are fitted before training starts, so it can embed
    cells while its net trains (the net returns to training mode at the next step).
    """

    def __init__(self, model, data, test, every):
        self.model, self.data, self.test, self.every = model, data, test, every
        self.rows = []

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        if epoch % self.every:
            return
        rna, atac = self.data.rna[self.test], self.data.atac[self.test]
        labels = self.data.labels[self.test]
        model = self.model
        z_atac = model._codes(model._dataset(rna, atac, with_counts=False), ("atac",))
        z_rna = model._codes(model._dataset(rna, None, with_counts=False), ("rna",))
        row = {
            "epoch": epoch,
            "ari_atac": ari(z_atac, labels),
            "ari_rna": ari(z_rna, labels),
            "elbo": model.score(rna, atac),
        }
        self.rows.append(row)
        print(f"  epoch {epoch}: {row}", file=sys.stderr, flush=True)


def mean_profile_r(data, train, test):
    profile = np.asarray(data.atac[train].mean(axis=0)).ravel()
    return per_cell_r(data.atac[test], lambda a, b: np.tile(profile, (b - a, 1)), len(test))


def run(name, seed, every, epochs=300, runs=("fixed", "early"), stages=(100, 300), report=None):
    data = load_dataset(name)
    train, test = stratified_split(data.labels, seed)
    results = {"dataset": name, "n_train": len(train), "n_test": len(test)}
    results["mean_profile_r"] = mean_profile_r(data, train, test)
    if "fixed" in runs:
        stages = sorted(s for s in stages if s <= epochs)

        def partial(fixed):
            if report is not None:
                report({**results, **fixed})

        results.update(fixed_run(data, train, test, seed, every, stages, partial))
    if "early" in runs:
        results.update(early_stopping_run(data, train, test, seed, every, epochs))
    if "early_loss" in runs:
        loss = early_stopping_run(data, train, test, seed, every, epochs, metric="loss")
        results.update({f"{key}_loss": value for key, value in loss.items()})
    return results


def fixed_run(data, train, test, seed, every, stages, report):
    """No early stopping, evaluated after each number of epochs in ``stages``: one run,
    continued by warm starts (which give exactly the model of the total epochs at once).
    ``report(partial_results)`` is called after each stage."""
    fit_args = (data.rna[train], data.atac[train])
    results = {"rows": [], "curve": []}
    model = FactVAE(random_state=seed, warm_start=True)
    curve = HeldOutCurve(model, data, test, every)
    model.set_params(callbacks=[("held_out", curve)])
    start, done = time.perf_counter(), 0
    for stage in stages:
        model.set_params(max_epochs=stage - done)
        model.fit(*fit_args, prior=data.prior)
        done = stage
        row = {"setting": f"no early stopping, {stage} epochs", "epochs": stage}
        row.update(held_out_metrics(model, data, test), seconds=time.perf_counter() - start)
        results["rows"].append(row)
        results["curve"] = curve.rows
        report(results)
    return results


def early_stopping_run(data, train, test, seed, every, epochs, metric="elbo"):
    """Early stopping on 10% of the training cells, watching ``metric``."""
    fit_args = (data.rna[train], data.atac[train])
    model = FactVAE(
        max_epochs=epochs,
        random_state=seed,
        early_stopping=True,
        validation_fraction=0.1,
        early_stopping_metric=metric,
    )
    curve = HeldOutCurve(model, data, test, every)
    model.set_params(callbacks=[("held_out", curve)])
    start = time.perf_counter()
    model.fit(*fit_args, prior=data.prior)
    history = model.history_
    valid = np.asarray(history[:, "valid_elbo"])
    watched = valid if metric == "elbo" else -np.asarray(history[:, "valid_loss"])
    row = {
        "setting": f"early stopping on the validation {metric} (0.1 of the cells, "
        f"patience 10, max {epochs})",
        "epochs": len(history),
        "best_epoch": int(np.argmax(watched)) + 1,
    }
    row.update(held_out_metrics(model, data, test), seconds=time.perf_counter() - start)
    return {"rows_es": [row], "curve_es": curve.rows, "valid_elbo": valid.tolist()}


def tables(results):
    name = results["dataset"]
    lines = [
        f"### {name}: {results['n_train']} training cells, {results['n_test']} held out",
        "",
        "| setting | epochs run (best) | ATAC ARI | RNA ARI | held-out ELBO "
        "| r, impute_atac(X_atac) | r, impute_atac(X_rna=) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in (
        results.get("rows", []) + results.get("rows_es", []) + results.get("rows_es_loss", [])
    ):
        epochs = str(row["epochs"]) + (f" ({row['best_epoch']})" if "best_epoch" in row else "")
        lines.append(
            f"| {row['setting']} | {epochs} | {row['ari_atac']:.3f} | {row['ari_rna']:.3f} "
            f"| {row['elbo']:.4g} | {row['r_from_atac']:.3f} | {row['r_from_rna']:.3f} |"
        )
    lines.append(
        f"| training mean profile (baseline) | - | - | - | - "
        f"| {results['mean_profile_r']:.3f} | {results['mean_profile_r']:.3f} |"
    )
    lines += (
        []
        if "curve" not in results
        else [
            "",
            f"Held-out cells along training ({name}; no early stopping, all training cells):",
            "",
            "| epoch | ATAC ARI | RNA ARI | held-out ELBO |",
            "| --- | --- | --- | --- |",
        ]
    )
    for row in results.get("curve", []):
        lines.append(
            f"| {row['epoch']} | {row['ari_atac']:.3f} | {row['ari_rna']:.3f} | {row['elbo']:.4g} |"
        )
    if results.get("curve_es"):
        lines += [
            "",
            f"Early-stopping run ({name}): held-out cells and validation ELBO along training:",
            "",
            "| epoch | ATAC ARI | RNA ARI | held-out ELBO | validation ELBO |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in results["curve_es"]:
            valid = results["valid_elbo"][row["epoch"] - 1]
            lines.append(
                f"| {row['epoch']} | {row['ari_atac']:.3f} | {row['ari_rna']:.3f} "
                f"| {row['elbo']:.4g} | {valid:.4g} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", nargs="+", default=["snare", "kidney"], choices=["snare", "kidney"]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=20, help="epochs between curve points")
    parser.add_argument(
        "--epochs",
        type=int,
        default=300,
        help="early stopping's limit of epochs, and the last stage at most",
    )
    parser.add_argument(
        "--stages",
        nargs="+",
        type=int,
        default=[100, 300],
        help="epochs at which the run without early stopping is evaluated",
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["fixed", "early", "early_loss"],
        choices=["fixed", "early", "early_loss"],
        help="fixed: no early stopping, evaluated at each stage; early: early stopping on "
        "the validation ELBO; early_loss: on the validation loss (the default metric)",
    )
    parser.add_argument("--out", help="also write the raw results as JSON here")
    parser.add_argument(
        "--from-json",
        nargs="+",
        help="print tables of earlier --out files (files of one dataset merge)",
    )
    args = parser.parse_args()
    if args.from_json:
        merged = {}
        for path in args.from_json:
            with open(path) as f:
                results = json.load(f)
            into = merged.setdefault(results["dataset"], {})
            # A file of one run holds empty lists for the others.
            into.update({key: value for key, value in results.items() if value or key not in into})
        for results in merged.values():
            print(tables(results) + "\n")
        return
    torch.set_num_threads(1)
    for name in args.dataset:
        out = None
        if args.out:
            out = args.out if len(args.dataset) == 1 else f"{name}_{args.out}"

        def report(partial, out=out):
            # Long runs: each stage's table as soon as it is measured.
            print(tables(partial) + "\n", file=sys.stderr, flush=True)
            if out:
                with open(out, "w") as f:
                    json.dump(partial, f, default=float)

        results = run(name, args.seed, args.every, args.epochs, args.runs, args.stages, report)
        print(tables(results) + "\n", flush=True)
        if out:
            with open(out, "w") as f:
                json.dump(results, f, default=float)


if __name__ == "__main__":
    main()
