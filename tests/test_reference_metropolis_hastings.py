"""Metropolis–Hastings: exact kernels (stationarity, detailed balance), the Hastings term that matters,
the acceptance rule, determinism and bad input."""

import numpy as np
import pytest
from scipy import stats

from textsampling import markov, randomness
from textsampling.randomness import CounterGenerator
from textsampling.reference import metropolis_hastings as mh
from textsampling.reference import proposals as pr
from textsampling.targets import Categorical, FixedLengthBigram, PairwiseChain

EXACT = 1e-12


def categorical_target():
    return Categorical([0.3, -1.0, 2.0, 0.5, -0.2, 1.0])


def bigram_target():
    rng = np.random.default_rng(4)
    initial = rng.normal(size=3)
    transition = rng.normal(size=(3, 4)) * 1.5  # column 3 is END
    return FixedLengthBigram(initial, transition, length=3)


def pairwise_target():
    rng = np.random.default_rng(8)
    return PairwiseChain(rng.normal(size=(3, 3)), rng.normal(size=(3, 3)) * 1.5)


class WithoutHastings:
    """A deliberately wrong proposal wrapper: the same moves, but the q-ratio is dropped (set to 0)."""

    def __init__(self, proposal):
        self.proposal = proposal
        self.num_uniforms = proposal.num_uniforms

    def propose(self, uniforms, x):
        return self.proposal.propose(uniforms, x)[0], 0.0

    def log_prob(self, y, x):
        return self.proposal.log_prob(y, x)

    def log_q_ratio(self, y, x):
        return 0.0


def cases():
    single_site_logits = np.array([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0], [0.0, -0.5, 0.3]])
    return [
        ("categorical-uniform", categorical_target(), pr.UniformCategoricalProposal(6)),
        ("categorical-ring", categorical_target(), pr.RingStepProposal(6, 0.85)),
        ("categorical-independence", categorical_target(),
         pr.IndependenceProposal(pr.IndependentCategorical([1.0, 0.0, -1.0, 0.0, 2.0, 0.0]))),
        ("bigram-single-site", bigram_target(), pr.SingleSiteProposal(3, 3, single_site_logits)),
        ("pairwise-single-site", pairwise_target(), pr.SingleSiteProposal(3, 3, single_site_logits[::-1])),
        ("pairwise-independence", pairwise_target(), pr.IndependenceProposal(pr.IndependentUniformSequences(3, 3))),
    ]


@pytest.mark.parametrize("name, target, proposal", cases(), ids=[c[0] for c in cases()])
def test_exact_kernel_is_stationary_reversible_and_irreducible(name, target, proposal):
    matrix = mh.transition_matrix(target, proposal)
    pi = target.probabilities()
    assert markov.stationarity_residual(matrix, pi) < EXACT
    assert markov.detailed_balance_residual(matrix, pi) < EXACT
    assert markov.is_irreducible(matrix)
    np.testing.assert_allclose(markov.stationary_distribution(matrix), pi, atol=1e-10)


@pytest.mark.parametrize("name, target, proposal", cases()[1:5:2], ids=["ring", "single-site"])
def test_dropping_the_hastings_term_breaks_stationarity(name, target, proposal):
    # Test of the test: the same asymmetric moves without log q(x|y) - log q(y|x) leave pi.
    matrix = mh.transition_matrix(target, WithoutHastings(proposal))
    pi = target.probabilities()
    assert markov.stationarity_residual(matrix, pi) > 1e-3
    assert markov.tv_distance(markov.stationary_distribution(matrix), pi) > 0.01


@pytest.mark.parametrize("name, target, proposal", cases()[:4], ids=[c[0] for c in cases()[:4]])
def test_step_uses_the_acceptance_of_the_matrix(name, target, proposal):
    # For every state and a spread of proposal uniforms, the step's log acceptance ratio equals
    # log(P[i, j] / q(j | i)) of the exact matrix, and the decision is log u < log alpha.
    matrix = mh.transition_matrix(target, proposal)
    rng = np.random.default_rng(1)
    for i, x in enumerate(target.states):
        state = mh.init(x, target.log_prob)
        for _ in range(15):
            uniforms = rng.random(mh.num_uniforms(proposal))
            new_state, info = mh.step(uniforms, state, target.log_prob, proposal)
            j = target.state_index(info.proposal)[0]
            if j != i:
                log_q = proposal.log_prob(info.proposal, x)
                assert np.exp(log_q + info.log_accept_prob) == pytest.approx(matrix[i, j], rel=1e-12, abs=1e-300)
            assert info.accepted == (np.log(uniforms[-1]) < info.log_accept_prob)
            expected = info.proposal if info.accepted else x
            np.testing.assert_array_equal(new_state.x, expected)
            assert new_state.log_prob == target.log_prob(new_state.x)[0]


