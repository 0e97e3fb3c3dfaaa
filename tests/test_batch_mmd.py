"""The MMD penalty across samples (``batch_mmd_weight``): its maths against numpy, that at 0
the sample-conditioned fit is unchanged, and that it pulls the samples' codes together."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import DATA, FAST, assert_trained_close, data_script, posterior_means
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import InvalidParameterError

from factvae_sk import PAPER_SETTINGS, FactVAE
from factvae_sk.nn._losses import MMD_SCALES, FactVAELoss, gaussian_mmd, sample_mmd

pytestmark = pytest.mark.usefixtures("one_thread")


def _numpy_mmd(codes, in_group, scales=MMD_SCALES):
    """The biased squared MMD written out pair by pair."""
    n = len(codes)
    sq = np.array([[np.sum((codes[i] - codes[j]) ** 2) for j in range(n)] for i in range(n)])
    off_diagonal = np.sort(sq[~np.eye(n, dtype=bool)])
    median = off_diagonal[(len(off_diagonal) - 1) // 2]  # the lower median, as torch's
    kernel = np.mean([np.exp(-sq / (s * median)) for s in scales], axis=0)
    a, b = np.flatnonzero(in_group), np.flatnonzero(~in_group)
    return (
        kernel[np.ix_(a, a)].mean() + kernel[np.ix_(b, b)].mean() - 2 * kernel[np.ix_(a, b)].mean()
    )


def test_gaussian_mmd_against_numpy():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(9, 4))
    codes[:4] += 1.5  # the first group shifted: a clearly positive MMD
    in_group = np.arange(9) < 4
    got = gaussian_mmd(torch.tensor(codes), torch.tensor(in_group)).item()
    expected = _numpy_mmd(codes, in_group)
    assert expected > 0.1
    assert got == pytest.approx(expected, rel=1e-9)
    # Same distribution on both sides, both empirical copies: exactly zero.
    twice = np.vstack([codes[:4], codes[:4]])
    zero = gaussian_mmd(torch.tensor(twice), torch.tensor(np.arange(8) < 4)).item()
    assert zero == pytest.approx(0.0, abs=1e-12)


def test_sample_mmd_is_the_mean_of_one_against_the_rest():
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(12, 3))
    sample = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 1])
    onehot = np.eye(4)[sample]  # a fourth sample absent from the batch: not counted
    observed = np.ones(12)
    observed[[2, 5]] = 0.0  # cells without the modality: left out
    keep = observed > 0
    expected = np.mean([_numpy_mmd(codes[keep], sample[keep] == k) for k in range(3)])
    got = sample_mmd(torch.tensor(codes), torch.tensor(onehot), torch.tensor(observed))
    assert got.item() == pytest.approx(expected, rel=1e-9)
    # One sample in the batch: nothing to compare.
    assert sample_mmd(torch.tensor(codes), torch.tensor(np.eye(4)[np.zeros(12, int)])) == 0


def test_criterion_adds_the_weighted_mmd_of_both_modalities():
    rng = np.random.default_rng(2)
    n, genes = 10, 5
    outputs = {
        block: {
            "mean": torch.tensor(rng.normal(size=(n, 3))),
            "logvar": torch.zeros(n, 3, dtype=torch.float64),
            "log_mu": torch.full((n, genes), -np.log(genes), dtype=torch.float64),
            "log_theta": torch.zeros(n, genes, dtype=torch.float64),
            "pi_logits": torch.full((n, genes), -5.0, dtype=torch.float64),
        }
        for block in ("rna", "atac")
    }
    counts = {b: torch.tensor(rng.poisson(1.0, (n, genes)), dtype=torch.float64) for b in outputs}
    batch = torch.tensor(np.eye(2)[np.arange(n) % 2])
    plain, plain_terms = FactVAELoss()(outputs, counts, batch=batch)
    assert "mmd" not in plain_terms  # weight 0: no term, no graph
    loss, terms = FactVAELoss(batch_mmd_weight=7.0)(outputs, counts, batch=batch)
    expected = sum(
        _numpy_mmd(outputs[b]["mean"].numpy(), np.arange(n) % 2 == 0) for b in ("rna", "atac")
    )
    assert terms["mmd"].item() == pytest.approx(expected, rel=1e-9)
    assert (loss - plain).item() == pytest.approx(7.0 * expected, rel=1e-8)


def test_weight_zero_with_batch_reproduces_the_model_before_the_option():
    """Outputs of a fit with batch equal those saved from the code before the option existed
    (tests/data/make_batch_reference.py, run on main before the change)."""
    ref = data_script("make_batch_reference")
    from make_no_batch_reference import SETTINGS, reference_data

    rna, atac, prior = reference_data()
    batch = ref.donors(rna.shape[0])
    # The file was written with the defaults of then, the published method's.
    settings = {**PAPER_SETTINGS, **SETTINGS, "batch_mmd_weight": 0.0}
    model = FactVAE(**settings).fit(rna, atac, prior=prior, batch=batch)
    expected = np.load(DATA / "batch_reference.npz")
    assert "mmd" not in model.history_[-1]
    for name, value in ref.reference_outputs(model, rna, atac, batch).items():
        # Bit-identical on the machine that wrote the file; elsewhere up to float32
        # reordering over the fit's steps (conftest.TRAINED_RTOL says how large).
        assert_trained_close(value, expected[name], name)


def _shifted_samples(small, n=300, seed=0):
    """Two samples of the same kind of cells: the second with per-gene and per-peak
    multiplicative effects (log-normal, sd 1), 40 % of the depth and a fifth of its peaks
    closed (Poisson-resampled counts), the kind of shift the codes should shed."""
    rng = np.random.default_rng(seed)
    sample = np.arange(n) % 2
    out = []
    for X in (small["rna"][:n], small["atac"][:n]):
        X = sp.csr_matrix(X, dtype=np.float64, copy=True)
        effect = 0.4 * rng.lognormal(0.0, 1.0, X.shape[1]) * (rng.random(X.shape[1]) > 0.2)
        rows = np.repeat(np.arange(n), np.diff(X.indptr))
        scale = np.where(sample[rows] == 1, effect[X.indices], 1.0)
        X.data = rng.poisson(X.data * scale).astype(np.float64)
        out.append(X.astype(np.float32))
    return out[0], out[1], np.array(["s1", "s2"])[sample]


def _same_sample_share(Z, batch, k=10):
    """Share of each cell's k nearest neighbours from its own sample (0.5 = mixed)."""
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z, return_distance=False)
    return float((batch[neighbours[:, 1:]] == batch[:, None]).mean())


