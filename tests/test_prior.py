"""Tests of the gene-peak prior: gene body + upstream overlap and TSS window with decay."""

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import FAST

from factvae_sk import FactVAE, build_gene_peak_prior
from factvae_sk.exceptions import FactVAEWarning
from factvae_sk.prior import gene_peak_prior, parse_peak_names, tss_distance

DATA = Path(__file__).resolve().parent.parent / "factvae_sk" / "data" / "snare_cellline"


def _brute_force(genes, peaks, upstream):
    """Reference: plain double loop over genes and peaks, as a dense 0/1 array."""
    out = np.zeros((len(genes), len(peaks)), dtype=np.float32)
    for i, g in enumerate(genes.itertuples(index=False)):
        if pd.isna(g.start) or pd.isna(g.end) or pd.isna(g.chrom):
            continue
        if g.strand == "+":
            rs, re_ = g.start - upstream, g.end
        elif g.strand == "-":
            rs, re_ = g.start, g.end + upstream
        else:
            rs, re_ = g.start - upstream, g.end + upstream
        rs = max(rs, 0)
        for j, p in enumerate(peaks.itertuples(index=False)):
            if p.chrom == g.chrom and p.start < re_ and p.end > rs:
                out[i, j] = 1.0
    return out


@pytest.fixture
def toy():
    genes = pd.DataFrame(
        {
            "gene": ["gplus", "gminus", "gnan", "gdot", "gnear0"],
            "chrom": ["chr1", "chr1", "chr1", "chr2", "chr2"],
            "start": [1000.0, 5000.0, np.nan, 3000.0, 500.0],
            "end": [2000.0, 6000.0, np.nan, 3100.0, 600.0],
            "strand": ["+", "-", "+", ".", "+"],
        }
    )
    # upstream = 100 in the test below. Regions:
    #   gplus  chr1 [900, 2000)     gminus chr1 [5000, 6100)
    #   gnan   none                 gdot   chr2 [2900, 3200)   gnear0 chr2 [400, 600)
    peaks = pd.DataFrame(
        {
            "peak": [f"p{k}" for k in range(11)],
            "chrom": ["chr1"] * 7 + ["chr2"] * 3 + ["chr3"],
            "start": [800, 850, 1990, 2000, 4990, 6099, 6100, 3200, 2000, 0, 950],
            "end": [900, 950, 2500, 2100, 5001, 6200, 6300, 3300, 2901, 401, 1500],
        }
    )
    # p0 [800, 900)   touches gplus region start   -> no
    # p1 [850, 950)   overlaps gplus promoter      -> gplus
    # p2 [1990, 2500) overlaps gplus body end, long, overlaps p3
    # p3 [2000, 2100) touches gplus end            -> no
    # p4 [4990, 5001) overlaps gminus body start   -> gminus
    # p5 [6099, 6200) overlaps last bp of gminus promoter -> gminus
    # p6 [6100, 6300) touches gminus region end    -> no
    # p7 chr2 [3200, 3300) touches gdot region end -> no
    # p8 chr2 [2000, 2901) long, overlaps gdot upstream side by 1 bp -> gdot
    # p9 chr2 [0, 401)  overlaps gnear0 promoter by 1 bp -> gnear0
    # p10 chr3: same coordinates as gplus but another chromosome -> no
    return genes, peaks


def test_small_hand_made(toy):
    genes, peaks = toy
    expected = np.array(
        [
            # p0 p1 p2 p3 p4 p5 p6 p7 p8 p9 p10
            [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0],  # gplus
            [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],  # gminus
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # gnan
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],  # gdot
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],  # gnear0
        ],
        dtype=np.float32,
    )
    prior = gene_peak_prior(genes, peaks, upstream=100)
    assert isinstance(prior, sp.csr_matrix)
    assert prior.dtype == np.float32
    assert prior.shape == (5, 11)
    assert prior.has_sorted_indices
    np.testing.assert_array_equal(prior.toarray(), expected)
    np.testing.assert_array_equal(prior.data, 1.0)
    np.testing.assert_array_equal(prior.toarray(), _brute_force(genes, peaks, 100))


def test_clip_at_zero():
    genes = pd.DataFrame({"chrom": ["c"], "start": [10], "end": [20], "strand": ["+"]})
    peaks = pd.DataFrame({"chrom": ["c", "c"], "start": [0, 20], "end": [1, 30]})
    np.testing.assert_array_equal(gene_peak_prior(genes, peaks).toarray(), [[1, 0]])


