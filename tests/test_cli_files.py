"""Users' malformed files: ``factvae-sk fit`` exits 2 with one line naming the file and the
problem, never a traceback. One row of ``CASES`` per kind of file users get wrong."""

import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.harness.cli import CASES, prepare_case, write_small_inputs
from factvae_sk.cli import main
from factvae_sk.data._io import read_paired_files
from factvae_sk.exceptions import InputFileError
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
