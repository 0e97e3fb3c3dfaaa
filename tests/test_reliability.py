"""Reliability: bad input gets a named error, the caller's data is never modified, training
faults stop loudly, interrupted and continued training, weights-only files."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import FAST
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback

from factvae_sk import FactVAE, GenePeakPrior
from factvae_sk.exceptions import FactVAEWarning, NonFiniteLossError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(small):
    """60 real cells, the HVGs and 300 peaks (every cell has counts in both)."""
    rna, atac, prior = small["rna"][:60], small["atac"][:60, :300], small["prior"][:, :300]
    assert (np.asarray(rna.sum(axis=1)) > 0).all() and (np.asarray(atac.sum(axis=1)) > 0).all()
    return rna, atac, prior


@pytest.fixture(scope="module")
def fitted(data):
    rna, atac, prior = data
    return FactVAE(embedding="joint", random_state=0, **FAST).fit(rna, atac, prior=prior)


def _set(matrix, i, j, value):
    out = matrix.toarray().astype(float)
    out[i, j] = value
    return out


def _zero_rows(matrix, rows):
    out = matrix.tolil(copy=True)
    out[rows, :] = 0
    return out.tocsr()


def _with_object(matrix, value):
    out = matrix.toarray().astype(object)
    out[0, 0] = value
    return out


# ---------------------------------------------------------------- bad input at fit

# (mutate (rna, atac, prior) -> (rna, atac, prior), error type, message pattern)
FIT_CASES = {
    "cells differ": (lambda r, a, p: (r, a[:-1], p), ValueError, "X_rna and X_atac must have"),
    "prior rows": (lambda r, a, p: (r, a, p[:-1]), ValueError, r"prior must have shape"),
    "prior transposed": (lambda r, a, p: (r, a, p.T), ValueError, r"prior must have shape"),
    "prior 1-D": (lambda r, a, p: (r, a, np.ones(p.shape[0])), ValueError, "prior: Expected 2D"),
    "prior negative": (
        lambda r, a, p: (r, a, -p),
        ValueError,
        r"prior has \d+ negative entries",
    ),
    "prior NaN": (lambda r, a, p: (r, a, _set(p, 0, 0, np.nan)), ValueError, "prior.*NaN"),
    "prior inf": (lambda r, a, p: (r, a, _set(p, 0, 0, np.inf)), ValueError, "prior.*infinity"),
    "prior wrapped negative": (
        lambda r, a, p: (r, a, GenePeakPrior(-p)),
        ValueError,
        "prior has .* negative",
    ),
    "prior text": (
        lambda r, a, p: (r, a, _with_object(p, "link")),
        TypeError,
        "prior must hold numeric",
    ),
    "rna negative": (lambda r, a, p: (-r, a, p), ValueError, r"Negative values .*X_rna"),
    "atac negative sparse": (
        lambda r, a, p: (r, a.multiply(-1).tocsr(), p),
        ValueError,
        r"Negative values .*X_atac",
    ),
    "rna NaN": (lambda r, a, p: (_set(r, 0, 0, np.nan), a, p), ValueError, "X_rna.*NaN"),
    "atac inf": (lambda r, a, p: (r, _set(a, 0, 0, np.inf), p), ValueError, "X_atac.*infinity"),
    "rna -inf": (lambda r, a, p: (_set(r, 1, 1, -np.inf), a, p), ValueError, "X_rna.*infinity"),
    "rna zero cell": (
        lambda r, a, p: (_zero_rows(r, [5]), a, p),
        ValueError,
        r"X_rna has 1 cell\(s\) with zero total counts \(first rows: 5\).*log library",
    ),
    "atac zero cells": (
        lambda r, a, p: (r, _zero_rows(a, [0, 5, 9]), p),
        ValueError,
        r"X_atac has 3 cell\(s\) with zero total counts \(first rows: 0, 5, 9\)",
    ),
    "no cells": (lambda r, a, p: (r[:0], a[:0], p), ValueError, r"X_rna: .*0 sample"),
    "one cell": (
        lambda r, a, p: (r[:1], a[:1], p),
        ValueError,
        r"X_rna: .*1 sample.*minimum of 2",
    ),
    "no genes": (lambda r, a, p: (r[:, :0], a, p[:0]), ValueError, r"X_rna: .*0 feature"),
    "no peaks": (lambda r, a, p: (r, a[:, :0], p[:, :0]), ValueError, r"X_atac: .*0 feature"),
    "rna text dtype": (
        lambda r, a, p: (r.toarray().astype(str), a, p),
        TypeError,
        "X_rna must hold numeric counts, got an array of dtype <U",
    ),
    "rna object with text": (
        lambda r, a, p: (_with_object(r, "many"), a, p),
        TypeError,
        "X_rna must hold numeric counts.*could not convert",
    ),
    "atac object with dict": (
        lambda r, a, p: (r, _with_object(a, {"n": 1}), p),
        TypeError,
        "X_atac must hold numeric counts",
    ),
}


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_bad_input_at_fit_is_named(data, case):
    mutate, error, message = FIT_CASES[case]
    rna, atac, prior = mutate(*data)
    model = FactVAE(**FAST)
    with pytest.raises(error, match=message):
        model.fit(rna, atac, prior=prior)
    assert not hasattr(model, "net_")


def test_object_dtype_holding_numbers_is_accepted(data):
    rna, atac, _ = data
    as_float = FactVAE(random_state=0, **FAST).fit(rna.toarray(), atac.toarray())
    as_object = FactVAE(random_state=0, **FAST).fit(
        rna.toarray().astype(object), atac.toarray().astype(object)
    )
    assert np.array_equal(as_float.transform(rna), as_object.transform(rna))


# ---------------------------------------------------------------- bad input after fit

AFTER_FIT_CASES = {
    "transform genes": (lambda m, r, a: m.transform(r[:, :-1], a), ValueError, "X_rna: X has"),
    "transform peaks": (lambda m, r, a: m.transform(r, a[:, :-1]), ValueError, "X_atac has 299"),
    "impute peaks": (lambda m, r, a: m.impute_atac(a[:, :-1]), ValueError, "X_atac has 299"),
    "score peaks": (lambda m, r, a: m.score(r, a[:, 1:]), ValueError, "X_atac has 299"),
    "transform NaN": (lambda m, r, a: m.transform(_set(r, 0, 0, np.nan), a), ValueError, "NaN"),
    "score negative": (lambda m, r, a: m.score(r, -a), ValueError, "Negative values .*X_atac"),
    "score zero cell": (
        lambda m, r, a: m.score(_zero_rows(r, [2]), a),
        ValueError,
        r"X_rna has 1 cell\(s\) with zero total counts \(first rows: 2\)",
    ),
    "impute zero cell": (
        lambda m, r, a: m.impute_atac(_zero_rows(a, [3])),
        ValueError,
        r"X_atac has 1 cell\(s\) with zero total",
    ),
    "transform no cells": (lambda m, r, a: m.transform(r[:0], a[:0]), ValueError, "0 sample"),
    "transform text": (
        lambda m, r, a: m.transform(r.toarray().astype(str), a),
        TypeError,
        "X_rna must hold numeric",
    ),
    "transform cells differ": (
        lambda m, r, a: m.transform(r, a[:-1]),
        ValueError,
        "X_rna and X_atac must have the same cells",
    ),
    "regulatory pairs shape": (
        lambda m, r, a: m.regulatory_scores(np.ones((3, 3))),
        ValueError,
        "prior must have shape",
    ),
}


@pytest.mark.parametrize("case", list(AFTER_FIT_CASES))
def test_bad_input_after_fit_is_named(fitted, data, case):
    call, error, message = AFTER_FIT_CASES[case]
    rna, atac, _ = data
    with pytest.raises(error, match=message):
        call(fitted, rna, atac)


@pytest.mark.parametrize(
    "call",
    [
        lambda m, r, a: m.transform(r),
        lambda m, r, a: m.score(r, a),
        lambda m, r, a: m.impute_atac(a),
        lambda m, r, a: m.history_,
        lambda m, r, a: m.save("unused.npz"),
    ],
)
def test_unfitted_model_raises_not_fitted(data, call):
    rna, atac, _ = data
    with pytest.raises(NotFittedError):
        call(FactVAE(**FAST), rna, atac)


def test_one_cell_transforms_scores_and_imputes(fitted, data):
    rna, atac, _ = data
    assert fitted.transform(rna[:1], atac[:1]).shape == (1, 2 * FAST["n_latent"])
    assert np.isfinite(fitted.score(rna[:1], atac[:1]))
    assert np.isfinite(fitted.impute_atac(atac[:1])).all()


def test_two_cells_are_enough_to_fit(data):
    rna, atac, _ = data
    model = FactVAE(random_state=0, **FAST).fit(rna[:2], atac[:2])
    assert np.isfinite(model.transform(rna)).all()


# ---------------------------------------------------------------- non-integer counts


def test_non_integer_counts_warn_and_name_the_modality(data):
    rna, atac, _ = data
    normalized = rna.multiply(1e4 / rna.sum(axis=1)).tocsr()
    normalized.data = np.log1p(normalized.data)
    with pytest.warns(FactVAEWarning, match=r"X_rna has \d+ non-integer value.*raw counts") as w:
        model = FactVAE(random_state=0, **FAST).fit(normalized, atac)
    assert w[0].filename == __file__  # points at the caller's line
    with pytest.warns(FactVAEWarning, match="X_atac has 1 non-integer value"):
        model.score(rna, _set(atac, 0, np.flatnonzero(atac[0].toarray())[0], 2.5))
    assert issubclass(FactVAEWarning, UserWarning)


def test_integer_counts_do_not_warn(fitted, data):
    rna, atac, prior = data
    with warnings.catch_warnings():
        warnings.simplefilter("error", FactVAEWarning)
        FactVAE(random_state=0, **FAST).fit(rna.astype(np.float64), atac.astype(np.int64))
        fitted.transform(rna, atac)
        fitted.impute_atac(atac)


# ---------------------------------------------------------------- all-zero features


def test_all_zero_features_are_kept_and_give_finite_outputs(data):
    """A gene or peak with no counts in the training cells (common in a CV fold): the RNA
    scaler's std is 0 and the ATAC IDF would be n / 0; both are guarded, nothing is dropped."""
    rna, atac, prior = data
    rna, atac = rna.tolil(copy=True), atac.tolil(copy=True)
    rna[:, [0, 7]] = 0
    atac[:, [3, 100, 299]] = 0
    rna, atac = rna.tocsr(), atac.tocsr()
    model = FactVAE(embedding="joint", random_state=0, **FAST)
    Z = model.fit_transform(rna, atac, prior=prior)
    assert Z.shape == (60, 2 * FAST["n_latent"]) and np.isfinite(Z).all()
    assert model.atac_encoder_input_.idf_[[3, 100, 299]].tolist() == [0, 0, 0]
    assert np.isfinite(model.impute_atac(atac)).all()
    assert np.isfinite(model.score(rna, atac))
    assert model.feature_embeddings_.rna.shape[0] == rna.shape[1]


