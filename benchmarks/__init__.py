"""Benchmarks and evaluations of factvae_sk; not part of the installed package.

Run every script from the repository root as ``PYTHONPATH=. python benchmarks/<script>.py``
(``--help`` for its options). The files:

- ``bench_*.py``: speed and memory benchmarks;
- ``eval_*.py``: quality evaluations on the bundled and simulated data;
- ``simulate_*.py``: simulators with a known ground truth (motifs, gene-peak links);
- ``cli_errors.py``: the command line's messages for malformed user files;
- ``peers/``: other methods, run in their own environments (never dependencies), whose
  outputs the ``eval_*.py`` scripts score;
- ``harness/``: the pieces they share, each written once (datasets, splits, clustering
  scores, peak memory, cached models, metrics, the yardstick implementation, CLI helpers).

Tests import the shared pieces as ``benchmarks.harness.<module>``; nothing here imports
from ``tests/``.
"""
