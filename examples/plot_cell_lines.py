"""
Cell lines: embedding and clustering
====================================

Fit FactVAE on the bundled SNARE-seq mixture of four human cell lines (1047 cells), cluster
each embedding with KMeans and compare the clusters with the cell lines. The picture is a
2-D PCA of the joint embedding, coloured by cell line.

The defaults train for 300 epochs; this example trains for
``FACTVAE_EXAMPLE_EPOCHS`` (default 40) to stay short.
"""

import os

import matplotlib.pyplot as plt
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

from factvae_sk import FactVAE, gene_peak_prior, load_snare_cellline

epochs = int(os.environ.get("FACTVAE_EXAMPLE_EPOCHS", 40))

data = load_snare_cellline()
hvg = data.genes.highly_variable.to_numpy()
X_rna, X_atac = data.rna[:, hvg], data.atac  # raw counts, cells x features, sparse
prior = gene_peak_prior(data.genes[hvg], data.peaks)  # gene body + 2 kb upstream
labels = data.cells.cell_line.to_numpy()
print(f"{X_rna.shape[0]} cells, {X_rna.shape[1]} genes, {X_atac.shape[1]} peaks")

# %%
# Fit, then take the three embeddings: RNA, ATAC and joint posterior means.
model = FactVAE(max_epochs=epochs, random_state=0).fit(X_rna, X_atac, prior=prior)
embeddings = {
    name: model.set_params(embedding=name).transform(X_rna, X_atac)
    for name in ("rna", "atac", "joint")
}
for name, Z in embeddings.items():
    clusters = KMeans(4, n_init=3, random_state=0).fit_predict(Z)
    print(f"{name:>5}: ARI {adjusted_rand_score(labels, clusters):.3f}")

# %%
# The joint embedding in two dimensions.
xy = PCA(2, random_state=0).fit_transform(embeddings["joint"])
fig, ax = plt.subplots(figsize=(5, 4))
for line in sorted(set(labels)):
    mask = labels == line
    ax.scatter(xy[mask, 0], xy[mask, 1], s=4, label=line)
ax.set(xlabel="PC 1", ylabel="PC 2", title=f"FactVAE joint embedding, {epochs} epochs")
ax.legend(markerscale=3, frameon=False)
fig.tight_layout()
plt.show()
