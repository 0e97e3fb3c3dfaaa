"""Gene-peak link scores on real data: held-out prior links and the marker test, as tables.

    python benchmarks/eval_links.py --dataset snare [--epochs 100] [--seeds 0 1]
    python benchmarks/eval_links.py --dataset kidney [--model-dir fits/]

Held-out prior links. The overlap prior (gene body + 2 kb upstream) is split at random:
FactVAE (faithful defaults otherwise) is fitted on every cell with 80% of the prior links;
the other 20% that lie within ``--window`` bp of their gene's TSS are the positives, ranked
among every in-window pair that is not a prior link at all (the negatives). Each of the
model's scores is reported beside the pseudobulk correlation of the counts
(:func:`factvae_sk.links.peak_gene_correlation`), over the known cell labels and over
k-means metacells, which need no model. AUROC (0.5: chance) and AUPRC (chance: the
fraction of positives).

The prior's links are a proxy for regulation (a peak in a gene's body), not known truth:
a score ranks them high when the fitted embeddings, or the counts, carry the prior's
structure. On SNARE-seq also the marker test of ``eval_downstream.py``: of each marker
gene's 5 best-scoring peaks within 150 kb, the fraction most accessible in its cell line.
On both, the same test with markers found from the data (3 per label, the genes most
over-expressed in the label's pseudobulk, among genes with 4 or more peaks within 150 kb):
is each marker's best-scoring peak most accessible in the marker's label?
"""

import argparse

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmarks.eval_downstream import MARKERS, marker_links_table
from benchmarks.harness.data import load_dataset
from benchmarks.harness.models import load_or_fit, model_path
from benchmarks.simulate_links import auc_summary
from factvae_sk import (
    FactVAE,
    build_gene_peak_prior,
    gene_peak_prior,
)
from factvae_sk.links import peak_gene_correlation

SCORES = ("cosine", "correlation", "log_mean_correlation")
BACKGROUND = 30


def load(name):
    """Counts, gene and peak tables and labels of a bundled dataset (SNARE: HVGs + markers)."""
    return load_dataset(name, extra_genes=list(MARKERS) if name == "snare" else ())


def split_prior(prior, fraction, seed):
    """The prior's links split at random: (kept for training, held out), both CSR."""
    coo = sp.coo_matrix(prior)
    held = np.random.default_rng(seed).random(coo.nnz) < fraction
    parts = []
    for mask in (~held, held):
        parts.append(
            sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=prior.shape)
        )
    return parts


def held_out_candidates(prior, held_out, window_pairs):
    """Candidate pairs and labels: held-out links (1) and non-prior pairs (0), in the window.

    Returns ``(rows, cols, labels)``; training-prior pairs are never candidates.
    """
    window = sp.csr_matrix(window_pairs, dtype=bool)
    positives = window.multiply(sp.csr_matrix(held_out, dtype=bool))
    negatives = window - window.multiply(sp.csr_matrix(prior, dtype=bool))
    candidates = sp.coo_matrix(positives.astype(np.int8) * 2 + negatives.astype(np.int8))
    keep = candidates.data > 0
    rows, cols = candidates.row[keep], candidates.col[keep]
    return rows.astype(np.int64), cols.astype(np.int64), (candidates.data[keep] == 2)


def ranking_row(name, labels, scores):
    scores = np.asarray(scores, dtype=np.float64)
    missing = np.isnan(scores)
    scores = np.where(missing, np.nanmin(scores) - 1 if (~missing).any() else 0, scores)
    return {
        "score": name,
        "AUROC": roc_auc_score(labels, scores),
        "AUPRC": average_precision_score(labels, scores),
    }


def pair_values(matrix, rows, cols):
    return np.asarray(sp.csr_matrix(matrix)[rows, cols]).ravel()


def model_rows(model, rows, cols, labels, shape):
    pattern = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    out = []
    for score in SCORES:
        out.append(
            ranking_row(
                score,
                labels,
                pair_values(model.regulatory_scores(pattern, score=score), rows, cols),
            )
        )
        zscores = model.regulatory_scores(pattern, score=score, background=BACKGROUND)
        out.append(
            ranking_row(f"{score}, z vs {BACKGROUND} bg", labels, pair_values(zscores, rows, cols))
        )
    return out


def baseline_rows(data, rows, cols, labels, shape, seed):
    pattern = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    out = []
    for name, groups in [("pseudobulk r, labels", data.labels), ("pseudobulk r, metacells", None)]:
        r = peak_gene_correlation(data.rna, data.atac, pattern, groups=groups, random_state=seed)
        out.append(ranking_row(name, labels, pair_values(r, rows, cols)))
    return out


def marker_rows(model, data):
    data.labels = data.cells.cell_line.to_numpy()
    out = []
    for score in SCORES:
        table = marker_links_table(model, data, score=score)
        out.append(
            {
                "score": score,
                "top 5 specific": table["top 5 specific"].mean(),
                "window specific": table["window specific"].mean(),
            }
        )
    return out


