"""The skorch net: two optimizers, the distillation step, learning-rate decay."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from factvae_sk.data._dataset import PairedCountsDataset, collate_batch
from factvae_sk.nn._losses import FactVAELoss
from factvae_sk.nn._modules import FactVAEModule
from factvae_sk.train._callbacks import ExponentialLRDecay
from factvae_sk.train._net import FactVAENet


def _dataset(n=64, genes=30, peaks=40, with_atac=True, seed=0):
    rng = np.random.default_rng(seed)
    rna = sp.csr_matrix(rng.poisson(1.0, size=(n, genes)).astype(np.float32) + np.eye(n, genes))
    atac = sp.csr_matrix(rng.poisson(0.3, size=(n, peaks)).astype(np.float32) + np.eye(n, peaks))
    return PairedCountsDataset(
        rna_input=rng.normal(size=(n, 10)).astype(np.float32),
        rna_counts=rna,
        atac_input=rng.normal(size=(n, 12)).astype(np.float32) if with_atac else None,
        atac_counts=atac if with_atac else None,
    )


def _net(with_atac=True, **kwargs):
    torch.manual_seed(0)
    params = dict(
        module=FactVAEModule,
        module__n_input_rna=10,
        module__n_genes=30,
        module__n_input_atac=12 if with_atac else None,
        module__n_peaks=40 if with_atac else None,
        module__n_latent=4,
        module__rna_hidden_sizes=(16,),
        module__atac_hidden_sizes=(8,),
        criterion=FactVAELoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=16,
        max_epochs=1,
        train_split=None,
        verbose=0,
        iterator_train__collate_fn=collate_batch,
        iterator_train__drop_last=True,
        iterator_valid__collate_fn=collate_batch,
    )
    if with_atac:
        params["optimizer_atac__lr"] = 5e-4
    params.update(kwargs)
    return FactVAENet(**params)


def _snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_distillation_step_touches_only_the_atac_encoder():
    net = _net().initialize()
    X, _ = _dataset().__getitems__(range(16))
    before = _snapshot(net.module_)
    net.distillation_step(X)
    after = _snapshot(net.module_)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    # The loss compares posterior means: the body and the mean head move, nothing else.
    mean_path = {
        f"encoder_atac.{name}"
        for name, _ in net.module_.encoder_atac.named_parameters()
        if not name.startswith("logvar")
    }
    assert changed == mean_path
    # The teacher is detached: no gradient reached any other parameter.
    for name, p in net.module_.named_parameters():
        assert (p.grad is not None) == (name in mean_path), name


def test_second_optimizer_holds_atac_encoder_and_its_own_lr():
    net = _net().initialize()
    atac_params = set(net.module_.encoder_atac.parameters())
    assert {p for g in net.optimizer_atac_.param_groups for p in g["params"]} == atac_params
    assert {p for g in net.optimizer_.param_groups for p in g["params"]} == set(
        net.module_.parameters()
    )
    assert net.optimizer_atac_.param_groups[0]["lr"] == 5e-4
    net.set_params(optimizer_atac__lr=0.123)
    assert net.optimizer_atac_.param_groups[0]["lr"] == 0.123
    assert net.optimizer_.param_groups[0]["lr"] == 1e-3


def test_rna_only_net_has_one_optimizer_and_trains():
    net = _net(with_atac=False)
    net.fit(_dataset(with_atac=False), y=None)
    assert not hasattr(net, "optimizer_atac_")
    assert np.isfinite(net.history[-1, "train_loss"])


def test_train_step_runs_both_updates_per_batch():
    net = _net(max_epochs=2)
    net.fit(_dataset(), y=None)
    batches = net.history[-1, "batches"]
    assert len(batches) == 64 // 16
    assert all(np.isfinite(b["distill"]) and np.isfinite(b["nll_atac"]) for b in batches)


@pytest.mark.parametrize("gamma", [0.995, 0.5])
def test_both_learning_rates_decay_per_epoch(gamma):
    callbacks = [
        ("decay", ExponentialLRDecay("optimizer", gamma)),
        ("decay_atac", ExponentialLRDecay("optimizer_atac", gamma)),
    ]
    net = _net(max_epochs=4, callbacks=callbacks)
    net.fit(_dataset(), y=None)
    assert net.history[:, "lr_optimizer"] == pytest.approx([1e-3 * gamma**k for k in range(4)])
    assert net.history[:, "lr_optimizer_atac"] == pytest.approx([5e-4 * gamma**k for k in range(4)])
    assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3 * gamma**4)
    assert net.optimizer_atac_.param_groups[0]["lr"] == pytest.approx(5e-4 * gamma**4)
