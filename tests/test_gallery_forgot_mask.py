"""The commonest MLM-Gibbs bug, forgetting [MASK] at the position resampled, and the model that sees it.

Exact kernels on the 27 enumerated sentences of bigram-small, then ``check --kind mlm-gibbs`` itself
(fixed seed) with the mask-sensitive model: the bug fails, the correct sampler passes.
"""

import dataclasses

import numpy as np
import pytest

from textsampling.gallery import CASES, CORRECT, exact_power, gibbs, one_step_tv, stationary_target
from textsampling.lm.oracle import BigramOracle, MaskSensitiveOracle
from textsampling.reference import mlm_gibbs
from textsampling.targets import BigramLM, make_target
from textsampling.testing import conformance
from textsampling.testing.conformance import DEFAULT_FALSE_FAIL_RATE


def bigram_oracle(target):
    """The plain exact oracle of ``target`` (ignores x_i): what the check handed steps before."""
    return BigramOracle.for_fixed_length(target)


def _random_oracles(seed=0):
    bigram = BigramLM.random(np.random.default_rng(seed), vocab_size=4, max_length=5)
    return BigramOracle(bigram), MaskSensitiveOracle(bigram)


def test_the_mask_sensitive_oracle_is_exact_where_the_position_holds_mask():
    plain, sensitive = _random_oracles()
    rng = np.random.default_rng(1)
    token_ids = rng.integers(0, 4, size=(50, 5))
    positions = rng.integers(0, 5, size=50)
    masked = token_ids.copy()
    masked[np.arange(50), positions] = sensitive.mask_token_id
    exact = plain.masked_log_probs(masked, positions)
    np.testing.assert_array_equal(sensitive.masked_log_probs(masked, positions), exact)
    # The plain oracle ignores the token at the position; that is why it cannot see the bug.
    np.testing.assert_array_equal(plain.masked_log_probs(token_ids, positions), exact)


def test_the_mask_sensitive_oracle_boosts_the_visible_token_by_its_bonus():
    plain, sensitive = _random_oracles()
    rng = np.random.default_rng(2)
    token_ids = rng.integers(0, 4, size=(50, 5))
    positions = rng.integers(0, 5, size=50)
    exact = plain.masked_log_probs(token_ids, positions)
    leaning = sensitive.masked_log_probs(token_ids, positions)
    visible = token_ids[np.arange(50), positions]
    np.testing.assert_allclose(np.exp(leaning).sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(np.isneginf(leaning[:, 4:]))  # END and [MASK] stay impossible
    # Log-odds of the visible token against any other token rise by exactly the bonus.
    other = (visible + 1) % 4
    rows = np.arange(50)
    lift = (leaning[rows, visible] - leaning[rows, other]) - (exact[rows, visible] - exact[rows, other])
    np.testing.assert_allclose(lift, sensitive.visible_token_bonus, rtol=1e-10)
    assert np.all(leaning[rows, visible] > exact[rows, visible])


def test_the_mask_sensitive_oracle_keeps_zero_probability_contexts_and_rejects_a_bad_bonus():
    transition = np.zeros((3, 4))
    transition[:, 0] = -np.inf  # no token is ever followed by 0
    bigram = BigramLM(np.zeros(3), transition, max_length=3)
    sensitive = MaskSensitiveOracle(bigram)
    impossible = sensitive.masked_log_probs(np.array([[1, 0, 2]]), np.array([0]))  # p(v) p(0 | v) = 0 for all v
    assert np.all(np.isneginf(impossible))
    assert np.all(np.isneginf(BigramOracle(bigram).masked_log_probs(np.array([[1, 0, 2]]), np.array([0]))))
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="visible_token_bonus"):
            MaskSensitiveOracle(bigram, bad)


def _forgot_mask_with(model_of_target):
    def matrix(target):
        return gibbs.site_scan_matrix(model_of_target(target), target, mask=False)

    return dataclasses.replace(gibbs.FORGOT_MASK, transition_matrix=matrix)


def test_the_forgotten_mask_passed_with_the_plain_oracle():
    """Why the check needs the mask-sensitive model: with BigramOracle the buggy step is exactly correct."""
    case = _forgot_mask_with(bigram_oracle)
    assert one_step_tv(case) < 1e-12
    target = make_target(case.target)
    reference = mlm_gibbs.transition_matrix(bigram_oracle(target), target.states, "random")
    np.testing.assert_allclose(case.transition_matrix(target), reference, atol=1e-12)
    assert exact_power(case)["check"] < 2 * DEFAULT_FALSE_FAIL_RATE  # only the false-fail rate: invisible


