"""Sample (batch) labels: their categories, one-hot codes and the checks around them.

A ``batch`` is one label per cell (any hashable: donor names, run numbers); the fitted
model keeps the sorted categories seen at fit (``batch_categories_``) and every later call
maps its labels onto them. Labels never seen at fit are refused with their names.
The per-sample corrections of the encoder inputs (``batch_center_inputs``) are fitted and
applied here too: mean offsets, or Harmony states (:mod:`factvae_sk.data._harmony`).
"""

import numpy as np
import pandas as pd

from . import _harmony

# What transform, score and impute_atac say when a model fitted with batch gets none.
_ROUTING_HINT = (
    "Inside Pipeline or GridSearchCV, enable metadata routing "
    "(sklearn.set_config(enable_metadata_routing=True)) and request it, e.g. "
    "FactVAE().set_fit_request(batch=True).set_score_request(batch=True)."
)

# Harmony on the trained codes after a fit with batch (the integrated embedding of
# transform): settings chosen on semi-synthetic samples of both bundled datasets
# (benchmarks/README.md, "Several samples, integrated by default").
CODE_HARMONY = {"theta": 0.0}


def _labels(batch, n_cells, name="batch"):
    """``batch`` as a 1-D pandas Series of length ``n_cells``, without missing labels."""
    if isinstance(batch, pd.DataFrame):
        if batch.shape[1] != 1:
            raise ValueError(f"{name} must be one label per cell (1-D); got a DataFrame.")
        batch = batch.iloc[:, 0]
    values = pd.Series(np.asarray(batch, dtype=object).ravel() if np.ndim(batch) else [batch])
    if np.ndim(batch) != 1 or len(values) != n_cells:
        raise ValueError(
            f"{name} must be one label per cell, of shape ({n_cells},); "
            f"got shape {np.shape(batch)}."
        )
    if values.isna().any():
        raise ValueError(f"{name} has missing labels (None or NaN) for some cells.")
    return values


def fit_categories(batch, n_cells):
    """The sorted distinct labels of ``batch``, as an array numpy stores without pickle
    when the labels are all strings or all numbers (object dtype otherwise)."""
    values = _labels(batch, n_cells)
    try:
        categories = np.asarray(sorted(set(values)))
    except TypeError:  # labels of mixed types do not sort: keep their order of appearance
        categories = np.asarray(pd.unique(values), dtype=object)
    if categories.dtype.kind not in "biufUS":
        categories = categories.astype(object)
    return categories


def indices(batch, categories, n_cells, name="batch"):
    """Position of each cell's label among ``categories``; unseen labels raise."""
    values = _labels(batch, n_cells, name)
    lookup = {label: i for i, label in enumerate(categories.tolist())}
    codes = values.map(lambda label: lookup.get(label, -1)).to_numpy(dtype=np.int64)
    if (codes < 0).any():
        unseen = sorted({str(v) for v in values[codes < 0]})
        raise ValueError(
            f"{name} has labels not seen at fit: {unseen[:5]}"
            f"{' ...' if len(unseen) > 5 else ''}. The model knows "
            f"{[str(c) for c in categories.tolist()]}."
        )
    return codes


def one_hot(codes, n_categories):
    """Float32 one-hot rows (n_cells, n_categories) of category positions."""
    out = np.zeros((len(codes), n_categories), dtype=np.float32)
    out[np.arange(len(codes)), codes] = 1.0
    return out


def input_offsets(encoder_input, batch_onehot, observed=None):
    """Each sample's mean encoder input minus the mean over the samples' means: shape
    (n_samples, n_components). Subtracted from a cell's encoder input, it centres every
    sample on the same point (a mean-only ComBat on the PCA / LSI coordinates).
    ``observed``: the cells that have the modality (all by default)."""
    if observed is not None:
        encoder_input, batch_onehot = encoder_input[observed], batch_onehot[observed]
    counts = batch_onehot.sum(0)
    means = (batch_onehot.T @ encoder_input) / np.maximum(counts, 1)[:, None]
    present = counts > 0
    offsets = means - means[present].mean(0)
    offsets[~present] = 0.0
    return offsets.astype(np.float32)


def input_harmony(encoder_input, batch_onehot, observed=None, random_state=None, **settings):
    """Harmony state (:func:`~factvae_sk.data._harmony.fit_harmony` with ``settings``, its
    defaults otherwise) of the encoder inputs by sample; ``observed``: the cells that have
    the modality (all by default). Each cell is then mapped by :func:`apply_harmony`."""
    if observed is not None:
        encoder_input, batch_onehot = encoder_input[observed], batch_onehot[observed]
    codes = batch_onehot.argmax(1)
    return _harmony.fit_harmony(
        encoder_input, codes, batch_onehot.shape[1], random_state=random_state, **settings
    )


def apply_harmony(encoder_input, batch_onehot, state):
    """Each cell's encoder input mapped through a Harmony ``state``, cell by cell."""
    return _harmony.harmony_correct(encoder_input, batch_onehot.argmax(1), state)


def code_harmony(codes, batch_onehot, observed=None, random_state=None):
    """Harmony states of the trained cell codes by sample, one per block of ``codes``
    (``{"rna": codes, "atac": codes}``): what :meth:`FactVAE.transform` maps every cell
    through after a fit with ``batch`` (:data:`CODE_HARMONY` settings). ``observed``: the
    cells that have each modality (all by default)."""
    return {
        name: input_harmony(
            block,
            batch_onehot,
            None if observed is None else observed[name],
            random_state=random_state,
            **CODE_HARMONY,
        )
        for name, block in codes.items()
    }


def check_given(categories, batch, what):
    """Refuse ``batch`` for a model fitted without it, and its absence for one fitted with it."""
    if categories is None and batch is not None:
        raise ValueError(f"This FactVAE was fitted without batch; {what} cannot use batch.")
    if categories is not None and batch is None:
        raise ValueError(
            f"This FactVAE was fitted with batch (categories "
            f"{[str(c) for c in categories.tolist()]}): {what} needs batch=, the sample "
            f"label of each cell. {_ROUTING_HINT}"
        )
