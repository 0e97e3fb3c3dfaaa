"""Tests of the highly-variable-gene selection used for users' own data."""

import numpy as np
import scipy.sparse as sp

from factvae_sk.hvg import _loess, highly_variable_genes


def test_recovers_scanpys_seurat_v3_genes(snare):
    # The bundled `highly_variable` column was computed by scanpy (seurat_v3, 2000 genes).
    ours = highly_variable_genes(snare.rna, 2000)
    reference = snare.genes.highly_variable.to_numpy()
    assert ours.sum() == 2000
    overlap = (ours & reference).sum() / 2000
    print(f"overlap with scanpy seurat_v3: {overlap:.3f}")
    assert overlap >= 0.95


def test_sparse_formula_matches_dense_clipping(snare):
    # The selection equals ranking the variance of densely clipped, standardized counts.
    X = snare.rna[:300, :3000]
    X = X[:, np.asarray(X.sum(axis=0)).ravel() > 0]
    dense = X.toarray().astype(float)
    n = dense.shape[0]
    mean, var = dense.mean(0), dense.var(0, ddof=1)
    std = np.sqrt(10 ** _loess(np.log10(mean), np.log10(var)))
    clipped = np.minimum(dense, mean + std * np.sqrt(n))
    norm_var = (((clipped - mean) / std) ** 2).sum(0) / (n - 1)
    order = np.argsort(-norm_var, kind="stable")
    # Genes with the same counts tie; cut where the ranking is unambiguous.
    ranked = norm_var[order]
    k = max(i for i in range(50, 201) if ranked[i - 1] > ranked[i] * (1 + 1e-9))
    expected = np.zeros(X.shape[1], dtype=bool)
    expected[order[:k]] = True
    np.testing.assert_array_equal(highly_variable_genes(X, k), expected)
    # Dense input gives the same, and the caller's matrix is untouched.
    before = X.copy()
    np.testing.assert_array_equal(highly_variable_genes(dense, k), expected)
    assert (X != before).nnz == 0


def test_loess_recovers_a_quadratic():
    x = np.linspace(-2, 3, 500)
    y = 1 + 0.5 * x - 0.3 * x**2
    # Exact at the grid points; linear interpolation in between costs a little.
    np.testing.assert_allclose(_loess(x, y), y, atol=1e-4)
    np.testing.assert_allclose(_loess(x, y, n_points=500), y, atol=1e-9)


def test_all_genes_when_fewer_and_constant_genes_last():
    X = sp.csr_matrix(np.array([[1, 0, 3, 5], [2, 0, 3, 0], [0, 0, 3, 9]]))
    assert highly_variable_genes(X, 10).all()
    mask = highly_variable_genes(X, 2)
    assert not mask[1] and not mask[2]  # zero variance: never selected
