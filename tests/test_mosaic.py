"""Cells measured by one modality: masked losses, distillation and maps on paired cells only,
rows of a missing modality never read, a code for every cell."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import torch
from conftest import FAST
from sklearn.linear_model import RidgeCV

from factvae_sk import FactVAE
from factvae_sk.data._mosaic import fill_missing, transport_map
from factvae_sk.nn._losses import FactVAELoss, similarity_distillation_loss
from factvae_sk.nn._modules import FactVAEModule

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mosaic(small):
    """150 cells: a third without ATAC, a third without RNA (their rows zeroed)."""
    rna, atac = small["rna"][:150].tocsr(), small["atac"][:150].tocsr()
    group = np.arange(150) % 3
    rna_observed, atac_observed = group != 1, group != 2
    return {
        "rna": sp.diags(rna_observed.astype(np.float32)) @ rna,
        "atac": sp.diags(atac_observed.astype(np.float32)) @ atac,
        "rna_observed": rna_observed,
        "atac_observed": atac_observed,
        "labels": small["labels"][:150],
    }


@pytest.fixture(scope="module")
def fitted(mosaic):
    model = FactVAE(random_state=0, embedding="joint", **FAST)
    return model.fit(
        mosaic["rna"],
        mosaic["atac"],
        rna_observed=mosaic["rna_observed"],
        atac_observed=mosaic["atac_observed"],
    )


def test_missing_rows_are_never_read(fitted, mosaic):
    """Junk in the rows of a missing modality gives the same model as zeros."""
    rng = np.random.default_rng(0)
    junk_rna = mosaic["rna"] + sp.diags(
        (~mosaic["rna_observed"]).astype(np.float32)
    ) @ sp.csr_matrix(rng.poisson(1.0, mosaic["rna"].shape).astype(np.float32))
    junk_atac = mosaic["atac"] + sp.diags(
        (~mosaic["atac_observed"]).astype(np.float32)
    ) @ sp.csr_matrix(rng.poisson(0.5, mosaic["atac"].shape).astype(np.float32))
    masks = dict(rna_observed=mosaic["rna_observed"], atac_observed=mosaic["atac_observed"])
    model = FactVAE(random_state=0, embedding="joint", **FAST).fit(junk_rna, junk_atac, **masks)
    assert np.array_equal(
        model.transform(junk_rna, junk_atac, **masks),
        fitted.transform(mosaic["rna"], mosaic["atac"], **masks),
    )
    assert np.array_equal(model.atac_peak_bias_, fitted.atac_peak_bias_)


def test_empty_rows_only_where_unobserved(mosaic):
    with pytest.raises(ValueError, match="zero total counts"):
        FactVAE(**FAST).fit(mosaic["rna"], mosaic["atac"])  # zero rows, no masks
    with pytest.raises(ValueError, match="neither modality"):
        FactVAE(**FAST).fit(
            mosaic["rna"],
            mosaic["atac"],
            rna_observed=np.zeros(150, bool),
            atac_observed=mosaic["atac_observed"],
        )
    with pytest.raises(ValueError, match="need X_atac"):
        FactVAE(**FAST).fit(mosaic["rna"], rna_observed=mosaic["rna_observed"])
    with pytest.raises(ValueError, match=r"shape \(150,\)"):
        FactVAE(**FAST).fit(mosaic["rna"], mosaic["atac"], rna_observed=np.ones(10, bool))


def test_maps_use_paired_cells_only(fitted, mosaic):
    paired = mosaic["rna_observed"] & mosaic["atac_observed"]
    assert len(fitted.training_codes_) == paired.sum()
    dataset = fitted._dataset(mosaic["rna"][paired], mosaic["atac"][paired], with_counts=False)
    codes = fitted._codes(dataset, ("rna", "atac"))
    np.testing.assert_allclose(fitted.training_codes_, codes, rtol=1e-5, atol=1e-6)
    ridge = RidgeCV(alphas=np.logspace(-2, 6, 17)).fit(codes[:, :8], codes[:, 8:])
    np.testing.assert_allclose(fitted.rna_to_atac_.coef_, ridge.coef_, rtol=1e-4, atol=1e-6)


def test_every_cell_gets_a_code(fitted, mosaic):
    masks = dict(rna_observed=mosaic["rna_observed"], atac_observed=mosaic["atac_observed"])
    Z = fitted.transform(mosaic["rna"], mosaic["atac"], **masks)
    assert Z.shape == (150, 16) and np.isfinite(Z).all()
    codes = fitted.training_codes_
    no_rna, no_atac = ~mosaic["rna_observed"], ~mosaic["atac_observed"]
    # By default a missing code is the transport map of the present one (fitted on the
    # paired training cells' codes), cell by cell.
    A, b = transport_map(codes[:, 8:], codes[:, :8])
    np.testing.assert_allclose(Z[no_rna, :8], Z[no_rna, 8:] @ A + b, rtol=1e-4, atol=1e-4)
    A, b = transport_map(codes[:, :8], codes[:, 8:])
    np.testing.assert_allclose(Z[no_atac, 8:], Z[no_atac, :8] @ A + b, rtol=1e-4, atol=1e-4)
    # "neighbors": a cell without RNA gets the mean RNA code of its 15 nearest paired cells
    # in ATAC space.
    neighbors = pickle.loads(pickle.dumps(fitted)).set_params(missing_code="neighbors")
    Z_nn = neighbors.transform(mosaic["rna"], mosaic["atac"], **masks)
    cell = np.flatnonzero(no_rna)[0]
    distances = ((codes[:, 8:] - Z_nn[cell, 8:]) ** 2).sum(1)
    nearest = np.argsort(distances)[:15]
    np.testing.assert_allclose(Z_nn[cell, :8], codes[nearest, :8].mean(0), rtol=1e-5, atol=1e-6)
    # Paired cells: their own codes, whatever the map.
    paired = np.flatnonzero(mosaic["rna_observed"] & mosaic["atac_observed"])
    plain = fitted.transform(mosaic["rna"][paired], mosaic["atac"][paired])
    # Up to float32 rounding: products of other row counts may round differently.
    np.testing.assert_allclose(Z[paired], plain, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Z_nn[paired], plain, rtol=1e-5, atol=1e-6)


def test_few_paired_cells_warn():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(6, 8)).astype(np.float32)
    observed = {"rna": np.array([1, 1, 0, 1, 1, 1], bool), "atac": np.ones(6, bool)}
    with pytest.warns(UserWarning, match="Only 9 paired training cells"):
        fill_missing(codes.copy(), observed, rng.normal(size=(9, 8)), 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fill_missing(codes.copy(), observed, rng.normal(size=(10, 8)), 4, "neighbors")
        fill_missing(codes.copy(), observed, rng.normal(size=(40, 8)), 4)


def test_transport_map_against_scipy():
    """Least squares then Gaussian optimal transport: checked against numpy's lstsq and
    scipy's ``sqrtm``, and by its defining property (the mapped paired codes have exactly
    the targets' mean and covariance)."""
    rng = np.random.default_rng(0)
    source = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    target = source @ rng.normal(size=(6, 5)) + rng.normal(scale=4.0, size=(400, 5)) + 3.0
    A, b = transport_map(source, target)
    mapped = source @ A + b
    np.testing.assert_allclose(mapped.mean(0), target.mean(0), atol=1e-9)
    np.testing.assert_allclose(np.cov(mapped.T), np.cov(target.T), rtol=1e-7, atol=1e-9)

    design = np.column_stack([source, np.ones(400)])
    coef = np.linalg.lstsq(design, target, rcond=None)[0]
    predicted = design @ coef
    C_p, C_t = np.cov(predicted.T), np.cov(target.T)
    half = np.real(scipy.linalg.sqrtm(C_p))
    inverse_half = np.linalg.inv(half)
    T = inverse_half @ np.real(scipy.linalg.sqrtm(half @ C_t @ half)) @ inverse_half
    expected = (predicted - target.mean(0)) @ T + target.mean(0)
    np.testing.assert_allclose(mapped, expected, rtol=1e-6, atol=1e-8)
    # The predictions are less spread than the targets; the transported ones are not.
    assert np.trace(C_p) < 0.7 * np.trace(C_t)
    # A target that is an exact affine function of the source comes back exactly.
    M = rng.normal(size=(6, 6))
    A, b = transport_map(source, source @ M - 1.0)
    np.testing.assert_allclose(source @ A + b, source @ M - 1.0, rtol=1e-6, atol=1e-8)


