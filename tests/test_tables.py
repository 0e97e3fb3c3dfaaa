"""The job's fast CSV writer gives the bytes ``DataFrame.to_csv`` gives."""

import numpy as np
import pandas as pd
import pytest

from factvae_sk.app._tables import write_csv


def _frame(rng, n=500):
    values = rng.standard_normal((n, 6)) * rng.lognormal(0, 6, (n, 6))
    values[:3, 0] = [-0.0, 1e-30, 123456789.0]
    frame = pd.DataFrame(values.astype(np.float32), columns=[f"latent{i}" for i in range(6)])
    frame["umap_1"] = rng.standard_normal(n)  # float64 beside float32
    frame.insert(0, "barcode", [f"AAAC{i}-1" for i in range(n)])
    frame.insert(1, "cell_type", rng.choice(["B cell", "CD4 T", "NK"], n))
    frame.insert(2, "cluster", rng.integers(0, 9, n).astype(np.int32))
    return frame


@pytest.mark.parametrize(
    "edit",
    [
        None,
        # Each of these makes pandas quote or leave a cell empty: written by pandas then.
        lambda f: f.assign(barcode=f.barcode.where(f.index != 7, 'a,"b"')),
        lambda f: f.assign(cell_type=f.cell_type.where(f.index != 3, "")),
        lambda f: f.assign(latent2=f.latent2.where(f.index != 5, np.nan)),
        lambda f: f.assign(flag=f.cluster > 4),
        lambda f: f.assign(distance=pd.Series(f.cluster, dtype="Int64")),
        lambda f: f.rename(columns={"cluster": "k, clusters"}),
    ],
)
def test_write_csv_matches_pandas(tmp_path, edit):
    frame = _frame(np.random.default_rng(0))
    if edit is not None:
        frame = edit(frame)
    write_csv(frame, tmp_path / "fast.csv", block=64)
    frame.to_csv(tmp_path / "pandas.csv", index=False, float_format="%.6g")
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    back = pd.read_csv(tmp_path / "fast.csv")
    assert back.shape == frame.shape
