"""Refusing, before allocating it, a dense result too large for the machine.

A call such as ``impute_atac`` for every peak of many cells returns a dense array; past the
machine's memory it would swap for hours or be killed by the operating system. The check
below stops it at once with the size and what to do instead.
"""

import os

from ..exceptions import ResultTooLargeError

# Where the physical memory cannot be read (not POSIX), assume a 32 GiB machine.
_FALLBACK_MEMORY = 32 << 30


def dense_limit():
    """The largest dense result allowed, in bytes: half the machine's physical memory."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        memory = _FALLBACK_MEMORY
    return memory // 2


def _size(n_bytes):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n_bytes >= 1 << shift:
            return f"{n_bytes / (1 << shift):.1f} {unit}"
    return f"{n_bytes} bytes"


def check_dense_size(n_bytes, what, fix):
    """Raise :class:`ResultTooLargeError` if ``n_bytes`` exceeds :func:`dense_limit`.

    ``what`` describes the result (e.g. ``"a dense 5000 x 200000 float32 array"``), ``fix``
    says how to ask for less.
    """
    limit = dense_limit()
    if n_bytes > limit:
        raise ResultTooLargeError(
            f"{what} would take {_size(n_bytes)}, more than half this machine's memory "
            f"({_size(limit)}): {fix}"
        )
