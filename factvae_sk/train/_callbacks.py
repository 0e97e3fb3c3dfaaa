"""skorch callbacks: per-optimizer learning-rate decay and a text progress bar."""

import math
import sys
import time

from skorch.callbacks import Callback
from torch.optim.lr_scheduler import ExponentialLR

from ..exceptions import NonFiniteLossError

REPORTED_TERMS = ("nll_rna", "kl_rna", "nll_atac", "kl_atac", "prior", "distill", "mmd")


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


def _clock(seconds):
    """``m:ss`` (or ``h:mm:ss``) for a duration in seconds."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressLog(Callback):
    """A text progress bar of training: epoch i/N, elapsed time, ETA and the loss.

    On a terminal the bar is redrawn in place every epoch and a line with every loss term
    follows at the end. Elsewhere (a log file, a notebook capturing stderr, CI) that would be
    noise, so a full line is printed about ``n_reports`` times instead.

    Parameters
    ----------
    n_reports : int
        How many lines to print over the run when not on a terminal (the last epoch always
        prints).
    sink : callable
        Where lines go (forces the line mode); stderr by default so results on stdout stay
        clean.
    width : int
        Characters of the bar itself.
    """

    def __init__(self, n_reports=10, sink=None, width=20):
        self.n_reports = n_reports
        self.sink = sink
        self.width = width

    def on_train_begin(self, net, **kwargs):
        self.start_ = time.perf_counter()
        self.first_epoch_ = len(net.history)
        self.redraw_ = self.sink is None and sys.stderr.isatty()

    def _bar(self, done, total):
        elapsed = time.perf_counter() - self.start_
        eta = elapsed / done * (total - done) if done else 0.0
        filled = int(self.width * done / total) if total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        return f"epoch {done:>4}/{total} [{bar}] {_clock(elapsed)}<{_clock(eta)}"

    def on_epoch_end(self, net, **kwargs):
        total = net.max_epochs
        # Epochs of this fit (a warm start continues an existing history).
        done = len(net.history) - self.first_epoch_
        row = net.history[-1]
        if self.redraw_:
            loss = f"  loss {row['train_loss']:.5g}" if "train_loss" in row else ""
            end = "\n" if done >= total else ""
            print(f"\r{self._bar(done, total)}{loss}", end=end, file=sys.stderr, flush=True)
            if done < total:
                return
        else:
            every = max(1, total // self.n_reports)
            if done % every and done != total:
                return
        terms = "  ".join(
            f"{key}={row[key]:.4g}" for key in ("train_loss", *REPORTED_TERMS) if key in row
        )
        line = f"{self._bar(done, total)}  {terms}"
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