def test_the_forgotten_mask_is_caught_by_the_mask_sensitive_model_at_the_default_sizes():
    power = exact_power(gibbs.FORGOT_MASK)
    assert power["check"] >= 0.99, power
    target = make_target(gibbs.FORGOT_MASK.target)
    pi = stationary_target(gibbs.FORGOT_MASK).probabilities()
    matrix = gibbs.FORGOT_MASK.transition_matrix(target)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-12)
    assert 0.5 * np.abs(pi @ matrix - pi).sum() > 1e-3  # pi is not invariant


def test_masking_first_is_exact_under_the_mask_sensitive_model():
    target = make_target("bigram-small")
    sensitive = gibbs.mask_sensitive_oracle(target)
    reference = mlm_gibbs.transition_matrix(bigram_oracle(target), target.states, "random")
    np.testing.assert_allclose(gibbs.site_scan_matrix(sensitive, target, mask=True), reference, atol=1e-12)


def test_the_steps_draw_from_their_exact_kernels():
    """Step and kernel share code (site_log_probs): every state a step reaches has probability > 0 in its row."""
    target = make_target("bigram-small")
    sensitive = gibbs.mask_sensitive_oracle(target)
    for mask, step in ((False, gibbs.mlm_forgot_mask_step), (True, gibbs.mlm_mask_first_step)):
        matrix = gibbs.site_scan_matrix(sensitive, target, mask)
        for a in (0, 13, 26):
            x = target.states[a]
            steps = [step(np.random.default_rng(seed), x, sensitive) for seed in range(40)]
            reached = set(target.state_index(np.array(steps)).tolist())
            assert reached <= set(np.flatnonzero(matrix[a] > 0).tolist())


def test_the_case_is_in_the_checked_gallery():
    assert CASES[gibbs.FORGOT_MASK.name] is gibbs.FORGOT_MASK


#: Sizes of the two check runs below: fewer one-step draws than the default (the long-run test is the
#: one that sees this bug), the default 200 chains x 60 steps.
NUM_SAMPLES, NUM_CHAINS = 1000, conformance.DEFAULT_NUM_CHAINS


def test_check_catches_the_forgotten_mask():
    """The check itself, seed 0: FAILS.

    Exact power of the check against this bug at these sizes (noncentral chi-square from the bug's
    kernel): >= 1 - 1e-4, so this test's false-fail rate (the bug slipping through) is <= 1e-4.
    """
    power = exact_power(gibbs.FORGOT_MASK, num_samples=NUM_SAMPLES, num_chains=NUM_CHAINS)
    assert power["check"] >= 1 - 1e-4, power
    report = conformance.check_step(
        gibbs.FORGOT_MASK.step, "mlm-gibbs", "bigram-small", num_samples=NUM_SAMPLES, num_chains=NUM_CHAINS,
        budget=None, seed=0,
    )
    assert report.error is None
    assert not report.passed, report.format()


@pytest.mark.parametrize("name", ["mlm-gibbs-random-scan"])
def test_check_passes_the_correct_sampler_under_the_mask_sensitive_model(name):
    """The reference step (it masks first), same check and sizes, seed 0: passes.

    False-fail rate: at most the sum of the two tests' exact failure probabilities for this kernel,
    5e-5 (one step) + 5.00001e-5 (long run, its level plus incomplete mixing after 60 steps), i.e.
    1.0001e-4 (asserted from the exact kernel).
    """
    case = CORRECT[name]
    power = exact_power(case, num_samples=NUM_SAMPLES, num_chains=NUM_CHAINS)
    assert power["one_step"] + power["long_run"] <= DEFAULT_FALSE_FAIL_RATE * 1.0001, power
    report = conformance.check_step(
        case.step, "mlm-gibbs", "bigram-small", num_samples=NUM_SAMPLES, num_chains=NUM_CHAINS, budget=None, seed=0,
    )
    assert report.error is None
    assert report.passed, report.format()
    assert isinstance(conformance.bigram_oracle(make_target("bigram-small")), MaskSensitiveOracle)
