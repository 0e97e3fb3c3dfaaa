"""Sample (batch) covariates: the no-batch model is unchanged, the conditioning does what it
says, labels are checked, routed by cells through scikit-learn's tools and persisted."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import DATA, FAST, assert_trained_close, data_script, posterior_means
from sklearn import config_context
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from factvae_sk import PAPER_SETTINGS, FactVAE
from factvae_sk.analysis._accessibility import calibration_bias
from factvae_sk.nn._modules import FactVAEModule

pytestmark = pytest.mark.usefixtures("one_thread")


def _donors(n):
    return np.array(["d1", "d2", "d3"])[np.arange(n) % 3]


@pytest.fixture(scope="module")
def cells(small):
    return small["rna"][:150], small["atac"][:150], _donors(150)


@pytest.fixture(scope="module")
def batched(cells):
    rna, atac, donor = cells
    return FactVAE(random_state=0, batch_conditioning="encoder_decoder", **FAST).fit(
        rna, atac, batch=donor
    )


# ---------------------------------------------------------------- without batch: unchanged


def test_no_batch_reproduces_the_model_before_batches():
    """Outputs of a fit without batch equal those saved from the code before the option
    existed (tests/data/make_no_batch_reference.py, run on main before the change)."""
    ref = data_script("make_no_batch_reference")
    rna, atac, prior = ref.reference_data()
    # The file was written with the defaults of then, the published method's.
    model = FactVAE(**{**PAPER_SETTINGS, **ref.SETTINGS}).fit(rna, atac, prior=prior, batch=None)
    expected = np.load(DATA / "no_batch_reference.npz")
    for name, value in ref.reference_outputs(model, rna, atac).items():
        # Bit-identical on the machine that wrote the file; elsewhere up to float32
        # reordering over the fit's steps (conftest.TRAINED_RTOL says how large).
        assert_trained_close(value, expected[name], name)


def test_no_batch_builds_the_same_module(small):
    model = FactVAE(random_state=0, **FAST).fit(small["rna"][:100], small["atac"][:100])
    plain = FactVAEModule(20, small["rna"].shape[1], 20, small["atac"].shape[1], 8, (64,), (32,))
    shapes = {k: v.shape for k, v in model.module_.state_dict().items()}
    assert shapes == {k: v.shape for k, v in plain.state_dict().items()}
    assert model.batch_categories_ is None
    assert model.module_.n_batch == 0 and not model.module_.batch_in_encoders


# ---------------------------------------------------------------- the conditioning


def test_encoders_and_decoders_get_the_samples(batched, small):
    module = batched.module_
    assert list(batched.batch_categories_) == ["d1", "d2", "d3"]
    # Encoder inputs: 20 components + 3 one-hot columns; decoders: one offset row per sample.
    assert module.encoder_rna.body[0].in_features == 23
    assert module.encoder_atac.body[0].in_features == 23
    assert module.decoder_rna.batch_effect.shape == (3, small["rna"].shape[1])
    assert module.decoder_atac.batch_effect.shape == (3, small["atac"].shape[1])
    decoder_only = FactVAE(random_state=0, batch_conditioning="decoder", **FAST)
    decoder_only.fit(small["rna"][:100], small["atac"][:100], batch=_donors(100))
    assert decoder_only.module_.encoder_rna.body[0].in_features == 20
    assert decoder_only.module_.decoder_rna.batch_effect.shape[0] == 3


def test_decoder_offsets_against_numpy():
    torch.manual_seed(0)
    module = FactVAEModule(5, 7, 4, 6, n_latent=3, rna_hidden_sizes=(8,), n_batch=2).eval()
    with torch.no_grad():
        module.decoder_rna.batch_effect.normal_()
    x, batch = torch.randn(4, 5), torch.eye(2)[[0, 1, 1, 0]]
    library = torch.log(torch.tensor([10.0, 20.0, 30.0, 40.0]))
    out = module(x, library, batch=batch)["rna"]
    z = module.encoder_rna(torch.cat([x, batch], 1))[0].detach().numpy()
    logits = z @ module.decoder_rna.feature_embedding.detach().numpy()
    logits += module.decoder_rna.batch_effect.detach().numpy()[[0, 1, 1, 0]]
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True) * [[10], [20], [30], [40]]
    np.testing.assert_allclose(out["log_mu"].exp().detach().numpy(), expected, rtol=1e-5)


def test_batch_dispersion_against_numpy():
    """Per-sample dispersion and zero-inflation offsets enter the logits as documented, and
    start at zero: at initialization the module equals one without them."""
    torch.manual_seed(0)
    plain = FactVAEModule(5, 7, 4, 6, n_latent=3, rna_hidden_sizes=(8,), n_batch=2).eval()
    torch.manual_seed(0)
    module = FactVAEModule(
        5, 7, 4, 6, n_latent=3, rna_hidden_sizes=(8,), n_batch=2, batch_dispersion=True
    ).eval()
    x, batch = torch.randn(4, 5), torch.eye(2)[[0, 1, 1, 0]]
    library = torch.log(torch.tensor([10.0, 20.0, 30.0, 40.0]))
    with torch.no_grad():
        before, expected = module(x, library, batch=batch), plain(x, library, batch=batch)
    for key in ("log_mu", "log_theta", "pi_logits"):
        assert torch.equal(before["rna"][key], expected["rna"][key]), key
    decoder = module.decoder_rna
    with torch.no_grad():
        decoder.batch_dispersion.normal_()
        decoder.batch_dropout.normal_()
        out = module(x, library, batch=batch)["rna"]
    rows = [0, 1, 1, 0]
    z = module.encoder_rna(torch.cat([x, batch], 1))[0].detach().numpy()
    logits = z @ decoder.dispersion_embedding.detach().numpy()
    logits += decoder.batch_dispersion.detach().numpy()[rows]
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(out["log_theta"].numpy(), softmax, rtol=1e-5)
    pi = (
        z @ decoder.dropout_embedding.detach().numpy()
        + decoder.batch_dropout.detach().numpy()[rows]
    )
    np.testing.assert_allclose(out["pi_logits"].numpy(), pi, rtol=1e-5, atol=1e-6)


def test_batch_dispersion_is_learned_and_persisted(cells, tmp_path):
    rna, atac, donor = cells
    model = FactVAE(random_state=0, batch_dispersion=True, **FAST).fit(rna, atac, batch=donor)
    for decoder, n_features in (
        (model.module_.decoder_rna, rna.shape[1]),
        (model.module_.decoder_atac, atac.shape[1]),
    ):
        for offsets in (decoder.batch_dispersion, decoder.batch_dropout):
            assert offsets.shape == (3, n_features)
            # Trained: the samples' rows moved off zero, each its own way.
            values = offsets.detach().numpy()
            assert np.abs(values).max() > 0 and not np.allclose(values[0], values[1])
    expected = model.score(rna, atac, batch=donor)
    joblib.dump(model, tmp_path / "model.joblib")
    for loaded in (
        joblib.load(tmp_path / "model.joblib"),
        FactVAE.load(model.save(tmp_path / "m")),
    ):
        assert loaded.module_.decoder_atac.batch_dropout is not None
        assert loaded.score(rna, atac, batch=donor) == expected
    without = FactVAE(random_state=0, **FAST).fit(rna, atac, batch=donor)
    assert without.module_.decoder_rna.batch_dispersion is None
    assert without.score(rna, atac, batch=donor) != expected


def test_batch_is_needed_and_checked(batched, cells):
    rna, atac, donor = cells
    with pytest.raises(ValueError, match=r"not seen at fit: \['d9'\]"):
        batched.transform(rna[:3], batch=["d1", "d9", "d2"])
    with pytest.raises(ValueError, match="fitted with batch"):
        batched.transform(rna)
    with pytest.raises(ValueError, match="fitted with batch"):
        batched.score(rna, atac)
    with pytest.raises(ValueError, match="not seen at fit"):
        batched.impute_atac(atac[:3], batch=donor[:3], decode_batch="nowhere")
    with pytest.raises(ValueError, match=r"shape \(150,\)"):
        batched.transform(rna, batch=donor[:10])
    with pytest.raises(ValueError, match="missing labels"):
        FactVAE(**FAST).fit(rna, atac, batch=np.where(np.arange(150) < 5, None, donor))
    plain = FactVAE(random_state=0, **FAST).fit(rna[:60], atac[:60])
    with pytest.raises(ValueError, match="fitted without batch"):
        plain.transform(rna[:60], batch=donor[:60])
    original = donor.copy()
    batched.transform(rna, batch=donor)
    assert np.array_equal(donor, original)


@pytest.fixture(scope="module")
def decoder_batched(small):
    rna, atac, donor = small["rna"][:120], small["atac"][:120], _donors(120)
    return FactVAE(random_state=0, **FAST).fit(rna, atac, batch=donor), rna, atac, donor


def test_transform_integrates_the_samples_as_a_direct_harmony(decoder_batched):
    """After a fit with batch, transform is Harmony (fitted on the training cells' posterior
    means, per modality) applied to the encoders' posterior means: computed here from the
    module and the Harmony functions directly."""
    from sklearn.utils import check_random_state

    from factvae_sk.data._batches import CODE_HARMONY
    from factvae_sk.data._harmony import fit_harmony, harmony_correct

    model, rna, atac, donor = decoder_batched
    codes = np.searchsorted(model.batch_categories_, donor)
    raw = {"rna": posterior_means(model, rna), "atac": posterior_means(model, atac, "atac")}
    seed = check_random_state(0).randint(np.iinfo(np.int32).max)
    expected = {
        name: harmony_correct(z, codes, fit_harmony(z, codes, 3, random_state=seed, **CODE_HARMONY))
        for name, z in raw.items()
    }
    np.testing.assert_allclose(model.transform(rna, batch=donor), expected["rna"], atol=1e-5)
    joint = model.set_params(embedding="joint").transform(rna, atac, batch=donor)
    model.set_params(embedding="rna")
    np.testing.assert_allclose(joint, np.hstack([expected["rna"], expected["atac"]]), atol=1e-5)
    assert not np.allclose(expected["rna"], raw["rna"], atol=1e-3)  # it did correct


def test_transform_of_new_cells_from_a_known_sample(decoder_batched):
    """A cell's integrated code depends only on the cell and its sample: new cells of a
    known sample map as they would among the training cells; an unseen sample is refused,
    and so is a call without the samples."""
    model, rna, _, donor = decoder_batched
    every = model.transform(rna, batch=donor)
    few = model.transform(rna[[5, 17, 40]], batch=donor[[5, 17, 40]])
    # Equal up to float32 rounding: the encoders' products of 3 rows and of 120 rows may
    # round differently on some vector kernels.
    np.testing.assert_allclose(few, every[[5, 17, 40]], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"not seen at fit: \['d7'\]"):
        model.transform(rna[:2], batch=["d1", "d7"])
    with pytest.raises(ValueError, match="fitted with batch"):
        model.transform(rna)
    with pytest.raises(ValueError, match="not seen at fit"):
        model.transform(rna, batch=["x"] * 120)


def test_without_batch_transform_is_the_posterior_mean(small):
    """The faithful path: without batch nothing is fitted after training and transform is
    the encoder's posterior mean (the bit-identical reference is checked above)."""
    rna, atac = small["rna"][:100], small["atac"][:100]
    model = FactVAE(random_state=0, **FAST).fit(rna, atac)
    assert model.batch_code_harmony_ is None
    mean = posterior_means(model, rna)
    np.testing.assert_allclose(model.transform(rna), mean, rtol=1e-6, atol=1e-6)


