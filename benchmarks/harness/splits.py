"""The held-out split every evaluation uses: 80/20 of the cells, stratified by label."""

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_split(labels, seed=0, test_size=0.2):
    """Indices ``(train, test)`` of a split of the cells stratified by ``labels``."""
    return train_test_split(
        np.arange(len(labels)), test_size=test_size, stratify=labels, random_state=seed
    )
