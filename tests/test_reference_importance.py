"""Self-normalised importance sampling against exact expectations, with tolerances from the exact
Monte Carlo standard error.

For N draws from q, the self-normalised estimate of mu = E_pi[f] is asymptotically normal with
variance sigma^2 / N, sigma^2 = sum_x pi(x)^2 / q(x) (f(x) - mu)^2, and Z_hat = mean(w) has variance
(sum_x rho(x)^2 / q(x) - Z^2) / N; both are computed exactly here by enumeration. A test allows 4.5
standard errors: a two-sided normal tail of 6.8e-6, leaving room for the CLT and O(1/N) bias terms
under a false-fail rate of 1e-4 per assertion.
"""

import numpy as np
import pytest
from scipy.special import logsumexp

from textsampling.randomness import CounterGenerator
from textsampling.reference import importance
from textsampling.reference import proposals as pr
from textsampling.targets import Categorical, FixedLengthBigram

NUM_SAMPLES = 20_000
NUM_STANDARD_ERRORS = 4.5


def exact_standard_errors(target, proposal_log_probs, values):
    pi = target.probabilities()
    q = np.exp(proposal_log_probs)
    mu = float(np.sum(pi * values))
    estimate_variance = np.sum(pi**2 / q * (values - mu) ** 2)
    z = np.exp(target.log_normalizer())
    rho = np.exp(target.log_prob_all())
    normalizer_variance = np.sum(rho**2 / q) - z**2
    return mu, np.sqrt(estimate_variance / NUM_SAMPLES), z, np.sqrt(normalizer_variance / NUM_SAMPLES)


def test_categorical_estimate_and_normalizer_within_the_standard_error():
    target = Categorical([0.3, -1.0, 2.0, 0.5, -0.2, 1.0, -np.inf, 0.1])
    proposal = pr.IndependentCategorical([0.0, 0.5, 0.0, 0.0, -0.5, 0.0, 0.0, 0.3])
    values = np.arange(8, dtype=np.float64) ** 2
    mu, estimate_se, z, normalizer_se = exact_standard_errors(target, proposal.log_probs, values)
    result = importance.sample(np.random.default_rng(20), target.log_prob, proposal, NUM_SAMPLES)
    estimate = importance.estimate(result.states.astype(np.float64) ** 2, result.log_weights)
    assert abs(estimate - mu) < NUM_STANDARD_ERRORS * estimate_se
    assert abs(np.exp(result.log_normalizer_estimate) - z) < NUM_STANDARD_ERRORS * normalizer_se
    assert 1.0 <= result.effective_sample_size <= NUM_SAMPLES
    np.testing.assert_allclose(result.normalized_weights.sum(), 1.0, atol=1e-12)


def test_sequence_estimate_within_the_standard_error():
    rng = np.random.default_rng(6)
    target = FixedLengthBigram(rng.normal(size=3), rng.normal(size=(3, 4)), length=4)
    proposal = pr.IndependentUniformSequences(3, 4)

    def count_zeros(states):
        return np.sum(np.asarray(states) == 0, axis=1).astype(np.float64)

    mu, estimate_se, z, normalizer_se = exact_standard_errors(
        target, proposal.log_prob(target.states), count_zeros(target.states)
    )
    assert mu == pytest.approx(target.expectation(count_zeros))
    result = importance.sample(CounterGenerator(4), target.log_prob, proposal, NUM_SAMPLES)
    estimate = importance.estimate(count_zeros(result.states), result.log_weights)
    assert abs(estimate - mu) < NUM_STANDARD_ERRORS * estimate_se
    assert abs(np.exp(result.log_normalizer_estimate) - z) < NUM_STANDARD_ERRORS * normalizer_se


