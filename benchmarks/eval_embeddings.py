"""Cell embeddings on both bundled datasets against PCA and LSI, as Markdown tables.

    python benchmarks/eval_embeddings.py [--dataset snare|kidney|both] [--epochs 100]
        [--seeds 0 1 2] [--options faithful rna_nb ...] [--cache DIR]

FactVAE is transductive: every model is fitted on all cells (the published settings,
``PAPER_SETTINGS``, today the defaults, plus the named options below, each changing one
thing) and its RNA, ATAC and joint (both codes side
by side) posterior means are scored against the annotation. Baselines, fitted on the same
cells:

- RNA: PCA of the estimator's own encoder input (normalize to 1e4, log1p, scale genes,
  100 components), and a scanpy-style PCA (normalize to 1e4, log1p, zero-center and scale
  with values clipped at 10, 50 components).
- ATAC: LSI, the estimator's own ATAC input (TF-IDF, 100 SVD components, each cell's
  components standardized), and the Signac habit of dropping the first (depth) component.
- Joint: the RNA encoder-input PCA and the LSI side by side, each block scaled to unit mean
  squared norm per cell so neither dominates.

Each fit's two codes are also combined post hoc into joint candidates (no refit): the
plain concatenation (what ``embedding="joint"`` returns), each block scaled to unit mean
squared norm (as PCA + LSI), each block whitened then scaled, and a simplified WNN (per-cell
modality weights from how well each modality's neighbours predict the cell).

Metrics (each embedding as it comes, Euclidean):

- KMeans ARI and NMI with k = number of labels, mean over 3 KMeans seeds;
- Leiden ARI: scanpy's 15-NN graph and Leiden, the resolution bisected until the number of
  clusters is the number of labels;
- kNN: 5-fold cross-validated accuracy of a 15-nearest-neighbour classifier of the labels
  (does not depend on KMeans), and its balanced accuracy (rare types weigh as much as
  common ones);
- ASW: silhouette of the labels.

Model rows give mean +- sd over the model seeds. ``--cache DIR`` keeps each fitted model's
embeddings as ``.npz`` there (and the model itself as ``.joblib``), so runs can be split
over processes and tabled later (``--cached-only``).
SNARE-seq uses its 2000 highly variable genes; the kidney its 5000 genes. The gene-peak
prior is ``gene_peak_prior`` of the coordinates (gene body + 2 kb upstream).
"""

import argparse
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import scipy.sparse as sp
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.preprocessing import normalize

from benchmarks.harness.clustering import kmeans_scores
from benchmarks.harness.data import load_dataset
from benchmarks.harness.joint_posterior import ProductOfExpertsFactVAE
from factvae_sk import PAPER_SETTINGS, FactVAE
from factvae_sk.data._preprocessing import ATACEncoderInput, RNAEncoderInput

# The two defaults changed first for issue 25 (20 RNA components, distillation at the main
# learning rate): the base of its second screen, the d_* options.
TWO_DEFAULTS = {"rna_n_components": 20, "lr_distillation": 1e-3}

# Each option changes one thing from the published method (PAPER_SETTINGS), today also the
# estimator's defaults.
OPTIONS = {
    "faithful": {},
    "rna_nb": {"rna_likelihood": "nb"},
    "atac_nb": {"atac_likelihood": "nb"},
    "both_nb": {"rna_likelihood": "nb", "atac_likelihood": "nb"},
    "rna_nll_1": {"rna_nll_weight": 1.0},
    # RNA KL weight 10x and 100x: beta = KL / NLL weight from 0.01 to 0.1 and 1 (scVI's).
    "rna_kl_0.01": {"rna_kl_weight": 0.01},
    "rna_kl_0.1": {"rna_kl_weight": 0.1},
    "pcs_50": {"rna_n_components": 50, "atac_n_components": 50},
    # PCA itself clusters the kidney better with 20 components than with 100.
    "rna_pcs_20": {"rna_n_components": 20},
    "latent_20": {"n_latent": 20},
    # Combinations with 20 components (issue 25's screen for a tissue default).
    "pcs20_kl_0.01": {"rna_n_components": 20, "rna_kl_weight": 0.01},
    "pcs20_kl_0.1": {"rna_n_components": 20, "rna_kl_weight": 0.1},
    "pcs20_latent_20": {"rna_n_components": 20, "n_latent": 20},
    # ... and the distillation step at the main step's learning rate (2x the paper's), for a
    # steadier ATAC code at 300 epochs.
    "pcs20_distill_1e-3": TWO_DEFAULTS,
    "distill_2e-3": {"lr_distillation": 2e-3},
    # One change each from today's defaults (pcs20_distill_1e-3): the second screen for a
    # tissue default (issue 25).
    "d_pcs_10": {**TWO_DEFAULTS, "rna_n_components": 10},
    "d_kl_0.01": {**TWO_DEFAULTS, "rna_kl_weight": 0.01},
    "d_latent_10": {**TWO_DEFAULTS, "n_latent": 10},
    "d_hidden_256": {**TWO_DEFAULTS, "rna_hidden_sizes": (256,)},
    "d_batch_256": {**TWO_DEFAULTS, "batch_size": 256},
    "d_dropout_0.1": {**TWO_DEFAULTS, "dropout": 0.1},
    "d_pcs_10_kl_0.01": {**TWO_DEFAULTS, "rna_n_components": 10, "rna_kl_weight": 0.01},
    "no_prior": {"prior_weight": 0.0},
    # A joint posterior (product of experts) that both decoders read: a training change,
    # from benchmarks/harness/joint_posterior.py; alone and with 20 RNA components.
    "poe": {},
    "poe_pcs_20": {"rna_n_components": 20},
}

