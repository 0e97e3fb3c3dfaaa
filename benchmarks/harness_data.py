"""Moved to :mod:`benchmarks.harness.data`; kept while ``eval_embeddings.py`` and
``eval_links.py`` still import it by this name. Import ``benchmarks.harness.data`` instead."""

from benchmarks.harness.data import DATASETS, load_dataset

__all__ = ["DATASETS", "load_dataset"]
