"""The gallery: every wrong sampler is caught, every correct one passes at its stated false-fail rate.

Sizes are derived, not guessed: each case's exact kernel gives the law of what the check sees, hence
(noncentral chi-square, :func:`textsampling.gallery.exact_power`) the power of the check against *this*
bug at any sample size.
"""

import numpy as np
import pytest
from scipy import stats

from textsampling.gallery import CASES, CORRECT, exact_power, one_step_tv, stationary_target
from textsampling.testing import check_detailed_balance, check_stationary
from textsampling.testing import conformance as check

#: The issue asks for power >= 0.99 against every gallery bug at the default sizes.
REQUIRED_POWER = 0.99


def test_the_gallery_has_at_least_ten_bugs_each_described_in_one_line():
    assert len(CASES) >= 10
    for case in CASES.values():
        assert case.kind in check.KINDS and case.target in check.KINDS[case.kind].targets
        assert case.description and "\n" not in case.description
        assert case.transition_matrix is not None


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_kernels_are_exactly_stationary(name):
    # Exact, no randomness: pi P = pi to 1e-10 (and detailed balance for the reversible kinds).
    case = CORRECT[name]
    matrix = case.kernel()
    pi = stationary_target(case).probabilities()
    assert check_stationary(matrix, pi).passed
    if check.KINDS[case.kind].reversible:
        assert check_detailed_balance(matrix, pi).passed


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_bug_has_power_at_least_099_at_the_default_sizes(name):
    # Exact computation from the bug's kernel (no sampling): the default check catches it.
    case = CASES[name]
    power = exact_power(case)
    assert power["check"] >= REQUIRED_POWER, power
    # A bug that leaves pi invariant is exactly the one only the long-run test sees.
    if one_step_tv(case) < 1e-12:
        assert power["long_run"] >= REQUIRED_POWER


def _sizes_for_power(case, power=1 - 1e-4):
    """Smallest sizes (doubling from 500 draws) whose exact power reaches ``power``: the one-step tests
    alone (no chains) when the bug moves pi in one step, else 200 chains for the long-run test."""
    num_samples, num_chains = 500, (0 if one_step_tv(case) > 1e-12 else check.DEFAULT_NUM_CHAINS)
    while exact_power(case, num_samples=num_samples, num_chains=num_chains)["check"] < power:
        num_samples *= 2
    return num_samples, num_chains


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_bug_is_caught_by_the_check(name):
    # Run at the smallest sizes whose exact power is >= 1 - 1e-4: this test's false-fail rate (the
    # bug slipping through) is at most 1e-4. Fixed seed.
    case = CASES[name]
    num_samples, num_chains = _sizes_for_power(case)
    report = check.check_step(
        case.step, case.kind, case.target, num_samples=num_samples, num_chains=num_chains, budget=None,
        seed=1, **case.options,
    )
    assert report.error is None
    assert not report.passed, report.format()
    text = report.format()
    assert "FAILS" in text and "over- and under-sampled" in text


def _failure_bound(num_runs, rate, tail=1e-4):
    """Largest failure count a correct sampler exceeds with probability <= ``tail`` (binomial)."""
    count = 0
    while stats.binom.sf(count, num_runs, rate) > tail:
        count += 1
    return count


NUM_RUNS = 200
RUN_FALSE_FAIL_RATE = 0.01


#: The samplers whose false-fail rate the suite measures on every run (the cheapest step functions; the
#: others were measured the same way once, see the check issue's closing note, and their exact
#: stationarity is tested above).
MEASURED = ["mh-reference-categorical", "mh-reference", "cgmh-reference"]


@pytest.mark.parametrize("name", MEASURED)
def test_correct_samplers_pass_at_the_stated_false_fail_rate(name):
    # 200 independent checks (seeds 0..199) at false-fail rate 0.01 of the one-step tests (N exact
    # draws each, the fewest that leave two cells after the harness's pooling at expected count 20):
    # failures ~ at most Binomial(200, 0.01), so more than
    # _failure_bound(200, 0.01) = 9 failures has probability <= 1e-4 for a correct sampler — this
    # test's own false-fail rate. The long-run test's extra failure probability (incomplete mixing) is
    # computed exactly below instead of simulated.
    case = CORRECT[name]
    num_samples = max(200, int(np.ceil(50.0 / stationary_target(case).probabilities().max())))
    failures = 0
    for seed in range(NUM_RUNS):
        report = check.check_step(
            case.step, case.kind, case.target, false_fail_rate=RUN_FALSE_FAIL_RATE, num_samples=num_samples,
            num_chains=0, budget=None, seed=seed, **case.options,
        )
        assert report.error is None
        failures += not report.passed
    assert failures <= _failure_bound(NUM_RUNS, RUN_FALSE_FAIL_RATE), failures


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_samplers_mix_within_the_default_long_run(name):
    # Exact: after the kind's default number of steps from the fixed start, the finals' law is within
    # TV 1e-3 of pi, and the long-run test fails a correct sampler with probability at most twice its
    # share of the false-fail rate (noncentral chi-square with the exact residual).
    case = CORRECT[name]
    power = exact_power(case)
    num_tests = 1 + int(check.KINDS[case.kind].reversible) + 1
    assert power["long_run"] <= 2 * check.DEFAULT_FALSE_FAIL_RATE / num_tests, power
    assert power["tv_long_run"] <= 1e-3, power


@pytest.mark.parametrize("name", ["mh-reference", "cgmh-reference"])
def test_correct_samplers_pass_the_default_check(name):
    # Each fails with probability <= 1e-4 (the default false-fail rate plus the exact mixing term
    # above, both <= 5e-5); seed fixed.
    case = CORRECT[name]
    report = check.check_step(case.step, case.kind, case.target, **case.options)
    assert report.passed, report.format()
    # The default check has no time budget: it ran the kind's fixed sizes, whatever the machine's load.
    assert report.budget is None and report.scale == 1.0
    assert report.outcomes[0].result.num_samples == check.KINDS[case.kind].num_samples
    assert "budget" not in report.format()
