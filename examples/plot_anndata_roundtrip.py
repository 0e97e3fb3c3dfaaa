"""
AnnData / MuData round trip
===========================

Read a MuData with an RNA and an ATAC modality, fit FactVAE on it and write the results back
the scverse way: embeddings in ``obsm``, gene and peak embeddings in ``varm``, the links in
``uns`` and the augmented accessibility of chosen peaks as a layer. The MuData here is built
from the bundled cell lines; with your own data, start from ``mudata.read_h5mu``. Needs the
``anndata`` extra (``pip install "factvae_sk[anndata]"``).
"""

import os
import tempfile
from pathlib import Path

import anndata as ad
import matplotlib.pyplot as plt
import mudata as md
import numpy as np

from factvae_sk import FactVAE, load_snare_cellline
from factvae_sk.anndata import fit_inputs_from_mudata, write_results

epochs = int(os.environ.get("FACTVAE_EXAMPLE_EPOCHS", 30))

data = load_snare_cellline()
obs_names = data.cells.barcode.astype(str).to_numpy()
rna = ad.AnnData(data.rna.astype(np.float32), var=data.genes.set_index("gene"))
rna.obs_names, rna.var_names = obs_names, data.genes.gene.astype(str).to_numpy()
atac = ad.AnnData(data.atac.astype(np.float32), var=data.peaks.set_index("peak"))
atac.obs_names, atac.var_names = obs_names, data.peaks.peak.astype(str).to_numpy()
mdata = md.MuData({"rna": rna, "atac": atac})
mdata.obs["cell_line"] = data.cells.cell_line.to_numpy()

# %%
# Counts, the prior from the tables' coordinates, and the highly variable genes: one call.
inputs = fit_inputs_from_mudata(mdata, genes="highly_variable")
model = FactVAE(max_epochs=epochs, embedding="joint", random_state=0)
model.fit(**inputs.fit_kwargs)

# %%
# Results go back into the MuData, which writes to ``.h5mu`` and reads back unchanged.
peaks = list(model.regulatory_links().sort_values("score").peak.iloc[-20:].unique())
write_results(model, mdata, genes="highly_variable", inputs=inputs, peaks=peaks)
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "multiome_factvae.h5mu"
    mdata.write(path)
    again = md.read_h5mu(path)
print(sorted(again.obsm), sorted(again["rna"].varm), sorted(again.uns))
assert np.allclose(again.obsm["X_factvae"], mdata.obsm["X_factvae"])

# %%
# The joint embedding read back from the file, its first two dimensions by cell line.
Z, lines = again.obsm["X_factvae"], again.obs["cell_line"].to_numpy()
fig, ax = plt.subplots(figsize=(5, 4))
for line in sorted(set(lines)):
    mask = lines == line
    ax.scatter(Z[mask, 0], Z[mask, 1], s=4, label=line)
ax.set(xlabel="X_factvae[:, 0]", ylabel="X_factvae[:, 1]", title="obsm['X_factvae'] from .h5mu")
ax.legend(markerscale=3, frameon=False)
fig.tight_layout()
plt.show()
