"""The checks of textsampling.testing, tested where the truth is known: exact samplers pass, wrong ones
fail, the measured false-fail rate matches the stated one, and the stated power is a lower bound."""

import numpy as np
import pytest
from scipy import stats

from textsampling import testing
from textsampling.reference import metropolis_hastings
from textsampling.reference.proposals import RingStepProposal, UniformCategoricalProposal
from textsampling.targets import Categorical
from textsampling.testing import statistics

PROBABILITIES = np.array([0.30, 0.20, 0.15, 0.12, 0.10, 0.08, 0.04, 0.01])
TARGET = Categorical.from_probabilities(PROBABILITIES)


def exact_batched_step(target):
    """A kernel that ignores its state and draws exactly from pi: invariant and reversible (J = pi x pi)."""

    def step_fn(rng, states):
        return target.sample_exact(rng, len(states))

    return step_fn


def draws_from(probabilities):
    """Independent draws from another law over TARGET's states (an alternative)."""
    return lambda rng, n: rng.choice(len(probabilities), size=n, p=probabilities)


# ----------------------------------------------------------------------------- exact checks
def test_exact_checks_pass_a_correct_kernel_and_fail_a_wrong_one_with_a_readable_message():
    pi = TARGET.probabilities()
    correct = metropolis_hastings.transition_matrix(TARGET, RingStepProposal(8, 0.7))
    assert testing.check_stationary(correct, pi).passed
    assert testing.assert_detailed_balance(correct, pi).residual <= 1e-12
    assert testing.one_step_tv(correct, pi) < 1e-12
    wrong = testing.faulty.mh_without_hastings_correction(TARGET, RingStepProposal(8, 0.7)).transition_matrix
    result = testing.check_stationary(wrong, pi)
    assert not result.passed and result.residual > 1e-3
    # The residual is the largest |(pi P)_j - pi_j|, recomputed here independently.
    np.testing.assert_allclose(result.residual, np.max(np.abs(pi @ wrong - pi)))
    with pytest.raises(AssertionError, match=r"stationarity \(pi P = pi\): FAILED; largest residual"):
        testing.assert_stationary(wrong, pi)
    with pytest.raises(AssertionError, match="detailed balance"):
        testing.assert_detailed_balance(wrong, pi)
    np.testing.assert_allclose(testing.one_step_tv(wrong, pi), 0.5 * np.abs(pi @ wrong - pi).sum())


def test_exact_check_bad_input():
    with pytest.raises(ValueError, match="transition_matrix"):
        testing.check_stationary(np.ones((2, 3)), [0.5, 0.5])
    with pytest.raises(ValueError, match="distribution"):
        testing.check_detailed_balance(np.eye(2), [0.5, 0.6])
    with pytest.raises(ValueError, match="atol"):
        testing.check_stationary(np.eye(2), [0.5, 0.5], atol=-1.0)


# ----------------------------------------------------------------------------- pass / fail
def test_exact_samples_pass_and_the_report_says_so():
    # Fixed seed; false-fail rate 1e-4 (default).
    rng = np.random.default_rng(20)
    result = testing.goodness_of_fit_test(TARGET.sample_exact(rng, 3000), TARGET)
    assert result.passed and result.false_fail_rate == 1e-4 and result.num_samples == 3000
    result.assert_passed()
    report = str(result)
    assert "goodness of fit: PASSED" in report and "power >=" in report and "p-value" in report
    # The smallest cells (expected 30 and 120 in 3000) stay alone; nothing is pooled at N = 3000.
    assert result.degrees_of_freedom == 7
    np.testing.assert_allclose(result.pool(PROBABILITIES), PROBABILITIES[np.concatenate(result.cell_groups)])


def test_exact_sampler_as_a_kernel_passes_invariance_and_reversibility():
    # Fixed seed; false-fail rate 1e-4 each.
    step_fn = exact_batched_step(TARGET)
    rng = np.random.default_rng(21)
    testing.one_step_invariance_test(step_fn, TARGET, rng, 4000, batched=True).assert_passed()
    testing.reversibility_test(step_fn, TARGET, rng, 4000, batched=True).assert_passed()


