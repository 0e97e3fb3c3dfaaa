"""Module paths of factvae_sk 0.1 before its modules were grouped into subpackages.

A ``model.joblib`` pickled by that layout names classes by their old modules (e.g.
``factvae_sk._estimator.FactVAE``, ``factvae_sk._net.FactVAENet``). The finder below answers an
import of such an old path with the module that now holds the code, so those files still load.
Nothing in the package imports the old paths; weights-only ``FactVAE.save`` files store no
module paths at all.
"""

import importlib
import importlib.abc
import importlib.util
import sys

OLD_PATHS = {
    "_memory": "utils._memory",
    "_atomic": "utils._atomic",
    "_malloc": "utils._malloc",
    "_device": "utils._device",
    "_validation": "data._validation",
    "_row_blocks": "data._row_blocks",
    "_block_svd": "data._block_svd",
    "_preprocessing": "data._preprocessing",
    "_batches": "data._batches",
    "_harmony": "data._harmony",
    "_mosaic": "data._mosaic",
    "_data": "data._dataset",
    "_io": "data._io",
    "_modules": "nn._modules",
    "_distributions": "nn._distributions",
    "_losses": "nn._losses",
    "_net": "train._net",
    "_callbacks": "train._callbacks",
    "_holdout": "train._holdout",
    "_distributed": "train._distributed",
    "_accessibility": "analysis._accessibility",
    "_links": "analysis._link_scores",
    "_differential": "analysis._differential",
    "_chromvar": "analysis._chromvar",
    "_motif_scan": "analysis._motif_scan",
    "_cross_modal": "analysis._cross_modal",
    "_estimator": "model._estimator",
    "_training": "model._training_setup",
    "_analysis": "model._analysis_mixin",
    "_cell_inputs": "model._cell_inputs",
    "_persistence": "model._persistence",
    "_job": "app._job",
    "_plots": "app._plots",
    "_cell_map": "app._cell_map",
}


class _OldPathLoader(importlib.abc.Loader):
    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        pass  # the target module is already executed


class OldPathFinder(importlib.abc.MetaPathFinder):
    """Resolve ``factvae_sk.<old>`` to ``factvae_sk.<subpackage>.<new>``."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != "factvae_sk" or name not in OLD_PATHS:
            return None
        return importlib.util.spec_from_loader(
            fullname, _OldPathLoader(f"factvae_sk.{OLD_PATHS[name]}")
        )


def install():
    if not any(isinstance(finder, OldPathFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, OldPathFinder())  # before any finder that could see a stale file
