"""Peak resident memory of measured work, one way for every benchmark.

The work to measure runs in a fresh process (:func:`run_fresh`: ``python script ARGS`` with
the repository on ``PYTHONPATH``, its result the last JSON line it prints), and that process
reads its own peak from the kernel: ``VmHWM`` in ``/proc/self/status``
(:func:`peak_rss_mb`), the high-water mark of the resident set of its address space.

Why not ``resource.getrusage(RUSAGE_SELF).ru_maxrss``: on Linux it survives ``exec``. A child
is forked from its parent, and at ``exec`` the kernel folds the forked copy's high-water mark
(the parent's resident set at that moment) into the child's ``ru_maxrss``; a worker started
by a 3 GB parent reports at least 3 GB, whatever it uses. ``VmHWM`` belongs to the address
space that ``exec`` creates, so it counts this process's memory alone, from the interpreter
up. :func:`reset_peak_rss` lowers it to the current resident set (``/proc/self/clear_refs``,
Linux 4.0+), to measure one step of a process that has already done others.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _status_mb(field):
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    raise RuntimeError(
        f"peak memory is read from {field} in /proc/self/status, which this system lacks "
        "(the memory benchmarks need Linux)"
    )


def peak_rss_mb():
    """Peak resident memory (MB) of this process since it started or :func:`reset_peak_rss`."""
    return _status_mb("VmHWM")


def rss_mb():
    """Resident memory (MB) of this process now."""
    return _status_mb("VmRSS")


def reset_peak_rss():
    """Lower this process's peak (``VmHWM``) to its current resident memory."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def run_fresh(script, *args, threads=None, env=None, timeout=None):
    """Run ``python script ARGS`` in a fresh process; the last JSON line it printed.

    The repository is put first on its ``PYTHONPATH`` (so it imports this code and
    ``benchmarks.harness``); ``threads`` sets ``OMP_NUM_THREADS``. Raises ``RuntimeError``
    with the end of its stderr when it fails or prints no JSON line.
    """
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    done = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(
            f"{Path(script).name} {' '.join(map(str, args))} failed (exit {done.returncode}):\n"
            f"{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1])
