"""
Several donors
==============

Studies pool samples (donors, time points, runs), and the first thing a user does is fit
them together, draw the map, cluster and annotate the cells jointly. This example splits the
bundled cell lines (their 8000 peaks with the most counts) into three simulated donors with
unequal cell-line composition, gives each donor its own per-gene and per-peak effects and
sequencing depth, and compares the embedding of a fit that ignores the donors with the
default fit given ``batch=``: its ``transform`` returns the integrated embedding (Harmony on
the trained codes, by donor). The maps are coloured by donor and by cell line: the better
mixed the donors within each cell line (kNN mixing: the share of a cell's 15 nearest
neighbours from another donor), the better the integration, as long as the cell lines stay
apart (ARI).
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

from factvae_sk import FactVAE, gene_peak_prior, load_snare_cellline

epochs = int(os.environ.get("FACTVAE_EXAMPLE_EPOCHS", 20))
rng = np.random.default_rng(0)

data = load_snare_cellline()
hvg = data.genes.highly_variable.to_numpy()
top = np.sort(np.argsort(np.asarray(data.atac.sum(axis=0)).ravel())[-8000:])  # to stay short
X_rna, X_atac = data.rna[:, hvg].astype(np.float64), data.atac[:, top].astype(np.float64)
labels = data.cells.cell_line.to_numpy()
prior = gene_peak_prior(data.genes[hvg], data.peaks.iloc[top])

# %%
# Three samples: each cell line is spread over them in its own proportions.
lines = sorted(set(labels))
shares = rng.dirichlet(np.ones(3), size=len(lines))
sample = np.array([rng.choice(3, p=shares[lines.index(line)]) for line in labels])


def sample_effect(X, sd, depth):
    """Multiply every feature by a per-sample log-normal effect, thin counts by depth."""
    effects = np.exp(rng.normal(0, sd, size=(3, X.shape[1])))
    rows = sp.diags(np.array(depth)[sample]) @ X
    scaled = rows.multiply(effects[sample]).tocsr()
    scaled.data = rng.poisson(scaled.data).astype(np.float64)
    scaled.eliminate_zeros()
    return scaled


X_rna = sample_effect(X_rna, 0.5, [1.0, 0.6, 0.4])
X_atac = sample_effect(X_atac, 0.5, [1.0, 0.6, 0.4])
keep = (np.asarray(X_rna.sum(axis=1)).ravel() > 0) & (np.asarray(X_atac.sum(axis=1)).ravel() > 0)
X_rna, X_atac, labels, sample = X_rna[keep], X_atac[keep], labels[keep], sample[keep]
donor = np.array([f"d{s}" for s in sample])

# %%
# One fit without the donors, one with them (the defaults: nothing else to set).
plain = FactVAE(max_epochs=epochs, random_state=0).fit(X_rna, X_atac, prior=prior)
integrated = FactVAE(max_epochs=epochs, random_state=0).fit(X_rna, X_atac, prior=prior, batch=donor)
embeddings = {
    "donors ignored": plain.transform(X_rna),
    "batch=donor (integrated)": integrated.transform(X_rna, batch=donor),
}

# %%
# The maps before and after: top row coloured by donor, bottom row by cell line.
fig, axes = plt.subplots(2, 2, figsize=(9, 8))
for column, (title, Z) in enumerate(embeddings.items()):
    ari = adjusted_rand_score(labels, KMeans(4, n_init=3, random_state=0).fit_predict(Z))
    # Mixing: the share of each cell's 15 nearest neighbours that come from another donor.
    _, near = NearestNeighbors(n_neighbors=16).fit(Z).kneighbors(Z)
    mixing = (donor[near[:, 1:]] != donor[:, None]).mean()
    xy = PCA(2, random_state=0).fit_transform(Z)
    for row, colour_by in enumerate((donor, labels)):
        ax = axes[row, column]
        for name in sorted(set(colour_by)):
            mask = colour_by == name
            ax.scatter(xy[mask, 0], xy[mask, 1], s=3, label=name)
        ax.set(xlabel="PC 1", ylabel="PC 2")
    axes[0, column].set_title(f"{title}\ncell-line ARI {ari:.3f}, kNN mixing {mixing:.3f}")
axes[0, 0].legend(markerscale=3, frameon=False, title="donor")
axes[1, 0].legend(markerscale=3, frameon=False, title="cell line")
fig.tight_layout()
plt.show()
