"""The main job: paired counts in, a fitted FactVAE and its results as files out.

Used by ``factvae-sk demo`` (the bundled data) and ``factvae-sk fit`` (a user's files): select
genes, build the gene-peak prior, fit, cluster, score against known labels, write outputs.
"""

import json
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils import Bunch

from ..analysis._link_model import DEFAULT_DISTANCE_SCORE as LINK_SCORE
from ..analysis._link_model import combine as combine_link_features
from ..exceptions import FactVAEWarning
from ..links import expressed_genes
from ..model._estimator import FactVAE
from ..model._training_setup import auto_epochs
from ..motifs import differential_motifs, motif_matches
from ..prior import build_gene_peak_prior
from ..utils._atomic import staged_files
from ._cell_map import MAX_TSNE_CELLS, cell_map
from ._peak_filter import MIN_PEAK_CELLS, informative_peaks
from ._plots import have_matplotlib, plot_cell_map, plot_links, plot_losses, plot_motif_heatmap
from ._scores import cluster_scores
from ._tables import write_csv

OUTPUTS = {
    "cell_embeddings.csv": "cells: barcode, label, cluster, 2-D map, RNA and ATAC embeddings",
    "gene_embeddings.csv": "genes x latent dimensions (columns of the RNA decoder)",
    "peak_embeddings.csv": "peaks x latent dimensions (columns of the ATAC decoder)",
    "top_links.csv": "prior gene-peak pairs by regulatory_links' default score, with evidence",
    "model.joblib": "the fitted FactVAE (joblib.load it to transform new cells)",
    "summary.json": "data sizes, settings, fit time, the mapped embedding, ARI/NMI",
    "loss_curves.png": "per-epoch loss terms",
    "cell_map.png": "2-D map of the RNA embedding, coloured by label and by its clusters",
    "links.png": "genome tracks of a few genes: peaks near the TSS and their links, by score",
}
# Written only with a genome and motifs (``--genome``, ``--motifs``).
MOTIF_OUTPUTS = {
    "motif_deviations.csv": "cells x motifs chromVAR z-scores on augmented ATAC (--motifs)",
    "differential_motifs.csv": "motifs more or less active in each group (--motifs)",
    "motif_heatmap.png": "mean z-score per group of each group's top motifs (--motifs)",
}

# The embedding cell_map.png maps and whose KMeans clusters the outputs carry: the RNA
# posterior mean, what transform returns. With the default RNA encoder it clusters best of the
# embeddings and post-hoc joint candidates measured on both bundled datasets (KMeans and
# Leiden ARI; benchmarks/README.md, "A third default"); summary.json names it.
MAP_EMBEDDING = "RNA"
MAP_EMBEDDING_DESCRIPTION = "RNA posterior mean (what transform returns)"

# Motifs per group drawn in motif_heatmap.png.
MOTIF_PLOT_TOP_K = 5

# Half-width of the region drawn around each gene in links.png, and links drawn per gene.
LINKS_PLOT_WINDOW = 50_000
LINKS_PLOT_TOP_K = 10


_MAP_NAMES = {"umap": "UMAP", "opentsne": "t-SNE (openTSNE)", "tsne": "t-SNE"}


