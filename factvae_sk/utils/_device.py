"""Which torch device a fit or a load runs on (used by the estimator and by model files)."""

import torch
from sklearn.utils._param_validation import InvalidParameterError


def cuda_devices(device):
    """The CUDA devices whose random state a fit on ``device`` uses (none on the CPU)."""
    return list(range(torch.cuda.device_count())) if str(device).startswith("cuda") else []


def resolve_device(device):
    """``"auto"`` becomes CUDA when available, else the CPU; anything else must be a device."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InvalidParameterError(
            f"The 'device' parameter of FactVAE must be 'auto' or a torch device such as "
            f"'cpu' or 'cuda:0'. Got {device!r} instead."
        ) from error
    return device