# ---------------------------------------------------------------- the caller's data


def _snapshot(x):
    if sp.issparse(x):
        parts = {
            name: getattr(x, name).copy()
            for name in ("data", "indices", "indptr", "row", "col")
            if hasattr(x, name)
        }
        return type(x), x.shape, x.dtype, parts
    return type(x), np.array(x, copy=True)


def _same(before, x):
    if sp.issparse(x):
        kind, shape, dtype, parts = before
        return (
            kind is type(x)
            and shape == x.shape
            and dtype == x.dtype
            and all(
                np.array_equal(p, getattr(x, name)) and p.dtype == getattr(x, name).dtype
                for name, p in parts.items()
            )
        )
    kind, array = before
    return kind is type(x) and np.array_equal(array, np.asarray(x))


@pytest.mark.parametrize("kind", ["dense32", "dense64", "csr", "csc", "coo", "frame"])
def test_caller_arrays_are_not_modified(data, kind, tmp_path):
    convert = {
        "dense32": lambda m: m.toarray().astype(np.float32),
        "dense64": lambda m: m.toarray().astype(np.float64),
        "csr": lambda m: m.tocsr(copy=True),
        "csc": lambda m: m.tocsc(copy=True),
        "coo": lambda m: m.tocoo(copy=True),
        "frame": lambda m: pd.DataFrame(m.toarray()),
    }[kind]
    rna, atac, prior = (convert(x) for x in data)
    before = [_snapshot(x) for x in (rna, atac, prior)]
    model = FactVAE(embedding="joint", random_state=0, warm_start=True, **FAST)
    model.fit(rna, atac, prior=prior)
    model.fit(rna, atac, prior=prior)  # continued training
    model.transform(rna, atac)
    model.score(rna, atac)
    model.impute_atac(atac)
    model.regulatory_scores(prior)
    FactVAE.load(model.save(tmp_path / "model")).transform(rna, atac)
    with pytest.raises(ValueError, match="negative"):  # an error path sees them too
        FactVAE(**FAST).fit(rna, atac, prior=-prior)
    for snapshot, x in zip(before, (rna, atac, prior), strict=True):
        assert _same(snapshot, x)


