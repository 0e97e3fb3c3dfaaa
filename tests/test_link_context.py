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
    rng = np.random.default_rng(4)
    expressed = rng.random(len(annotation)) < 0.5
    context = _link_context.genomic_context(genes, peaks, rows, cols, annotation, expressed)
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


def _closer_by_loop(genes, sites, peaks, rows, cols, expressed):
    """expressed_closer directly: per pair, the expressed sites (rows of ``sites``) on the
    peak's chromosome whose TSS is strictly closer to the peak's midpoint than the gene's,
    the gene's own entries (same coordinates, or same name when both tables have names)
    left out."""
    named = "gene" in genes.columns and "gene" in sites.columns
    out = []
    for g, p in zip(rows, cols, strict=True):
        gene, peak = genes.iloc[g], peaks.iloc[p]
        element = _middle(peak)
        if gene.chrom != peak.chrom or not np.isfinite(gene.start):
            out.append(0)
            continue
        d = abs(_tss(gene) - element)
        n = 0
        for k, site in enumerate(sites.itertuples(index=False)):
            same = (
                site.gene == gene.gene
                if named
                else (site.chrom, site.start, site.end, site.strand)
                == (gene.chrom, gene.start, gene.end, gene.strand)
            )
            if (
                expressed[k]
                and not same
                and site.chrom == peak.chrom
                and np.isfinite(site.start)
                and abs(_tss(site) - element) < d
            ):
                n += 1
        out.append(n)
    return np.array(out)


def test_expressed_closer_against_a_loop():
    genes, annotation, peaks, rows, cols = _tables(seed=5)
    rng = np.random.default_rng(5)
    # Many ties: TSSs on a coarse grid, several genes on the same base.
    for table in (genes, annotation):
        shift = np.round(table.start / 5_000) * 5_000 - table.start
        table["start"] += shift
        table["end"] += shift + np.where(table.strand == "-", 1, 0)
    annotation.iloc[: len(genes), :4] = genes.to_numpy()
    expressed = rng.random(len(annotation)) < 0.6
    context = _link_context.genomic_context(genes, peaks, rows, cols, annotation, expressed)
    expected = _closer_by_loop(genes, annotation, peaks, rows, cols, expressed)
    np.testing.assert_array_equal(context.expressed_closer, expected)
    assert expected.max() > 2
    # The annotation's expressed column does the same.
    with_column = _link_context.genomic_context(
        genes, peaks, rows, cols, annotation.assign(expressed=expressed)
    )
    np.testing.assert_array_equal(with_column.expressed_closer, expected)
    # Without flags or a column there is no expressed_closer.
    assert "expressed_closer" not in _link_context.genomic_context(
        genes, peaks, rows, cols, annotation
    )


