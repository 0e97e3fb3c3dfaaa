"""Validation split and early stopping on the real SNARE-seq subset: the held-out cells, the
validation ELBO in the history, stopping and restoring the best epoch, parameter errors, and
defaults that leave training exactly as the method's."""

import pickle

import numpy as np
import pytest
from conftest import FAST
from sklearn import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from factvae_sk import FactVAE, GenePeakPrior

pytestmark = pytest.mark.usefixtures("one_thread")


def _validation_cells_elbo(model, small):
    cells = model.validation_indices_
    return model.score(small["rna"][cells], small["atac"][cells])


@pytest.fixture(scope="module")
def validated(small):
    """Validation split without early stopping: every epoch runs and is logged."""
    model = FactVAE(embedding="joint", random_state=0, validation_fraction=0.2, **FAST)
    return model.fit(small["rna"], small["atac"], prior=small["prior"])


@pytest.fixture(scope="module")
def stopped(small):
    """Early stopping on the ELBO with a short patience; the tiny model's held-out ELBO
    peaks early."""
    params = {**FAST, "max_epochs": 40}
    model = FactVAE(
        random_state=0,
        early_stopping=True,
        early_stopping_metric="elbo",
        n_iter_no_change=2,
        **params,
    )
    return model.fit(small["rna"], small["atac"], prior=small["prior"])


def test_defaults_are_off_and_training_is_unchanged(small):
    default = FactVAE(random_state=0, embedding="joint", **FAST)
    assert default.validation_fraction is None and default.early_stopping is False
    default.fit(small["rna"], small["atac"], prior=small["prior"])
    assert default.net_.train_split is None
    assert default.validation_indices_ is None
    assert "valid_elbo" not in default.history_[-1] and "valid_loss" not in default.history_[-1]
    # Every cell trains: 300 cells in batches of 64, the incomplete last one dropped.
    assert sum(default.history_[-1, "batches", :, "train_batch_size"]) == 256
    # Spelling the defaults out (a patience is irrelevant while early stopping is off)
    # trains the same model, bit for bit.
    explicit = FactVAE(
        random_state=0,
        embedding="joint",
        validation_fraction=None,
        early_stopping=False,
        n_iter_no_change=3,
        **FAST,
    ).fit(small["rna"], small["atac"], prior=small["prior"])
    assert np.array_equal(
        default.transform(small["rna"], small["atac"]),
        explicit.transform(small["rna"], small["atac"]),
    )
    assert np.array_equal(default.impute_atac(small["atac"]), explicit.impute_atac(small["atac"]))


def test_validation_cells_are_held_out_of_training(validated, small):
    n_cells = small["rna"].shape[0]
    cells = validated.validation_indices_
    assert len(cells) == 60  # ceil(0.2 * 300)
    assert np.array_equal(cells, np.unique(cells)) and cells.min() >= 0 and cells.max() < n_cells
    dataset = validated._dataset(small["rna"], small["atac"], with_counts=True)
    train, valid = validated.net_.train_split(dataset)
    assert np.array_equal(np.sort(valid.indices), cells)
    assert not np.intersect1d(train.indices, valid.indices).size
    assert len(train) + len(valid) == n_cells
    last = validated.history_[-1]
    # 240 training cells in batches of 64 (the incomplete last one dropped); all 60
    # validation cells scored.
    sizes = {"train": 0, "valid": 0}
    for batch in last["batches"]:
        for kind in sizes:
            sizes[kind] += batch.get(f"{kind}_batch_size", 0)
    assert sizes == {"train": 192, "valid": 60}


def test_history_holds_both_curves_and_valid_elbo_is_score(validated, small):
    history = validated.history_
    assert len(history) == FAST["max_epochs"]
    for key in ("train_loss", "valid_loss", "valid_elbo"):
        assert all(np.isfinite(history[:, key]))
    terms = [f"valid_{t}" for t in ("nll_rna", "kl_rna", "nll_atac", "kl_atac")]
    assert np.allclose(-np.sum(history[:, terms], axis=1), history[:, "valid_elbo"])
    # The validation ELBO is what score() reports on the validation cells.
    assert _validation_cells_elbo(validated, small) == pytest.approx(
        history[-1, "valid_elbo"], rel=1e-5
    )


