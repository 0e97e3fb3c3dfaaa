"""Imputation of accessibility beyond the method's formula (posterior averaging, neighbour
maps from RNA, per-peak intercepts) and the harness metrics, each against a direct dense
computation or scikit-learn."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import FAST
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state

from benchmarks.harness import imputation_metrics
from benchmarks.harness.imputation_metrics import per_cell_auroc, per_cell_pearson, per_peak_auroc
from factvae_sk import FactVAE
from factvae_sk.analysis import _accessibility
from factvae_sk.data._preprocessing import RNAEncoderInput

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fitted(small):
    return FactVAE(random_state=0, **FAST).fit(small["rna"], small["atac"], prior=small["prior"])


@pytest.fixture(scope="module")
def with_intercepts(small):
    model = FactVAE(random_state=0, atac_intercepts=True, **FAST)
    return model.fit(small["rna"], small["atac"], prior=small["prior"])


def _decode(model, z, log_library):
    """The torch decoder's mean for codes ``z``: the formula, no blocks."""
    z = torch.from_numpy(np.asarray(z, np.float32))
    library = torch.full((len(z),), float(log_library))
    with torch.no_grad():
        return model.module_.eval().decoder_atac(z, library)[0].exp().numpy()


# ---------------------------------------------------------------- metrics


@pytest.fixture(scope="module")
def observed_predicted(small):
    observed = small["atac"][:40, :300]
    rng = np.random.default_rng(0)
    predicted = rng.gamma(1.0, size=observed.shape) + observed.toarray()
    predicted[:, :50] = 1.0  # ties, which roc_auc_score ranks by their average
    return observed, predicted


def test_metrics_match_sklearn_and_numpy(observed_predicted, monkeypatch):
    observed, predicted = observed_predicted
    dense = observed.toarray()
    r, cell_auc, peak_auc = (
        per_cell_pearson(observed, predicted),
        per_cell_auroc(observed, predicted),
        per_peak_auroc(observed, predicted),
    )
    for i in range(len(dense)):
        np.testing.assert_allclose(r[i], np.corrcoef(dense[i], predicted[i])[0, 1], rtol=1e-10)
        np.testing.assert_allclose(cell_auc[i], roc_auc_score(dense[i] > 0, predicted[i]))
    for j in range(dense.shape[1]):
        is_open = dense[:, j] > 0
        if 0 < is_open.sum() < len(is_open):
            np.testing.assert_allclose(peak_auc[j], roc_auc_score(is_open, predicted[:, j]))
        else:  # undefined without both classes
            assert np.isnan(peak_auc[j])
    assert np.isfinite(peak_auc).sum() > 50
    # Dense input, and blocks of 7 rows: the same numbers.
    monkeypatch.setattr(imputation_metrics, "BLOCK_ENTRIES", 7 * dense.shape[1])
    np.testing.assert_allclose(per_cell_auroc(dense, predicted), cell_auc)
    np.testing.assert_allclose(per_cell_pearson(dense, predicted), r)


def test_metrics_refuse_mismatched_shapes(observed_predicted):
    observed, predicted = observed_predicted
    with pytest.raises(ValueError, match="differ in shape"):
        per_cell_pearson(observed, predicted[:, :-1])


# ---------------------------------------------------------------- imputation options


