"""End-to-end tests of the command line (``factvae-sk demo`` / ``fit``), two epochs each, and
of the installed console script as users run it (exit status, stderr)."""

import gzip
import json

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from cli_helpers import run_cli, write_small_inputs

from factvae_sk import build_gene_peak_prior
from factvae_sk.analysis import _link_model
from factvae_sk.cli import main, run

OUTPUT_FILES = [
    "cell_embeddings.csv",
    "gene_embeddings.csv",
    "peak_embeddings.csv",
    "top_links.csv",
    "model.joblib",
    "summary.json",
    "loss_curves.png",
    "cell_map.png",
    "links.png",
]


@pytest.fixture(scope="module")
def subset(snare):
    """300 real cells, 1500 genes (all HVGs among them), the 4000 most open peaks."""
    cells = np.arange(0, 900, 3)
    genes = np.sort(np.r_[np.flatnonzero(snare.genes.highly_variable)[:1000], np.arange(500)])
    genes = np.unique(genes)
    open_peaks = np.argsort(-np.asarray(snare.atac.sum(axis=0)).ravel(), kind="stable")
    peaks = np.sort(open_peaks[:4000])
    rna = snare.rna[cells][:, genes]
    keep = np.asarray(rna.sum(axis=1)).ravel() > 0
    return {
        "rna": rna[keep],
        "atac": snare.atac[cells][:, peaks][keep],
        "genes": snare.genes.iloc[genes].reset_index(drop=True),
        "peaks": snare.peaks.iloc[peaks].reset_index(drop=True),
        "cells": snare.cells.iloc[cells[keep]].reset_index(drop=True),
    }