def test_shuffled_rows_permute_output(toy):
    genes, peaks = toy
    prior = gene_peak_prior(genes, peaks, upstream=100).toarray()
    rng = np.random.default_rng(0)
    gi = rng.permutation(len(genes))
    pi = rng.permutation(len(peaks))
    shuffled = gene_peak_prior(genes.iloc[gi], peaks.iloc[pi], upstream=100).toarray()
    np.testing.assert_array_equal(shuffled, prior[np.ix_(gi, pi)])


def test_names_select_and_order(toy):
    genes, peaks = toy
    prior = gene_peak_prior(genes, peaks, upstream=100).toarray()
    sub = gene_peak_prior(
        genes, peaks, upstream=100, gene_names=["gminus", "gplus"], peak_names=["p5", "p1", "p4"]
    ).toarray()
    np.testing.assert_array_equal(sub, prior[np.ix_([1, 0], [5, 1, 4])])
    with pytest.raises(ValueError, match="gene_names"):
        gene_peak_prior(genes, peaks, gene_names=["gplus", "nope"])
    with pytest.raises(ValueError, match="peak_names"):
        gene_peak_prior(genes, peaks, peak_names=["nope"])
    # Without a "gene" column the names are looked up in the index.
    indexed = genes.set_index("gene")
    via_index = gene_peak_prior(indexed, peaks, upstream=100, gene_names=["gminus", "gplus"])
    np.testing.assert_array_equal(via_index.toarray(), prior[[1, 0]])


def test_no_shared_chromosome_and_empty():
    genes = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [10], "strand": ["+"]})
    peaks = pd.DataFrame({"chrom": ["chr2"], "start": [0], "end": [10]})
    # An empty prior is never returned silently: the error says why and what to do.
    with pytest.raises(ValueError, match="genes and peaks share no chromosome.*'chr1'.*'chr2'"):
        gene_peak_prior(genes, peaks)
    far = peaks.assign(chrom="chr1", start=10_000, end=10_010)
    with pytest.raises(ValueError, match="No peak of peaks lies near a gene of genes"):
        gene_peak_prior(genes, far)
    assert gene_peak_prior(genes, far, mode="tss_window").nnz == 1
    # No gene at all: nothing to link, an empty (0, n_peaks) matrix.
    empty = gene_peak_prior(genes.iloc[:0], peaks)
    assert empty.shape == (0, 1) and empty.nnz == 0 and empty.dtype == np.float32


def test_upstream_monotone(toy):
    genes, peaks = toy
    p0 = gene_peak_prior(genes, peaks, upstream=0)
    p2k = gene_peak_prior(genes, peaks, upstream=2000)
    # Every link without the promoter is kept with it, and the promoter adds links here.
    assert (p0 - p0.multiply(p2k)).nnz == 0
    assert p2k.nnz > p0.nnz


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda g, p: (g.drop(columns="strand"), p), "genes is missing the column"),
        (lambda g, p: (g, p.drop(columns=["chrom", "end"])), "peaks is missing the column"),
        (lambda g, p: (g.assign(end=g["start"] - 1), p), "genes has .* end < start"),
        (lambda g, p: (g, p.assign(start=p["end"] + 1)), "peaks has .* end < start"),
        (lambda g, p: (g.assign(start="x"), p), "must be numeric"),
    ],
)
def test_bad_tables(toy, change, match):
    genes, peaks = change(*toy)
    with pytest.raises(ValueError, match=match):
        gene_peak_prior(genes, peaks)


def test_not_a_dataframe(toy):
    genes, peaks = toy
    with pytest.raises(TypeError, match="genes must be a pandas DataFrame"):
        gene_peak_prior(genes.to_numpy(), peaks)
    with pytest.raises(TypeError, match="peaks must be a pandas DataFrame"):
        gene_peak_prior(genes, peaks.to_dict())


@pytest.mark.parametrize("upstream", [-1, -0.5, np.nan, np.inf])
def test_bad_upstream_value(toy, upstream):
    genes, peaks = toy
    with pytest.raises(ValueError, match="upstream"):
        gene_peak_prior(genes, peaks, upstream=upstream)


