"""What every part of :class:`~factvae_sk.FactVAE` may ask of a fitted model.

The estimator is assembled from mixins (``_training_setup``, ``_cell_inputs``,
``_analysis_mixin``) and ``_estimator`` itself. They talk only through the methods below and
through the layer under them, never through each other's helpers:

- :class:`FactVAEBase` (this module): names of the features, inference batches, posterior
  means, the ATAC decoder's embedding and the decoders' intercepts, read from the fitted
  skorch net ``net_``;
- ``CellInputsMixin``: counts checked and turned into the dataset the module reads;
- ``FactVAEAnalysisMixin``: downstream analysis, on the two above;
- ``FactVAE``: fit, transform, score and persistence, on all of them.
"""

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from ..data._dataset import iter_batches


class FactVAEBase:
    """Read access to a fitted model, shared by the estimator and its mixins.

    Relies on the fitted attributes ``net_``, ``batch_size``, ``n_features_in_``,
    ``n_peaks_in_``, ``atac_feature_names_in_`` (and ``feature_names_in_`` when fit saw
    DataFrames).
    """

    @property
    def module_(self):
        check_is_fitted(self, "net_")
        return self.net_.module_

    def _names(self, kind, table=None):
        """Gene or peak names: from fit's DataFrames, else from ``table``, else positions."""
        if kind == "gene":
            known, n = getattr(self, "feature_names_in_", None), self.n_features_in_
        else:
            known, n = self.atac_feature_names_in_, self.n_peaks_in_
        if known is not None:
            return np.asarray(known, dtype=object)
        if isinstance(table, pd.DataFrame) and kind in table.columns:
            return table[kind].to_numpy(dtype=object)
        if table is not None and not isinstance(table, pd.DataFrame):
            return np.asarray(table, dtype=object)
        return np.arange(n)

    def _inference_batches(self, dataset):
        """Yield ``(X, y)`` batches on the module's device with the module in eval mode."""
        module = self.net_.module_
        module.eval()
        device = next(module.parameters()).device
        yield from iter_batches(dataset, max(self.batch_size, 256), device)

    def _codes(self, dataset, blocks):
        """Posterior means of the given modalities' encoders, side by side, as float32."""
        module = self.net_.module_
        parts = []
        with torch.no_grad():
            for X, _ in self._inference_batches(dataset):
                codes = [
                    module.encode(block, X[f"{block}_input"], X.get("batch"))[0] for block in blocks
                ]
                parts.append(torch.cat(codes, dim=1).cpu().numpy())
        return np.concatenate(parts, axis=0)

    def _peak_embedding_tensor(self):
        return self.net_.module_.decoder_atac.feature_embedding.detach()

    def _decoder_intercepts(self, block):
        """The ``"rna"`` or ``"atac"`` decoder's learned per-feature intercepts (None when it
        has none)."""
        intercept = getattr(getattr(self.net_.module_, f"decoder_{block}"), "intercept", None)
        return None if intercept is None else intercept.detach().cpu().numpy()
