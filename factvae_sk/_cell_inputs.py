"""How the cells of a call reach the torch module: their encoder inputs, samples and masks.

:class:`CellInputsMixin` is a base class of :class:`~factvae_sk.FactVAE`. It turns validated
counts, per-cell sample labels (``batch``) and observed-modality masks into the
:class:`~factvae_sk._data.PairedCountsDataset` the module reads, so that ``_estimator.py``
reads as the scikit-learn contract.
"""

from . import _batches, _mosaic
from ._data import PairedCountsDataset


class CellInputsMixin:
    """Datasets of a fitted (or fitting) :class:`~factvae_sk.FactVAE` (see each method)."""

    def _input_offsets(self, X_rna, X_atac, batch_onehot, observed):
        """Per-sample encoder-input offsets (see ``batch_center_inputs``)."""
        offsets = {}
        for name, X in (("rna", X_rna), ("atac", X_atac)):
            if X is None:
                continue
            transformer = getattr(self, f"{name}_encoder_input_")
            mask = None if observed is None else observed[name]
            inputs = (
                transformer.transform(X)
                if mask is None
                else _mosaic.encoder_input(transformer, X, mask)
            )
            offsets[name] = _batches.input_offsets(inputs, batch_onehot, mask)
        return offsets

    def _dataset(self, X_rna, X_atac, with_counts, batch_onehot=None, observed=None):
        dataset = self._raw_dataset(X_rna, X_atac, with_counts, batch_onehot, observed)
        return self._center_inputs(dataset, observed)

    def _center_inputs(self, dataset, observed=None):
        """Subtract each cell's sample offset from its encoder inputs, with
        ``batch_center_inputs`` (the dataset unchanged otherwise)."""
        offsets = getattr(self, "batch_input_offsets_", None)
        if offsets is None or dataset.batch is None:
            return dataset
        for name, offset in offsets.items():
            if name in dataset.modalities:
                encoder_input, counts, log_library = dataset.modalities[name]
                shifted = encoder_input - dataset.batch @ offset
                if observed is not None:  # missing rows stay zero
                    shifted[~observed[name]] = 0.0
                dataset.modalities[name] = (shifted, counts, log_library)
        return dataset

    def _raw_dataset(self, X_rna, X_atac, with_counts, batch_onehot=None, observed=None):
        if observed is not None:
            return PairedCountsDataset(
                rna_input=_mosaic.encoder_input(self.rna_encoder_input_, X_rna, observed["rna"]),
                rna_counts=X_rna if with_counts else None,
                rna_log_library=_mosaic.log_library(X_rna, observed["rna"]),
                atac_input=_mosaic.encoder_input(
                    self.atac_encoder_input_, X_atac, observed["atac"]
                ),
                atac_counts=X_atac if with_counts else None,
                atac_log_library=_mosaic.log_library(X_atac, observed["atac"]),
                batch=batch_onehot,
                observed=observed,
            )
        return PairedCountsDataset(
            rna_input=self.rna_encoder_input_.transform(X_rna),
            rna_counts=X_rna if with_counts else None,
            atac_input=None if X_atac is None else self.atac_encoder_input_.transform(X_atac),
            atac_counts=X_atac if with_counts else None,
            batch=batch_onehot,
        )

    def _batch_onehot(self, batch, n_cells, what, name="batch"):
        """One-hot rows of the cells' samples for the module (None without batches)."""
        categories = getattr(self, "batch_categories_", None)
        _batches.check_given(categories, batch, what)
        if categories is None:
            return None
        codes = _batches.indices(batch, categories, n_cells, name)
        return _batches.one_hot(codes, len(categories))

    def _encoder_batch(self, batch, n_cells, what):
        """The one-hot batch the encoders need: None when they do not see the sample
        (decoder-only conditioning), where ``batch`` is optional and only checked."""
        module = self.net_.module_
        if getattr(module, "batch_in_encoders", False) or (
            getattr(self, "batch_input_offsets_", None) is not None
        ):
            return self._batch_onehot(batch, n_cells, what)
        if batch is not None:
            self._batch_onehot(batch, n_cells, what)
        return None

    def _mosaic_codes(self, X_rna, X_atac, batch, observed):
        """transform for cells with one modality: both codes, the missing one borrowed."""
        X_rna, X_atac = self._validate_counts(X_rna, X_atac, reset=False, observed=observed)
        batch_onehot = self._encoder_batch(batch, X_rna.shape[0], "transform")
        dataset = self._dataset(
            X_rna, X_atac, with_counts=False, batch_onehot=batch_onehot, observed=observed
        )
        codes = _mosaic.fill_missing(
            self._codes(dataset, ("rna", "atac")), observed, self.training_codes_, self.n_latent
        )
        n = self.n_latent
        return {"rna": codes[:, :n], "atac": codes[:, n:], "joint": codes}[self.embedding]
