"""Users' malformed files: ``factvae-sk fit`` exits 2 with one line naming the file and the
problem, never a traceback. One row of ``CASES`` per kind of file users get wrong."""

import json
import re
import shutil
import warnings as warnings_module

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.harness.cli import CASES, prepare_case, write_small_inputs
from factvae_sk import build_gene_peak_prior
from factvae_sk.cli import main
from factvae_sk.data._io import read_paired_files
from factvae_sk.exceptions import FactVAEWarning, InputFileError
from factvae_sk.prior import parse_peak_names


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, snare):
    """Good small input files, copied for each case."""
    folder = tmp_path_factory.mktemp("good")
    return folder, write_small_inputs(folder, snare)


def _bad_run(inputs, tmp_path, case, extra=()):
    folder, args = inputs
    return main([*prepare_case(case, folder, args, tmp_path), "--epochs", "1", *extra])


def test_the_table_is_large():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_file_is_one_clear_line(inputs, tmp_path, capsys, case):
    _, _, named, pattern = CASES[case]
    assert _bad_run(inputs, tmp_path, case) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("factvae-sk: error: ")
    assert named in lines[0], lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    # Nothing was computed or written.
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(inputs, tmp_path, capsys):
    assert _bad_run(inputs, tmp_path, "rna negative", extra=["--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "InputFileError" in err
    assert err.strip().splitlines()[-1].startswith("factvae-sk: error: ")


# ------------------------------------------------------------ two AnnData files


def _h5ad_pair(folder, snare, atac_obs=None):
    anndata = pytest.importorskip("anndata")
    rna, atac = snare.rna_hvg[:40, :50], snare.atac[:40, :80]
    barcodes = snare.cells["barcode"].to_numpy()[:40]
    anndata.AnnData(
        sp.csr_matrix(rna, dtype=np.float32),
        obs=pd.DataFrame(index=barcodes),
        var=pd.DataFrame(index=snare.genes_hvg["gene"].to_numpy()[:50]),
    ).write_h5ad(folder / "rna.h5ad")
    anndata.AnnData(
        sp.csr_matrix(atac, dtype=np.float32),
        obs=pd.DataFrame(index=barcodes if atac_obs is None else atac_obs),
        var=pd.DataFrame(index=snare.peaks["peak"].to_numpy()[:80]),
    ).write_h5ad(folder / "atac.h5ad")
    return ["fit", "--rna-h5ad", str(folder / "rna.h5ad"), "--atac-h5ad", str(folder / "atac.h5ad")]


def test_h5ad_barcodes_differ(tmp_path, snare, capsys):
    barcodes = snare.cells["barcode"].to_numpy()[:40].copy()
    barcodes[[3, 7]] = barcodes[[7, 3]]
    args = _h5ad_pair(tmp_path, snare, atac_obs=barcodes)
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    line = capsys.readouterr().err.strip()
    assert "atac.h5ad: lists different cells (obs_names) from" in line and "2 differ" in line


def test_h5ad_truncated_and_missing_layer(tmp_path, snare, capsys):
    args = _h5ad_pair(tmp_path, snare)
    assert main([*args, "--layer", "counts", "--out", str(tmp_path / "out")]) == 2
    assert "rna.h5ad: has no layer 'counts'" in capsys.readouterr().err
    data = (tmp_path / "atac.h5ad").read_bytes()
    (tmp_path / "atac.h5ad").write_bytes(data[: len(data) // 3])
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "atac.h5ad: cannot read it as ATAC AnnData" in err and "Traceback" not in err


# ------------------------------------------------------------ random malformed text

_TEXT = st.text(alphabet="chr1XY:-_+.\t\n 0123456789,eE#\"'", max_size=200)


@pytest.fixture(scope="module")
def tiny_counts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    counts = sp.csr_matrix(np.arange(1, 16, dtype=np.float64).reshape(5, 3))
    sp.save_npz(folder / "m.npz", counts)
    (folder / "peaks.tsv").write_text("peak\nchr1:10-20\nchr1:30-40\nchr2:0-5\n")
    (folder / "genes.tsv").write_text("gene\tchrom\tstart\tend\tstrand\ng1\tchr1\t0\t100\t+\n")
    return folder


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=_TEXT, which=st.sampled_from(["genes", "peaks"]))
def test_random_tables_give_data_or_a_file_error(tiny_counts, tmp_path, text, which):
    """Whatever a table holds, reading it returns checked tables or raises InputFileError."""
    folder = tiny_counts
    path = tmp_path / f"{which}.tsv"
    path.write_text(text)
    tables = {"genes": folder / "genes.tsv", "peaks": folder / "peaks.tsv", which: path}
    try:
        data = read_paired_files(
            folder / "m.npz", folder / "m.npz", tables["genes"], tables["peaks"]
        )
    except InputFileError as error:
        assert error.path  # names a file
        return
    assert data.genes.shape[0] == data.peaks.shape[0] == 3
    if data.located:
        assert (data.peaks["end"] >= data.peaks["start"]).all()
        assert (data.genes["start"].dropna() >= 0).all()


_FIELD = st.one_of(
    st.sampled_from(["", "nan", "inf", "-inf", "-5", "1e3", "2.5", "10", "0", "+", "-", ".", "1"]),
    st.text(alphabet="chr1X-+.e0123456789", max_size=8),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.lists(_FIELD, min_size=5, max_size=5), min_size=3, max_size=3))
def test_random_gene_coordinates_give_checked_data_or_a_file_error(tiny_counts, tmp_path, rows):
    """A well-formed gene table whose fields are random: checked coordinates or a file error."""
    lines = ["gene\tchrom\tstart\tend\tstrand"]
    lines += ["\t".join([f"g{i}", *row[1:]]) for i, row in enumerate(rows)]
    (tmp_path / "genes.tsv").write_text("\n".join(lines) + "\n")
    folder = tiny_counts
    try:
        data = read_paired_files(
            folder / "m.npz", folder / "m.npz", tmp_path / "genes.tsv", folder / "peaks.tsv"
        )
    except InputFileError as error:
        assert error.path.endswith("genes.tsv")
        return
    genes = data.genes
    known = genes["start"].notna() & genes["end"].notna()
    assert (genes["start"].dropna() >= 0).all() and (genes["start"].dropna() % 1 == 0).all()
    assert (genes["end"][known] >= genes["start"][known]).all()
    assert genes["strand"].dropna().astype(str).isin(["+", "-", "."]).all()


@settings(max_examples=200, deadline=None)
@given(names=st.lists(st.text(alphabet="chr1XY:-_0123456789 ", max_size=25), max_size=6))
def test_random_peak_names_parse_or_raise_value_error(names):
    try:
        table = parse_peak_names(names)
    except ValueError as error:
        assert "peak name" in str(error)
        return
    assert len(table) == len(names)
    assert (table["end"] >= table["start"]).all() and (table["start"] >= 0).all()


# ------------------------------------ real users' tables: handled with a warning, same results
# Each case rewrites the good tables as users' tools write them. The fit then runs on the same
# counts and, where the tables mean the same, gives exactly the consistent tables' top_links.csv
# (same prior, same seed); never an empty one.


def _ensembl(chrom):
    return chrom.astype(str).str.removeprefix("chr").replace({"M": "MT"})


def _rewrite(name, edit):
    def mutate(folder):
        path = folder / name
        edit(pd.read_csv(path, sep="\t")).to_csv(path, sep="\t", index=False)

    return mutate


def _gtf_with_ensembl_names(folder):
    """Genes as bare names, coordinates from an Ensembl-style GTF (chromosomes 1, 2, MT)."""
    genes = pd.read_csv(folder / "genes.tsv", sep="\t")
    lines = [
        f"{_ensembl(pd.Series([g.chrom]))[0]}\tx\tgene\t{int(g.start) + 1}\t{int(g.end)}\t.\t"
        f'{g.strand}\t.\tgene_id "ID{i}"; gene_name "{g.gene}";'
        for i, g in enumerate(genes.dropna().itertuples())
    ]
    (folder / "genes.gtf").write_text("\n".join(lines) + "\n")
    genes[["gene"]].to_csv(folder / "genes.tsv", sep="\t", index=False)


def _gene_ids_with_gencode_gtf(folder):
    """Genes as unversioned Ensembl IDs (as 10x lists them), a GTF with versioned ones."""
    genes = pd.read_csv(folder / "genes.tsv", sep="\t")
    lines = [
        f"{g.chrom}\tx\tgene\t{int(g.start) + 1}\t{int(g.end)}\t.\t{g.strand}\t.\t"
        f'gene_id "ENSG{i:011d}.7"; gene_name "{g.gene}";'
        for i, g in enumerate(genes.itertuples())
        if pd.notna(g.start)
    ]
    (folder / "genes.gtf").write_text("\n".join(lines) + "\n")
    ids = [f"ENSG{i:011d}" for i in range(len(genes))]
    pd.DataFrame({"gene_id": ids}).to_csv(folder / "genes.tsv", sep="\t", index=False)


def _as_ids(links, genes):
    """The links with each gene named by the ID ``_gene_ids_with_gencode_gtf`` gave it."""
    ids = {gene: f"ENSG{i:011d}" for i, gene in enumerate(genes["gene"])}
    return links.assign(gene=links["gene"].map(ids))


def _first_rows(column, n, value):
    def edit(table):
        table[column] = table[column].astype(object)
        table.loc[: n - 1, column] = value
        return table

    return edit


_PYRANGES = {"chrom": "Chromosome", "start": "Start", "end": "End", "strand": "Strand"}
_BIOMART = {"chrom": "chromosome_name", "start": "start_position", "end": "end_position"}

# case: (rewrite the good files, extra options, warning on stderr (regex) or None, what the
# outputs are: "same" top_links.csv as the consistent tables, or a callable of the good
# top_links and gene embeddings giving the expected one, "unique" names, or "prior":
# n_prior_links of the prior built directly)
TABLE_CASES = {
    "genes Ensembl chromosomes": (
        _rewrite("genes.tsv", lambda t: t.assign(chrom=_ensembl(t["chrom"]))), [],
        r"the gene table genes.tsv and the peak table peaks.tsv name chromosomes differently; "
        r"read '\w+' as 'chr\w+'", "same"),
    "peaks Ensembl names only": (
        _rewrite("peaks.tsv", lambda t: t[["peak"]].assign(peak=t["peak"].str.removeprefix("chr"))),
        [], r"read 'chr\w+' as '\w+'.* in the gene table", lambda links, genes: links.assign(
            peak=links["peak"].str.removeprefix("chr"))),
    "GTF with Ensembl chromosomes": (
        _gtf_with_ensembl_names, ["--gtf", "genes.gtf"], r"genes.tsv \(coordinates from "
        r"genes.gtf\) and the peak table peaks.tsv name chromosomes differently", "same"),
    "gene IDs with a GENCODE GTF": (
        _gene_ids_with_gencode_gtf, ["--gtf", "genes.gtf"], None, _as_ids),
    "pyranges genes, BED peaks without names": (
        lambda f: (_rewrite("genes.tsv", lambda t: t.rename(columns=_PYRANGES))(f),
                   _rewrite("peaks.tsv", lambda t: t[["chrom", "start", "end"]])(f)),
        [], None, "same"),
    "BED peaks without a header row": (
        lambda f: pd.read_csv(f / "peaks.tsv", sep="\t")[["chrom", "start", "end"]].to_csv(
            f / "peaks.tsv", sep="\t", index=False, header=False), [], None, "same"),
    "GenomicRanges peaks (seqnames, strand *)": (
        _rewrite("peaks.tsv", lambda t: t[["chrom", "start", "end"]].rename(
            columns={"chrom": "seqnames"}).assign(width=t["end"] - t["start"], strand="*")),
        [], None, "same"),
    "BioMart genes (Ensembl names, strands 1/-1)": (
        _rewrite("genes.tsv", lambda t: t.rename(columns=_BIOMART).assign(
            chromosome_name=_ensembl(t["chrom"]), strand=t["strand"].map({"+": 1, "-": -1}))),
        [], r"genes.tsv: the gene table: read the strands 1/-1 of 300 genes as '\+'/'-'", "same"),
    "genes without coordinates": (
        _rewrite("genes.tsv", _first_rows("start", 20, np.nan)), [],
        r"the gene table genes.tsv: 20 of 300 genes have no coordinates .* linked to nothing",
        "prior"),
    "repeated gene names": (
        _rewrite("genes.tsv", lambda t: t.assign(gene=t["gene"].where(t.index != 1, t["gene"][0]))),
        [], r"genes.tsv: 1 gene name\(s\) repeat, .* made them unique .*var_names_make_unique",
        "unique"),
    "peaks mostly on contigs": (
        _rewrite("peaks.tsv", lambda t: t.assign(chrom=t["chrom"].where(
            t.index % 5 < 2, "chrUn_KI270" + (t.index % 50 + 300).astype(str) + "v1"))),
        [], r"300 of 500 peaks of the peak table peaks.tsv lie on chromosomes or contigs where "
        r"the gene table genes.tsv has no gene \(e.g. 'chrUn_KI270\d+v1'", "prior"),
}  # fmt: skip


def _job(args, out, *extra):
    return main([*args, "--epochs", "1", "--map", "tsne", "--n-links", "300", *extra, "--out",
                 str(out)])  # fmt: skip


@pytest.fixture(scope="module")
def consistent_links(inputs, tmp_path_factory, one_thread):
    folder, args = inputs
    out = tmp_path_factory.mktemp("consistent") / "out"
    assert _job(args, out) == 0
    return pd.read_csv(out / "top_links.csv"), pd.read_csv(out / "gene_embeddings.csv")


@pytest.mark.parametrize("case", list(TABLE_CASES))
def test_real_users_tables_run_with_a_warning(
    inputs, consistent_links, tmp_path, capsys, case, one_thread
):
    good, args = inputs
    mutate, extra, warning, expected = TABLE_CASES[case]
    folder = tmp_path / "in"
    shutil.copytree(good, folder)
    mutate(folder)
    args = [a.replace(str(good), str(folder)) for a in args]
    extra = [str(folder / e) if e.endswith(".gtf") else e for e in extra]
    out = tmp_path / "out"
    capsys.readouterr()
    assert _job(args, out, *extra) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("factvae-sk: warning: ")]
    if warning is None:
        assert not warnings, warnings
    else:
        assert any(re.search(warning, line) for line in warnings), err
    links = pd.read_csv(out / "top_links.csv")
    assert len(links) > 0
    good_links, good_genes = consistent_links
    if expected == "same" or callable(expected):
        want = good_links if expected == "same" else expected(good_links, good_genes)
        pd.testing.assert_frame_equal(links, want)
    elif expected == "unique":
        genes = pd.read_csv(out / "gene_embeddings.csv")["gene"]
        repeated = good_genes["gene"][0]
        assert genes.is_unique and genes[1] == f"{repeated}-1"
        renamed = good_links["gene"].where(good_links["gene"] != good_genes["gene"][1], genes[1])
        pd.testing.assert_frame_equal(links, good_links.assign(gene=renamed))
    else:  # the prior built directly from the rewritten tables, consistent chromosome names
        summary = json.loads((out / "summary.json").read_text())
        genes = pd.read_csv(folder / "genes.tsv", sep="\t")
        peaks = pd.read_csv(folder / "peaks.tsv", sep="\t")
        with warnings_module.catch_warnings():
            warnings_module.simplefilter("ignore", FactVAEWarning)
            prior = build_gene_peak_prior(genes, peaks)
        assert summary["n_prior_links"] == prior.nnz > 0
        assert set(links["gene"]) <= set(genes["gene"][prior.getnnz(axis=1) > 0])