def test_counterfactual_imputation(batched, cells):
    """Decoding cells "as if in sample b" changes each peak by exp(B[b] - B[own]), up to the
    cell's normalizer; decoding in the cells' own sample is the default."""
    _, atac, donor = cells
    own = batched.impute_atac(atac[:12], batch=donor[:12])
    as_d2 = batched.impute_atac(atac[:12], batch=donor[:12], decode_batch="d2")
    per_cell = batched.impute_atac(atac[:12], batch=donor[:12], decode_batch=donor[:12])
    assert np.array_equal(own, per_cell)
    in_d2 = donor[:12] == "d2"
    np.testing.assert_allclose(as_d2[in_d2], own[in_d2], rtol=1e-6)
    effects = batched.module_.decoder_atac.batch_effect.detach().numpy()
    own_index = np.searchsorted(batched.batch_categories_, donor[:12])
    shift = np.log(as_d2) - np.log(own) - (effects[1] - effects[own_index])
    assert np.ptp(shift, axis=1).max() < 1e-3  # a per-cell constant: the normalizer
    assert not np.allclose(as_d2[~in_d2], own[~in_d2])
    from_rna = batched.impute_atac(X_rna=cells[0][:12], batch=donor[:12], peaks=[0, 1])
    assert from_rna.shape == (12, 2)


