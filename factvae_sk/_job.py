"""The main job: paired counts in, a fitted FactVAE and its results as files out.

Used by ``factvae-sk demo`` (the bundled data) and ``factvae-sk fit`` (a user's files): select
genes, build the gene-peak prior, fit, cluster, score against known labels, write outputs.
"""

import json
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.manifold import TSNE
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.utils import Bunch

from ._estimator import FactVAE
from ._links import DEFAULT_SCORE
from ._plots import have_matplotlib, plot_cell_map, plot_losses
from .prior import build_gene_peak_prior, tss_distance

OUTPUTS = {
    "cell_embeddings.csv": "cells: barcode, label, cluster, 2-D map, RNA and ATAC embeddings",
    "gene_embeddings.csv": "genes x latent dimensions (columns of the RNA decoder)",
    "peak_embeddings.csv": "peaks x latent dimensions (columns of the ATAC decoder)",
    "top_links.csv": "prior gene-peak pairs ranked by regulatory_scores' default score",
    "model.joblib": "the fitted FactVAE (joblib.load it to transform new cells)",
    "summary.json": "data sizes, settings, fit time, ARI/NMI",
    "loss_curves.png": "per-epoch loss terms",
    "cell_map.png": "t-SNE of the joint embedding, coloured by label and by cluster",
}


def _cluster_scores(embeddings, labels, n_clusters, seed):
    """KMeans on each embedding; ARI/NMI against ``labels`` when there are labels."""
    clusters, rows = {}, []
    for name, Z in embeddings.items():
        clusters[name] = KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(Z)
        if labels is not None:
            rows.append(
                {
                    "embedding": name,
                    "ARI": adjusted_rand_score(labels, clusters[name]),
                    "NMI": normalized_mutual_info_score(labels, clusters[name]),
                }
            )
    return clusters, pd.DataFrame(rows)


def _features_frame(names, embedding, key):
    """The embedding table with the feature names as its first column."""
    frame = embedding.reset_index(drop=True)
    frame.insert(0, key, np.asarray(names))
    return frame


