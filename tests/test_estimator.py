"""FactVAE's behaviour on real data: outputs, reproducibility, validation, sparsity."""

import sys
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import FAST

from factvae_sk import FactVAE

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fitted(small):
    model = FactVAE(embedding="joint", random_state=0, **FAST)
    return model.fit(small["rna"], small["atac"], prior=small["prior"])


def test_same_random_state_gives_identical_embeddings(small):
    def embed(seed):
        model = FactVAE(embedding="joint", random_state=seed, **FAST)
        return model.fit_transform(small["rna"], small["atac"], prior=small["prior"])

    first, second = embed(3), embed(3)
    assert np.array_equal(first, second)
    assert not np.allclose(first, embed(4))


def test_fit_leaves_torch_global_rng_alone(small):
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    FactVAE(random_state=0, **FAST).fit(small["rna"][:80])
    assert torch.equal(torch.rand(3), expected)


def test_transform_columns_for_each_embedding(fitted, small):
    n_latent = FAST["n_latent"]
    rna, atac = small["rna"][:50], small["atac"][:50]
    assert fitted.transform(rna, atac).shape == (50, 2 * n_latent)
    for embedding, width in [("rna", n_latent), ("atac", n_latent), ("joint", 2 * n_latent)]:
        fitted.set_params(embedding=embedding)
        assert fitted.transform(rna, atac).shape == (50, width)
        assert len(fitted.get_feature_names_out()) == width
    fitted.set_params(embedding="rna")
    # RNA embedding: the same columns whether or not X_atac is passed.
    assert np.array_equal(fitted.transform(rna), fitted.transform(rna, atac))
    fitted.set_params(embedding="joint")
    with pytest.raises(ValueError, match="needs X_atac"):
        fitted.transform(rna)


def test_joint_embedding_is_rna_then_atac(fitted, small):
    rna, atac = small["rna"][:40], small["atac"][:40]
    joint = fitted.transform(rna, atac)
    fitted.set_params(embedding="atac")
    atac_only = fitted.transform(rna, atac)
    fitted.set_params(embedding="joint")
    assert np.array_equal(joint[:, FAST["n_latent"] :], atac_only)


def test_feature_embeddings_are_the_decoder_weights(fitted, small):
    emb = fitted.feature_embeddings_
    assert emb.rna.shape == (small["rna"].shape[1], FAST["n_latent"])
    assert emb.atac.shape == (small["atac"].shape[1], FAST["n_latent"])
    W_a = fitted.module_.decoder_atac.feature_embedding.detach().numpy()
    assert np.array_equal(emb.atac.to_numpy(), W_a.T)


def test_regulatory_scores_are_embedding_cosines(fitted, small):
    scores = fitted.regulatory_scores(small["prior"], score="cosine")
    dense = fitted.regulatory_scores(score="cosine")
    assert sp.issparse(scores) and scores.nnz == small["prior"].nnz
    rows, cols = small["prior"].nonzero()
    np.testing.assert_allclose(
        np.asarray(scores[rows, cols]).ravel(), dense[rows, cols], rtol=1e-5, atol=1e-6
    )
    g = fitted.feature_embeddings_.rna.to_numpy()[7]
    p = fitted.feature_embeddings_.atac.to_numpy()[11]
    assert dense[7, 11] == pytest.approx(g @ p / np.linalg.norm(g) / np.linalg.norm(p), rel=1e-5)


def test_impute_atac_preserves_library_size(fitted, small):
    atac = small["atac"][:60]
    imputed = fitted.impute_atac(atac)
    assert imputed.shape == atac.shape and imputed.dtype == np.float32
    assert (imputed > 0).all()
    # mu = exp(s_a) softmax(.): each cell's imputed profile sums to its observed depth.
    np.testing.assert_allclose(imputed.sum(axis=1), np.asarray(atac.sum(axis=1)).ravel(), rtol=1e-3)


def test_score_improves_with_training(small):
    train, test = slice(0, 200), slice(200, 300)
    scores = []
    for epochs in (1, 25):
        model = FactVAE(random_state=0, **{**FAST, "max_epochs": epochs})
        model.fit(small["rna"][train], small["atac"][train], prior=small["prior"])
        scores.append(model.score(small["rna"][test], small["atac"][test]))
    assert np.isfinite(scores).all()
    assert scores[1] > scores[0]


def test_rna_only_model(small):
    model = FactVAE(random_state=0, **FAST).fit(small["rna"])
    assert model.n_peaks_in_ == 0 and "atac" not in model.feature_embeddings_
    assert model.transform(small["rna"]).shape == (300, FAST["n_latent"])
    assert not hasattr(model.net_, "optimizer_atac_")
    with pytest.raises(ValueError, match="without X_atac"):
        model.impute_atac(small["atac"])
    with pytest.raises(ValueError, match="needs X_atac"):
        FactVAE(embedding="atac", **FAST).fit(small["rna"])
    with pytest.raises(ValueError, match="needs X_atac"):
        FactVAE(**FAST).fit(small["rna"], prior=small["prior"])


