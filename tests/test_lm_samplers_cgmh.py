"""CGMH and sentence annealing (part 4) on the bigram oracle: exact kernels over variable lengths.

The state space is every (sentence, keyword placement) pair of length 1..4 over 3 tokens, listed by
``cgmh.enumerate_states``; the target is recomputed from ``cgmh.log_target`` of those states and
normalised here. ``cgmh.transition_matrix`` walks every move, position and candidate through the same
``move_outcomes`` that ``step`` uses, so these exact checks test the sampler's own code. The two
mistakes of published code are switched on to show that the same checks catch them.
"""

import numpy as np
import pytest
from scipy.special import logsumexp

from textsampling import markov
from textsampling.lm.oracle import BigramOracle
from textsampling.randomness import CounterGenerator
from textsampling.reference import cgmh, sentence_annealing
from textsampling.targets import PAD, BigramLM

EXACT = 1e-12


def _oracle(seed=1, vocab_size=3, max_length=4):
    rng = np.random.default_rng(seed)
    return BigramOracle(BigramLM(rng.normal(size=vocab_size), rng.normal(size=(vocab_size, vocab_size + 1)), max_length))


def _log_similarity(states):
    """A toy sim(x, c): each occurrence of token 1 multiplies the score by e^0.3."""
    return 0.3 * np.sum(states == 1, axis=1)


def _config(oracle, **kwargs):
    settings = dict(num_candidates=2, gamma=0.8, log_similarity_fn=_log_similarity, move_probabilities=(0.3, 0.45, 0.25))
    settings.update(kwargs)
    return cgmh.make_config(oracle, **settings)


def _exact(config, keywords):
    states, protected = cgmh.enumerate_states(config.model.num_tokens, keywords, config.max_length)
    log_rho = cgmh.log_target(config, states) / config.temperature
    return states, protected, np.exp(log_rho - logsumexp(log_rho))


@pytest.mark.parametrize("keywords", [[2], [2, 0], []])
def test_cgmh_kernel_satisfies_detailed_balance_over_lengths_with_keywords(keywords):
    config = _config(_oracle())
    states, protected, pi = _exact(config, keywords)
    matrix = cgmh.transition_matrix(config, states, protected)
    assert markov.detailed_balance_residual(matrix, pi) < EXACT
    assert markov.stationarity_residual(matrix, pi) < EXACT
    # Lengths really vary along the chain: mass moves between lengths 1 and 4.
    lengths = np.sum(states != PAD, axis=1)
    assert matrix[np.ix_(lengths == 2, lengths == 3)].sum() > 0.1


@pytest.mark.parametrize("mistake", [{"position_ratio": False}, {"candidate_set": "biased"}])
def test_published_cgmh_mistakes_break_detailed_balance(mistake):
    """Test of the test: each published deviation moves the stationary law away from the target."""
    config = _config(_oracle(), **mistake)
    states, protected, pi = _exact(config, [2])
    matrix = cgmh.transition_matrix(config, states, protected)
    assert markov.detailed_balance_residual(matrix, pi) > 1e-3
    assert markov.stationarity_residual(matrix, pi) > 1e-3


def test_omitted_position_ratio_is_invisible_without_keywords():
    """Why the tests need keywords: with none, n + 1 slots and m + 1 = n + 1 tokens cancel exactly."""
    config = _config(_oracle(), position_ratio=False)
    states, protected, pi = _exact(config, [])
    assert markov.detailed_balance_residual(cgmh.transition_matrix(config, states, protected), pi) < EXACT


def test_reverse_move_outside_the_candidate_set_has_probability_zero():
    oracle = _oracle()
    config = _config(oracle, num_candidates=1, log_similarity_fn=None)
    # Token after an empty prefix ranked last by p(x_1): replacing it at position 0 has no reverse move.
    worst_first = int(np.argmin(oracle.bigram.log_initial))
    state = cgmh.init(np.array([worst_first, 2, PAD, PAD]), np.array([False, True, False, False]), config)
    outcomes = cgmh.move_outcomes(state, "replace", 0.1, config)
    assert outcomes.position == 0 and worst_first not in outcomes.states[:, 0]
    assert np.all(outcomes.log_accept_ratios == -np.inf)
    new_state, info = cgmh.step([0.1, 0.1, 0.5, 1e-300], state, config)
    assert info.move == "replace" and not info.accepted and new_state is state