@pytest.mark.parametrize("upstream", ["2000", True, None])
def test_bad_upstream_type(toy, upstream):
    genes, peaks = toy
    with pytest.raises(TypeError, match="upstream"):
        gene_peak_prior(genes, peaks, upstream=upstream)


def test_duplicate_names_rejected(toy):
    genes, peaks = toy
    doubled = pd.concat([genes, genes.iloc[:1]])
    with pytest.raises(ValueError, match=r"genes column 'gene' repeats names \(e.g. \['gplus'\]\)"):
        gene_peak_prior(doubled, peaks, gene_names=["gplus"])


def test_inputs_not_modified(toy):
    genes, peaks = toy
    genes_before, peaks_before = genes.copy(deep=True), peaks.copy(deep=True)
    gene_peak_prior(genes, peaks, upstream=100, gene_names=["gnan", "gplus"])
    gene_peak_prior(genes, peaks, upstream=100)
    pd.testing.assert_frame_equal(genes, genes_before)
    pd.testing.assert_frame_equal(peaks, peaks_before)


@pytest.fixture(scope="module")
def real():
    genes = pd.read_csv(DATA / "genes.tsv.gz", sep="\t")
    peaks = pd.read_csv(DATA / "peaks.tsv.gz", sep="\t")
    return genes[genes["highly_variable"]].reset_index(drop=True), peaks


@pytest.mark.parametrize("upstream", [0, 2000])
def test_real_data_matches_brute_force(real, upstream):
    hvg, peaks = real
    chroms = ["chr19", "chr21", "chr22", "chrY", "chrM"]
    genes = hvg[hvg["chrom"].isin(chroms) | hvg["start"].isna()].reset_index(drop=True)
    # Keep all peaks of these chromosomes plus a few from others, which must never match.
    peaks = pd.concat(
        [peaks[peaks["chrom"].isin(chroms)], peaks[~peaks["chrom"].isin(chroms)][:50]]
    )
    peaks = peaks.reset_index(drop=True)
    prior = gene_peak_prior(genes, peaks, upstream=upstream)
    expected = _brute_force(genes, peaks, upstream)
    assert expected.sum() > 0
    np.testing.assert_array_equal(prior.toarray(), expected)


def test_real_data_full_hvg_prior(real):
    hvg, peaks = real
    prior = gene_peak_prior(hvg, peaks)
    assert prior.shape == (2000, len(peaks))
    print(f"full HVG x peaks prior: shape {prior.shape}, nnz {prior.nnz}")
    assert prior.nnz > 0
    # The promoter only adds links.
    body = gene_peak_prior(hvg, peaks, upstream=0)
    assert (body - body.multiply(prior)).nnz == 0
    assert prior.nnz >= body.nnz


def test_random_against_brute_force():
    # Many overlapping peaks of very different lengths, duplicates, zero-length intervals,
    # every strand kind and a few NaN genes, checked against the double loop.
    rng = np.random.default_rng(42)
    n_genes, n_peaks = 60, 300
    g_start = rng.integers(0, 20_000, n_genes).astype(float)
    genes = pd.DataFrame(
        {
            "chrom": rng.choice(["a", "b", "c"], n_genes),
            "start": g_start,
            "end": g_start + rng.integers(0, 3_000, n_genes),
            "strand": rng.choice(["+", "-", "."], n_genes),
        }
    )
    genes.loc[rng.choice(n_genes, 5, replace=False), ["start", "end"]] = np.nan
    p_start = rng.integers(0, 25_000, n_peaks)
    p_len = np.where(rng.random(n_peaks) < 0.1, rng.integers(0, 5_000, n_peaks), 200)
    peaks = pd.DataFrame(
        {"chrom": rng.choice(["a", "b", "d"], n_peaks), "start": p_start, "end": p_start + p_len}
    )
    peaks = pd.concat([peaks, peaks.iloc[:10]], ignore_index=True)
    for upstream in (0, 500, 2000):
        prior = gene_peak_prior(genes, peaks, upstream=upstream)
        np.testing.assert_array_equal(prior.toarray(), _brute_force(genes, peaks, upstream))


# ------------------------------------------------------------------ build_gene_peak_prior


