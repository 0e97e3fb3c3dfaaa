"""Running ``factvae-sk`` as users do: the installed console script, or ``python -m``, in a
subprocess that imports the code under test; and small real input files to run it on."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.sparse as sp

import factvae_sk

# The repository holding the factvae_sk under test: the subprocess must import this code,
# not whatever an editable install elsewhere points at.
REPO = Path(factvae_sk.__file__).resolve().parents[1]


def run_cli(*args, module=False, cwd=None, timeout=600):
    """Run ``factvae-sk ARGS`` (or ``python -m factvae_sk ARGS``); the CompletedProcess."""
    if module:
        command = [sys.executable, "-m", "factvae_sk"]
    else:
        script = shutil.which("factvae-sk")
        if script is None:
            pytest.skip("the factvae-sk console script is not installed (pip install -e .)")
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
