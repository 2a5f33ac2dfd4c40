"""Gibbs sampling: exact kernels of random scan (reversible) and systematic scan (stationary, not
reversible), a wrong conditional caught by the matrix, the step's token map, determinism, bad input."""

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from textsampling import markov
from textsampling.randomness import CounterGenerator
from textsampling.reference import gibbs
from textsampling.targets import FixedLengthBigram, PairwiseChain
from textsampling.targets.base import DiscreteTarget

EXACT = 1e-12


class TriangleTarget(DiscreteTarget):
    """A small sequence target defined here, independent of targets/sequences.py: V = 2, L = 3 with a
    three-way interaction (not a chain), conditionals by substitution."""

    vocab_size, length, state_shape = 2, 3, (3,)

    def __init__(self):
        self.table = np.log(np.arange(1, 9, dtype=np.float64))  # rho(x) = 1 + index of x in binary order

    def log_prob(self, states):
        states = self._as_states(states)
        return self.table[states @ np.array([4, 2, 1])]

    def enumerate_states(self):
        return np.array(list(itertools.product(range(2), repeat=3)))

    def conditional_log_probs(self, states, position):
        states = np.asarray(states)
        values = np.empty((states.shape[0], 2))
        for token in range(2):
            candidate = states.copy()
            candidate[:, position] = token
            values[:, token] = self.log_prob(candidate)
        return values - logsumexp(values, axis=1, keepdims=True)


def bigram_target():
    rng = np.random.default_rng(4)
    return FixedLengthBigram(rng.normal(size=3), rng.normal(size=(3, 4)) * 1.5, length=3)


def pairwise_target():
    rng = np.random.default_rng(8)
    return PairwiseChain(rng.normal(size=(3, 3)), rng.normal(size=(3, 3)) * 1.5)


TARGETS = [("triangle", TriangleTarget()), ("bigram", bigram_target()), ("pairwise", pairwise_target()),
           ("ising", PairwiseChain.ising(4, coupling=0.8, field=0.3))]


@pytest.mark.parametrize("name, target", TARGETS, ids=[t[0] for t in TARGETS])
def test_random_scan_kernel_is_stationary_and_reversible(name, target):
    matrix = gibbs.transition_matrix(target, "random")
    pi = target.probabilities()
    assert markov.stationarity_residual(matrix, pi) < EXACT
    assert markov.detailed_balance_residual(matrix, pi) < EXACT
    assert markov.is_irreducible(matrix)


@pytest.mark.parametrize("name, target", TARGETS, ids=[t[0] for t in TARGETS])
def test_systematic_scan_kernel_is_stationary_but_not_reversible(name, target):
    matrix = gibbs.transition_matrix(target, "systematic")
    pi = target.probabilities()
    assert markov.stationarity_residual(matrix, pi) < EXACT
    np.testing.assert_allclose(markov.stationary_distribution(matrix), pi, atol=1e-10)
    # Sweeping 0..L-1 is not its own time reversal (that sweeps L-1..0) on these coupled targets.
    assert markov.detailed_balance_residual(matrix, pi) > 1e-3


def test_a_wrong_conditional_shows_in_the_matrix():
    # Test of the test: the conditional at temperature 2 (flattened) is not pi's conditional, and
    # both scans built from it leave pi.
    target = bigram_target()

    def flattened(states, position):
        values = target.conditional_log_probs(states, position) / 2.0
        return values - logsumexp(values, axis=1, keepdims=True)

    pi = target.probabilities()
    for scan in gibbs.SCANS:
        matrix = gibbs.transition_matrix(target, scan, conditional_log_probs=flattened)
        assert markov.stationarity_residual(matrix, pi) > 1e-3


def test_step_draws_the_token_from_the_conditional_of_the_matrix():
    # With the position fixed by uniforms[0] (cell midpoint), a grid of 500 token uniforms lands on
    # each token with frequency within 2/500 of the site kernel K_i (inverse CDF, no randomness).
    target = bigram_target()
    grid = (np.arange(500) + 0.5) / 500
    for position in range(target.length):
        site = gibbs.site_matrix(target, position)
        for a in (0, 7, 19):
            x = target.states[a]
            counts = np.zeros(target.num_states)
            for u in grid:
                uniforms = [(position + 0.5) / target.length, u]
                new_state, info = gibbs.step(uniforms, gibbs.GibbsState(x), target.conditional_log_probs)
                assert info.position == position
                counts[target.state_index(new_state.x)[0]] += 1
            np.testing.assert_allclose(counts / grid.size, site[a], atol=4e-3)