def run_job(
    data,
    *,
    hvg,
    out,
    label_column=None,
    n_clusters=None,
    max_epochs=None,
    random_state=0,
    prior_mode="body_upstream",
    upstream=2000,
    window=150_000,
    n_links=1000,
    log=print,
):
    """Fit FactVAE on paired data laid out as :func:`load_snare_cellline` and write results.

    Parameters
    ----------
    data : Bunch
        ``rna``, ``atac`` (cells x features counts), ``genes``, ``peaks`` and ``cells`` tables.
    hvg : ndarray of bool, shape (n_genes,)
        The genes to model.
    out : path-like
        Output folder (created); see ``OUTPUTS`` for what is written there.
    label_column : str, optional
        Column of ``data.cells`` with known cell labels: ARI/NMI are reported against it.
    n_clusters : int, optional
        KMeans clusters; by default the number of labels, or 8 without labels.
    max_epochs : int, optional
        Training epochs; by default the estimator's (the method's 300).
    random_state : int, default=0
        Seed of the fit, the clustering and the map.
    prior_mode, upstream, window
        Passed to :func:`build_gene_peak_prior`.
    n_links : int, default=1000
        How many of the best-scored prior pairs ``top_links.csv`` lists.
    log : callable, default=print
        Where progress messages go.

    Returns
    -------
    result : Bunch
        ``model``, ``scores`` (ARI/NMI table, empty without labels), ``out`` and ``summary``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hvg = np.asarray(hvg, dtype=bool)
    rna, atac = data.rna[:, hvg], data.atac
    genes = data.genes[hvg].reset_index(drop=True)
    peaks, cells = data.peaks, data.cells.reset_index(drop=True)
    # A cell without counts in the selected genes (or without ATAC counts) has no library
    # size: it cannot be modelled, so it is left out of every output.
    has_counts = (rna.getnnz(axis=1) > 0) & (atac.getnnz(axis=1) > 0)
    if not has_counts.all():
        log(f"left out {(~has_counts).sum()} cell(s) with no counts in the selected features")
        rna, atac = rna[has_counts], atac[has_counts]
        cells = cells[has_counts].reset_index(drop=True)
    labels = None if label_column is None else cells[label_column].astype(str).to_numpy()
    if n_clusters is None:
        n_clusters = 8 if labels is None else len(np.unique(labels))

    prior = build_gene_peak_prior(genes, peaks, mode=prior_mode, upstream=upstream, window=window)
    log(
        f"{rna.shape[0]} cells, {rna.shape[1]} genes, {peaks.shape[0]} peaks; "
        f"prior ({prior_mode}): {prior.nnz} gene-peak links"
    )
    if prior.nnz == 0:
        log("no gene-peak links (check chromosome names and coordinates): prior term off")

    params = {"random_state": random_state, "verbose": 1, "embedding": "joint"}
    if max_epochs is not None:
        params["max_epochs"] = max_epochs
    model = FactVAE(**params)
    log(f"fitting FactVAE for {model.max_epochs} epochs")
    start = time.perf_counter()
    Z = model.fit_transform(rna, atac, prior=prior if prior.nnz else None)
    fit_seconds = time.perf_counter() - start
    log(f"fit in {fit_seconds:.0f} s on {model.net_.device}")

    k = model.n_latent
    embeddings = {"RNA": Z[:, :k], "ATAC": Z[:, k:], "joint": Z}
    clusters, scores = _cluster_scores(embeddings, labels, n_clusters, random_state)
    if labels is not None:
        log(f"\nKMeans({n_clusters}) on each embedding vs {label_column}")
        log(scores.to_string(index=False, float_format="{:.3f}".format))

    n_cells = Z.shape[0]
    tsne = TSNE(2, init="pca", perplexity=min(30.0, (n_cells - 1) / 3), random_state=random_state)
    coords = tsne.fit_transform(Z)

    table = pd.DataFrame({"barcode": cells["barcode"].to_numpy()})
    if labels is not None:
        table[label_column] = labels
    table["cluster"] = clusters["joint"]
    table["tsne_1"], table["tsne_2"] = coords[:, 0], coords[:, 1]
    table = pd.concat([table, pd.DataFrame(Z, columns=model.get_feature_names_out())], axis=1)
    # 6 significant digits: float32 values carry no more, and the files stay small.
    table.to_csv(out / "cell_embeddings.csv", index=False, float_format="%.6g")
    _features_frame(genes["gene"], model.feature_embeddings_.rna, "gene").to_csv(
        out / "gene_embeddings.csv", index=False, float_format="%.6g"
    )
    _features_frame(peaks["peak"], model.feature_embeddings_.atac, "peak").to_csv(
        out / "peak_embeddings.csv", index=False, float_format="%.6g"
    )
    # Positions, not names: gene names from a GTF may repeat.
    pairs = sp.coo_matrix(prior)
    links = pd.DataFrame(
        {
            "gene": genes["gene"].to_numpy()[pairs.row],
            "peak": peaks["peak"].to_numpy()[pairs.col],
            "prior_weight": pairs.data,
            "score": model.regulatory_scores(prior, score=DEFAULT_SCORE)[pairs.row, pairs.col].A1
            if pairs.nnz
            else np.zeros(0),
            "distance": pd.Series(tss_distance(genes, peaks, pairs.row, pairs.col)).astype("Int64"),
        }
    )
    links = links.sort_values("score", ascending=False, kind="stable").head(n_links)
    links.to_csv(out / "top_links.csv", index=False, float_format="%.6g")
    if len(links):
        log(f"\ntop gene-peak links (score: {DEFAULT_SCORE}; prior pairs)")
        log(links.head(10).to_string(index=False, float_format="{:.3f}".format))
    joblib.dump(model, out / "model.joblib")

    if have_matplotlib():
        plot_losses(model.net_.history, out / "loss_curves.png")
        panels = {} if labels is None else {label_column: labels}
        panels[f"KMeans cluster (k={n_clusters})"] = clusters["joint"]
        plot_cell_map(
            coords,
            panels,
            out / "cell_map.png",
            f"FactVAE joint embedding of {n_cells} cells (t-SNE)",
        )
    else:
        log(
            "\nmatplotlib is not installed: no PNGs written. "
            'pip install "factvae_sk[examples]" (or matplotlib) to get them.'
        )

    summary = {
        "n_cells": int(n_cells),
        "n_genes": int(rna.shape[1]),
        "n_peaks": int(peaks.shape[0]),
        "prior_mode": prior_mode,
        "n_prior_links": int(prior.nnz),
        "link_score": DEFAULT_SCORE,
        "max_epochs": int(model.max_epochs),
        "random_state": random_state,
        "fit_seconds": round(fit_seconds, 1),
        "device": str(model.net_.device),
        "n_clusters": int(n_clusters),
        "scores": scores.to_dict(orient="records"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    written = sorted(path.name for path in out.iterdir() if path.name in OUTPUTS)
    log(f"\nwrote to {out}/: {', '.join(written)}")
    return Bunch(model=model, scores=scores, out=out, summary=summary)
