"""Users' malformed files: ``factvae-sk fit`` exits 2 with one line naming the file and the
problem, never a traceback. One row of ``CASES`` per kind of file users get wrong."""

# ruff: noqa: E501 (the table of cases keeps one case per line)
import gzip
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from cli_helpers import write_small_inputs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factvae_sk.cli import main
from factvae_sk.data._io import read_paired_files
from factvae_sk.exceptions import InputFileError
from factvae_sk.prior import parse_peak_names


def _table(name, edit):
    """Rewrite the TSV table ``name`` as ``edit(table)``."""

    def mutate(folder):
        path = folder / name
        edit(pd.read_csv(path, sep="\t")).to_csv(path, sep="\t", index=False)

    return mutate


def _at(column, rows, value):
    """An edit putting ``value`` in ``table[column]`` at positions ``rows`` (text allowed)."""

    def edit(table):
        table[column] = table[column].astype(object)
        table.loc[rows, column] = value
        return table

    return edit


def _counts(name, edit):
    """Rewrite the count matrix ``name`` (.npz) as ``edit(float64 CSR)``."""

    def mutate(folder):
        matrix = sp.load_npz(folder / name).astype(np.float64).tocsr()
        sp.save_npz(folder / name, sp.csr_matrix(edit(matrix)))

    return mutate


def _set(i, j, value):
    def edit(matrix):
        dense = matrix.toarray()
        dense[i, j] = value
        return dense

    return edit


def _zero_rows(rows):
    def edit(matrix):
        matrix = matrix.tolil()
        matrix[rows, :] = 0
        return matrix.tocsr()

    return edit


def _bytes(name, data):
    def mutate(folder):
        (folder / name).write_bytes(data(folder / name) if callable(data) else data)

    return mutate