def test_log_accept_ratio_conventions():
    assert mh.log_accept_ratio(0.0, 1.0, 0.5) == 0.0  # uphill: always accepted
    assert mh.log_accept_ratio(1.0, 0.0, 0.25) == pytest.approx(-0.75)
    assert mh.log_accept_ratio(0.0, -np.inf, 0.0) == -np.inf  # impossible proposal: rejected
    assert mh.log_accept_ratio(0.0, 1.0, -np.inf) == -np.inf  # impossible reverse move: rejected
    assert np.isnan(mh.log_accept_ratio(-np.inf, -np.inf, 0.0))  # undefined: NaN, i.e. rejected
    assert mh.log_accept_ratio(-np.inf, -5.0, 0.0) == 0.0  # leave an impossible start
    np.testing.assert_array_equal(mh.log_accept_ratio([0.0, 1.0], [1.0, 0.0], [0.0, 0.0]), [0.0, -1.0])


def test_nan_ratio_rejects_and_impossible_start_escapes():
    target = Categorical([0.0, -np.inf, 1.0])
    proposal = pr.UniformCategoricalProposal(3)
    # From the impossible state 1, proposing the impossible state 1: NaN ratio, rejected even for tiny u.
    state = mh.init(np.int64(1), target.log_prob)
    new_state, info = mh.step([0.5, 1e-300], state, target.log_prob, proposal)
    assert np.isnan(info.log_accept_prob) and not info.accepted and new_state.x == 1
    # From the impossible state 1, any possible proposal is accepted even for u close to 1.
    new_state, info = mh.step([0.9, 1 - 1e-12], state, target.log_prob, proposal)
    assert info.accepted and new_state.x == 2


def test_same_uniforms_same_step_and_counter_generator_reproduces_the_chain():
    target = bigram_target()
    proposal = pr.SingleSiteProposal(3, 3)
    state = mh.init(np.array([0, 1, 2]), target.log_prob)
    first = mh.step([0.3, 0.6, 0.2], state, target.log_prob, proposal)
    second = mh.step([0.3, 0.6, 0.2], state, target.log_prob, proposal)
    np.testing.assert_array_equal(first[0].x, second[0].x)
    assert first[1].log_accept_prob == second[1].log_accept_prob
    runs = [mh.sample(CounterGenerator(21, 5), [0, 1, 2], target.log_prob, proposal, 300) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].states.x, runs[1].states.x)
    np.testing.assert_array_equal(runs[0].infos.accepted, runs[1].infos.accepted)
    other = mh.sample(CounterGenerator(22, 5), [0, 1, 2], target.log_prob, proposal, 300)
    assert not np.array_equal(other.states.x, runs[0].states.x)
    # Continuing from step 100 reproduces the tail of the long run (uniforms depend on the step only).
    head = mh.sample(CounterGenerator(21, 5), [0, 1, 2], target.log_prob, proposal, 100)
    tail = mh.sample(CounterGenerator(21, 5), head.final_state.x, target.log_prob, proposal, 200, first_step=100)
    np.testing.assert_array_equal(np.concatenate([head.states.x, tail.states.x]), runs[0].states.x)


def test_sample_keeps_every_state_and_its_log_prob():
    target = categorical_target()
    trace = mh.sample(np.random.default_rng(0), 0, target.log_prob, pr.RingStepProposal(6, 0.7), 500)
    assert trace.states.x.shape == (500,) and not trace.interrupted
    np.testing.assert_array_equal(trace.states.log_prob, target.log_prob(trace.states.x))
    # A rejected step repeats the previous state; an accepted one moves by one around the ring.
    moves = (np.diff(np.concatenate([[0], trace.states.x])) % 6)
    np.testing.assert_array_equal(moves == 0, ~trace.infos.accepted)
    assert set(np.unique(moves[trace.infos.accepted])) <= {1, 5}
    assert trace.final_state.x == trace.states.x[-1]


def test_keyboard_interrupt_returns_the_steps_completed():
    target = categorical_target()
    calls = {"count": 0}

    def interrupted_log_prob(states):
        calls["count"] += 1
        if calls["count"] == 41:  # init is call 1, step t is call t + 2: interrupt during step 39
            raise KeyboardInterrupt
        return target.log_prob(states)

    trace = mh.sample(np.random.default_rng(0), 0, interrupted_log_prob, pr.UniformCategoricalProposal(6), 100)
    assert trace.interrupted and trace.states.x.shape == (39,)
    assert trace.final_state.x == trace.states.x[-1]


def test_gaussian_random_walk_on_a_continuous_target_is_deterministic_given_uniforms():
    def log_prob(states):
        return -0.5 * np.asarray(states, dtype=np.float64) ** 2

    proposal = pr.GaussianRandomWalkProposal(1.0)
    state = mh.init(0.5, log_prob)
    new_state, info = mh.step([0.2, 0.3, 0.9], state, log_prob, proposal)
    y = 0.5 + randomness.normal_from_uniforms(0.2, 0.3)
    assert info.proposal == pytest.approx(y)
    assert info.log_accept_prob == pytest.approx(min(0.0, -0.5 * y**2 + 0.5 * 0.25))
    assert info.accepted == (np.log(0.9) < info.log_accept_prob)


