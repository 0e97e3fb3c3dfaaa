"""Gene-peak regulatory scores from the learned embeddings, one block of genes at a time.

Every score is a bilinear form ``left[g] @ right[p]`` of two per-feature factor matrices
(:func:`score_factors`): the cosine of the gene's and the peak's embedding (the method's
own score), or the correlation across the training cells of the two decoders' logits,
read from the covariance of the codes. Nothing here forms the dense genes x peaks matrix:
candidate pairs are scored one by one, and "every peak" searches run over blocks of genes
whose score block stays small.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..utils._memory import check_dense_size
from ._accessibility import log_normalizer

SCORES = ("cosine", "correlation", "log_mean_correlation")
# The co-variation score regulatory_scores uses unless told otherwise, and regulatory_links
# without coordinates (with them it uses _link_scores.DEFAULT_DISTANCE_SCORE): the best on
# the link harness (benchmarks/simulate_links.py at every difficulty level; held-out
# prior links and the marker test on SNARE-seq; on the kidney no score beats chance on
# held-out prior links, and this one is not below the cosine).
DEFAULT_SCORE = "correlation"

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


def links_table(rows, cols, scores, gene_names, peak_names, distance=None, extra=None):
    """The links as a DataFrame (gene, peak, score[, distance][, extra columns]), best first
    within a gene (missing scores last)."""
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
    for name, values in (extra or {}).items():
        table[name] = values
    table["_row"] = rows
    table = table.sort_values(["_row", "score"], ascending=[True, False], kind="stable")
    return table.drop(columns="_row").reset_index(drop=True)


def code_covariance(codes, gene_embedding, peak_embedding):
    """Covariance over cells of ``(z_r, n_r, z_a, n_a)``, float64.

    ``codes`` holds the RNA then the ATAC posterior means side by side; ``n = -logsumexp(z @
    W)`` is each decoder's log-softmax normalizer, so that ``[w; 1] @ (z, n)`` is a
    feature's log expected fraction of the cell's counts.
    """
    d = codes.shape[1] // 2
    z_r, z_a = codes[:, :d], codes[:, d:]
    n_r = -log_normalizer(z_r, gene_embedding)
    n_a = -log_normalizer(z_a, peak_embedding)
    stacked = np.column_stack([z_r, n_r, z_a, n_a]).astype(np.float64)
    return np.cov(stacked, rowvar=False)


def score_factors(score, gene_embedding, peak_embedding, covariance=None):
    """``(left, right)`` float32 matrices with ``score(g, p) = left[g] @ right[p]``.

    ``"cosine"``: unit gene and peak embeddings. ``"correlation"``: the Pearson
    correlation across the training cells of the logits ``z_r . w_g`` and ``z_a . w_p``,
    ``w_g' C_ra w_p / sqrt(w_g' C_rr w_g * w_p' C_aa w_p)``. ``"log_mean_correlation"``:
    the same on the log-softmax scale ``z . w - logsumexp(z @ W)`` (each decoder's log
    expected fraction). ``covariance`` is :func:`code_covariance` of the training cells.
    """
    if score == "cosine":
        return unit_rows(gene_embedding), unit_rows(peak_embedding)
    gene_embedding = np.asarray(gene_embedding, dtype=np.float64)
    peak_embedding = np.asarray(peak_embedding, dtype=np.float64)
    d = gene_embedding.shape[1]
    # The normalizer enters with weight 1 on the log-mean scale and not at all on logits.
    weight = 1.0 if score == "log_mean_correlation" else 0.0
    genes = np.column_stack([gene_embedding, np.full(len(gene_embedding), weight)])
    peaks = np.column_stack([peak_embedding, np.full(len(peak_embedding), weight)])
    c_rr, c_ra = covariance[: d + 1, : d + 1], covariance[: d + 1, d + 1 :]
    c_aa = covariance[d + 1 :, d + 1 :]
    tiny = np.finfo(np.float32).tiny
    sd_genes = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", genes, c_rr, genes), tiny))
    sd_peaks = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", peaks, c_aa, peaks), tiny))
    left = (genes @ c_ra) / sd_genes[:, None]
    right = peaks / sd_peaks[:, None]
    return left.astype(np.float32), right.astype(np.float32)


def background_peaks(peak_mean, n_background, seed=0):
    """``n_background`` peaks per peak with similar mean accessibility, never the peak itself.

    Peaks are ranked by mean accessibility and cut into bins of ``max(10 * n, 200)``
    consecutive ranks; each peak draws (with replacement, fixed ``seed``) from its own bin,
    as Signac's ``LinkPeaks`` matches background peaks. Returns an (n_peaks, n_background)
    index array.
    """
    n_peaks = len(peak_mean)
    if n_peaks < 2:
        raise ValueError("Background peaks need at least 2 peaks.")
    order = np.argsort(np.asarray(peak_mean), kind="stable")
    rank = np.empty(n_peaks, dtype=np.int64)
    rank[order] = np.arange(n_peaks)
    bin_size = min(max(10 * n_background, 200), n_peaks)
    # The last bin absorbs the remainder so that none is smaller than bin_size.
    n_bins = max(1, n_peaks // bin_size)
    bin_of = np.minimum(rank // bin_size, n_bins - 1)
    start = bin_of * bin_size
    size = np.where(bin_of == n_bins - 1, n_peaks - start, bin_size)
    rng = np.random.default_rng(seed)
    # Draw among the bin's other peaks: an offset past the peak's own rank skips it.
    offset = rng.integers(0, (size - 1)[:, None], size=(n_peaks, n_background))
    offset += offset >= (rank - start)[:, None]
    return order[start[:, None] + offset]


def background_zscores(left, right, rows, cols, background):
    """Scores of the pairs as z-scores against each peak's background peaks (same gene)."""
    scores = score_pairs(left, right, rows, cols).astype(np.float64)
    out = np.empty(len(rows), dtype=np.float32)
    n = background.shape[1]
    step = max(1, BLOCK_ENTRIES // (left.shape[1] * n))
    for start in range(0, len(rows), step):
        block = slice(start, start + step)
        null = np.einsum("id,ind->in", left[rows[block]], right[background[cols[block]]])
        spread = np.maximum(null.std(axis=1, ddof=1), np.finfo(np.float32).tiny)
        out[block] = (scores[block] - null.mean(axis=1)) / spread
    return out