def _brute_force_blocks(genes, peaks, mode, upstream=2000, window=150_000):
    """Independent reference on all pairs: per chromosome, dense numpy broadcasting over
    gene x peak straight from the definitions (no sorting, no binary search). Yields the gene
    positions, peak positions and dense weight block of each chromosome."""
    g_chrom = genes["chrom"].to_numpy(dtype=object)
    p_chrom = peaks["chrom"].to_numpy(dtype=object)
    for chrom in pd.unique(p_chrom):
        gi = np.flatnonzero(g_chrom == chrom)
        pj = np.flatnonzero(p_chrom == chrom)
        g = genes.iloc[gi]
        gs, ge = g["start"].to_numpy(float)[:, None], g["end"].to_numpy(float)[:, None]
        strand = g["strand"].to_numpy(dtype=object)[:, None]
        ps = peaks["start"].to_numpy(float)[pj][None, :]
        pe = peaks["end"].to_numpy(float)[pj][None, :]
        if mode == "body_upstream":
            rs = np.where(strand == "-", gs, np.maximum(gs - upstream, 0))
            re_ = np.where(strand == "+", ge, ge + upstream)
            block = ((ps < re_) & (pe > rs)).astype(float)
        else:
            # Distance from a TSS base t to the nearest base of [ps, pe): the definition.
            def dist(t, ps=ps, pe=pe):
                return np.where(ps > t, ps - t, np.where(pe - 1 < t, t - (pe - 1), 0))

            d = np.where(
                strand == "+",
                dist(gs),
                np.where(strand == "-", dist(ge - 1), np.minimum(dist(gs), dist(ge - 1))),
            )
            block = np.where(d <= window, ((d + 1000) / 1000) ** -0.75, 0.0)
        block[np.isnan(block)] = 0.0
        yield gi, pj, block


@pytest.fixture(scope="module")
def all_genes_peaks():
    return pd.read_csv(DATA / "genes.tsv.gz", sep="\t"), pd.read_csv(
        DATA / "peaks.tsv.gz", sep="\t"
    )


@pytest.mark.parametrize(
    "mode, kwargs",
    [
        ("body_upstream", {}),
        ("body_upstream", {"upstream": 0}),
        ("tss_window", {}),
        ("tss_window", {"window": 10_000}),
    ],
)
def test_all_real_genes_match_numpy_brute_force(all_genes_peaks, mode, kwargs):
    # Every one of the 18666 genes against all 27399 peaks, on their real coordinates.
    genes, peaks = all_genes_peaks
    prior = build_gene_peak_prior(genes, peaks, mode=mode, **kwargs)
    assert prior.shape == (18666, 27399) and prior.dtype == np.float32
    n_links = 0
    for gi, pj, block in _brute_force_blocks(genes, peaks, mode, **kwargs):
        np.testing.assert_allclose(prior[gi][:, pj].toarray(), block, rtol=1e-6)
        n_links += np.count_nonzero(block)
    # Nothing outside the same-chromosome blocks: no link across chromosomes.
    assert prior.nnz == n_links > 1000
    # Genes without coordinates get no links.
    assert prior[genes["start"].isna().to_numpy()].nnz == 0


def test_real_peak_names_give_the_same_prior(all_genes_peaks):
    genes, peaks = all_genes_peaks
    genes = genes[genes["highly_variable"]]
    for mode in ("body_upstream", "tss_window"):
        from_table = build_gene_peak_prior(genes, peaks, mode=mode)
        from_names = build_gene_peak_prior(genes, peaks["peak"].tolist(), mode=mode)
        assert (from_table != from_names).nnz == 0
    # The published recipe on the HVGs: the link count the README reports.
    assert build_gene_peak_prior(genes, peaks).nnz == 3039


def test_alias_is_the_same_function():
    assert gene_peak_prior is build_gene_peak_prior


