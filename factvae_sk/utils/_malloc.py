"""Keep training's large CPU buffers in the heap instead of mapping them at every step.

glibc serves allocations above a threshold (at most 32 MB) with ``mmap`` and returns them
with ``munmap`` when freed, and trims the heap top above another threshold. A training step
allocates and frees dozens of (cells x peaks) tensors, so each step would map fresh pages
and fault every one of them in (measured on 2 cores: 30 % of a step at 27399 peaks, half
of it at 100000). While training, large blocks are taken from the heap and kept there for
reuse; afterwards the previous limits are set again and the unused heap is returned to the
operating system. Nothing happens where glibc's ``mallopt`` is not available.
"""

import contextlib
import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# glibc's defaults (malloc/malloc.c): DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX.
_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


def _configure(heap):
    if heap:
        return bool(_LIBC.mallopt(_M_MMAP_MAX, 0) and _LIBC.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    for option, value in _DEFAULTS.items():
        _LIBC.mallopt(option, value)
    _LIBC.malloc_trim(0)
    return True


@contextlib.contextmanager
def heap_allocations(enabled=True):
    """Inside the block, large allocations are not mmap-ed nor trimmed away (glibc only).

    ``enabled=False`` does the opposite inside a block that enabled it (glibc's defaults,
    then back), e.g. to time other code under the default policy.
    """
    if _LIBC is None or not _configure(enabled):
        yield
        return
    try:
        yield
    finally:
        _configure(not enabled)
