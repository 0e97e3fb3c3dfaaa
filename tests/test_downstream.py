"""Downstream outputs: augmented accessibility, cross-modal imputation, regulatory links,
labelled feature embeddings and differential peaks, each against an independent reference."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from conftest import FAST
from scipy import stats

from factvae_sk import FactVAE, build_gene_peak_prior
from factvae_sk.analysis import _accessibility, _link_scores

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fitted(small):
    return FactVAE(random_state=0, **FAST).fit(small["rna"], small["atac"], prior=small["prior"])


@pytest.fixture(scope="module")
def named(snare, small):
    """The same model fitted on DataFrames, so it knows gene and peak names."""
    cells = np.arange(0, 900, 3)
    peak_order = np.argsort(-np.asarray(snare.atac.sum(axis=0)).ravel(), kind="stable")
    peaks = np.sort(peak_order[:5000])
    gene_names = snare.genes_hvg.gene.to_numpy()
    peak_names = snare.peaks.peak.to_numpy()[peaks]
    rna = pd.DataFrame.sparse.from_spmatrix(small["rna"], columns=gene_names)
    atac = pd.DataFrame.sparse.from_spmatrix(small["atac"], columns=peak_names)
    model = FactVAE(random_state=0, **FAST).fit(rna, atac, prior=small["prior"])
    return model, snare.genes_hvg, snare.peaks.iloc[peaks].reset_index(drop=True), cells


def _decoder_reference(model, atac):
    """Augmented ATAC straight from the torch decoder: the formula, no blocks, no shortcuts."""
    module = model.module_.eval()
    x = torch.from_numpy(model.atac_encoder_input_.transform(atac).astype(np.float32))
    log_library = torch.from_numpy(np.log(np.asarray(atac.sum(axis=1), np.float32).ravel()))
    with torch.no_grad():
        z = module.encoder_atac(x)[0]
        return module.decoder_atac(z, log_library)[0].exp().numpy()


def test_impute_atac_matches_the_decoder_and_is_the_same_in_any_blocks(fitted, small, monkeypatch):
    atac = small["atac"][:70]
    imputed = fitted.impute_atac(atac, calibrate=False)
    np.testing.assert_allclose(imputed, _decoder_reference(fitted, atac), rtol=2e-4, atol=1e-7)
    # Blocks of 3 cells x all peaks and 1 cell x 1000 peaks: the same numbers.
    monkeypatch.setattr(_accessibility, "BLOCK_ENTRIES", 3 * atac.shape[1])
    np.testing.assert_allclose(
        fitted.impute_atac(atac, calibrate=False), imputed, rtol=1e-5, atol=1e-9
    )
    monkeypatch.setattr(_accessibility, "BLOCK_ENTRIES", 1000)
    np.testing.assert_allclose(
        fitted.impute_atac(atac, calibrate=False), imputed, rtol=1e-5, atol=1e-9
    )


def test_impute_atac_subset_of_peaks_equals_the_columns_of_the_full_result(fitted, small):
    atac = small["atac"][:40]
    full = fitted.impute_atac(atac)
    index = np.array([4999, 0, 17, 17, 2500])
    np.testing.assert_allclose(fitted.impute_atac(atac, peaks=index), full[:, index], rtol=1e-5)
    mask = np.zeros(atac.shape[1], bool)
    mask[[3, 9, 400]] = True
    np.testing.assert_allclose(fitted.impute_atac(atac, peaks=mask), full[:, mask], rtol=1e-5)
    with pytest.raises(ValueError, match="must lie in"):
        fitted.impute_atac(atac, peaks=[5000])
    with pytest.raises(ValueError, match="no peak names"):
        fitted.impute_atac(atac, peaks=["chr1:1-2"])


def test_impute_atac_library_size_options(fitted, small):
    atac = small["atac"][:30]
    observed = fitted.impute_atac(atac)
    np.testing.assert_allclose(observed.sum(1), np.asarray(atac.sum(1)).ravel(), rtol=1e-3)
    normalized = fitted.impute_atac(atac, library_size=1e4)
    np.testing.assert_allclose(normalized.sum(1), 1e4, rtol=1e-3)
    # Only the scale changes: the same profile per cell.
    np.testing.assert_allclose(
        normalized, observed * (1e4 / observed.sum(1, keepdims=True)), rtol=1e-3
    )
    for bad in (0, -1.0, np.inf, "1e4"):
        with pytest.raises(ValueError, match="library_size"):
            fitted.impute_atac(atac, library_size=bad)


def test_cross_modal_imputation_decodes_the_mapped_rna_code(fitted, small):
    rna = small["rna"][:25]
    imputed = fitted.impute_atac(X_rna=rna, peaks=np.arange(100), calibrate=False)
    assert imputed.shape == (25, 100) and np.isfinite(imputed).all()
    z_rna = fitted.set_params(embedding="rna").transform(rna)
    z_atac = torch.from_numpy(fitted.rna_to_atac_.predict(z_rna).astype(np.float32))
    library = torch.full((25,), fitted.atac_log_library_median_)
    with torch.no_grad():
        expected = fitted.module_.decoder_atac(z_atac, library)[0].exp().numpy()[:, :100]
    np.testing.assert_allclose(imputed, expected, rtol=2e-4, atol=1e-8)
    # The map was fitted on the paired training cells' posterior means.
    assert fitted.rna_to_atac_.n_features_in_ == FAST["n_latent"]
    with pytest.raises(ValueError, match="X_atac, or X_rna"):
        fitted.impute_atac()


def test_feature_embeddings_are_labelled_tables(named, fitted):
    model, genes, peaks, _ = named
    emb = model.feature_embeddings_
    assert list(emb.rna.index[:3]) == list(genes.gene[:3]) and emb.rna.index.name == "gene"
    assert list(emb.atac.index) == list(peaks.peak) and emb.atac.index.name == "peak"
    assert list(emb.rna.columns) == [f"latent{i}" for i in range(FAST["n_latent"])]
    # Without names: positions as the index.
    assert list(fitted.feature_embeddings_.atac.index[:3]) == [0, 1, 2]


def test_impute_atac_selects_peaks_by_name(named, small):
    model, _, peaks, _ = named
    atac = pd.DataFrame.sparse.from_spmatrix(small["atac"][:10], columns=peaks.peak)
    chosen = peaks.peak.to_numpy()[[10, 3]]
    np.testing.assert_allclose(
        model.impute_atac(atac, peaks=chosen), model.impute_atac(atac)[:, [10, 3]], rtol=1e-5
    )
    with pytest.raises(ValueError, match="Unknown peak name"):
        model.impute_atac(atac, peaks=["chrZ:1-2"])


def test_regulatory_links_on_the_prior_pairs(named, small):
    model, genes, peaks, _ = named
    # With coordinates the default is the distance-aware link model, its evidence beside it.
    default = model.regulatory_links(gene_table=genes, peak_table=peaks)
    assert default.attrs["score"] == "logistic"
    assert list(default.columns) == [
        "gene", "peak", "score", "distance", "activity", "expression", "correlation", "cosine",
    ]  # fmt: skip
    links = model.regulatory_links(gene_table=genes, peak_table=peaks, score="correlation")
    prior = small["prior"]
    assert len(links) == len(default) == prior.nnz
    assert list(links.columns) == ["gene", "peak", "score", "distance"]
    dense = model.regulatory_scores()
    gene_pos = pd.Index(genes.gene).get_indexer(links.gene)
    peak_pos = pd.Index(peaks.peak).get_indexer(links.peak)
    assert prior[gene_pos, peak_pos].min() > 0  # every link is a prior pair
    np.testing.assert_allclose(links.score, dense[gene_pos, peak_pos], rtol=1e-5, atol=1e-6)
    # Distance by hand for a few links, from the TSS (start on '+', end - 1 on '-').
    for i in range(0, len(links), max(1, len(links) // 25)):
        gene, peak = genes.iloc[gene_pos[i]], peaks.iloc[peak_pos[i]]
        tss = gene.start if gene.strand == "+" else gene.end - 1
        expected = max(peak.start - tss, tss - (peak.end - 1), 0)
        assert links.distance[i] == expected
    # Overlap links from the gene body + 2 kb prior: within the gene's length + 2 kb.
    assert (links.distance <= (genes.end - genes.start).max() + 2000).all()
    # Grouped by gene, best first.
    assert (links.groupby("gene", sort=False).score.diff().dropna() <= 0).all()


def test_regulatory_links_top_k_matches_a_full_sort(fitted, monkeypatch):
    dense = fitted.regulatory_scores()
    genes = np.array([0, 5, 1999])
    expected = np.argsort(-dense[genes], axis=1, kind="stable")[:, :4]
    monkeypatch.setattr(_link_scores, "BLOCK_ENTRIES", 2 * dense.shape[1])  # two genes per block
    links = fitted.regulatory_links("all", genes=genes, top_k=4)
    assert len(links) == 12
    np.testing.assert_array_equal(links.peak.to_numpy().reshape(3, 4), expected)
    np.testing.assert_allclose(
        links.score.to_numpy().reshape(3, 4),
        np.take_along_axis(dense[genes], expected, 1),
        rtol=1e-5,
    )
    # Top k among the prior's pairs: each gene's best prior pairs.
    prior_links = fitted.regulatory_links()
    best = fitted.regulatory_links(top_k=1)
    assert best.gene.is_unique
    assert np.allclose(best.score.to_numpy(), prior_links.groupby("gene").score.max().to_numpy())
    with pytest.raises(ValueError, match="top_k"):
        fitted.regulatory_links("all")


def test_regulatory_links_on_any_pattern_and_without_a_prior(fitted, small):
    pattern = sp.random(*small["prior"].shape, density=1e-4, random_state=0, format="csr")
    links = fitted.regulatory_links(pattern)
    assert len(links) == pattern.nnz
    model = FactVAE(random_state=0, **FAST).fit(small["rna"], small["atac"])
    with pytest.raises(ValueError, match="without a prior"):
        model.regulatory_links()
    with pytest.raises(ValueError, match="candidates must be"):
        model.regulatory_links("nearby")
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        model.regulatory_links("all", top_k=0)
    with pytest.raises(ValueError, match="gene_table needs one row per feature"):
        model.regulatory_links(pattern, gene_table=pd.DataFrame({"gene": ["a"]}))
    with pytest.raises(ValueError, match="gene positions must lie in"):
        model.regulatory_links("all", genes=[10**6], top_k=1)


def test_differential_peaks_match_scipy_on_the_imputed_data(fitted, small, monkeypatch):
    atac = small["atac"][:120]
    groups = small["labels"][:120]
    peaks = np.arange(0, 5000, 50)
    table = fitted.differential_peaks(atac, groups, peaks=peaks)
    labels = pd.unique(groups)
    assert len(table) == len(labels) * len(peaks)
    values = fitted.impute_atac(atac, peaks=peaks, library_size=1e4)
    for label in labels:
        mine = table[table.group == label].set_index("peak").loc[peaks]
        inside = groups == label
        test = stats.mannwhitneyu(values[inside], values[~inside], axis=0)
        np.testing.assert_allclose(mine.pvalue, test.pvalue, rtol=1e-4)
        np.testing.assert_allclose(mine.mean_group, values[inside].mean(0), rtol=1e-4)
        np.testing.assert_allclose(
            mine.log2_fold_change,
            np.log2(values[inside].mean(0) / values[~inside].mean(0)),
            rtol=1e-4,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            mine.pvalue_adj, stats.false_discovery_control(test.pvalue), rtol=1e-4
        )

    # Peak blocks of 7 columns: the same table. A block multiplies fewer columns, so BLAS
    # may round in another order: two cells whose imputed values lie within float32
    # rounding can swap ranks, moving the rank-sum statistic by one pair (and the rows,
    # sorted by p-value, may swap). The t-test, continuous in the values, must give the same
    # table to rounding.
    def by_peak(frame):
        return frame.sort_values(["group", "peak"], ignore_index=True)

    welch = by_peak(fitted.differential_peaks(atac, groups, peaks=peaks, method="t-test"))
    monkeypatch.setattr(_accessibility, "BLOCK_ENTRIES", 7 * 120)
    again = by_peak(fitted.differential_peaks(atac, groups, peaks=peaks))
    table = by_peak(table)
    np.testing.assert_allclose(again.statistic, table.statistic, rtol=0, atol=1)
    same = again.statistic == table.statistic
    assert same.mean() > 0.95
    # (pvalue_adj couples the rows through the BH step-up: checked on the t-test.)
    columns = table.columns.drop("pvalue_adj")
    pd.testing.assert_frame_equal(
        table.loc[same, columns], again.loc[same, columns], rtol=1e-4, atol=1e-5
    )
    welch_again = fitted.differential_peaks(atac, groups, peaks=peaks, method="t-test")
    pd.testing.assert_frame_equal(welch, by_peak(welch_again), rtol=1e-4, atol=5e-4)


def test_differential_peaks_t_test_against_a_named_reference(fitted, small):
    atac, groups = small["atac"][:120], small["labels"][:120]
    reference = groups[0]
    table = fitted.differential_peaks(
        atac, groups, reference=reference, method="t-test", peaks=[1, 2]
    )
    assert reference not in set(table.group)
    values = fitted.impute_atac(atac, peaks=[1, 2], library_size=1e4)
    label = table.group.iloc[0]
    mine = table[table.group == label].set_index("peak").loc[[1, 2]]
    test = stats.ttest_ind(values[groups == label], values[groups == reference], equal_var=False)
    np.testing.assert_allclose(mine.statistic, test.statistic, rtol=1e-4)
    with pytest.raises(ValueError, match="one label per cell"):
        fitted.differential_peaks(atac, groups[:-1])
    with pytest.raises(ValueError, match="not one of the groups"):
        fitted.differential_peaks(atac, groups, reference="nope")
    with pytest.raises(ValueError, match="method"):
        fitted.differential_peaks(atac, groups, method="anova")


def test_calibration_matches_the_training_peak_totals(fitted, small):
    atac = small["atac"]
    observed = np.asarray(atac.sum(axis=0)).ravel()
    plain = fitted.impute_atac(atac, calibrate=False).sum(axis=0)
    calibrated = fitted.impute_atac(atac, calibrate=True).sum(axis=0)
    # Per-cell depths are kept either way; the per-peak totals move to the observed ones.
    np.testing.assert_allclose(calibrated.sum(), observed.sum(), rtol=1e-3)
    error_plain = np.abs(np.log1p(plain) - np.log1p(observed)).mean()
    error_calibrated = np.abs(np.log1p(calibrated) - np.log1p(observed)).mean()
    print(f"mean |log1p error| of peak totals: {error_plain:.3f} -> {error_calibrated:.3f}")
    assert error_calibrated < 0.5 * error_plain
    # The offsets are the formula's, from the decoder's totals on the training cells.
    np.testing.assert_allclose(
        fitted.atac_peak_bias_, np.log((observed + 1) / (plain + 1)), rtol=1e-3, atol=1e-4
    )


def test_regulatory_links_in_a_tss_window(named):
    model, genes, peaks, _ = named
    links = model.regulatory_links(
        "window", gene_table=genes, peak_table=peaks.peak.to_numpy(), window=50_000
    )
    window = build_gene_peak_prior(genes, peaks, mode="tss_window", window=50_000)
    assert len(links) == window.nnz > 0
    assert links.distance.between(0, 50_000).all()
    # The distance and the prior's decay weight describe the same pair.
    rows = pd.Index(genes.gene).get_indexer(links.gene)
    cols = pd.Index(peaks.peak).get_indexer(links.peak)
    weights = np.asarray(window[rows, cols]).ravel()
    np.testing.assert_allclose(weights, ((links.distance + 1000) / 1000) ** -0.75, rtol=1e-5)
    # Selected genes by name, best two peaks each.
    chosen = links.gene.unique()[:3]
    top = model.regulatory_links(
        "window", genes=chosen, top_k=2, gene_table=genes, peak_table=peaks, window=50_000
    )
    assert set(top.gene) <= set(chosen) and top.groupby("gene").size().max() <= 2


def test_weights_only_file_keeps_the_cross_modal_map_and_calibration(fitted, small, tmp_path):
    path = fitted.save(tmp_path / "model.npz")
    loaded = FactVAE.load(path, device="cpu")
    rna, atac = small["rna"][:20], small["atac"][:20]
    for kwargs in ({"X_rna": rna}, {"X_atac": atac, "calibrate": True}):
        np.testing.assert_array_equal(loaded.impute_atac(**kwargs), fitted.impute_atac(**kwargs))
    np.testing.assert_array_equal(loaded.rna_to_atac_.coef_, fitted.rna_to_atac_.coef_)
    pd.testing.assert_frame_equal(loaded.feature_embeddings_.atac, fitted.feature_embeddings_.atac)