def test_same_random_state_holds_out_the_same_cells(small):
    def cells(seed):
        model = FactVAE(random_state=seed, validation_fraction=0.1, **{**FAST, "max_epochs": 1})
        return model.fit(small["rna"]).validation_indices_

    assert np.array_equal(cells(1), cells(1))
    assert not np.array_equal(cells(1), cells(2))


def test_early_stopping_stops_and_keeps_the_best_epoch(stopped, small):
    valid = np.asarray(stopped.history_[:, "valid_elbo"])
    best = int(np.argmax(valid))
    # It stopped before max_epochs, after n_iter_no_change epochs without improvement.
    assert len(valid) < 40
    assert len(valid) == best + 1 + stopped.n_iter_no_change
    # The fitted model is the best epoch's, not the last one's.
    elbo = _validation_cells_elbo(stopped, small)
    assert elbo == pytest.approx(valid[best], rel=1e-5)
    assert elbo != pytest.approx(valid[-1], rel=1e-5)


def test_early_stopping_on_the_loss_keeps_its_best_epoch(small):
    assert FactVAE().early_stopping_metric == "loss"
    params = {**FAST, "max_epochs": 12}
    model = FactVAE(
        random_state=0,
        early_stopping=True,
        n_iter_no_change=2,
        validation_fraction=0.2,
        **params,
    ).fit(small["rna"], small["atac"], prior=small["prior"])
    losses = np.asarray(model.history_[:, "valid_loss"])
    best = int(np.argmin(losses))
    assert len(losses) == min(best + 1 + 2, 12)
    # The restored weights are the best epoch's: its ELBO on the validation cells again.
    assert _validation_cells_elbo(model, small) == pytest.approx(
        model.history_[best, "valid_elbo"], rel=1e-5
    )


def test_early_stopping_defaults_to_a_tenth_of_the_cells(stopped, small):
    assert len(stopped.validation_indices_) == 30


@pytest.mark.parametrize(
    "params",
    [
        {"validation_fraction": 0.0},
        {"validation_fraction": 1.0},
        {"validation_fraction": 1.5},
        {"validation_fraction": "0.1"},
        {"early_stopping": "yes"},
        {"n_iter_no_change": 0},
        {"early_stopping_metric": "nll"},
    ],
)
def test_bad_parameters_are_named(small, params):
    name = next(iter(params))
    with pytest.raises(InvalidParameterError, match=name):
        FactVAE(**FAST, **params).fit(small["rna"][:50])


def test_too_few_cells_to_split_is_a_clear_error(small):
    with pytest.raises(ValueError, match="validation_fraction=0.5 of 3 cells"):
        FactVAE(validation_fraction=0.5, **FAST).fit(small["rna"][:3])


def test_warm_start_continues_with_validation(small):
    model = FactVAE(random_state=0, validation_fraction=0.2, warm_start=True, **FAST)
    model.fit(small["rna"], small["atac"])
    model.fit(small["rna"], small["atac"])
    assert len(model.history_) == 2 * FAST["max_epochs"]
    assert all(np.isfinite(model.history_[:, "valid_elbo"]))
    # Validation turned on for the continuation only: the new split is logged.
    plain = FactVAE(random_state=0, warm_start=True, **FAST).fit(small["rna"])
    plain.set_params(validation_fraction=0.2).fit(small["rna"])
    assert "valid_elbo" not in plain.history_[0]
    assert np.isfinite(plain.history_[-1, "valid_elbo"])


def test_persistence_and_clone_keep_the_options(stopped, small, tmp_path):
    rna, atac = small["rna"], small["atac"]
    for loaded in (
        pickle.loads(pickle.dumps(stopped)),
        FactVAE.load(stopped.save(tmp_path / "model")),
    ):
        assert loaded.get_params() == stopped.get_params()
        assert np.array_equal(loaded.validation_indices_, stopped.validation_indices_)
        assert np.array_equal(loaded.transform(rna, atac), stopped.transform(rna, atac))
    assert clone(stopped).get_params() == stopped.get_params()


def test_grid_search_over_the_options(small):
    search = GridSearchCV(
        FactVAE(random_state=0, **{**FAST, "max_epochs": 2}),
        {"early_stopping": [False, True]},
        cv=2,
    )
    search.fit(small["rna"], small["atac"], prior=GenePeakPrior(small["prior"]))
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
