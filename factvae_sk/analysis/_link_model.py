"""Gene-peak link scores that weigh distance and the model's evidence together.

CRISPRi screens (ENCODE-rE2G's K562 table, ``benchmarks/eval_crispr_links.py``) show that
distance to the TSS alone ranks enhancer-gene pairs better than any co-variation score does;
what a model can add is *evidence beside distance*: how accessible the peak is (activity),
how much the gene is expressed, and whether the two co-vary. The scores here combine them.

Every quantity is read from the fitted model over one group of training cells (all of them by
default), one block of cells at a time, never densifying cells x peaks:

- ``activity``: the peak's mean denoised accessibility (calibrated decoder, counts per
  million) over the group; ``expression`` the same for the gene on the RNA decoder;
- ``correlation``: the model correlation (``_link_scores.score_factors``) over every
  training cell (``group_correlation``: over the group's codes; within one cell line the
  co-variation is noise on the K562 screens, so the score keeps the all-cells one);
  ``cosine``: the embeddings' cosine (no group);
- the genomic context (``_link_context``): TSSs and peaks between the peak and the gene's
  TSS, peaks near the peak, expressed genes closer to the peak than the gene, the
  promoter's accessibility, expressed in every group;
- ``contact``: a power law of the distance, ``5 kb / max(d, 5 kb)`` (ABC's kernel, gamma 1);
- ``abc``: ABC's score, activity x contact over the sum of activity x contact of every peak
  within :data:`ABC_WINDOW` of the gene's TSS (so scale-free within a gene).

Scores (``score=`` of ``regulatory_links``):

- ``"abc"``: the ABC score from the model's denoised activity;
- ``"abc_correlation"``: ``abc * exp(2 * correlation)`` (ABC weighted by co-variation);
- ``"logistic"`` (the default with coordinates): a logistic model whose log-odds are the
  log power-law contact (exponent fixed, a prior) plus a few scale-free evidence features
  (:data:`LINK_MODEL`), its form chosen by leave-chromosomes-out cross-validation on the K562
  CRISPRi table and its coefficients then fitted on the whole table
  (``benchmarks/eval_crispr_links.py`` reproduces them); the links of one group of cells
  add the peak's specificity to the group (:data:`GROUP_LINK_MODEL`).
"""

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from sklearn.cluster import KMeans

from . import _link_context, _link_scores
from ._accessibility import BLOCK_ENTRIES

DISTANCE_SCORES = ("logistic", "abc", "abc_correlation")
# The default of regulatory_links when gene and peak coordinates are given.
DEFAULT_DISTANCE_SCORE = "logistic"
# ABC's contact floor (bp) and the window of a gene's ABC denominator (ABC uses 5 Mb; past
# 1 Mb a power law with a 5 kb floor adds a near-constant share to every gene).
CONTACT_FLOOR = 5_000.0
ABC_WINDOW = 1_000_000
# The co-variation weight of "abc_correlation": exp(2 * r) spans e^-2..e^2.
CORRELATION_WEIGHT = 2.0

# The link model: log-odds = intercept + contact_exponent * log(contact(d)) + coef . features,
# with the power-law contact's exponent fixed (a prior, as ABC's; not fitted) and the few
# evidence coefficients fitted on the whole K562 CRISPRi table (all-cells features of a
# default FactVAE on the SNARE-seq mixture) by benchmarks/eval_crispr_links.py
# (fit_link_model); the form (which features) chosen there by leave-chromosomes-out CV among
# 17 candidates, scE2G's multiome set among them (issue 32). ``expressed_closer`` is
# log1p(expressed genes whose TSS is closer to the peak than the gene's: ABC's "closer
# active genes"; the benchmark's annotation flags the genes whose share of all the cells'
# counts is at least the average gene's, factvae_sk.links.expressed_genes). It replaced
# ``tss_between`` (other genes' TSSs between the peak and the gene's TSS) in the second pass
# of issue 32.
# tests/test_crispr_links.py checks that the benchmark's code reproduces these numbers.
LINK_MODEL = {
    "features": ("expressed_closer", "correlation", "cosine"),
    "coef": (-1.2667, 3.6029, 1.0539),
    "intercept": 0.0244,
    "contact_exponent": 1.0,
}
# The link model of one group of cells (``regulatory_links(groups=, group=)``): the
# all-cells model's log-odds plus one term of the group's own evidence, ``specificity``
# (log2 of the peak's denoised accessibility over the group's cells against all cells'; 0
# over all cells, so a group of every cell ranks as all cells), its coefficient fitted with
# LINK_MODEL as the offset on the K562 cells' features of the same table and the term
# chosen the same way among the group's specificity, activity, expression, promoter and ABC
# (issue 32, third pass): an element opened in the cell type more than elsewhere is likelier
# to act on its genes there.
GROUP_SPECIFICITY_COEF = 0.4515
GROUP_LINK_MODEL = {
    **LINK_MODEL,
    "features": LINK_MODEL["features"] + ("specificity",),
    "coef": LINK_MODEL["coef"] + (GROUP_SPECIFICITY_COEF,),
}
FEATURES = (
    "log_distance",
    "activity",
    "expression",
    "correlation",
    "cosine",
    "specificity",
    "log_abc",
    "tss_between",
    "peaks_between",
    "peaks_near",
    "expressed_closer",
    "promoter",
    "expressed_everywhere",
)