def test_grouped_calibration_against_per_group_sums():
    rng = np.random.default_rng(0)
    z, embedding = rng.normal(size=(30, 3)), rng.normal(size=(3, 9))
    library, totals = np.log(rng.uniform(5, 50, 30)), rng.uniform(0, 40, 9)
    groups, effects = np.arange(30) % 2, rng.normal(size=(2, 9))
    bias = calibration_bias(
        z, library, torch.tensor(embedding, dtype=torch.float32), totals, None, groups, effects
    )
    logits = z @ embedding + effects[groups]
    mu = np.exp(logits) / np.exp(logits).sum(1, keepdims=True) * np.exp(library)[:, None]
    np.testing.assert_allclose(bias, np.log((totals + 1) / (mu.sum(0) + 1)), rtol=1e-4)


# ---------------------------------------------------------------- scikit-learn tools


class _RecordingFactVAE(FactVAE):
    """Checks that the batch each call gets belongs to the cells it gets (labels are a
    function of each cell's RNA total, so the check needs no cell positions)."""

    def fit(self, X_rna, X_atac=None, prior=None, *, y=None, batch=None):
        assert np.array_equal(batch, _depth_label(X_rna))
        return super().fit(X_rna, X_atac, prior, y=y, batch=batch)

    def score(self, X_rna, X_atac=None, sample_weight=None, *, y=None, batch=None):
        assert np.array_equal(batch, _depth_label(X_rna))
        return super().score(X_rna, X_atac, sample_weight, y=y, batch=batch)


