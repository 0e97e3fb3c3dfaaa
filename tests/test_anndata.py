"""AnnData / MuData in and out, and fitting from counts on disk read in row blocks."""

import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import FAST
from sklearn.base import clone

from factvae_sk import FactVAE, build_gene_peak_prior
from factvae_sk._block_svd import randomized_svd_blocks
from factvae_sk._data import PairedCountsDataset
from factvae_sk._preprocessing import ATACEncoderInput, RNAEncoderInput
from factvae_sk._row_blocks import RowBlockCounts
from factvae_sk.exceptions import FactVAEWarning, InputFileError

anndata = pytest.importorskip("anndata")
mudata = pytest.importorskip("mudata")

from factvae_sk.anndata import (  # noqa: E402  (after the optional imports)
    backed_counts,
    fit_inputs_from_mudata,
    read_mudata,
    write_results,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def paired(snare):
    """150 real cells, all 18666 genes (2000 flagged highly variable) with coordinates,
    and the 800 most open peaks, as a MuData."""
    cells = np.arange(150)
    order = np.sort(np.argsort(-snare.atac[cells].sum(axis=0).A1, kind="stable")[:800])
    atac = sp.csr_matrix(snare.atac[cells][:, order])
    keep = (atac.getnnz(axis=1) > 0) & (snare.rna[cells].getnnz(axis=1) > 0)
    cells = cells[keep]
    obs = pd.DataFrame(
        {"cell_line": snare.cells["cell_line"].to_numpy()[cells]},
        index=snare.cells["barcode"].to_numpy()[cells],
    )
    genes = snare.genes.set_index("gene")
    peaks = snare.peaks.iloc[order].set_index("peak")
    rna = anndata.AnnData(sp.csr_matrix(snare.rna[cells], dtype=np.float32), obs=obs, var=genes)
    atac = anndata.AnnData(sp.csr_matrix(atac[keep], dtype=np.float32), obs=obs, var=peaks)
    return mudata.MuData({"rna": rna, "atac": atac})


@pytest.fixture(scope="module")
def fitted(paired):
    inputs = fit_inputs_from_mudata(paired, genes="highly_variable")
    model = FactVAE(**{**FAST, "max_epochs": 2}, embedding="joint", random_state=0)
    return model.fit(**inputs.fit_kwargs), inputs


# ------------------------------------------------------------------ MuData in


def test_fit_inputs_match_the_tables(paired, snare):
    inputs = fit_inputs_from_mudata(paired, genes="highly_variable")
    hvg = paired["rna"].var["highly_variable"].to_numpy()
    assert (inputs.X_rna != sp.csr_matrix(paired["rna"].X[:, hvg])).nnz == 0
    assert (inputs.X_atac != paired["atac"].X).nnz == 0
    assert inputs.X_rna.dtype == np.float32 and sp.isspmatrix_csr(inputs.X_atac)
    # The prior, independently: the coordinates' recipe on the bundled tables.
    expected = build_gene_peak_prior(
        snare.genes[snare.genes.highly_variable].reset_index(drop=True),
        paired["atac"].var.reset_index(names="peak"),
    )
    assert expected.nnz > 0
    assert (inputs.prior.matrix != expected).nnz == 0
    assert list(inputs.genes["gene"]) == list(paired["rna"].var_names[hvg])
    assert list(inputs.cells["barcode"]) == list(paired.obs_names)


def test_peaks_placed_by_their_names_and_a_layer(paired):
    """Without coordinate columns the peaks' names give the same prior; counts in a layer."""
    atac = paired["atac"].copy()
    atac.layers["counts"] = atac.X.copy()
    atac.X = atac.X * 0.5  # not counts: must not be read
    atac.var = atac.var.drop(columns=["chrom", "start", "end"])
    rna = paired["rna"].copy()
    rna.layers["counts"] = rna.X.copy()
    named = mudata.MuData({"r": rna, "a": atac})
    by_name = fit_inputs_from_mudata(named, "r", "a", layer="counts", genes="highly_variable")
    by_column = fit_inputs_from_mudata(paired, genes="highly_variable")
    assert (by_name.prior.matrix != by_column.prior.matrix).nnz == 0
    assert (by_name.X_atac != by_column.X_atac).nnz == 0


def test_mudata_input_errors(paired):
    with pytest.raises(KeyError, match="no ATAC modality 'peaks'"):
        fit_inputs_from_mudata(paired, atac="peaks")
    with pytest.raises(InputFileError, match="has no layer 'counts'"):
        fit_inputs_from_mudata(paired, layer="counts")
    with pytest.raises(KeyError, match="no column 'hvg'"):
        fit_inputs_from_mudata(paired, genes="hvg")
    shuffled = paired["atac"][::-1].copy()
    unpaired = mudata.MuData({"rna": paired["rna"], "atac": shuffled}, axis=-1)
    with pytest.raises(InputFileError, match="lists different cells"):
        fit_inputs_from_mudata(unpaired)
    # Genes without coordinates: a warning, no prior.
    rna = paired["rna"].copy()
    rna.var = rna.var[["highly_variable"]]
    with pytest.warns(FactVAEWarning, match="no coordinates"):
        inputs = fit_inputs_from_mudata(mudata.MuData({"rna": rna, "atac": paired["atac"]}))
    assert inputs.prior is None


# ------------------------------------------------------------------ results out


def test_write_results_round_trip(fitted, paired, tmp_path):
    model, inputs = fitted
    mdata = paired.copy()
    chosen = [paired["atac"].var_names[3], paired["atac"].var_names[10]]
    write_results(model, mdata, genes="highly_variable", peaks=chosen)
    # What was written is the model's own output.
    Z = model.transform(inputs.X_rna, inputs.X_atac)
    np.testing.assert_array_equal(mdata.obsm["X_factvae"], Z)
    np.testing.assert_array_equal(mdata.obsm["X_factvae_rna"], Z[:, : model.n_latent])
    np.testing.assert_array_equal(mdata.obsm["X_factvae_atac"], Z[:, model.n_latent :])
    hvg = paired["rna"].var["highly_variable"].to_numpy()
    gene_rows = mdata["rna"].varm["factvae"]
    np.testing.assert_array_equal(gene_rows[hvg], model.feature_embeddings_.rna.to_numpy())
    assert np.isnan(gene_rows[~hvg]).all()
    links = model.regulatory_links("prior")
    table = mdata.uns["factvae_links"]
    assert list(table["gene"]) == list(
        inputs.genes["gene"].to_numpy()[links["gene"].to_numpy(dtype=int)]
    )
    np.testing.assert_array_equal(table["score"].to_numpy(), links["score"].to_numpy())
    layer = mdata["atac"].layers["factvae_augmented"]
    assert sp.issparse(layer) and layer.shape == mdata["atac"].shape
    expected = model.impute_atac(inputs.X_atac, peaks=[3, 10])
    np.testing.assert_array_equal(layer[:, [3, 10]].toarray(), expected)
    assert layer.nnz == expected.size  # the other peaks' columns are empty
    # Written to .h5mu and read back: the same values.
    path = tmp_path / "results.h5mu"
    mdata.write(path)
    back = mudata.read_h5mu(path)
    for key in ("X_factvae", "X_factvae_rna", "X_factvae_atac"):
        np.testing.assert_array_equal(np.asarray(back.obsm[key]), mdata.obsm[key])
    np.testing.assert_array_equal(back["rna"].varm["factvae"], gene_rows)
    np.testing.assert_array_equal(back["atac"].varm["factvae"], mdata["atac"].varm["factvae"])
    pd.testing.assert_frame_equal(back.uns["factvae_links"], table)
    np.testing.assert_array_equal(
        back["atac"].layers["factvae_augmented"].toarray(), layer.toarray()
    )
    # And the modalities alone as .h5ad.
    mdata["rna"].write_h5ad(tmp_path / "rna.h5ad")
    rna_back = anndata.read_h5ad(tmp_path / "rna.h5ad")
    np.testing.assert_array_equal(rna_back.obsm["X_factvae"], Z)
    # read_mudata gives what fit_inputs_from_mudata gave on the original.
    again = read_mudata(path, genes="highly_variable")
    assert (again.X_rna != inputs.X_rna).nnz == 0 and (again.X_atac != inputs.X_atac).nnz == 0
    assert (again.prior.matrix != inputs.prior.matrix).nnz == 0


def test_write_results_refuses_another_gene_selection(fitted, paired):
    model, _ = fitted
    with pytest.raises(ValueError, match="fitted on 2000 genes"):
        write_results(model, paired.copy())


def test_scanpy_neighbors_on_the_codes(fitted, paired):
    scanpy = pytest.importorskip("scanpy")
    model, inputs = fitted
    mdata = paired.copy()
    write_results(model, mdata, genes="highly_variable", inputs=inputs, links=None)
    rna = mdata["rna"]
    scanpy.pp.neighbors(rna, use_rep="X_factvae", n_neighbors=10, random_state=0)
    distances = rna.obsp["distances"]
    assert distances.shape == (rna.n_obs, rna.n_obs)
    # The nearest neighbour scanpy found is the nearest in the code space (brute force).
    Z = mdata.obsm["X_factvae"].astype(np.float64)
    d2 = ((Z[:, None] - Z[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    row = distances[0].toarray().ravel()
    row[row == 0] = np.inf
    assert row.argmin() == d2[0].argmin()


# ------------------------------------------------------------------ counts on disk


def test_block_svd_matches_dense_svd():
    rng = np.random.default_rng(0)
    A = (rng.normal(size=(300, 8)) * np.linspace(30, 10, 8)) @ rng.normal(size=(8, 60))
    A = A + 0.01 * rng.normal(size=A.shape) + 5.0  # an offset PCA's centering must remove
    center = A.mean(axis=0)

    def blocks():
        return ((start, sp.csr_matrix(A[start : start + 70])) for start in range(0, 300, 70))

    U, S, Vt = randomized_svd_blocks(blocks, A.shape, 5, center=center, random_state=0)
    U_ref, S_ref, Vt_ref = np.linalg.svd(A - center, full_matrices=False)
    np.testing.assert_allclose(S, S_ref[:5], rtol=1e-8)
    np.testing.assert_allclose(np.abs(np.sum(Vt * Vt_ref[:5], axis=1)), 1.0, atol=1e-8)
    np.testing.assert_allclose(U * S, (A - center) @ Vt.T, atol=1e-8)


@pytest.fixture
def on_disk(small, tmp_path):
    """The small real data written to .h5ad and opened as RowBlockCounts of 70 rows."""
    blocks = []
    for name in ("rna", "atac"):
        anndata.AnnData(sp.csr_matrix(small[name], dtype=np.float32)).write_h5ad(
            tmp_path / f"{name}.h5ad"
        )
        counts = backed_counts(tmp_path / f"{name}.h5ad")
        counts.block_rows = 70
        blocks.append(counts)
    return blocks


def test_row_blocks_read_what_is_on_disk(on_disk, small):
    rna, atac = on_disk
    index = np.array([5, 299, 0, 5, 120])  # unsorted, with a repeat
    assert (atac[index] != small["atac"][index]).nnz == 0
    np.testing.assert_array_equal(rna.sum(axis=1), small["rna"].sum(axis=1))
    np.testing.assert_allclose(atac.mean(axis=0), small["atac"].mean(axis=0), rtol=1e-12)
    # A training batch from disk is the in-memory batch, non-zero positions included.
    from_disk = PairedCountsDataset(np.zeros((300, 2), np.float32), rna, None, None, None)
    in_memory = PairedCountsDataset(np.zeros((300, 2), np.float32), small["rna"])
    X_disk, y_disk = from_disk.__getitems__(index)
    X_mem, y_mem = in_memory.__getitems__(index)
    for key in y_mem:
        np.testing.assert_array_equal(y_disk[key].numpy(), y_mem[key].numpy())
    np.testing.assert_array_equal(X_disk["rna_log_library"], X_mem["rna_log_library"])


def test_row_block_checks():
    bad = sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="1 cell\\(s\\) with zero total counts \\(first rows: 1"):
        RowBlockCounts(bad, block_rows=2).check("X_atac")
    with pytest.raises(ValueError, match="negative"):
        RowBlockCounts(sp.csr_matrix([[1.0, -1.0], [1.0, 1.0]])).check("X_rna")
    with pytest.raises(ValueError, match="NaN or infinite"):
        RowBlockCounts(sp.csr_matrix([[1.0, np.nan], [1.0, 1.0]])).check("X_rna")
    with pytest.warns(FactVAEWarning, match="non-integer"):
        RowBlockCounts(sp.csr_matrix([[1.5, 1.0], [1.0, 1.0]])).check("X_rna")


def test_block_preprocessing_matches_in_memory(on_disk, small):
    rna, atac = on_disk
    for transformer, blocks, X in (
        (RNAEncoderInput(20, random_state=0), rna, small["rna"]),
        (ATACEncoderInput(20, random_state=0), atac, small["atac"]),
    ):
        reference = type(transformer)(**transformer.get_params()).fit(X)
        fitted = transformer.fit(blocks)
        if hasattr(reference, "scaler_"):
            np.testing.assert_allclose(fitted.scaler_.scale_, reference.scaler_.scale_, 1e-9)
            A = fitted.scaler_.transform(fitted._log_normalize(X)).toarray()
            A -= A.mean(axis=0)
            scaled = fitted.scaler_.transform(fitted._log_normalize(X))
            np.testing.assert_allclose(fitted.pca_.mean_, scaled.mean(axis=0).A1, rtol=1e-9)
            svd = fitted.pca_
        else:
            np.testing.assert_array_equal(fitted.idf_, reference.idf_)
            A = fitted._tfidf(X).toarray()
            svd = fitted.svd_
        # Against the exact SVD of the dense matrix: the leading values agree, and the rest
        # are as close as a randomized SVD gets on this flat spectrum (never above).
        exact = np.linalg.svd(A, compute_uv=False)[:20]
        ratio = svd.singular_values_ / exact
        np.testing.assert_allclose(ratio[:2], 1.0, rtol=1e-4)
        assert (ratio <= 1 + 1e-9).all() and (ratio >= 0.96).all()
        # Blocks transform as the whole matrix does.
        np.testing.assert_allclose(fitted.transform(blocks), fitted.transform(X), atol=1e-4)


def test_fit_from_disk(on_disk, small, tmp_path):
    rna, atac = on_disk
    model = FactVAE(**{**FAST, "max_epochs": 1}, embedding="joint", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FactVAEWarning)
        model.fit(rna, atac, prior=small["prior"])
    assert model.n_features_in_ == 2000 and model.n_peaks_in_ == 5000
    assert not hasattr(model, "feature_names_in_")
    Z = model.transform(rna, atac)
    np.testing.assert_allclose(Z, model.transform(small["rna"], small["atac"]), atol=1e-4)
    np.testing.assert_allclose(
        model.atac_peak_mean_, small["atac"].mean(axis=0).A1.astype(np.float64), rtol=1e-6
    )
    # Reproducible, and a plain fitted estimator: pickles and saves (no file handle kept).
    again = clone(model).fit(rna, atac, prior=small["prior"])
    np.testing.assert_array_equal(again.transform(rna, atac), Z)
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.transform(small["rna"], small["atac"]), Z)
    path = model.save(tmp_path / "model.npz")
    np.testing.assert_array_equal(
        FactVAE.load(path, device="cpu").transform(small["rna"], small["atac"]),
        model.transform(small["rna"], small["atac"]),
    )
    with pytest.raises(ValueError, match="has 4999 features, but FactVAE was fitted with 5000"):
        model.transform(rna, RowBlockCounts(small["atac"][:, 1:]))
    # Scoring and denoising read the counts from disk too, and give the in-memory answers.
    np.testing.assert_allclose(
        model.score(rna, atac), model.score(small["rna"], small["atac"]), rtol=1e-6
    )
    np.testing.assert_allclose(
        model.impute_atac(atac), model.impute_atac(small["atac"]), rtol=1e-5, atol=1e-8
    )
    np.testing.assert_array_equal(
        model.impute_atac(X_rna=rna), model.impute_atac(X_rna=small["rna"])
    )


# ------------------------------------------------------------------ the command line


def test_cli_reads_mudata_as_the_python_api(paired, tmp_path, capsys):
    from factvae_sk.cli import _load_user_data, build_parser, main

    path = tmp_path / "multiome.h5mu"
    paired.write(path)
    parser = build_parser()
    args = parser.parse_args(["fit", "--mudata", str(path), "--out", str(tmp_path / "out")])
    data = _load_user_data(args, parser)
    inputs = read_mudata(path)
    assert (data.rna != inputs.X_rna).nnz == 0 and (data.atac != inputs.X_atac).nnz == 0
    pd.testing.assert_frame_equal(data.genes, inputs.genes)
    pd.testing.assert_frame_equal(data.peaks, inputs.peaks)
    assert data.located
    out = str(tmp_path / "out")
    assert main(["fit", "--mudata", str(path), "--atac-mod", "peaks", "--out", out]) == 2
    assert "has no ATAC modality 'peaks'" in capsys.readouterr().err
    assert main(["fit", "--mudata", str(path), "--rna", "x.npz", "--out", out]) == 2
    assert "--mudata holds both modalities" in capsys.readouterr().err


def test_one_modality_on_disk(on_disk, small):
    """In-memory RNA with ATAC on disk: each gets its own checks, pairing is checked."""
    _, atac = on_disk
    model = FactVAE()
    X_rna, X_atac = model._validate_counts(small["rna"], atac, reset=True)
    assert sp.isspmatrix_csr(X_rna) and X_atac is atac
    assert (model.n_features_in_, model.n_peaks_in_) == (2000, 5000)
    with pytest.raises(ValueError, match="X_rna has 299, X_atac has 300"):
        FactVAE()._validate_counts(small["rna"][1:], atac, reset=True)


def test_counts_on_disk_refuse_what_they_do_not_support_yet(on_disk, small):
    """Single-modality masks and distributed training are refused by name before training."""
    rna, atac = on_disk
    observed = np.arange(rna.shape[0]) % 3 > 0
    with pytest.raises(ValueError, match="not supported with counts read from disk"):
        FactVAE(max_epochs=1).fit(rna, atac, rna_observed=observed)
    with pytest.raises(ValueError, match=r"does not support counts read from disk"):
        FactVAE(max_epochs=1, distributed=True).fit(rna, atac)
