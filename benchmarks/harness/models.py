"""A fitted model kept on disk: load it where it was saved, else fit it and save it."""

import os
import time
from pathlib import Path

import joblib


def model_path(folder, *parts, **params):
    """``folder/PARTS_KEYVALUE....joblib`` (``None`` when ``folder`` is): one file per fit.

    ``model_path("models", "snare", "e100", "s0", atac_intercepts=True)`` is
    ``models/snare_e100_s0_atac_interceptsTrue.joblib``.
    """
    if not folder:
        return None
    tag = "".join(f"_{key}{value}" for key, value in params.items())
    return os.path.join(folder, "_".join(map(str, parts)) + tag + ".joblib")


def load_or_fit(path, fit, message="fit in {seconds} s"):
    """The model saved at ``path`` if there is one; else ``fit()``, saved there.

    ``path`` may be ``None`` (always fit, save nothing). After a fit, ``message`` is printed
    (unless ``None``), its ``{seconds}`` replaced by the fit's whole seconds.
    """
    if path and os.path.exists(path):
        return joblib.load(path)
    start = time.perf_counter()
    model = fit()
    if message is not None:
        print(message.replace("{seconds}", f"{time.perf_counter() - start:.0f}"), flush=True)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, path)
    return model
