"""Running ``factvae-sk`` as users do, on small real input files, and the malformed files
users give it.

- :func:`run_cli`: the installed console script, or ``python -m factvae_sk``, in a
  subprocess that imports the code under test;
- :func:`write_small_inputs`: real cells of the bundled data as user files;
- :data:`CASES` and :func:`prepare_case`: one malformed file per kind users get wrong, made
  from those files. ``tests/test_cli_files.py`` checks each gives one clear line;
  ``benchmarks/cli_errors.py`` prints what the installed command says.
"""

# ruff: noqa: E501 (the table of cases keeps one case per line)
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

import factvae_sk

# The repository holding the factvae_sk under test: the subprocess must import this code,
# not whatever an editable install elsewhere points at.
REPO = Path(factvae_sk.__file__).resolve().parents[1]


def console_script():
    """The installed ``factvae-sk`` console script, or ``None`` when it is not installed."""
    return shutil.which("factvae-sk")


def run_cli(*args, module=False, cwd=None, timeout=600):
    """Run ``factvae-sk ARGS`` (or ``python -m factvae_sk ARGS``); the CompletedProcess.

    Raises ``FileNotFoundError`` when the console script is not installed (``module=False``).
    """
    if module:
        command = [sys.executable, "-m", "factvae_sk"]
    else:
        script = console_script()
        if script is None:
            raise FileNotFoundError(
                "the factvae-sk console script is not installed (pip install -e .)"
            )
        command = [script]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def write_small_inputs(folder, snare, n_cells=150, n_genes=300, n_peaks=500):
    """Real cells of the bundled data as user files: ``rna.npz``, ``atac.npz``, ``genes.tsv``
    (with coordinates), ``peaks.tsv`` and ``cells.tsv``. Returns the ``fit`` arguments."""
    folder = Path(folder)
    rna = snare.rna_hvg[:n_cells, :n_genes]
    order = (-snare.atac[:n_cells].sum(axis=0).A1).argsort(kind="stable")[:n_peaks]
    order.sort()
    atac = snare.atac[:n_cells][:, order]
    keep = (rna.getnnz(axis=1) > 0) & (atac.getnnz(axis=1) > 0)
    sp.save_npz(folder / "rna.npz", sp.csr_matrix(rna[keep]))
    sp.save_npz(folder / "atac.npz", sp.csr_matrix(atac[keep]))
    genes = snare.genes_hvg.iloc[:n_genes].drop(columns="highly_variable")
    genes.to_csv(folder / "genes.tsv", sep="\t", index=False)
    snare.peaks.iloc[order].to_csv(folder / "peaks.tsv", sep="\t", index=False)
    snare.cells.iloc[:n_cells][keep].to_csv(folder / "cells.tsv", sep="\t", index=False)
    names = {"rna": "rna.npz", "atac": "atac.npz", "genes": "genes.tsv", "peaks": "peaks.tsv"}
    args = ["fit"]
    for option, name in names.items():
        args += [f"--{option}", str(folder / name)]
    return args + ["--cells", str(folder / "cells.tsv"), "--labels", "cell_line"]


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
    "gene strand a word": (_table("genes.tsv", _at("strand", 0, "forward")), None, "genes.tsv", "strand must be '\\+', '-' or '.'"),
    "peak end < start": (_table("peaks.tsv", _peaks_as_names(["chr1:500-100"])), None, "peaks.tsv", "end < start"),
    "peak name malformed": (_table("peaks.tsv", _peaks_as_names(["chr1:5", "x"])), None, "peaks.tsv", "not of the form 'chrom:start-end'"),
    "peak fractional": (_table("peaks.tsv", _at("start", 2, 10.5)), None, "peaks.tsv", "not whole numbers"),
    "peak infinite": (_table("peaks.tsv", _at("end", 2, "inf")), None, "peaks.tsv", "are infinite"),
    # missing or duplicated names (repeated gene and peak names are made unique, with a warning)
    "gene name missing": (_table("genes.tsv", _at("gene", 4, None)), None, "genes.tsv", r"1 row\(s\) have no gene \(lines 6\)"),
    "barcodes duplicated": (_table("cells.tsv", _at("barcode", [7, 8], "dup")), None, "cells.tsv", "duplicated barcode"),
    # genes and peaks that cannot be linked: never a silently empty prior
    "genes without coordinates": (_table("genes.tsv", lambda t: t.assign(chrom=np.nan, start=np.nan, end=np.nan)), None, "genes.tsv", "none of the 300 genes has coordinates .* --gtf"),
    "no shared chromosome": (_table("peaks.tsv", lambda t: t.assign(chrom="chr" + t["chrom"].str.removeprefix("chr") + "_alt")), None, "genes.tsv", "share no chromosome.* genes.tsv has 'chr\\w+'.* peaks.tsv has 'chr\\w+_alt'"),
    "peaks far from genes": (_table("peaks.tsv", lambda t: t.assign(start=t["start"] + 10**9, end=t["end"] + 10**9)), None, "genes.tsv", "No peak of the peak table peaks.tsv lies near a gene of the 300 selected genes of genes.tsv"),
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


def prepare_case(case, good, args, work):
    """Copy the good files ``good`` (made by :func:`write_small_inputs`, which returned the
    ``fit`` arguments ``args``) to ``work/in``, make them bad as ``CASES[case]`` says, and
    return the arguments that run on them (``--out work/out`` unless the case sets it)."""
    good, work = Path(good), Path(work)
    folder = work / "in"
    shutil.copytree(good, folder)
    mutate, replace, _, _ = CASES[case]
    mutate(folder)
    args = [a.replace(str(good), str(folder)) for a in args]
    for option, name in (replace or {}).items():
        # "=value" is a literal option value, anything else a file in the work folder.
        value = name[1:] if name.startswith("=") else str(folder / name)
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    if "--out" not in args:
        args += ["--out", str(work / "out")]
    return args