def test_a_wrong_law_fails_with_the_stated_power_and_names_the_bad_cells():
    # Move 0.06 of mass from state 0 to state 7: TV = 0.06.
    wrong = PROBABILITIES + np.array([-0.06, 0, 0, 0, 0, 0, 0, 0.06])
    num_samples = testing.required_samples(0.06, 1e-4, 0.999, num_cells=8)
    samples = draws_from(wrong)(np.random.default_rng(22), num_samples)
    result = testing.goodness_of_fit_test(samples, TARGET, tv_alternative=0.06)
    assert result.power >= 0.999  # so a pass here has probability <= 1e-3
    assert not result.passed
    assert result.over_sampled[0][0] == 7 and result.under_sampled[0][0] == 0
    with pytest.raises(AssertionError, match="goodness of fit: FAILED"):
        result.assert_passed()


def test_a_sample_in_a_zero_probability_cell_fails_at_once():
    target = Categorical([0.0, 0.0, -np.inf, 0.0])
    samples = np.concatenate([target.sample_exact(np.random.default_rng(23), 500), [2]])
    result = testing.goodness_of_fit_test(samples, target)
    assert not result.passed and result.p_value == 0.0 and result.zero_probability_hits == 1
    assert "probability zero" in str(result) and result.over_sampled[0] == (2, 1, 0.0)
    # Even when there are too few samples for a chi-square, a sample where pi = 0 fails.
    assert not testing.goodness_of_fit_test([0, 2], target).passed


def test_a_kernel_that_moves_one_way_round_fails_reversibility_but_passes_invariance():
    # x -> x + 1 (mod K) with probability 1/2 under the uniform law: stationary, never reversible.
    # TV(J, J^T) = 1/2; required_samples gives power >= 0.999 at false-fail rate 1e-4.
    target = Categorical(np.zeros(5))

    def rotate(rng, states):
        return np.where(rng.random(len(states)) < 0.5, (states + 1) % 5, states)

    num_samples = testing.required_samples(0.5, 1e-4, 0.999, num_cells=5, test="reversibility")
    rng = np.random.default_rng(24)
    testing.one_step_invariance_test(rotate, target, rng, num_samples, batched=True).assert_passed()
    result = testing.reversibility_test(rotate, target, rng, num_samples, batched=True, tv_alternative=0.5)
    assert result.power >= 0.999 and not result.passed
    assert "->" in result.over_sampled[0][0]


# ----------------------------------------------------------------------------- calibration
def test_measured_false_fail_rate_matches_the_stated_one():
    # 2,000 independent runs at false_fail_rate = 0.05 on exact samples. The chi-square level is
    # approximate; the number of failures must lie in the central 1 - 1e-4 range of
    # Binomial(2000, 0.05) (false-fail rate of this test: 1e-4, plus the small calibration error).
    rng = np.random.default_rng(25)
    num_runs, level = 2000, 0.05
    failures = sum(
        not testing.goodness_of_fit_test(TARGET.sample_exact(rng, 400), TARGET, false_fail_rate=level).passed
        for _ in range(num_runs)
    )
    low, high = stats.binom.ppf(5e-5, num_runs, level), stats.binom.isf(5e-5, num_runs, level)
    assert low <= failures <= high, (failures, low, high)


def test_reversibility_test_is_not_anti_conservative():
    # Bowker's test with pooled rare pairs is conservative (measured 0.87 x nominal at 0.05): over
    # 1,000 runs at level 0.05 the failures may not exceed the upper 1e-4 quantile of Binomial(1000, 0.05).
    rng = np.random.default_rng(26)
    step_fn = exact_batched_step(TARGET)
    failures = sum(
        not testing.reversibility_test(step_fn, TARGET, rng, 300, false_fail_rate=0.05, batched=True).passed
        for _ in range(1000)
    )
    assert failures <= stats.binom.isf(1e-4, 1000, 0.05)


