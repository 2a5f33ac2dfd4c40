"""Diagnostics: our ESS / R-hat / autocorrelation against ArviZ, and ESS against the exact AR(1) answer."""

import warnings

import numpy as np
import pytest
from scipy.signal import lfilter

from textsampling import diagnostics

with warnings.catch_warnings():
    # ArviZ 0.23 announces its refactor with a FutureWarning at import time.
    warnings.simplefilter("ignore")
    import arviz


def ar1_chains(rng, phi, num_chains, num_draws):
    r"""Stationary AR(1) chains :math:`x_{n+1} = \phi x_n + \varepsilon_n`, :math:`\varepsilon \sim N(0, 1)`."""
    noise = rng.normal(size=(num_chains, num_draws))
    noise[:, 0] /= np.sqrt(1.0 - phi**2)  # start in the stationary law N(0, 1 / (1 - phi^2))
    return lfilter([1.0], [1.0, -phi], noise, axis=1)


CROSS_CHECK_CASES = [
    # (phi, num_chains, num_draws): negative, zero, moderate, strong and near-unit correlation;
    # one and several chains; odd lengths (the middle draw is dropped by the split).
    (-0.5, 1, 1000),
    (0.0, 4, 1001),
    (0.5, 3, 50),
    (0.9, 4, 2000),
    (0.99, 2, 777),
]


@pytest.mark.parametrize("phi, num_chains, num_draws", CROSS_CHECK_CASES)
@pytest.mark.parametrize("method", diagnostics.ESS_METHODS)
def test_ess_equals_arviz(phi, num_chains, num_draws, method):
    chains = ar1_chains(np.random.default_rng(7), phi, num_chains, num_draws)
    expected = float(arviz.ess(chains, method=method))
    # Same algorithm, different summation order: agreement to rounding error.
    np.testing.assert_allclose(diagnostics.effective_sample_size(chains, method), expected, rtol=1e-10)


@pytest.mark.parametrize("phi, num_chains, num_draws", [c for c in CROSS_CHECK_CASES if c[1] > 1])
@pytest.mark.parametrize("method", diagnostics.RHAT_METHODS)
def test_rhat_equals_arviz(phi, num_chains, num_draws, method):
    chains = ar1_chains(np.random.default_rng(8), phi, num_chains, num_draws)
    expected = float(arviz.rhat(chains, method=method))
    np.testing.assert_allclose(diagnostics.split_rhat(chains, method), expected, rtol=1e-10)


def test_rhat_detects_chains_in_different_places_and_of_different_spread():
    rng = np.random.default_rng(9)
    shifted = rng.normal(size=(4, 500)) + np.array([0.0, 0.0, 0.0, 1.0])[:, None]
    for method in diagnostics.RHAT_METHODS:
        assert diagnostics.split_rhat(shifted, method) > 1.05
        np.testing.assert_allclose(diagnostics.split_rhat(shifted, method), arviz.rhat(shifted, method=method))
    # Same mean, different spread: only the folded (rank) version sees it.
    spread = rng.normal(size=(4, 500)) * np.array([1.0, 1.0, 1.0, 4.0])[:, None]
    assert diagnostics.split_rhat(spread, "rank") > 1.05
    assert diagnostics.split_rhat(spread, "rank") > diagnostics.split_rhat(spread, "split")
    # A single drifting chain disagrees with itself once split.
    drift = np.linspace(0.0, 5.0, 400) + rng.normal(size=400)
    assert diagnostics.split_rhat(drift, "split") > 1.2


def test_autocorrelation_equals_arviz_and_the_direct_sum():
    rng = np.random.default_rng(10)
    chain = ar1_chains(rng, 0.8, 1, 300)[0]
    ours = diagnostics.autocorrelation(chain, max_lag=60)
    np.testing.assert_allclose(ours, arviz.autocorr(chain)[:61], rtol=1e-10, atol=1e-12)
    centred = chain - chain.mean()
    direct = [np.sum(centred[: 300 - t] * centred[t:]) / np.sum(centred**2) for t in range(61)]
    np.testing.assert_allclose(ours, direct, atol=1e-12)
    assert ours[0] == 1.0
    # Batched over chains along the last axis.
    two = np.stack([chain, chain[::-1]])
    np.testing.assert_allclose(diagnostics.autocorrelation(two, 5)[0], ours[:6])


