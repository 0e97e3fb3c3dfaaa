"""Group-versus-reference tests of accessibility, one block of peaks at a time."""

import numpy as np
import pandas as pd
from scipy import stats


def check_groups(groups, n_cells, reference):
    """Validated per-cell group labels and the groups to test (each against ``reference``)."""
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n_cells:
        raise ValueError(
            f"groups must hold one label per cell, shape ({n_cells},); got shape {groups.shape}."
        )
    labels = pd.unique(groups)
    if reference != "rest" and reference not in set(labels):
        raise ValueError(f"reference {reference!r} is not one of the groups {list(labels)}.")
    tested = [label for label in labels if label != reference]
    if reference == "rest" and len(labels) < 2:
        raise ValueError("groups has a single label: there is nothing to compare it with.")
    for label in (*tested, *([] if reference == "rest" else [reference])):
        if (groups == label).sum() < 2:
            raise ValueError(f"group {label!r} has fewer than 2 cells: it cannot be tested.")
    return groups, tested


def compare_block(values, in_group, in_reference, method):
    """Statistics of one block of peaks (columns of ``values``) for one comparison.

    Returns a dict of arrays: mean in the group and in the reference, log2 fold change of
    the means, the test statistic and its two-sided p-value.
    """
    group, reference = values[in_group], values[in_reference]
    mean_group, mean_reference = group.mean(axis=0), reference.mean(axis=0)
    if method == "wilcoxon":
        test = stats.mannwhitneyu(group, reference, axis=0, method="asymptotic")
    else:
        test = stats.ttest_ind(group, reference, axis=0, equal_var=False)
    tiny = np.finfo(np.float64).tiny
    return {
        "mean_group": mean_group,
        "mean_reference": mean_reference,
        "log2_fold_change": np.log2(np.maximum(mean_group, tiny))
        - np.log2(np.maximum(mean_reference, tiny)),
        "statistic": test.statistic,
        "pvalue": test.pvalue,
    }


def results_table(blocks, peak_names):
    """Join the per-block statistics of every comparison into one long DataFrame.

    ``blocks`` maps each group label to a list of ``(peak_index, stats)`` pairs. Adjusted
    p-values (Benjamini-Hochberg) are computed within each group, over the peaks tested.
    """
    tables = []
    for label, parts in blocks.items():
        index = np.concatenate([peaks for peaks, _ in parts])
        columns = {key: np.concatenate([part[key] for _, part in parts]) for key in parts[0][1]}
        table = pd.DataFrame({"group": label, "peak": np.asarray(peak_names, object)[index]})
        for key, value in columns.items():
            table[key] = value
        table["pvalue_adj"] = stats.false_discovery_control(np.nan_to_num(table.pvalue, nan=1.0))
        tables.append(table.sort_values(["pvalue", "log2_fold_change"], ascending=[True, False]))
    return pd.concat(tables, ignore_index=True)