def test_verbose_prints_progress(small, capsys):
    FactVAE(random_state=0, verbose=1, **{**FAST, "max_epochs": 20}).fit(small["rna"][:100])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch")]
    assert len(lines) == 10 and "nll_rna=" in lines[-1] and "20/20" in lines[-1]
    FactVAE(random_state=0, **FAST).fit(small["rna"][:100])
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- bad input


# Bad input and the caller's data: tests/test_reliability.py.


def test_dataframe_feature_names_are_kept(small):
    genes = [f"g{i}" for i in range(small["rna"].shape[1])]
    peaks = [f"p{i}" for i in range(300)]
    rna = pd.DataFrame(small["rna"][:60].toarray(), columns=genes)
    atac = pd.DataFrame(small["atac"][:60, :300].toarray(), columns=peaks)
    model = FactVAE(random_state=0, **FAST).fit(rna, atac)
    assert list(model.feature_names_in_) == genes
    assert list(model.atac_feature_names_in_) == peaks


# ---------------------------------------------------------------- sparse stays sparse


def _traced_peak_bytes(n_cells, n_peaks=20_000):
    """Peak numpy/Python memory of fit + transform + score on random sparse counts."""
    rng = np.random.default_rng(n_cells)

    def counts(n_features, density):
        matrix = sp.random(n_cells, n_features, density=density, format="csr", random_state=rng)
        return (matrix.ceil() + sp.eye(n_cells, n_features, format="csr")).tocsr()

    rna, atac = counts(300, 0.05), counts(n_peaks, 0.001)
    model = FactVAE(
        embedding="joint", random_state=0, **{**FAST, "max_epochs": 1, "batch_size": 32}
    )
    model.fit(rna[:50], atac[:50])  # warm up: first-call imports and caches are not data memory
    tracemalloc.start()
    try:
        model.fit(rna, atac)
        model.transform(rna, atac)
        model.score(rna, atac)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_cells_times_features():
    """Sparse stays sparse: quadrupling the cells of a 20,000-peak matrix adds 240 MB to a dense
    copy; fit, transform and score (numpy allocations traced) must grow by a small fraction."""
    small_peak, large_peak = _traced_peak_bytes(1000), _traced_peak_bytes(4000)
    dense_growth = (4000 - 1000) * 20_000 * 4
    print(
        f"traced peak {small_peak / 1e6:.0f} MB -> {large_peak / 1e6:.0f} MB; "
        f"a dense copy would grow by {dense_growth / 1e6:.0f} MB",
        file=sys.stderr,
    )
    assert large_peak - small_peak < dense_growth / 10


@pytest.mark.parametrize("embedding", ["rna", "atac", "joint"])
def test_fit_transform_is_fit_then_transform(small, embedding):
    """fit_transform returns the codes fit computed: those transform gives, bit for bit."""
    model = FactVAE(embedding=embedding, random_state=0, **FAST)
    Z = model.fit_transform(small["rna"], small["atac"], prior=small["prior"])
    assert np.array_equal(Z, model.transform(small["rna"], small["atac"]))
    Z[:] = 0  # a copy: the model's training codes stay as they were
    assert np.array_equal(
        model.training_codes_,
        model.set_params(embedding="joint").transform(small["rna"], small["atac"]),
    )


def test_auto_epochs_is_a_budget_of_steps():
    from factvae_sk.model._training_setup import AUTO_MAX_EPOCHS, AUTO_STEPS, auto_epochs

    # An epoch is n // batch steps; enough epochs for AUTO_STEPS steps, at most 300.
    for n_cells, batch in [(1047, 128), (4749, 128), (12000, 128), (50, 128), (1579, 128)]:
        steps = n_cells // min(batch, n_cells)
        expected = min(AUTO_MAX_EPOCHS, int(np.ceil(AUTO_STEPS / steps)))
        assert auto_epochs(n_cells, batch) == expected
    # The bundled datasets: the cell lines keep the method's 300, the kidney trains 100.
    assert auto_epochs(1047, 128) == 300 and auto_epochs(4749, 128) == 100
    assert auto_epochs(12_000, 128) == 40


def test_auto_epochs_trains_that_many_epochs(small, monkeypatch):
    from factvae_sk.model import _training_setup

    monkeypatch.setattr(_training_setup, "AUTO_STEPS", 7)
    params = {**FAST, "max_epochs": "auto", "batch_size": 64}
    # 200 cells: 3 steps an epoch, 3 epochs for 7 steps; 100 cells: 1 step, 7 epochs.
    model = FactVAE(random_state=0, **params).fit(small["rna"][:200])
    assert len(model.history_) == 3 and model.net_.max_epochs == 3
    assert len(FactVAE(random_state=0, **params).fit(small["rna"][:100]).history_) == 7
    # A validation split counts the training cells only: 180 cells train, 2 steps, 4 epochs.
    split = FactVAE(random_state=0, validation_fraction=0.1, **params).fit(small["rna"][:200])
    assert len(split.history_) == 4
