"""
From Cell Ranger ARC's output to results
========================================

A 10x Genomics Multiome experiment arrives as Cell Ranger ARC's
``filtered_feature_bc_matrix.h5``: one features x barcodes matrix in which genes
(``Gene Expression``) and peaks (``Peaks``) are rows, peaks carry their interval and genes
their Ensembl id and symbol. Here the bundled cell lines are written in that layout, with a
GTF of their genes (as the Cell Ranger ARC reference's ``genes/genes.gtf.gz``), and the whole
job runs from them as ``factvae-sk fit --10x filtered_feature_bc_matrix.h5 --gtf genes.gtf.gz
--out results`` would. Reading the ``.h5`` needs h5py (``pip install "factvae_sk[tenx]"``);
the ``filtered_feature_bc_matrix/`` folder needs nothing more.

The defaults train for 300 epochs; this example trains for ``FACTVAE_EXAMPLE_EPOCHS``
(default 40) to stay short.
"""

import gzip
import os
import tempfile
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from factvae_sk import load_snare_cellline
from factvae_sk.cli import run
from factvae_sk.datasets import read_10x_multiome

epochs = int(os.environ.get("FACTVAE_EXAMPLE_EPOCHS", 40))
data = load_snare_cellline()
folder = Path(tempfile.mkdtemp())

# %%
# Cell Ranger ARC's HDF5 layout: group ``matrix`` with the counts compressed over barcodes
# (``data``, ``indices``, ``indptr``, ``shape``), ``barcodes`` and ``features/``. Genes come
# first, then peaks; an interval is ``chrom:start-end`` (``NA`` where a gene has none).
genes, peaks = data.genes, data.peaks
gene_ids = [f"ENSG{i:011d}" for i in range(len(genes))]  # stand-ins for Ensembl ids


def intervals(table):
    return [
        "NA" if pd.isna(row.start) else f"{row.chrom}:{int(row.start)}-{int(row.end)}"
        for row in table.itertuples()
    ]


def strings(values):
    return np.array([str(v).encode() for v in values])


features = {
    "id": gene_ids + peaks["peak"].tolist(),
    "name": genes["gene"].tolist() + peaks["peak"].tolist(),
    "feature_type": ["Gene Expression"] * len(genes) + ["Peaks"] * len(peaks),
    "genome": ["GRCh38"] * (len(genes) + len(peaks)),
    "interval": intervals(genes) + intervals(peaks),
}
matrix = sp.csc_matrix(sp.hstack([data.rna, data.atac]).T).astype(np.int32)
h5_path = folder / "filtered_feature_bc_matrix.h5"
with h5py.File(h5_path, "w") as h5:
    group = h5.create_group("matrix")
    for key in ("data", "indices", "indptr"):
        group.create_dataset(key, data=getattr(matrix, key))
    group.create_dataset("shape", data=np.array(matrix.shape, dtype=np.int32))
    group.create_dataset("barcodes", data=strings(data.cells["barcode"]))
    for key, values in features.items():
        group.create_dataset(f"features/{key}", data=strings(values))
    group.create_dataset("features/_all_tag_keys", data=strings(["genome", "interval"]))

# %%
# The annotation: one ``gene`` record per gene (1-based, closed). The file has no strands;
# the GTF gives them (matched by Ensembl id), so the promoter lies upstream of each gene.
with gzip.open(folder / "genes.gtf.gz", "wt") as gtf:
    for gene_id, row in zip(gene_ids, genes.itertuples(), strict=True):
        if not pd.isna(row.start):
            gtf.write(
                f"{row.chrom}\tHAVANA\tgene\t{int(row.start) + 1}\t{int(row.end)}\t.\t"
                f'{row.strand}\t.\tgene_id "{gene_id}.1"; gene_name "{row.gene}";\n'
            )

# %%
# What the reader makes of it: the layout of ``load_snare_cellline()``, counts kept sparse.
tenx = read_10x_multiome(h5_path, gtf=folder / "genes.gtf.gz")
print(tenx.rna.shape, tenx.atac.shape)
print(tenx.genes.head(3).to_string(index=False))

# %%
# The whole job, as the command line runs it (four clusters: the file holds no labels).
out = folder / "results"
result = run(
    ["fit", "--10x", str(h5_path), "--gtf", str(folder / "genes.gtf.gz"), "--out", str(out)]
    + ["--epochs", str(epochs), "--n-clusters", "4", "--map", "tsne"]
)
print({key: result.summary[key] for key in ("n_cells", "n_genes", "n_peaks", "n_prior_links")})
print(sorted(path.name for path in out.iterdir()))

# %%
# The cell lines are known here, so the clusters can be scored.
cells = pd.read_csv(out / "cell_embeddings.csv")
known = data.cells.set_index("barcode").loc[cells["barcode"], "cell_line"]
print(f"KMeans clusters vs cell lines: ARI {adjusted_rand_score(known, cells['cluster']):.3f}")
fig, ax = plt.subplots(figsize=(5, 4))
for line in sorted(set(known)):
    mask = (known == line).to_numpy()
    ax.scatter(cells["tsne_1"][mask], cells["tsne_2"][mask], s=4, label=line)
ax.set(xlabel="t-SNE 1", ylabel="t-SNE 2", title=f"From Cell Ranger ARC's .h5, {epochs} epochs")
ax.legend(markerscale=3, frameon=False)
fig.tight_layout()
plt.show()
