"""Several samples simulated on a bundled dataset, written once for every evaluation.

No multi-sample paired dataset ships with the package, so samples are simulated on the
bundled ones: the cells are split into three samples with unequal cell-type composition
(:func:`assign_samples`), and each sample gets its own per-gene and per-peak multiplicative
effects (log-normal, sd 0.5), sequencing depth (x1, x0.6, x0.4 of the original) and
peak-level dropout (0%, 10%, 20% of the peaks zeroed), applied to the observed counts by
Poisson resampling of each non-zero entry at its scaled mean (:func:`simulate_samples`).

:func:`simulated_study` draws one study (cells, samples and counts) from a seed;
:data:`STUDY_CELLS` holds the cell counts of the "Several samples" tables of
``benchmarks/README.md`` (SNARE-seq: all 1047 cells; kidney: a random 1500).
:func:`write_study` / :func:`read_study` store a study as one ``.npz`` file (plain NumPy
arrays, no pickle), so that peers in other Python environments (scvi-tools' MultiVI, say)
fit exactly the same cells; reading needs only NumPy and SciPy (this module imports the
package only inside :func:`simulated_study`).
"""

from pathlib import Path

import numpy as np
import scipy.sparse as sp

DEPTHS = (1.0, 0.6, 0.4)
PEAK_DROPOUT = (0.0, 0.1, 0.2)
EFFECT_SD = 0.5
N_SAMPLES = 3
#: Cells of each dataset in the README's "Several samples" tables (None: all of them).
STUDY_CELLS = {"snare": None, "kidney": 1500}
_MATRICES = ("rna", "atac", "rna_b", "atac_b", "prior")
_ARRAYS = ("labels", "sample", "genes", "peaks", "gene_effect", "peak_effect")


def assign_samples(labels, n_samples, rng):
    """Sample of each cell, with cell-type composition that differs between samples: each
    type's cells go to the samples with shares drawn from a Dirichlet(1, ..., 1)."""
    sample = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        cells = np.flatnonzero(labels == label)
        shares = 0.15 + 0.85 * rng.dirichlet(np.ones(n_samples))  # every sample gets some
        sample[cells] = rng.choice(n_samples, size=len(cells), p=shares / shares.sum())
    return sample


def _resample(counts, row_scale, col_scale, rng):
    """Poisson counts at ``count * row_scale * col_scale`` for each stored entry (CSR)."""
    counts = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    counts.data = rng.poisson(counts.data * row_scale[rows] * col_scale[counts.indices]).astype(
        np.float32
    )
    counts.eliminate_zeros()
    return counts.astype(np.float32)


def simulate_samples(rna, atac, sample, rng, return_effects=False):
    """RNA and ATAC counts with each sample's effects (see the module docstring); with
    ``return_effects``, also the effects: per-gene and per-peak multipliers of each sample,
    shape (n_samples, n_features), the peaks a sample drops at 0."""
    n_samples = sample.max() + 1
    depth = np.asarray(DEPTHS[:n_samples])[sample]
    gene_effect = rng.lognormal(0.0, EFFECT_SD, size=(n_samples, rna.shape[1]))
    peak_effect = rng.lognormal(0.0, EFFECT_SD, size=(n_samples, atac.shape[1]))
    for s in range(n_samples):
        dropped = rng.random(atac.shape[1]) < PEAK_DROPOUT[s]
        peak_effect[s, dropped] = 0.0
    rna_out, atac_out = [], []
    for s in range(n_samples):
        cells = np.flatnonzero(sample == s)
        rna_out.append(_resample(rna[cells], depth[cells], gene_effect[s], rng))
        atac_out.append(_resample(atac[cells], depth[cells], peak_effect[s], rng))
    order = np.argsort(np.concatenate([np.flatnonzero(sample == s) for s in range(n_samples)]))
    counts = sp.vstack(rna_out).tocsr()[order], sp.vstack(atac_out).tocsr()[order]
    if return_effects:
        return (*counts, {"gene": gene_effect, "peak": peak_effect})
    return counts


