"""Harmony on the encoder inputs (``batch_center_inputs="harmony"``): the algorithm against
hand-derived limits, a dense ridge and harmonypy; its per-cell mapping; the estimator."""

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from sklearn.utils._param_validation import InvalidParameterError

from benchmarks.harness.batch_metrics import cluster_agreement, knn_mixing
from factvae_sk import FactVAE
from factvae_sk.data import _batches
from factvae_sk.data._harmony import _ridge_coefficients, fit_harmony, harmony_correct

pytestmark = pytest.mark.usefixtures("one_thread")

# Three well separated cell types in three samples of very unequal composition, each sample
# shifted as a whole.
COMPOSITION = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.34, 0.33, 0.33]])


@pytest.fixture(scope="module")
def mixture():
    rng = np.random.default_rng(0)
    d, per_sample = 10, 200
    centers = rng.normal(size=(3, d)) * 6
    shifts = rng.normal(size=(3, d)) * 1.5
    batch = np.repeat(np.arange(3), per_sample)
    types = np.concatenate([rng.choice(3, per_sample, p=p) for p in COMPOSITION])
    Z = centers[types] + rng.normal(size=(len(types), d)) + shifts[batch]
    return Z, batch, types


def _type_misalignment(Z, batch, types):
    """Mean distance of each (type, sample) mean from that type's mean over samples (the
    simulated within-type sd is 1): 0 when every sample puts each type in the same place."""
    out = []
    for t in np.unique(types):
        means = np.stack([Z[(types == t) & (batch == b)].mean(0) for b in np.unique(batch)])
        out.append(np.linalg.norm(means - means.mean(0), axis=1).mean())
    return float(np.mean(out))


def _centred(Z, batch):
    onehot = np.eye(batch.max() + 1, dtype=np.float32)[batch]
    return Z - onehot @ _batches.input_offsets(Z, onehot)


# ---------------------------------------------------------------- the algorithm


def test_one_cluster_without_penalty_is_mean_centring(mixture):
    """K = 1, lamb = 0: one cluster holding every cell, a plain regression on the sample:
    the correction is the per-sample mean offset of batch_center_inputs=True."""
    Z, batch, _ = mixture
    state = fit_harmony(Z, batch, 3, n_clusters=1, lamb=0.0, random_state=0)
    np.testing.assert_allclose(harmony_correct(Z, batch, state), _centred(Z, batch), atol=1e-5)


def test_ridge_matches_a_dense_solve():
    """The closed-form per-cluster ridge equals harmonypy's normal equations solved densely:
    (Phi R Phi^T + diag(0, lamb, ...)) W = Phi R Z, intercept row dropped."""
    rng = np.random.default_rng(1)
    n, d, K, B, lamb = 50, 4, 3, 3, 1.5
    Z = rng.normal(size=(n, d))
    codes = rng.integers(0, B, n)
    R = rng.dirichlet(np.ones(K), size=n)
    phi = np.column_stack([np.ones(n), np.eye(B)[codes]])  # intercept, one-hot
    per_cluster = rng.uniform(0.1, 5.0, size=(K, B))  # lamb=None's per-cluster penalties
    for penalty in (lamb, per_cluster):
        got = _ridge_coefficients(Z, R, codes, B, penalty)
        for k in range(K):
            diagonal = np.broadcast_to(penalty, (K, B))[k]
            gram = phi.T @ (R[:, k, None] * phi) + np.diag([0.0, *diagonal])
            W = np.linalg.solve(gram, phi.T @ (R[:, k, None] * Z))
            np.testing.assert_allclose(got[k], W[1:], rtol=1e-10, atol=1e-12)


def test_composition_aware(mixture):
    """Unequal composition: mean centring moves each sample by its composition and leaves
    the types misaligned across samples; Harmony aligns them type by type."""
    Z, batch, types = mixture
    state = fit_harmony(Z, batch, 3, random_state=0)
    harmony, centred = harmony_correct(Z, batch, state), _centred(Z, batch)
    objective = state["objective"]  # falls, then stops at the first round that does not
    assert objective[1] < objective[0] and objective[-1] < objective[0]
    assert np.all(np.diff(objective)[:-1] < 0) and len(objective) < 11
    assert cluster_agreement(harmony, types)[0] > 0.99
    assert knn_mixing(harmony, batch) > 0.7
    assert knn_mixing(centred, batch) < 0.1
    assert _type_misalignment(harmony, batch, types) < 0.2 * _type_misalignment(
        centred, batch, types
    )


