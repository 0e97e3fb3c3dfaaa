"""The harness's CLI helpers (``benchmarks/harness/cli.py``) for tests: ``run_cli`` skips
the test where the ``factvae-sk`` console script is not installed."""

import pytest

from benchmarks.harness import cli
from benchmarks.harness.cli import REPO, write_small_inputs

__all__ = ["REPO", "run_cli", "write_small_inputs"]


def run_cli(*args, module=False, **kwargs):
    """:func:`benchmarks.harness.cli.run_cli`, skipping when the console script is missing."""
    if not module and cli.console_script() is None:
        pytest.skip("the factvae-sk console script is not installed (pip install -e .)")
    return cli.run_cli(*args, module=module, **kwargs)