def test_noncentrality_bound_holds_for_random_alternatives():
    # lambda / N = sum (q - p)^2 / p >= (2 TV)^2, with equality when |q - p| is proportional to p.
    rng = np.random.default_rng(27)
    for _ in range(200):
        q = rng.dirichlet(np.ones(8))
        assert np.sum((q - PROBABILITIES) ** 2 / PROBABILITIES) >= np.sum(np.abs(q - PROBABILITIES)) ** 2 - 1e-15


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_simulated_power_is_at_least_the_stated_bound(sign):
    # The alternative that attains the Cauchy-Schwarz bound: q_k = p_k (1 +- 2d) on two halves of
    # mass 1/2 (here states {0, 1} and {2, ..., 7} hold 0.5 each), TV = d exactly.
    halves = np.array([1, 1, -1, -1, -1, -1, -1, -1]) * sign
    tv = 0.04
    q = PROBABILITIES * (1.0 + 2.0 * tv * halves)
    np.testing.assert_allclose(0.5 * np.abs(q - PROBABILITIES).sum(), tv)
    level, num_samples, num_runs = 0.01, 1500, 300
    bound = statistics.power_lower_bound(num_samples, tv, level, 7)
    assert 0.3 < bound < 0.9  # a bound that says something
    rng = np.random.default_rng(28)
    failures = sum(
        not testing.goodness_of_fit_test(draws_from(q)(rng, num_samples), TARGET, level, tv).passed
        for _ in range(num_runs)
    )
    # One-sided: failures below the lower 1e-4 quantile of Binomial(300, bound) would refute the bound.
    assert failures >= stats.binom.ppf(1e-4, num_runs, bound), (failures / num_runs, bound)


def test_simulated_power_of_the_reversibility_test_is_at_least_the_stated_bound():
    # On 3 equally likely states, always move: +1 with probability (1 + d) / 2, -1 with (1 - d) / 2.
    # Pairs: J_ab - J_ba = d / 3 on each of the 3 pairs, J_ab + J_ba = 1 / 3, so TV(J, J^T) = d and
    # the noncentrality N sum (J_ab - J_ba)^2 / (J_ab + J_ba) = N d^2: the bound is attained.
    tv, level, num_samples, num_runs = 0.1, 0.01, 1000, 300
    target = Categorical(np.zeros(3))

    def biased_rotation(rng, states):
        return (states + np.where(rng.random(len(states)) < (1 + tv) / 2, 1, -1)) % 3

    bound = statistics.power_lower_bound(num_samples, tv, level, 3, "reversibility")
    assert 0.3 < bound < 0.9
    rng = np.random.default_rng(31)
    results = [
        testing.reversibility_test(biased_rotation, target, rng, num_samples, level, tv, batched=True)
        for _ in range(num_runs)
    ]
    assert all(r.degrees_of_freedom == 3 for r in results)  # no pooling: the bound applies as stated
    failures = sum(not r.passed for r in results)
    # One-sided, as for the goodness-of-fit bound: false-fail rate 1e-4.
    assert failures >= stats.binom.ppf(1e-4, num_runs, bound), (failures / num_runs, bound)


def test_required_samples_is_the_smallest_sufficient_size():
    for test, cells in (("goodness_of_fit", 10), ("reversibility", 4)):
        n = testing.required_samples(0.05, 1e-4, 0.99, num_cells=cells, test=test)
        df = cells - 1 if test == "goodness_of_fit" else cells * (cells - 1) // 2
        assert statistics.power_lower_bound(n, 0.05, 1e-4, df, test) >= 0.99
        assert statistics.power_lower_bound(n - 1, 0.05, 1e-4, df, test) < 0.99
    # Smaller distances need quadratically more samples.
    ratio = testing.required_samples(0.01, num_cells=10) / testing.required_samples(0.02, num_cells=10)
    assert 3.9 < ratio < 4.1


