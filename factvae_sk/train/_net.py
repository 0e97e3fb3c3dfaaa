"""The skorch net that trains FactVAE: a main step, then a distillation step, per batch.

Everything is done through skorch's documented hooks: ``initialize_optimizer`` registers the
second optimizer (so ``set_params(optimizer_atac__lr=...)`` works like any optimizer
parameter), ``train_step`` runs the two updates, ``get_loss`` calls the criterion with the
decoders' feature embeddings and logs each loss term in the history; with a validation split,
``validation_step`` also logs the held-out cells' unweighted ELBO (``valid_elbo``) and its terms.

Four small hooks (``_core``, ``_backward``, ``_distillation_batch``, ``_synchronized``) are
where the data-parallel net of :mod:`factvae_sk.train._distributed` differs; here they do nothing.
"""

from contextlib import nullcontext

import torch
from skorch import NeuralNet
from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator, to_tensor

from ..nn._losses import similarity_distillation_loss
from ..utils._malloc import heap_allocations

# The unweighted terms whose negative sum is the ELBO (the quantity FactVAE.score reports).
ELBO_TERMS = ("nll_rna", "kl_rna", "nll_atac", "kl_atac")


class FactVAENet(NeuralNet):
    """skorch ``NeuralNet`` for :class:`~factvae_sk.nn._modules.FactVAEModule`.

    Per batch: (1) one step of ``optimizer_`` over all parameters on the criterion's loss;
    (2) when the module has ATAC, one step of ``optimizer_atac_`` over the ATAC encoder
    alone on the similarity-distillation loss, with the RNA encoder as a detached teacher.

    Parameters
    ----------
    optimizer_atac : torch optimizer class, default=torch.optim.Adam
        Optimizer of the distillation step. Its arguments take the ``optimizer_atac__``
        prefix (e.g. ``optimizer_atac__lr``).
    precision : {"32", "bf16"}, default="32"
        "bf16": the training forward passes (encoders and decoder products) run under
        ``torch.autocast`` in bfloat16; the module hands float32 to the losses, so the
        likelihood sums, the KL and the similarity matrices of the distillation stay float32.
    *args, **kwargs
        As for :class:`skorch.NeuralNet`.
    """

    def __init__(self, *args, optimizer_atac=torch.optim.Adam, precision="32", **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer_atac = optimizer_atac
        self.precision = precision

    @property
    def _core(self):
        """The FactVAEModule itself (a data-parallel net wraps ``module_``)."""
        return self.module_

    def _autocast(self):
        if self.precision == "32":
            return nullcontext()
        device = next(self._core.parameters()).device
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def _backward(self, loss):
        loss.backward()

    def _distillation_batch(self, teacher, student):
        """The codes the distillation loss compares: this process's batch."""
        return teacher, student

    def _reduce_distillation_gradients(self):
        """Nothing to combine in one process."""

    def _synchronized(self, values):
        """The logged values of a step (loss first, then the terms), as this process saw them."""
        return values

    def initialize_optimizer(self, *args, **kwargs):
        named_parameters = self.get_all_learnable_params()
        args, kwargs = self.get_params_for_optimizer("optimizer", named_parameters)
        self.optimizer_ = self.optimizer(*args, **kwargs)
        if self._core.has_atac:
            named_parameters = self._core.encoder_atac.named_parameters()
            args, kwargs = self.get_params_for_optimizer("optimizer_atac", named_parameters)
            self.optimizer_atac_ = self.optimizer_atac(*args, **kwargs)
        return self

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        # Large per-step tensors reuse heap memory instead of faulting in fresh pages.
        with heap_allocations():
            return super().fit_loop(X, y, epochs=epochs, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        module = self._core
        y_true = to_tensor(y_true, device=self.device)
        atac_embedding = module.decoder_atac.feature_embedding if module.has_atac else None
        # The sample labels, for the MMD term (validation batches arrive on the host).
        batch = None if X is None or "batch" not in X else X["batch"].to(self.device)
        loss, terms = self.criterion_(
            y_pred,
            y_true,
            rna_embedding=module.decoder_rna.feature_embedding,
            atac_embedding=atac_embedding,
            batch=batch,
        )
        # Recorded by train_step (or validation_step) at the end of the step, in one transfer.
        self._pending_terms = terms
        return loss

    def train_step(self, batch, **fit_params):
        self._set_training(True)
        X, y = unpack_data(batch)
        X = to_tensor(X, device=self.device)

        self.optimizer_.zero_grad()
        with self._autocast():
            y_pred = self.infer(X, **fit_params)
        loss = self.get_loss(y_pred, y, X=X, training=True)
        self._backward(loss)
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        self.optimizer_.step()

        terms = self.__dict__.pop("_pending_terms", {})
        if self._core.has_atac:
            paired = y.get("paired")
            terms["distill"] = self.distillation_step(
                X, None if paired is None else paired.to(self.device)
            )
        # One host synchronisation per step for the logged terms (skorch's own
        # ``loss.item()`` then finds the step finished).
        stacked = torch.stack([loss.detach(), *terms.values()])
        values = self._synchronized(stacked)
        for name, value in zip(terms, values[1:].tolist(), strict=True):
            self.history.record_batch(name, value)
        # skorch logs ``loss``: this process's own, or across processes their mean.
        return {"loss": loss if values is stacked else values[0], "y_pred": y_pred}

    def validation_step(self, batch, **fit_params):
        """skorch's validation step (eval mode: posterior means, no dropout), which also
        records ``valid_elbo``: the batch's mean unweighted ``-(NLL + KL)`` per cell, summed
        over modalities, as :meth:`FactVAE.score` computes it (the loss weights are training
        choices, so the held-out fit is judged without them)."""
        step = super().validation_step(batch, **fit_params)
        terms = self.__dict__.pop("_pending_terms", {})
        terms = {name: terms[name] for name in ELBO_TERMS if name in terms}
        values = torch.stack(list(terms.values())).tolist()
        for name, value in zip(terms, values, strict=True):
            self.history.record_batch(f"valid_{name}", value)
        # Which term drives the held-out ELBO is logged too (valid_nll_atac, ...).
        self.history.record_batch("valid_elbo", -sum(values))
        return step

    def distillation_step(self, X, paired=None):
        """One step of ``optimizer_atac_``: pull the ATAC codes' cell-cell similarity
        structure towards the RNA codes' (posterior means of the batch, after the main step).

        ``paired``: boolean mask of the batch's cells measured by both modalities, the only
        ones distilled (no step when fewer than two). Returns the loss as a detached scalar
        tensor."""
        module = self._core
        if paired is not None:
            # Never with distributed training (the estimator refuses the two together):
            # the ranks' slices would differ in length.
            if int(paired.sum()) < 2:
                return torch.zeros((), device=self.device)
            X = {key: value[paired] for key, value in X.items()}
        self.optimizer_atac_.zero_grad()
        with self._autocast():
            with torch.no_grad():
                teacher, _, _ = module.encode("rna", X["rna_input"], X.get("batch"))
            student, _, _ = module.encode("atac", X["atac_input"], X.get("batch"))
        loss = similarity_distillation_loss(*self._distillation_batch(teacher, student))
        self._backward(loss)
        self._reduce_distillation_gradients()
        self.optimizer_atac_.step()
        return loss.detach()
