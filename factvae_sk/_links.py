"""Gene-peak regulatory scores from the learned embeddings, one block of genes at a time.

A score is the cosine similarity of a gene's and a peak's embedding. Nothing here forms
the dense genes x peaks matrix: candidate pairs are scored one by one, and "every peak"
searches run over blocks of genes whose score block stays small.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._memory import check_dense_size

# Scores computed at once: a block of genes x all peaks stays under ~64 MB of float32.
BLOCK_ENTRIES = 1 << 24
# Peak memory per link of a table: indices, scores, the sort and the DataFrame's columns.
BYTES_PER_LINK = 100


def check_table_size(n_links):
    """Refuse, before computing it, a links table too large for the machine's memory."""
    check_dense_size(
        BYTES_PER_LINK * n_links,
        f"a table of {n_links} links",
        "pass a smaller top_k, or fewer genes (genes=...) and call again for the rest.",
    )


def unit_rows(embeddings):
    """Rows scaled to unit length (an all-zero row stays zero rather than becoming NaN)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, np.finfo(np.float32).tiny)


def score_pairs(genes, peaks, rows, cols):
    """Cosine scores of the pairs ``(rows[i], cols[i])`` of unit gene and peak embeddings."""
    scores = np.empty(len(rows), dtype=np.float32)
    step = max(1, BLOCK_ENTRIES // genes.shape[1])
    for start in range(0, len(rows), step):
        block = slice(start, start + step)
        scores[block] = np.einsum("ij,ij->i", genes[rows[block]], peaks[cols[block]])
    return scores


def top_k_among_pairs(rows, cols, scores, k):
    """Keep the ``k`` best-scoring pairs of every gene (row); ties keep the lower peak index."""
    order = np.lexsort((cols, -scores, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    # Rank of each pair within its gene: position minus the position of the gene's first pair.
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    keep = rank < k
    return rows[keep], cols[keep], scores[keep]


def top_k_peaks(genes, peaks, gene_index, k):
    """The ``k`` best-scoring peaks of each gene in ``gene_index``, searched over all peaks.

    Returns ``(rows, cols, scores)`` sorted by gene, then score (best first).
    """
    k = min(k, len(peaks))
    block = max(1, BLOCK_ENTRIES // max(len(peaks), 1))
    found = []
    for start in range(0, len(gene_index), block):
        index = gene_index[start : start + block]
        scores = genes[index] @ peaks.T
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, best, axis=1)
        found.append((np.repeat(index, k), best.ravel(), best_scores.ravel()))
    rows, cols, scores = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return top_k_among_pairs(rows, cols, scores, k)


def pattern_pairs(matrix, gene_index=None):
    """Row and column indices of the non-zero entries of a genes x peaks matrix."""
    coo = sp.coo_matrix(matrix)
    keep = coo.data != 0
    rows, cols = coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64)
    if gene_index is not None:
        chosen = np.isin(rows, gene_index)
        rows, cols = rows[chosen], cols[chosen]
    return rows, cols


def links_table(rows, cols, scores, gene_names, peak_names, distance=None):
    """The links as a DataFrame (gene, peak, score[, distance]), best first within a gene."""
    table = pd.DataFrame(
        {
            "gene": np.asarray(gene_names, dtype=object)[rows],
            "peak": np.asarray(peak_names, dtype=object)[cols],
            "score": scores.astype(np.float32),
        }
    )
    if distance is not None:
        # Whole base pairs; missing where a gene has no coordinates.
        table["distance"] = pd.Series(distance).astype("Int64")
    table["_row"] = rows
    table = table.sort_values(["_row", "score"], ascending=[True, False], kind="stable")
    return table.drop(columns="_row").reset_index(drop=True)
