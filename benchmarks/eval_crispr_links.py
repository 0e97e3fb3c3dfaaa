"""Gene-peak link scores against CRISPRi-validated enhancer-gene pairs in K562.

    python benchmarks/eval_crispr_links.py [--epochs 100] [--seed 0] [--cache /tmp/links_cache]
        [--settings default|paper|rna_pcs_20|pcs20_distill_1e-3|d_hidden_256]

The truth: ``shared/data/crispri_k562`` (ENCODE-rE2G's training_K562 table). A tested
element-gene pair is scored through the SNARE-seq peaks that overlap its element (max over
them); pairs no peak covers are counted, not scored. FactVAE is fitted once (cached) on the
SNARE-seq mixture: 2000 HVG plus every tested gene detected in >= 10 cells, the default
gene-body prior. The annotation (every gene, for the TSSs between an element and its gene and the
expressed genes closer to it) carries ``expressed``: a share of all the cells' counts at least the
average gene's (``factvae_sk.links.expressed_genes``).
"""

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from scipy.optimize import minimize
from scipy.stats import kendalltau, rankdata

from benchmarks.harness.models import load_or_fit, model_path
from factvae_sk import PAPER_SETTINGS, FactVAE, gene_peak_prior, load_snare_cellline
from factvae_sk.analysis import _link_context, _link_model
from factvae_sk.links import expressed_genes, peak_gene_correlation
from factvae_sk.prior import build_gene_peak_prior, tss_distance

ROOT = Path(__file__).resolve().parents[1]
TRUTH_NAME = "EPCrisprBenchmark_combined_data.training_K562.GRCh38.tsv.gz"
TRUTH = next(
    (
        folder / TRUTH_NAME
        for folder in (ROOT / "shared/data/crispri_k562", ROOT.parent / "shared/data/crispri_k562")
        if (folder / TRUTH_NAME).exists()
    ),
    Path("/work/shared/data/crispri_k562") / TRUTH_NAME,
)
# Per (tested pair, overlapping peak) features of the cached fit: enough to refit the shipped
# link model without a FactVAE fit (tests/test_crispr_links.py).
FEATURES_FILE = ROOT / "tests/data/crispr_k562_features.csv.gz"
# Other rules for the annotation's expressed column (sensitivity rows; load_data's columns),
# and None: no column (regulatory_links' fallback on the model's expression).
EXPRESSED_RULES = {
    "fallback": None,
    "detected_all": "expressed_detected_all",
    "detected_k562": "expressed_detected_k562",
    "share_k562": "expressed_share_k562",
}
BINS = (("0-10 kb", 0, 10_000), ("10-100 kb", 10_000, 100_000), (">100 kb", 100_000, np.inf))
# Candidate forms of the link model (issue 32): evidence features beside the fixed power-law
# contact offset, smallest first, chosen by leave-one-chromosome-out held-out log-loss. Every
# feature is one regulatory_links computes from the fitted model and the coordinates: the
# genomic context (TSSs and peaks between, peaks near: ``_link_context``), scE2G's multiome
# set (ABC, promoter accessibility, expressed everywhere, co-variation) and the model's own
# terms (correlation, cosine, denoised activity); ``expressed_closer`` (expressed genes whose
# TSS is closer to the element than the gene's: ABC's "closer active genes"). ``log_distance``
# frees the contact's exponent (ENCODE-rE2G fits distance freely).
CONTEXT = ("tss_between", "peaks_between", "peaks_near")
SCE2G = CONTEXT + ("log_abc", "promoter", "expressed_everywhere")
FORMS = {
    "contact": (),
    "+corr+cos": ("correlation", "cosine"),
    "+tss": ("tss_between",),
    "+closer": ("expressed_closer",),
    "+context": CONTEXT,
    "+tss+corr+cos": ("tss_between", "correlation", "cosine"),
    "+closer+corr+cos": ("expressed_closer", "correlation", "cosine"),
    "+closer+tss+corr+cos": ("expressed_closer", "tss_between", "correlation", "cosine"),
    "+tss+corr+cos+act": ("tss_between", "correlation", "cosine", "activity"),
    "+tss+corr+cos+promoter": ("tss_between", "correlation", "cosine", "promoter"),
    "+context+abc": CONTEXT + ("log_abc",),
    "+context+corr+cos": CONTEXT + ("correlation", "cosine"),
    "scE2G-like (no co-variation)": SCE2G,
    "scE2G-like": SCE2G + ("correlation",),
    "scE2G-like+cos": SCE2G + ("correlation", "cosine"),
    "scE2G-like+cos+act": SCE2G + ("correlation", "cosine", "activity"),
    "scE2G-like+cos, free exponent": SCE2G + ("correlation", "cosine", "log_distance"),
}
# One group of cells (regulatory_links(groups=, group=), GROUP_LINK_MODEL): the all-cells
# model's log-odds plus one term of the group's own evidence (its coefficient fitted with the
# all-cells model as an offset, so that a group of every cell ranks as all cells), chosen
# the same way on the group's features (the K562 cells'); "specificity" is log2 of the
# peak's activity over the group against all cells' (0 over all cells).
GROUP_EVIDENCE = ("specificity", "activity", "expression", "promoter", "log_abc")


