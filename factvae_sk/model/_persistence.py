"""Weights-only files for :class:`FactVAE`: numeric arrays and JSON, never pickle.

Pickle and joblib files run code when they are loaded, so they are safe only from trusted
sources. :meth:`FactVAE.save` writes one ``.npz`` archive instead: every array of the
model (network weights, preprocessing components, random state) as a plain numeric array,
and one JSON document (constructor parameters, feature names, history, versions, and how
to rebuild each fitted part). :meth:`FactVAE.load` reads it with
``numpy.load(allow_pickle=False)`` and ``json``, rebuilds only classes from a fixed list,
and refuses any file that holds a pickled object.

The file records the package version and a format version. A file from a newer format, or
a damaged one (not a zip, truncated, an array missing or of the wrong shape), is a
``ValueError`` that says so, never an error from deep inside numpy or torch. Saving is
atomic: the file is written beside its destination and moved over it once complete.
"""

import json
import os
import zipfile
import zlib

import numpy as np
import sklearn
import torch
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler
from skorch.history import History

from ..data._preprocessing import ATACEncoderInput, RNAEncoderInput
from ..utils._atomic import atomic_path
from ..utils._device import resolve_device

FORMAT = "factvae_sk-weights"
FORMAT_VERSION = 1
_META = "__meta__.json"

# The only classes a file may ask to rebuild (the preprocessing transformers and the
# RNA-to-ATAC latent map).
_CLASSES = {
    cls.__name__: cls
    for cls in (RNAEncoderInput, ATACEncoderInput, StandardScaler, PCA, TruncatedSVD, RidgeCV)
}
# Fitted attributes rebuilt from the network (see FactVAE._finish_fit), not stored.
_DERIVED = {"feature_embeddings_"}


def _jsonable(value):
    """JSON fallback for numpy and torch scalars (e.g. in the history)."""
    if isinstance(value, (np.generic, torch.Tensor)) and np.ndim(value) == 0:
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} in a weights-only file")


class _Writer:
    def __init__(self):
        self.arrays = {}

    def array(self, name, value):
        value = np.asarray(value)
        if value.dtype.hasobject:
            raise TypeError(f"cannot store {name!r}: object arrays need pickle")
        self.arrays[name] = value
        return {"array": name}

    def value(self, name, value):
        """Describe ``value`` in JSON, putting its arrays under ``name`` in the archive."""
        if isinstance(value, BaseEstimator) and type(value).__name__ in _CLASSES:
            attrs = {k: self.value(f"{name}.{k}", v) for k, v in vars(value).items()}
            return {"estimator": type(value).__name__, "attrs": attrs}
        if isinstance(value, torch.Tensor):
            return self.array(name, value.detach().cpu().numpy())
        if isinstance(value, (np.ndarray, np.generic)):
            out = self.array(name, value)
            return {**out, "scalar": True} if isinstance(value, np.generic) else out
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"json": value}
        if isinstance(value, (tuple, list)):
            kind = "tuple" if isinstance(value, tuple) else "list"
            return {kind: [self.value(f"{name}.{i}", v) for i, v in enumerate(value)]}
        if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
            return {"dict": [[k, self.value(f"{name}.{k}", v)] for k, v in value.items()]}
        raise TypeError(
            f"cannot store {name!r} of type {type(value).__name__} in a weights-only file"
        )


def _read(desc, arrays):
    """Inverse of ``_Writer.value``."""
    if "array" in desc:
        array = arrays[desc["array"]]
        return array[()] if desc.get("scalar") else array
    if "json" in desc:
        return desc["json"]
    if "tuple" in desc:
        return tuple(_read(d, arrays) for d in desc["tuple"])
    if "list" in desc:
        return [_read(d, arrays) for d in desc["list"]]
    if "dict" in desc:
        return {key: _read(d, arrays) for key, d in desc["dict"]}
    if "estimator" in desc:
        cls = _CLASSES.get(desc["estimator"])
        if cls is None:
            raise ValueError(f"refusing to rebuild class {desc['estimator']!r}: not allowed")
        obj = cls.__new__(cls)
        for key, value in desc["attrs"].items():
            setattr(obj, key, _read(value, arrays))
        return obj
    raise ValueError(f"unreadable entry in the model file: {desc!r}")