def test_sweep_is_the_site_updates_in_order():
    target = pairwise_target()
    uniforms = np.array([0.31, 0.77, 0.05])
    x = np.array([2, 0, 1])
    swept, info = gibbs.sweep(uniforms, gibbs.GibbsState(x), target.conditional_log_probs)
    expected = x
    for position in range(3):
        expected = gibbs.update_position(uniforms[position], expected, position, target.conditional_log_probs)
    np.testing.assert_array_equal(swept.x, expected)
    np.testing.assert_array_equal(info.position, [0, 1, 2])
    np.testing.assert_array_equal(x, [2, 0, 1])  # the input state is not modified


@pytest.mark.parametrize("scan", gibbs.SCANS)
def test_counter_generator_reproduces_the_chain(scan):
    target = bigram_target()
    conditional = target.conditional_log_probs
    runs = [gibbs.sample(CounterGenerator(9, 2), [0, 0, 0], conditional, 200, scan=scan) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].states.x, runs[1].states.x)
    assert runs[0].states.x.shape == (200, 3) and not runs[0].interrupted
    head = gibbs.sample(CounterGenerator(9, 2), [0, 0, 0], conditional, 50, scan=scan)
    tail = gibbs.sample(CounterGenerator(9, 2), head.final_state.x, conditional, 150, first_step=50, scan=scan)
    np.testing.assert_array_equal(np.concatenate([head.states.x, tail.states.x]), runs[0].states.x)
    if scan == "random":
        # A random-scan step changes at most the position it reports.
        previous = np.vstack([[0, 0, 0], runs[0].states.x[:-1]])
        changed = previous != runs[0].states.x
        assert np.all(changed.sum(axis=1) <= 1)
        rows = np.flatnonzero(changed.any(axis=1))
        np.testing.assert_array_equal(np.argmax(changed[rows], axis=1), runs[0].infos.position[rows])
    else:
        # A sweep reports every position in turn and the tokens it wrote: the new sequence.
        np.testing.assert_array_equal(runs[0].infos.position, np.tile(np.arange(3), (200, 1)))
        np.testing.assert_array_equal(runs[0].infos.token, runs[0].states.x)


def test_keyboard_interrupt_returns_the_steps_completed():
    target = pairwise_target()
    calls = {"count": 0}

    def interrupted(states, position):
        calls["count"] += 1
        if calls["count"] == 26:
            raise KeyboardInterrupt
        return target.conditional_log_probs(states, position)

    trace = gibbs.sample(np.random.default_rng(0), [0, 1, 2], interrupted, 100, scan="random")
    assert trace.interrupted and trace.states.x.shape == (25, 3)
    np.testing.assert_array_equal(trace.final_state.x, trace.states.x[-1])


def test_bad_input():
    target = pairwise_target()
    with pytest.raises(ValueError, match="scan must be one of"):
        gibbs.transition_matrix(target, "diagonal")
    with pytest.raises(ValueError, match="scan must be one of"):
        gibbs.sample(np.random.default_rng(0), [0, 0, 0], target.conditional_log_probs, 5, scan="reverse")
    with pytest.raises(TypeError, match="rng"):
        gibbs.sample(None, [0, 0, 0], target.conditional_log_probs, 5)
    with pytest.raises(ValueError, match="x0 must be a non-empty 1-D integer sequence"):
        gibbs.sample(np.random.default_rng(0), [[0, 0, 0]], target.conditional_log_probs, 5)
    with pytest.raises(TypeError, match="conditional_log_probs must be callable"):
        gibbs.step([0.5, 0.5], gibbs.GibbsState(np.array([0, 0, 0])), None)

    def nan_conditional(states, position):
        return np.full((len(states), 3), np.nan)

    with pytest.raises(ValueError, match="conditional_log_probs at position"):
        gibbs.step([0.5, 0.5], gibbs.GibbsState(np.array([0, 0, 0])), nan_conditional)
    with pytest.raises(ValueError, match=r"conditional_log_probs must return shape \(N, V\)"):
        gibbs.step([0.5, 0.5], gibbs.GibbsState(np.array([0, 0, 0])), lambda s, i: np.zeros(3))
    with pytest.raises(ValueError, match="uniforms must have last dimension 3"):
        gibbs.sweep([0.5, 0.5], gibbs.GibbsState(np.array([0, 0, 0])), target.conditional_log_probs)
    with pytest.raises(ValueError, match="uniforms must have last dimension 3"):
        gibbs.step([0.5, 0.5], gibbs.init(np.array([0, 0, 0]), None), target.conditional_log_probs, scan="systematic")
    with pytest.raises(ValueError, match="scan must be one of"):
        gibbs.step([0.5, 0.5], gibbs.init(np.array([0, 0, 0]), None), target.conditional_log_probs, scan="reverse")
    with pytest.raises(ValueError, match="length"):
        gibbs.num_uniforms("systematic", 0)
