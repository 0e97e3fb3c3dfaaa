"""The benchmarks' shared harness (``benchmarks/harness``): peak memory, saved models, the
split and the clustering scores."""

import sys

import numpy as np
import pytest

from benchmarks.harness import memory
from benchmarks.harness.clustering import kmeans_ari, kmeans_scores
from benchmarks.harness.models import load_or_fit, model_path
from benchmarks.harness.splits import stratified_split

linux_proc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A child that allocates (and touches) MB megabytes, then prints its own peak as JSON.
CHILD = """import json, sys
from benchmarks.harness.memory import peak_rss_mb
block = bytearray(int(sys.argv[1]) * 2**20)
print(json.dumps({"peak_rss_mb": peak_rss_mb()}))
"""


@linux_proc
def test_a_fresh_process_does_not_count_its_parents_memory(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    parent = bytearray(400 * 2**20)  # noqa: F841 (resident in the parent while the child runs)
    assert memory.peak_rss_mb() > 400
    small = memory.run_fresh(script, 10)["peak_rss_mb"]
    large = memory.run_fresh(script, 110)["peak_rss_mb"]
    # ru_maxrss would report the parent's 400+ MB for both (it survives exec).
    assert small < 200
    assert 90 < large - small < 130


@linux_proc
def test_reset_lowers_the_peak_to_the_current_memory():
    block = bytearray(300 * 2**20)
    del block
    assert memory.peak_rss_mb() > memory.rss_mb() + 250
    memory.reset_peak_rss()
    assert memory.peak_rss_mb() < memory.rss_mb() + 50


def test_run_fresh_reports_a_failure(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("import sys\nsys.exit('no good')\n")
    with pytest.raises(RuntimeError, match="no good"):
        memory.run_fresh(script)


def test_load_or_fit_fits_once(tmp_path, capsys):
    fits = []

    def fit():
        fits.append(1)
        return {"weights": [1, 2]}

    path = model_path(tmp_path / "models", "snare", "e5", "s0", atac_intercepts=True)
    assert path.endswith("models/snare_e5_s0_atac_interceptsTrue.joblib")
    assert model_path(None, "snare") is None
    assert load_or_fit(path, fit, message="{'fit': {seconds} s}") == {"weights": [1, 2]}
    assert capsys.readouterr().out.startswith("{'fit': 0 s}")
    assert load_or_fit(path, fit) == {"weights": [1, 2]}
    assert len(fits) == 1
    load_or_fit(None, fit, message=None)
    assert len(fits) == 2 and capsys.readouterr().out == ""


def test_stratified_split_keeps_each_label_share():
    labels = np.repeat(["a", "b", "c"], [50, 30, 20])
    train, test = stratified_split(labels, seed=0)
    assert len(test) == 20 and len(np.intersect1d(train, test)) == 0
    assert sorted(np.concatenate([train, test])) == list(range(100))
    np.testing.assert_array_equal(np.unique(labels[test], return_counts=True)[1], [10, 6, 4])
    again, _ = stratified_split(labels, seed=0)
    np.testing.assert_array_equal(train, again)


def test_kmeans_scores_on_separated_clusters():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    X = np.array([[0, 0], [10, 0], [0, 10]])[labels] + rng.normal(size=(60, 2))
    assert kmeans_ari(X, labels) == 1.0
    assert kmeans_scores(X, labels) == (1.0, 1.0)
    shuffled = rng.permutation(labels)
    ari, nmi = kmeans_scores(X, shuffled, seeds=(0, 1))
    assert ari < 0.2 and nmi < 0.2