def test_tss_window_hand_made():
    # '+' gene on [1000, 5000): TSS base 1000. '-' gene on [1000, 5000): TSS base 4999.
    genes = pd.DataFrame(
        {
            "gene": ["plus", "minus", "nostrand", "nan"],
            "chrom": ["c", "c", "c", "c"],
            "start": [1000.0, 1000.0, 1000.0, np.nan],
            "end": [5000.0, 5000.0, 5000.0, np.nan],
            "strand": ["+", "-", ".", "+"],
        }
    )
    peaks = [
        "c:900-1001",  # contains base 1000: d=0 for plus
        "c:1001-1100",  # starts right after base 1000: d=1 for plus
        "c:500-1000",  # ends right before base 1000 (touching): d=1 for plus
        "c:5000-5100",  # starts right after base 4999: d=1 for minus
        "c:2900-3100",  # middle of the gene: d=1900 to plus, 1900 to minus
        "c:1200-1300",  # d=200 to plus, 3700 to minus
        "o:900-1001",  # another chromosome: never
        "c:6500-6600",  # d=5500 to plus, 1501 to minus
    ]

    def w(d):
        return ((d + 1000) / 1000) ** -0.75

    expected = np.array(
        [
            [w(0), w(1), w(1), w(4000), w(1900), w(200), 0, w(5500)],
            [w(3999), w(3900), w(4000), w(1), w(1900), w(3700), 0, w(1501)],
            [w(0), w(1), w(1), w(1), w(1900), w(200), 0, w(1501)],
            [0, 0, 0, 0, 0, 0, 0, 0],
        ]
    )
    prior = build_gene_peak_prior(genes, peaks, mode="tss_window")
    np.testing.assert_allclose(prior.toarray(), expected, rtol=1e-6)
    assert prior[0, 0] == 1.0  # no decay at the TSS itself
    # The window is inclusive: d <= window is linked, d = window + 1 is not.
    small = build_gene_peak_prior(genes, peaks, mode="tss_window", window=1500)
    assert small[1, 7] == 0 and small[2, 7] == 0
    small = build_gene_peak_prior(genes, peaks, mode="tss_window", window=1501)
    assert small[1, 7] > 0 and small[2, 7] > 0 and small[0, 7] == 0
    # window=0: only peaks containing the TSS base.
    zero = build_gene_peak_prior(genes, peaks, mode="tss_window", window=0).toarray()
    np.testing.assert_array_equal(zero != 0, expected == 1.0)


def test_minus_strand_upstream_extends_to_the_right():
    genes = pd.DataFrame(
        {
            "chrom": ["c", "c"],
            "start": [10_000, 10_000],
            "end": [20_000, 20_000],
            "strand": ["+", "-"],
        }
    )
    left, right = "c:8500-8600", "c:21000-21100"
    prior = build_gene_peak_prior(genes, [left, right]).toarray()
    np.testing.assert_array_equal(prior, [[1, 0], [0, 1]])
    # Touching the 2 kb promoter's outer end is no overlap: [7900, 8000) and [22000, 22100).
    # (No link at all is an error: an empty prior is never returned silently.)
    with pytest.raises(ValueError, match="the prior links nothing"):
        build_gene_peak_prior(genes, ["c:7900-8000", "c:22000-22100"])
    prior = build_gene_peak_prior(genes, ["c:7900-8001", "c:21999-22100"]).toarray()
    np.testing.assert_array_equal(prior, [[1, 0], [0, 1]])


@pytest.mark.parametrize(
    "names",
    [
        ["chr1:100-200", "chr1-100-200", "chr1_100_200"],
        np.array(["chr1:100-200", "chr1-100-200", "chr1_100_200"]),
        pd.Index(["chr1:100-200", "chr1-100-200", "chr1_100_200"]),
    ],
)
def test_peak_name_formats(names):
    table = parse_peak_names(names)
    assert table["chrom"].tolist() == ["chr1"] * 3
    assert table["start"].tolist() == [100] * 3 and table["end"].tolist() == [200] * 3
    assert table["peak"].tolist() == list(names)


def test_contig_names_with_separators():
    table = parse_peak_names(["chrUn_KI270742v1:10-20", "HLA-A*01:01-1-5"])
    assert table["chrom"].tolist() == ["chrUn_KI270742v1", "HLA-A*01:01"]
    assert table["start"].tolist() == [10, 1] and table["end"].tolist() == [20, 5]


@pytest.mark.parametrize("bad", ["chr1:100", "chr1:abc-200", "chr1:100-200x", "", "100-200"])
def test_malformed_peak_names(toy, bad):
    genes, _ = toy
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        build_gene_peak_prior(genes, ["chr1:1-2", bad])


def test_reversed_peak_name(toy):
    with pytest.raises(ValueError, match="end < start.*'chr1:200-100'"):
        build_gene_peak_prior(toy[0], ["chr1:200-100"])


def test_peak_names_select_columns(toy):
    genes, _ = toy
    names = ["chr1:850-950", "chr1:4990-5001", "chr2:0-401"]
    full = build_gene_peak_prior(genes, names, upstream=100).toarray()
    sub = build_gene_peak_prior(genes, names, upstream=100, peak_names=names[::-1]).toarray()
    np.testing.assert_array_equal(sub, full[:, ::-1])