# Options fitted by another estimator than FactVAE (same settings otherwise). Their
# ``joint_transform`` is their own joint code, tabled beside the post-hoc candidates.
ESTIMATORS = {"poe": ProductOfExpertsFactVAE, "poe_pcs_20": ProductOfExpertsFactVAE}


def scanpy_pca(X_rna, n_components=50, random_state=0):
    """normalize_total(1e4), log1p, scale(max_value=10), PCA: the scanpy tutorial recipe."""
    X = normalize(sp.csr_matrix(X_rna, dtype=np.float64), norm="l1") * 1e4
    X.data = np.log1p(X.data)
    X = X.toarray()
    std = X.std(axis=0, ddof=1)
    X = np.clip((X - X.mean(axis=0)) / np.where(std > 0, std, 1.0), None, 10.0)
    return PCA(n_components, svd_solver="arpack", random_state=random_state).fit_transform(X)


def _unit_blocks(*blocks):
    """Blocks side by side, each scaled to unit mean squared norm per cell after centering."""
    scaled = []
    for block in blocks:
        block = block - block.mean(axis=0)
        scaled.append(block / np.sqrt((block**2).sum(axis=1).mean()))
    return np.hstack(scaled)


def baselines(data, seed=0):
    """Baseline embeddings: (kind, name) -> cells x components."""
    pca = RNAEncoderInput(100, random_state=seed).fit_transform(data.rna)
    lsi = ATACEncoderInput(100, random_state=seed).fit_transform(data.atac)
    return {
        ("RNA", "PCA, encoder input (100)"): pca,
        ("RNA", "PCA, scanpy-style (50)"): scanpy_pca(data.rna, random_state=seed),
        ("ATAC", "LSI, encoder input (100)"): lsi,
        ("ATAC", "LSI without component 1 (2-100)"): lsi[:, 1:],
        ("joint", "PCA + LSI"): _unit_blocks(pca, lsi),
    }


def fit_embeddings(data, option, seed, epochs, cache=None, dataset="", fit=True):
    """RNA and ATAC codes of one FactVAE fit, and their concatenation (read from ``cache``).

    The fitted model itself is kept beside the codes (``.joblib``). With ``fit=False``,
    None when the fit is not in the cache.
    """
    path = None if cache is None else Path(cache) / f"{dataset}_{option}_e{epochs}_s{seed}.npz"
    if path is not None and path.exists():
        stored = np.load(path)
        embeddings = {kind: stored[kind] for kind in ("RNA", "ATAC", "joint")}
        if "losses" in stored:
            embeddings["losses"] = stored["losses"]
        elif path.with_suffix(".joblib").exists():  # cached before the loss terms were kept
            embeddings["losses"] = final_losses(joblib.load(path.with_suffix(".joblib")))
        return embeddings
    if not fit:
        return None
    settings = {**PAPER_SETTINGS, **OPTIONS[option], "max_epochs": epochs}
    estimator = ESTIMATORS.get(option, FactVAE)
    model = estimator(random_state=seed, embedding="joint", **settings)
    model.fit(data.rna, data.atac, prior=data.prior)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, path.with_suffix(".joblib"))
    joint = model.transform(data.rna, data.atac)
    n_latent = model.n_latent
    embeddings = {"RNA": joint[:, :n_latent], "ATAC": joint[:, n_latent:], "joint": joint}
    if estimator is not FactVAE:  # its own joint code instead of the concatenation
        embeddings["joint"] = model.joint_transform(data.rna, data.atac)
    embeddings["losses"] = final_losses(model)
    if path is not None:
        np.savez(path, **embeddings)
    return embeddings


# The training objective's terms (per cell, unweighted) at the last epoch, as history_ logs them.
LOSS_TERMS = ("train_loss", "nll_rna", "kl_rna", "nll_atac", "kl_atac", "prior", "distill")