@contextmanager
def _tables_checked():
    """The job's calls on the gene and peak tables stay quiet: their warnings (genes without
    coordinates, chromosome names matched, ...) were given once, when the tables were read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FactVAEWarning)
        yield


def _variable_genes(rna, genes, peaks, n):
    """The ``n`` genes with at least two peaks near their TSS whose normalized expression varies
    most (variance over mean of counts per 10k): the genes ``links.png`` draws by default."""
    scaled = sp.diags(1e4 / np.maximum(np.asarray(rna.sum(axis=1)).ravel(), 1)) @ rna
    mean = np.asarray(scaled.mean(axis=0)).ravel()
    variance = np.asarray(scaled.multiply(scaled).mean(axis=0)).ravel() - mean**2
    dispersion = np.where(mean > 0, variance / np.maximum(mean, 1e-12), -np.inf)
    near = build_gene_peak_prior(genes, peaks, mode="tss_window", window=LINKS_PLOT_WINDOW)
    dispersion[near.getnnz(axis=1) < 2] = -np.inf
    order = np.argsort(-dispersion, kind="stable")[:n]
    return genes["gene"].to_numpy()[order[np.isfinite(dispersion[order])]].tolist()


def _features_frame(names, embedding, key):
    """The embedding table with the feature names as its first column."""
    frame = embedding.reset_index(drop=True)
    frame.insert(0, key, np.asarray(names))
    return frame


@dataclass(frozen=True)
class JobSettings:
    """The options of :func:`run_job` (and of ``factvae-sk demo`` / ``fit``), in one place.

    Parameters
    ----------
    label_column : str, optional
        Column of ``data.cells`` with known cell labels: ARI/NMI are reported against it.
    batch_column : str, optional
        Column of ``data.cells`` with each cell's sample (donor, run, ...): the fit gets it
        as ``batch`` (the samples are integrated), ``cell_map.png`` gets a panel coloured by
        sample and the scores the kNN mixing of the samples in each embedding.
    n_clusters : int, optional
        KMeans clusters; by default the number of labels, or 8 without labels.
    max_epochs : int, optional
        Training epochs; by default the estimator's (``"auto"``: enough for 3,700 gradient
        steps, at most the method's 300).
    random_state : int, default=0
        Seed of the fit, the clustering and the map.
    prior_mode : {"body_upstream", "tss_window"} or None, default="body_upstream"
        Passed to :func:`build_gene_peak_prior`; None fits without a prior (the genes and
        peaks need no coordinates then).
    upstream, window
        Passed to :func:`build_gene_peak_prior`.
    min_peak_cells : int, default=MIN_PEAK_CELLS
        Peaks detected (counts > 0) in fewer cells are dropped before anything else; 0 keeps
        every peak. ``summary.json`` reports how many were dropped.
    n_links : int, default=1000
        How many of the best-scored prior pairs ``top_links.csv`` lists.
    map_method : {"auto", "umap", "opentsne", "tsne"}, default="auto"
        The 2-D map of ``cell_map.png`` (see :func:`factvae_sk.app._cell_map.cell_map`).
    map_max_cells : int, default=10000
        With scikit-learn's t-SNE, map a stratified subsample of this many cells.
    plot_genes : sequence of str, optional
        Genes drawn in ``links.png``; by default the 4 most variable genes with coordinates.
    genome, motifs : path-like, optional
        A FASTA and a motif file (JASPAR, MEME or TRANSFAC): motif activity on the augmented
        accessibility (:meth:`FactVAE.motif_deviations`), tested between the labels (or,
        without labels, the clusters of the RNA embedding).
    """

    label_column: str | None = None
    batch_column: str | None = None
    n_clusters: int | None = None
    max_epochs: int | None = None
    random_state: int = 0
    prior_mode: str | None = "body_upstream"
    upstream: int = 2000
    window: int = 150_000
    min_peak_cells: int = MIN_PEAK_CELLS
    n_links: int = 1000
    map_method: str = "auto"
    map_max_cells: int = MAX_TSNE_CELLS
    plot_genes: tuple | list | None = None
    genome: str | None = None
    motifs: str | None = None


def run_job(data, *, hvg, out, log=print, **settings):
    """Fit FactVAE on paired data laid out as :func:`load_snare_cellline` and write results.

    Parameters
    ----------
    data : Bunch
        ``rna``, ``atac`` (cells x features counts), ``genes``, ``peaks`` and ``cells`` tables.
    hvg : ndarray of bool, shape (n_genes,)
        The genes to model.
    out : path-like
        Output folder (created); see ``OUTPUTS`` for what is written there. The files
        appear only once all are written: a failure leaves existing files untouched.
    **settings
        The job's options, the fields of :class:`JobSettings` (all optional).
    log : callable, default=print
        Where progress messages go.

    Returns
    -------
    result : Bunch
        ``model``, ``scores`` (ARI/NMI table, empty without labels), ``out`` and ``summary``.
    """
    out = Path(out)
    # Every output is written to a temporary file, and all are moved into ``out`` together
    # at the end: a failed or interrupted run leaves an earlier run's results untouched.
    with staged_files(out) as stage:
        result = _fit_and_write(data, stage, JobSettings(**settings), out=out, hvg=hvg, log=log)
    known = {**OUTPUTS, **MOTIF_OUTPUTS}
    written = sorted(path.name for path in out.iterdir() if path.name in known)
    log(f"\nwrote to {out}/: {', '.join(written)}")
    return result


def _fit_and_write(data, stage, settings, *, out, hvg, log):
    """The job of :func:`run_job`; each output goes to the temporary path ``stage(name)``."""
    hvg = np.asarray(hvg, dtype=bool)
    rna, atac = data.rna[:, hvg], data.atac
    genes = data.genes[hvg].reset_index(drop=True)
    peaks, cells = data.peaks.reset_index(drop=True), data.cells.reset_index(drop=True)
    # Peaks seen in almost no cell carry no information (benchmarks: "Dropping rare peaks").
    keep_peaks = informative_peaks(atac, settings.min_peak_cells)
    n_peaks_dropped = int((~keep_peaks).sum())
    if n_peaks_dropped == len(keep_peaks):
        raise ValueError(
            f"every one of the {len(keep_peaks)} peaks is detected in fewer than "
            f"min_peak_cells={settings.min_peak_cells} cells; lower it (--min-peak-cells)"
        )
    if n_peaks_dropped:
        log(
            f"dropped {n_peaks_dropped} of {len(keep_peaks)} peaks detected in fewer than "
            f"{settings.min_peak_cells} cells"
        )
        atac, peaks = atac[:, keep_peaks], peaks[keep_peaks].reset_index(drop=True)
    # A cell without counts in the selected genes (or without ATAC counts) has no library
    # size: it cannot be modelled, so it is left out of every output.
    has_counts = (rna.getnnz(axis=1) > 0) & (atac.getnnz(axis=1) > 0)
    if not has_counts.all():
        log(f"left out {(~has_counts).sum()} cell(s) with no counts in the selected features")
        rna, atac = rna[has_counts], atac[has_counts]
        cells = cells[has_counts].reset_index(drop=True)
    # Every annotated gene, not only the modelled ones, counts for the link model's genomic
    # context; the expressed ones (a share of every gene's counts at least the average
    # gene's: expressed_genes) for the expressed genes closer to a peak than its gene.
    annotation = data.genes.reset_index(drop=True).assign(
        expressed=expressed_genes(data.rna[has_counts])
    )
    labels = (
        None
        if settings.label_column is None
        else cells[settings.label_column].astype(str).to_numpy()
    )
    batch = (
        None
        if settings.batch_column is None
        else cells[settings.batch_column].astype(str).to_numpy()
    )
    n_clusters, plot_genes = settings.n_clusters, settings.plot_genes
    if n_clusters is None:
        n_clusters = 8 if labels is None else len(np.unique(labels))

    if settings.prior_mode is None:
        prior = sp.csr_matrix((genes.shape[0], peaks.shape[0]), dtype=np.float32)
        log(
            f"{rna.shape[0]} cells, {rna.shape[1]} genes, {peaks.shape[0]} peaks; no prior: "
            "gene-peak links are not learned from a prior"
        )
    else:
        # Raises, naming the problem, rather than fit with a prior that links nothing.
        with _tables_checked():
            prior = build_gene_peak_prior(
                genes,
                peaks,
                mode=settings.prior_mode,
                upstream=settings.upstream,
                window=settings.window,
            )
        log(
            f"{rna.shape[0]} cells, {rna.shape[1]} genes, {peaks.shape[0]} peaks; "
            f"prior ({settings.prior_mode}): {prior.nnz} gene-peak links"
        )

    params = {"random_state": settings.random_state, "verbose": 1, "embedding": "joint"}
    if settings.max_epochs is not None:
        params["max_epochs"] = settings.max_epochs
    model = FactVAE(**params)
    n_epochs = model.max_epochs
    if n_epochs == "auto":
        n_epochs = auto_epochs(rna.shape[0], model.batch_size)
        log(f"fitting FactVAE for {n_epochs} epochs (max_epochs='auto')")
    else:
        log(f"fitting FactVAE for {n_epochs} epochs")
    start = time.perf_counter()
    Z = model.fit_transform(rna, atac, prior=prior if prior.nnz else None, batch=batch)
    fit_seconds = time.perf_counter() - start
    log(f"fit in {fit_seconds:.0f} s on {model.net_.device}")

    k = model.n_latent
    embeddings = {"RNA": Z[:, :k], "ATAC": Z[:, k:], "joint": Z}
    clusters, scores = cluster_scores(
        embeddings, labels, n_clusters, settings.random_state, batch=batch
    )
    if len(scores):
        against = [f"{settings.label_column} (ARI, NMI)"] if labels is not None else []
        against += [f"{settings.batch_column} (kNN mixing)"] if batch is not None else []
        log(f"\nKMeans({n_clusters}) on each embedding vs {' and '.join(against)}")
        log(scores.to_string(index=False, float_format="{:.3f}".format))

    n_cells = Z.shape[0]
    start = time.perf_counter()
    cell_map_result = cell_map(
        embeddings[MAP_EMBEDDING],
        clusters[MAP_EMBEDDING],
        method=settings.map_method,
        max_cells=settings.map_max_cells,
        random_state=settings.random_state,
    )
    map_seconds = time.perf_counter() - start
    coords, map_name = cell_map_result.coords, _MAP_NAMES[cell_map_result.method]
    map_note = None
    if cell_map_result.subsampled:
        map_note = (
            f"{map_name} of a subsample of {len(cell_map_result.mapped)} of {n_cells} cells, "
            "stratified by cluster (pip install umap-learn to map every cell)"
        )
        log(map_note)

    table = pd.DataFrame({"barcode": cells["barcode"].to_numpy()})
    if labels is not None:
        table[settings.label_column] = labels
    if batch is not None and settings.batch_column != settings.label_column:
        table[settings.batch_column] = batch
    table["cluster"] = clusters[MAP_EMBEDDING]
    table[f"{cell_map_result.method}_1"] = coords[:, 0]
    table[f"{cell_map_result.method}_2"] = coords[:, 1]
    table = pd.concat([table, pd.DataFrame(Z, columns=model.get_feature_names_out())], axis=1)
    # 6 significant digits: float32 values carry no more, and the files stay small.
    write_csv(table, stage("cell_embeddings.csv"))
    write_csv(
        _features_frame(genes["gene"], model.feature_embeddings_.rna, "gene"),
        stage("gene_embeddings.csv"),
    )
    write_csv(
        _features_frame(peaks["peak"], model.feature_embeddings_.atac, "peak"),
        stage("peak_embeddings.csv"),
    )
    # Positions, not names: gene names from a GTF may repeat. The score is regulatory_links'
    # default with coordinates (distance and the model's evidence), the evidence beside it.
    pairs = sp.coo_matrix(prior)
    columns = [
        "distance",
        "activity_cpm",
        "expression_cpm",
        "correlation",
        "cosine",
        "expressed_closer",
    ]
    if pairs.nnz:
        with _tables_checked():
            features = model.link_features(
                pairs.row, pairs.col, genes, peaks, annotation=annotation
            )
        link_scores = combine_link_features(features, LINK_SCORE)
    else:
        features = pd.DataFrame({name: np.zeros(0) for name in columns})
        link_scores = np.zeros(0)
    links = pd.DataFrame(
        {
            "gene": genes["gene"].to_numpy()[pairs.row],
            "peak": peaks["peak"].to_numpy()[pairs.col],
            "prior_weight": pairs.data,
            "score": link_scores,
            "distance": pd.Series(features["distance"].to_numpy()).astype("Int64"),
            "activity": features["activity_cpm"].to_numpy(),
            "expression": features["expression_cpm"].to_numpy(),
            "correlation": features["correlation"].to_numpy(),
            "cosine": features["cosine"].to_numpy(),
            # The link model reads log1p of this count of expressed genes whose TSS is closer
            # to the peak than the gene's.
            "expressed_closer": np.rint(np.expm1(features["expressed_closer"])).astype(int),
        }
    )
    links = links.sort_values("score", ascending=False, kind="stable").head(settings.n_links)
    links.to_csv(stage("top_links.csv"), index=False, float_format="%.6g")
    if len(links):
        log(f"\ntop gene-peak links (score: {LINK_SCORE}; prior pairs)")
        log(links.head(10).to_string(index=False, float_format="{:.3f}".format))
    joblib.dump(model, stage("model.joblib"))
    motif_table = None
    if settings.motifs is not None:
        groups = labels if labels is not None else clusters[MAP_EMBEDDING].astype(str)
        motif_table = _motif_activity(
            model, atac, peaks, cells, groups, settings.genome, settings.motifs, stage, log
        )

    if have_matplotlib():
        plot_losses(model.net_.history, stage("loss_curves.png"))
        panels = {} if labels is None else {settings.label_column: labels}
        panels[f"KMeans cluster (k={n_clusters})"] = clusters[MAP_EMBEDDING]
        if batch is not None:
            panels[f"sample ({settings.batch_column})"] = batch
        plot_cell_map(
            coords,
            panels,
            stage("cell_map.png"),
            f"FactVAE {MAP_EMBEDDING} embedding of {n_cells} cells ({map_name})",
            method=map_name,
            note=map_note,
        )
        if settings.prior_mode is None:
            log("no gene or peak coordinates (no prior): links.png not drawn")
        else:
            with _tables_checked():
                if plot_genes is None:
                    plot_genes = _variable_genes(rna, genes, peaks, 4)
                shown = model.regulatory_links(
                    "window",
                    genes=np.flatnonzero(genes["gene"].isin(plot_genes).to_numpy()),
                    top_k=LINKS_PLOT_TOP_K,
                    gene_table=genes,
                    peak_table=peaks,
                    window=LINKS_PLOT_WINDOW,
                    annotation=annotation,
                )
            plot_links(
                shown,
                genes,
                peaks,
                list(plot_genes),
                stage("links.png"),
                window=LINKS_PLOT_WINDOW,
                score_name=shown.attrs["score"],
            )
        if motif_table is not None:
            plot_motif_heatmap(motif_table, stage("motif_heatmap.png"), MOTIF_PLOT_TOP_K)
    else:
        log(
            "\nmatplotlib is not installed: no PNGs written. "
            'pip install "factvae_sk[examples]" (or matplotlib) to get them.'
        )

    summary = {
        "n_cells": int(n_cells),
        "n_genes": int(rna.shape[1]),
        "n_peaks": int(peaks.shape[0]),
        "min_peak_cells": settings.min_peak_cells,
        "n_peaks_dropped": n_peaks_dropped,
        "prior_mode": settings.prior_mode,
        "n_prior_links": int(prior.nnz),
        # Without prior links the embeddings were not tied to known regulation.
        "links_from_prior": bool(prior.nnz),
        "link_score": LINK_SCORE,
        "max_epochs": int(model.net_.max_epochs),
        "random_state": settings.random_state,
        "fit_seconds": round(fit_seconds, 1),
        "device": str(model.net_.device),
        "n_clusters": int(n_clusters),
        "batch_column": settings.batch_column,
        "n_samples": None if batch is None else int(len(np.unique(batch))),
        "map": {
            "embedding": MAP_EMBEDDING,
            "embedding_description": MAP_EMBEDDING_DESCRIPTION,
            "method": cell_map_result.method,
            "n_cells_mapped": int(len(cell_map_result.mapped)),
            "subsampled": bool(cell_map_result.subsampled),
            "seconds": round(map_seconds, 1),
        },
        "scores": scores.to_dict(orient="records"),
    }
    if motif_table is not None:
        summary["n_motifs"] = int(motif_table.motif.nunique())
    stage("summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return Bunch(model=model, scores=scores, out=out, summary=summary)


def _motif_activity(model, atac, peaks, cells, groups, genome, motifs, stage, log):
    """Motif matches, deviations on the augmented accessibility and their group tests."""
    log(f"\nscanning {peaks.shape[0]} peaks for the motifs of {motifs}")
    start = time.perf_counter()
    matches = motif_matches(peaks, genome, motifs)
    log(
        f"{len(matches.motif_names)} motifs, {matches.matches.nnz} peak-motif matches "
        f"({time.perf_counter() - start:.0f} s)"
    )
    result = model.motif_deviations(atac, matches=matches)
    z = result.z.reset_index(drop=True)
    z.insert(0, "barcode", cells["barcode"].to_numpy())
    z.to_csv(stage("motif_deviations.csv"), index=False, float_format="%.6g")
    table = differential_motifs(result, groups)
    table.to_csv(stage("differential_motifs.csv"), index=False, float_format="%.6g")
    best = table[table.mean_difference > 0].groupby("group", sort=False).head(1)
    log("most active motif of each group (chromVAR z-scores on augmented ATAC)")
    log(best[["group", "motif", "mean_difference", "pvalue_adj"]].to_string(index=False))
    return table
