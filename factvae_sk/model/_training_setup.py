"""How the estimator's parameters become the skorch net that trains FactVAE.

:class:`TrainingSetupMixin` is a base class of :class:`~factvae_sk.FactVAE`: it assembles
the net (module, criterion, both optimizers, callbacks, validation split) from the
constructor parameters and the fitted preprocessing, so that ``_estimator.py`` reads as the
scikit-learn contract.
"""

import numpy as np
import torch
from skorch.callbacks import PassthroughScoring

from ..data._dataset import collate_batch
from ..nn._losses import FactVAELoss
from ..nn._modules import FactVAEModule
from ..train import _distributed, _holdout
from ..train._callbacks import REPORTED_TERMS, ExponentialLRDecay, NonFiniteLossGuard, ProgressLog
from ..train._net import FactVAENet

# ``max_epochs="auto"``: as many epochs as give this many gradient steps, at most the
# method's 300. 3,700 steps are 100 epochs of the kidney (4749 cells, batch 128), which
# cluster it at least as well as its 300 (benchmarks page, "Training length"); data of up to
# 1,578 cells (the cell lines: 1047, 8 steps an epoch) keep the method's 300 epochs.
AUTO_STEPS = 3_700
AUTO_MAX_EPOCHS = 300


def auto_epochs(n_train, batch_size):
    """The epochs of ``max_epochs="auto"`` for ``n_train`` training cells.

    An epoch has ``n_train // batch_size`` steps (the incomplete last batch is dropped; the
    batch is capped at ``n_train``): enough epochs for :data:`AUTO_STEPS` steps, at most
    :data:`AUTO_MAX_EPOCHS`.
    """
    steps = max(n_train // max(min(batch_size, n_train), 1), 1)
    return int(min(AUTO_MAX_EPOCHS, -(-AUTO_STEPS // steps)))


class TrainingSetupMixin:
    """The skorch net of a FactVAE fit (see the module docstring)."""

    def _n_epochs(self, n_train):
        """``max_epochs`` resolved: ``"auto"`` becomes a number for ``n_train`` cells."""
        if self.max_epochs == "auto":
            return auto_epochs(n_train, self.batch_size)
        return self.max_epochs

    def _loss_params(self, prior_entries):
        return dict(
            rna_likelihood=self.rna_likelihood,
            atac_likelihood=self.atac_likelihood,
            rna_nll_weight=self.rna_nll_weight,
            rna_kl_weight=self.rna_kl_weight,
            atac_nll_weight=self.atac_nll_weight,
            atac_kl_weight=self.atac_kl_weight,
            prior_weight=self.prior_weight,
            prior=prior_entries,
            batch_mmd_weight=self.batch_mmd_weight,
        )

    def _initial_intercepts(self, X_atac):
        """``atac_intercepts`` start at each peak's centred log share of the training counts.

        From zero, Adam's small steps leave them near zero after a few hundred epochs; from
        the data, the embeddings need not spend their rank on each peak's baseline. (After
        :meth:`load`, ``X_atac`` is an empty placeholder: the saved values replace these.)
        """
        if not self.atac_intercepts or X_atac is None:
            return False
        totals = np.asarray(X_atac.sum(axis=0), dtype=np.float64).ravel()
        if not totals.any():
            return True
        log_share = np.log((totals + 1.0) / (totals.sum() + len(totals)))
        return (log_share - log_share.mean()).astype(np.float32)

    def _split(self, n_cells, seed):
        """Choose the validation cells (kept in ``validation_indices_``); return the number
        of training cells and the net's ``train_split`` (None without validation)."""
        fraction = self.validation_fraction
        if fraction is None and self.early_stopping:
            fraction = 0.1
        if fraction is None:
            self.validation_indices_ = None
            return n_cells, None
        train, valid = _holdout.held_out_cells(n_cells, fraction, seed)
        self.validation_indices_ = valid
        return len(train), _holdout.train_split(train, valid)

    def _callbacks(self, has_atac, has_prior):
        callbacks = [
            ("finite_loss", NonFiniteLossGuard()),
            ("decay", ExponentialLRDecay("optimizer", self.lr_decay)),
            ("decay_atac", ExponentialLRDecay("optimizer_atac", self.lr_decay)),
        ]
        # The MMD term exists only with samples and a weight: no column otherwise.
        has_mmd = self.batch_mmd_weight > 0 and getattr(self, "batch_categories_", None) is not None
        callbacks += [
            (name, PassthroughScoring(name, on_train=True))
            for name in REPORTED_TERMS
            if has_atac or name.endswith("_rna") or name == "mmd"
            if name != "prior" or has_prior
            if name != "mmd" or has_mmd
        ]
        if self.verbose == 1:
            callbacks.append(("progress", ProgressLog()))
        callbacks += list(self.callbacks or [])
        if self.validation_fraction is not None or self.early_stopping:
            callbacks += _holdout.holdout_callbacks(
                self.early_stopping,
                self.n_iter_no_change,
                self.verbose,
                self.early_stopping_metric,
            )
        return callbacks

    def _build_net(
        self, n_train, n_genes, X_atac, prior_entries, device, train_split=None, accelerator=None
    ):
        """The skorch net; ``n_train``: the number of training cells (caps the batch).

        With an ``accelerator``, the data-parallel net (which leaves devices to accelerate).
        """
        has_atac = X_atac is not None
        categories = getattr(self, "batch_categories_", None)
        # Without batch the module gets no batch arguments at all: the method exactly.
        batch_params = (
            {}
            if categories is None
            else {
                "module__n_batch": len(categories),
                "module__batch_in_encoders": self.batch_conditioning == "encoder_decoder",
                "module__batch_dispersion": self.batch_dispersion,
            }
        )
        callbacks = self._callbacks(has_atac, prior_entries is not None)
        net_class, extra = FactVAENet, {}
        if accelerator is not None:
            net_class = _distributed.DistributedFactVAENet
            # accelerate's print shows rank 0's epoch table; skorch would print it whatever
            # the verbosity, so a silent sink below verbose=2.
            sink = accelerator.print if self.verbose >= 2 else _distributed.silent
            extra = {"accelerator": accelerator, "callbacks__print_log__sink": sink}
            device = None
        return net_class(
            module=FactVAEModule,
            module__n_input_rna=self.rna_encoder_input_.pca_.n_components_,
            module__n_genes=n_genes,
            module__n_input_atac=(self.atac_encoder_input_.svd_.n_components if has_atac else None),
            module__n_peaks=X_atac.shape[1] if has_atac else None,
            module__n_latent=self.n_latent,
            module__rna_hidden_sizes=tuple(self.rna_hidden_sizes),
            module__atac_hidden_sizes=tuple(self.atac_hidden_sizes),
            module__dropout=self.dropout,
            module__atac_intercepts=self._initial_intercepts(X_atac),
            **batch_params,
            criterion=FactVAELoss,
            **{f"criterion__{k}": v for k, v in self._loss_params(prior_entries).items()},
            optimizer=torch.optim.Adam,
            lr=self.lr,
            optimizer_atac=torch.optim.Adam,
            max_epochs=self._n_epochs(n_train),
            batch_size=min(self.batch_size, n_train),
            iterator_train__shuffle=True,
            iterator_train__drop_last=True,
            iterator_train__collate_fn=collate_batch,
            iterator_valid__collate_fn=collate_batch,
            train_split=train_split,
            callbacks=callbacks,
            device=device,
            verbose=1 if self.verbose >= 2 else 0,
            precision=self.precision,
            # The distillation optimizer exists only with ATAC; skorch rejects its
            # parameters otherwise.
            **({"optimizer_atac__lr": self.lr_distillation} if has_atac else {}),
            **extra,
        )
