"""Shared fixtures: the bundled real SNARE-seq data, and small models fitted on it."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from factvae_sk import gene_peak_prior, load_snare_cellline

DATA = Path(__file__).with_name("data")


def data_script(name):
    """The fixture-writing script ``tests/data/<name>.py`` as a module, loaded once and
    registered under its name (the scripts import their siblings)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DATA / f"{name}.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


@pytest.fixture(scope="session")
def snare():
    """The real data restricted to the 2000 highly variable genes, with the overlap prior."""
    data = load_snare_cellline()
    hvg = data.genes.highly_variable.to_numpy()
    data.rna_hvg = data.rna[:, hvg]
    data.genes_hvg = data.genes[hvg].reset_index(drop=True)
    data.prior = gene_peak_prior(data.genes_hvg, data.peaks)
    data.labels = data.cells.cell_line.to_numpy()
    return data


@pytest.fixture(scope="session")
def small(snare):
    """300 real cells (stratified by nothing: every 3rd cell), HVGs and the 5000 most open peaks."""
    cells = np.arange(0, 900, 3)
    peak_order = np.argsort(-np.asarray(snare.atac.sum(axis=0)).ravel(), kind="stable")
    peaks = np.sort(peak_order[:5000])
    return {
        "rna": snare.rna_hvg[cells],
        "atac": snare.atac[cells][:, peaks],
        "prior": snare.prior[:, peaks],
        "labels": snare.labels[cells],
    }


# Comparing a trained output with one saved on another machine. The fit is a chain of float32
# operations whose reductions (matrix products over up to 5000 peaks, sums over a batch) another
# CPU's vector width or thread count performs in another order. One reordered reduction of n
# terms moves its result by about sqrt(n) * u relative (u = 2**-24, float32's unit roundoff):
# 4e-6 for n = 5000. Adam's normalized steps carry such a perturbation forward without
# amplifying it, so after the S optimizer steps of the reference fits (3 epochs of 5 batches:
# S = 15) outputs agree to about S * sqrt(n) * u = 6e-5 of their scale. TRAINED_RTOL allows
# that with a margin under 2. Measured on the no-batch reference: another vector width
# (ATEN_CPU_CAPABILITY=default) or 2 threads move the outputs by at most 3e-6 of their norm;
# a real change moves the codes 5x to 20x past the bound (learning rate x 1.01: 8e-4; either
# KL weight x 1.1: 5e-4 and 2e-3).
TRAINED_RTOL = 1e-4


def assert_trained_close(actual, desired, name, rtol=TRAINED_RTOL):
    """``actual`` equals ``desired`` up to float32 reordering error over a fit: relative in the
    norm and, per entry, in units of the array's scale (entries near 0 carry the absolute error
    of their larger neighbours)."""
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    assert actual.shape == desired.shape, name
    scale = np.abs(desired).max()
    assert np.linalg.norm(actual - desired) <= rtol * np.linalg.norm(desired), name
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale, err_msg=name)


FAST = dict(
    max_epochs=3,
    rna_hidden_sizes=(64,),
    atac_hidden_sizes=(32,),
    n_latent=8,
    rna_n_components=20,
    atac_n_components=20,
    batch_size=64,
)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from several threads, and on a shared machine (CI runners,
    other jobs) OpenMP threads competing for busy cores slow them down many times over."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def posterior_means(model, X, modality="rna"):
    """One encoder's posterior means computed from the module directly: what ``transform``
    gives before a fit with ``batch`` integrates the samples (decoder conditioning)."""
    encoder_input = getattr(model, f"{modality}_encoder_input_")
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(encoder_input.transform(X)))
        return model.module_.encode(modality, x)[0].numpy()
