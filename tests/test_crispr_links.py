"""Distance-aware link scores (activity, ABC, the shipped link model), links for one group of
cells, and the CRISPRi benchmark's cross-validation and shipped coefficients, each against a
direct dense computation on small data."""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from scipy.special import softmax

from benchmarks import eval_crispr_links
from factvae_sk import FactVAE
from factvae_sk.analysis import _link_context, _link_model
from factvae_sk.exceptions import FactVAEWarning
from factvae_sk.prior import tss_distance

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setting(small, snare):
    peak_order = np.argsort(-np.asarray(snare.atac.sum(axis=0)).ravel(), kind="stable")
    peaks = snare.peaks.iloc[np.sort(peak_order[:5000])].reset_index(drop=True)
    model = FactVAE(random_state=0, **FAST).fit(small["rna"], small["atac"], prior=small["prior"])
    return model, snare.genes_hvg, peaks, small["labels"]


def _dense_evidence(model, cells):
    """Activity, expression and the model correlation from dense cells x features arrays."""
    d = model.n_latent
    codes = model.training_codes_[cells].astype(np.float64)
    w_r = model.feature_embeddings_.rna.to_numpy().astype(np.float64)
    w_a = model.feature_embeddings_.atac.to_numpy().astype(np.float64)
    bias = model._peak_logit_bias(True)
    logits_r, logits_a = codes[:, :d] @ w_r.T, codes[:, d:] @ w_a.T
    activity = 1e6 * softmax(logits_a + bias, axis=1).mean(0)
    expression = 1e6 * softmax(logits_r, axis=1).mean(0)
    return activity, expression, logits_r, logits_a


def _corr(a, b):
    a = (a - a.mean(0)) / a.std(0)
    b = (b - b.mean(0)) / b.std(0)
    return (a * b).mean(0)


@pytest.mark.parametrize("group", [None, "K562"])
def test_link_scores_against_a_dense_computation(setting, group):
    model, genes, peaks, labels = setting
    groups = None if group is None else labels
    cells = np.arange(len(labels)) if group is None else np.flatnonzero(labels == group)
    activity, expression, logits_r, logits_a = _dense_evidence(model, cells)
    links = model.regulatory_links(
        "window", gene_table=genes, peak_table=peaks, window=200_000, groups=groups, group=group
    )
    assert links.attrs["score"] == "logistic"
    gene_pos = pd.Index(genes.gene).get_indexer(links.gene)
    peak_pos = pd.Index(peaks.peak).get_indexer(links.peak)
    distance = tss_distance(genes, peaks, gene_pos, peak_pos)
    np.testing.assert_array_equal(links.distance.to_numpy(dtype=float), distance)
    np.testing.assert_allclose(links.activity, activity[peak_pos], rtol=1e-4)
    np.testing.assert_allclose(links.expression, expression[gene_pos], rtol=1e-4)
    r = _corr(logits_r[:, gene_pos], logits_a[:, peak_pos])
    # The score's co-variation is across every cell; a group's own is reported beside it.
    activity_all, _, all_r, all_a = _dense_evidence(model, np.arange(len(labels)))
    r_all = _corr(all_r[:, gene_pos], all_a[:, peak_pos])
    np.testing.assert_allclose(links.correlation, r_all, atol=2e-4)
    if group is None:
        assert "group_correlation" not in links
    else:
        np.testing.assert_allclose(links.group_correlation, r, atol=2e-4)
    w_r = model.feature_embeddings_.rna.to_numpy()[gene_pos]
    w_a = model.feature_embeddings_.atac.to_numpy()[peak_pos]
    cosine = (w_r * w_a).sum(1) / np.linalg.norm(w_r, axis=1) / np.linalg.norm(w_a, axis=1)
    np.testing.assert_allclose(links.cosine, cosine, atol=1e-5)

    # The link model: sigmoid(intercept + log(5 kb / max(d, 5 kb)) + coef . features); one
    # group's links are scored by the group's model, which adds the peak's specificity.
    shipped = _link_model.LINK_MODEL if group is None else _link_model.GROUP_LINK_MODEL
    tiny = 1e-3 * activity.mean()
    specificity = np.log2((activity[peak_pos] + tiny) / (activity_all[peak_pos] + tiny))
    # Without an annotation's expressed column: the genes above the average gene's share of
    # the group's expression are the expressed ones.
    expressed = expression >= expression.mean()
    context = _link_context.genomic_context(genes, peaks, gene_pos, peak_pos, expressed=expressed)
    features = {
        "correlation": r_all,
        "cosine": cosine,
        "tss_between": np.log1p(context.tss_between.to_numpy()),
        "expressed_closer": np.log1p(context.expressed_closer.to_numpy()),
        "specificity": np.clip(specificity, -5.0, 5.0),
    }
    if group is None:
        np.testing.assert_allclose(features["specificity"], 0.0, atol=1e-5)
    logit = shipped["intercept"] + np.log(5000 / np.maximum(distance, 5000))
    for name, coef in zip(shipped["features"], shipped["coef"], strict=True):
        logit = logit + coef * features[name]
    np.testing.assert_allclose(links.score, 1 / (1 + np.exp(-logit)), rtol=2e-4, atol=1e-6)
    # Best first within each gene.
    ordered = links.groupby("gene", sort=False).score.apply(lambda s: s.is_monotonic_decreasing)
    assert ordered.all()

    # ABC: activity x contact over the gene's sum within 1 Mb, from every peak directly.
    abc = model.regulatory_links(
        "window", gene_table=genes, peak_table=peaks, score="abc", groups=groups, group=group
    )
    g = pd.Index(genes.gene).get_indexer(abc.gene)
    p = pd.Index(peaks.peak).get_indexer(abc.peak)
    all_rows = np.repeat(np.arange(len(genes)), len(peaks))
    all_cols = np.tile(np.arange(len(peaks)), len(genes))
    d_all = tss_distance(genes, peaks, all_rows, all_cols).reshape(len(genes), len(peaks))
    weight = np.where(d_all <= 1_000_000, activity * 5000 / np.maximum(d_all, 5000), 0.0)
    expected = activity[p] * 5000 / np.maximum(abc.distance.to_numpy(float), 5000)
    expected /= weight.sum(1)[g]
    np.testing.assert_allclose(abc.score, expected, rtol=1e-4)
    both = model.regulatory_links(
        "window",
        gene_table=genes,
        peak_table=peaks,
        score="abc_correlation",
        groups=groups,
        group=group,
    )
    abc = abc.set_index(["gene", "peak"]).sort_index()
    expected = abc.score * np.exp(2 * abc.correlation)  # all cells' correlation
    np.testing.assert_allclose(
        both.set_index(["gene", "peak"]).sort_index().score, expected, rtol=1e-4
    )


