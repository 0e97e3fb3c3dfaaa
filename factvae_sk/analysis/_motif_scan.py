"""Log-odds position weight matrix scan of DNA sequences, both strands, at a p-value threshold.

The threshold of each motif comes from the exact distribution of its score under a
background of independent bases (scores rounded to a fine grid, then convolved position by
position), as MOODS and motifmatchr compute it. The scan itself is vectorized numpy: every
sequence is concatenated (separated by an ``N``) and each motif slides over the whole string
at once. ``MOODS-python``, where installed, can scan instead (``engine="moods"``).
"""

import re

import numpy as np
import scipy.sparse as sp

# Bases in the order of every matrix here; any other character (N, IUPAC codes) is code 4.
BASES = "ACGT"
_CODES = np.full(256, 4, dtype=np.uint8)
for _code, _base in enumerate(BASES):
    _CODES[ord(_base)] = _CODES[ord(_base.lower())] = _code
_NOT_BASE = re.compile("[^ACGT]")
# Score of a window holding a code-4 base: no threshold reaches it.
_NO_BASE = -1e9
# Grid of the exact score distribution (natural-log units).
SCORE_RESOLUTION = 1e-3


def encode(sequence):
    """A DNA string as uint8 codes: A, C, G, T (any case) -> 0..3, anything else -> 4."""
    return _CODES[np.frombuffer(sequence.encode("ascii", "replace"), dtype=np.uint8)]


def base_frequencies(sequences, symmetric=True):
    """Frequencies of A, C, G, T over the sequences (strand-symmetric by default)."""
    counts = np.zeros(5, dtype=np.int64)
    for sequence in sequences:
        counts += np.bincount(encode(sequence), minlength=5)
    counts = counts[:4].astype(np.float64)
    if symmetric:
        counts = (counts + counts[::-1]) / 2
    if counts.sum() == 0:
        return np.full(4, 0.25)
    return counts / counts.sum()


