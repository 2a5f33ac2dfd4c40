"""Inverse-CDF categorical sampling and the categorical target, against exact answers."""

import numpy as np
import pytest
from scipy import stats

from textsampling.randomness import CounterGenerator
from textsampling.reference import categorical
from textsampling.targets import Categorical


def test_inverse_cdf_rule_is_the_first_index_whose_cumulative_weight_exceeds_u():
    logits = np.log([0.1, 0.0 + 1e-300, 0.4, 0.5])
    logits[1] = -np.inf
    cdf = np.array([0.1, 0.1, 0.5, 1.0])
    u = np.array([0.05, 0.0999, 0.1001, 0.49, 0.51, 0.9999])
    expected = np.searchsorted(cdf, u, side="right")
    np.testing.assert_array_equal(categorical.categorical_from_uniforms(u, logits), expected)
    # a zero-probability category is never picked, even at the edge
    assert 1 not in categorical.categorical_from_uniforms(np.linspace(1e-9, 1 - 1e-12, 1001), logits)


def test_batched_logits_match_row_by_row():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(50, 7)) * 3
    u = rng.random(50)
    rowwise = [categorical.categorical_from_uniforms(u[i : i + 1], logits[i])[0] for i in range(50)]
    np.testing.assert_array_equal(categorical.categorical_from_uniforms(u, logits), rowwise)


def test_exact_distribution_goodness_of_fit():
    # Pearson chi-square, 60,000 draws, 6 categories; false-fail rate 1e-4 (fixed seed).
    target = Categorical([0.3, -1.0, 2.0, -np.inf, 0.0, 1.2])
    draws = categorical.sample(np.random.default_rng(11), target.logits, 60_000)
    probabilities = target.probabilities()
    support = probabilities > 0
    counts = np.bincount(draws, minlength=6)
    assert counts[~support].sum() == 0
    result = stats.chisquare(counts[support], 60_000 * probabilities[support])
    assert result.pvalue > 1e-4


def test_huge_logits_do_not_overflow():
    draws = categorical.sample(np.random.default_rng(0), [1000.0, 1000.0, -1000.0], 2000)
    assert set(np.unique(draws)) <= {0, 1}


def test_counter_generator_reproduces_per_chain():
    a = categorical.sample(CounterGenerator(3, 0), [0.0, 1.0, 2.0], 10)
    b = categorical.sample(CounterGenerator(3, 0), [0.0, 1.0, 2.0], 10)
    np.testing.assert_array_equal(a, b)


def test_target_exact_quantities():
    target = Categorical.from_probabilities([1.0, 3.0, 0.0, 4.0])
    np.testing.assert_allclose(target.probabilities(), [0.125, 0.375, 0.0, 0.5])
    np.testing.assert_allclose(target.log_normalizer(), np.log(8.0))
    assert target.argmax() == 3
    np.testing.assert_allclose(target.mean(), 0.375 + 1.5)
    np.testing.assert_array_equal(target.log_prob([0, 2, 7]), [0.0, -np.inf, -np.inf])


@pytest.mark.parametrize(
    "logits, message",
    [
        ([0.0, np.nan], "NaN"),
        ([0.0, np.inf], r"\+inf"),
        ([], "empty"),
        ([-np.inf, -np.inf], "-inf everywhere"),
    ],
)
def test_bad_logits(logits, message):
    with pytest.raises(ValueError, match=message):
        Categorical(logits)


@pytest.mark.parametrize(
    "probabilities, message",
    [([0.5, -0.1], "non-negative"), ([0.0, 0.0], "all zero"), ([np.nan, 1.0], "finite")],
)
def test_bad_probabilities(probabilities, message):
    with pytest.raises(ValueError, match=message):
        Categorical.from_probabilities(probabilities)


def test_bad_sampling_arguments():
    with pytest.raises(TypeError, match="rng"):
        categorical.sample(0, [0.0, 1.0], 3)
    with pytest.raises(ValueError, match="open interval"):
        categorical.categorical_from_uniforms([1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="rows"):
        categorical.categorical_from_uniforms([0.5, 0.5], np.zeros((3, 2)))
    with pytest.raises(TypeError, match="num_samples"):
        categorical.sample(np.random.default_rng(0), [0.0], 2.5)
    with pytest.raises(ValueError, match="outside"):
        Categorical([0.0, 1.0]).state_index([5])
