"""Every reference sampler through ONE harness (textsampling.testing), on every toy target, against exact answers;
and every deliberately faulty sampler must fail it.

For each Markov kernel: the exact checks on its transition matrix (stationarity; detailed balance where the
kernel is reversible), then the black-box one-step invariance test and, for reversible kernels, the
reversibility test, each at false-fail rate 1e-4 with a fixed seed. Independent samplers (inverse-CDF
categorical, rejection) get the goodness-of-fit test; importance sampling is checked through its estimates.
Each faulty sampler is run at a size where the stated power against its exact distance from the truth
(computed from its transition matrix) is at least 0.999.
"""

from __future__ import annotations

import zlib
from typing import Callable, NamedTuple

import numpy as np
import pytest

from textsampling import testing
from textsampling.reference import annealing, categorical, gibbs, importance, metropolis_hastings, rejection
from textsampling.reference.proposals import (
    GaussianRandomWalkProposal,
    IndependenceProposal,
    IndependentCategorical,
    IndependentUniformSequences,
    RingStepProposal,
    SingleSiteProposal,
    UniformCategoricalProposal,
)
from textsampling.targets import (
    BigramLM,
    Categorical,
    GaussianMixture,
    KeywordTarget,
    PairwiseChain,
    TopicSimilarity,
)
from textsampling.testing import faulty

FALSE_FAIL_RATE = 1e-4
NUM_SAMPLES = 2000  # black-box samples per check of a correct sampler

# ----------------------------------------------------------------------------- the toy targets
CATEGORICAL = Categorical([0.5, -1.0, 1.5, -np.inf, 0.0, 1.0])
_BIGRAM_LM = BigramLM.random(np.random.default_rng(100), vocab_size=3, max_length=3, concentration=2.0)
BIGRAM = _BIGRAM_LM.fixed_length(3)  # FixedLengthBigram, 27 states, exact masked conditionals
CHAIN = PairwiseChain(
    np.random.default_rng(101).normal(scale=0.7, size=(3, 3)),
    np.array([[0.8, -0.3, 0.0], [-0.3, 0.5, 0.2], [0.0, 0.2, -0.4]]),
)
# Keyword constraint (token 2 must occur) and a topic bonus, on a fixed-length bigram: zero-probability states.
KEYWORD = KeywordTarget(BIGRAM, keywords=[2], log_similarity=TopicSimilarity([1], weight=0.7), gamma=0.8)
MIXTURE = GaussianMixture([0.3, 0.7], [-1.5, 1.0], [0.6, 0.9], num_bins=10)
MIXTURE_2D = GaussianMixture([0.4, 0.6], [[-1.0, 0.5], [1.0, -0.5]], [[0.7, 1.0], [0.8, 0.5]], num_bins=5)

SEQUENCE_TARGETS = {"bigram": BIGRAM, "chain": CHAIN, "keyword": KEYWORD}


def seed_of(name: str) -> int:
    """A fixed seed per test case (crc32, not the salted hash())."""
    return zlib.crc32(name.encode())


def tempered_chain(chain: PairwiseChain, temperature: float) -> PairwiseChain:
    """The chain of rho^(1/T): what an annealing kernel at fixed T must leave invariant."""
    return PairwiseChain(chain.unary / temperature, chain.coupling / temperature)


class KernelCase(NamedTuple):
    """A correct Markov kernel: the law it must keep, its step function and its exact matrix."""

    name: str
    target: object  # the law the kernel leaves invariant
    step_fn: Callable
    transition_matrix: Callable | None  # () -> (S, S), or None for a continuous target
    reversible: bool


def _mh(name, target, proposal):
    return KernelCase(
        name,
        target,
        testing.metropolis_hastings_step_fn(target.log_prob, proposal),
        lambda: metropolis_hastings.transition_matrix(target, proposal),
        True,
    )


def _annealing(name, target, invariant_target, proposal, temperature):
    return KernelCase(
        name,
        invariant_target,
        testing.annealing_step_fn(target.log_prob, proposal, temperature),
        lambda: annealing.transition_matrix(target, proposal, temperature),
        True,
    )