def test_posterior_averaging_is_the_mean_of_per_sample_profiles(fitted, small):
    atac, rna = small["atac"][:12], small["rna"][:12]
    averaged = fitted.impute_atac(atac, n_samples=4, random_state=3, calibrate=False)
    module = fitted.module_.eval()
    x = torch.from_numpy(fitted.atac_encoder_input_.transform(atac).astype(np.float32))
    with torch.no_grad():
        mean, logvar, _ = (t.numpy() for t in module.encoder_atac(x))
    eps = check_random_state(3).standard_normal((12, 4, mean.shape[1]))
    totals = np.asarray(atac.sum(axis=1)).ravel()
    expected = np.stack(
        [
            np.vstack(
                [_decode(fitted, z[None], np.log(t)) for z, t in zip(zs, totals, strict=True)]
            )
            for zs in np.moveaxis(mean[:, None] + eps * np.exp(0.5 * logvar)[:, None], 1, 0)
        ]
    ).mean(0)
    np.testing.assert_allclose(averaged, expected, rtol=2e-4, atol=1e-8)
    # Same seed, same result; the mean code is not the average of samples.
    again = fitted.impute_atac(atac, n_samples=4, random_state=3, calibrate=False)
    np.testing.assert_array_equal(again, averaged)
    assert not np.allclose(averaged, fitted.impute_atac(atac, calibrate=False), rtol=1e-3)
    # From RNA: samples of the RNA code, each carried by the ridge map.
    from_rna = fitted.impute_atac(X_rna=rna, n_samples=3, random_state=0, peaks=[0, 9])
    assert from_rna.shape == (12, 2) and np.isfinite(from_rna).all()


def test_neighbour_maps_decode_the_nearest_training_cells(fitted, small):
    rna = small["rna"][250:262]
    codes = fitted.training_codes_
    n = FAST["n_latent"]
    # The training codes are the posterior means of the training cells.
    np.testing.assert_allclose(
        codes[:, :n], fitted.set_params(embedding="rna").transform(small["rna"]), rtol=1e-5
    )
    query = fitted.set_params(embedding="rna").transform(rna)
    distances = ((query[:, None, :] - codes[None, :, :n]) ** 2).sum(-1)
    nearest = np.argsort(distances, axis=1)[:, :5]
    library = fitted.atac_log_library_median_
    mean_code = codes[nearest, n:].mean(1)
    np.testing.assert_allclose(
        fitted.impute_atac(X_rna=rna, rna_map="knn_code", n_neighbors=5, calibrate=False),
        _decode(fitted, mean_code, library),
        rtol=2e-4,
        atol=1e-8,
    )
    profiles = np.stack([_decode(fitted, codes[nearest[:, j], n:], library) for j in range(5)])
    got = fitted.impute_atac(X_rna=rna, rna_map="knn_profile", n_neighbors=5, calibrate=False)
    np.testing.assert_allclose(got, profiles.mean(0), rtol=2e-4, atol=1e-8)


def test_mixtures_are_the_same_in_any_blocks(fitted, small, monkeypatch):
    rna = small["rna"][:9]
    full = fitted.impute_atac(X_rna=rna, rna_map="knn_profile", n_neighbors=4)
    monkeypatch.setattr(_accessibility, "BLOCK_ENTRIES", 1000)
    np.testing.assert_allclose(
        fitted.impute_atac(X_rna=rna, rna_map="knn_profile", n_neighbors=4), full, rtol=1e-5
    )


def test_imputation_options_are_checked(fitted, small):
    rna = small["rna"][:3]
    with pytest.raises(ValueError, match="rna_map must be one of"):
        fitted.impute_atac(X_rna=rna, rna_map="mlp")
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        fitted.impute_atac(X_rna=rna, n_samples=0)
    with pytest.raises(ValueError, match="n_neighbors must be a positive integer"):
        fitted.impute_atac(X_rna=rna, rna_map="knn_code", n_neighbors=1.5)


def test_peak_intercepts_enter_the_decoder_and_the_calibration(with_intercepts, fitted, small):
    model = with_intercepts
    intercept = model.module_.decoder_atac.intercept.detach().numpy()
    assert intercept.shape == (small["atac"].shape[1],) and np.abs(intercept).max() > 0
    # Off by default: the faithful decoder has no such parameter.
    assert "decoder_atac.intercept" not in fitted.module_.state_dict()
    atac = small["atac"][:30]
    module = model.module_.eval()
    x = torch.from_numpy(model.atac_encoder_input_.transform(atac).astype(np.float32))
    with torch.no_grad():
        z = module.encoder_atac(x)[0].numpy()
    logits = z @ module.decoder_atac.feature_embedding.detach().numpy() + intercept
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    expected = softmax / softmax.sum(1, keepdims=True) * np.asarray(atac.sum(1))
    np.testing.assert_allclose(
        model.impute_atac(atac, calibrate=False), expected, rtol=2e-4, atol=1e-8
    )
    # The calibration still brings the training cells' peak totals to the observed ones.
    observed = np.asarray(small["atac"].sum(axis=0)).ravel()
    calibrated = model.impute_atac(small["atac"], calibrate=True).sum(axis=0)
    plain = model.impute_atac(small["atac"], calibrate=False).sum(axis=0)
    np.testing.assert_allclose(
        model.atac_peak_bias_, np.log((observed + 1) / (plain + 1)), rtol=1e-3, atol=1e-4
    )
    assert (
        np.abs(np.log1p(calibrated) - np.log1p(observed)).mean()
        < 0.5 * np.abs(np.log1p(plain) - np.log1p(observed)).mean()
    )