def mixture_log_prob(states):
    # 0.3 N(-2, 0.5^2) + 0.7 N(1, 1), up to the constant sqrt(2 pi).
    # (Closed form in NumPy: a frozen scipy distribution per call would dominate the run time.)
    states = np.asarray(states, dtype=np.float64)
    first = np.log(0.3) - 0.5 * ((states + 2.0) / 0.5) ** 2 - np.log(0.5)
    second = np.log(0.7) - 0.5 * (states - 1.0) ** 2
    return np.logaddexp(first, second)


def mixture_cdf(values):
    return 0.3 * stats.norm(-2.0, 0.5).cdf(values) + 0.7 * stats.norm(1.0, 1.0).cdf(values)


def one_step_from_exact_draws(accept_everything=False):
    # 5,000 exact draws from the mixture, each moved by one Gaussian random-walk MH step.
    rng = np.random.default_rng(17)
    starts = np.where(rng.random(5000) < 0.3, rng.normal(-2.0, 0.5, 5000), rng.normal(1.0, 1.0, 5000))
    proposal = pr.GaussianRandomWalkProposal(1.5)
    moved = np.empty_like(starts)
    for n, x in enumerate(starts):
        uniforms = rng.random(mh.num_uniforms(proposal))
        if accept_everything:
            uniforms[-1] = 1e-300  # log u below every finite log alpha: the wrong sampler accepts all
        moved[n] = mh.step(uniforms, mh.init(x, mixture_log_prob), mixture_log_prob, proposal)[0].x
    return moved


def test_one_gaussian_random_walk_step_keeps_a_continuous_target():
    # One-step invariance: if x ~ pi then one MH step leaves x ~ pi. Kolmogorov-Smirnov against the
    # exact mixture CDF, fixed seed, false-fail rate 1e-4.
    assert stats.kstest(one_step_from_exact_draws(), mixture_cdf).pvalue > 1e-4


def test_one_step_invariance_catches_a_sampler_that_accepts_everything():
    # Test of the test: accepting every proposal adds N(0, 1.5^2) noise, which the same check rejects.
    assert stats.kstest(one_step_from_exact_draws(accept_everything=True), mixture_cdf).pvalue < 1e-4


def test_bad_input():
    target = categorical_target()
    proposal = pr.UniformCategoricalProposal(6)
    with pytest.raises(TypeError, match="rng"):
        mh.sample(0, 0, target.log_prob, proposal, 10)
    with pytest.raises(ValueError, match="num_steps"):
        mh.sample(np.random.default_rng(0), 0, target.log_prob, proposal, -1)
    with pytest.raises(TypeError, match="log_prob_fn must be callable"):
        mh.init(0, "not a function")
    with pytest.raises(ValueError, match="log_prob_fn returned \\+inf"):
        mh.init(0, lambda states: np.full(len(states), np.inf))
    with pytest.raises(ValueError, match="log_prob_fn must return one value per state"):
        mh.init(0, lambda states: np.zeros(3))
    with pytest.raises(ValueError, match="uniforms must have last dimension 2"):
        mh.step([0.5], mh.init(0, target.log_prob), target.log_prob, proposal)
    with pytest.raises(ValueError, match="open interval"):
        mh.step([0.5, 1.0], mh.init(0, target.log_prob), target.log_prob, proposal)
    with pytest.raises(TypeError, match="discrete"):
        mh.transition_matrix(target, pr.GaussianRandomWalkProposal(1.0))
    with pytest.raises(ValueError, match="log_probs must have shape"):
        mh.transition_matrix_from_log_probs(target.states, np.zeros(3), proposal)
    with pytest.raises(ValueError, match="outside the enumerated states"):
        mh.transition_matrix(target, pr.UniformCategoricalProposal(8))
    with pytest.raises(ValueError, match="single chain"):
        mh.sample(CounterGenerator(0, [0, 1]), 0, target.log_prob, proposal, 10)


def test_a_nan_start_is_an_error_not_a_frozen_chain():
    # A NaN current log-density would reject every move forever; the start is refused instead.
    import torch

    from textsampling.reference import annealing
    from textsampling.torch import metropolis_hastings as mh_twin

    def nan_at_zero(states):
        return np.where(np.asarray(states) == 0, np.nan, 0.0)

    with pytest.raises(ValueError, match="x0"):
        mh.init(0, nan_at_zero)
    with pytest.raises(ValueError, match="x0"):
        proposal = pr.UniformCategoricalProposal(3)
        annealing.sample(np.random.default_rng(0), 0, nan_at_zero, proposal, 1, temperatures=[1.0])
    with pytest.raises(ValueError, match="NaN"):
        mh_twin.init(torch.tensor([0, 1]), lambda x: torch.where(x == 0, torch.nan, 0.0).double())
