"""The genomic context of gene-peak pairs (TSSs and peaks between, peaks near, promoter
accessibility, expressed everywhere), each against a direct loop over a small table."""

import numpy as np
import pandas as pd
import pytest

from factvae_sk.analysis import _link_context, _link_model


def _tables(seed=0, n_genes=40, n_peaks=300, n_annotation=90):
    rng = np.random.default_rng(seed)
    chroms = np.array(["chr1", "chr2", "chr3"])

    def genes(n):
        start = rng.integers(0, 400_000, n).astype(float)
        return pd.DataFrame(
            {
                "chrom": rng.choice(chroms, n),
                "start": start,
                "end": start + rng.integers(500, 30_000, n),
                "strand": rng.choice(["+", "-", "."], n, p=[0.45, 0.45, 0.1]),
            }
        )

    modelled = genes(n_genes)
    # The annotation holds the modelled genes and others; one has no coordinates.
    annotation = pd.concat([modelled, genes(n_annotation)], ignore_index=True)
    annotation.loc[len(annotation)] = ["chr1", np.nan, np.nan, "+"]
    start = np.sort(rng.integers(0, 420_000, n_peaks))
    peaks = pd.DataFrame(
        {
            "chrom": rng.choice(chroms, n_peaks),
            "start": start,
            "end": start + rng.integers(200, 1200, n_peaks),
        }
    )
    rows = rng.integers(0, n_genes, 600)
    cols = rng.integers(0, n_peaks, 600)
    return modelled, annotation, peaks, rows, cols


def _tss(gene):
    return gene.end - 1 if gene.strand == "-" else gene.start


def _middle(peak):
    return (peak.start + peak.end - 1) // 2


def test_genomic_context_against_a_loop():
    genes, annotation, peaks, rows, cols = _tables()
    context = _link_context.genomic_context(genes, peaks, rows, cols, annotation)
    for i, (g, p) in enumerate(zip(rows, cols, strict=True)):
        gene, peak = genes.iloc[g], peaks.iloc[p]
        element = _middle(peak)
        if gene.chrom != peak.chrom:
            expected_between = (0, 0)
        else:
            low, high = sorted((element, _tss(gene)))
            tss = {
                _tss(other)
                for other in annotation.itertuples()
                if other.chrom == gene.chrom and np.isfinite(other.start)
            }
            middles = {_middle(q) for q in peaks.itertuples() if q.chrom == peak.chrom}
            expected_between = (
                sum(low < t < high for t in tss),
                sum(low < m < high for m in middles),
            )
        assert (context.tss_between[i], context.peaks_between[i]) == expected_between
        near = {
            _middle(q)
            for q in peaks.itertuples()
            if q.chrom == peak.chrom and abs(_middle(q) - element) <= 5_000
        }
        assert context.peaks_near[i] == len(near) - 1


def test_tss_between_counts_every_annotated_gene_not_only_the_modelled_ones():
    genes, annotation, peaks, rows, cols = _tables(seed=1)
    own = _link_context.genomic_context(genes, peaks, rows, cols)
    every = _link_context.genomic_context(genes, peaks, rows, cols, annotation)
    assert (every.tss_between >= own.tss_between).all()
    assert (every.tss_between > own.tss_between).any()
    pd.testing.assert_series_equal(every.peaks_between, own.peaks_between)


def test_promoter_activity_and_expressed_everywhere_against_loops():
    genes, _, peaks, _, _ = _tables(seed=2)
    activity = np.random.default_rng(2).gamma(1.0, 10.0, len(peaks))
    promoter = _link_context.promoter_activity(genes, peaks, activity)
    for g, gene in enumerate(genes.itertuples()):
        tss = [gene.start] if gene.strand == "+" else [gene.end - 1]
        if gene.strand == ".":
            tss = [gene.start, gene.end - 1]
        expected = sum(
            activity[p]
            for p, peak in enumerate(peaks.itertuples())
            if peak.chrom == gene.chrom
            and min(max(peak.start - t, t - (peak.end - 1), 0) for t in tss) <= 500
        )
        assert promoter[g] == pytest.approx(expected)

    expression = np.random.default_rng(3).gamma(0.5, 1.0, (4, 30))
    flag = _link_context.expressed_everywhere(expression)
    for g in range(30):
        above = [expression[k, g] >= expression[k].mean() for k in range(4)]
        assert flag[g] == float(all(above))


def test_link_features_carry_the_context_as_log_counts():
    genes, annotation, peaks, rows, cols = _tables(seed=4)
    context = _link_context.genomic_context(genes, peaks, rows, cols, annotation)
    rng = np.random.default_rng(4)
    evidence = {
        "activity": rng.gamma(1.0, 10.0, len(peaks)),
        "expression": rng.gamma(1.0, 10.0, len(genes)),
        "promoter": rng.gamma(1.0, 10.0, len(genes)),
        "expressed_everywhere": (rng.random(len(genes)) < 0.3).astype(float),
        "abc_total": np.full(len(genes), 1.0),
        "correlation": None,
        "cosine": None,
    }
    evidence["activity_all"] = evidence["activity"]
    evidence["activity_quantile"] = _link_model.quantile(evidence["activity"])
    evidence["expression_quantile"] = _link_model.quantile(evidence["expression"])
    distance = np.full(len(rows), 10_000.0)
    features = _link_model.link_features(evidence, rows, cols, distance, context=context)
    for name in _link_context.CONTEXT_FEATURES:
        np.testing.assert_allclose(features[name], np.log1p(context[name]))
    np.testing.assert_allclose(features.promoter_cpm, evidence["promoter"][rows])
    ranks = pd.Series(evidence["promoter"]).rank().to_numpy()
    np.testing.assert_allclose(features.promoter, (ranks[rows] - 0.5) / len(genes))
    np.testing.assert_array_equal(
        features.expressed_everywhere, evidence["expressed_everywhere"][rows]
    )
    # Without context the features are missing, not zero.
    assert _link_model.link_features(evidence, rows, cols, distance).tss_between.isna().all()