def _gibbs(name, target, scan):
    return KernelCase(
        name,
        target,
        testing.gibbs_step_fn(target.conditional_log_probs, scan),
        lambda: gibbs.transition_matrix(target, scan),
        scan == "random",  # a systematic sweep is stationary but not reversible
    )


def _kernel_cases():
    cases = [
        _mh("mh_symmetric-categorical", CATEGORICAL, UniformCategoricalProposal(6)),
        _mh("mh_asymmetric_ring-categorical", CATEGORICAL, RingStepProposal(6, 0.75)),
        _mh(
            "mh_asymmetric_independence-categorical",
            CATEGORICAL,
            IndependenceProposal(IndependentCategorical([1.0, 0.0, 0.0, 0.0, -1.0, 0.5])),
        ),
        _annealing(
            "annealing_T2-categorical",
            CATEGORICAL,
            Categorical(CATEGORICAL.logits / 2.0),
            RingStepProposal(6, 0.6),
            2.0,
        ),
        _annealing("annealing_T0.5-chain", CHAIN, tempered_chain(CHAIN, 0.5), SingleSiteProposal(3, 3), 0.5),
    ]
    token_logits = np.array([[1.0, 0.0, -1.0], [0.0, 0.5, 0.0], [-0.5, 0.0, 1.0]])
    for label, target in SEQUENCE_TARGETS.items():
        cases.append(_mh(f"mh_symmetric-{label}", target, SingleSiteProposal(3, 3)))
        cases.append(_mh(f"mh_asymmetric-{label}", target, SingleSiteProposal(3, 3, token_logits=token_logits)))
        cases.append(_gibbs(f"gibbs_random-{label}", target, "random"))
        if label != "keyword":  # (brute-force conditionals: a sweep is slow; random scan covers it)
            cases.append(_gibbs(f"gibbs_systematic-{label}", target, "systematic"))
    for label, mixture in (("gaussian_mixture_1d", MIXTURE), ("gaussian_mixture_2d", MIXTURE_2D)):
        walk = GaussianRandomWalkProposal(1.2, dimension=mixture.dimension)
        step_fn = testing.metropolis_hastings_step_fn(mixture.log_prob, walk)
        cases.append(KernelCase(f"mh_random_walk-{label}", mixture, step_fn, None, True))
    return cases


KERNEL_CASES = _kernel_cases()
CASE_IDS = [case.name for case in KERNEL_CASES]


# ----------------------------------------------------------------------------- correct kernels
@pytest.mark.parametrize("case", [c for c in KERNEL_CASES if c.transition_matrix], ids=lambda c: c.name)
def test_exact_transition_matrix(case):
    matrix = case.transition_matrix()
    pi = case.target.probabilities()
    testing.assert_stationary(matrix, pi)
    if case.reversible:
        testing.assert_detailed_balance(matrix, pi)


@pytest.mark.parametrize("case", [c for c in KERNEL_CASES if c.transition_matrix], ids=lambda c: c.name)
def test_step_function_moves_as_its_transition_matrix_says(case):
    # The exact checks above are about the real step code only if the matrix is that code's kernel:
    # pairs (x0 ~ pi, x1 = step(x0)) against pi_a P_ab. False-fail rate 1e-4, fixed seed.
    rng = np.random.default_rng(seed_of("law" + case.name))
    testing.transition_law_test(case.step_fn, case.target, case.transition_matrix(), rng, NUM_SAMPLES).assert_passed()


@pytest.mark.parametrize("case", KERNEL_CASES, ids=CASE_IDS)
def test_one_step_invariance(case):
    # False-fail rate 1e-4, fixed seed.
    rng = np.random.default_rng(seed_of("invariance" + case.name))
    result = testing.one_step_invariance_test(case.step_fn, case.target, rng, NUM_SAMPLES, FALSE_FAIL_RATE)
    result.assert_passed()


@pytest.mark.parametrize("case", [c for c in KERNEL_CASES if c.reversible], ids=lambda c: c.name)
def test_reversibility(case):
    # False-fail rate 1e-4 (the test is conservative), fixed seed.
    rng = np.random.default_rng(seed_of("reversibility" + case.name))
    result = testing.reversibility_test(case.step_fn, case.target, rng, NUM_SAMPLES, FALSE_FAIL_RATE)
    result.assert_passed()
    assert result.degrees_of_freedom >= 2  # the kernel moved: there was something to test


