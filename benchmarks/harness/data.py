"""The two bundled datasets as the evaluations use them.

SNARE-seq cell lines (easy: 4 lines) with their 2000 highly variable genes (plus any
``extra_genes``, e.g. markers), and the sci-CAR mouse kidney (hard: 14 tissue types) with all
of its 5000 genes; each with its labels and the gene-body + 2 kb prior.
"""

import numpy as np

from factvae_sk import gene_peak_prior, load_scicar_kidney, load_snare_cellline

DATASETS = ("snare", "kidney")


def load_dataset(name, *, extra_genes=()):
    """Counts, tables, ``labels`` and ``prior`` of one bundled dataset (``name`` too)."""
    if name == "snare":
        data = load_snare_cellline()
        keep = data.genes.highly_variable.to_numpy() | data.genes.gene.isin(extra_genes).to_numpy()
        label_column = "cell_line"
    elif name == "kidney":
        data = load_scicar_kidney()
        keep = np.ones(data.rna.shape[1], dtype=bool)
        label_column = "cell_type"
    else:
        raise ValueError(f"dataset must be one of {DATASETS}; got {name!r}.")
    data.name = name
    data.genes = data.genes[keep].reset_index(drop=True)
    data.rna = data.rna[:, keep]
    data.labels = data.cells[label_column].to_numpy()
    data.prior = gene_peak_prior(data.genes, data.peaks)
    return data
