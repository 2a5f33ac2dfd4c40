"""The chi-square checks of `textsampling.testing` never divide 0 by 0: cells of probability exactly 0,
or as tiny as 1e-300, or underflowing to a subnormal, give a finite statistic or a documented verdict.

Every statistic here is computed by the package on counts chosen by hand (no randomness), so these
tests cannot flake.
"""

import numpy as np
import pytest

from textsampling.testing import goodness_of_fit_test
from textsampling.testing.statistics import chi_square_counts_test, pool_cells, required_samples_against


def _cells(counts):
    """Cell indices with the given count in each cell (what a sampler's output binned would give)."""
    return np.repeat(np.arange(len(counts)), counts)


def _assert_sane(result):
    assert not np.isnan(result.statistic)
    assert not np.isnan(result.p_value)
    assert 0.0 <= result.p_value <= 1.0


# Laws with zero and tiny cells, of the kind the old pooled-cell test built: the zero cells would
# have gone into a "pooled" cell whose expected count is N - sum(the others) = 0.0 or 1e-12.
ZERO_AND_TINY = [
    np.array([0.5, 0.0, 0.3, 0.0, 0.2]),
    np.array([0.5, 1e-300, 0.3, 0.0, 0.2 - 1e-300]),
    np.array([0.4, 5e-324, 0.6, 0.0]),  # the smallest subnormal
    np.array([0.25, 0.25, 0.25, 0.25 - 1e-17, 1e-17, 0.0]),
]


@pytest.mark.parametrize("probabilities", ZERO_AND_TINY, ids=["zeros", "1e-300", "subnormal", "1e-17"])
def test_zero_and_tiny_cells_give_a_finite_statistic_and_an_exact_fit_passes(probabilities):
    num_samples = 10_000
    # Counts as close to the expectation as integers allow: a correct sampler's best case.
    counts = np.floor(num_samples * probabilities).astype(int)
    counts[np.argmax(probabilities)] += num_samples - counts.sum()
    result = chi_square_counts_test(_cells(counts), probabilities)
    _assert_sane(result)
    assert np.isfinite(result.statistic)
    assert result.passed, str(result)
    assert result.zero_probability_hits == 0
    # Zero cells are in no group; every group has expected count >= 20 (the default threshold).
    grouped = np.concatenate(result.cell_groups)
    assert not np.any(probabilities[grouped] == 0)
    assert min(num_samples * probabilities[g].sum() for g in result.cell_groups) >= 20.0


@pytest.mark.parametrize("probabilities", ZERO_AND_TINY, ids=["zeros", "1e-300", "subnormal", "1e-17"])
def test_a_sample_in_a_zero_probability_cell_fails_loudly(probabilities):
    num_samples = 10_000
    counts = np.floor(num_samples * probabilities).astype(int)
    counts[np.argmax(probabilities)] += num_samples - counts.sum()
    zero_cell = int(np.flatnonzero(probabilities == 0)[0])
    counts[np.argmax(probabilities)] -= 1
    counts[zero_cell] += 1
    result = chi_square_counts_test(_cells(counts), probabilities)
    _assert_sane(result)
    assert not result.passed
    assert result.statistic == np.inf and result.p_value == 0.0
    assert result.zero_probability_hits == 1
    assert result.over_sampled[0][:3] == (zero_cell, 1, 0.0)
    assert "fell in cells of probability zero" in str(result)


def test_a_sample_in_a_tiny_cell_is_pooled_as_documented():
    # 1e-300 is not 0: the sample counts in the pooled group, the statistic stays finite.
    probabilities = np.array([0.5, 1e-300, 0.3, 0.2 - 1e-300])
    counts = np.array([5000, 1, 2999, 2000])
    result = chi_square_counts_test(_cells(counts), probabilities)
    _assert_sane(result)
    assert np.isfinite(result.statistic)
    assert result.zero_probability_hits == 0
    assert any(1 in group for group in result.cell_groups)


def test_only_zero_and_tiny_cells_besides_one_is_too_few_cells_not_nan():
    # One cell carries all the mass: nothing to test; a clear error, not a NaN p-value.
    probabilities = np.array([1.0, 0.0, 1e-300, 0.0])
    with pytest.raises(ValueError, match="too small"):
        chi_square_counts_test(_cells([1000, 0, 0, 0]), probabilities)
    # ... unless a sample fell where the law has no mass: then it fails outright.
    result = chi_square_counts_test(_cells([999, 1, 0, 0]), probabilities)
    assert not result.passed and result.p_value == 0.0


def test_no_pooled_group_has_zero_expected_count_whatever_the_summation_order():
    rng = np.random.default_rng(0)
    for _ in range(200):
        probabilities = rng.dirichlet(np.full(12, 0.3))
        probabilities[rng.random(12) < 0.4] = 0.0
        probabilities[rng.random(12) < 0.2] *= 1e-290
        if probabilities.sum() == 0:
            continue
        probabilities /= probabilities.sum()
        for num_samples in (50, 1000, 100_000):
            groups = pool_cells(num_samples * probabilities, 20.0)
            if len(groups) >= 2:
                assert min(num_samples * probabilities[g].sum() for g in groups) >= 20.0
            for group in groups:
                assert np.all(probabilities[group] > 0)


def test_pooling_refuses_bad_thresholds_and_counts():
    with pytest.raises(ValueError, match="min_expected"):
        pool_cells([10.0, 20.0], 0.0)
    with pytest.raises(ValueError, match="min_expected"):
        pool_cells([10.0, 20.0], np.nan)
    with pytest.raises(ValueError, match="expected"):
        pool_cells([10.0, np.nan], 5.0)
    with pytest.raises(ValueError, match="expected"):
        pool_cells([10.0, -1e-12], 5.0)


def test_negative_or_unnormalised_probabilities_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        chi_square_counts_test(_cells([5, 5]), np.array([1.0 + 1e-17, -1e-17]))
    with pytest.raises(ValueError, match="sum to 1"):
        chi_square_counts_test(_cells([5, 5]), np.array([0.5, 0.4]))


class _ZeroCellTarget:
    """A user's target whose law has zero and tiny cells, for the public goodness_of_fit_test."""

    probabilities = np.array([0.3, 0.0, 0.7 - 1e-300, 1e-300, 0.0])

    def cell_index(self, states):
        return np.asarray(states).reshape(-1)

    def cell_probabilities(self):
        return self.probabilities


def test_a_users_target_with_zero_cells_through_the_public_check():
    target = _ZeroCellTarget()
    good = goodness_of_fit_test(_cells([3000, 0, 7000, 0, 0]), target)
    _assert_sane(good)
    assert good.passed
    bad = goodness_of_fit_test(_cells([3000, 0, 6999, 0, 1]), target)
    _assert_sane(bad)
    assert not bad.passed and bad.zero_probability_hits == 1


def test_sample_size_search_ignores_zero_cells():
    probabilities = np.array([0.5, 0.0, 0.5, 0.0])
    alternative = np.array([0.45, 0.05, 0.5, 0.0])
    num_samples = required_samples_against(alternative, probabilities)
    assert num_samples >= 1