# ----------------------------------------------------------------------------- independent samplers
def test_inverse_cdf_categorical_goodness_of_fit():
    samples = categorical.sample(np.random.default_rng(seed_of("categorical")), CATEGORICAL.logits, 5000)
    testing.goodness_of_fit_test(samples, CATEGORICAL, FALSE_FAIL_RATE).assert_passed()


@pytest.mark.parametrize(
    "target, proposal",
    [
        (CATEGORICAL, IndependentCategorical(np.zeros(6))),
        (BIGRAM, IndependentUniformSequences(3, 3)),
        (KEYWORD, IndependentUniformSequences(3, 3)),
    ],
    ids=["categorical", "bigram", "keyword"],
)
def test_rejection_sampling_goodness_of_fit(target, proposal):
    # The accepted samples are independent exact draws; false-fail rate 1e-4, fixed seed.
    log_envelope = rejection.tightest_log_envelope(target, proposal)
    rng = np.random.default_rng(seed_of(repr(target)))
    result = rejection.sample(rng, target.log_prob, proposal, log_envelope, 8000)
    assert result.num_accepted >= 1000
    testing.goodness_of_fit_test(result.samples, target, FALSE_FAIL_RATE).assert_passed()


@pytest.mark.parametrize(
    "target, proposal, function",
    [
        (CATEGORICAL, IndependentCategorical(np.zeros(6)), lambda s: s.astype(np.float64)),
        (KEYWORD, IndependentUniformSequences(3, 3), lambda s: np.sum(s == 1, axis=1).astype(np.float64)),
        (CHAIN, IndependentUniformSequences(3, 3), lambda s: (s[:, 0] == s[:, 2]).astype(np.float64)),
    ],
    ids=["categorical", "keyword", "chain"],
)
def test_importance_sampling_estimates_match_exact_answers(target, proposal, function):
    # Self-normalised estimate and log Z-hat, each against the exact value with a z-test at |z| < 4.42
    # (two-sided normal tail 1e-5, so 2e-5 for both, leaving room for the CLT's error at N = 20,000).
    num_samples = 20_000
    rng = np.random.default_rng(seed_of("importance" + repr(target)))
    result = importance.sample(rng, target.log_prob, proposal, num_samples)
    values = function(result.states)
    estimate = importance.estimate(values, result.log_weights)
    # Delta-method standard error of the self-normalised estimator: sqrt(sum w_i^2 (f_i - mu)^2).
    standard_error = np.sqrt(np.sum(result.normalized_weights**2 * (values - estimate) ** 2))
    exact = target.expectation(function)
    assert abs(estimate - exact) < 4.42 * standard_error, (estimate, exact, standard_error)
    # Z-hat = mean(w) is unbiased; its standard error is sd(w) / sqrt(N).
    weights = np.exp(result.log_weights - target.log_normalizer())  # w / Z, mean 1
    assert abs(weights.mean() - 1.0) < 4.42 * weights.std(ddof=1) / np.sqrt(num_samples)
    np.testing.assert_allclose(result.log_normalizer_estimate, target.log_normalizer() + np.log(weights.mean()))


# ----------------------------------------------------------------------------- faulty samplers
def _faulty_cases():
    token_logits = np.array([-1.0, 0.0, 1.5])
    return [
        faulty.mh_without_hastings_correction(CATEGORICAL, RingStepProposal(6, 0.8)),
        faulty.mh_without_hastings_correction(BIGRAM, SingleSiteProposal(3, 3, token_logits=token_logits)),
        faulty.mh_with_wrong_sign(CHAIN, SingleSiteProposal(3, 3)),
        faulty.gibbs_with_tempered_conditional(CHAIN, temperature=2.0),
        faulty.gibbs_with_tempered_conditional(BIGRAM, temperature=0.5, scan="systematic"),
        faulty.gibbs_with_stale_conditionals(CHAIN),
        faulty.mh_that_retries_rejections(KEYWORD, SingleSiteProposal(3, 3)),
        faulty.rejection_with_clipped_envelope(
            CATEGORICAL,
            IndependentCategorical(np.zeros(6)),
            rejection.tightest_log_envelope(CATEGORICAL, IndependentCategorical(np.zeros(6))) - 1.0,
        ),
    ]