def test_bad_mode_and_window(toy):
    genes, peaks = toy
    with pytest.raises(ValueError, match="mode must be one of"):
        build_gene_peak_prior(genes, peaks, mode="tss")
    with pytest.raises(ValueError, match="window"):
        build_gene_peak_prior(genes, peaks, mode="tss_window", window=-1)
    with pytest.raises(TypeError, match="or a sequence of .chrom:start-end. names"):
        build_gene_peak_prior(genes, {"a": 1})
    with pytest.raises(TypeError, match="got str"):
        build_gene_peak_prior(genes, "chr1:1-2")


# ------------------------------------------- real users' tables: never a silent empty prior
# Each class of problem is either handled (the same prior as from consistent tables, with a
# warning that says what was done) or an error naming the table, the problem and the fix.


def _ensembl(chrom):
    """UCSC chromosome names as Ensembl writes them: chr1 -> 1, chrM -> MT."""
    return chrom.str.removeprefix("chr").replace({"M": "MT"})


@pytest.fixture(scope="module")
def consistent(real):
    """The HVG table and peaks with the same naming, and their prior."""
    hvg, peaks = real
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FactVAEWarning)  # 4 genes without coordinates
        return hvg, peaks, gene_peak_prior(hvg, peaks)


def _mixed(table, every):
    """Every ``every``-th row's chromosome in Ensembl's naming, the others in UCSC's."""
    return table.assign(
        chrom=table["chrom"].where(table.index % every > 0, _ensembl(table["chrom"]))
    )


def _same(prior, expected):
    assert prior.shape == expected.shape and (prior != expected).nnz == 0


@pytest.mark.parametrize(
    "rename",
    [
        pytest.param(lambda g, p: (g.assign(chrom=_ensembl(g["chrom"])), p), id="genes Ensembl"),
        pytest.param(lambda g, p: (g, p.assign(chrom=_ensembl(p["chrom"]))), id="peaks Ensembl"),
        pytest.param(lambda g, p: (_mixed(g, 2), p), id="genes mixed"),
        pytest.param(lambda g, p: (g, _mixed(p, 3)), id="peaks mixed"),
    ],
)  # fmt: skip
def test_chromosome_naming_conventions_give_the_same_prior(consistent, rename):
    hvg, peaks, expected = consistent
    genes, renamed_peaks = rename(hvg, peaks)
    before = genes.copy(deep=True), renamed_peaks.copy(deep=True)
    with pytest.warns(FactVAEWarning, match=r"name chromosomes differently; read '\w+' as '\w+'"):
        prior = gene_peak_prior(genes, renamed_peaks)
    _same(prior, expected)
    for mode in ("tss_window",):
        with pytest.warns(FactVAEWarning, match="name chromosomes differently"):
            window = gene_peak_prior(genes, renamed_peaks, mode=mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FactVAEWarning)
            _same(window, gene_peak_prior(hvg, peaks, mode=mode))
    # Distances too; and the caller's tables are left as they were.
    rows, cols = sp.find(expected)[:2]
    with pytest.warns(FactVAEWarning, match="name chromosomes differently"):
        distance = tss_distance(genes, renamed_peaks, rows, cols)
    np.testing.assert_array_equal(distance, tss_distance(hvg, peaks, rows, cols))
    assert np.isfinite(distance).all()
    pd.testing.assert_frame_equal(genes, before[0])
    pd.testing.assert_frame_equal(renamed_peaks, before[1])


def test_numeric_chromosome_column_read_as_float(consistent):
    """Ensembl autosomes in a column pandas read as float (a missing value among numbers)."""
    hvg, peaks, expected = consistent
    autosomes = hvg["chrom"].str.fullmatch(r"chr\d+").fillna(False).to_numpy()
    genes = hvg[autosomes].assign(chrom=hvg["chrom"][autosomes].str[3:].astype(float))
    genes.iloc[0, genes.columns.get_loc("chrom")] = np.nan
    assert genes["chrom"].dtype == np.float64
    with pytest.warns(FactVAEWarning, match=r"read '1\.0' as 'chr1'|read '\d+\.0' as 'chr\d+'"):
        prior = gene_peak_prior(genes, peaks)
    _same(prior[1:], expected[np.flatnonzero(autosomes)[1:]])