def test_masked_loss_is_the_mean_over_observed_cells():
    torch.manual_seed(0)
    module = FactVAEModule(6, 9, 5, 11, n_latent=3, rna_hidden_sizes=(8,), atac_hidden_sizes=(8,))
    X = {
        "rna_input": torch.randn(8, 6),
        "rna_log_library": torch.full((8,), 3.0),
        "atac_input": torch.randn(8, 5),
        "atac_log_library": torch.full((8,), 2.0),
    }
    counts = {"rna": torch.poisson(torch.ones(8, 9)), "atac": torch.poisson(torch.ones(8, 11))}
    rna_observed = torch.tensor([1, 1, 0, 1, 0, 1, 1, 1], dtype=torch.float32)
    atac_observed = torch.tensor([1, 0, 1, 1, 1, 0, 1, 1], dtype=torch.float32)
    outputs = module.eval()(**X)
    loss = FactVAELoss()
    _, masked = loss(
        outputs, {**counts, "rna_observed": rna_observed, "atac_observed": atac_observed}
    )
    for name, mask in (("rna", rna_observed.bool()), ("atac", atac_observed.bool())):
        subset = {key: value[mask] for key, value in outputs[name].items()}
        # Both likelihoods are ZINB: the unmasked RNA slot computes either on the subset.
        _, terms = loss({"rna": subset}, {"rna": counts[name][mask]})
        assert masked[f"nll_{name}"].item() == pytest.approx(terms["nll_rna"].item(), rel=1e-5)
        assert masked[f"kl_{name}"].item() == pytest.approx(terms["kl_rna"].item(), rel=1e-5)


