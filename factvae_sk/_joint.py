"""The joint cell embedding: the RNA and ATAC codes side by side, each block scaled.

Side by side as they come, the two codes weigh in any distance by their spread, and the
two posterior means spread differently (the ATAC code, fitted to sparse peaks and pulled
towards the RNA code by distillation, often more than the RNA code), so the plain
concatenation clusters like whichever code is wider. As PCA + LSI are usually combined,
each block is centred on the training cells' mean code and divided by its total standard
deviation there (the root mean squared distance of a training cell's code to that mean),
so that each block has unit mean squared norm over the training cells and both weigh
alike. The statistics come from the training cells, so a cell's joint code does not
depend on which other cells are transformed with it.
"""

import numpy as np


def block_statistics(codes):
    """Mean code and total standard deviation of one block (cells x latent)."""
    codes = np.asarray(codes, dtype=np.float64)
    mean = codes.mean(axis=0)
    scale = np.sqrt(((codes - mean) ** 2).sum(axis=1).mean())
    return mean, scale if scale > 0 else 1.0


def scaled_joint(rna_codes, atac_codes, reference_rna, reference_atac):
    """Both codes side by side, each centred and scaled by the reference cells' statistics."""
    blocks = []
    for codes, reference in ((rna_codes, reference_rna), (atac_codes, reference_atac)):
        mean, scale = block_statistics(reference)
        blocks.append((np.asarray(codes, dtype=np.float64) - mean) / scale)
    return np.hstack(blocks).astype(np.float32)


def select(codes, embedding, n_latent, training_codes):
    """The columns ``embedding`` asks for, from both codes side by side (cells x 2 latent).

    "rna" and "atac": that code; "concat": both as they come; "joint": both scaled
    (:func:`scaled_joint`) by the ``training_codes`` (the paired training cells' codes,
    side by side too).
    """
    if embedding == "rna":
        return codes[:, :n_latent]
    if embedding == "atac":
        return codes[:, n_latent:]
    if embedding == "concat":
        return codes
    return scaled_joint(
        codes[:, :n_latent],
        codes[:, n_latent:],
        training_codes[:, :n_latent],
        training_codes[:, n_latent:],
    )