def test_promoter_and_expressed_everywhere_from_dense_profiles(setting):
    """Promoter accessibility sums the group's dense activity over the peaks within 500 bp of
    the TSS; a gene is expressed everywhere when above the average gene in every group."""
    model, genes, peaks, labels = setting
    cells = np.flatnonzero(labels == "K562")
    activity, _, _, _ = _dense_evidence(model, cells)
    rows = np.arange(len(genes))
    cols = np.zeros(len(genes), dtype=np.int64)
    features = model.link_features(rows, cols, genes, peaks, groups=labels, group="K562")
    all_rows = np.repeat(rows, len(peaks))
    all_cols = np.tile(np.arange(len(peaks)), len(genes))
    d_all = tss_distance(genes, peaks, all_rows, all_cols).reshape(len(genes), len(peaks))
    promoter = np.where(d_all <= 500, activity, 0.0).sum(1)
    np.testing.assert_allclose(features.promoter_cpm, promoter, rtol=1e-4, atol=1e-3)
    expressed = []
    for line in np.unique(labels):
        _, expression, _, _ = _dense_evidence(model, np.flatnonzero(labels == line))
        expressed.append(expression >= expression.mean())
    everywhere = np.all(expressed, axis=0)
    # Genes within float error of the threshold may fall either way.
    assert (features.expressed_everywhere.to_numpy() == everywhere).mean() > 0.99
    assert 0 < everywhere.sum() < len(genes)


@pytest.mark.parametrize("group", [None, "K562"])
def test_expressed_closer_from_the_annotation_or_the_models_expression(setting, snare, group):
    """expressed_closer counts the annotation's ``expressed`` genes; without that column, the
    modelled genes above the average gene's share of the group's dense expression (and every
    annotated gene that is not modelled)."""
    from factvae_sk.links import expressed_genes

    model, genes, peaks, labels = setting
    groups = None if group is None else labels
    cells = np.arange(len(labels)) if group is None else np.flatnonzero(labels == group)
    _, expression, _, _ = _dense_evidence(model, cells)
    modelled = expression >= expression.mean()
    pairs = model.regulatory_links("window", gene_table=genes, peak_table=peaks)
    rows = pd.Index(genes.gene).get_indexer(pairs.gene)
    cols = pd.Index(peaks.peak).get_indexer(pairs.peak)

    def closer(**kwargs):
        features = model.link_features(rows, cols, genes, peaks, groups, group, **kwargs)
        return np.rint(np.expm1(features.expressed_closer.to_numpy())).astype(int)

    own = _link_context.genomic_context(genes, peaks, rows, cols, expressed=modelled)
    np.testing.assert_array_equal(closer(), own.expressed_closer)
    annotation = snare.genes[snare.genes.chrom.notna()].reset_index(drop=True)
    is_modelled = annotation.gene.isin(genes.gene).to_numpy()
    flags = pd.Series(modelled, index=genes.gene).reindex(annotation.gene).to_numpy()
    flags = np.where(is_modelled, flags, True).astype(bool)
    every = _link_context.genomic_context(genes, peaks, rows, cols, annotation, flags)
    np.testing.assert_array_equal(closer(annotation=annotation), every.expressed_closer)
    located = snare.genes.chrom.notna().to_numpy()
    given = annotation.assign(expressed=expressed_genes(snare.rna)[located])
    column = _link_context.genomic_context(genes, peaks, rows, cols, given)
    np.testing.assert_array_equal(closer(annotation=given), column.expressed_closer)
    assert column.expressed_closer.sum() < every.expressed_closer.sum()
    assert (column.expressed_closer > 0).any()


