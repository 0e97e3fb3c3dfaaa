"""The fast training path against the yardstick of ``benchmarks/harness/reference_impl.py``.

The yardstick implements SPEC.md the straightforward way (textbook ZINB with ``lgamma`` on
every entry, three decoder products, the dense genes x peaks similarity for the prior, both
encoders re-run for distillation). From the same weights, batches and random draws, the
package's fast path must give the same gradients, losses and updates up to float32 noise.
"""

import numpy as np
import pytest
import torch
from conftest import FAST

from benchmarks.harness import reference_impl
from factvae_sk import FactVAE
from factvae_sk.data._validation import check_prior


@pytest.fixture(scope="module")
def pair(small, one_thread):
    """A FactVAE net (fresh optimizers) and a yardstick holding the same weights and data."""
    params = {**FAST, "max_epochs": 1}
    model = FactVAE(**params, random_state=0).fit(small["rna"], small["atac"], prior=small["prior"])
    net = model.net_
    dataset = model._dataset(
        *model._validate_counts(small["rna"], small["atac"], reset=False), with_counts=True
    )
    # The RNA principal components have standard deviations up to ~7, which at initial
    # weights gives posterior variances of e^10 and sampled codes whose softmax underflows
    # float32; there the textbook formula's log(mu + eps) is not the log-likelihood, which
    # the package computes exactly. Unit-scale inputs keep both in the regime where they
    # must agree.
    for name, (inputs, counts, log_library) in dataset.modalities.items():
        dataset.modalities[name] = (inputs / inputs.std(), counts, log_library)
    rna_input, rna_counts, _ = dataset.modalities["rna"]
    atac_input, atac_counts, _ = dataset.modalities["atac"]
    reference = reference_impl.ReferenceFactVAE(
        rna_input,
        rna_counts,
        atac_input,
        atac_counts,
        check_prior(small["prior"], rna_counts.shape[1], atac_counts.shape[1]),
        n_latent=params["n_latent"],
        rna_hidden_sizes=params["rna_hidden_sizes"],
        atac_hidden_sizes=params["atac_hidden_sizes"],
        batch_size=params["batch_size"],
    )

    def sync():
        reference.model.load_state_dict(net.module_.state_dict())
        net.initialize_optimizer()
        reference.optimizer = torch.optim.Adam(reference.model.parameters(), lr=model.lr)
        reference.optimizer_atac = torch.optim.Adam(
            reference.model.encoder_atac.parameters(), lr=model.lr_distillation
        )

    return net, dataset, reference, sync


def _batch(dataset, step):
    return np.random.default_rng(step).permutation(len(dataset))[: FAST["batch_size"]]


def test_gradients_match_the_yardstick(pair):
    net, dataset, reference, sync = pair
    sync()
    index = _batch(dataset, 0)
    X, y = dataset.__getitems__(index)
    net.module_.train()
    net.optimizer_.zero_grad()
    torch.manual_seed(1)
    loss = net.get_loss(net.infer(X), y, X=X)
    loss.backward()
    reference.optimizer.zero_grad()
    torch.manual_seed(1)
    ref_loss, _ = reference.main_loss(index)
    ref_loss.backward()

    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    ref_params = dict(reference.model.named_parameters())
    for name, p in net.module_.named_parameters():
        expected = ref_params[name].grad
        scale = expected.abs().max().item()
        assert scale > 0, name
        np.testing.assert_allclose(
            p.grad.numpy(), expected.numpy(), rtol=1e-3, atol=1e-4 * scale, err_msg=name
        )


def test_training_steps_match_the_yardstick(pair):
    net, dataset, reference, sync = pair
    sync()
    start = {name: p.detach().clone() for name, p in net.module_.named_parameters()}
    for step in range(4):
        index = _batch(dataset, step)
        torch.manual_seed(100 + step)
        net.train_step(dataset.__getitems__(index))
        ours = net.history[-1, "batches", -1]
        torch.manual_seed(100 + step)
        theirs = reference.train_step(index)
        for term in ("nll_rna", "kl_rna", "nll_atac", "kl_atac", "prior", "distill"):
            assert ours[term] == pytest.approx(theirs[term], rel=1e-4, abs=1e-6), (step, term)
    # Parameters agree to a small fraction of how far training moved them.
    ref_params = dict(reference.model.named_parameters())
    for name, p in net.module_.named_parameters():
        moved = (p.detach() - start[name]).norm().item()
        gap = (p.detach() - ref_params[name].detach()).norm().item()
        assert moved > 0 and gap < 1e-2 * moved, (name, gap, moved)
