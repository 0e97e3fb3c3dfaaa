"""skorch callbacks: per-optimizer learning-rate decay and a compact progress log."""

import math
import sys
import time

from skorch.callbacks import Callback
from torch.optim.lr_scheduler import ExponentialLR

from .exceptions import NonFiniteLossError

REPORTED_TERMS = ("nll_rna", "kl_rna", "nll_atac", "kl_atac", "prior", "distill")


class ExponentialLRDecay(Callback):
    """Multiply one optimizer's learning rate by ``gamma`` after every epoch.

    skorch's ``LRScheduler`` always drives ``net.optimizer_``; FactVAE has a second
    optimizer (``optimizer_atac_``) that decays on its own schedule, so the optimizer is named.

    Parameters
    ----------
    optimizer_name : str
        The optimizer's name on the net, without the trailing underscore.
    gamma : float
        Decay factor per epoch.
    """

    def __init__(self, optimizer_name="optimizer", gamma=0.995):
        self.optimizer_name = optimizer_name
        self.gamma = gamma

    def on_train_begin(self, net, **kwargs):
        optimizer = getattr(net, self.optimizer_name + "_", None)
        self.scheduler_ = None if optimizer is None else ExponentialLR(optimizer, self.gamma)

    def on_epoch_end(self, net, **kwargs):
        if self.scheduler_ is None:
            return
        net.history.record(f"lr_{self.optimizer_name}", self.scheduler_.get_last_lr()[0])
        self.scheduler_.step()

    def on_train_end(self, net, **kwargs):
        # The scheduler holds its optimizer: pickled through the callback, a GPU optimizer's
        # state would bypass skorch's device mapping and not load on a CPU-only machine.
        # It is only needed while training; the next fit makes a new one.
        self.scheduler_ = None


class ProgressLog(Callback):
    """Print the epoch's mean loss terms about ten times during training.

    Parameters
    ----------
    n_reports : int
        How many lines to print over the run (the last epoch always prints).
    sink : callable
        Where lines go; stderr by default so results on stdout stay clean.
    """

    def __init__(self, n_reports=10, sink=None):
        self.n_reports = n_reports
        self.sink = sink

    def on_train_begin(self, net, **kwargs):
        self.start_ = time.perf_counter()

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        every = max(1, net.max_epochs // self.n_reports)
        if epoch % every and epoch != net.max_epochs:
            return
        row = net.history[-1]
        terms = "  ".join(
            f"{key}={row[key]:.4g}" for key in ("train_loss", *REPORTED_TERMS) if key in row
        )
        elapsed = time.perf_counter() - self.start_
        line = f"epoch {epoch:>4}/{net.max_epochs}  {terms}  [{elapsed:.1f}s]"
        (self.sink or (lambda text: print(text, file=sys.stderr, flush=True)))(line)


class NonFiniteLossGuard(Callback):
    """Stop training with :class:`~factvae_sk.exceptions.NonFiniteLossError` when a loss term
    recorded in an epoch is NaN or infinite.

    It reads the per-batch values the net already records in the history, once per epoch,
    so it adds no device synchronization to the training steps.
    """

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        bad = []
        for batch in row.get("batches", ()):
            for key, value in batch.items():
                if key not in bad and not _is_finite(value):
                    bad.append(key)
        if bad:
            raise NonFiniteLossError(
                f"The training loss became non-finite (NaN or infinite) in epoch "
                f"{row['epoch']}: term(s) {', '.join(bad)}. Training stopped and the model "
                "was discarded. Lower the learning rate or the loss weights, or check the "
                "input counts.",
                epoch=row["epoch"],
                terms=bad,
            )


def _is_finite(value):
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):  # not a number: nothing to check
        return True