def test_caller_arrays_are_not_modified_by_non_integer_counts(data):
    rna, atac, _ = data
    rna = rna.astype(np.float64) * 0.5
    before = _snapshot(rna)
    with pytest.warns(FactVAEWarning):
        FactVAE(random_state=0, **FAST).fit(rna, atac)
    assert _same(before, rna)


# ---------------------------------------------------------------- numerical faults


def test_non_finite_loss_stops_with_the_epoch_and_terms(data):
    rna, atac, prior = data
    model = FactVAE(random_state=0, **{**FAST, "lr": 1e6})
    with pytest.raises(NonFiniteLossError, match=r"non-finite .* in epoch \d+: term") as info:
        model.fit(rna, atac, prior=prior)
    assert info.value.epoch >= 1 and "train_loss" in info.value.terms
    assert isinstance(info.value, FloatingPointError)
    # No model full of NaN survives: the estimator is unfitted.
    assert not hasattr(model, "net_") and not hasattr(model, "feature_embeddings_")
    with pytest.raises(NotFittedError):
        model.transform(rna)


def test_non_finite_loss_in_a_continued_fit_discards_the_model(data):
    rna, atac, _ = data
    model = FactVAE(random_state=0, warm_start=True, **FAST).fit(rna, atac)
    model.set_params(rna_kl_weight=1e300)  # inf in float32
    with pytest.raises(NonFiniteLossError, match=r"epoch 4: term\(s\) .*train_loss"):
        model.fit(rna, atac)
    with pytest.raises(NotFittedError):
        model.transform(rna)