def test_a_biased_estimator_is_caught_by_the_same_tolerance():
    # Test of the test: forgetting the proposal density (weights rho instead of rho / q) is off by far
    # more than 4.5 standard errors: its limit is 40 standard errors away from mu here.
    target = Categorical([0.3, -1.0, 2.0, 0.5, -0.2, 1.0, -np.inf, 0.1])
    proposal = pr.IndependentCategorical([0.0, 1.5, -1.0, 0.0, -0.5, 0.0, 0.0, 1.0])
    values = np.arange(8, dtype=np.float64) ** 2
    mu, estimate_se, _, _ = exact_standard_errors(target, proposal.log_probs, values)
    result = importance.sample(np.random.default_rng(20), target.log_prob, proposal, NUM_SAMPLES)
    wrong = importance.estimate(result.states.astype(np.float64) ** 2, target.log_prob(result.states))
    assert abs(wrong - mu) > NUM_STANDARD_ERRORS * estimate_se


def test_effective_sample_size():
    # Proposal equal to the target: constant weights, ESS = N exactly.
    target = Categorical([0.3, -1.0, 2.0])
    result = importance.sample(np.random.default_rng(0), target.log_prob, pr.IndependentCategorical(target.logits), 500)
    assert result.effective_sample_size == pytest.approx(500, rel=1e-12)
    assert result.log_normalizer_estimate == pytest.approx(target.log_normalizer(), abs=1e-12)
    # Two equal weights and two zero weights: ESS = 2.
    assert importance.effective_sample_size([0.0, 0.0, -np.inf, -np.inf]) == pytest.approx(2.0)
    # The definition (sum w)^2 / sum w^2 on moderate raw weights.
    weights = np.random.default_rng(1).random(50)
    assert importance.effective_sample_size(np.log(weights)) == pytest.approx(weights.sum() ** 2 / np.sum(weights**2))


def test_log_space_handles_weights_that_overflow_as_numbers():
    log_weights = np.array([1000.0, 1000.0 + np.log(3.0), -np.inf])
    np.testing.assert_allclose(importance.normalized_weights(log_weights), [0.25, 0.75, 0.0], atol=1e-15)
    assert importance.log_normalizer_estimate(log_weights) == pytest.approx(1000.0 + np.log(4.0) - np.log(3.0))
    # A value at a zero-weight sample is ignored, even if it is not finite.
    assert importance.estimate([1.0, 2.0, np.nan], log_weights) == pytest.approx(1.75)


def test_same_uniforms_same_weights():
    target = Categorical([0.0, 1.0, 2.0])
    proposal = pr.IndependentCategorical([0.0, 0.0, 0.0])
    uniforms = np.random.default_rng(0).random((100, 1))
    first = importance.step(uniforms, target.log_prob, proposal)
    second = importance.step(uniforms, target.log_prob, proposal)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    a = importance.sample(CounterGenerator(3), target.log_prob, proposal, 100)
    b = importance.sample(CounterGenerator(3), target.log_prob, proposal, 100)
    np.testing.assert_array_equal(a.log_weights, b.log_weights)


def test_bad_input():
    target = Categorical([0.0, 1.0])
    proposal = pr.IndependentCategorical([0.0, 0.0])
    with pytest.raises(ValueError, match="all -inf"):
        importance.normalized_weights([-np.inf, -np.inf])
    with pytest.raises(ValueError, match="log_weights must be finite or -inf"):
        importance.effective_sample_size([0.0, np.nan])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        importance.log_normalizer_estimate([])
    with pytest.raises(ValueError, match="same shape"):
        importance.log_weights([0.0, 1.0], [0.0])
    with pytest.raises(ValueError, match="proposal_log_probs must be finite"):
        importance.log_weights([0.0], [-np.inf])
    with pytest.raises(ValueError, match="log_prob_values must be finite or -inf"):
        importance.log_weights([np.nan], [0.0])
    with pytest.raises(ValueError, match="function_values must have shape"):
        importance.estimate([1.0], [0.0, 0.0])
    with pytest.raises(TypeError, match="rng"):
        importance.sample(42, target.log_prob, proposal, 10)
    with pytest.raises(ValueError, match="num_samples"):
        importance.sample(np.random.default_rng(0), target.log_prob, proposal, 0)
    # A target whose support the proposal never reaches.
    with pytest.raises(ValueError, match="all -inf"):
        importance.sample(np.random.default_rng(0), Categorical([-np.inf, 0.0]).log_prob,
                          pr.IndependentCategorical([0.0, -np.inf]), 10)
    assert logsumexp(proposal.log_probs) == pytest.approx(0.0)