def check_link_model(model):
    """The model's features must be ones :func:`link_features` computes."""
    unknown = set(model["features"]) - set(FEATURES)
    if unknown:
        raise ValueError(f"Unknown link-model features: {sorted(unknown)}.")
    if len(model["coef"]) != len(model["features"]):
        raise ValueError("The link model needs one coefficient per feature.")


def mean_profile(z, embedding, bias=None):
    """Mean over cells of ``softmax(z @ W + bias)``, in counts per million, float64.

    Parameters
    ----------
    z : ndarray of shape (n_cells, n_latent)
    embedding : tensor of shape (n_latent, n_features)
    bias : ndarray of shape (n_features,), default=None

    Returns
    -------
    ndarray of shape (n_features,)
    """
    if len(z) == 0:
        raise ValueError("A group of cells needs at least one cell.")
    rows = max(1, BLOCK_ENTRIES // embedding.shape[1])
    total = torch.zeros(embedding.shape[1], dtype=torch.float64, device=embedding.device)
    with torch.no_grad():
        for start in range(0, len(z), rows):
            block = torch.as_tensor(z[start : start + rows], device=embedding.device)
            logits = block.to(embedding.dtype) @ embedding
            if bias is not None:
                logits = logits + torch.as_tensor(bias, device=embedding.device).to(logits.dtype)
            total += torch.softmax(logits, dim=1).sum(dim=0).double()
    return 1e6 * total.cpu().numpy() / len(z)


def quantile(values):
    """Mid-rank quantiles in (0, 1): scale-free, comparable across datasets."""
    values = np.asarray(values, dtype=np.float64)
    return (rankdata(values) - 0.5) / len(values)


def contact(distance):
    """ABC's power-law contact ``floor / max(d, floor)`` with a 5 kb floor (NaN stays NaN)."""
    return CONTACT_FLOOR / np.maximum(np.asarray(distance, dtype=np.float64), CONTACT_FLOOR)


def abc_denominator(activity, rows, cols, distance, n_genes):
    """Per gene, the sum of activity x contact over its pairs ``(rows, cols)`` (NaN distances
    skipped): ABC's normalizer when the pairs are every peak near the gene's TSS."""
    weight = activity[cols] * contact(distance)
    weight = np.where(np.isfinite(weight), weight, 0.0)
    return np.bincount(rows, weights=weight, minlength=n_genes)


def link_features(evidence, rows, cols, distance, pair_values=None, context=None):
    """The features of the pairs ``(rows[i], cols[i])`` as a DataFrame (one row per pair).

    Parameters
    ----------
    evidence : dict
        From ``FactVAEAnalysisMixin._link_evidence``: ``activity`` and ``activity_all``
        (per peak, CPM), ``expression`` (per gene, CPM), the correlation and cosine factors
        ``correlation`` and ``cosine`` (pairs of matrices), ``abc_total`` (per gene); and
        optionally ``promoter`` (per gene, CPM: ``_link_context.promoter_activity``) and
        ``expressed_everywhere`` (per gene, 0/1).
    rows, cols : ndarray of int
    distance : ndarray of float
        Distance from the gene's TSS to the peak in bp (NaN: not on one chromosome).
    pair_values : dict, default=None
        Per-pair ``correlation``/``cosine`` arrays to use instead of the factors (e.g.
        the counts' pseudobulk correlation, for ablations).
    context : DataFrame, default=None
        ``_link_context.genomic_context`` of the pairs (TSSs and peaks around them).

    Returns
    -------
    DataFrame
        ``distance``, ``activity_cpm``, ``expression_cpm``, ``group_correlation`` (NaN
        without a group's factors) (evidence, raw units) and the
        model's features :data:`FEATURES`: ``log_distance`` (``log10(d + 5 kb)``),
        ``activity`` and ``expression`` (quantiles among all peaks and genes of the
        group), ``correlation``, ``cosine``, ``specificity`` (log2 of the group's activity
        over all cells', clipped to +-5) and ``log_abc`` (``log10(abc + 1e-3)``), ``abc``;
        with ``context`` ``tss_between``, ``peaks_between``, ``peaks_near`` and
        ``expressed_closer`` (where the context has it) as ``log1p(count)``; with the
        evidence's ``promoter`` ``promoter_cpm`` and ``promoter`` (its quantile among the
        genes), with ``expressed_everywhere`` that flag. Features not computed are NaN.
    """
    distance = np.asarray(distance, dtype=np.float64)
    activity = evidence["activity"]
    tiny = 1e-3 * activity.mean()
    abc = activity[cols] * contact(distance) / np.maximum(evidence["abc_total"][rows], tiny)
    specificity = np.log2((activity[cols] + tiny) / (evidence["activity_all"][cols] + tiny))
    n = len(rows)
    context = {} if context is None else context
    promoter = evidence.get("promoter")
    everywhere = evidence.get("expressed_everywhere")
    table = pd.DataFrame(
        {
            "distance": distance,
            "activity_cpm": activity[cols],
            "expression_cpm": evidence["expression"][rows],
            "log_distance": np.log10(distance + CONTACT_FLOOR),
            "activity": evidence["activity_quantile"][cols],
            "expression": evidence["expression_quantile"][rows],
            "correlation": _pair_values(evidence, "correlation", rows, cols, pair_values),
            "cosine": _pair_values(evidence, "cosine", rows, cols, pair_values),
            "group_correlation": _pair_values(
                evidence, "group_correlation", rows, cols, pair_values
            ),
            "specificity": np.clip(specificity, -5.0, 5.0),
            "abc": abc,
            "log_abc": np.log10(abc + 1e-3),
            "promoter_cpm": _per_gene(promoter, rows, n),
            "promoter": _per_gene(None if promoter is None else quantile(promoter), rows, n),
            "expressed_everywhere": _per_gene(everywhere, rows, n),
        }
    )
    for name in _link_context.CONTEXT_FEATURES:
        present = name in context
        table[name] = np.log1p(np.asarray(context[name], float)) if present else np.nan
    return table


def _per_gene(values, rows, n):
    if values is None:
        return np.full(n, np.nan)
    return np.asarray(values, dtype=np.float64)[rows]


def _pair_values(evidence, name, rows, cols, pair_values):
    if pair_values is not None and name in pair_values:
        return np.asarray(pair_values[name], dtype=np.float32)
    if evidence.get(name) is None:
        return np.full(len(rows), np.nan, dtype=np.float32)
    return _link_scores.score_pairs(*evidence[name], rows, cols)


def link_logit(features, model=None):
    """The link model's log-odds ``intercept + exponent * log(contact(d)) + coef . features``
    (NaN where the distance is unknown)."""
    model = LINK_MODEL if model is None else model
    check_link_model(model)
    values = np.column_stack(
        [np.zeros(len(features))]
        + [features[name].to_numpy(np.float64) for name in model["features"]]
    )
    offset = model["contact_exponent"] * np.log(contact(features["distance"].to_numpy()))
    coef = np.r_[0.0, np.asarray(model["coef"], dtype=np.float64)]
    return model["intercept"] + offset + values @ coef


def logistic(features, model=None):
    """The link model's probability, ``sigmoid(link_logit)``."""
    return 1.0 / (1.0 + np.exp(-link_logit(features, model)))


def combine(features, score, group=False):
    """One score per pair from :func:`link_features` (NaN where the distance is unknown);
    ``group``: the features are one group of cells', scored by :data:`GROUP_LINK_MODEL`."""
    if score == "abc":
        values = features["abc"].to_numpy()
    elif score == "abc_correlation":
        values = features["abc"].to_numpy() * np.exp(
            CORRELATION_WEIGHT * features["correlation"].to_numpy(np.float64)
        )
    elif score == "logistic":
        values = logistic(features, GROUP_LINK_MODEL if group else LINK_MODEL)
    else:
        raise ValueError(f"score must be one of {DISTANCE_SCORES}; got {score!r}.")
    return np.where(np.isfinite(features["distance"].to_numpy()), values, np.nan)


def group_cells(groups, group, n_cells):
    """Positions of the training cells of ``group`` (every cell when ``groups`` is None)."""
    if groups is None:
        if group is not None:
            raise ValueError("group needs groups: one label per cell the model was fitted on.")
        return np.arange(n_cells)
    groups = np.asarray(groups)
    if groups.shape != (n_cells,):
        raise ValueError(
            f"groups needs one label per cell the model was fitted on ({n_cells}), in the "
            f"order of fit; got shape {groups.shape}."
        )
    if group is None:
        raise ValueError("groups needs group: the label whose cells the links are for.")
    cells = np.flatnonzero(groups == group)
    if len(cells) < 3:
        raise ValueError(
            f"group {group!r} has {len(cells)} cells among groups; a co-variation needs at least 3."
        )
    return cells


def cell_partition(codes, groups=None):
    """Groups of the training cells for ``expressed_everywhere``: the caller's labels (when
    there are at least two), else k-means clusters of the RNA codes (one per 100 cells, 2 to
    10; seeded, so fixed)."""
    if groups is not None:
        labels, codes_of = np.unique(np.asarray(groups), return_inverse=True)
        if len(labels) >= 2:
            return codes_of
    d = codes.shape[1] // 2
    n_clusters = int(np.clip(len(codes) // 100, 2, 10))
    if len(codes) <= n_clusters:
        return np.zeros(len(codes), dtype=np.int64)
    return KMeans(n_clusters, n_init=3, random_state=0).fit_predict(codes[:, :d])


def link_evidence(codes, cells, embeddings, biases, factors, partition=None):
    """Per-feature evidence over the training cells ``cells``: see :func:`link_features`.

    Parameters
    ----------
    codes : ndarray of shape (n_training_cells, 2 * n_latent)
        RNA then ATAC posterior means of the training cells (``training_codes_``).
    cells : ndarray of int
        The group's cells.
    embeddings : (tensor, tensor)
        The RNA and ATAC decoders' embeddings ``W``, shapes (n_latent, n_genes|n_peaks).
    biases : (ndarray or None, ndarray or None)
        Per-gene and per-peak logit offsets of the decoders.
    factors : dict
        ``{"correlation": (left, right), "cosine": (left, right)}``: the two scores' factor
        matrices (``_link_scores.score_factors``), optionally ``"group_correlation"``, the
        correlation's over the group's cells.
    partition : ndarray of int, default=None
        A group per training cell (:func:`cell_partition`): a gene expressed above the
        average gene in each is ``expressed_everywhere``. ``None`` leaves the flag out.
    """
    d = codes.shape[1] // 2
    w_r, w_a = embeddings
    group = codes[cells]
    activity = mean_profile(group[:, d:], w_a, biases[1])
    if len(cells) == len(codes):
        activity_all = activity
    else:
        activity_all = mean_profile(codes[:, d:], w_a, biases[1])
    expression = mean_profile(group[:, :d], w_r, biases[0])
    everywhere = None
    if partition is not None:
        by_group = [
            mean_profile(codes[partition == label, :d], w_r, biases[0])
            for label in np.unique(partition)
        ]
        everywhere = _link_context.expressed_everywhere(np.vstack(by_group))
    return {
        "expressed_everywhere": everywhere,
        "activity": activity,
        "activity_all": activity_all,
        "activity_quantile": quantile(activity),
        "expression": expression,
        "expression_quantile": quantile(expression),
        "correlation": factors["correlation"],
        "cosine": factors["cosine"],
        "group_correlation": factors.get("group_correlation"),
    }