# Forms within this held-out log-loss (per row) of the best count as tied: the smallest wins.
LOSS_TOLERANCE = 2e-4
# The L2 penalty of the evidence coefficients (not the intercept).
PENALTY = 1e-2
N_BOOTSTRAP = 1000


def load_truth(path=TRUTH):
    """The CRISPRi table: valid connections, one row per tested element-gene pair."""
    table = pd.read_csv(path, sep="\t")
    table = table[table.ValidConnection.astype(str).str.upper() == "TRUE"]
    table = table.assign(Regulated=table.Regulated.astype(str).str.upper() == "TRUE")
    columns = ["chrom", "chromStart", "chromEnd", "measuredGeneSymbol", "Regulated"]
    return table[columns + ["distanceToTSS", "Dataset"]].reset_index(drop=True)


def load_data(truth, min_cells=10):
    """SNARE-seq: 2000 HVG plus every tested gene detected in >= ``min_cells`` cells."""
    data = load_snare_cellline()
    # Every annotated gene counts for the TSSs between an element and its gene, and the
    # expressed ones (a share of all the cells' counts at least the average gene's) for the
    # expressed genes closer to it.
    located = data.genes.chrom.notna().to_numpy()
    data.annotation = data.genes[located].reset_index(drop=True)
    data.annotation["expressed"] = expressed_genes(data.rna)[located]
    # Other rules, for a sensitivity check (EXPRESSED_RULES): detected in >= 1% of the cells
    # (all of them, or the K562 ones); the same share over the K562 cells.
    k562 = data.cells.cell_line.to_numpy() == "K562"
    for name, cells in (("all", slice(None)), ("k562", k562)):
        detected = np.asarray((data.rna[cells] > 0).mean(axis=0)).ravel() >= 0.01
        data.annotation[f"expressed_detected_{name}"] = detected[located]
    data.annotation["expressed_share_k562"] = expressed_genes(data.rna[k562])[located]
    detected = np.asarray((data.rna > 0).sum(axis=0)).ravel() >= min_cells
    tested = data.genes.gene.isin(set(truth.measuredGeneSymbol)).to_numpy()
    keep = data.genes.highly_variable.to_numpy() | (tested & detected)
    keep &= data.genes.chrom.notna().to_numpy()
    data.genes = data.genes[keep].reset_index(drop=True)
    data.rna = data.rna[:, keep]
    data.labels = data.cells.cell_line.to_numpy()
    data.prior = gene_peak_prior(data.genes, data.peaks)
    return data


# The two defaults changed first for issue 25 (the base of the later encoder change).
TWO_DEFAULTS = {"rna_n_components": 20, "lr_distillation": 1e-3}

# The estimator settings a fit may use: today's defaults, the method's published ones, or
# the steps of issue 25 towards today's defaults.
SETTINGS = {
    "default": {},
    "paper": dict(PAPER_SETTINGS),
    "rna_pcs_20": {**PAPER_SETTINGS, "rna_n_components": 20},
    "pcs20_distill_1e-3": {**PAPER_SETTINGS, **TWO_DEFAULTS},
    "d_hidden_256": {**PAPER_SETTINGS, **TWO_DEFAULTS, "rna_hidden_sizes": (256,)},
}


def fit_path(data, epochs, seed, cache, settings="default"):
    """Where the fit of ``fit_or_load`` is kept (its features beside it)."""
    genes = f"{data.rna.shape[1]}g"
    tag = () if settings == "default" else (settings,)
    return model_path(cache, "crispr", "snare", genes, f"{epochs}ep", f"seed{seed}", *tag)


def fit_or_load(data, path, epochs, seed, settings="default"):
    """FactVAE on every cell (``SETTINGS[settings]``), fitted once and kept at ``path``."""
    return load_or_fit(
        path,
        lambda: FactVAE(**{**SETTINGS[settings], "max_epochs": epochs, "random_state": seed}).fit(
            data.rna, data.atac, prior=data.prior
        ),
    )