# ---------------------------------------------------------------- interruption


class InterruptAfter(Callback):
    """Raise KeyboardInterrupt (a Ctrl-C) at the end of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


def test_keyboard_interrupt_keeps_the_last_completed_epoch(data):
    rna, atac, prior = data
    params = dict(embedding="joint", random_state=0, **{**FAST, "max_epochs": 10})
    model = FactVAE(callbacks=[InterruptAfter(3)], **params).fit(rna, atac, prior=prior)
    assert len(model.history_) == 3
    assert np.isfinite(model.history_[:, "train_loss"]).all()
    # Usable, and exactly the model of a 3-epoch fit.
    three = FactVAE(**{**params, "max_epochs": 3}).fit(rna, atac, prior=prior)
    assert np.array_equal(model.transform(rna, atac), three.transform(rna, atac))
    assert np.array_equal(model.feature_embeddings_.atac, three.feature_embeddings_.atac)
    assert np.isfinite(model.impute_atac(atac)).all()
    assert model.net_.callbacks_[1][0] == "train_loss"  # skorch's bookkeeping is intact
    # Training resumes from there: 3 + 7 epochs are the 10-epoch model.
    model.set_params(callbacks=None, warm_start=True, max_epochs=7).fit(rna, atac, prior=prior)
    ten = FactVAE(**params).fit(rna, atac, prior=prior)
    assert len(model.history_) == 10
    assert np.array_equal(model.transform(rna, atac), ten.transform(rna, atac))


# ---------------------------------------------------------------- warm start


def test_warm_start_continues_exactly(data):
    rna, atac, prior = data
    params = dict(embedding="joint", random_state=0, **FAST)
    eight = FactVAE(**{**params, "max_epochs": 8}).fit(rna, atac, prior=prior)
    model = FactVAE(warm_start=True, **{**params, "max_epochs": 4}).fit(rna, atac, prior=prior)
    preprocessing = model.rna_encoder_input_, model.atac_encoder_input_
    after_four = model.transform(rna, atac)
    model.fit(rna, atac, prior=prior)
    # Same preprocessing objects (not refitted), history appended, learning rate decayed on.
    assert (model.rna_encoder_input_, model.atac_encoder_input_) == preprocessing
    assert len(model.history_) == 8
    assert model.history_[-1, "lr_optimizer"] == pytest.approx(1e-3 * 0.995**7)
    assert not np.array_equal(after_four, model.transform(rna, atac))
    assert np.array_equal(model.transform(rna, atac), eight.transform(rna, atac))
    assert np.array_equal(model.history_[:, "train_loss"], eight.history_[:, "train_loss"])


def test_without_warm_start_fit_starts_afresh(data):
    rna, atac, _ = data
    model = FactVAE(random_state=0, **FAST).fit(rna, atac)
    first = model.transform(rna)
    model.fit(rna, atac)
    assert len(model.history_) == FAST["max_epochs"]
    assert np.array_equal(first, model.transform(rna))


def test_warm_start_needs_the_same_features_and_modalities(data):
    rna, atac, _ = data
    model = FactVAE(random_state=0, warm_start=True, **FAST).fit(rna, atac)
    with pytest.raises(ValueError, match="X_rna: X has"):
        model.fit(rna[:, :-1], atac)
    with pytest.raises(ValueError, match="X_atac has 299"):
        model.fit(rna, atac[:, 1:])
    with pytest.raises(ValueError, match="warm_start .* pass X_atac"):
        model.fit(rna)
    assert len(model.history_) == FAST["max_epochs"]  # the failed calls trained nothing


# ---------------------------------------------------------------- weights-only files


def test_save_load_round_trip_is_bit_identical(fitted, data, tmp_path):
    rna, atac, prior = data
    path = fitted.save(tmp_path / "model")
    assert path.endswith(".npz")
    # Nothing in the file needs pickle.
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[key].dtype != object for key in archive.files)
    loaded = FactVAE.load(path)
    assert loaded.get_params() == fitted.get_params()
    assert np.array_equal(loaded.transform(rna, atac), fitted.transform(rna, atac))
    assert np.array_equal(loaded.impute_atac(atac), fitted.impute_atac(atac))
    assert loaded.score(rna, atac) == fitted.score(rna, atac)
    assert np.array_equal(loaded.regulatory_scores(), fitted.regulatory_scores())
    assert list(loaded.history_[:, "train_loss"]) == list(fitted.history_[:, "train_loss"])


def test_loaded_model_continues_training_as_the_original(data, tmp_path):
    rna, atac, prior = data
    columns = [f"gene{i}" for i in range(rna.shape[1])]
    rna = pd.DataFrame(rna.toarray(), columns=columns)
    model = FactVAE(random_state=0, warm_start=True, **FAST).fit(rna, atac, prior=prior)
    loaded = FactVAE.load(model.save(tmp_path / "model.npz"))
    assert list(loaded.feature_names_in_) == columns
    model.fit(rna, atac, prior=prior)
    loaded.fit(rna, atac, prior=prior)
    assert np.array_equal(model.transform(rna), loaded.transform(rna))


def test_load_refuses_pickled_objects(fitted, tmp_path):
    import joblib

    np.savez(tmp_path / "evil.npz", payload=np.array([{"code": "runs"}], dtype=object))
    joblib.dump(fitted, tmp_path / "model.joblib")
    for path in (tmp_path / "evil.npz", tmp_path / "model.joblib"):
        with pytest.raises(ValueError, match="holds pickled Python objects.*refuses"):
            FactVAE.load(path)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a model file written by FactVAE.save"):
        FactVAE.load(tmp_path / "other.npz")
