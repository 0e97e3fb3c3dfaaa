"""How the cells of a call reach the torch module: checked counts, encoder inputs, samples
and masks.

:class:`CellInputsMixin` is a base class of :class:`~factvae_sk.FactVAE`. It validates the
counts (in memory, or on disk as :class:`~factvae_sk.data._row_blocks.RowBlockCounts`) and turns
them, per-cell sample labels (``batch``) and observed-modality masks into the
:class:`~factvae_sk.data._dataset.PairedCountsDataset` the module reads, so that ``_estimator.py``
reads as the scikit-learn contract.
"""

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from ..data import _batches, _mosaic
from ..data._dataset import PairedCountsDataset
from ..data._row_blocks import RowBlockCounts
from ..data._validation import (
    SPARSE_FORMATS,
    check_counts,
    check_paired,
    feature_names,
    finish_counts,
    naming_errors,
    reject_text,
)
from ._base import FactVAEBase


def _atac_or_none(X_atac):
    """X_atac, or None when it is a 1-D target.

    A Pipeline hands its ``y`` to every step, so in front of a classifier FactVAE receives
    class labels in the X_atac slot: a 1-D array is never a cells x peaks matrix, so it is
    treated as such a target and ignored, as transformers ignore ``y``.
    """
    if X_atac is None:
        return None
    ndim = getattr(X_atac, "ndim", None)
    if ndim is None:  # a list, or another object that only converts to an array
        ndim = np.asarray(X_atac).ndim
    return None if ndim == 1 else X_atac


