"""``precision``: "32" trains exactly as before the option existed; "bf16" runs the encoders
and decoder products in bfloat16 and hands float32 to the likelihood."""

import numpy as np
import pytest
import torch
from conftest import FAST
from sklearn.utils._param_validation import InvalidParameterError
from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator, to_tensor

import factvae_sk.model._training_setup as training_module
from factvae_sk import FactVAE
from factvae_sk.nn._losses import similarity_distillation_loss
from factvae_sk.nn._modules import Encoder, FactorizedDecoder
from factvae_sk.train._net import FactVAENet


class StepBeforePrecision(FactVAENet):
    """FactVAENet's two steps as written before ``precision`` and the data-parallel hooks."""

    def train_step(self, batch, **fit_params):
        self._set_training(True)
        X, y = unpack_data(batch)
        X = to_tensor(X, device=self.device)
        self.optimizer_.zero_grad()
        y_pred = self.infer(X, **fit_params)
        loss = self.get_loss(y_pred, y, X=X, training=True)
        loss.backward()
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        self.optimizer_.step()
        terms = self.__dict__.pop("_pending_terms", {})
        if self.module_.has_atac:
            terms["distill"] = self.distillation_step(X)
        values = torch.stack(list(terms.values())).tolist() if terms else []
        for name, value in zip(terms, values, strict=True):
            self.history.record_batch(name, value)
        return {"loss": loss, "y_pred": y_pred}

    def distillation_step(self, X):
        module = self.module_
        self.optimizer_atac_.zero_grad()
        with torch.no_grad():
            teacher, _, _ = module.encoder_rna(X["rna_input"])
        student, _, _ = module.encoder_atac(X["atac_input"])
        loss = similarity_distillation_loss(teacher, student)
        loss.backward()
        self.optimizer_atac_.step()
        return loss.detach()


def test_float32_training_is_bit_identical_to_the_step_before_precision(
    small, one_thread, monkeypatch
):
    args = (small["rna"], small["atac"])
    model = FactVAE(**FAST, random_state=0).fit(*args, prior=small["prior"])
    monkeypatch.setattr(training_module, "FactVAENet", StepBeforePrecision)
    before = FactVAE(**FAST, random_state=0).fit(*args, prior=small["prior"])
    assert type(before.net_) is StepBeforePrecision
    for (name, value), reference in zip(
        model.module_.state_dict().items(), before.module_.state_dict().values(), strict=True
    ):
        assert torch.equal(value, reference), name
    for term in ("train_loss", "distill", "prior", "nll_atac"):
        assert model.history_[:, term] == before.history_[:, term]


def test_decoder_products_run_in_bfloat16_and_return_float32():
    torch.manual_seed(0)
    decoder = FactorizedDecoder(8, 500)
    z, log_library = torch.randn(32, 8), torch.full((32,), 7.0)
    with torch.no_grad():
        exact = decoder(z, log_library)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = decoder(z, log_library)
    for reference, value in zip(exact, mixed, strict=True):
        assert value.dtype == torch.float32
        # bfloat16 keeps 8 bits of mantissa: close to float32, and not equal to it.
        assert not torch.equal(value, reference)
        np.testing.assert_allclose(value.numpy(), reference.numpy(), atol=0.1, rtol=0.02)
    encoder = Encoder(20, (16,), 8, dropout=0.0).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert encoder.body(torch.randn(4, 20)).dtype == torch.bfloat16
        assert all(out.dtype == torch.float32 for out in encoder(torch.randn(4, 20)))


def test_bf16_fit_trains_close_to_float32(small, one_thread):
    args = (small["rna"], small["atac"])
    exact = FactVAE(**FAST, random_state=0).fit(*args, prior=small["prior"])
    mixed = FactVAE(**FAST, random_state=0, precision="bf16").fit(*args, prior=small["prior"])
    assert all(p.dtype == torch.float32 for p in mixed.module_.parameters())
    assert mixed.transform(small["rna"]).dtype == np.float32
    # The same training up to bfloat16 rounding: the losses agree to a few percent, and
    # the held-out-style score (float32 inference) too.
    np.testing.assert_allclose(
        mixed.history_[:, "train_loss"], exact.history_[:, "train_loss"], rtol=0.05
    )
    np.testing.assert_allclose(mixed.score(*args), exact.score(*args), rtol=0.05)
    assert mixed.history_[:, "train_loss"] != exact.history_[:, "train_loss"]


def test_unknown_precision_is_refused(small):
    with pytest.raises(InvalidParameterError, match="precision"):
        FactVAE(precision="16").fit(small["rna"], small["atac"])
