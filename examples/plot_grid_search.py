"""
Hyperparameter search with GridSearchCV
=======================================

``X_rna`` is scikit-learn's ``X`` and ``X_atac`` its ``y``, so ``GridSearchCV`` splits both by
cells, and ``FactVAE.score`` (the held-out mean ELBO per cell, higher is better) is what it
maximizes. The prior is a fit parameter: wrapped in ``GenePeakPrior``, the search never cuts
it by cells.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV

from factvae_sk import FactVAE, GenePeakPrior, gene_peak_prior, load_snare_cellline

epochs = int(os.environ.get("FACTVAE_EXAMPLE_EPOCHS", 15))

data = load_snare_cellline()
# A subset to keep the 8 fits short: 400 cells, the 5000 peaks with the most counts.
cells = np.random.default_rng(0).choice(data.rna.shape[0], 400, replace=False)
hvg = data.genes.highly_variable.to_numpy()
top = np.sort(np.argsort(np.asarray(data.atac.sum(axis=0)).ravel())[-5000:])
X_rna, X_atac = data.rna[cells][:, hvg], data.atac[cells][:, top]
prior = gene_peak_prior(data.genes[hvg], data.peaks.iloc[top])

# %%
# A small model (the method's is larger), two latent sizes and two learning rates, 2 folds.
small = FactVAE(max_epochs=epochs, rna_hidden_sizes=(128,), atac_hidden_sizes=(64,), random_state=0)
grid = {"n_latent": [10, 30], "lr": [1e-3, 3e-3]}
search = GridSearchCV(small, grid, cv=2).fit(X_rna, X_atac, prior=GenePeakPrior(prior))
print("best:", search.best_params_, f"held-out ELBO {search.best_score_:.1f}")

# %%
# Mean held-out ELBO of every setting, with its spread over the folds.
results = pd.DataFrame(search.cv_results_)
names = [f"n_latent={p['n_latent']}\nlr={p['lr']:g}" for p in results.params]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar(names, results.mean_test_score, yerr=results.std_test_score, color="tab:blue")
ax.set(ylabel="held-out ELBO per cell", title=f"GridSearchCV, {epochs} epochs per fit")
ax.set_ylim(results.mean_test_score.min() * 1.05, results.mean_test_score.max() * 0.95)
fig.tight_layout()
plt.show()