def test_cgmh_chain_keeps_keywords_in_order_and_caches_log_rho():
    oracle = _oracle(seed=4, vocab_size=5, max_length=6)
    config = cgmh.make_config(oracle, num_candidates=3, gamma=0.7)
    state = cgmh.keyword_state(config, [3, 1])
    trace = cgmh.sample(CounterGenerator(11, 0), state, config, 200)
    for x, mask, log_prob in zip(trace.states, trace.protected, trace.log_probs):
        assert x[mask].tolist() == [3, 1]
        assert log_prob == pytest.approx(cgmh.log_target(config, x[None])[0], abs=1e-12)
    assert len({int(np.sum(x != PAD)) for x in trace.states}) >= 3  # insert and delete both act
    assert set(trace.moves) == set(cgmh.MOVES) and 0 < trace.accepted.mean() < 1


@pytest.mark.parametrize(
    "kwargs, match",
    [({"num_candidates": 0}, "num_candidates"), ({"gamma": -1.0}, "gamma"),
     ({"move_probabilities": (0.5, 0.5, 0.5)}, "move_probabilities"), ({"candidate_set": "x"}, "candidate_set"),
     ({"max_length": 9}, "max_length")],
)
def test_cgmh_bad_settings_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cgmh.make_config(_oracle(), **kwargs)
    with pytest.raises(ValueError, match="do not fit"):
        cgmh.keyword_state(cgmh.make_config(_oracle()), [0, 1, 2, 0, 1])


# ----------------------------------------------------------------------------- annealing
def _anneal_config():
    """Seed and gamma chosen so that the argmax is a 3-token sentence, not the keyword alone."""
    return _config(_oracle(seed=3), num_candidates=3, gamma=0.3)


def test_tempered_kernel_is_exact_and_concentrates_on_the_argmax():
    config = _anneal_config()
    for temperature in (2.0, 0.02):
        tempered = sentence_annealing.at_temperature(config, temperature)
        states, protected, pi_t = _exact(tempered, [2])
        matrix = sentence_annealing.transition_matrix(config, states, protected, temperature)
        assert markov.detailed_balance_residual(matrix, pi_t) < EXACT
    argmax = int(np.argmax(cgmh.log_target(config, states)))
    assert pi_t[argmax] > 0.9  # at T = 0.02 the tempered law sits on the argmax


def test_annealing_reaches_the_exact_argmax():
    """Fixed seed; the argmax is read off the enumeration. A chain stuck at the start would fail."""
    config = _anneal_config()
    states, protected, _ = _exact(config, [2])
    log_rho = cgmh.log_target(config, states)
    best = int(np.argmax(log_rho))
    start = cgmh.keyword_state(config, [2])
    assert start.log_prob < log_rho[best] - 1e-6
    temperatures = sentence_annealing.geometric_schedule(3.0, 0.02, 400)
    result = sentence_annealing.anneal(CounterGenerator(5, 0), start, config, temperatures)
    np.testing.assert_array_equal(result.best_state.x, states[best])
    np.testing.assert_array_equal(result.best_state.protected, protected[best])
    assert result.best_state.log_prob == pytest.approx(log_rho[best], abs=1e-12)


def test_keyword_state_refuses_non_integer_or_negative_keywords():
    from textsampling.lm.oracle import BigramOracle
    from textsampling.targets import BigramLM

    oracle = BigramOracle(BigramLM.random(np.random.default_rng(0), vocab_size=4, max_length=4))
    config = cgmh.make_config(oracle, num_candidates=2)
    with pytest.raises(TypeError, match="keywords"):
        cgmh.keyword_state(config, [2.7])
    with pytest.raises(ValueError, match="keywords"):
        cgmh.keyword_state(config, [-1])
    assert cgmh.keyword_state(config, [2]).x[0] == 2