def test_pooling_keeps_every_group_above_the_threshold():
    expected = np.array([0.0, 1.0, 2.0, 30.0, 25.0, 3.0, 100.0])
    groups = statistics.pool_cells(expected, 20.0)
    assert all(expected[g].sum() >= 20.0 for g in groups)
    assert sorted(np.concatenate(groups).tolist()) == [1, 2, 3, 4, 5, 6]  # the zero cell is left out
    assert [g.tolist() for g in groups] == [[3], [6], [1, 2, 4, 5]]


# ----------------------------------------------------------------------------- long runs, helpers
def test_run_independent_chains_reaches_pi_from_a_fixed_start():
    # MH with a uniform proposal mixes fast: after 40 steps from state 7 the law is within TV
    # 1e-4 / 600 of pi (checked on the matrix), so the 600 final states can be coupled with exact
    # draws except with probability 1e-4: false-fail rate <= 1e-4 + 1e-4.
    proposal = UniformCategoricalProposal(8)
    matrix = metropolis_hastings.transition_matrix(TARGET, proposal)
    law = np.linalg.matrix_power(matrix, 40)[7]
    assert 600 * 0.5 * np.abs(law - PROBABILITIES).sum() < 1e-4
    step_fn = testing.metropolis_hastings_step_fn(TARGET.log_prob, proposal)
    finals = testing.run_independent_chains(step_fn, np.full(600, 7), np.random.default_rng(29), 40)
    testing.goodness_of_fit_test(finals, TARGET).assert_passed()


def test_transition_law_test_tells_a_step_function_from_a_wrong_matrix():
    # The correct MH step against its own matrix passes (false-fail rate 1e-4); the step without the
    # Hastings correction against the correct matrix fails at power >= 0.999 against its exact
    # distance TV(pi P_wrong, pi P) on the pair cells.
    proposal = RingStepProposal(8, 0.8)
    correct = metropolis_hastings.transition_matrix(TARGET, proposal)
    rng = np.random.default_rng(30)
    step_fn = testing.metropolis_hastings_step_fn(TARGET.log_prob, proposal)
    testing.transition_law_test(step_fn, TARGET, correct, rng, 3000).assert_passed()
    wrong = testing.faulty.mh_without_hastings_correction(TARGET, proposal)
    wrong_joint = (PROBABILITIES[:, None] * wrong.transition_matrix).ravel()
    correct_joint = (PROBABILITIES[:, None] * correct).ravel()
    num_samples = testing.required_samples_against(wrong_joint, correct_joint, 1e-4, 0.999)
    result = testing.transition_law_test(wrong.step_fn, TARGET, correct, rng, num_samples)
    # Pooling may merge pair cells: check the power against the distance on the pooled cells.
    pooled = 0.5 * np.abs(result.pool(wrong_joint) - result.pool(correct_joint)).sum()
    assert result.power_against_tv(pooled) >= 0.999
    assert not result.passed


RNG = np.random.default_rng


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: testing.one_step_invariance_test(lambda r, x: x, TARGET, 0, 10), TypeError, "rng"),
        (lambda: testing.one_step_invariance_test(lambda r, x: x, TARGET, RNG(0), 0), ValueError, "num_samples"),
        (lambda: testing.one_step_invariance_test(lambda r, x: x, object(), RNG(0), 10), TypeError, "target"),
        (lambda: testing.one_step_invariance_test("step", TARGET, RNG(0), 10), TypeError, "step_fn"),
        (
            lambda: testing.one_step_invariance_test(lambda r, x: x[:1], TARGET, RNG(0), 10, batched=True),
            ValueError,
            "step_fn",
        ),
        (lambda: testing.goodness_of_fit_test([0, 1], TARGET, false_fail_rate=0.0), ValueError, "false_fail_rate"),
        (lambda: testing.goodness_of_fit_test([0, 1], TARGET, tv_alternative=2.0), ValueError, "tv_alternative"),
        (lambda: testing.goodness_of_fit_test([0, 1, 2], TARGET), ValueError, "num_samples"),
        (lambda: testing.required_samples(0.1, power=1e-5), ValueError, "power"),
        (lambda: testing.required_samples(0.1, num_cells=1), ValueError, "num_cells"),
        (lambda: testing.required_samples(0.1, test="other"), ValueError, "test"),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