def subset(name, n_cells, rng):
    """The dataset, and the counts (CSR) and labels of a random ``n_cells`` of its cells
    drawn from ``rng`` (all when None)."""
    from benchmarks.harness.data import load_dataset

    data = load_dataset(name)
    cells = np.arange(data.rna.shape[0])
    if n_cells and n_cells < len(cells):
        cells = np.sort(rng.choice(cells, n_cells, replace=False))
    return data, data.rna[cells].tocsr(), data.atac[cells].tocsr(), data.labels[cells]


def simulated_study(name, n_cells, seed):
    """The cells (a random ``n_cells`` of the dataset, all when None), their 3 simulated
    samples and both versions of their counts, as a dict: ``rna``, ``atac`` (original),
    ``rna_b``, ``atac_b`` (with the sample effects), ``labels``, ``sample``, ``effects``
    (of :func:`simulate_samples`), ``prior`` (a :class:`~factvae_sk.GenePeakPrior`),
    ``genes`` and ``peaks`` (names). Everything is drawn from ``seed``."""
    from factvae_sk import GenePeakPrior

    rng = np.random.default_rng(seed)
    data, rna, atac, labels = subset(name, n_cells, rng)
    sample = assign_samples(labels, N_SAMPLES, rng)
    rna_b, atac_b, effects = simulate_samples(rna, atac, sample, rng, return_effects=True)
    # Shallow cells can lose every read at a lower depth: left out of every fit.
    kept = (np.asarray(rna_b.sum(1)).ravel() > 0) & (np.asarray(atac_b.sum(1)).ravel() > 0)
    return {
        "rna": rna[kept],
        "atac": atac[kept],
        "rna_b": rna_b[kept],
        "atac_b": atac_b[kept],
        "labels": labels[kept],
        "sample": sample[kept],
        "effects": effects,
        "prior": GenePeakPrior(data.prior),
        "genes": data.genes.gene.to_numpy(),
        "peaks": data.peaks.peak.to_numpy(),
    }


def study_path(directory, name, seed):
    """Where :func:`write_studies` puts the study of ``name`` and ``seed``."""
    return Path(directory) / f"{name}_s{seed}.npz"


def write_study(path, study):
    """Store a :func:`simulated_study` as one ``.npz`` of plain arrays (each sparse matrix
    as ``<key>_data``, ``_indices``, ``_indptr``, ``_shape``; strings as Unicode arrays)."""
    arrays = {}
    for key in _MATRICES:
        matrix = study[key]
        matrix = sp.csr_matrix(getattr(matrix, "matrix", matrix))  # GenePeakPrior.matrix
        for part in ("data", "indices", "indptr", "shape"):
            arrays[f"{key}_{part}"] = np.asarray(getattr(matrix, part))
    arrays["labels"] = np.asarray(study["labels"]).astype(str)
    arrays["sample"] = np.asarray(study["sample"])
    arrays["genes"] = np.asarray(study["genes"]).astype(str)
    arrays["peaks"] = np.asarray(study["peaks"]).astype(str)
    arrays["gene_effect"] = study["effects"]["gene"]
    arrays["peak_effect"] = study["effects"]["peak"]
    np.savez_compressed(path, **arrays)


def read_study(path):
    """The dict :func:`write_study` stored: CSR matrices ``rna``, ``atac``, ``rna_b``,
    ``atac_b``, ``prior`` (genes x peaks) and arrays ``labels``, ``sample``, ``genes``,
    ``peaks``, ``gene_effect``, ``peak_effect``. Needs NumPy and SciPy only."""
    with np.load(path, allow_pickle=False) as stored:
        study = {key: stored[key] for key in _ARRAYS}
        for key in _MATRICES:
            parts = [stored[f"{key}_{part}"] for part in ("data", "indices", "indptr")]
            study[key] = sp.csr_matrix(tuple(parts), shape=tuple(stored[f"{key}_shape"]))
    return study


def write_studies(directory, names=("snare", "kidney"), seeds=(0, 1, 2)):
    """Write the study of every ``(name, seed)`` (cells per :data:`STUDY_CELLS`) to
    ``directory/{name}_s{seed}.npz``; returns the paths."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        for seed in seeds:
            path = study_path(directory, name, seed)
            write_study(path, simulated_study(name, STUDY_CELLS[name], seed))
            paths.append(path)
    return paths