def test_group_of_every_cell_equals_all_cells(setting):
    model, genes, peaks, labels = setting
    everyone = np.full(len(labels), "all")
    for score in ("logistic", "abc", "correlation"):
        kwargs = dict(gene_table=genes, peak_table=peaks, score=score)
        plain = model.regulatory_links("window", **kwargs)
        grouped = model.regulatory_links("window", groups=everyone, group="all", **kwargs)
        if "group_correlation" in grouped:
            np.testing.assert_allclose(grouped.group_correlation, grouped.correlation, atol=1e-6)
            grouped = grouped.drop(columns="group_correlation")
        pd.testing.assert_frame_equal(plain, grouped, check_exact=False, rtol=1e-6)


def test_defaults_fallback_and_errors(setting):
    model, genes, peaks, labels = setting
    assert model.regulatory_links(gene_table=genes, peak_table=peaks).attrs["score"] == "logistic"
    plain = model.regulatory_links()
    assert plain.attrs["score"] == "correlation"  # no coordinates: the co-variation score
    assert list(plain.columns) == ["gene", "peak", "score"]
    with pytest.raises(ValueError, match="needs gene_table and peak_table"):
        model.regulatory_links(score="logistic")
    with pytest.raises(ValueError, match="not 'all'"):
        model.regulatory_links("all", top_k=2, gene_table=genes, peak_table=peaks, score="abc")
    with pytest.raises(ValueError, match="one label per cell"):
        model.regulatory_links(gene_table=genes, peak_table=peaks, groups=labels[:5], group="K562")
    with pytest.raises(ValueError, match="needs group"):
        model.regulatory_links(gene_table=genes, peak_table=peaks, groups=labels)
    with pytest.raises(ValueError, match="at least 3"):
        model.regulatory_links(gene_table=genes, peak_table=peaks, groups=labels, group="nope")
    with pytest.raises(ValueError, match="score must be one of"):
        model.regulatory_links(gene_table=genes, peak_table=peaks, score="pearson")
    top = model.regulatory_links(gene_table=genes, peak_table=peaks, top_k=1)
    assert top.gene.is_unique and {"activity", "correlation"} <= set(top.columns)


def test_leave_chromosomes_out_never_splits_a_chromosome():
    rng = np.random.default_rng(0)
    chroms = rng.choice([f"chr{i}" for i in range(1, 8)], 300)
    folds = list(eval_crispr_links.loco_folds(chroms))
    assert len(folds) == 7
    tested = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(tested), np.arange(300))  # each row tested once
    for train, test in folds:
        assert len(np.unique(chroms[test])) == 1
        assert not set(chroms[train]) & set(chroms[test])
        assert len(train) + len(test) == 300


def test_benchmark_metrics_are_sklearns():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(1)
    labels = rng.random(400) < 0.1
    scores = np.round(rng.normal(size=400) + labels, 1)  # with ties
    auprc, auroc = eval_crispr_links.metrics(labels, scores)
    assert auprc == pytest.approx(average_precision_score(labels, scores))
    assert auroc == pytest.approx(roc_auc_score(labels, scores))


def test_shipped_link_model_is_reproduced_by_the_benchmark():
    """The benchmark's choice and fit, rerun on the cached per-pair features of the K562
    table (tests/data/crispr_k562_features.csv.gz, written by eval_crispr_links.py
    --write-features from its cached FactVAE fit), give the shipped coefficients."""
    refitted = eval_crispr_links.shipped_model(eval_crispr_links.FEATURES_FILE)
    shipped = _link_model.LINK_MODEL
    assert refitted["features"] == shipped["features"]
    assert refitted["contact_exponent"] == shipped["contact_exponent"]
    np.testing.assert_allclose(refitted["coef"], shipped["coef"], atol=2e-4)
    assert refitted["intercept"] == pytest.approx(shipped["intercept"], abs=2e-4)