def test_mmd_weight_pulls_the_samples_codes_together(small):
    rna, atac, batch = _shifted_samples(small)
    rna_in, atac_in = rna.copy(), atac.copy()
    settings = dict(FAST, max_epochs=30, random_state=0, validation_fraction=0.2)
    fits = {
        w: FactVAE(batch_mmd_weight=w, **settings).fit(rna, atac, batch=batch) for w in (0.0, 100.0)
    }
    history = fits[100.0].history_
    assert "mmd" not in fits[0.0].history_[-1] and history[-1, "mmd"] > 0
    assert np.isfinite(history[-1, "valid_loss"])
    # The training's effect: the encoders' codes, before transform's integration step.
    codes = {w: posterior_means(m, rna).astype(np.float64) for w, m in fits.items()}
    gaps = {w: _numpy_mmd(Z, batch == "s1") for w, Z in codes.items()}
    shares = {w: _same_sample_share(Z, batch) for w, Z in codes.items()}
    assert gaps[100.0] < 0.7 * gaps[0.0], gaps
    assert shares[100.0] < shares[0.0] - 0.05, shares
    # The caller's arrays are untouched.
    assert (rna != rna_in).nnz == 0 and (atac != atac_in).nnz == 0


def test_mmd_with_one_modality_cells_and_a_saved_model(small, tmp_path):
    """Mosaic cells leave their missing modality's codes out of the MMD; the weight is kept
    by the weights-only file and its loss."""
    n = 150
    rna, atac, batch = small["rna"][:n], small["atac"][:n], np.array(["a", "b", "c"] * 50)
    group = np.arange(n) % 5  # 0: RNA only, 1: ATAC only, others paired
    masks = dict(rna_observed=group != 1, atac_observed=group != 0)
    model = FactVAE(batch_mmd_weight=10.0, random_state=0, **FAST)
    model.fit(rna, atac, batch=batch, **masks)
    assert np.isfinite(model.history_[:, "mmd"]).all()
    model.save(tmp_path / "m.npz")
    loaded = FactVAE.load(tmp_path / "m.npz")
    assert loaded.batch_mmd_weight == 10.0 and loaded.net_.criterion_.batch_mmd_weight == 10.0
    np.testing.assert_allclose(
        loaded.transform(rna, atac, batch=batch, **masks),
        model.transform(rna, atac, batch=batch, **masks),
        rtol=1e-6,
    )


def test_negative_weight_is_refused():
    with pytest.raises(InvalidParameterError, match="batch_mmd_weight"):
        FactVAE(batch_mmd_weight=-1.0).fit(np.ones((5, 3)))