def test_mapping_is_per_cell_and_reproducible(mixture):
    Z, batch, _ = mixture
    state = fit_harmony(Z, batch, 3, random_state=0)
    everything = harmony_correct(Z, batch, state)
    assert everything.dtype == np.float32
    subset = np.random.default_rng(2).permutation(len(Z))[:77]
    np.testing.assert_array_equal(
        harmony_correct(Z[subset], batch[subset], state), everything[subset]
    )
    again = fit_harmony(Z, batch, 3, random_state=0)
    for key in ("centroids", "coefficients"):
        np.testing.assert_array_equal(again[key], state[key])
    with pytest.raises(ValueError, match="batch_codes"):
        fit_harmony(Z, batch + 1, 3)
    # The estimated penalties (harmony 1.2's lamb=None) correct as well on this mixture.
    estimated = harmony_correct(Z, batch, fit_harmony(Z, batch, 3, lamb=None, random_state=0))
    assert knn_mixing(estimated, batch) > 0.7


def test_agrees_with_harmonypy(mixture):
    """harmonypy (the reference implementation) on the same data: the same type
    conservation and at least comparable mixing and type alignment (the mapping of the
    cells differs: harmonypy reports its in-loop correction)."""
    harmonypy = pytest.importorskip("harmonypy")
    Z, batch, types = mixture
    reference = harmonypy.run_harmony(
        Z, pd.DataFrame({"b": batch}), "b", lamb=1.0, verbose=False, random_state=0
    ).Z_corr
    reference = reference if reference.shape == Z.shape else reference.T  # harmonypy < 2: d x n
    ours = harmony_correct(Z, batch, fit_harmony(Z, batch, 3, random_state=0))
    assert cluster_agreement(reference, types)[0] == pytest.approx(
        cluster_agreement(ours, types)[0], abs=0.02
    )
    assert knn_mixing(ours, batch) > knn_mixing(reference, batch) - 0.05
    assert _type_misalignment(ours, batch, types) < 1.25 * _type_misalignment(
        reference, batch, types
    )
    assert knn_mixing(reference, batch) > 2 * knn_mixing(_centred(Z, batch), batch)


# ---------------------------------------------------------------- the estimator


def _donors(labels):
    """Samples of unequal composition: each cell line mostly in one donor."""
    rng = np.random.default_rng(0)
    lines = {line: i for i, line in enumerate(np.unique(labels))}
    main = np.array([lines[line] % 3 for line in labels])
    other = rng.integers(0, 3, len(labels))
    return np.array(["d1", "d2", "d3"])[np.where(rng.random(len(labels)) < 0.6, main, other)]


@pytest.fixture(scope="module")
def fitted(small):
    rna, atac = small["rna"][:150], small["atac"][:150]
    donor = _donors(small["labels"][:150])
    model = FactVAE(random_state=0, batch_center_inputs="harmony", **FAST)
    seen = {}
    original = model._run_training

    def spy(fit, dataset, gpus):  # keep the encoder inputs that training sees
        seen.update({name: m[0].copy() for name, m in dataset.modalities.items()})
        return original(fit, dataset, gpus)

    model._run_training = spy
    model.fit(rna, atac, batch=donor)
    del model._run_training
    return model, rna, atac, donor, seen


