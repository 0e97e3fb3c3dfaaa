"""Validation split and early stopping: cells held out of training and the callbacks that
log their ELBO and stop on it or on their loss."""

import sys

import numpy as np
from sklearn.model_selection import ShuffleSplit
from skorch.callbacks import EarlyStopping, PassthroughScoring
from skorch.dataset import ValidSplit
from skorch.utils import noop

from ._net import ELBO_TERMS

# The held-out ELBO, recorded per batch by FactVAENet.validation_step and per epoch here.
MONITOR = "valid_elbo"


class _EarlyStopping(EarlyStopping):
    """skorch's ``EarlyStopping``, which lets go of its copy of the best weights once they
    are restored (it would otherwise hold a second copy of the module as long as the model
    lives)."""

    def on_train_end(self, net, **kwargs):
        super().on_train_end(net, **kwargs)
        self.best_model_weights_ = None


def _to_stderr(text):
    """Early stopping's messages go where the progress lines go (stdout stays for results)."""
    print(text, file=sys.stderr, flush=True)


def held_out_cells(n_cells, fraction, seed):
    """Positions of the training and the validation cells, each sorted.

    A uniform random split (sklearn's ``ShuffleSplit``: ``ceil(fraction * n_cells)``
    validation cells) seeded by ``seed``, so the same ``random_state`` holds out the same cells.

    Raises
    ------
    ValueError
        When the split would leave no validation cell or fewer than two training cells.
    """
    n_valid = int(np.ceil(fraction * n_cells))
    if n_valid < 1 or n_cells - n_valid < 2:
        raise ValueError(
            f"validation_fraction={fraction} of {n_cells} cells leaves {n_cells - n_valid} "
            f"training and {n_valid} validation cells: at least 2 and 1 are needed."
        )
    splitter = ShuffleSplit(n_splits=1, test_size=n_valid, random_state=seed)
    train, valid = next(splitter.split(np.empty((n_cells, 0))))
    return np.sort(train), np.sort(valid)


def train_split(train, valid):
    """skorch's ``train_split`` for a fixed split: ``ValidSplit`` over one given fold."""
    return ValidSplit(cv=[(train, valid)], stratified=False)


def holdout_callbacks(early_stopping, patience, verbose, metric="loss"):
    """Callbacks that log the validation ELBO per epoch and, with ``early_stopping``, stop
    when ``metric`` ("loss": skorch's ``valid_loss``, the weighted training objective;
    "elbo": ``valid_elbo``) has not improved for ``patience`` epochs and restore the best
    epoch's weights.

    They go last in the net's list: early stopping ends the epoch (by raising skorch's
    ``KeyboardInterrupt``), so callbacks after it would miss the final epoch.
    """
    callbacks = [
        (f"valid_{name}", PassthroughScoring(f"valid_{name}")) for name in ELBO_TERMS
    ]  # silently skipped when absent (no ATAC)
    callbacks.append((MONITOR, PassthroughScoring(MONITOR, lower_is_better=False)))
    if early_stopping:
        stopper = _EarlyStopping(
            monitor=MONITOR if metric == "elbo" else "valid_loss",
            patience=patience,
            # Any improvement counts: the scores' scale depends on the data, so a relative
            # threshold would mean different things on different datasets.
            threshold=0.0,
            threshold_mode="abs",
            lower_is_better=metric != "elbo",
            load_best=True,
            sink=_to_stderr if verbose else noop,
        )
        callbacks.append(("early_stopping", stopper))
    return callbacks


def settings(callbacks):
    """What the validation callbacks among ``(name, callback)`` pairs do: compared to decide
    whether a warm start must replace the net's callbacks."""
    named = [item for item in callbacks if isinstance(item, tuple)]  # users' may be bare
    return [
        (name, sorted((key, repr(value)) for key, value in callback.get_params().items()))
        for name, callback in named
        if name in (MONITOR, "early_stopping")
    ]
