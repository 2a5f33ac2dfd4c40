"""Each torch twin, on its own, passes the black-box checks of :mod:`textsampling.testing` — in float32.

The harness draws exact states from the target, applies one batched torch step (uniforms from the
harness's NumPy generator, cast to float32) and chi-square-tests the result against the target
(one-step invariance), Bowker-tests the pairs (reversibility), or tests the pairs against the
reference's exact transition matrix (transition law). Every check runs at the harness's false-fail
rate of 1e-4 with a fixed seed, so the file as a whole (about 25 checks) falsely fails with probability
below 3e-3 for a given seed — and, the seeds being fixed, deterministically passes or fails. A twin
with its Hastings term dropped must fail (the test of the test).
"""

import numpy as np
import pytest
import torch

from textsampling import targets, testing
from textsampling.reference import annealing as reference_annealing
from textsampling.reference import gibbs as reference_gibbs
from textsampling.reference import metropolis_hastings as reference_mh
from textsampling.reference import proposals
from textsampling.torch import annealing, gibbs, metropolis_hastings
from textsampling.torch import proposals as torch_proposals
from textsampling.torch.randomness import largest_below_one
from textsampling.torch.twins import twin_of

NUM_SAMPLES = 20_000
F32 = torch.float32


def _uniforms(rng, num_chains, num_uniforms):
    # The harness's NumPy generator; Generator.random may return 0, which (0, 1) refuses.
    # Clipped into (0, 1) *as float32*: 1e-300 rounds to 0.0 and u > 1 - 2**-25 to 1.0 in float32.
    uniforms = np.clip(rng.random((num_chains, num_uniforms)), np.finfo(np.float32).tiny, largest_below_one(F32))
    return torch.tensor(uniforms, dtype=F32)


def mh_step_fn(target, proposal, temperature=None):
    twin_target, twin_proposal = twin_of(target), twin_of(proposal)

    def step_fn(rng, states):
        x = torch.as_tensor(states, dtype=F32 if np.asarray(states).dtype.kind == "f" else torch.int64)
        state = metropolis_hastings.init(x, twin_target.log_prob)
        uniforms = _uniforms(rng, x.shape[0], metropolis_hastings.num_uniforms(twin_proposal))
        if temperature is None:
            new_state, _ = metropolis_hastings.step(uniforms, state, twin_target.log_prob, twin_proposal)
        else:
            new_state, _ = annealing.step(uniforms, state, twin_target.log_prob, twin_proposal, temperature=temperature)
        return new_state.x.numpy().astype(np.asarray(states).dtype)

    return step_fn


def gibbs_step_fn(target, scan):
    twin_target = twin_of(target)

    def step_fn(rng, states):
        x = torch.as_tensor(states, dtype=torch.int64)
        uniforms = _uniforms(rng, x.shape[0], gibbs.num_uniforms(scan, x.shape[1]))
        new_state, _ = gibbs.step(uniforms, gibbs.init(x, twin_target.conditional_log_probs),
                                  twin_target.conditional_log_probs, scan=scan)
        return new_state.x.numpy()

    return step_fn


def _bigram():
    rng = np.random.default_rng(3)
    return targets.FixedLengthBigram(rng.normal(size=4) * 1.5, rng.normal(size=(4, 5)) * 1.5, 3)


CATEGORICAL = targets.Categorical([0.0, 1.5, -0.5, -np.inf, 2.2, 0.7])
PAIRWISE = targets.PairwiseChain(
    np.random.default_rng(4).normal(size=(3, 3)), np.random.default_rng(5).normal(size=(3, 3)) * 1.5
)
KEYWORD = targets.KeywordTarget(_bigram(), [2], targets.TopicSimilarity([0], 1.0), gamma=0.8)
MIXTURE = targets.GaussianMixture([0.3, 0.7], [[-1.5, 0.0], [1.0, 1.0]], [[0.5, 1.0], [1.0, 0.5]], num_bins=6)

