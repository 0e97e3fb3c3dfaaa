"""
Kidney tissue: a hard data set
==============================

The bundled sci-CAR mouse kidney (``load_scicar_kidney``: 4749 cells, 14 annotated cell types)
is much sparser than the cell lines: about 180 genes and 19 peaks with counts per cell. This
example fits FactVAE on a random 1500 cells and shows, per cell type, how the KMeans clusters
of the RNA embedding split them. On this data FactVAE's RNA embedding clusters a little worse
than a plain PCA (see the benchmarks page), and its ATAC embedding is at chance.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from factvae_sk import FactVAE, gene_peak_prior, load_scicar_kidney

epochs = int(os.environ.get("FACTVAE_EXAMPLE_EPOCHS", 30))

data = load_scicar_kidney()
cells = np.random.default_rng(0).choice(data.rna.shape[0], 1500, replace=False)
X_rna, X_atac = data.rna[cells], data.atac[cells]
keep = (np.asarray(X_rna.sum(axis=1)).ravel() > 0) & (np.asarray(X_atac.sum(axis=1)).ravel() > 0)
X_rna, X_atac = X_rna[keep], X_atac[keep]
labels = data.cells.cell_type.to_numpy()[cells][keep]
prior = gene_peak_prior(data.genes, data.peaks)
print(f"{X_rna.shape[0]} cells, {len(set(labels))} cell types, {prior.nnz} prior links")

# %%
# Fit and cluster the RNA embedding into as many clusters as there are cell types.
model = FactVAE(max_epochs=epochs, random_state=0).fit(X_rna, X_atac, prior=prior)
Z = model.transform(X_rna)
clusters = KMeans(len(set(labels)), n_init=3, random_state=0).fit_predict(Z)
print(f"RNA embedding: ARI {adjusted_rand_score(labels, clusters):.3f}")

# %%
# Each cell type's share in every cluster: a good embedding puts each row in few columns.
table = pd.crosstab(labels, clusters, normalize="index")
fig, ax = plt.subplots(figsize=(7, 5))
image = ax.imshow(table.to_numpy(), cmap="viridis", aspect="auto")
ax.set_yticks(range(len(table.index)), table.index, fontsize=7)
ax.set(xlabel="KMeans cluster of the RNA embedding", title="sci-CAR kidney")
fig.colorbar(image, ax=ax, label="share of the cell type")
fig.tight_layout()
plt.show()