def test_expressed_closer_on_a_hand_made_table():
    # The pair's gene (TSS 1000, '+') and a peak whose midpoint is 1500 (d = 500).
    genes = pd.DataFrame(
        {
            "gene": ["g", "h", "nowhere", "lost"],
            "chrom": ["chr1", "chr1", "chr1", "chr9"],
            "start": [1000.0, 5000.0, np.nan, 100.0],
            "end": [3000.0, 9000.0, np.nan, 200.0],
            "strand": ["+", "-", "+", "+"],
        }
    )
    sites = pd.DataFrame(
        {
            "gene": [
                "g",
                "g",
                "tie_same",
                "tie_far",
                "in_left",
                "in_right",
                "minus",
                "minus_out",
                "unknown",
                "off",
                "no_tss",
                "other_chrom",
            ],
            "chrom": ["chr1"] * 10 + ["chr1", "chr2"],
            # g again with another TSS (another transcript): its own, never counted.
            "start": [
                1000.0,
                1400.0,
                1000.0,
                2000.0,
                1001.0,
                1999.0,
                100.0,
                100.0,
                1200.0,
                1300.0,
                np.nan,
                1500.0,
            ],
            "end": [
                3000.0,
                3000.0,
                2000.0,
                2500.0,
                1500.0,
                2500.0,
                1700.0,
                2000.0,
                4000.0,
                1400.0,
                np.nan,
                1600.0,
            ],
            "strand": ["+", "+", "+", "+", "+", "+", "-", "-", ".", "+", "+", "+"],
            "expressed": [True] * 9 + [False, True, True],
        }
    )
    # minus: TSS 1699 (closer); minus_out: TSS 1999 (closer, d 499); unknown strand: its
    # start 1200; off: closer but not expressed.
    peaks = pd.DataFrame(
        {"chrom": ["chr1", "chr1", "chrX"], "start": [1400, 1000, 0], "end": [1601, 1001, 10]}
    )
    rows = np.array([0, 0, 1, 2, 3, 0])
    cols = np.array([0, 1, 0, 0, 0, 2])
    context = _link_context.genomic_context(genes, peaks, rows, cols, sites)
    # g, peak 1500: in_left, in_right, minus, minus_out, unknown; tie_same (1000, d 500)
    # and tie_far (2000, d 500) are exactly as far; g's second entry is its own.
    # g, peak at its TSS (d 0): none. h (TSS 8999) with peak 1500: every expressed chr1 site
    # but h's... all 9 expressed chr1 sites with a TSS. No TSS, other chromosome: 0.
    assert context.expressed_closer.tolist() == [5, 0, 9, 0, 0, 0]
    expected = _closer_by_loop(genes, sites, peaks, rows, cols, sites.expressed.to_numpy())
    assert context.expressed_closer.tolist() == expected.tolist()


def test_expressed_sites_falls_back_on_the_modelled_genes():
    genes, annotation, _, _, _ = _tables(seed=6)
    modelled = np.arange(len(genes)) % 3 == 0
    # Without an annotation: the modelled flags; with one, matched by coordinates (the
    # annotation's first rows are the modelled genes), the others expressed.
    np.testing.assert_array_equal(_link_context.expressed_sites(genes, None, modelled), modelled)
    flags = _link_context.expressed_sites(genes, annotation, modelled)
    np.testing.assert_array_equal(flags[: len(genes)], modelled)
    assert flags[len(genes) :].all()
    # By name when both tables have names, in any order.
    named = genes.assign(gene=[f"g{i}" for i in range(len(genes))])
    other = named.iloc[::-1].assign(start=0.0).reset_index(drop=True)
    flags = _link_context.expressed_sites(named, other, modelled)
    np.testing.assert_array_equal(flags, modelled[::-1])
    # A given column wins; it must be boolean and complete.
    given = annotation.assign(expressed=False)
    assert not _link_context.expressed_sites(genes, given, modelled).any()
    with pytest.raises(ValueError, match="missing"):
        _link_context.expressed_sites(genes, given.assign(expressed=np.nan), modelled)
    with pytest.raises(ValueError, match="boolean"):
        _link_context.expressed_sites(genes, given.assign(expressed="yes"), modelled)
    # above_average: the average gene's share.
    np.testing.assert_array_equal(
        _link_context.above_average([1.0, 2.0, 3.0, 6.0]), [False, False, True, True]
    )


def test_expressed_genes_are_above_the_average_genes_share():
    import scipy.sparse as sp

    from factvae_sk.links import expressed_genes

    rng = np.random.default_rng(7)
    counts = rng.poisson(rng.gamma(0.3, 2.0, 50), (120, 50)).astype(float)
    counts[:10] = 0  # cells without counts are allowed: they add nothing
    totals = counts.sum(0)
    expected = [totals[g] >= totals.mean() for g in range(50)]
    assert 0 < sum(expected) < 50
    np.testing.assert_array_equal(expressed_genes(counts), expected)
    # Sparse or dense, scaled or not (the share is scale-free): the same.
    np.testing.assert_array_equal(expressed_genes(sp.csr_matrix(counts) * 0.1), expected)
    np.testing.assert_array_equal(expressed_genes(sp.csc_matrix(counts * 7)), expected)
    with pytest.raises(ValueError, match="sums to 0"):
        expressed_genes(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="Negative values"):
        expressed_genes(-counts)
