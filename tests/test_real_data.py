"""The faithful default model on the real SNARE-seq cell-line data (one 300-epoch fit).

Marked slow (several minutes on 2 cores); CI runs it.
"""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from factvae_sk import FactVAE
from factvae_sk._preprocessing import ATACEncoderInput

pytestmark = pytest.mark.slow


def _ari(embedding, labels):
    return adjusted_rand_score(labels, KMeans(4, n_init=10, random_state=0).fit_predict(embedding))


@pytest.fixture(scope="module")
def default_fit(snare):
    model = FactVAE(embedding="joint", random_state=0)
    Z = model.fit_transform(snare.rna_hvg, snare.atac, prior=snare.prior)
    return model, Z


def test_default_fit_separates_the_cell_lines(default_fit, snare):
    model, Z = default_fit
    n_latent = model.n_latent
    ari_rna = _ari(Z[:, :n_latent], snare.labels)
    ari_atac = _ari(Z[:, n_latent:], snare.labels)
    lsi = ATACEncoderInput(random_state=0).fit(snare.atac).transform(snare.atac)
    ari_lsi = _ari(lsi, snare.labels)
    print(f"ARI rna={ari_rna:.3f} atac={ari_atac:.3f} lsi-baseline={ari_lsi:.3f}")
    assert ari_rna >= 0.95
    assert ari_atac >= 0.85
    assert ari_atac > ari_lsi + 0.1  # the ATAC encoder beats its own input


def test_prior_pairs_score_higher_than_other_pairs(default_fit, snare):
    model, _ = default_fit
    prior = snare.prior
    on_prior = np.asarray(model.regulatory_scores(prior)[prior.nonzero()]).ravel()
    rng = np.random.default_rng(0)
    genes = rng.integers(0, prior.shape[0], 20000)
    peaks = rng.integers(0, prior.shape[1], 20000)
    scores = model.regulatory_scores()
    off_prior = scores[genes, peaks][np.asarray(prior[genes, peaks]).ravel() == 0]
    print(f"mean cosine: prior pairs {on_prior.mean():.3f}, random pairs {off_prior.mean():.3f}")
    # The prior term pulls linked embeddings to cosine 1.
    assert on_prior.mean() > 0.8 > off_prior.mean() + 0.5


def test_imputed_accessibility_is_denoised(default_fit, snare):
    """Each cell's imputed profile agrees with its cell line's pseudobulk (from the other
    cells) far better than its raw counts do."""
    model, _ = default_fit
    rng = np.random.default_rng(0)
    cells = rng.choice(snare.atac.shape[0], 200, replace=False)
    imputed = model.impute_atac(snare.atac[cells])
    raw = snare.atac[cells].toarray()
    gains = []
    for i, cell in enumerate(cells):
        others = np.flatnonzero(snare.labels == snare.labels[cell])
        others = others[others != cell]
        bulk = np.asarray(snare.atac[others].sum(axis=0)).ravel()
        gains.append(np.corrcoef(imputed[i], bulk)[0, 1] - np.corrcoef(raw[i], bulk)[0, 1])
    print(f"median correlation gain of imputed over raw: {np.median(gains):.3f}")
    assert np.median(gains) > 0.1