def save_model(model, path):
    """Write ``model`` (a fitted FactVAE) to ``path`` as ``.npz``; see :meth:`FactVAE.save`."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "net_")
    writer = _Writer()
    params = model.get_params(deep=False)
    # Callbacks are arbitrary objects: they are not saved (set them again after loading).
    params["callbacks"] = None
    params["device"] = str(params["device"])
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        params["random_state"] = None
    fitted = {}
    for key, value in vars(model).items():
        if not key.endswith("_") or key.startswith("__") or key in _DERIVED or key == "net_":
            continue
        if key.endswith("feature_names_in_") and value is not None:
            value = [str(v) for v in value]
            fitted[key] = {"names": value}
        else:
            fitted[key] = writer.value(key, value)
    net = model.net_
    for key, tensor in net.module_.state_dict().items():
        writer.array(f"module::{key}", tensor.detach().cpu().numpy())
    criterion = net.criterion_
    prior = None
    if getattr(criterion, "has_prior", False):
        prior = [
            writer.array("prior.rows", criterion.prior_rows.cpu().numpy()),
            writer.array("prior.cols", criterion.prior_cols.cpu().numpy()),
            writer.array("prior.values", criterion.prior_values.cpu().numpy()),
        ]
    optimizers = {
        name: writer.value(name, getattr(net, name).state_dict())
        for name in ("optimizer_", "optimizer_atac_")
        if hasattr(net, name)
    }
    rng_state = getattr(model, "_rng_state", None)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": {
            "factvae_sk": _package_version(),
            "torch": torch.__version__,
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
        },
        "params": writer.value("params", params),
        "fitted": fitted,
        "n_genes": int(model.n_features_in_),
        "batch_size": int(net.batch_size),
        "prior": prior,
        "optimizers": optimizers,
        "rng_state": None if rng_state is None else writer.value("rng_state", rng_state),
        "history": json.loads(json.dumps(list(net.history), default=_jsonable)),
    }
    writer.arrays[_META] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    path = os.fspath(path)
    path = path if path.endswith(".npz") else path + ".npz"
    # An existing file stays intact until the new one is complete (see _atomic).
    with atomic_path(path) as tmp:
        np.savez(tmp, allow_pickle=False, **writer.arrays)
    return path


def _package_version():
    from .. import __version__

    return __version__


def _kind(path):
    """What the file's first bytes say it is: an npz (zip) or npy archive, or a pickle."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    if head.startswith(b"PK") or head.startswith(b"\x93NUMPY"):
        return "numpy"
    # Pickle protocol 2+ starts with 0x80; joblib may compress it (zlib, gzip, xz, lz4).
    if head[:1] in (b"\x80", b"x", b"\x1f") or head.startswith((b"\xfd7zXZ", b"\x04\x22\x4d\x18")):
        return "pickle"
    return "other"


def _refused(path):
    return ValueError(
        f"{os.fspath(path)!r} holds pickled Python objects, and loading a pickle can run "
        "arbitrary code: FactVAE.load refuses it. It reads only the weights-only files "
        "FactVAE.save writes (load pickles/joblib files from trusted sources only)."
    )