def _depth_label(X_rna):
    return np.where(np.asarray(X_rna.sum(1)).ravel() % 2 == 0, "even", "odd")


def test_grid_search_routes_batch_by_cells(small):
    rna, atac = small["rna"][:120], small["atac"][:120]
    batch = _depth_label(rna)
    with config_context(enable_metadata_routing=True):
        model = _RecordingFactVAE(random_state=0, **FAST)
        model.set_fit_request(batch=True).set_score_request(batch=True)
        search = GridSearchCV(model, {"n_latent": [4, 8]}, cv=2, error_score="raise")
        search.fit(rna, atac, batch=batch)
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()
        assert list(search.best_estimator_.batch_categories_) == ["even", "odd"]

        pipe = Pipeline([("factvae", clone_with_transform_request(model))])
        pipe.fit(rna, atac, batch=batch)
        assert pipe.transform(rna, batch=batch).shape == (120, 8)
    # Without routing, the step-name form reaches fit.
    pipe = Pipeline([("factvae", FactVAE(random_state=0, **FAST))])
    pipe.fit(rna, atac, factvae__batch=batch)
    assert list(pipe.named_steps["factvae"].batch_categories_) == ["even", "odd"]


def clone_with_transform_request(model):
    from sklearn.base import clone

    return clone(model).set_transform_request(batch=True)


def test_set_output_pandas(batched, cells):
    rna, _, donor = cells
    model = pickle.loads(pickle.dumps(batched)).set_output(transform="pandas")
    frame = model.transform(pd.DataFrame(rna.toarray()), batch=pd.Series(donor))
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns[:2]) == ["factvae_rna0", "factvae_rna1"]
    np.testing.assert_array_equal(frame.to_numpy(), batched.transform(rna, batch=donor))


# ---------------------------------------------------------------- persistence


@pytest.mark.parametrize("labels", [["d1", "d2", "d3"], [7, 3, 5]])
def test_joblib_and_weights_only_keep_the_samples(cells, tmp_path, labels):
    rna, atac, _ = cells
    batch = np.asarray(labels)[np.arange(150) % 3]
    model = FactVAE(random_state=0, **FAST).fit(rna, atac, batch=batch)
    expected = model.transform(rna, batch=batch)
    imputed = model.impute_atac(atac[:5], batch=batch[:5], decode_batch=labels[0])
    joblib.dump(model, tmp_path / "model.joblib")
    for loaded in (
        joblib.load(tmp_path / "model.joblib"),
        FactVAE.load(model.save(tmp_path / "m")),
    ):
        assert list(loaded.batch_categories_) == sorted(labels)
        assert np.array_equal(loaded.transform(rna, batch=batch), expected)
        again = loaded.impute_atac(atac[:5], batch=batch[:5], decode_batch=labels[0])
        assert np.array_equal(again, imputed)
        with pytest.raises(ValueError, match="not seen at fit"):
            loaded.transform(rna[:2], batch=[99, 99] if labels[0] == 7 else ["x", "x"])


