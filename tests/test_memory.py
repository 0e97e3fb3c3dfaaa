"""Dense results too large for the machine are refused before they are allocated, with the
size and a fix; ``impute_atac(out=...)`` writes into a caller's array or an ``np.memmap``."""

import numpy as np
import pytest
from conftest import FAST

import factvae_sk.utils._memory
from factvae_sk import FactVAE
from factvae_sk.exceptions import ResultTooLargeError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fitted(small):
    rna, atac = small["rna"][:80], small["atac"][:80, :400]
    return FactVAE(random_state=0, **FAST).fit(rna, atac), rna, atac


def test_the_limit_is_half_the_machine():
    limit = factvae_sk.utils._memory.dense_limit()
    assert limit > 1 << 28  # any machine running this has more than 512 MiB


def test_too_large_imputation_is_refused_with_size_and_fix(fitted, monkeypatch):
    model, _, atac = fitted
    monkeypatch.setattr(factvae_sk.utils._memory, "dense_limit", lambda: 100_000)
    # 80 x 400 float32 = 128000 bytes > the limit; 80 x 300 = 96000 bytes fits.
    with pytest.raises(ResultTooLargeError, match=r"dense 80 x 400 float32 .*125\.0 KiB.*peaks="):
        model.impute_atac(atac)
    assert model.impute_atac(atac, peaks=np.arange(300)).shape == (80, 300)
    assert issubclass(ResultTooLargeError, MemoryError)


def test_too_large_links_table_is_refused(fitted, monkeypatch):
    model = fitted[0]
    monkeypatch.setattr(factvae_sk.utils._memory, "dense_limit", lambda: 100 * 2000 * 50)
    with pytest.raises(ResultTooLargeError, match=r"table of 200000 links.*smaller top_k"):
        model.regulatory_links("all", top_k=100)  # 2000 genes x 100
    assert len(model.regulatory_links("all", top_k=50)) == 2000 * 50


def test_impute_into_a_given_array_or_memmap(fitted, tmp_path, monkeypatch):
    model, _, atac = fitted
    expected = model.impute_atac(atac, library_size=1e4)
    # Over the limit without out=, fine with it: nothing of that size is allocated.
    monkeypatch.setattr(factvae_sk.utils._memory, "dense_limit", lambda: 1000)
    out = np.full((80, 400), np.nan, dtype=np.float32)
    assert model.impute_atac(atac, library_size=1e4, out=out) is out
    np.testing.assert_array_equal(out, expected)
    disk = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, (80, 400))
    model.impute_atac(atac, library_size=1e4, out=disk)
    disk.flush()
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), expected)
    # Two peaks' logits come from another matrix-product kernel than 400 peaks', summed in
    # another order: each logit z . w (8 terms, |z . w| < 20) moves by under 8 * 20 * u
    # (u = 2**-24), i.e. 1e-5 relative in exp(logit). Bit-equal only on some CPUs.
    selected = np.empty((80, 2), np.float32)
    model.impute_atac(atac, peaks=[3, 7], library_size=1e4, out=selected)
    np.testing.assert_allclose(selected, expected[:, [3, 7]], rtol=1e-5)


@pytest.mark.parametrize(
    "out",
    [np.empty((80, 399), np.float32), np.empty((80, 400), np.float64), [[0.0] * 400] * 80],
    ids=["shape", "dtype", "list"],
)
def test_a_wrong_out_array_is_refused(fitted, out):
    model, _, atac = fitted
    with pytest.raises(ValueError, match=r"out must be a float32 ndarray .* of shape \(80, 400\)"):
        model.impute_atac(atac, out=out)
