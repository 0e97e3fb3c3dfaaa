"""FactVAE as a scikit-learn estimator: the common estimator checks, and the API they leave out
(parameter validation, feature names, set_output, tags, metadata requests, clone, set_params)."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import FAST
from sklearn import clone, config_context
from sklearn.utils import get_tags
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from factvae_sk import FactVAE

pytestmark = pytest.mark.usefixtures("one_thread")

# Tiny networks: the checks fit dozens of models on 10-100 random cells.
CHECK_PARAMS = dict(
    max_epochs=2,
    rna_hidden_sizes=(8,),
    atac_hidden_sizes=(8,),
    n_latent=2,
    rna_n_components=3,
    atac_n_components=3,
    batch_size=16,
    random_state=0,
    device="cpu",
)

_EMPTY_CELLS = (
    "the check's data has rows whose counts are all zero; FactVAE refuses cells with zero "
    "total counts (their log library size, part of the model, is -inf) with a clear error, "
    "as the SPEC requires. test_sparse_formats_without_empty_cells and "
    "test_dtypes_without_empty_cells cover the same inputs without empty cells."
)
EXPECTED_FAILED_CHECKS = {
    "check_fit_score_takes_y": (
        "checks only the name of the second parameter of fit/score/fit_transform, which "
        "must be 'y'. FactVAE's is X_atac (the public API) and accepts y= as an alias; "
        "every call the check makes succeeds."
    ),
    "check_estimators_dtypes": "casting the check's data to int makes a row of zeros: "
    + _EMPTY_CELLS,
    "check_estimator_sparse_tag": _EMPTY_CELLS,
    "check_estimator_sparse_array": _EMPTY_CELLS,
    "check_estimator_sparse_matrix": _EMPTY_CELLS,
    "check_methods_sample_order_invariance": (
        "asks for equality to rtol 1e-7; float32 matrix products may round a row differently "
        "at another position in the batch on some vector kernels (1 ulp seen with AVX2 and "
        "one thread). test_transform_ignores_the_order_of_the_cells checks the invariance "
        "to float32 rounding."
    ),
}


# The checks' data are random floats, not counts: FactVAE warns about that, as it should.
@pytest.mark.filterwarnings("ignore::factvae_sk.exceptions.FactVAEWarning")
@parametrize_with_checks(
    [FactVAE(**CHECK_PARAMS)], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _check_data_with_empty_cells():
    """The data of sklearn's sparse checks (a uniform 40 x 3 matrix, values < 0.6 zeroed)."""
    X = np.random.RandomState(0).uniform(size=(40, 3))
    X[X < 0.6] = 0
    return X


@pytest.mark.filterwarnings("ignore::factvae_sk.exceptions.FactVAEWarning")
def test_expected_failures_are_the_empty_cell_refusal():
    X = _check_data_with_empty_cells()
    assert (X.sum(axis=1) == 0).any()
    with pytest.raises(ValueError, match=r"cell\(s\) with zero total counts"):
        FactVAE(**CHECK_PARAMS).fit(sp.csr_array(X))


def _counts(n_cells, n_features, seed):
    rng = np.random.default_rng(seed)
    X = rng.poisson(0.5, size=(n_cells, n_features)).astype(float)
    X[np.arange(n_cells), rng.integers(0, n_features, n_cells)] += 1  # no empty cells
    return X


