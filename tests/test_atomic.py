"""Nothing lost on a failed or interrupted write (FactVAE.save, every CLI output, the CLI's
joblib dump), and clear errors for damaged or newer model files. Failures are injected in
the middle of writing; the earlier files are compared byte for byte."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import REPO, write_small_inputs
from conftest import FAST

import factvae_sk.app._job
from factvae_sk import FactVAE
from factvae_sk.cli import main
from factvae_sk.utils._atomic import atomic_open, staged_files

pytestmark = pytest.mark.usefixtures("one_thread")


def _snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _half_then(error):
    """A writer that writes part of its output, then fails with ``error``."""

    def write(handle_or_path, *args, **kwargs):
        if hasattr(handle_or_path, "write"):
            handle_or_path.write(b"partial")
        else:
            with open(handle_or_path, "wb") as handle:
                handle.write(b"partial")
        raise error

    return write


# ---------------------------------------------------------------- the helper


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_atomic_open_keeps_the_old_file(tmp_path, error):
    path = tmp_path / "table.csv"
    path.write_bytes(b"old content\n")
    with pytest.raises(type(error)), atomic_open(path, "wb") as handle:
        handle.write(b"new, half")
        raise error
    assert _snapshot(tmp_path) == {"table.csv": b"old content\n"}  # no temporary file left


def test_staged_files_replace_all_or_nothing(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "b.txt").write_text("old b")
    with pytest.raises(RuntimeError), staged_files(tmp_path) as stage:
        stage("a.txt").write_text("new a")
        stage("b.txt").write_text("new b")
        raise RuntimeError("the third output failed")
    assert _snapshot(tmp_path) == {"a.txt": b"old a", "b.txt": b"old b"}
    with staged_files(tmp_path) as stage:
        stage("a.txt").write_text("new a")
        stage("c.png").write_text("new c")
    assert _snapshot(tmp_path) == {"a.txt": b"new a", "b.txt": b"old b", "c.png": b"new c"}


def test_sigterm_mid_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(b"the previous model")
    script = (
        "import sys, time\n"
        "from factvae_sk.utils._atomic import atomic_open\n"
        "from factvae_sk.cli import _sigterm_as_exit\n"
        "with _sigterm_as_exit(), atomic_open(sys.argv[1]) as handle:\n"
        "    handle.write(b'half of the new model'); handle.flush()\n"
        "    print('writing', flush=True); time.sleep(60)\n"
    )
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": ""}
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout.readline().strip() == "writing"
    assert len(list(tmp_path.iterdir())) == 2  # the old file and the temporary one
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert _snapshot(tmp_path) == {"model.joblib": b"the previous model"}


# ---------------------------------------------------------------- FactVAE.save


@pytest.fixture(scope="module")
def fitted(small):
    rna, atac, prior = small["rna"][:60], small["atac"][:60, :300], small["prior"][:, :300]
    return FactVAE(random_state=0, **FAST).fit(rna, atac, prior=prior), rna, atac


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_save_keeps_the_old_model_file(fitted, tmp_path, monkeypatch, error):
    model, rna, _ = fitted
    path = model.save(tmp_path / "model.npz")
    before = _snapshot(tmp_path)
    calls = []

    def write_array(fp, array, *args, **kwargs):  # numpy's writer, failing on the 3rd array
        calls.append(1)
        if len(calls) == 3:
            fp.write(b"\x93NUMPY partial")
            raise error
        return original(fp, array, *args, **kwargs)

    original = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    with pytest.raises(type(error)):
        FactVAE(random_state=1, **FAST).fit(rna, fitted[2]).save(path)
    monkeypatch.undo()
    assert len(calls) == 3
    assert _snapshot(tmp_path) == before
    assert np.array_equal(FactVAE.load(path).transform(rna), model.transform(rna))


# ---------------------------------------------------------------- damaged or newer files


def _rewrite(source, target, edit):
    with np.load(source, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    edit(arrays)
    np.savez(target, **arrays)
    return target


def _meta_edit(change):
    def edit(arrays):
        meta = json.loads(arrays["__meta__.json"].tobytes())
        change(meta)
        arrays["__meta__.json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    return edit


def _first_module_array(arrays):
    return next(key for key in arrays if key.startswith("module::"))


DAMAGED = {
    "newer format": (
        _meta_edit(lambda m: m.update(format_version=99, versions={"factvae_sk": "9.0"})),
        r"written by factvae_sk 9\.0 in model-file format version 99; .* reads versions up to 1\. "
        "Upgrade factvae_sk",
    ),
    "missing array": (
        lambda a: a.pop(_first_module_array(a)),
        r"is damaged: .*RuntimeError.*Missing key",
    ),
    "wrong shape": (
        lambda a: a.update({_first_module_array(a): np.zeros((3, 2), np.float32)}),
        r"is damaged: .*size mismatch",
    ),
    "missing fitted array": (
        lambda a: a.pop(next(k for k in a if k.startswith("rna_encoder_input_"))),
        r"is damaged: .*KeyError",
    ),
    "mangled metadata": (
        lambda a: a.update({"__meta__.json": np.frombuffer(b"{not json", dtype=np.uint8)}),
        r"is damaged: .*JSONDecodeError",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_or_newer_model_file_is_a_clear_error(fitted, tmp_path, case):
    edit, message = DAMAGED[case]
    path = _rewrite(fitted[0].save(tmp_path / "good.npz"), tmp_path / "bad.npz", edit)
    with pytest.raises(ValueError, match=message):
        FactVAE.load(path)


def test_truncated_or_garbage_model_file_is_a_clear_error(fitted, tmp_path):
    data = Path(fitted[0].save(tmp_path / "good.npz")).read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is damaged or not a model file.*BadZipFile"):
        FactVAE.load(tmp_path / "cut.npz")
    (tmp_path / "text.npz").write_bytes(b"hello, not a model\n")
    with pytest.raises(ValueError, match=r"not a model file written by FactVAE.save \(not an"):
        FactVAE.load(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        FactVAE.load(tmp_path / "absent.npz")


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory, snare):
    """A completed ``factvae-sk fit`` run: its arguments and its --out folder."""
    folder = tmp_path_factory.mktemp("run")
    args = [*write_small_inputs(folder, snare, n_cells=100), "--epochs", "1"]
    out = folder / "out"
    assert main([*args, "--out", str(out)]) == 0
    return args, out


@pytest.mark.parametrize(
    "target, error, status",
    [
        ("joblib", OSError("No space left on device"), 1),
        ("joblib", KeyboardInterrupt(), 130),
        ("plot_cell_map", RuntimeError("matplotlib failed"), 1),
    ],
)
def test_failed_run_leaves_the_earlier_results_untouched(
    earlier_run, monkeypatch, capsys, target, error, status
):
    pytest.importorskip("matplotlib")
    args, out = earlier_run
    before = _snapshot(out)
    assert set(before) == set(factvae_sk.app._job.OUTPUTS)
    if target == "joblib":
        monkeypatch.setattr(
            factvae_sk.app._job.joblib, "dump", lambda obj, path: _half_then(error)(path)
        )
    else:
        monkeypatch.setattr(factvae_sk.app._job, target, _half_then(error))
    # A different seed: every output would differ.
    assert main([*args, "--seed", "1", "--out", str(out)]) == status
    assert _snapshot(out) == before  # byte for byte, and no temporary file left
    if status == 1:
        assert "unexpected error" in capsys.readouterr().err


def test_sigterm_during_a_cli_run_leaves_the_earlier_results(earlier_run):
    args, out = earlier_run
    before = _snapshot(out)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "factvae_sk", *args, "--epochs", "300", "--out", str(out)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    for line in process.stdout:  # wait until it is fitting
        if line.startswith("fitting FactVAE"):
            break
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert "terminated (SIGTERM)" in process.stderr.read()
    assert _snapshot(out) == before
