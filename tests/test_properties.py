"""Property-based tests (hypothesis) of the count likelihoods and of the gene-peak prior
builder on random valid inputs: finite outputs, shapes, and invariants that hold for any
input (probabilities of discrete values are at most 1 and sum to 1; links agree with a
brute-force overlap test and only join genes and peaks on the same chromosome)."""

import re

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from factvae_sk import gene_peak_prior
from factvae_sk.nn._distributions import gaussian_kl, nb_log_prob, zinb_log_prob
from factvae_sk.nn._losses import per_cell_nll

FAST = settings(max_examples=50, deadline=None)

shapes = st.tuples(st.integers(1, 6), st.integers(1, 12))


def _floats(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def nb_parameters(draw, dtype=None):
    """Counts (many zeros, some large) and log-scale parameters of one shape; the dispersion
    is shared by the cells (shape (1, n_features)) as in the decoders."""
    n, g = draw(shapes)
    dtype = dtype or draw(st.sampled_from([torch.float32, torch.float64]))
    counts = draw(
        hnp.arrays(np.int64, (n, g), elements=st.one_of(st.integers(0, 5), st.integers(0, 100_000)))
    )
    log_mu = draw(hnp.arrays(np.float32, (n, g), elements=_floats(-20, 12)))
    log_theta = draw(hnp.arrays(np.float32, (1, g), elements=_floats(-5, 5)))
    pi_logits = draw(hnp.arrays(np.float32, (n, g), elements=_floats(-20, 20)))
    return tuple(
        torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)
        for a in (counts, log_mu, log_theta, pi_logits)
    )


def _slack(tensor):
    """Rounding allowance above log(1) = 0."""
    return 1e-5 if tensor.dtype == torch.float32 else 1e-10


@FAST
@given(nb_parameters())
def test_nb_log_prob_is_finite_at_most_zero_and_shaped(params):
    x, log_mu, log_theta, _ = params
    log_prob = nb_log_prob(x, log_mu, log_theta)
    assert log_prob.shape == x.shape and log_prob.dtype == x.dtype
    assert torch.isfinite(log_prob).all()
    assert (log_prob <= _slack(x)).all()
    # Summed over features (what the loss uses), the log-likelihood is also at most 0.
    assert (log_prob.sum(dim=-1) <= _slack(x) * x.shape[1]).all()


@FAST
@given(nb_parameters())
def test_zinb_log_prob_is_finite_at_most_zero_and_shaped(params):
    x, log_mu, log_theta, pi_logits = params
    log_prob = zinb_log_prob(x, log_mu, log_theta, pi_logits)
    assert log_prob.shape == x.shape
    assert torch.isfinite(log_prob).all()
    assert (log_prob <= _slack(x)).all()


@FAST
@given(nb_parameters(dtype=torch.float64))
def test_zinb_is_the_nb_scaled_by_one_minus_pi_off_zero(params):
    """P_zinb(x) = (1 - pi) P_nb(x) for x > 0, and P_zinb(0) >= P_nb(0)."""
    x, log_mu, log_theta, pi_logits = params
    nb = nb_log_prob(x, log_mu, log_theta)
    zinb = zinb_log_prob(x, log_mu, log_theta, pi_logits)
    positive = x > 0
    log_one_minus_pi = torch.nn.functional.logsigmoid(-pi_logits)
    torch.testing.assert_close(
        zinb[positive], (nb + log_one_minus_pi)[positive], rtol=1e-9, atol=1e-9
    )
    assert (zinb[~positive] >= nb[~positive] - 1e-12).all()


@FAST
@given(
    log_mu=_floats(-8, 3.375),  # mu up to about 30
    log_theta=_floats(-0.625, 3),  # theta from about 0.5 to 20
    pi_logit=_floats(-10, 10),
)
def test_nb_and_zinb_sum_to_one_over_the_counts(log_mu, log_theta, pi_logit):
    """Normalization: summed over x = 0..5000 (the tail beyond is negligible for these
    means and dispersions) the probabilities add up to 1."""
    x = torch.arange(0, 5001, dtype=torch.float64)
    log_mu = torch.tensor(log_mu, dtype=torch.float64)
    log_theta = torch.tensor(log_theta, dtype=torch.float64)
    pi = torch.tensor(pi_logit, dtype=torch.float64)
    assert nb_log_prob(x, log_mu, log_theta).exp().sum().item() == pytest.approx(1, abs=1e-9)
    zinb = zinb_log_prob(x, log_mu, log_theta, pi).exp().sum().item()
    assert zinb == pytest.approx(1, abs=1e-9)