# Relative standard deviation of ESS / exact ESS, measured over 300 replicates of each size below
# (0.022 for iid draws with 4 x 5000 draws, 0.036-0.040 for phi = 0.5 with 4 x 5000, 0.085 for
# phi = 0.9 with 4 x 5000, hence ~0.045 with 4 x 20000), bias below 1%. The tolerances are 6 such
# standard deviations: a normal tail of 2e-9, so a false-fail rate far below 1e-4 even allowing for
# the estimator's skew (the worst of the 300 replicates was 3.6 sd out).
@pytest.mark.parametrize(
    "phi, num_draws, rtol",
    [(0.0, 5000, 0.13), (0.5, 5000, 0.24), (-0.3, 5000, 0.21), (0.9, 20000, 0.27)],
)
@pytest.mark.parametrize("method", diagnostics.ESS_METHODS)
def test_ess_of_ar1_matches_the_exact_value(phi, num_draws, rtol, method):
    num_chains = 4
    chains = ar1_chains(np.random.default_rng(11), phi, num_chains, num_draws)
    exact = num_chains * num_draws * (1.0 - phi) / (1.0 + phi)  # N / tau, tau = (1 + phi) / (1 - phi)
    np.testing.assert_allclose(diagnostics.effective_sample_size(chains, method), exact, rtol=rtol)


def test_bulk_ess_is_invariant_under_monotone_maps_and_mean_ess_is_not():
    chains = ar1_chains(np.random.default_rng(12), 0.6, 3, 400)
    # The bulk version sees only the ordering of the draws.
    np.testing.assert_allclose(
        diagnostics.effective_sample_size(np.exp(chains), "bulk"), diagnostics.effective_sample_size(chains, "bulk")
    )
    assert diagnostics.effective_sample_size(np.exp(chains), "mean") != pytest.approx(
        diagnostics.effective_sample_size(chains, "mean"), rel=1e-3
    )


def test_constant_chains_give_nan_not_a_number_that_looks_fine():
    stuck = np.ones((2, 50))
    for method in diagnostics.ESS_METHODS:
        assert np.isnan(diagnostics.effective_sample_size(stuck, method))
    for method in diagnostics.RHAT_METHODS:
        assert np.isnan(diagnostics.split_rhat(stuck, method))
    assert np.isnan(diagnostics.autocorrelation(np.ones(10), 3)[1])


def test_acceptance_rate():
    accepted = np.array([[True, False, True, True], [False, False, False, True]])
    assert diagnostics.acceptance_rate(accepted) == 0.5
    np.testing.assert_allclose(diagnostics.acceptance_rate(accepted, axis=-1), [0.75, 0.25])
    with pytest.raises(TypeError, match="accepted"):
        diagnostics.acceptance_rate([1, 0])
    with pytest.raises(ValueError, match="accepted"):
        diagnostics.acceptance_rate(np.array([], dtype=bool))


def test_empirical_tv_distance():
    probabilities = np.array([0.5, 0.25, 0.25, 0.0])
    assert diagnostics.empirical_tv_distance([0, 0, 1, 2], probabilities) == 0.0
    # Histogram (1/4, 1/4, 1/4, 1/4): |0.25 - 0.5| + |0.25 - 0| = 0.5, halved.
    np.testing.assert_allclose(diagnostics.empirical_tv_distance([0, 1, 2, 3], probabilities), 0.25)
    with pytest.raises(ValueError, match="sample_indices"):
        diagnostics.empirical_tv_distance([0, 4], probabilities)
    with pytest.raises(ValueError, match="probabilities must sum to 1"):
        diagnostics.empirical_tv_distance([0], [0.5, 0.6])
    with pytest.raises(TypeError, match="sample_indices"):
        diagnostics.empirical_tv_distance([0.5], probabilities)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: diagnostics.effective_sample_size(np.zeros((2, 3))), "at least 4 draws"),
        (lambda: diagnostics.effective_sample_size(np.zeros((2, 3, 4))), "shape"),
        (lambda: diagnostics.effective_sample_size([1.0, np.nan, 2.0, 3.0]), "finite"),
        (lambda: diagnostics.effective_sample_size(np.zeros(10), method="tail"), "method"),
        (lambda: diagnostics.split_rhat(np.zeros((2, 10)), method="folded"), "method"),
        (lambda: diagnostics.autocorrelation(np.zeros(10), 10), "max_lag"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