def final_losses(model):
    """The last epoch's ``LOSS_TERMS`` of a fitted model (train_loss is the weighted sum)."""
    last = model.net_.history[-1]
    return np.array([last[term] for term in LOSS_TERMS], dtype=float)


def whiten(X):
    """Principal components of ``X`` each scaled to unit variance."""
    X = X - X.mean(axis=0)
    U, S, _ = np.linalg.svd(X, full_matrices=False)
    keep = S > S[0] * 1e-6
    return U[:, keep] * np.sqrt(len(X) - 1)


def wnn_weights(blocks, n_neighbors=20, epsilon=1e-4):
    """Per-cell modality weights (cells x modalities), a simplified weighted nearest neighbours.

    As Seurat's WNN (Hao et al. 2021): a cell's code in modality m is predicted by the mean
    code of its m-neighbours (within) and of its neighbours in the other modality (cross);
    each prediction's distance becomes an affinity ``exp(-max(d - d_1, 0) / sigma)`` with
    ``d_1`` the cell's distance to its nearest m-neighbour and ``sigma`` its mean distance to
    its ``n_neighbors`` m-neighbours less ``d_1``; the modality's score is the ratio of the
    within to the cross affinity (``epsilon`` added below) and the weights are the softmax of
    the scores over modalities. Two modalities only.
    """
    neighbours, affinity_scale = [], []
    for block in blocks:
        distance, index = NearestNeighbors(n_neighbors=n_neighbors + 1).fit(block).kneighbors()
        neighbours.append(index[:, :n_neighbors])
        nearest = distance[:, 0]
        sigma = np.maximum(distance[:, :n_neighbors].mean(axis=1) - nearest, 1e-12)
        affinity_scale.append((nearest, sigma))
    scores = []
    for m, block in enumerate(blocks):
        nearest, sigma = affinity_scale[m]
        affinity = []
        for index in (neighbours[m], neighbours[1 - m]):
            d = np.linalg.norm(block - block[index].mean(axis=1), axis=1)
            affinity.append(np.exp(-np.maximum(d - nearest, 0) / sigma))
        scores.append(affinity[0] / (affinity[1] + epsilon))
    scores = np.stack(scores, axis=1)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def wnn_joint(rna, atac, n_neighbors=20):
    """Both codes, each block unit-scaled, then each cell's block by the root of its weight.

    Squared distances from a cell then weigh each modality by that cell's WNN weight.
    """
    blocks = [_unit_blocks(rna), _unit_blocks(atac)]
    weights = wnn_weights(blocks, n_neighbors)
    return np.hstack([np.sqrt(weights[:, [m]]) * block for m, block in enumerate(blocks)])


def joint_candidates(rna, atac):
    """Post-hoc joint embeddings of one fit's two codes: name -> cells x dims."""
    return {
        "concat": np.hstack([rna, atac]),
        "scaled blocks": _unit_blocks(rna, atac),
        "whitened blocks": _unit_blocks(whiten(rna), whiten(atac)),
        "WNN weights": wnn_joint(rna, atac),
    }


def knn_scores(X, labels, n_neighbors=15, seed=0):
    """5-fold cross-validated accuracy and balanced accuracy of a kNN label classifier."""
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    result = cross_validate(
        KNeighborsClassifier(n_neighbors),
        X,
        labels,
        cv=folds,
        scoring=("accuracy", "balanced_accuracy"),
    )
    return result["test_accuracy"].mean(), result["test_balanced_accuracy"].mean()


def leiden_ari(X, labels, n_neighbors=15, seed=0, max_steps=30):
    """ARI of Leiden clusters on a 15-NN graph, the resolution bisected to give k = #labels.

    scanpy's neighbours (UMAP connectivities) and Leiden (igraph, 2 iterations); when no
    resolution gives exactly k clusters, the closest count's clustering is kept.
    """
    import anndata
    import scanpy as sc

    k = len(np.unique(labels))
    adata = anndata.AnnData(np.asarray(X, dtype=np.float32))
    sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep="X", random_state=seed)

    def cluster(resolution):
        sc.tl.leiden(
            adata,
            resolution,
            random_state=seed,
            flavor="igraph",
            n_iterations=2,
            directed=False,
        )
        clusters = adata.obs["leiden"].to_numpy()
        return len(np.unique(clusters)), clusters

    low, high = 0.0, 1.0
    best = None
    for _ in range(max_steps):
        n, clusters = cluster(high)
        best = min(best or (np.inf, None), (abs(n - k), clusters), key=lambda t: t[0])
        if n >= k:
            break
        low, high = high, 2 * high
    for _ in range(max_steps):
        if best[0] == 0:
            break
        middle = (low + high) / 2
        n, clusters = cluster(middle)
        best = min(best, (abs(n - k), clusters), key=lambda t: t[0])
        low, high = (middle, high) if n < k else (low, middle)
    return adjusted_rand_score(labels, best[1])