def _as_mtx_gz(name, truncate=False):
    """Replace ``name``.npz by ``name``.mtx.gz (cut in the middle when ``truncate``)."""

    def mutate(folder):
        import scipy.io

        matrix = sp.load_npz(folder / f"{name}.npz")
        with gzip.open(folder / f"{name}.mtx.gz", "wb") as handle:
            scipy.io.mmwrite(handle, matrix)
        if truncate:
            data = (folder / f"{name}.mtx.gz").read_bytes()
            (folder / f"{name}.mtx.gz").write_bytes(data[: len(data) // 2])

    return mutate


def _peaks_as_names(names):
    """The peak table as one name column, the first three names replaced by ``names``."""

    def edit(table):
        column = table["peak"].astype(object).copy()
        column.iloc[: len(names)] = names
        return column.to_frame()

    return edit


def _remove(name):
    return lambda folder: (folder / name).unlink()


# name: (make the file bad, {option: replacement path} or None, file named, message pattern)
CASES = {
    # unreadable, truncated or empty files; wrong formats
    "rna missing": (_remove("rna.npz"), None, "rna.npz", "no such file"),
    "rna empty": (_bytes("rna.npz", b""), None, "rna.npz", "the file is empty"),
    "rna not a zip": (_bytes("rna.npz", b"not a zip" * 20), None, "rna.npz", "not a zip archive, which a scipy .npz file is"),
    "rna npz cut": (_bytes("rna.npz", lambda p: p.read_bytes()[:300]), None, "rna.npz", "cannot read it as RNA"),
    "rna npz of no arrays": (lambda f: np.savez(f / "rna.npz"), None, "rna.npz", "does not contain a sparse array or matrix"),
    "rna wrong format": (_bytes("rna.csv", b"1,2\n"), {"--rna": "rna.csv"}, "rna.csv", "must be a scipy .npz or a Matrix Market"),
    "atac mtx.gz truncated": (_as_mtx_gz("atac", truncate=True), {"--atac": "atac.mtx.gz"}, "atac.mtx.gz", "cannot read it as ATAC counts in Matrix Market"),
    "atac is a folder": (lambda f: (f / "atac.npz").unlink() or (f / "atac.npz").mkdir(), None, "atac.npz", "not a file"),
    "genes empty": (_bytes("genes.tsv", b""), None, "genes.tsv", "the file is empty"),
    "genes header only": (_table("genes.tsv", lambda t: t.iloc[:0]), None, "genes.tsv", "has a header but no rows"),
    "genes gzipped bytes": (_bytes("genes.tsv", lambda p: gzip.compress(p.read_bytes())), None, "genes.tsv", "cannot read it as the gene table"),
    "gtf garbage": (_bytes("x.gtf", b"\x00\x01binary\n"), {"--gtf": "x.gtf"}, "x.gtf", "cannot read it as a GTF"),
    # tables whose rows or columns do not match
    "genes fewer rows": (_table("genes.tsv", lambda t: t.iloc[:-5]), None, "rna.npz", r"feature table .*genes.tsv has 295 rows"),
    "peaks more rows": (_table("peaks.tsv", lambda t: pd.concat([t, t.iloc[:1].assign(peak="chr1:1-2")])), None, "atac.npz", "has 501 rows"),
    "genes some coordinates": (_table("genes.tsv", lambda t: t.drop(columns=["end", "strand"])), None, "genes.tsv", "needs the columns"),
    "cells fewer ATAC": (_counts("atac.npz", lambda m: m[:-3]), None, "atac.npz", "must be paired"),
    "cell table length": (_table("cells.tsv", lambda t: t.iloc[:-1]), None, "cells.tsv", r"the cell table has \d+ rows but the counts have"),
    "labels column": (lambda f: None, {"--labels": "=tissue"}, "cells.tsv", "--labels 'tissue' is not a column"),
    # bad coordinates
    "gene end < start": (_table("genes.tsv", _at("end", 3, 5)), None, "genes.tsv", r"1 row\(s\) have end < start \(lines 5\)"),
    "gene start text": (_table("genes.tsv", _at("start", 0, "one")), None, "genes.tsv", "column 'start' are not numbers, e.g. 'one' \\(lines 2\\)"),
    "gene start negative": (_table("genes.tsv", _at("start", 1, -10)), None, "genes.tsv", "'start' are negative"),
    "gene strand 1/-1": (_table("genes.tsv", _at("strand", 0, "1")), None, "genes.tsv", "strand must be '\\+', '-' or '.'"),
    "peak end < start": (_table("peaks.tsv", _peaks_as_names(["chr1:500-100"])), None, "peaks.tsv", "end < start"),
    "peak name malformed": (_table("peaks.tsv", _peaks_as_names(["chr1:5", "x"])), None, "peaks.tsv", "not of the form 'chrom:start-end'"),
    "peak fractional": (_table("peaks.tsv", _at("start", 2, 10.5)), None, "peaks.tsv", "not whole numbers"),
    "peak infinite": (_table("peaks.tsv", _at("end", 2, "inf")), None, "peaks.tsv", "are infinite"),
    # duplicated names
    "genes duplicated": (_table("genes.tsv", _at("gene", [1, 2], "GENE_A")), None, "genes.tsv", "duplicated gene"),
    "gene name missing": (_table("genes.tsv", _at("gene", 4, None)), None, "genes.tsv", r"1 row\(s\) have no gene \(lines 6\)"),
    "peaks duplicated": (_table("peaks.tsv", lambda t: t.assign(peak=t["peak"].where(t.index != 1, t["peak"][0]))), None, "peaks.tsv", "duplicated peak"),
    "barcodes duplicated": (_table("cells.tsv", _at("barcode", [7, 8], "dup")), None, "cells.tsv", "duplicated barcode"),
    # counts that are not counts
    "rna negative": (_counts("rna.npz", lambda m: -m), None, "rna.npz", "Negative values"),
    "rna NaN": (_counts("rna.npz", _set(0, 0, np.nan)), None, "rna.npz", "NaN"),
    "atac infinite": (_counts("atac.npz", _set(1, 1, np.inf)), None, "atac.npz", "infinity"),
    "rna normalized": (_counts("rna.npz", lambda m: m * 0.37), None, "rna.npz", "non-integer"),
    "atac empty cells": (_counts("atac.npz", _zero_rows([2, 4])), None, "atac.npz", r"2 cell\(s\) with zero total counts \(first rows: 2, 4\)"),
    "atac all zero": (_counts("atac.npz", lambda m: m * 0), None, "atac.npz", "zero total counts"),
    # the output folder
    "out is a file": (lambda f: (f / "taken").write_text("x"), {"--out": "taken"}, "taken", "--out must be a folder"),
}  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, snare):
    """Good small input files, copied for each case."""
    folder = tmp_path_factory.mktemp("good")
    return folder, write_small_inputs(folder, snare)


def _bad_run(inputs, tmp_path, case, extra=()):
    folder, args = inputs
    work = tmp_path / "in"
    shutil.copytree(folder, work)
    mutate, replace, named, _ = CASES[case]
    mutate(work)
    args = [a.replace(str(folder), str(work)) for a in args]
    for option, name in (replace or {}).items():
        # "=value" is a literal option value, anything else a file in the work folder.
        value = name[1:] if name.startswith("=") else str(work / name)
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    return main([*args, "--epochs", "1", *extra])


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