def _load_arrays(path):
    kind = _kind(path)
    if kind == "pickle":
        raise _refused(path)
    if kind == "other":
        raise ValueError(
            f"{os.fspath(path)!r} is not a model file written by FactVAE.save (not an .npz "
            "archive)."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError("a single array, not an archive")
            return {key: archive[key] for key in archive.files}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(
            f"{os.fspath(path)!r} is damaged or not a model file written by FactVAE.save "
            f"(cannot read it as an .npz archive: {type(error).__name__}: {error})."
        ) from error
    except ValueError as error:
        if "pickle" in str(error):
            raise _refused(path) from error
        raise ValueError(
            f"{os.fspath(path)!r} is not a model file written by FactVAE.save ({error})."
        ) from error


def _to_tensors(value):
    """Arrays back to tensors, recursively (optimizer state)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return torch.from_numpy(np.array(value))
    if isinstance(value, dict):
        return {key: _to_tensors(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_to_tensors(v) for v in value]
    return value


def load_model(cls, path, *, device="auto"):
    """Read a file written by :func:`save_model`; see :meth:`FactVAE.load`."""
    arrays = _load_arrays(path)
    if _META not in arrays:
        raise ValueError(f"{os.fspath(path)!r} is not a model file written by FactVAE.save.")
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
        format_version = meta.get("format_version")
        written_by = meta.get("versions", {}).get("factvae_sk", "unknown")
    except (ValueError, AttributeError) as error:
        raise _damaged(path, error) from error
    if meta.get("format") != FORMAT or not isinstance(format_version, int):
        raise ValueError(
            f"{os.fspath(path)!r} has format {meta.get('format')!r} version "
            f"{format_version!r}; this factvae_sk reads {FORMAT!r} version {FORMAT_VERSION}."
        )
    if format_version > FORMAT_VERSION:
        raise ValueError(
            f"{os.fspath(path)!r} was written by factvae_sk {written_by} in model-file format "
            f"version {format_version}; this factvae_sk ({_package_version()}) reads versions "
            f"up to {FORMAT_VERSION}. Upgrade factvae_sk to load it."
        )
    if format_version < FORMAT_VERSION:  # no older format exists yet
        raise ValueError(
            f"{os.fspath(path)!r} has model-file format version {format_version}, which this "
            f"factvae_sk ({_package_version()}) does not read."
        )
    device = resolve_device(device)
    try:
        return _rebuild(cls, meta, arrays, device)
    except (KeyError, IndexError, TypeError, RuntimeError, ValueError) as error:
        # A missing array, a wrong shape (load_state_dict), a mangled entry.
        raise _damaged(path, error) from error


def _damaged(path, error):
    detail = " ".join(str(error).split())[:300]
    return ValueError(
        f"{os.fspath(path)!r} is damaged: it does not hold a consistent FactVAE model "
        f"({type(error).__name__}: {detail}). Save the model again."
    )


def _rebuild(cls, meta, arrays, device):
    model = cls(**_read(meta["params"], arrays))
    for key, desc in meta["fitted"].items():
        value = np.asarray(desc["names"], dtype=object) if "names" in desc else _read(desc, arrays)
        setattr(model, key, value)
    prior = None
    if meta["prior"] is not None:
        prior = tuple(_read(d, arrays) for d in meta["prior"])
    state = {
        key.split("::", 1)[1]: torch.from_numpy(np.array(value))
        for key, value in arrays.items()
        if key.startswith("module::")
    }
    atac_shape = np.empty((0, model.n_peaks_in_)) if model.n_peaks_in_ else None
    with torch.random.fork_rng(devices=[]):
        # The rebuilt net's random initial weights are overwritten at once; forking keeps
        # the caller's torch random state untouched.
        # The batch size stands for the training cells: it only caps the batch.
        net = model._build_net(meta["batch_size"], meta["n_genes"], atac_shape, prior, device)
        net.initialize()
    net.module_.load_state_dict(state)
    # Adam's moments and step counts and the decayed learning rates: a warm start after
    # loading continues exactly as it would have without saving.
    for name, desc in meta["optimizers"].items():
        getattr(net, name).load_state_dict(_to_tensors(_read(desc, arrays)))
    net.history = History(meta["history"])
    model.net_ = net
    if meta["rng_state"] is not None:
        model._rng_state = list(_read(meta["rng_state"], arrays))
    return model._finish_fit()