FAULTY_CASES = _faulty_cases()


@pytest.mark.parametrize("sampler", FAULTY_CASES, ids=lambda f: f"{f.name}-{type(f.target).__name__}")
def test_faulty_sampler_fails_one_step_invariance(sampler):
    pi = sampler.target.probabilities()
    # The exact checks catch it first.
    assert not testing.check_stationary(sampler.transition_matrix, pi).passed
    moved = pi @ sampler.transition_matrix  # law of x1 when x0 ~ pi
    tv = testing.one_step_tv(sampler.transition_matrix, pi)
    num_samples = testing.required_samples_against(moved, pi, FALSE_FAIL_RATE, 0.999)
    rng = np.random.default_rng(seed_of("faulty" + sampler.name))
    result = testing.one_step_invariance_test(sampler.step_fn, sampler.target, rng, num_samples, FALSE_FAIL_RATE, tv)
    # The power refers to the pooled cells: recompute the distance there, and demand power >= 0.999.
    pooled_tv = 0.5 * np.sum(np.abs(result.pool(moved) - result.pool(pi)))
    assert result.power_against_tv(pooled_tv) >= 0.999, (pooled_tv, tv, num_samples)
    assert not result.passed, str(result)


@pytest.mark.parametrize(
    "sampler",
    FAULTY_CASES + [faulty.systematic_scan_skipping_last_position(CHAIN)],
    ids=lambda f: f"{f.name}-{type(f.target).__name__}",
)
def test_faulty_step_function_moves_as_its_transition_matrix_says(sampler):
    # The distances used above come from the matrix; this checks the matrix is the faulty step's kernel.
    # False-fail rate 1e-4, fixed seed.
    rng = np.random.default_rng(seed_of("faulty law" + sampler.name))
    result = testing.transition_law_test(sampler.step_fn, sampler.target, sampler.transition_matrix, rng, NUM_SAMPLES)
    result.assert_passed()


def test_systematic_scan_skipping_a_position_fails_the_long_run_test_and_the_correct_scan_passes():
    # The skipping sweep keeps pi invariant (one-step invariance cannot see it) but freezes the last token.
    sampler = faulty.systematic_scan_skipping_last_position(CHAIN)
    pi = CHAIN.probabilities()
    testing.assert_stationary(sampler.transition_matrix, pi)
    start_index = int(np.argmin(pi))
    start = CHAIN.states[start_index]
    num_sweeps = 8
    correct_matrix = gibbs.transition_matrix(CHAIN, "systematic")
    wrong_law = np.linalg.matrix_power(sampler.transition_matrix, num_sweeps)[start_index]
    correct_law = np.linalg.matrix_power(correct_matrix, num_sweeps)[start_index]
    wrong_tv = 0.5 * np.abs(wrong_law - pi).sum()
    num_chains = max(testing.required_samples_against(wrong_law, pi, FALSE_FAIL_RATE, 0.999), 200)
    # The correct chain after 8 sweeps is within TV 1e-4 / num_chains of pi, so its num_chains final
    # states can be coupled with exact draws except with probability <= 1e-4: its false-fail rate is
    # at most 1e-4 + 1e-4.
    assert num_chains * 0.5 * np.abs(correct_law - pi).sum() < 1e-4
    rng = np.random.default_rng(seed_of("long run"))
    starts = np.repeat(start[None], num_chains, axis=0)
    correct_step = testing.gibbs_step_fn(CHAIN.conditional_log_probs, "systematic")
    correct_finals = testing.run_independent_chains(correct_step, starts, rng, num_sweeps)
    testing.goodness_of_fit_test(correct_finals, CHAIN, FALSE_FAIL_RATE).assert_passed()
    wrong_finals = testing.run_independent_chains(sampler.step_fn, starts, rng, num_sweeps)
    result = testing.goodness_of_fit_test(wrong_finals, CHAIN, FALSE_FAIL_RATE, wrong_tv)
    pooled_tv = 0.5 * np.sum(np.abs(result.pool(wrong_law) - result.pool(pi)))
    assert result.power_against_tv(pooled_tv) >= 0.999
    assert not result.passed, str(result)
    assert np.all(wrong_finals[:, -1] == start[-1])  # the frozen position, seen directly
