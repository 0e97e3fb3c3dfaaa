"""Shared fixtures: the bundled real SNARE-seq data, and small models fitted on it."""

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from factvae_sk import gene_peak_prior, load_snare_cellline


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