class CellInputsMixin(FactVAEBase):
    """Checked counts and datasets of a fitted (or fitting) :class:`~factvae_sk.FactVAE`
    (see each method)."""

    def _validate_counts(self, X_rna, X_atac, reset, observed=None):
        """Validate both modalities; return float32 CSR matrices (X_atac may be None).

        ``observed``: the masks of :func:`_mosaic.check_observed` (rows of a modality a
        cell lacks may be empty)."""
        X_atac = _atac_or_none(X_atac)
        if isinstance(X_rna, RowBlockCounts) or isinstance(X_atac, RowBlockCounts):
            if observed is not None:
                raise ValueError(
                    "rna_observed / atac_observed need the counts in memory; they are not "
                    "supported with counts read from disk (backed_counts) yet."
                )
            return self._validate_row_blocks(X_rna, X_atac, reset)
        reject_text(X_rna, "X_rna")
        with naming_errors("X_rna"):
            X_rna = validate_data(
                self,
                X_rna,
                accept_sparse=SPARSE_FORMATS,
                dtype=(np.float32, np.float64),
                ensure_min_samples=2 if reset else 1,
                # One gene normalizes to the same value in every cell: no signal to encode.
                # (After fit, a wrong gene count is reported by the feature-count check.)
                ensure_min_features=2 if reset else 1,
                reset=reset,
            )
        X_rna = finish_counts(
            X_rna, what="X_rna", observed=None if observed is None else observed["rna"]
        )
        if X_atac is None:
            if reset:
                self.n_peaks_in_ = 0
                self.atac_feature_names_in_ = None
            return X_rna, None
        if reset:
            X_atac_checked = check_counts(
                X_atac, what="X_atac", observed=None if observed is None else observed["atac"]
            )
            self.n_peaks_in_ = X_atac_checked.shape[1]
            self.atac_feature_names_in_ = feature_names(X_atac)
        else:
            if not self.n_peaks_in_:
                raise ValueError("This FactVAE was fitted without X_atac; it cannot use X_atac.")
            X_atac_checked = check_counts(
                X_atac,
                what="X_atac",
                n_features=self.n_peaks_in_,
                ensure_min_samples=1,
                observed=None if observed is None else observed["atac"],
            )
        check_paired(X_rna, X_atac_checked)
        return X_rna, X_atac_checked

    def _validate_row_blocks(self, X_rna, X_atac, reset):
        """Counts on disk (``RowBlockCounts``) get the same checks in a pass over blocks of
        rows and stay on disk; an in-memory partner gets the usual checks."""
        if isinstance(X_rna, RowBlockCounts):
            n_genes = None if reset else self.n_features_in_
            X_rna.check("X_rna", n_features=n_genes, ensure_min_samples=2 if reset else 1)
            if reset:
                self.n_features_in_ = X_rna.shape[1]
                self.__dict__.pop("feature_names_in_", None)
        else:
            X_rna, _ = self._validate_counts(X_rna, None, reset)
        if X_atac is None:
            if reset:
                self.n_peaks_in_, self.atac_feature_names_in_ = 0, None
            return X_rna, None
        n_peaks = None if reset else self.n_peaks_in_
        if not reset and not n_peaks:
            raise ValueError("This FactVAE was fitted without X_atac; it cannot use X_atac.")
        if isinstance(X_atac, RowBlockCounts):
            X_atac.check("X_atac", n_features=n_peaks, ensure_min_samples=2 if reset else 1)
            names = None
        else:
            names = feature_names(X_atac)
            X_atac = check_counts(
                X_atac, what="X_atac", n_features=n_peaks, ensure_min_samples=2 if reset else 1
            )
        if reset:
            self.n_peaks_in_, self.atac_feature_names_in_ = X_atac.shape[1], names
        check_paired(X_rna, X_atac)
        return X_rna, X_atac

    def _fit_input_corrections(self, dataset, observed, seed):
        """Learn ``batch_center_inputs``' per-sample correction from the training cells'
        encoder inputs as ``dataset`` holds them (before any correction), per modality on
        the cells that have it: mean offsets (True, ``batch_input_offsets_``) or Harmony
        states ("harmony", ``batch_input_harmony_``)."""
        harmony = isinstance(self.batch_center_inputs, str)
        fitted = {}
        for name, (inputs, _, _) in dataset.modalities.items():
            mask = None if observed is None else observed[name]
            if harmony:
                fitted[name] = _batches.input_harmony(
                    inputs, dataset.batch, mask, random_state=seed, theta=self.batch_harmony_theta
                )
            else:
                fitted[name] = _batches.input_offsets(inputs, dataset.batch, mask)
        if harmony:
            self.batch_input_harmony_ = fitted
        else:
            self.batch_input_offsets_ = fitted

    def _dataset(self, X_rna, X_atac, with_counts, batch_onehot=None, observed=None):
        dataset = self._raw_dataset(X_rna, X_atac, with_counts, batch_onehot, observed)
        return self._center_inputs(dataset, observed)

    def _center_inputs(self, dataset, observed=None):
        """Correct each cell's encoder inputs for its sample, with ``batch_center_inputs``
        (the dataset unchanged otherwise): subtract its sample's offset (True) or map it
        through Harmony ("harmony")."""
        offsets = getattr(self, "batch_input_offsets_", None)
        harmony = getattr(self, "batch_input_harmony_", None)
        if (offsets is None and harmony is None) or dataset.batch is None:
            return dataset
        for name in dataset.modalities:
            if name not in (offsets or harmony):
                continue
            encoder_input, counts, log_library = dataset.modalities[name]
            if offsets is not None:
                shifted = encoder_input - dataset.batch @ offsets[name]
            else:
                shifted = _batches.apply_harmony(encoder_input, dataset.batch, harmony[name])
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
        if (
            getattr(module, "batch_in_encoders", False)
            or getattr(self, "batch_input_offsets_", None) is not None
            or getattr(self, "batch_input_harmony_", None) is not None
        ):
            return self._batch_onehot(batch, n_cells, what)
        if batch is not None:
            self._batch_onehot(batch, n_cells, what)
        return None

    def _fit_code_integration(self, dataset, codes):
        """After a fit with ``batch``: Harmony on the training cells' codes (``codes``, the
        posterior means of ``dataset``'s modalities side by side), one state per modality
        (``batch_code_harmony_``), so that :meth:`transform` returns codes in which the
        samples mix. Each modality's state is fitted on the cells that have it; without
        ``batch`` the attribute is None and the codes are returned as the encoders give
        them."""
        self.batch_code_harmony_ = None
        if dataset.batch is None:
            return
        blocks = tuple(dataset.modalities)
        n = self.n_latent
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        self.batch_code_harmony_ = _batches.code_harmony(
            {name: codes[:, i * n : (i + 1) * n] for i, name in enumerate(blocks)},
            dataset.batch,
            dataset.observed,
            random_state=seed,
        )

    def _integrated(self, codes, blocks, batch, what):
        """``codes`` (the ``blocks`` side by side) mapped through ``batch_code_harmony_``
        by each cell's sample (unchanged for a model fitted without ``batch``)."""
        states = getattr(self, "batch_code_harmony_", None)
        if states is None:  # (a given batch was checked with the encoders' inputs)
            return codes
        onehot = self._batch_onehot(batch, codes.shape[0], what)
        n = self.n_latent
        for i, block in enumerate(blocks):
            part = slice(i * n, (i + 1) * n)
            codes[:, part] = _batches.apply_harmony(codes[:, part], onehot, states[block])
        return codes

    def _mosaic_codes(self, X_rna, X_atac, batch, observed):
        """transform for cells with one modality: both codes, the missing one carried over
        from the present one (``missing_code``)."""
        X_rna, X_atac = self._validate_counts(X_rna, X_atac, reset=False, observed=observed)
        batch_onehot = self._encoder_batch(batch, X_rna.shape[0], "transform")
        dataset = self._dataset(
            X_rna, X_atac, with_counts=False, batch_onehot=batch_onehot, observed=observed
        )
        codes = _mosaic.fill_missing(
            self._codes(dataset, ("rna", "atac")),
            observed,
            self.training_codes_,
            self.n_latent,
            self.missing_code,
        )
        codes = self._integrated(codes, ("rna", "atac"), batch, "transform")
        n = self.n_latent
        return {"rna": codes[:, :n], "atac": codes[:, n:], "joint": codes}[self.embedding]
