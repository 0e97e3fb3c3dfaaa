"""Writing files so that a failure or an interruption never leaves a half-written file.

Each file is written to a temporary file in the same folder (``os.replace`` is atomic only
within one file system), flushed and fsynced, and only then moved over the destination. A
failure, Ctrl-C or (in ``factvae-sk``) SIGTERM before that leaves an existing file exactly as
it was and removes the temporary file. :func:`staged_files` does this for several files at
once, moving them all into place only after every one has been written.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_open", "atomic_path", "staged_files"]


def _suffix(name):
    """The extension writers infer a format from (matplotlib, pandas, joblib): keep it."""
    suffixes = Path(name).suffixes
    return "".join(suffixes[-2:]) if suffixes[-1:] == [".gz"] else "".join(suffixes[-1:])


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path):
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder):
    """Make the renames themselves durable (POSIX; not possible on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def staged_files(folder):
    """Write several files into ``folder`` so that they appear only when all are complete.

    Yields ``stage(name)``, which returns a temporary path in ``folder`` to write ``name``
    to. When the block ends normally every staged file is fsynced, then moved over
    ``folder / name``; when it raises (including ``KeyboardInterrupt``) the temporary files
    are removed and the folder's existing files are untouched.

    Parameters
    ----------
    folder : path-like
        Created if needed.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> with staged_files(folder) as stage:
    ...     _ = stage("a.txt").write_text("one")
    ...     _ = stage("b.txt").write_text("two")
    >>> sorted(p.name for p in folder.iterdir())
    ['a.txt', 'b.txt']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staged = {}

    def stage(name):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", suffix=_suffix(name), dir=folder)
        os.close(fd)
        target = folder / name
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        staged[name] = Path(tmp)
        return staged[name]

    try:
        yield stage
        for tmp in staged.values():
            _fsync(tmp)
        for name, tmp in staged.items():
            os.replace(tmp, folder / name)
        _fsync_folder(folder)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)  # gone already after a successful replace


@contextmanager
def atomic_path(path):
    """A temporary path to write ``path``'s new content to; see :func:`staged_files`.

    For writers that take a file name (``np.savez``, ``joblib.dump``, ``savefig``): the
    temporary name keeps ``path``'s extension.
    """
    path = Path(path)
    with staged_files(path.parent) as stage:
        yield stage(path.name)


@contextmanager
def atomic_open(path, mode="wb", **kwargs):
    """``open(path, mode)`` that replaces ``path`` only once the block has completed.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_open(path, "w") as handle:
    ...     _ = handle.write("done")
    >>> path.read_text()
    'done'
    """
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open replaces files: mode must start with 'w', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle
        handle.flush()