BIGRAM = _bigram()

# name -> (target, factory of the batched torch step function)
CASES = {
    "mh-categorical-uniform": (CATEGORICAL, lambda: mh_step_fn(CATEGORICAL, proposals.UniformCategoricalProposal(6))),
    "mh-categorical-ring": (CATEGORICAL, lambda: mh_step_fn(CATEGORICAL, proposals.RingStepProposal(6, 0.8))),
    "mh-categorical-independence": (
        CATEGORICAL,
        lambda: mh_step_fn(
            CATEGORICAL,
            proposals.IndependenceProposal(proposals.IndependentCategorical([1.0, 0.0, 0.0, 0.0, 0.5, -1.0])),
        ),
    ),
    "mh-bigram-single-site": (
        BIGRAM,
        lambda: mh_step_fn(BIGRAM, proposals.SingleSiteProposal(4, 3, np.random.default_rng(6).normal(size=(3, 4)))),
    ),
    "mh-keyword-single-site": (KEYWORD, lambda: mh_step_fn(KEYWORD, proposals.SingleSiteProposal(4, 3))),
    "mh-mixture-random-walk": (MIXTURE, lambda: mh_step_fn(MIXTURE, proposals.GaussianRandomWalkProposal(1.0, 2))),
    "annealing-pairwise-fixed-temperature": (
        PAIRWISE,
        lambda: mh_step_fn(PAIRWISE, proposals.SingleSiteProposal(3, 3), 1.0),
    ),
    "gibbs-bigram-random": (BIGRAM, lambda: gibbs_step_fn(BIGRAM, "random")),
    "gibbs-bigram-systematic": (BIGRAM, lambda: gibbs_step_fn(BIGRAM, "systematic")),
    "gibbs-pairwise-random": (PAIRWISE, lambda: gibbs_step_fn(PAIRWISE, "random")),
    "gibbs-keyword-systematic": (KEYWORD, lambda: gibbs_step_fn(KEYWORD, "systematic")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_twin_keeps_the_target_invariant(case):
    target, make_step_fn = CASES[case]
    rng = np.random.default_rng(sorted(CASES).index(case))
    testing.one_step_invariance_test(make_step_fn(), target, rng, NUM_SAMPLES, batched=True).assert_passed()


@pytest.mark.parametrize("case", ["mh-categorical-ring", "gibbs-pairwise-random", "mh-bigram-single-site"])
def test_float32_twin_is_reversible(case):
    target, make_step_fn = CASES[case]
    rng = np.random.default_rng(100 + sorted(CASES).index(case))
    testing.reversibility_test(make_step_fn(), target, rng, NUM_SAMPLES, batched=True).assert_passed()


class _RingWithoutHastings(torch_proposals.RingStepProposal):
    """A wrong twin: the ring proposal with its Hastings term dropped (the bug of part 4's published code)."""

    def propose(self, uniforms, x):
        y, log_q_ratio = super().propose(uniforms, x)
        return y, torch.zeros_like(log_q_ratio)


def test_a_twin_without_its_hastings_term_fails():
    # Strongly asymmetric proposal: the missing term moves far more than TV 0.05 of mass in one step.
    wrong = _RingWithoutHastings(6, 0.9)
    target = twin_of(CATEGORICAL)

    def step_fn(rng, states):
        x = torch.as_tensor(states, dtype=torch.int64)
        state = metropolis_hastings.init(x, target.log_prob)
        new_state, _ = metropolis_hastings.step(_uniforms(rng, x.shape[0], 2), state, target.log_prob, wrong)
        return new_state.x.numpy()

    result = testing.one_step_invariance_test(step_fn, CATEGORICAL, np.random.default_rng(7), NUM_SAMPLES, batched=True)
    assert not result.passed


def test_float32_rejection_twin_keeps_exact_samples():
    # Kept proposals are independent exact draws: goodness of fit at false-fail rate 1e-4.
    from textsampling.torch import rejection

    proposal = proposals.IndependentUniformSequences(4, 3)
    log_envelope = rejection.tightest_log_envelope(BIGRAM, proposal)
    result = rejection.sample(
        torch.Generator().manual_seed(8),
        twin_of(BIGRAM).log_prob,
        twin_of(proposal),
        log_envelope,
        20_000,
        num_chains=8,
    )
    kept = result.states[result.accepted].numpy()
    assert kept.shape[0] > 2_000  # acceptance rate Z / M is about 2.5% here
    testing.goodness_of_fit_test(kept, BIGRAM).assert_passed()


def test_float32_importance_twin_estimates_the_normaliser_without_bias():
    # Z-hat is unbiased: over 2,000 independent chains (runs) its mean is within 3.89 standard errors
    # of the exact Z (two-sided normal quantile of 1e-4; the CLT holds well, Z-hat being a mean of 50
    # bounded weights).
    from textsampling.torch import importance
    from textsampling.torch.randomness import CounterGenerator

    proposal = proposals.IndependentUniformSequences(4, 3)
    result = importance.sample(
        CounterGenerator(9, torch.arange(2_000)), twin_of(BIGRAM).log_prob, twin_of(proposal), 50
    )
    z_hat = torch.exp(result.log_normalizer_estimate.double()).numpy()
    exact = np.exp(BIGRAM.log_normalizer())
    standard_error = z_hat.std(ddof=1) / np.sqrt(z_hat.size)
    assert abs(z_hat.mean() - exact) < 3.89 * standard_error
    assert np.all(result.effective_sample_size.numpy() <= 50 + 1e-3)


def test_float32_categorical_twin_draws_exact_samples():
    # 20,000 inverse-CDF draws (torch's generator) pass goodness of fit at false-fail rate 1e-4.
    from textsampling.torch import categorical

    draws = categorical.sample(torch.Generator().manual_seed(10), twin_of(CATEGORICAL).logits, 20_000)
    testing.goodness_of_fit_test(draws.numpy(), CATEGORICAL).assert_passed()


TRANSITION_CASES = {
    # name -> (target, step function factory, exact kernel of the NumPy reference)
    "mh-categorical-ring": (
        CATEGORICAL,
        lambda: mh_step_fn(CATEGORICAL, proposals.RingStepProposal(6, 0.8)),
        lambda: reference_mh.transition_matrix(CATEGORICAL, proposals.RingStepProposal(6, 0.8)),
    ),
    "annealing-categorical-cold": (
        CATEGORICAL,
        lambda: mh_step_fn(CATEGORICAL, proposals.UniformCategoricalProposal(6), 0.5),
        lambda: reference_annealing.transition_matrix(CATEGORICAL, proposals.UniformCategoricalProposal(6), 0.5),
    ),
    "gibbs-pairwise-random": (
        PAIRWISE,
        lambda: gibbs_step_fn(PAIRWISE, "random"),
        lambda: reference_gibbs.transition_matrix(PAIRWISE, "random"),
    ),
    "gibbs-pairwise-systematic": (
        PAIRWISE,
        lambda: gibbs_step_fn(PAIRWISE, "systematic"),
        lambda: reference_gibbs.transition_matrix(PAIRWISE, "systematic"),
    ),
}


@pytest.mark.parametrize("case", sorted(TRANSITION_CASES))
def test_float32_twin_moves_as_the_reference_kernel_says(case):
    # Pairs (x0, x1) against pi_a P_ab of the reference's exact matrix, false-fail rate 1e-4.
    target, make_step_fn, make_matrix = TRANSITION_CASES[case]
    rng = np.random.default_rng(200 + sorted(TRANSITION_CASES).index(case))
    result = testing.transition_law_test(make_step_fn(), target, make_matrix(), rng, 40_000, batched=True)
    result.assert_passed()