def _log_cpm_by_label(counts, labels):
    names, codes = np.unique(labels, return_inverse=True)
    indicator = sp.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))))
    bulk = np.asarray((indicator @ counts).todense(), dtype=np.float64)
    return names, np.log1p(1e6 * bulk / bulk.sum(axis=1, keepdims=True))


def label_marker_rows(model, data, window_pairs, per_label=3, top=1, min_peaks=4, seed=0):
    """The marker test with markers found from the data, for any labelled dataset.

    Markers: for each label, the ``per_label`` genes with the largest log-CPM excess over the
    mean of the other labels, among genes with at least ``min_peaks`` in-window peaks. A peak
    is specific to the label where its pseudobulk log-CPM is highest. Reported: the fraction
    of each marker's ``top`` best-scoring in-window peaks specific to its label, against the
    fraction over all its in-window peaks (what a random choice gets).
    """
    names, genes = _log_cpm_by_label(data.rna, data.labels)
    _, peaks = _log_cpm_by_label(data.atac, data.labels)
    peak_label = np.argmax(peaks, axis=0)
    window = sp.csr_matrix(window_pairs)
    n_peaks = np.diff(window.indptr)
    markers = []
    for k in range(len(names)):
        excess = genes[k] - np.delete(genes, k, axis=0).mean(axis=0)
        excess[n_peaks < min_peaks] = -np.inf
        markers += [(g, k) for g in np.argsort(-excess)[:per_label]]
    rows = np.concatenate([np.full(n_peaks[g], g) for g, _ in markers])
    cols = np.concatenate(
        [window.indices[window.indptr[g] : window.indptr[g + 1]] for g, _ in markers]
    )
    pattern = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=window.shape)
    scored = {s: model.regulatory_scores(pattern, score=s) for s in SCORES}
    scored["pseudobulk r, metacells"] = peak_gene_correlation(
        data.rna, data.atac, pattern, random_state=seed
    )
    out = []
    for name, matrix in scored.items():
        top_hits, window_hits = [], []
        for gene, label in markers:
            row = matrix.getrow(gene)
            specific = peak_label[row.indices] == label
            best = np.argsort(-row.data, kind="stable")[:top]
            top_hits.append(specific[best].mean())
            window_hits.append(specific.mean())
        out.append(
            {
                "score": name,
                f"top {top} specific": np.mean(top_hits),
                "window specific": np.mean(window_hits),
            }
        )
    return out, len(markers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["snare", "kidney"], default="snare")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--window", type=int, default=50_000)
    parser.add_argument("--held-out", type=float, default=0.2)
    parser.add_argument("--model-dir", help="keep fitted models here (joblib) and reuse them")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load(args.dataset)
    shape = (data.rna.shape[1], data.atac.shape[1])
    full_prior = gene_peak_prior(data.genes, data.peaks)
    window = build_gene_peak_prior(data.genes, data.peaks, mode="tss_window", window=args.window)
    wide_window = build_gene_peak_prior(data.genes, data.peaks, mode="tss_window")
    tables, markers, label_markers = [], [], []
    for seed in args.seeds:
        kept, held = split_prior(full_prior, args.held_out, seed)
        rows, cols, labels = held_out_candidates(full_prior, held, window)
        print(
            f"seed {seed}: {kept.nnz} training prior links; {labels.sum()} held-out positives "
            f"among {len(labels)} in-window candidates",
            flush=True,
        )
        path = model_path(args.model_dir, "links", args.dataset, args.epochs, seed)
        model = load_or_fit(
            path,
            lambda seed=seed, kept=kept: FactVAE(max_epochs=args.epochs, random_state=seed).fit(
                data.rna, data.atac, prior=kept
            ),
        )
        found = model_rows(model, rows, cols, labels, shape)
        found += baseline_rows(data, rows, cols, labels, shape, seed)
        tables.append(pd.DataFrame(found).assign(seed=seed))
        if args.dataset == "snare":
            markers.append(pd.DataFrame(marker_rows(model, data)).assign(seed=seed))
        found, n_markers = label_marker_rows(model, data, wide_window, seed=seed)
        label_markers.append(pd.DataFrame(found).assign(seed=seed))
    summary = auc_summary(tables)
    print(
        f"\n### Held-out prior links, {args.dataset} ({args.epochs} epochs, seeds "
        f"{args.seeds}, TSS +-{args.window // 1000} kb; chance AUPRC "
        f"{labels.mean():.3f})\n"
    )
    print(summary.reset_index().to_markdown(index=False, floatfmt=".3f"))
    table = pd.concat(label_markers).groupby("score", sort=False).mean().drop(columns="seed")
    print(
        f"\n### Data-driven marker test, {args.dataset}: {n_markers} marker genes (3 per label), "
        "best-scoring peak within 150 kb (genes with 4 or more) specific to the gene's label\n"
    )
    print(table.reset_index().to_markdown(index=False, floatfmt=".2f"))
    if markers:
        table = pd.concat(markers).groupby("score", sort=False).mean().drop(columns="seed")
        print("\n### Marker test, SNARE-seq: best 5 peaks within 150 kb specific to the line\n")
        print(table.reset_index().to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