def test_estimator_trains_on_the_mapped_inputs(fitted):
    model, rna, atac, donor, seen = fitted
    assert model.batch_input_offsets_ is None and set(model.batch_input_harmony_) == {"rna", "atac"}
    codes = np.searchsorted(model.batch_categories_, donor)
    for name, X in (("rna", rna), ("atac", atac)):
        raw = getattr(model, f"{name}_encoder_input_").transform(X)
        state = model.batch_input_harmony_[name]
        assert state["coefficients"].shape == (len(state["centroids"]), 3, raw.shape[1])
        np.testing.assert_array_equal(seen[name], harmony_correct(raw, codes, state))
    onehot = np.eye(3, dtype=np.float32)[codes]
    dataset = model._dataset(rna, atac, with_counts=False, batch_onehot=onehot)
    for name in ("rna", "atac"):  # transform maps the training cells as fit did
        np.testing.assert_array_equal(dataset.modalities[name][0], seen[name])
    Z = model.transform(rna, batch=donor)
    np.testing.assert_allclose(model.transform(rna[:20], batch=donor[:20]), Z[:20], atol=1e-6)
    with pytest.raises(ValueError, match="fitted with batch"):
        model.transform(rna)
    # score and impute_atac read the same corrected inputs, and need batch too.
    assert np.isfinite(model.score(rna, atac, batch=donor))
    assert np.isfinite(model.impute_atac(atac[:5], batch=donor[:5])).all()
    with pytest.raises(ValueError, match="fitted with batch"):
        model.impute_atac(atac[:5])


def test_estimator_persists_and_outputs_pandas(fitted, tmp_path):
    model, rna, _, donor, _ = fitted
    Z = model.transform(rna, batch=donor)
    joblib.dump(model, tmp_path / "m.joblib")
    assert np.array_equal(joblib.load(tmp_path / "m.joblib").transform(rna, batch=donor), Z)
    loaded = FactVAE.load(model.save(tmp_path / "m"))
    for name, state in model.batch_input_harmony_.items():
        for key, value in state.items():
            np.testing.assert_array_equal(loaded.batch_input_harmony_[name][key], value)
    assert np.array_equal(loaded.transform(rna, batch=donor), Z)
    frame = model.set_output(transform="pandas").transform(rna, batch=donor)
    model.set_output(transform="default")
    assert isinstance(frame, pd.DataFrame) and np.array_equal(frame.to_numpy(), Z)


def test_estimator_mosaic_no_batch_and_bad_value(small):
    """Cells without a modality are left out of its Harmony fit and keep zero inputs;
    without batch the option changes nothing; an unknown value is refused."""
    rna, atac = small["rna"][:150], small["atac"][:150]
    donor = _donors(small["labels"][:150])
    has_atac = np.arange(150) % 4 != 0
    model = FactVAE(random_state=0, batch_center_inputs="harmony", **FAST)
    model.fit(rna, atac, batch=donor, atac_observed=has_atac)
    raw = model.atac_encoder_input_.transform(atac[has_atac])
    codes = np.searchsorted(model.batch_categories_, donor)
    seed = np.random.RandomState(0).randint(np.iinfo(np.int32).max)  # fit's seed
    expected = _batches.input_harmony(
        raw, np.eye(3, dtype=np.float32)[codes[has_atac]], random_state=seed
    )
    for key, value in expected.items():
        np.testing.assert_array_equal(model.batch_input_harmony_["atac"][key], value)
    onehot = np.eye(3, dtype=np.float32)[codes]
    observed = {"rna": np.ones(150, bool), "atac": has_atac}
    dataset = model._dataset(rna, atac, with_counts=False, batch_onehot=onehot, observed=observed)
    assert not dataset.modalities["atac"][0][~has_atac].any()
    np.testing.assert_array_equal(
        dataset.modalities["atac"][0][has_atac],
        harmony_correct(raw, codes[has_atac], model.batch_input_harmony_["atac"]),
    )
    # batch_harmony_theta reaches the Harmony fit.
    theta0 = FactVAE(random_state=0, batch_center_inputs="harmony", batch_harmony_theta=0, **FAST)
    theta0.fit(rna, atac, batch=donor)
    rna_inputs = theta0.rna_encoder_input_.transform(rna)
    expected = _batches.input_harmony(rna_inputs, onehot, random_state=seed, theta=0.0)
    np.testing.assert_array_equal(
        theta0.batch_input_harmony_["rna"]["coefficients"], expected["coefficients"]
    )
    # Without batch the option does nothing: the fit is the one without it.
    plain = FactVAE(random_state=0, **FAST).fit(rna, atac)
    unused = FactVAE(random_state=0, batch_center_inputs="harmony", **FAST).fit(rna, atac)
    assert unused.batch_input_harmony_ is None
    assert np.array_equal(unused.transform(rna), plain.transform(rna))
    with pytest.raises(InvalidParameterError, match="batch_center_inputs"):
        FactVAE(batch_center_inputs="combat", **FAST).fit(rna, atac, batch=donor)
