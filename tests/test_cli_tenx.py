"""The command line on Cell Ranger ARC's output (``factvae-sk fit --10x``) and its dropping of
peaks detected in too few cells (``--min-peak-cells``)."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from benchmarks.harness.tenx_files import features_frame, write_10x_h5, write_gtf
from factvae_sk import build_gene_peak_prior
from factvae_sk.cli import main


@pytest.fixture(scope="module")
def subset(snare):
    """240 real cells, 800 genes (some without coordinates), the 3000 most open peaks."""
    cells = np.arange(0, 960, 4)
    genes = np.unique(np.r_[np.flatnonzero(snare.genes.start.isna()), np.arange(0, 15000, 20)])
    peaks = np.sort(np.argsort(-snare.atac.sum(axis=0).A1, kind="stable")[:3000])
    return {
        "rna": snare.rna[cells][:, genes],
        "atac": snare.atac[cells][:, peaks],
        "genes": snare.genes.iloc[genes].drop(columns="highly_variable").reset_index(drop=True),
        "peaks": snare.peaks.iloc[peaks].reset_index(drop=True),
        "cells": snare.cells.iloc[cells][["barcode"]].reset_index(drop=True),
    }


def _outputs(out):
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("fit_seconds")
    summary["map"].pop("seconds")
    tables = {
        name: pd.read_csv(out / name)
        for name in ("cell_embeddings.csv", "gene_embeddings.csv", "peak_embeddings.csv")
    }
    tables["top_links.csv"] = pd.read_csv(out / "top_links.csv")
    return summary, tables


def test_10x_h5_gives_the_results_of_the_same_counts_as_files(tmp_path, subset, one_thread, capsys):
    pytest.importorskip("h5py")
    rna, atac, genes, peaks, cells = (subset[k] for k in ("rna", "atac", "genes", "peaks", "cells"))
    write_10x_h5(tmp_path / "matrix.h5", rna, atac, features_frame(genes, peaks), cells["barcode"])
    write_gtf(tmp_path / "genes.gtf.gz", genes)
    # The same counts as matrices and tables: genes by name only, placed by the same GTF.
    sp.save_npz(tmp_path / "rna.npz", rna)
    sp.save_npz(tmp_path / "atac.npz", atac)
    genes[["gene"]].to_csv(tmp_path / "genes.tsv", sep="\t", index=False)
    peaks.to_csv(tmp_path / "peaks.tsv", sep="\t", index=False)
    cells.to_csv(tmp_path / "cells.tsv", sep="\t", index=False)
    common = ["--gtf", str(tmp_path / "genes.gtf.gz"), "--epochs", "2", "--n-top-genes", "400"]
    common += ["--n-links", "50", "--map", "tsne"]
    tenx = ["fit", "--10x", str(tmp_path / "matrix.h5")]
    unplaced = int(genes["start"].isna().sum())  # not in the GTF either: said so
    assert main([*tenx, *common, "--out", str(tmp_path / "a")]) == 0
    warned = capsys.readouterr().err  # the CLI prints warnings as "factvae-sk: warning:" lines
    assert re.search(f"warning: .*{unplaced} of {len(genes)} genes .* not in", warned)
    files = ["--rna", "rna.npz", "--atac", "atac.npz", "--genes", "genes.tsv"]
    files += ["--peaks", "peaks.tsv", "--cells", "cells.tsv"]
    files = [f if f.startswith("--") else str(tmp_path / f) for f in files]
    assert main(["fit", *files, *common, "--out", str(tmp_path / "b")]) == 0
    summary, tables = _outputs(tmp_path / "a")
    expected_summary, expected = _outputs(tmp_path / "b")
    assert summary == expected_summary
    for name, table in tables.items():
        pd.testing.assert_frame_equal(table, expected[name], obj=name)
    assert summary["n_prior_links"] > 0 and len(tables["top_links.csv"]) == 50
    # The file's barcodes, in order (less any cell without counts in the selected genes).
    written = tables["cell_embeddings.csv"]["barcode"]
    assert written.tolist() == cells["barcode"][cells["barcode"].isin(written)].tolist()
    assert len(written) == summary["n_cells"] > 0.9 * len(cells)
    # The peaks dropped are those detected in fewer than the default 3 cells.
    detected = (atac > 0).sum(axis=0).A1
    assert summary["min_peak_cells"] == 3
    assert summary["n_peaks_dropped"] == int((detected < 3).sum())
    assert summary["n_peaks"] == int((detected >= 3).sum())


def test_10x_goes_alone(tmp_path, capsys):
    assert main(["fit", "--10x", "x.h5", "--rna", "rna.npz", "--out", str(tmp_path)]) == 2
    assert "--10x holds the counts, features and barcodes: drop --rna" in capsys.readouterr().err
    assert main(["fit", "--10x", str(tmp_path / "missing.h5"), "--out", str(tmp_path)]) == 2
    assert "missing.h5: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("min_cells", [0, 25])
def test_min_peak_cells_drops_rare_peaks(tmp_path, subset, one_thread, min_cells):
    rna, atac, peaks = subset["rna"], subset["atac"], subset["peaks"]
    sp.save_npz(tmp_path / "rna.npz", rna)
    sp.save_npz(tmp_path / "atac.npz", atac)
    subset["genes"][["gene"]].to_csv(tmp_path / "genes.tsv", sep="\t", index=False)
    peaks.to_csv(tmp_path / "peaks.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    args = ["fit", "--rna", str(tmp_path / "rna.npz"), "--atac", str(tmp_path / "atac.npz")]
    args += ["--genes", str(tmp_path / "genes.tsv"), "--peaks", str(tmp_path / "peaks.tsv")]
    args += ["--no-prior", "--epochs", "1", "--n-top-genes", "300", "--out", str(out)]
    assert main([*args, "--min-peak-cells", str(min_cells), "--map", "tsne"]) == 0
    detected = np.array([len(set(atac[:, j].nonzero()[0])) for j in range(atac.shape[1])])
    kept = detected >= min_cells
    assert (min_cells == 0) == kept.all() and kept.any()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_peaks_dropped"] == int((~kept).sum())
    assert summary["n_peaks"] == int(kept.sum())
    written = pd.read_csv(out / "peak_embeddings.csv")["peak"]
    assert written.tolist() == peaks["peak"][kept].tolist()


def test_10x_without_gtf_warns_of_unknown_strands(tmp_path, subset, one_thread, capsys):
    pytest.importorskip("h5py")
    rna, atac, genes, peaks, cells = (subset[k] for k in ("rna", "atac", "genes", "peaks", "cells"))
    path = tmp_path / "matrix.h5"
    write_10x_h5(path, rna[:, :200], atac, features_frame(genes.iloc[:200], peaks), cells.barcode)
    args = ["fit", "--10x", str(path), "--epochs", "1", "--n-top-genes", "0", "--map", "tsne"]
    # Barcodes without counts in these 200 genes are left out by the reader, and said so.
    has_rna = rna[:, :200].getnnz(axis=1) > 0
    left_out = f"{(~has_rna).sum()} of {len(cells)} barcodes are left out"
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    warned = capsys.readouterr().err
    assert f"warning: {tmp_path}" in warned and left_out in warned
    assert "gives the genes no strand" in warned
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_cells"] == has_rna.sum() < len(cells)
    # Both ends of each placed gene count as its TSS: the prior of unknown strands.
    placed = genes.iloc[:200].assign(strand=".")
    keep = (atac[has_rna] > 0).sum(axis=0).A1 >= summary["min_peak_cells"]
    expected = build_gene_peak_prior(placed, peaks[keep].reset_index(drop=True))
    assert summary["n_prior_links"] == expected.nnz > 0


def test_10x_with_a_cell_table_gives_labels_and_samples(tmp_path, subset, snare, one_thread):
    pytest.importorskip("h5py")
    rna, atac, genes, peaks, cells = (subset[k] for k in ("rna", "atac", "genes", "peaks", "cells"))
    path = tmp_path / "matrix.h5"
    write_10x_h5(path, rna, atac, features_frame(genes, peaks), cells["barcode"])
    # An annotation of the first 200 cells, shuffled, with the cell lines and two samples.
    lines = snare.cells.cell_line.to_numpy()[np.arange(0, 960, 4)]
    table = pd.DataFrame(
        {"barcode": cells["barcode"], "cell_line": lines, "sample": np.arange(len(cells)) % 2}
    ).iloc[np.random.default_rng(0).permutation(200)]
    table.to_csv(tmp_path / "annotation.csv", index=False)
    args = ["fit", "--10x", str(path), "--no-prior", "--epochs", "1", "--n-top-genes", "300"]
    args += ["--map", "tsne", "--cells", str(tmp_path / "annotation.csv")]
    out = ["--labels", "cell_line", "--batch", "sample", "--out", str(tmp_path / "o")]
    assert main([*args, *out]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["n_samples"] == 2 and summary["batch_column"] == "sample"
    # The annotated cells in the file's order (less any without counts in the selected genes).
    written = pd.read_csv(tmp_path / "o" / "cell_embeddings.csv")
    annotated = cells["barcode"][:200]
    assert written["barcode"].tolist() == annotated[annotated.isin(written["barcode"])].tolist()
    assert len(written) == summary["n_cells"] > 190
    expected = pd.Series(lines[:200], index=annotated)[written["barcode"]]
    assert (written["cell_line"].to_numpy() == expected.to_numpy()).all()
    position = pd.Series(np.arange(len(cells)), index=cells["barcode"])[written["barcode"]]
    assert (written["sample"].to_numpy() == position.to_numpy() % 2).all()
    # Labels without a table are a usage error naming the fix.
    assert main([*args[:-2], "--labels", "cell_line", "--out", str(tmp_path / "p")]) == 2