def _check_outputs(out, n_cells, genes, peaks, label_column=None):
    for name in OUTPUT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    cells = pd.read_csv(out / "cell_embeddings.csv")
    assert len(cells) == n_cells
    dims = [c for c in cells.columns if c.startswith("factvae_")]
    assert len(dims) == 100 and dims[0] == "factvae_rna0" and dims[-1] == "factvae_atac49"
    summary = json.loads((out / "summary.json").read_text())
    method = summary["map"]["method"]
    assert {"barcode", "cluster", f"{method}_1", f"{method}_2"} <= set(cells.columns)
    # The summary names the embedding that was mapped and clustered: the RNA one.
    assert summary["map"]["embedding"] == "RNA"
    assert "RNA posterior mean" in summary["map"]["embedding_description"]
    if label_column:
        assert label_column in cells.columns
    gene_emb = pd.read_csv(out / "gene_embeddings.csv")
    assert gene_emb.shape == (len(genes), 51)
    assert gene_emb["gene"].tolist() == list(genes)
    peak_emb = pd.read_csv(out / "peak_embeddings.csv")
    assert peak_emb.shape == (len(peaks), 51)
    assert peak_emb["peak"].tolist() == list(peaks)
    links = pd.read_csv(out / "top_links.csv")
    assert list(links.columns) == [
        "gene", "peak", "prior_weight", "score", "distance",
        "activity", "expression", "correlation", "cosine", "expressed_closer",
    ]  # fmt: skip
    assert len(links) > 0 and links["score"].is_monotonic_decreasing
    assert set(links["gene"]) <= set(genes) and set(links["peak"]) <= set(peaks)
    model = joblib.load(out / "model.joblib")
    # The scores are regulatory_links' default with coordinates, named in the summary: the
    # link model over the distance and the model's correlation and cosine beside it.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["link_score"] == "logistic"
    gene_pos = pd.Index(genes).get_indexer(links["gene"])
    peak_pos = pd.Index(peaks).get_indexer(links["peak"])
    for score in ("correlation", "cosine"):
        dense = model.regulatory_scores(score=score)
        np.testing.assert_allclose(links[score], dense[gene_pos, peak_pos], atol=1e-4)
    features = links.astype({"distance": float}).assign(
        expressed_closer=np.log1p(links.expressed_closer)
    )
    expected = _link_model.logistic(features)
    np.testing.assert_allclose(links["score"], expected, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(
        model.feature_embeddings_.rna, gene_emb.iloc[:, 1:].to_numpy(), rtol=1e-5, atol=1e-6
    )
    for png in ("loss_curves.png", "cell_map.png", "links.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return cells, links, model, summary


def test_demo(tmp_path, one_thread, capsys, snare):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo"
    result = run(["demo", "--out", str(out), "--epochs", "2"])
    printed = capsys.readouterr()
    assert "ARI" in printed.out and "NMI" in printed.out and "epoch    2/2" in printed.err
    hvg = snare.genes_hvg
    cells, links, model, summary = _check_outputs(
        out, 1047, hvg["gene"], snare.peaks["peak"], "cell_line"
    )
    assert cells["barcode"].tolist() == snare.cells["barcode"].tolist()
    assert cells["cell_line"].tolist() == snare.cells["cell_line"].tolist()
    assert summary["n_prior_links"] == snare.prior.nnz == 3039
    assert summary["max_epochs"] == 2 and len(model.net_.history) == 2
    assert [row["embedding"] for row in summary["scores"]] == ["RNA", "ATAC", "joint"]
    assert result.scores.shape == (3, 3)
    assert len(links) == 1000  # --n-links default; the prior has more pairs


def test_fit_user_files(tmp_path, subset, one_thread):
    pytest.importorskip("matplotlib")
    # RNA as cells x genes .npz, ATAC as 10x-style peaks x cells .mtx.gz (transposed on read),
    # peaks as bare names in chr-start-end form, cells with a label column.
    sp.save_npz(tmp_path / "rna.npz", subset["rna"])
    with gzip.open(tmp_path / "atac.mtx.gz", "wb") as handle:
        scipy.io.mmwrite(handle, subset["atac"].T.tocoo())
    subset["genes"].drop(columns="highly_variable").to_csv(
        tmp_path / "genes.tsv", sep="\t", index=False
    )
    names = (subset["peaks"]["peak"].str.replace(":", "-")).rename("name")
    names.to_frame().to_csv(tmp_path / "peaks.tsv", sep="\t", index=False)
    subset["cells"].to_csv(tmp_path / "cells.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    args = ["fit", "--rna", str(tmp_path / "rna.npz"), "--atac", str(tmp_path / "atac.mtx.gz")]
    args += ["--genes", str(tmp_path / "genes.tsv"), "--peaks", str(tmp_path / "peaks.tsv")]
    args += ["--cells", str(tmp_path / "cells.tsv"), "--labels", "cell_line"]
    args += ["--out", str(out), "--epochs", "2", "--n-top-genes", "300", "--n-links", "50"]
    args += ["--map", "tsne", "--map-max-cells", "120"]
    assert main(args) == 0
    # Cells without counts in the 300 selected genes are left out (two here).
    model = joblib.load(out / "model.joblib")
    hvg = subset["genes"]["gene"].isin(pd.read_csv(out / "gene_embeddings.csv")["gene"])
    kept = subset["rna"][:, hvg.to_numpy()].getnnz(axis=1) > 0
    assert 0 < (~kept).sum() < 10
    n_cells = int(kept.sum())
    cells, links, model, summary = _check_outputs(
        out, n_cells, pd.read_csv(out / "gene_embeddings.csv")["gene"], names, "cell_line"
    )
    assert model.n_features_in_ == 300 and model.n_peaks_in_ == 4000
    assert cells["barcode"].tolist() == subset["cells"]["barcode"][kept].tolist()
    assert summary["n_genes"] == 300 and summary["n_clusters"] == 4 and len(links) <= 50
    # Above --map-max-cells the t-SNE maps a subsample stratified by cluster; the others have
    # no coordinates, and the summary says so.
    assert summary["map"] == {**summary["map"], "method": "tsne", "subsampled": True}
    assert 120 <= summary["map"]["n_cells_mapped"] <= 124  # one cell per cluster at least
    mapped = cells["tsne_1"].notna()
    assert mapped.sum() == summary["map"]["n_cells_mapped"] and mapped.sum() < n_cells
    assert set(cells["cluster"][mapped]) == set(cells["cluster"])
    # The same prior as building it from the tables directly.
    genes = subset["genes"].set_index("gene").loc[pd.read_csv(out / "gene_embeddings.csv")["gene"]]
    prior = build_gene_peak_prior(genes.reset_index(), subset["peaks"])
    assert summary["n_prior_links"] == prior.nnz > 0


def test_fit_with_gtf_and_tss_window(tmp_path, subset, one_thread):
    # Genes as bare names; coordinates looked up in a GTF written from the bundled table.
    genes = subset["genes"]
    located = genes.dropna(subset=["start"])
    lines = [
        f"{g.chrom}\tx\tgene\t{int(g.start) + 1}\t{int(g.end)}\t.\t{g.strand}\t.\t"
        f'gene_id "ID{i}"; gene_name "{g.gene}";'
        for i, g in enumerate(located.itertuples())
    ]
    (tmp_path / "genes.gtf").write_text("\n".join(lines) + "\n")
    genes[["gene"]].to_csv(tmp_path / "genes.tsv", sep="\t", index=False)
    subset["peaks"][["peak", "chrom", "start", "end"]].to_csv(
        tmp_path / "peaks.tsv", sep="\t", index=False
    )
    sp.save_npz(tmp_path / "rna.npz", subset["rna"])
    sp.save_npz(tmp_path / "atac.npz", subset["atac"])
    out = tmp_path / "out"
    main(
        ["fit", "--rna", str(tmp_path / "rna.npz"), "--atac", str(tmp_path / "atac.npz"),
         "--genes", str(tmp_path / "genes.tsv"), "--peaks", str(tmp_path / "peaks.tsv"),
         "--gtf", str(tmp_path / "genes.gtf"), "--prior-mode", "tss_window",
         "--n-top-genes", "0", "--n-clusters", "3", "--out", str(out), "--epochs", "2"]
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    expected = build_gene_peak_prior(genes, subset["peaks"], mode="tss_window")
    assert summary["n_genes"] == len(genes) and summary["n_clusters"] == 3
    assert summary["n_prior_links"] == expected.nnz > 0
    links = pd.read_csv(out / "top_links.csv")
    assert (links["prior_weight"] < 1).any()  # distance-decay weights
    cells = pd.read_csv(out / "cell_embeddings.csv")
    assert cells["barcode"].str.startswith("cell").all() and cells["cluster"].nunique() == 3


def test_fit_h5ad(tmp_path, subset, one_thread):
    anndata = pytest.importorskip("anndata")
    barcodes = subset["cells"]["barcode"].to_numpy()
    var = subset["genes"].set_index("gene").drop(columns="highly_variable")
    anndata.AnnData(
        subset["rna"].astype(np.float32), obs=subset["cells"].set_index("barcode"), var=var
    ).write_h5ad(tmp_path / "rna.h5ad")
    anndata.AnnData(
        subset["atac"].astype(np.float32),
        obs=pd.DataFrame(index=barcodes),
        var=pd.DataFrame(index=subset["peaks"]["peak"].to_numpy()),
    ).write_h5ad(tmp_path / "atac.h5ad")
    out = tmp_path / "out"
    main(
        ["fit", "--rna-h5ad", str(tmp_path / "rna.h5ad"), "--atac-h5ad",
         str(tmp_path / "atac.h5ad"), "--labels", "cell_line", "--n-top-genes", "200",
         "--out", str(out), "--epochs", "2"]
    )  # fmt: skip
    cells = pd.read_csv(out / "cell_embeddings.csv")
    assert set(cells["barcode"]) <= set(barcodes) and len(cells) > 280
    assert "cell_line" in cells.columns
    assert len(pd.read_csv(out / "peak_embeddings.csv")) == 4000


def _write_minimal(tmp_path, subset):
    sp.save_npz(tmp_path / "rna.npz", subset["rna"])
    sp.save_npz(tmp_path / "atac.npz", subset["atac"])
    subset["genes"].to_csv(tmp_path / "genes.tsv", sep="\t", index=False)
    subset["peaks"].to_csv(tmp_path / "peaks.tsv", sep="\t", index=False)
    return ["fit", "--rna", str(tmp_path / "rna.npz"), "--atac", str(tmp_path / "atac.npz"),
            "--genes", str(tmp_path / "genes.tsv"), "--peaks", str(tmp_path / "peaks.tsv"),
            "--out", str(tmp_path / "out"), "--epochs", "1"]  # fmt: skip


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t, s: s["peaks"].iloc[:10].to_csv(t / "peaks.tsv", sep="\t", index=False),
         "peaks.tsv has 10 rows"),
        (lambda t, s: s["genes"][["gene", "chrom"]].to_csv(t / "genes.tsv", sep="\t", index=False),
         "needs the columns"),
        (lambda t, s: pd.DataFrame({"peak": ["chr1:5"] * len(s["peaks"])}).to_csv(
            t / "peaks.tsv", sep="\t", index=False), "'chr1:5'"),
        (lambda t, s: sp.save_npz(t / "atac.npz", s["atac"][:10]), "must be paired"),
        (lambda t, s: sp.save_npz(t / "rna.npz", s["rna"] * 0.5), "raw counts"),
    ],
)  # fmt: skip
def test_fit_bad_input_is_a_clear_error(tmp_path, subset, capsys, change, message):
    args = _write_minimal(tmp_path, subset)
    change(tmp_path, subset)
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_fit_needs_the_files(tmp_path, capsys):
    assert main(["fit", "--rna", "x.npz", "--out", str(tmp_path)]) == 2
    assert "missing --atac, --genes, --peaks" in capsys.readouterr().err
    args = ["fit", "--rna", "r.npz", "--atac", "a.npz", "--genes", "g.tsv", "--peaks", "p.tsv"]
    assert main([*args, "--labels", "cell_type", "--out", str(tmp_path)]) == 2
    assert "--labels names a column of the cell table: give --cells too" in capsys.readouterr().err


def test_bad_option_values_are_usage_errors(capsys):
    assert main(["demo", "--epochs", "0"]) == 2
    assert "--epochs: must be >= 1, got 0" in capsys.readouterr().err
    assert main(["demo", "--n-clusters", "many"]) == 2
    assert "expected an integer, got 'many'" in capsys.readouterr().err
    assert main(["--help"]) == 0


# ------------------------------------------------------- the console script, as users run it


def _assert_clean_success(done):
    assert done.returncode == 0, done.stderr[-2000:]
    # Issue 16: the job's result dict was printed by sys.exit() (and the status was 1).
    assert "Bunch" not in done.stderr and "'model':" not in done.stderr
    assert "Traceback" not in done.stderr


def test_console_script_demo_exits_0(tmp_path):
    done = run_cli("demo", "--epochs", "1", "--out", tmp_path / "d1")
    _assert_clean_success(done)
    assert "ARI" in done.stdout and (tmp_path / "d1" / "summary.json").is_file()


@pytest.mark.parametrize("module", [False, True], ids=["factvae-sk", "python -m factvae_sk"])
def test_console_script_fit_exit_status(tmp_path, snare, module):
    args = write_small_inputs(tmp_path, snare)
    out = tmp_path / "out"
    done = run_cli(*args, "--epochs", "1", "--out", out, module=module)
    _assert_clean_success(done)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_epochs"] == 1 and summary["n_cells"] > 100
    # A bad file: status 2, one line naming the file, no traceback.
    (tmp_path / "atac.npz").write_bytes(b"")
    done = run_cli(*args, "--epochs", "1", "--out", tmp_path / "out2", module=module)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("factvae-sk: error: ") and "atac.npz" in last
    # A usage error: argparse's status 2.
    done = run_cli("fit", "--out", tmp_path / "out3", module=module)
    assert done.returncode == 2 and "missing --rna, --atac" in done.stderr


# ------------------------------------------------------- running without a gene-peak prior


def test_h5ad_without_coordinates_falls_back_to_no_prior(tmp_path, snare, capsys, one_thread):
    anndata = pytest.importorskip("anndata")
    rna, atac = snare.rna_hvg[:120, :200], snare.atac[:120, :400]
    keep = (rna.getnnz(axis=1) > 0) & (atac.getnnz(axis=1) > 0)
    obs = snare.cells.iloc[:120][keep].set_index("barcode")
    genes = pd.DataFrame(index=snare.genes_hvg["gene"].to_numpy()[:200])  # names only
    anndata.AnnData(sp.csr_matrix(rna[keep], dtype=np.float32), obs=obs, var=genes).write_h5ad(
        tmp_path / "rna.h5ad"
    )
    peaks = pd.DataFrame(index=[f"region{i}" for i in range(400)])  # not coordinates either
    anndata.AnnData(sp.csr_matrix(atac[keep], dtype=np.float32), obs=obs[[]], var=peaks).write_h5ad(
        tmp_path / "atac.h5ad"
    )
    out = tmp_path / "out"
    args = ["fit", "--rna-h5ad", str(tmp_path / "rna.h5ad"), "--atac-h5ad"]
    args += [str(tmp_path / "atac.h5ad"), "--out", str(out), "--epochs", "1"]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "warning: the genes of" in printed.err and "without a gene-peak prior" in printed.err
    assert "no prior: gene-peak links are not learned from a prior" in printed.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["links_from_prior"] is False and summary["prior_mode"] is None
    assert summary["n_prior_links"] == 0
    assert len(pd.read_csv(out / "top_links.csv")) == 0
    assert joblib.load(out / "model.joblib").net_.criterion_.has_prior is False


def test_no_prior_flag_needs_no_coordinates(tmp_path, snare, capsys, one_thread):
    args = write_small_inputs(tmp_path, snare)
    # Peak names that are not coordinates: an error with a prior, accepted without one.
    peaks = pd.DataFrame({"peak": [f"p{i}" for i in range(500)]})
    peaks.to_csv(tmp_path / "peaks.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    assert main([*args, "--out", str(out), "--epochs", "1"]) == 2
    assert "not of the form 'chrom:start-end'" in capsys.readouterr().err
    assert main([*args, "--no-prior", "--out", str(out), "--epochs", "1"]) == 0
    printed = capsys.readouterr()
    assert "warning" not in printed.err  # asked for: no warning
    summary = json.loads((out / "summary.json").read_text())
    assert summary["links_from_prior"] is False and summary["n_prior_links"] == 0
    assert not (out / "links.png").exists()  # no coordinates: no genome tracks to draw


def _write_with_samples(form, tmp_path, subset):
    """The subset with a ``donor`` column in its cell table, written in one input form;
    the CLI arguments that read it."""
    cells = subset["cells"].assign(
        donor=np.array(["d1", "d2", "d3"])[np.arange(len(subset["cells"])) % 3]
    )
    if form == "files":
        args = _write_minimal(tmp_path, subset)[:-4]  # without --out and --epochs
        cells.to_csv(tmp_path / "cells.tsv", sep="\t", index=False)
        return args + ["--cells", str(tmp_path / "cells.tsv")], cells
    anndata = pytest.importorskip("anndata")
    obs = cells.set_index("barcode")
    var = subset["genes"].set_index("gene").drop(columns="highly_variable")
    rna = anndata.AnnData(subset["rna"].astype(np.float32), obs=obs, var=var)
    atac = anndata.AnnData(
        subset["atac"].astype(np.float32), obs=obs, var=subset["peaks"].set_index("peak")
    )
    if form == "h5ad":
        rna.write_h5ad(tmp_path / "rna.h5ad")
        atac.write_h5ad(tmp_path / "atac.h5ad")
        return ["fit", "--rna-h5ad", str(tmp_path / "rna.h5ad"), "--atac-h5ad",
                str(tmp_path / "atac.h5ad")], cells  # fmt: skip
    mudata = pytest.importorskip("mudata")
    mudata.MuData({"rna": rna, "atac": atac}).write(tmp_path / "multiome.h5mu")
    return ["fit", "--mudata", str(tmp_path / "multiome.h5mu")], cells


@pytest.mark.parametrize("form", ["files", "h5ad", "mudata"])
def test_fit_with_samples(tmp_path, subset, one_thread, form):
    """--batch names the cell table's (or .obs') sample column: the fit integrates the
    samples (the saved model transforms the cells with them to the written embedding), the
    map gets a sample panel, and the summary reports the kNN mixing of each embedding."""
    from factvae_sk.app._scores import knn_mixing

    args, cells = _write_with_samples(form, tmp_path, subset)
    out = tmp_path / "out"
    args += ["--batch", "donor", "--labels", "cell_line", "--out", str(out), "--epochs", "1"]
    args += ["--n-top-genes", "200", "--map", "tsne", "--n-links", "20"]
    assert main(args) == 0
    written = pd.read_csv(out / "cell_embeddings.csv")
    summary = json.loads((out / "summary.json").read_text())
    model = joblib.load(out / "model.joblib")
    assert summary["batch_column"] == "donor" and summary["n_samples"] == 3
    assert list(model.batch_categories_) == ["d1", "d2", "d3"]
    donor = cells.set_index("barcode").loc[written["barcode"], "donor"].to_numpy()
    assert written["donor"].tolist() == donor.tolist()
    rna_dims = [c for c in written.columns if c.startswith("factvae_rna")]
    Z = written[rna_dims].to_numpy()
    scores = {row["embedding"]: row for row in summary["scores"]}
    assert set(scores) == {"RNA", "ATAC", "joint"}
    assert {"ARI", "NMI", "kNN mixing"} <= set(scores["RNA"])
    assert scores["RNA"]["kNN mixing"] == pytest.approx(knn_mixing(Z, donor), abs=0.02)
    assert (out / "cell_map.png").stat().st_size > 0


def test_batch_column_must_exist(tmp_path, subset, capsys):
    args, _ = _write_with_samples("files", tmp_path, subset)
    assert main(args + ["--batch", "run", "--out", str(tmp_path / "out")]) == 2
    assert "--batch 'run' is not a column of the cell table" in capsys.readouterr().err