def test_shipped_group_link_model_is_reproduced_by_the_benchmark():
    """One group's link model: the benchmark's choice of the group's term on the K562 cells'
    cached features, and its fit with the all-cells model as the offset, give the shipped
    GROUP_LINK_MODEL: the all-cells model with one term added (0 over every cell)."""
    refitted = eval_crispr_links.shipped_group_model(eval_crispr_links.FEATURES_FILE)
    shipped, base = _link_model.GROUP_LINK_MODEL, _link_model.LINK_MODEL
    assert refitted["features"] == shipped["features"] == base["features"] + ("specificity",)
    np.testing.assert_allclose(refitted["coef"], shipped["coef"], atol=2e-4)
    assert refitted["intercept"] == pytest.approx(shipped["intercept"], abs=2e-4)
    assert shipped["coef"][:-1] == base["coef"] and shipped["intercept"] == base["intercept"]


def test_pooled_loco_scores_ignore_a_features_offset():
    """Pooled out-of-fold scores center the features inside each fold: shifting a feature by
    a constant (which only moves the intercept) leaves every pooled score unchanged, and
    within a fold they rank as the model's own log-odds."""
    rng = np.random.default_rng(2)
    n = 600
    chroms = rng.choice([f"chr{i}" for i in range(1, 6)], n)
    features = pd.DataFrame(
        {
            "distance": rng.uniform(0, 200_000, n),
            "correlation": rng.normal(size=n),
            "tss_between": np.log1p(rng.poisson(3, n)),
        }
    )
    labels = rng.random(n) < 1 / (1 + np.exp(3 - 1.5 * features.correlation))
    names = ("correlation", "tss_between")
    scores, _ = eval_crispr_links.cv_predictions(features, labels, chroms, names)
    shifted = features.assign(tss_between=features.tss_between + 5.0)
    again, _ = eval_crispr_links.cv_predictions(shifted, labels, chroms, names)
    np.testing.assert_allclose(again, scores, atol=1e-3)
    test = chroms == "chr1"
    model = eval_crispr_links.fit_link_model(features[~test], labels[~test], names)
    own = _link_model.link_logit(features[test], model)
    np.testing.assert_allclose(scores[test] - own, (scores[test] - own)[0], atol=1e-9)


def test_links_from_tables_in_other_naming_conventions(setting):
    """Ensembl chromosome names in the gene table (peaks as 10x names them): the same links,
    distances and evidence as from consistent tables, with one warning per call."""
    model, genes, peaks, _ = setting
    ensembl = genes.assign(chrom=genes["chrom"].str.removeprefix("chr").replace({"M": "MT"}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FactVAEWarning)
        expected = model.regulatory_links("window", gene_table=genes, peak_table=peaks)
        prior_links = model.regulatory_links(gene_table=genes, peak_table=peaks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        links = model.regulatory_links("window", gene_table=ensembl, peak_table=peaks)
    renamed = [w for w in caught if "name chromosomes differently" in str(w.message)]
    assert len(renamed) == 1 and "gene_table and peak_table" in str(renamed[0].message)
    pd.testing.assert_frame_equal(links, expected)
    assert len(links) > 0 and links["distance"].notna().all()
    with pytest.warns(FactVAEWarning, match="name chromosomes differently"):
        pd.testing.assert_frame_equal(
            model.regulatory_links(gene_table=ensembl, peak_table=peaks), prior_links
        )


def test_links_that_find_no_pair_are_never_silently_empty(setting):
    model, genes, peaks, _ = setting
    nothing = np.zeros((model.n_features_in_, model.n_peaks_in_), dtype=np.float32)
    with pytest.raises(ValueError, match="No gene-peak pair among the candidates"):
        model.regulatory_links(nothing, gene_table=genes, peak_table=peaks)
    with pytest.warns(FactVAEWarning, match="No gene-peak pair .* for the genes asked for"):
        assert len(model.regulatory_links(nothing, genes=[0, 1], score="cosine")) == 0
    # Tables that share no chromosome: the error names both and the fix.
    other = peaks.assign(chrom=peaks["chrom"] + "_alt")
    with pytest.raises(ValueError, match="gene_table and peak_table share no chromosome"):
        model.regulatory_links(gene_table=genes, peak_table=other)
    # Genes chosen by a name that repeats: ambiguous, said so.
    repeated = genes.assign(gene=genes["gene"].where(genes.index != 5, genes["gene"][4]))
    with pytest.raises(ValueError, match=r"gene names repeat \(e.g. \['"):
        with pytest.warns(FactVAEWarning, match="repeat"):
            model.regulatory_links(genes=[genes["gene"][4]], gene_table=repeated, peak_table=peaks)
