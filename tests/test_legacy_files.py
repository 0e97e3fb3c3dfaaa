"""Model files written before the modules moved into subpackages still load: the weights-only
file and the joblib pickle (made by ``tests/data/make_legacy_models.py`` on that code)."""

import joblib
import numpy as np
import pytest
from conftest import DATA, data_script

from factvae_sk import FactVAE

make_legacy = data_script("make_legacy_models")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def legacy():
    return make_legacy.legacy_data(), np.load(DATA / "legacy_outputs.npz")["codes"]


@pytest.mark.parametrize(
    "load",
    [
        lambda: FactVAE.load(DATA / "legacy_model.npz"),
        lambda: joblib.load(DATA / "legacy_model.joblib"),
    ],
    ids=["save-load", "joblib"],
)
def test_a_model_file_of_the_flat_layout_loads_and_transforms_as_saved(legacy, load):
    (rna, atac), codes = legacy
    model = load()
    assert type(model) is FactVAE and model.n_latent == 4
    # One forward pass of two small encoders: another CPU's summation order moves the codes
    # by a few float32 ulps (about 1e-7 relative), far below 1e-5.
    np.testing.assert_allclose(model.transform(rna, atac), codes, rtol=1e-5, atol=1e-5)
    # and it goes on working: a further fit step, a fresh save
    assert np.isfinite(model.score(rna, atac))