def test_warm_start_and_validation_with_batch(cells):
    rna, atac, donor = cells
    model = FactVAE(random_state=0, warm_start=True, validation_fraction=0.2, **FAST)
    model.fit(rna, atac, batch=donor).fit(rna, atac, batch=donor)
    assert len(model.history_) == 2 * FAST["max_epochs"]
    assert np.isfinite(model.history_[:, "valid_elbo"]).all()
    with pytest.raises(ValueError, match="fitted with batch"):
        model.fit(rna, atac)


def test_centered_inputs(cells, tmp_path):
    """batch_center_inputs moves every sample's mean encoder input to the same point."""
    rna, atac, donor = cells
    model = FactVAE(random_state=0, batch_conditioning="decoder", batch_center_inputs=True, **FAST)
    model.fit(rna, atac, batch=donor)
    onehot = np.eye(3, dtype=np.float32)[np.searchsorted(model.batch_categories_, donor)]
    dataset = model._dataset(rna, atac, with_counts=False, batch_onehot=onehot)
    for name, raw in (
        ("rna", model.rna_encoder_input_.transform(rna)),
        ("atac", model.atac_encoder_input_.transform(atac)),
    ):
        means = np.stack([raw[donor == d].mean(0) for d in ("d1", "d2", "d3")])
        np.testing.assert_allclose(
            model.batch_input_offsets_[name], means - means.mean(0), rtol=1e-4, atol=1e-5
        )
        centered = dataset.modalities[name][0]
        sample_means = np.stack([centered[donor == d].mean(0) for d in ("d1", "d2", "d3")])
        np.testing.assert_allclose(sample_means, sample_means[[0, 0, 0]], atol=1e-4)
    with pytest.raises(ValueError, match="fitted with batch"):
        model.transform(rna)  # the inputs need each cell's sample, even decoder-only
    loaded = FactVAE.load(model.save(tmp_path / "centered"))
    assert np.array_equal(loaded.transform(rna, batch=donor), model.transform(rna, batch=donor))


def test_differential_peaks_and_motifs_decode_in_a_reference_sample(batched, cells):
    """decode_batch decodes every cell in one sample: the group means equal those of
    impute_atac decoding the cells in that sample, and the samples' peak offsets no
    longer differ between groups drawn from different samples."""
    _, atac, donor = cells
    cells_used, peaks = np.arange(60), np.arange(40)
    groups = np.where(donor[cells_used] == "d1", "a", "b")  # groups aligned with samples
    table = batched.differential_peaks(
        atac[cells_used], groups, batch=donor[cells_used], decode_batch="d2", peaks=peaks
    )
    imputed = batched.impute_atac(
        atac[cells_used], batch=donor[cells_used], decode_batch="d2", peaks=peaks,
        library_size=1e4,
    )  # fmt: skip
    got = table[table.group == "a"].set_index("peak").sort_index()
    np.testing.assert_allclose(got["mean_group"], imputed[groups == "a"].mean(0), rtol=1e-4)
    np.testing.assert_allclose(got["mean_reference"], imputed[groups == "b"].mean(0), rtol=1e-4)
    with pytest.raises(ValueError, match="one sample label"):
        batched.differential_peaks(atac[:6], groups[:6], batch=donor[:6], decode_batch=donor[:6])
    with pytest.raises(ValueError, match="not seen at fit"):
        batched.differential_peaks(atac[:6], groups[:6], batch=donor[:6], decode_batch="d9")
    rng = np.random.default_rng(0)
    matches = (rng.random((atac.shape[1], 3)) < 0.2).astype(np.float32)
    gc = rng.uniform(0.3, 0.7, atac.shape[1])
    kwargs = dict(matches=matches, gc=gc, n_background=5, batch=donor[cells_used])
    in_d2 = batched.motif_deviations(atac[cells_used], decode_batch="d2", **kwargs)
    own = batched.motif_deviations(atac[cells_used], **kwargs)
    assert in_d2.z.shape == own.z.shape == (60, 3)
    assert not np.allclose(in_d2.deviations, own.deviations)