def tested_pairs(truth, data):
    """Every (tested pair, overlapping peak): ``pair`` (row of ``truth``), ``gene``, ``peak``.

    Returns ``(overlaps, status)``; ``status`` per truth row: "scored", "no peak" or "gene not
    in the model".
    """
    gene_index = pd.Series(np.arange(len(data.genes)), index=data.genes.gene)
    gene_index = gene_index[~gene_index.index.duplicated()]
    gene = gene_index.reindex(truth.measuredGeneSymbol).to_numpy()
    peaks = data.peaks
    found = []
    for chrom, part in truth.groupby("chrom", sort=False):
        on = np.flatnonzero(peaks.chrom.to_numpy() == chrom)
        order = on[np.argsort(peaks.start.to_numpy()[on], kind="stable")]
        starts, ends = peaks.start.to_numpy()[order], peaks.end.to_numpy()[order]
        # Peaks do not nest in a peak set: ends are sorted with starts.
        for pair, (start, end) in zip(
            part.index, part[["chromStart", "chromEnd"]].to_numpy(), strict=True
        ):
            first = np.searchsorted(ends, start, side="right")
            last = np.searchsorted(starts, end, side="left")
            for k in order[first:last]:
                found.append((pair, k))
    overlaps = pd.DataFrame(found, columns=["pair", "peak"])
    overlaps["gene"] = gene[overlaps.pair]
    status = np.where(np.isnan(gene), "gene not in the model", "no peak")
    covered = overlaps.pair.unique()
    overlaps = overlaps[~np.isnan(overlaps.gene)].astype({"gene": np.int64})
    status[np.intersect1d(covered, np.flatnonzero(~np.isnan(gene)))] = "scored"
    return overlaps.reset_index(drop=True), pd.Series(status, index=truth.index)