@FAST
@given(nb_parameters(dtype=torch.float32), st.sampled_from(["nb", "zinb"]))
def test_per_cell_nll_is_finite_non_negative_per_cell(params, likelihood):
    x, log_mu, log_theta, pi_logits = params
    out = {"log_mu": log_mu, "log_theta": log_theta, "pi_logits": pi_logits}
    nll = per_cell_nll(likelihood, x, out)
    assert nll.shape == (x.shape[0],)
    assert torch.isfinite(nll).all() and (nll >= -1e-5 * x.shape[1]).all()


@FAST
@given(
    hnp.arrays(np.float64, shapes, elements=_floats(-10, 10)),
    st.data(),
)
def test_gaussian_kl_is_finite_non_negative_and_zero_at_the_prior(mean, data):
    logvar = data.draw(hnp.arrays(np.float64, mean.shape, elements=_floats(-10, 10)))
    kl = gaussian_kl(torch.as_tensor(mean), torch.as_tensor(logvar))
    assert kl.shape == (mean.shape[0],)
    assert torch.isfinite(kl).all() and (kl >= -1e-12).all()
    zero = gaussian_kl(torch.zeros_like(torch.as_tensor(mean)), torch.zeros_like(kl)[:, None])
    assert (zero == 0).all()


# ---------------------------------------------------------------- the prior builder

CHROMS = ["chr1", "chr2", "chrX"]


@st.composite
def genes_and_peaks(draw):
    genes = draw(
        st.lists(
            st.tuples(
                st.sampled_from(CHROMS),
                st.integers(0, 50_000),
                st.integers(0, 20_000),
                st.sampled_from(["+", "-", "."]),
            ),
            min_size=1,
            max_size=12,
        )
    )
    peaks = draw(
        st.lists(
            st.tuples(st.sampled_from(CHROMS), st.integers(0, 80_000), st.integers(0, 3_000)),
            min_size=1,
            max_size=25,
        )
    )
    genes = pd.DataFrame(
        [(c, s, s + n, strand) for c, s, n, strand in genes],
        columns=["chrom", "start", "end", "strand"],
    )
    peaks = pd.DataFrame([(c, s, s + n) for c, s, n in peaks], columns=["chrom", "start", "end"])
    return genes, peaks, draw(st.integers(0, 5_000))


def _brute_force_links(genes, peaks, upstream):
    """Every (gene, peak) pair checked one by one: same chromosome, half-open overlap with
    the gene body extended by ``upstream`` on the TSS side (both sides when unstranded)."""
    links = np.zeros((len(genes), len(peaks)), dtype=bool)
    for i, gene in enumerate(genes.itertuples()):
        start = gene.start - (upstream if gene.strand != "-" else 0)
        end = gene.end + (upstream if gene.strand != "+" else 0)
        start = max(start, 0)
        for j, peak in enumerate(peaks.itertuples()):
            links[i, j] = gene.chrom == peak.chrom and peak.start < end and peak.end > start
    return links


@FAST
@given(genes_and_peaks())
def test_prior_matches_brute_force_overlap(case):
    genes, peaks, upstream = case
    genes_before, peaks_before = genes.copy(), peaks.copy()
    expected = _brute_force_links(genes, peaks, upstream)
    if not expected.any():  # an empty prior is never returned: an error says why
        with pytest.raises(ValueError, match="share no chromosome|the prior links nothing"):
            gene_peak_prior(genes, peaks, upstream=upstream)
        return
    prior = gene_peak_prior(genes, peaks, upstream=upstream)
    assert prior.shape == (len(genes), len(peaks)) and prior.format == "csr"
    assert prior.dtype == np.float32 and (prior.data == 1).all()  # non-negative, binary
    links = prior.toarray() > 0
    np.testing.assert_array_equal(links, expected)
    rows, cols = links.nonzero()
    assert (genes.chrom.to_numpy()[rows] == peaks.chrom.to_numpy()[cols]).all()
    pd.testing.assert_frame_equal(genes, genes_before)
    pd.testing.assert_frame_equal(peaks, peaks_before)


def _links(genes, peaks, upstream):
    """The prior's links as a boolean array; none where it refuses to link nothing."""
    try:
        return gene_peak_prior(genes, peaks, upstream=upstream).toarray() > 0
    except ValueError as error:
        assert re.search("share no chromosome|the prior links nothing", str(error))
        return np.zeros((len(genes), len(peaks)), dtype=bool)


@FAST
@given(genes_and_peaks(), st.integers(0, 5_000))
def test_prior_links_grow_with_the_promoter(case, extra):
    genes, peaks, upstream = case
    short = _links(genes, peaks, upstream)
    long = _links(genes, peaks, upstream + extra)
    assert not (short & ~long).any()