def test_mitochondria_sex_chromosomes_and_contigs_are_matched():
    genes = pd.DataFrame(
        {
            "gene": ["MT-ND1", "XIST", "ACTB", "KI_gene", "GL_gene"],
            "chrom": ["MT", "X", "7", "KI270742.1", "GL000009.2"],
            "start": [3306, 73820650, 5527147, 100, 5000],
            "end": [4262, 73852753, 5563902, 900, 6000],
            "strand": ["+", "-", "-", "+", "+"],
        }
    )
    peaks = [
        "chrM:3000-3400", "chrX:73852000-73852500", "chr7:5563000-5563500",
        "chrUn_KI270742v1:200-300", "chr14_GL000009v2_random:5500-5600", "chr2:1-100",
    ]  # fmt: skip
    with pytest.warns(FactVAEWarning, match="read 'MT' as 'chrM', 'X' as 'chrX'") as caught:
        prior = gene_peak_prior(genes, peaks).toarray()
    assert "'KI270742.1' as 'chrUn_KI270742v1'" in str(caught[0].message)
    np.testing.assert_array_equal(prior, np.eye(5, 6))
    # M and chrMT are chrM too.
    for name in ("M", "chrMT"):
        with pytest.warns(FactVAEWarning, match=f"read '{name}' as 'chrM'"):
            assert gene_peak_prior(genes.assign(chrom=name).iloc[:1], peaks).nnz == 1