def test_distillation_sees_paired_cells_only(fitted, mosaic):
    net = pickle.loads(pickle.dumps(fitted)).net_  # the step changes weights and optimizer
    dataset = fitted._dataset(
        mosaic["rna"],
        mosaic["atac"],
        with_counts=True,
        observed={"rna": mosaic["rna_observed"], "atac": mosaic["atac_observed"]},
    )
    X, y = dataset.__getitems__(range(30))
    paired = y["paired"]
    module = net.module_.eval()
    with torch.no_grad():
        teacher = module.encode("rna", X["rna_input"][paired])[0]
        student = module.encode("atac", X["atac_input"][paired])[0]
    expected = similarity_distillation_loss(teacher, student).item()
    got = net.distillation_step(X, paired).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_score_sums_the_terms_of_the_modalities_a_cell_has(fitted, mosaic, small):
    """With masks, the paired cells score as in a paired call, the RNA-only cells as an
    RNA-only call, and an ATAC-only cell's score is its ATAC terms: its paired score
    (real RNA counts) minus its RNA-only score (the encoders do not share inputs)."""
    masks = dict(rna_observed=mosaic["rna_observed"], atac_observed=mosaic["atac_observed"])
    rna, atac = small["rna"][:150].tocsr(), small["atac"][:150].tocsr()
    paired = mosaic["rna_observed"] & mosaic["atac_observed"]
    no_atac, no_rna = ~mosaic["atac_observed"], ~mosaic["rna_observed"]
    pieces = {}
    for name, cells in (("paired", paired), ("no_atac", no_atac), ("no_rna", no_rna)):
        pieces[name] = fitted.score(
            mosaic["rna"], mosaic["atac"], sample_weight=cells.astype(float), **masks
        )
    assert pieces["paired"] == pytest.approx(fitted.score(rna[paired], atac[paired]), rel=1e-6)
    assert pieces["no_atac"] == pytest.approx(fitted.score(rna[no_atac]), rel=1e-6)
    atac_terms = fitted.score(rna[no_rna], atac[no_rna]) - fitted.score(rna[no_rna])
    assert pieces["no_rna"] == pytest.approx(atac_terms, rel=1e-5)
    shares = np.array([paired.sum(), no_atac.sum(), no_rna.sum()]) / 150
    whole = fitted.score(mosaic["rna"], mosaic["atac"], **masks)
    assert whole == pytest.approx(shares @ np.array(list(pieces.values())), rel=1e-6)