def test_new_state_survives_weights_only_files(with_intercepts, small, tmp_path):
    loaded = FactVAE.load(with_intercepts.save(tmp_path / "model.npz"), device="cpu")
    np.testing.assert_array_equal(loaded.training_codes_, with_intercepts.training_codes_)
    rna, atac = small["rna"][:10], small["atac"][:10]
    for kwargs in (
        {"X_rna": rna, "rna_map": "knn_profile", "calibrate": True},
        {"X_atac": atac, "n_samples": 2, "random_state": 0},
    ):
        np.testing.assert_array_equal(
            loaded.impute_atac(**kwargs), with_intercepts.impute_atac(**kwargs)
        )


def test_models_without_training_codes_still_impute_through_the_ridge(fitted, small):
    # What a model saved by an earlier version lacks.
    model = fitted
    codes = model.__dict__.pop("training_codes_")
    try:
        assert model.impute_atac(X_rna=small["rna"][:2], peaks=[0]).shape == (2, 1)
        with pytest.raises(ValueError, match="training_codes_"):
            model.impute_atac(X_rna=small["rna"][:2], rna_map="knn_code")
    finally:
        model.training_codes_ = codes


# ---------------------------------------------------------------- real data, held-out cells


@pytest.mark.slow
def test_default_imputation_from_rna_beats_the_baselines_on_held_out_cells(snare):
    """Every other cell of SNARE-seq, a small model (30 epochs), a stratified 75/25 split:
    held-out cells imputed from RNA with the defaults follow their observed counts better
    than the training mean profile does (per-cell r), and rank cells within a peak better
    than kNN in RNA PCA space (per-peak AUROC). The full harness is
    ``benchmarks/eval_imputation.py``.
    """
    cells = np.arange(0, len(snare.labels), 2)
    rna, atac, labels = snare.rna_hvg[cells], snare.atac[cells], snare.labels[cells]
    train, test = train_test_split(
        np.arange(len(cells)), test_size=0.25, stratify=labels, random_state=0
    )
    model = FactVAE(random_state=0, **{**FAST, "max_epochs": 30})
    model.fit(rna[train], atac[train], prior=snare.prior)
    imputed = model.impute_atac(X_rna=rna[test], library_size=1e4)
    fractions = sp.diags(1 / np.asarray(atac[train].sum(1)).ravel()) @ atac[train]
    mean = np.tile(np.asarray(fractions.mean(0)), (len(test), 1))
    pca = RNAEncoderInput(50, random_state=0).fit(rna[train])
    index = (
        NearestNeighbors(n_neighbors=15)
        .fit(pca.transform(rna[train]))
        .kneighbors(pca.transform(rna[test]), return_distance=False)
    )
    knn = np.vstack([np.asarray(fractions[row].mean(0)).ravel() for row in index])
    r = {
        name: np.nanmean(per_cell_pearson(atac[test], p))
        for name, p in [("imputed", imputed), ("mean", mean)]
    }
    auroc = {
        name: np.nanmean(per_peak_auroc(atac[test], p))
        for name, p in [("imputed", imputed), ("knn", knn)]
    }
    print(r, auroc)
    assert r["imputed"] > r["mean"]
    assert auroc["imputed"] > auroc["knn"] + 0.005