def test_genes_without_coordinates_are_counted_and_unlinked(consistent):
    hvg, peaks, expected = consistent
    located = np.flatnonzero(hvg["start"].notna())
    lost = located[:: len(located) // 10][:10]
    genes = hvg.copy()
    genes.loc[lost[:5], ["start", "end"]] = np.nan
    genes.loc[lost[5:], "chrom"] = None
    n_missing = int(hvg["start"].isna().sum()) + 10
    match = f"genes: {n_missing} of 2000 genes have no coordinates .* linked to nothing"
    with pytest.warns(FactVAEWarning, match=match):
        prior = gene_peak_prior(genes, peaks)
    keep = np.ones(2000, dtype=bool)
    keep[lost] = False
    _same(prior[keep], expected[keep])
    assert prior[lost].nnz == 0 and expected[lost].nnz > 0
    # Every gene without coordinates: an error naming the table and the fix.
    nothing = hvg.assign(start=np.nan, end=np.nan)
    with pytest.raises(ValueError, match="genes: none of the 2000 genes has coordinates.*GTF"):
        gene_peak_prior(nothing, peaks)
    with pytest.raises(ValueError, match="peaks: none of the 3 peaks has coordinates"):
        gene_peak_prior(hvg, peaks.iloc[:3].assign(start=np.nan))


def test_repeated_names_warn_and_link_by_position(consistent):
    hvg, peaks, expected = consistent
    genes = hvg.assign(gene=hvg["gene"].where(hvg.index != 7, hvg["gene"][3]))
    with pytest.warns(
        FactVAEWarning, match=rf"genes: 1 gene name\(s\) repeat, e.g. '{hvg.gene[3]}'"
    ):
        _same(gene_peak_prior(genes, peaks), expected)
    # The same peak twice (two samples' peak sets concatenated): both columns are linked.
    doubled = pd.concat([peaks, peaks.iloc[:100]], ignore_index=True)
    with pytest.warns(FactVAEWarning, match=r"peaks: 100 peak name\(s\) repeat"):
        prior = gene_peak_prior(hvg, doubled)
    _same(prior[:, : len(peaks)], expected)
    _same(prior[:, len(peaks) :], expected[:, :100])
    with pytest.raises(ValueError, match="repeats names .* make the names unique"):
        gene_peak_prior(genes, peaks, gene_names=["A2M"])


def test_peaks_mostly_on_contigs_without_genes_are_reported(consistent):
    hvg, peaks, expected = consistent
    contigs = pd.DataFrame(
        {
            "peak": [f"chrUn_KI2707{i % 90 + 10}v1:{i}-{i + 50}" for i in range(len(peaks) + 1)],
            "chrom": [f"chrUn_KI2707{i % 90 + 10}v1" for i in range(len(peaks) + 1)],
            "start": np.arange(len(peaks) + 1),
            "end": np.arange(len(peaks) + 1) + 50,
        }
    )
    with pytest.warns(FactVAEWarning, match=r"27400 of 54799 peaks of peaks lie on .*'chrUn_KI"):
        prior = gene_peak_prior(hvg, pd.concat([peaks, contigs], ignore_index=True))
    _same(prior[:, : len(peaks)], expected)
    assert prior[:, len(peaks) :].nnz == 0
    # A few such peaks, as real peak sets have, are not worth a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", FactVAEWarning)
        gene_peak_prior(hvg.dropna(), pd.concat([peaks, contigs[:100]], ignore_index=True))


def test_empty_prior_is_an_error_and_fit_warns_on_one(small, one_thread):
    genes = pd.DataFrame({"chrom": ["chr1"], "start": [10**6], "end": [10**6 + 10]})
    genes["strand"] = "+"
    with pytest.raises(ValueError, match="genes and peaks share no chromosome.*'chr1'.*'chr2'"):
        gene_peak_prior(genes, ["chr2:1-100", "chr2:500-600"])
    with pytest.raises(ValueError, match="No peak of peaks lies near a gene of genes.*prior=None"):
        gene_peak_prior(genes, ["chr1:1-100"])
    # A prior with no entry turns the prior term off: fit says so.
    empty = sp.csr_matrix(small["prior"].shape, dtype=np.float32)
    model = FactVAE(**{**FAST, "max_epochs": 1}, random_state=0)
    with pytest.warns(FactVAEWarning, match="prior has no non-zero entry.*prior term is off"):
        model.fit(small["rna"], small["atac"], prior=empty)
    assert model.net_.criterion_.has_prior is False


def test_nearly_empty_prior_warns(consistent):
    hvg, peaks, expected = consistent
    # One linked peak for 2000 genes on every chromosome, the others far away: a handful of
    # genes linked.
    one = peaks.iloc[sp.find(expected)[1][:1]]
    others = peaks[peaks["chrom"] != "chr1"].assign(start=10**9, end=10**9 + 100)
    with pytest.warns(FactVAEWarning, match=r"The prior links only \d of the 1996 genes"):
        gene_peak_prior(hvg.dropna(), pd.concat([one, others]))


_PYRANGES = {"chrom": "Chromosome", "start": "Start", "end": "End", "strand": "Strand"}
_BIOMART = {"chrom": "chromosome_name", "start": "start_position", "end": "end_position"}


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda g: g.rename(columns=_PYRANGES), id="pyranges"),
        pytest.param(
            lambda g: g.rename(columns=_BIOMART).assign(
                strand=g["strand"].map({"+": 1, "-": -1}), chromosome_name=_ensembl(g["chrom"])
            ),
            id="BioMart",
        ),
        pytest.param(lambda g: g.rename(columns={"chrom": "seqnames"}), id="GenomicRanges"),
    ],
)
def test_other_tools_gene_tables(consistent, convert):
    hvg, peaks, expected = consistent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FactVAEWarning)
        _same(gene_peak_prior(convert(hvg), peaks), expected)
    # Peaks as pyranges or UCSC name them, too.
    ucsc = peaks.rename(columns={"chrom": "Chromosome", "start": "chromStart", "end": "chromEnd"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FactVAEWarning)
        _same(gene_peak_prior(convert(hvg), ucsc), expected)


def test_ensembl_strands_and_ambiguous_columns(consistent):
    hvg, peaks, expected = consistent
    ensembl = hvg.assign(strand=hvg["strand"].map({"+": "1", "-": "-1"}))
    with pytest.warns(FactVAEWarning, match=r"genes: read the strands 1/-1 of 1996 genes as"):
        _same(gene_peak_prior(ensembl, peaks), expected)
    both = hvg.assign(chromosome=hvg["chrom"]).rename(columns={"chrom": "chr"})
    with pytest.raises(ValueError, match=r"genes has several columns that could be 'chrom'"):
        gene_peak_prior(both, peaks)


def test_motif_genome_with_other_chromosome_names():
    from factvae_sk.motifs import peak_sequences

    genome = {"1": "ACGTACGTAA", "MT": "GGGCCC"}
    with pytest.warns(FactVAEWarning, match="read 'chr1' as '1', 'chrM' as 'MT' in peaks"):
        assert peak_sequences(["chr1:2-6", "chrM:0-3"], genome) == ["GTAC", "GGG"]
    with pytest.raises(ValueError, match="None of the 1 peaks of peaks lies on a sequence"):
        peak_sequences(["chr5:0-3"], genome)