@pytest.mark.parametrize(
    "container",
    ["csr_matrix", "csr_array", "csc_matrix", "coo_matrix", "lil_matrix", "dok_matrix"]
    + ["bsr_matrix", "dia_matrix", "csr_int64_indices", "coo_int64_indices"],
)
def test_sparse_formats_without_empty_cells(container):
    rna, atac = _counts(40, 6, 0), _counts(40, 9, 1)
    reference = FactVAE(**CHECK_PARAMS).fit(rna, atac).transform(rna)

    def convert(X):
        if container.endswith("int64_indices"):
            out = getattr(sp, container.split("_")[0] + "_matrix")(X)
            if hasattr(out, "indptr"):
                out.indices, out.indptr = out.indices.astype(np.int64), out.indptr.astype(np.int64)
            else:
                out.row, out.col = out.row.astype(np.int64), out.col.astype(np.int64)
            return out
        return getattr(sp, container)(X)

    model = FactVAE(**CHECK_PARAMS).fit(convert(rna), convert(atac))
    np.testing.assert_allclose(model.transform(convert(rna)), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_dtypes_without_empty_cells(dtype):
    rna, atac = _counts(40, 6, 0), _counts(40, 9, 1)
    reference = FactVAE(**CHECK_PARAMS).fit(rna, atac).transform(rna)
    model = FactVAE(**CHECK_PARAMS).fit(rna.astype(dtype), atac.astype(dtype))
    Z = model.transform(rna.astype(dtype))
    assert Z.dtype == np.float32
    np.testing.assert_allclose(Z, reference, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- parameter validation


@pytest.mark.parametrize(
    "params, name",
    [
        ({"n_latent": 0}, "n_latent"),
        ({"n_latent": 2.5}, "n_latent"),
        ({"dropout": 1.0}, "dropout"),
        ({"rna_likelihood": "poisson"}, "rna_likelihood"),
        ({"lr": 0.0}, "lr"),
        ({"lr_decay": 1.5}, "lr_decay"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"embedding": "both"}, "embedding"),
        ({"rna_hidden_sizes": 64}, "rna_hidden_sizes"),
        ({"atac_hidden_sizes": (32, 0)}, "atac_hidden_sizes"),
        ({"callbacks": "progress"}, "callbacks"),
        ({"device": "gpu"}, "device"),
    ],
)
def test_invalid_parameters_are_named_at_fit(params, name):
    model = FactVAE(**{**CHECK_PARAMS, **params})  # construction accepts anything
    with pytest.raises(ValueError, match=f"The '{name}' parameter of FactVAE must be"):
        model.fit(_counts(20, 5, 0))


def test_invalid_parameter_is_reported_before_the_data_is_touched():
    with pytest.raises(InvalidParameterError, match="'max_epochs'"):
        FactVAE(max_epochs=-1).fit(np.full((3, 3), -1.0))  # negative counts too


# ---------------------------------------------------------------- feature names, set_output


@pytest.fixture(scope="module")
def frames(small):
    genes = [f"gene{i}" for i in range(small["rna"].shape[1])]
    peaks = [f"chr1:{i}-{i + 500}" for i in range(300)]
    index = [f"cell{i}" for i in range(80)]
    rna = pd.DataFrame(small["rna"][:80].toarray(), columns=genes, index=index)
    atac = pd.DataFrame(small["atac"][:80, :300].toarray(), columns=peaks, index=index)
    return rna, atac


def test_feature_names_in_and_out(frames):
    rna, atac = frames
    model = FactVAE(embedding="joint", random_state=0, **FAST).fit(rna, atac)
    assert model.n_features_in_ == rna.shape[1]
    assert np.array_equal(model.feature_names_in_, rna.columns.to_numpy(dtype=object))
    assert model.n_peaks_in_ == atac.shape[1]
    assert np.array_equal(model.atac_feature_names_in_, atac.columns.to_numpy(dtype=object))
    n = FAST["n_latent"]
    names = model.get_feature_names_out()
    assert names.dtype == object and len(names) == 2 * n
    assert names[0] == "factvae_rna0" and names[n] == "factvae_atac0"
    assert np.array_equal(model.get_feature_names_out(rna.columns), names)
    with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
        model.get_feature_names_out(rna.columns[::-1])
    # Renamed or reordered genes at transform are caught, as for any sklearn estimator.
    with pytest.raises(ValueError, match="feature names"):
        model.transform(rna[rna.columns[::-1]], atac)


def test_numpy_input_has_no_feature_names(small):
    model = FactVAE(random_state=0, **FAST).fit(small["rna"][:60])
    assert not hasattr(model, "feature_names_in_")
    assert model.n_features_in_ == small["rna"].shape[1]
    with pytest.raises(ValueError, match="length equal to number of features"):
        model.get_feature_names_out(["a", "b"])


def test_set_output_pandas(frames):
    rna, atac = frames
    model = FactVAE(embedding="joint", random_state=0, **FAST).set_output(transform="pandas")
    Z_fit = model.fit_transform(rna, atac)
    Z = model.transform(rna, atac)
    for out in (Z_fit, Z):
        assert isinstance(out, pd.DataFrame)
        assert list(out.columns) == list(model.get_feature_names_out())
        assert list(out.index) == list(rna.index)
    np.testing.assert_array_equal(
        Z.to_numpy(), model.set_output(transform="default").transform(rna, atac)
    )


# ---------------------------------------------------------------- tags and metadata requests


def test_tags_describe_the_inputs():
    tags = get_tags(FactVAE())
    assert tags.input_tags.sparse and tags.input_tags.positive_only
    assert not tags.input_tags.allow_nan
    assert not tags.target_tags.required  # X_atac is optional
    assert tags.target_tags.multi_output and tags.target_tags.positive_only
    assert tags.transformer_tags.preserves_dtype == ["float32"]


def test_data_arguments_are_not_metadata():
    """Only the prior, batch and the observed masks (fit, transform, score) and
    sample_weight (score) are requestable: X_rna and X_atac are the data, and y is scikit-learn's
    own name for X_atac."""
    with config_context(enable_metadata_routing=True):
        model = FactVAE().set_fit_request(prior=True).set_score_request(sample_weight=True)
        routing = model.get_metadata_routing()
        masks = {"rna_observed": None, "atac_observed": None}
        assert routing.fit.requests == {"prior": True, "batch": None, **masks}
        assert routing.score.requests == {"sample_weight": True, "batch": None, **masks}
        assert routing.transform.requests == {"batch": None, **masks}
        with pytest.raises(TypeError, match="Unexpected args"):
            FactVAE().set_fit_request(X_atac=True)
        with pytest.raises(TypeError, match="Unexpected args"):
            FactVAE().set_transform_request(X_atac=True)


def test_score_weights_cells(small):
    rna, atac = small["rna"][:60], small["atac"][:60]
    model = FactVAE(embedding="joint", random_state=0, **FAST).fit(rna, atac)
    per_cell = np.array([model.score(rna[i : i + 1], atac[i : i + 1]) for i in range(10)])
    weights = np.arange(10.0)  # the first cell weighs nothing
    assert model.score(rna[:10], atac[:10]) == pytest.approx(per_cell.mean(), rel=1e-6)
    assert model.score(rna[:10], atac[:10], sample_weight=weights) == pytest.approx(
        np.average(per_cell, weights=weights), rel=1e-6
    )
    with pytest.raises(ValueError, match="one weight per cell"):
        model.score(rna[:10], atac[:10], sample_weight=weights[:5])
    with pytest.raises(ValueError, match="non-negative"):
        model.score(rna[:10], atac[:10], sample_weight=-weights)


# ---------------------------------------------------------------- clone, set_params, y


def test_clone_is_unfitted_with_equal_params(small):
    model = FactVAE(lr=3e-3, random_state=5, **{**FAST, "n_latent": 4})
    model.fit(small["rna"][:60], small["atac"][:60])
    copy = clone(model)
    assert not hasattr(copy, "net_") and not hasattr(copy, "n_features_in_")
    assert copy.get_params() == model.get_params()
    # Refitting the clone on the same data gives the same model.
    copy.fit(small["rna"][:60], small["atac"][:60])
    assert np.array_equal(copy.transform(small["rna"][:60]), model.transform(small["rna"][:60]))


def test_set_params_after_fit_applies_to_the_next_fit(small):
    rna = small["rna"][:60]
    model = FactVAE(random_state=0, **FAST).fit(rna)
    assert len(model.net_.history) == FAST["max_epochs"]
    model.set_params(max_epochs=5, n_latent=3)
    assert len(model.net_.history) == FAST["max_epochs"]  # the fitted model is unchanged
    model.fit(rna)
    assert len(model.net_.history) == 5
    assert model.transform(rna).shape == (60, 3)


def test_one_dimensional_y_is_ignored(small):
    """In front of a classifier, a Pipeline hands the class labels to FactVAE.fit."""
    rna, labels = small["rna"][:60], small["labels"][:60]
    rna_only = FactVAE(random_state=0, **FAST).fit(rna)
    with_labels = FactVAE(random_state=0, **FAST).fit(rna, labels)
    assert with_labels.n_peaks_in_ == 0
    assert np.array_equal(with_labels.transform(rna), rna_only.transform(rna))
    assert with_labels.score(rna, labels) == rna_only.score(rna)
    with pytest.raises(ValueError, match="needs X_atac"):
        FactVAE(embedding="atac", **FAST).fit(rna, labels)


def test_y_is_an_alias_of_x_atac(small):
    rna, atac = small["rna"][:60], small["atac"][:60]
    positional = FactVAE(embedding="joint", random_state=0, **FAST).fit(rna, atac)
    keyword = FactVAE(embedding="joint", random_state=0, **FAST).fit(rna, y=atac)
    assert np.array_equal(keyword.transform(rna, atac), positional.transform(rna, atac))
    assert keyword.score(rna, y=atac) == positional.score(rna, atac)
    with pytest.raises(TypeError, match="not both"):
        FactVAE(**FAST).fit(rna, atac, y=atac)


def test_single_cell_transform_score_and_impute(small):
    rna, atac = small["rna"][:60], small["atac"][:60]
    model = FactVAE(embedding="joint", random_state=0, **FAST).fit(rna, atac)
    np.testing.assert_allclose(
        model.transform(rna[:1], atac[:1]), model.transform(rna, atac)[:1], rtol=1e-5, atol=1e-6
    )
    assert np.isfinite(model.score(rna[:1], atac[:1]))
    assert model.impute_atac(atac[:1]).shape == (1, atac.shape[1])


def test_transform_ignores_the_order_of_the_cells():
    """What check_methods_sample_order_invariance asks, up to float32 rounding: each cell's
    embedding and score do not depend on where it sits among the cells."""
    rng = np.random.RandomState(0)
    X = rng.poisson(2.0, size=(40, 6)).astype(np.float64) + np.eye(40, 6)
    Y = rng.poisson(2.0, size=(40, 5)).astype(np.float64) + np.eye(40, 5)
    model = FactVAE(**CHECK_PARAMS).fit(X, Y)
    order = rng.permutation(40)
    for embedding in ("rna", "atac", "joint"):
        model.set_params(embedding=embedding)
        np.testing.assert_allclose(
            model.transform(X[order], Y[order]), model.transform(X, Y)[order], rtol=1e-5, atol=1e-6
        )