def log_odds(matrix, background, pseudocount=0.8):
    """Natural-log odds of a (length x 4) count or probability matrix against ``background``.

    Each position's counts get ``pseudocount`` reads spread by the background (motifmatchr's
    default 0.8), so that an unseen base scores finite.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    probabilities = (matrix + pseudocount * background) / (totals + pseudocount)
    return np.log(probabilities / background)


def score_threshold(weights, background, p_value):
    """Smallest score whose exceedance probability under ``background`` is at most ``p_value``.

    ``weights`` is a (length x 4) log-odds matrix. The distribution of the score of a random
    sequence (independent bases drawn from ``background``) is computed exactly on a grid of
    :data:`SCORE_RESOLUTION`.
    """
    steps = np.round(np.asarray(weights) / SCORE_RESOLUTION).astype(np.int64)
    low = steps.min(axis=1)
    steps = steps - low[:, None]  # non-negative offsets per position
    distribution = np.ones(1)
    for row in steps:
        grown = np.zeros(len(distribution) + row.max())
        for base in range(4):
            grown[row[base] : row[base] + len(distribution)] += background[base] * distribution
        distribution = grown
    # tail[k] = P(score >= k steps above the minimum).
    tail = np.cumsum(distribution[::-1])[::-1]
    passing = np.flatnonzero(tail <= p_value)
    if len(passing) == 0:
        return np.inf
    return (passing[0] + low.sum()) * SCORE_RESOLUTION - SCORE_RESOLUTION / 2


def reverse_complement(weights):
    """The log-odds matrix of the opposite strand (positions reversed, A<->T, C<->G)."""
    return np.asarray(weights)[::-1, ::-1]


def concatenate(sequences):
    """All sequences' codes joined by one code-4 separator, and each sequence's start."""
    lengths = np.fromiter((len(s) + 1 for s in sequences), dtype=np.int64, count=len(sequences))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    codes = np.full(int(lengths.sum()), 4, dtype=np.uint8)
    for start, sequence in zip(starts, sequences, strict=True):
        codes[start : start + len(sequence)] = encode(sequence)
    return codes, starts


def window_scores(codes, weights):
    """Score of every window of ``codes`` (length ``len(codes) - L + 1``) under ``weights``."""
    length = len(weights)
    n = len(codes) - length + 1
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    table = np.column_stack([weights, np.full(length, _NO_BASE)]).astype(np.float32)
    scores = np.zeros(n, dtype=np.float32)
    for position in range(length):
        scores += table[position][codes[position : position + n]]
    return scores


def scan_numpy(sequences, weights, thresholds, value="match"):
    """Sparse (sequences x motifs) matrix of hits on either strand (see :func:`scan`)."""
    codes, starts = concatenate(sequences)
    rows, cols, values = [], [], []
    for motif, (forward, threshold) in enumerate(zip(weights, thresholds, strict=True)):
        best = np.full(len(sequences), -np.inf)
        for strand in (forward, reverse_complement(forward)):
            scores = window_scores(codes, strand)
            hits = np.flatnonzero(scores >= threshold)
            # Windows that cross a separator hold a code-4 base and never pass.
            owner = np.searchsorted(starts, hits, side="right") - 1
            np.maximum.at(best, owner, scores[hits])
        found = np.flatnonzero(np.isfinite(best))
        rows.append(found)
        cols.append(np.full(len(found), motif))
        values.append(np.ones(len(found)) if value == "match" else best[found])
    return _hits_matrix(rows, cols, values, len(sequences), len(weights))


def scan_moods(sequences, weights, thresholds, background, value="match"):
    """As :func:`scan_numpy`, scanning with ``MOODS-python``.

    MOODS 1.9.4 misses a window that ends on the last base before the end of the sequence or
    an ``N``. So every non-ACGT base becomes ``A``, one ``A`` is appended, and hits whose
    window covers any of those positions are dropped: the hits are then :func:`scan_numpy`'s.
    """
    import MOODS.scan

    matrices, motif_of = [], []
    for motif, forward in enumerate(weights):
        for strand in (forward, reverse_complement(forward)):
            matrices.append([list(map(float, column)) for column in np.asarray(strand).T])
            motif_of.append(motif)
    lengths = [len(weights[motif]) for motif in motif_of]
    scanner = MOODS.scan.Scanner(7)
    per_matrix = [float(thresholds[motif]) for motif in motif_of]
    scanner.set_motifs(matrices, list(map(float, background)), per_matrix)
    best = {}
    for row, sequence in enumerate(sequences):
        codes = encode(sequence)
        # Number of non-ACGT (or pad) positions before each position.
        not_base = np.concatenate([[0], np.cumsum(np.append(codes == 4, True))])
        text = _NOT_BASE.sub("A", sequence.upper()) + "A"
        for matrix, hits in enumerate(scanner.scan(text)):
            for hit in hits:
                if not_base[hit.pos + lengths[matrix]] != not_base[hit.pos]:
                    continue
                key = (row, motif_of[matrix])
                best[key] = max(best.get(key, -np.inf), hit.score)
    keys = np.array(list(best), dtype=np.int64).reshape(-1, 2)
    scores = np.fromiter(best.values(), dtype=np.float64, count=len(best))
    values = np.ones(len(scores)) if value == "match" else scores
    return _hits_matrix([keys[:, 0]], [keys[:, 1]], [values], len(sequences), len(weights))


def _hits_matrix(rows, cols, values, n_rows, n_cols):
    rows, cols, values = (
        np.concatenate(part) if part else np.zeros(0) for part in (rows, cols, values)
    )
    matrix = sp.csr_matrix(
        (values.astype(np.float32), (rows.astype(np.int64), cols.astype(np.int64))),
        shape=(n_rows, n_cols),
    )
    matrix.sort_indices()
    return matrix