METRICS = ("ARI", "Leiden ARI", "NMI", "kNN acc", "kNN bal. acc", "ASW")


def embedding_metrics(X, labels):
    """The table's metrics of one embedding, in the order of ``METRICS``."""
    ari, nmi = kmeans_scores(X, labels)
    accuracy, balanced = knn_scores(X, labels)
    leiden = leiden_ari(X, labels)
    return ari, leiden, nmi, accuracy, balanced, silhouette_score(X, labels)


def _row(kind, name, values):
    values = np.atleast_2d(values)
    if len(values) == 1:
        cells = [f"{v:.3f}" for v in values[0]]
    else:
        mean, sd = values.mean(axis=0), values.std(axis=0, ddof=1)
        cells = [f"{m:.3f} +- {s:.3f}" for m, s in zip(mean, sd, strict=True)]
    return f"| {kind} | {name} | " + " | ".join(cells) + " |"


def table(dataset, options, seeds, epochs, cache=None, fit=True, with_baselines=True):
    data = load_dataset(dataset)
    labels = data.labels
    print(
        f"\n### {dataset}: {data.rna.shape[0]} cells, {len(np.unique(labels))} labels; "
        f"FactVAE {epochs} epochs, seeds {', '.join(map(str, seeds))}\n"
    )
    print("| embedding | method | " + " | ".join(METRICS) + " |")
    print("| --- | --- |" + " --- |" * len(METRICS))
    rows = {kind: [] for kind in ("RNA", "ATAC", "joint")}
    loss_rows = []
    for (kind, name), X in (baselines(data) if with_baselines else {}).items():
        rows[kind].append(_row(kind, name, embedding_metrics(X, labels)))
    for option in options:
        scores, losses = {}, []
        for seed in seeds:
            start = time.perf_counter()
            embeddings = fit_embeddings(data, option, seed, epochs, cache, dataset, fit)
            if embeddings is None:
                continue
            candidates = {("RNA", "code"): embeddings["RNA"], ("ATAC", "code"): embeddings["ATAC"]}
            for name, X in joint_candidates(embeddings["RNA"], embeddings["ATAC"]).items():
                candidates["joint", name] = X
            if option in ESTIMATORS:
                candidates["joint", "joint posterior mean"] = embeddings["joint"]
            for key, X in candidates.items():
                scores.setdefault(key, []).append(embedding_metrics(X, labels))
            if "losses" in embeddings:
                losses.append(embeddings["losses"])
            elapsed = time.perf_counter() - start
            print(f"{dataset} {option} seed {seed}: {elapsed:.0f} s", file=sys.stderr, flush=True)
        if losses:
            loss_rows.append(_row(option, f"{len(losses)} seed{'s' * (len(losses) > 1)}", losses))
        for (kind, name), values in scores.items():
            n_seeds = len(values)
            label = f"FactVAE {option}, {name} ({n_seeds} seed{'s' * (n_seeds > 1)})"
            rows[kind].append(_row(kind, label, values))
    for kind in rows:
        print("\n".join(rows[kind]))
    if loss_rows:
        print(f"\nTraining losses at epoch {epochs} (per cell; train_loss is the weighted sum)\n")
        print("| option | seeds | " + " | ".join(LOSS_TERMS) + " |")
        print("| --- | --- |" + " --- |" * len(LOSS_TERMS))
        print("\n".join(loss_rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("snare", "kidney", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--options",
        nargs="+",
        default=["faithful"],
        choices=sorted(OPTIONS),
        help="FactVAE settings to fit (each changes one thing from the faithful defaults)",
    )
    parser.add_argument("--cache", help="folder keeping each fit's embeddings (.npz)")
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="table only the fits already in --cache (fit nothing)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="FactVAE rows only")
    parser.add_argument(
        "--fit-only",
        action="store_true",
        help="fit the missing models into --cache and score nothing (to table them later)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    datasets = ("snare", "kidney") if args.dataset == "both" else (args.dataset,)
    if args.fit_only:
        if args.cache is None:
            parser.error("--fit-only needs --cache")
        for dataset in datasets:
            data = load_dataset(dataset)
            for option in args.options:
                for seed in args.seeds:
                    start = time.perf_counter()
                    fit_embeddings(data, option, seed, args.epochs, args.cache, dataset)
                    elapsed = time.perf_counter() - start
                    print(f"{dataset} {option} e{args.epochs} s{seed}: {elapsed:.1f} s", flush=True)
        return
    for dataset in datasets:
        table(
            dataset,
            args.options,
            args.seeds,
            args.epochs,
            args.cache,
            not args.cached_only,
            not args.no_baselines,
        )


if __name__ == "__main__":
    main()
