"""``FactVAE(distributed=True)``: a real 2-process fit (torchrun, gloo, loopback) against a
one-process fit with the same global batches, and the distributed settings' errors."""

import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

pytest.importorskip("accelerate")

from conftest import FAST  # noqa: E402
from distributed_worker import SETTINGS, BatchRows, cell_indices, small_data  # noqa: E402

from factvae_sk import FactVAE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_process_fit(tmp_path_factory):
    """Run tests/distributed_worker.py on 2 CPU processes; return its output folder."""
    out = tmp_path_factory.mktemp("distributed")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        GLOO_SOCKET_IFNAME="lo",  # loopback only
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(REPO / "tests" / "distributed_worker.py"), str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return out


@pytest.fixture(scope="module")
def one_process_fit(monkeypatch_module):
    """The same fit in this process (the same noise-free training, the whole batch here)."""
    monkeypatch_module.setattr(torch, "randn_like", torch.zeros_like)
    X_rna, X_atac, prior = small_data()
    record = BatchRows()
    model = FactVAE(callbacks=[record], **SETTINGS).fit(X_rna, X_atac, prior=prior)
    return model, X_rna, cell_indices(model, X_rna, record.rows)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_each_rank_trains_on_its_half_of_every_global_batch(two_process_fit, one_process_fit):
    _, X_rna, single = one_process_fit
    rank0 = np.load(two_process_fit / "cells_rank0.npy")
    rank1 = np.load(two_process_fit / "cells_rank1.npy")
    batch, n_batches = SETTINGS["batch_size"], X_rna.shape[0] // SETTINGS["batch_size"]
    assert single.shape == (SETTINGS["max_epochs"] * n_batches, batch)
    assert rank0.shape == rank1.shape == (single.shape[0], batch // 2)
    for epoch in range(SETTINGS["max_epochs"]):
        steps = slice(epoch * n_batches, (epoch + 1) * n_batches)
        # Disjoint shards whose union is the epoch's cells (all but the dropped last batch).
        assert not set(rank0[steps].ravel()) & set(rank1[steps].ravel())
        assert len(set(rank0[steps].ravel()) | set(rank1[steps].ravel())) == n_batches * batch
    # Step by step: rank 0 took the first half of the one-process batch, rank 1 the second.
    np.testing.assert_array_equal(np.concatenate([rank0, rank1], axis=1), single)


def test_two_processes_fit_the_one_process_model(two_process_fit, one_process_fit):
    model, X_rna, _ = one_process_fit
    weights = np.load(two_process_fit / "weights.npz")
    reference = {k: v.numpy() for k, v in model.module_.state_dict().items()}
    assert set(weights.files) == set(reference)
    for name, value in reference.items():
        np.testing.assert_allclose(weights[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    # The logged losses are those of the whole batches (averaged over the processes).
    np.testing.assert_allclose(
        np.load(two_process_fit / "train_loss.npy"), model.history_[:, "train_loss"], rtol=1e-5
    )
    # Both processes end with the same model.
    codes = np.load(two_process_fit / "codes_rank0.npy")
    np.testing.assert_array_equal(codes, np.load(two_process_fit / "codes_rank1.npy"))
    np.testing.assert_allclose(codes, model.transform(X_rna), rtol=1e-4, atol=1e-4)


def test_rank0_model_pickles_saves_and_transforms(two_process_fit, one_process_fit):
    _, X_rna, _ = one_process_fit
    loaded = joblib.load(two_process_fit / "model.joblib")
    assert type(loaded.net_).__name__ == "FactVAENet"  # a plain net: no accelerator inside
    codes = np.load(two_process_fit / "codes_rank0.npy")
    np.testing.assert_array_equal(loaded.transform(X_rna), codes)
    np.testing.assert_array_equal(
        FactVAE.load(two_process_fit / "model.npz").transform(X_rna), codes
    )


# ------------------------------------------------------------- one process, no launch


def test_one_process_distributed_fit_is_the_plain_fit(small, one_thread):
    """Outside a launch, distributed=True is the one-process fit, random draws included."""
    args = (small["rna"], small["atac"])
    plain = FactVAE(**FAST, random_state=0).fit(*args, prior=small["prior"])
    accelerated = FactVAE(**FAST, random_state=0, distributed=True).fit(*args, prior=small["prior"])
    assert type(accelerated.net_) is type(plain.net_)
    for name, value in plain.module_.state_dict().items():
        assert torch.equal(accelerated.module_.state_dict()[name], value), name
    np.testing.assert_array_equal(accelerated.transform(args[0]), plain.transform(args[0]))


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(validation_fraction=0.2), "validation_fraction or early_stopping"),
        (dict(early_stopping=True), "validation_fraction or early_stopping"),
        (dict(batch_size=63), "multiple of the number of processes"),
    ],
)
def test_unsupported_settings_are_refused(small, monkeypatch, params, message):
    from factvae_sk.train import _distributed

    monkeypatch.setattr(_distributed, "process_group", lambda: (0, 2))
    with pytest.raises(ValueError, match=message):
        _distributed.check_settings(FactVAE(distributed=True, **params), 240)


def test_distributed_warm_start_is_refused(small, one_thread):
    model = FactVAE(**FAST, random_state=0, distributed=True, warm_start=True)
    model.fit(small["rna"], small["atac"])
    with pytest.raises(ValueError, match="warm_start"):
        model.fit(small["rna"], small["atac"])


@pytest.mark.parametrize(
    "per_cell, message",
    [
        (dict(batch=np.arange(240) % 2), "does not support batch yet"),
        (dict(rna_observed=np.arange(240) % 3 > 0), "rna_observed / atac_observed yet"),
    ],
)
def test_several_samples_and_single_modality_cells_are_refused(small, per_cell, message):
    """A fit with samples or masks is refused before training, even outside a launch."""
    with pytest.raises(ValueError, match=message):
        FactVAE(**FAST, random_state=0, distributed=True).fit(
            small["rna"][:240], small["atac"][:240], **per_cell
        )


def test_missing_accelerate_is_named(small, monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)
    with pytest.raises(ImportError, match=r"factvae_sk\[accelerate\]"):
        FactVAE(distributed=True, max_epochs=1).fit(small["rna"], small["atac"])