def raw_features(data, rows, cols, cells, seed=0):
    """The same evidence from the counts (no model): pseudobulk CPM of the group's cells and
    the pseudobulk correlation over k-means metacells of its cells (one per 20 cells)."""
    rna, atac = data.rna[cells], data.atac[cells]
    activity = 1e6 * np.asarray(atac.sum(axis=0)).ravel() / atac.sum()
    activity_all = 1e6 * np.asarray(data.atac.sum(axis=0)).ravel() / data.atac.sum()
    expression = 1e6 * np.asarray(rna.sum(axis=0)).ravel() / rna.sum()
    pattern = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(rna.shape[1], atac.shape[1]))
    n_metacells = int(np.clip(len(cells) // 20, 3, 200))
    r = peak_gene_correlation(rna, atac, pattern, n_metacells=n_metacells, random_state=seed)
    near = build_gene_peak_prior(
        data.genes, data.peaks, mode="tss_window", window=_link_model.ABC_WINDOW
    ).tocoo()
    evidence = {
        "activity": activity,
        "activity_all": activity_all,
        "activity_quantile": _link_model.quantile(activity),
        "expression": expression,
        "expression_quantile": _link_model.quantile(expression),
        "abc_total": _link_model.abc_denominator(
            activity,
            near.row,
            near.col,
            tss_distance(data.genes, data.peaks, near.row, near.col),
            len(data.genes),
        ),
    }
    evidence["promoter"] = _link_context.promoter_activity(data.genes, data.peaks, activity)
    by_line = [data.rna[data.labels == label] for label in np.unique(data.labels)]
    evidence["expressed_everywhere"] = _link_context.expressed_everywhere(
        np.vstack([1e6 * np.asarray(part.sum(axis=0)).ravel() / part.sum() for part in by_line])
    )
    distance = tss_distance(data.genes, data.peaks, rows, cols)
    correlation = np.asarray(r[rows, cols]).ravel()
    context = _link_context.genomic_context(data.genes, data.peaks, rows, cols, data.annotation)
    features = _link_model.link_features(
        evidence, rows, cols, distance, pair_values={"correlation": correlation}, context=context
    )
    features["kendall"] = kendall(rna, atac, rows, cols)
    return features


def kendall(rna, atac, rows, cols):
    """scE2G's co-variation: Kendall's tau-b of a gene's and a peak's raw counts across the
    cells (0 where either is constant)."""
    rna, atac = sp.csc_matrix(rna), sp.csc_matrix(atac)
    out = np.zeros(len(rows))
    for i, (g, p) in enumerate(zip(rows, cols, strict=True)):
        x, y = rna[:, g].toarray().ravel(), atac[:, p].toarray().ravel()
        if x.min() < x.max() and y.min() < y.max():
            out[i] = kendalltau(x, y).statistic
    return out


def evidence_features(model, data, overlaps, cells_label=None):
    """FactVAE's and the counts' features of every (pair, peak), all cells or one line."""
    groups = None if cells_label is None else data.labels
    rows, cols = overlaps.gene.to_numpy(), overlaps.peak.to_numpy()
    model_features = model.link_features(
        rows, cols, data.genes, data.peaks, groups, cells_label, data.annotation
    )
    cells = (
        np.arange(len(data.labels))
        if cells_label is None
        else np.flatnonzero(data.labels == cells_label)
    )
    return model_features, raw_features(data, rows, cols, cells)


def pair_max(overlaps, values, n_pairs):
    """Max over each pair's overlapping peaks (NaN for pairs without any)."""
    out = pd.Series(np.asarray(values, dtype=np.float64)).groupby(overlaps.pair.to_numpy()).max()
    return out.reindex(np.arange(n_pairs)).to_numpy()


def metrics(labels, scores):
    """(AUPRC, AUROC): sklearn's average precision and ROC AUC, vectorized for bootstraps."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    y, s = labels[order], scores[order]
    last = np.r_[np.diff(s) != 0, True]  # the last position of each distinct score
    tps = np.cumsum(y)[last]
    fps = np.flatnonzero(last) + 1 - tps
    precision, recall = tps / (tps + fps), tps / tps[-1]
    auprc = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    ranks = rankdata(scores)
    n1 = labels.sum()
    n0 = len(labels) - n1
    auroc = float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    return auprc, auroc


def bootstrap(labels, scores, n=N_BOOTSTRAP, seed=0):
    """(point, low, high): AUPRC and AUROC with percentile 95% intervals over pairs
    resampled with replacement (the same draws for every score: fixed seed)."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    point = metrics(labels, scores)
    draws = []
    for _ in range(n):
        pick = rng.integers(0, len(labels), len(labels))
        if labels[pick].all() or not labels[pick].any():
            continue
        draws.append(metrics(labels[pick], scores[pick]))
    low, high = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    return np.array(point), low, high


def loco_folds(chroms):
    """Leave-one-chromosome-out: (train, test) positions, each chromosome once as test."""
    chroms = np.asarray(chroms)
    for chrom in pd.unique(chroms):
        test = chroms == chrom
        yield np.flatnonzero(~test), np.flatnonzero(test)


def fit_link_model(features, labels, names, penalty=PENALTY, base=None):
    """The link model (a dict like ``_link_model.LINK_MODEL``) fitted by maximum likelihood.

    Logistic regression of ``labels`` on the named feature columns with the log power-law
    contact as a fixed offset (exponent 1) and a small L2 penalty on the coefficients;
    L-BFGS from zero, deterministic. Coefficients rounded to 4 decimals. With ``base`` (a
    fitted model), its log-odds is the offset and only the coefficients of ``names`` are
    fitted (no intercept): the result is ``base`` with those terms added.
    """
    columns = [features[name].to_numpy(np.float64) for name in names]
    y = np.asarray(labels, dtype=np.float64)
    if base is None:
        X = np.column_stack([np.ones(len(features))] + columns)
        offset = np.log(_link_model.contact(features["distance"].to_numpy()))
        penalized = np.r_[0.0, np.ones(len(names))]
    else:
        X = np.column_stack(columns)
        offset = model_logit(features, base)
        penalized = np.ones(len(names))

    def loss(beta):
        z = offset + X @ beta
        ridge = penalty * np.sum(penalized * beta**2)
        grad = X.T @ (1.0 / (1.0 + np.exp(-z)) - y) + 2 * penalty * penalized * beta
        return np.sum(np.logaddexp(0.0, z) - y * z) + ridge, grad

    beta = minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B").x
    coef = tuple(round(float(c), 4) for c in beta[-len(names) :]) if names else ()
    if base is not None:
        return {
            **base,
            "features": tuple(base["features"]) + tuple(names),
            "coef": tuple(base["coef"]) + coef,
        }
    return {
        "features": tuple(names),
        "coef": coef,
        "intercept": round(float(beta[0]), 4),
        "contact_exponent": 1.0,
    }


def model_logit(features, model):
    """``_link_model.link_logit`` for any feature columns (ablations use some that
    ``regulatory_links`` does not compute, e.g. the counts' Kendall correlation)."""
    values = np.column_stack(
        [np.zeros(len(features))]
        + [features[name].to_numpy(np.float64) for name in model["features"]]
    )
    offset = model["contact_exponent"] * np.log(
        _link_model.contact(features["distance"].to_numpy())
    )
    return model["intercept"] + offset + values @ np.r_[0.0, np.asarray(model["coef"], float)]


def pooled(logit, model, train):
    """A fold's log-odds on the pooled scale: less the intercept and the evidence term at the
    training rows' mean features (the features centered inside the fold). The intercept only
    encodes the fold's base rate, and a feature's mean times its coefficient shifts a whole
    fold; neither changes a ranking within the fold, both would shift folds against each
    other."""
    names = list(model["features"])
    mean = train[names].to_numpy(np.float64).mean(axis=0) if names else np.zeros(0)
    return logit - model["intercept"] - mean @ np.asarray(model["coef"], dtype=np.float64)


def cv_predictions(features, labels, chroms, names, apply_to=None):
    """Out-of-fold link-model log-odds, leave-one-chromosome-out, and held-out log-loss.

    Fitted on ``features`` of the training chromosomes, applied to ``apply_to`` (default:
    ``features``) of the held-out one. Returns ``(scores, log_loss)``: the scores are on the
    pooled scale (:func:`pooled`), so that folds pool on one scale; the log-loss (per row)
    is the model's own.
    """
    apply_to = features if apply_to is None else apply_to
    chroms = np.asarray(chroms)
    out = np.full(len(features), np.nan)
    loss = np.full(len(features), np.nan)
    for train, test in loco_folds(chroms):
        assert not set(chroms[train]) & set(chroms[test])
        if labels[train].any():
            model = fit_link_model(features.iloc[train], labels[train], names)
            logit = model_logit(apply_to.iloc[test], model)
            out[test] = pooled(logit, model, features.iloc[train])
            loss[test] = np.logaddexp(0.0, logit) - labels[test] * logit
    return out, float(np.nanmean(loss))


def fit_group_model(features, group_features, labels, names, term):
    """One group's link model: the all-cells model of ``names`` fitted on ``features``, plus
    the group's ``term`` (a feature name, or None: no term) fitted on ``group_features``
    with it as the offset."""
    model = fit_link_model(features, labels, names)
    return model if term is None else fit_link_model(group_features, labels, (term,), base=model)


def group_cv_predictions(features, group_features, labels, chroms, names, term):
    """:func:`cv_predictions` of one group's link model: in each fold the all-cells model of
    ``names`` fitted on ``features``, then the group's ``term`` (a feature name, or None)
    fitted on ``group_features`` with it as the offset; applied to the group's features."""
    chroms = np.asarray(chroms)
    out = np.full(len(features), np.nan)
    loss = np.full(len(features), np.nan)
    for train, test in loco_folds(chroms):
        if labels[train].any():
            model = fit_group_model(
                features.iloc[train], group_features.iloc[train], labels[train], names, term
            )
            logit = model_logit(group_features.iloc[test], model)
            out[test] = pooled(logit, model, group_features.iloc[train])
            loss[test] = np.logaddexp(0.0, logit) - labels[test] * logit
    return out, float(np.nanmean(loss))


def choose_group_term(features, group_features, labels, chroms, names):
    """One group's term (None: none) within ``LOSS_TOLERANCE`` of the lowest held-out
    log-loss, no term first; returns ``(term, losses)``."""
    losses = {
        term: group_cv_predictions(features, group_features, labels, chroms, names, term)[1]
        for term in (None,) + GROUP_EVIDENCE
    }
    best = min(losses.values())
    return next(term for term, value in losses.items() if value <= best + LOSS_TOLERANCE), losses


def choose_form(features, labels, chroms, forms=FORMS):
    """The smallest of ``forms`` within ``LOSS_TOLERANCE`` of the lowest
    leave-one-chromosome-out held-out log-loss; returns ``(form, losses)``."""
    losses = {
        name: cv_predictions(features, labels, chroms, names)[1] for name, names in forms.items()
    }
    best = min(losses.values())
    smallest = sorted(forms, key=lambda name: len(forms[name]))
    return next(name for name in smallest if losses[name] <= best + LOSS_TOLERANCE), losses


def peak_rows(truth, overlaps, features):
    """Labels and chromosomes of the (pair, peak) rows."""
    labels = truth.Regulated.to_numpy()[overlaps.pair.to_numpy()]
    chroms = truth.chrom.to_numpy()[overlaps.pair.to_numpy()]
    return labels, chroms


def shipped_model(path=FEATURES_FILE):
    """The link model refitted from the cached feature table (``FEATURES_FILE``): the form
    chosen by leave-one-chromosome-out CV on the all-cells features, fitted on every row."""
    table = pd.read_csv(path)
    features = features_of(table, "all_")
    labels, chroms = table.label.to_numpy(bool), table.chrom.to_numpy()
    form, _ = choose_form(features, labels, chroms)
    return fit_link_model(features, labels, FORMS[form])


def shipped_group_model(path=FEATURES_FILE):
    """One group's link model refitted from the cached feature table: the all-cells model of
    the shipped form (:func:`shipped_model` reproduces its choice) plus the group's term
    chosen on the K562 cells' features (:func:`choose_group_term`), fitted on every row."""
    table = pd.read_csv(path)
    labels, chroms = table.label.to_numpy(bool), table.chrom.to_numpy()
    features, group = features_of(table, "all_"), features_of(table, "k562_")
    names = _link_model.LINK_MODEL["features"]
    term, _ = choose_group_term(features, group, labels, chroms, names)
    return fit_group_model(features, group, labels, names, term)


def feature_table(model, data, truth, overlaps, fit_file):
    """Every (pair, peak) row's features: FactVAE's (``all_``, ``k562_``) and the counts'
    (``raw_all_``, ``raw_k562_``), cached beside the fit kept at ``fit_file`` (None: not
    cached, as the fit)."""
    path = None if fit_file is None else Path(fit_file).with_suffix(".features.pkl")
    if path is not None and path.exists():
        return pd.read_pickle(path)
    parts = [overlaps[["pair", "gene", "peak"]]]
    for label, prefix in [(None, "all_"), ("K562", "k562_")]:
        fitted, raw = evidence_features(model, data, overlaps, label)
        parts += [fitted.add_prefix(prefix), raw.add_prefix("raw_" + prefix)]
    # Ablation: the annotation without its expressed column (the modelled genes above the
    # average gene's share of the model's expression count as expressed, the others all do),
    # and with the other rules of load_data in it.
    for name, column in EXPRESSED_RULES.items():
        annotation = data.annotation.drop(columns="expressed")
        if column is not None:
            annotation["expressed"] = annotation[column]
        other = model.link_features(
            overlaps.gene.to_numpy(),
            overlaps.peak.to_numpy(),
            data.genes,
            data.peaks,
            annotation=annotation,
        )
        parts.append(other[["expressed_closer"]].add_prefix(f"all_{name}_"))
    table = pd.concat([part.reset_index(drop=True) for part in parts], axis=1)
    table["label"] = truth.Regulated.to_numpy()[table.pair]
    table["chrom"] = truth.chrom.to_numpy()[table.pair]
    if path is not None:
        table.to_pickle(path)
    return table


def write_feature_file(table, path=FEATURES_FILE):
    """The few columns the shipped models' test needs (FactVAE's features over all cells and
    over the K562 cells)."""
    columns = ["pair", "chrom", "label"]
    for prefix in ("all_", "k562_"):
        columns += [f"{prefix}{name}" for name in ("distance",) + _link_model.FEATURES]
    table[columns].to_csv(
        path, index=False, float_format="%.6g", compression={"method": "gzip", "mtime": 0}
    )


def features_of(table, prefix):
    part = table[[c for c in table.columns if c.startswith(prefix)]]
    part.columns = [c.removeprefix(prefix) for c in part.columns]
    return part


def nested_group_cv(features, group_features, labels, chroms, names):
    """:func:`nested_cv` of one group's term (chosen inside each training fold; the
    all-cells form fixed to ``names``)."""
    chroms = np.asarray(chroms)
    out = np.full(len(features), np.nan)
    chosen = []
    for train, test in loco_folds(chroms):
        if not labels[train].any():
            continue
        inner, inner_group = (
            part.iloc[train].reset_index(drop=True) for part in (features, group_features)
        )
        term, _ = choose_group_term(inner, inner_group, labels[train], chroms[train], names)
        chosen.append(str(term))
        model = fit_group_model(inner, inner_group, labels[train], names, term)
        out[test] = pooled(model_logit(group_features.iloc[test], model), model, inner_group)
    return out, chosen


def nested_cv(features, labels, chroms, forms=FORMS):
    """Leave-one-chromosome-out with the form chosen inside each training fold (itself by
    leave-one-chromosome-out over the training chromosomes): the honest estimate."""
    chroms = np.asarray(chroms)
    out = np.full(len(features), np.nan)
    chosen = []
    for train, test in loco_folds(chroms):
        if not labels[train].any():
            continue
        inner = features.iloc[train].reset_index(drop=True)
        form, _ = choose_form(inner, labels[train], chroms[train], forms)
        chosen.append(form)
        model = fit_link_model(inner, labels[train], forms[form])
        out[test] = pooled(model_logit(features.iloc[test], model), model, inner)
    return out, chosen


def results_table(scores, truth, scored, n_bootstrap):
    """One row per score: AUPRC and AUROC [95% CI] on all scored pairs and per distance bin."""
    labels = truth.Regulated.to_numpy()[scored]
    distance = truth.distanceToTSS.abs().to_numpy()[scored]
    subsets = [("all", np.ones(len(labels), bool))] + [
        (name, (distance >= low) & (distance < high)) for name, low, high in BINS
    ]
    rows = []
    for name, values in scores.items():
        values = np.asarray(values, dtype=np.float64)
        values = np.where(np.isfinite(values), values, np.nanmin(values) - 1)
        row = {"score": name}
        for subset, mask in subsets:
            point, low, high = bootstrap(labels[mask], values[mask], n_bootstrap)
            for k, metric in enumerate(["AUPRC", "AUROC"]):
                row[f"{metric} {subset}"] = f"{point[k]:.3f} [{low[k]:.2f}, {high[k]:.2f}]"
        rows.append(row)
    return pd.DataFrame(rows), subsets, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=os.environ.get("LINKS_CACHE", "/tmp/links_cache"))
    parser.add_argument("--bootstrap", type=int, default=N_BOOTSTRAP)
    parser.add_argument(
        "--write-features", action="store_true", help=f"rewrite {FEATURES_FILE.name}"
    )
    parser.add_argument(
        "--settings",
        choices=sorted(SETTINGS),
        default="default",
        help="the estimator's defaults, PAPER_SETTINGS (the published method) or 20 RNA PCs",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    truth = load_truth()
    data = load_data(truth)
    path = fit_path(data, args.epochs, args.seed, args.cache, args.settings)
    model = fit_or_load(data, path, args.epochs, args.seed, args.settings)
    overlaps, status = tested_pairs(truth, data)
    table = feature_table(model, data, truth, overlaps, path)
    if args.write_features:
        write_feature_file(table)
    counts = pd.crosstab(status, truth.Regulated).rename(columns={False: "not", True: "regulated"})
    print(f"### Tested pairs ({len(truth)}; {truth.Regulated.sum()} regulated)\n")
    print(counts.to_markdown())
    scored = (status == "scored").to_numpy()
    n_pairs = len(truth)
    labels, chroms = peak_rows(truth, overlaps, table)

    def pm(values):
        return pair_max(overlaps, values, n_pairs)[scored]

    fa, fk = features_of(table, "all_"), features_of(table, "k562_")
    ra, rk = features_of(table, "raw_all_"), features_of(table, "raw_k562_")
    d = fk.distance.to_numpy()

    def loco(features, names):
        return pm(cv_predictions(features, labels, chroms, names)[0])

    scores = {
        "distance to TSS (table)": -truth.distanceToTSS.abs().to_numpy()[scored],
        "FactVAE correlation, K562 cells (group_correlation)": pm(fk.group_correlation),
        "distance to TSS (peak)": pm(-d),
        "ABC raw, K562 (gene-normalized)": pm(rk.abc),
        "ABC FactVAE (all cells)": pm(fa.abc),
        "ABC FactVAE, K562": pm(fk.abc),
        "Kendall raw, K562 cells": pm(rk.kendall),
        "Kendall raw, all cells": pm(ra.kendall),
        "pseudobulk r, metacells (raw)": pm(ra.correlation),
        "FactVAE correlation": pm(fa.correlation),
    }
    # The link model's forms under leave-one-chromosome-out CV (all-cells features: the
    # default of regulatory_links), each with its held-out log-loss.
    chosen, losses = choose_form(fa, labels, chroms)
    print("\n### Link-model forms, leave-one-chromosome-out held-out log-loss per row\n")
    print(pd.Series(losses, name="log-loss").to_frame().to_markdown(floatfmt=".4f"))
    print(f"\nchosen form (smallest within {LOSS_TOLERANCE} of the lowest LOCO log-loss): {chosen}")
    for name, names in FORMS.items():
        tag = " (chosen: the default)" if name == chosen else ""
        scores[f"logistic [{name}], LOCO{tag}"] = loco(fa, names)
    names = FORMS[chosen]
    scores["regulatory_links default: shipped coefficients (in-sample, not CV)"] = pm(
        _link_model.combine(fa, _link_model.DEFAULT_DISTANCE_SCORE)
    )
    nested, picked = nested_cv(fa, labels, chroms)
    scores["logistic, form chosen inside each fold (nested LOCO)"] = pm(nested)
    print("forms chosen inside the folds:", pd.Series(picked).value_counts().to_dict())
    # One group of cells: every feature over the K562 line's cells, the same form; and the
    # shipped coefficients applied to them (what regulatory_links(groups=, group=) ranks).
    scores[f"K562 cells: logistic [{chosen}], LOCO"] = loco(fk, names)
    # The group's own link model: the all-cells form plus one piece of the group's evidence,
    # chosen by the same rule on the K562 cells' features (GROUP_LINK_MODEL).
    term, group_losses = choose_group_term(fa, fk, labels, chroms, names)
    print("\n### One group's term (K562 cells' features), LOCO held-out log-loss per row\n")
    print(
        pd.Series({str(k): v for k, v in group_losses.items()}, name="log-loss")
        .to_frame()
        .to_markdown(floatfmt=".5f")
    )
    print(f"\nchosen term for one group: {term}")
    for name in GROUP_EVIDENCE:
        tag = " (chosen: the group default)" if name == term else ""
        scores[f"K562 cells: logistic [{chosen}] + {name}, LOCO{tag}"] = pm(
            group_cv_predictions(fa, fk, labels, chroms, names, name)[0]
        )
    scores[f"K562 cells: logistic [{chosen}+specificity], all refitted, LOCO"] = loco(
        fk, names + ("specificity",)
    )
    nested, picked = nested_group_cv(fa, fk, labels, chroms, names)
    scores["K562 cells: group term chosen inside each fold (nested LOCO)"] = pm(nested)
    print("group terms chosen inside the folds:", pd.Series(picked).value_counts().to_dict())
    scores["K562 cells: shipped group model (in-sample, not CV)"] = pm(
        _link_model.combine(fk, _link_model.DEFAULT_DISTANCE_SCORE, group=True)
    )
    # The group's own co-variation (over the K562 cells only) in place of the all-cells one.
    own = fk.assign(correlation=fk.group_correlation)
    scores[f"K562 cells, the group's own correlation [{chosen}], LOCO"] = loco(own, names)
    for name in ("+tss+corr+cos+act", "+tss+corr+cos+promoter"):
        scores[f"K562 cells: logistic [{name}], LOCO"] = loco(fk, FORMS[name])
        scores[f"all cells: logistic [{name}], LOCO"] = loco(fa, FORMS[name])
    # expressed_closer without the annotation's expressed column (regulatory_links' fallback:
    # the model's expression), each form that reads it.
    fallback = fa.assign(expressed_closer=fa.fallback_expressed_closer)
    for name, columns in FORMS.items():
        if "expressed_closer" in columns:
            scores[f"all cells: logistic [{name}] without the expressed column, LOCO"] = loco(
                fallback, columns
            )
    # Sensitivity to the expressed rule (with its held-out log-loss, the choosing criterion).
    rule_losses = {
        rule: cv_predictions(
            fa.assign(expressed_closer=fa[f"{rule}_expressed_closer"]),
            labels,
            chroms,
            FORMS["+closer+corr+cos"],
        )[1]
        for rule in EXPRESSED_RULES
    }
    rule_losses["shipped (the share rule)"] = losses["+closer+corr+cos"]
    print("\n### +closer+corr+cos by expressed rule, LOCO held-out log-loss per row\n")
    print(pd.Series(rule_losses, name="log-loss").to_frame().to_markdown(floatfmt=".5f"))
    labels_of = {
        "detected_all": "detected in >= 1% of all cells",
        "detected_k562": "detected in >= 1% of K562 cells",
        "share_k562": "the share rule over K562 cells",
    }
    for rule, label in labels_of.items():
        other = fa.assign(expressed_closer=fa[f"{rule}_expressed_closer"])
        for name in ("+closer", "+closer+corr+cos"):
            scores[f"expressed = {label}: logistic [{name}], LOCO"] = loco(other, FORMS[name])
    # Ablation (issue 32): distance; + genomic context; + raw-count evidence (scE2G's
    # multiome set from the counts of the K562 cells: ABC, promoter accessibility, expressed
    # everywhere, Kendall; + the metacell Pearson); + FactVAE's evidence on top.
    raw_set = SCE2G + ("kendall",)
    both = rk.copy()
    both["f_correlation"], both["f_cosine"] = fa.correlation, fa.cosine
    both["f_log_abc"], both["f_promoter"] = fa.log_abc, fa.promoter
    ablation = {
        "1 distance alone [contact]": (fa, ()),
        "2 genomic context alone [+context]": (fa, CONTEXT),
        "3 + raw-count evidence (scE2G-like, K562 counts)": (rk, raw_set),
        "3b + raw-count evidence + raw Pearson": (rk, raw_set + ("correlation",)),
        "4 + FactVAE evidence (raw + corr + cos)": (both, raw_set + ("f_correlation", "f_cosine")),
        "4b + FactVAE evidence (raw + FactVAE ABC, promoter, corr, cos)": (
            both,
            raw_set + ("f_log_abc", "f_promoter", "f_correlation", "f_cosine"),
        ),
        "5 genomic context + FactVAE evidence only (the chosen form)": (fa, names),
    }
    for name, (features, columns) in ablation.items():
        scores[f"ablation {name}, LOCO"] = loco(features, columns)
    result, subsets, pair_labels = results_table(scores, truth, scored, args.bootstrap)
    sizes = ", ".join(
        f"{name} {mask.sum()} ({pair_labels[mask].sum()} +)" for name, mask in subsets
    )
    print(f"\n### CRISPRi K562, scored pairs: {sizes}; AUPRC and AUROC [bootstrap 95% CI]\n")
    for part in (["AUPRC all", "AUROC all"], [c for c in result.columns if c.endswith("kb")]):
        print(result[["score"] + part].to_markdown(index=False), "\n")
    shipped = fit_link_model(fa, labels, names)
    print("link model fitted on every scored (pair, peak) row, all-cells features:", shipped)
    print("shipped in factvae_sk.analysis._link_model.LINK_MODEL:", _link_model.LINK_MODEL)
    group_model = fit_group_model(fa, fk, labels, names, term)
    print("one group's link model fitted on every row, K562 cells' features:", group_model)
    print(
        "shipped in factvae_sk.analysis._link_model.GROUP_LINK_MODEL:", _link_model.GROUP_LINK_MODEL
    )


if __name__ == "__main__":
    main()
