"""CGMH and sentence annealing (part 4) on the bigram oracle: exact kernels over sentences of 1..4 tokens.

The state space is every sentence of length 1..4 over 3 tokens that contains the keywords
(``cgmh.enumerate_sentences``); the target is ``cgmh.log_target`` of those sentences, normalised here,
and must equal the independent definition rho * chi / Z computed from the oracle directly.
``cgmh.transition_matrix`` walks every move, position and candidate through the same ``move_outcomes``
that ``step`` uses, so these exact checks test the sampler's own code. The published mistakes (and the
position-protecting rule this package used before) are switched on to show that the same checks catch them.
"""

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from textsampling import markov
from textsampling.lm.oracle import BigramOracle
from textsampling.randomness import CounterGenerator
from textsampling.reference import cgmh, sentence_annealing
from textsampling.reference.chain import Trace
from textsampling.targets import PAD, BigramLM

EXACT = 1e-12
MOVE_PROBABILITIES = (0.3, 0.45, 0.25)
#: 1, 2 and 3 keywords, a repeated one, and keywords of two pieces (which must stay contiguous).
KEYWORD_SETS = [[2], [2, 0], [2, 2], [2, 0, 1], [[2, 0]], [[2, 0], 1], [[0, 0]]]


def _oracle(seed=1, vocab_size=3, max_length=4):
    rng = np.random.default_rng(seed)
    bigram = BigramLM(rng.normal(size=vocab_size), rng.normal(size=(vocab_size, vocab_size + 1)), max_length)
    return BigramOracle(bigram)


def _log_similarity(states):
    """A toy sim(x, c): each occurrence of token 1 multiplies the score by e^0.3."""
    return 0.3 * np.sum(states == 1, axis=1)


def _config(oracle, keywords=(), **kwargs):
    settings = dict(
        num_candidates=2, gamma=0.8, log_similarity_fn=_log_similarity, move_probabilities=MOVE_PROBABILITIES
    )
    settings.update(kwargs)
    return cgmh.make_config(oracle, keywords, **settings)


def _contains(tokens, unit, continuation=()) -> int:
    """Whole-word occurrences: the pieces in a row, not followed by a piece that continues the word."""
    size = len(unit)
    return sum(
        tuple(tokens[s : s + size]) == tuple(unit) and (s + size == len(tokens) or tokens[s + size] not in continuation)
        for s in range(len(tokens) - size + 1)
    )


def _independent_law(oracle, keywords, gamma=0.8, temperature=1.0, continuation=()):
    """rho chi / Z over sentences, written out from the definition (not from cgmh): {sentence tuple: probability}."""
    units = [tuple(np.atleast_1d(k).tolist()) for k in keywords]
    log_rho = {}
    for length in range(1, oracle.max_length + 1):
        for tokens in itertools.product(range(oracle.num_tokens), repeat=length):
            if all(_contains(tokens, u, continuation) >= units.count(u) for u in units):
                row = np.full((1, oracle.max_length), PAD)
                row[0, :length] = tokens
                log_rho[tokens] = (gamma * oracle.sequence_log_probs(row)[0] + 0.3 * tokens.count(1)) / temperature
    values = np.array(list(log_rho.values()))
    return dict(zip(log_rho, np.exp(values - logsumexp(values))))


def _exact(config):
    states = cgmh.enumerate_sentences(config)
    log_rho = cgmh.log_target(config, states) / config.temperature
    return states, np.exp(log_rho - logsumexp(log_rho))


@pytest.mark.parametrize(
    "keywords, continuation",
    [(k, ()) for k in KEYWORD_SETS] + [(k, (1,)) for k in KEYWORD_SETS if 1 not in np.hstack(k)],
    ids=str,
)
def test_stationary_law_over_sentences_is_rho_chi_over_z(keywords, continuation):
    """Full candidate sets (K = V): the kernel is irreducible and its unique stationary law is rho chi / Z.

    With a continuation piece (token 1 plays ``##dom``; a keyword never starts with one), a keyword
    followed by it is part of a longer word and does not count.
    """
    oracle = _oracle()
    config = _config(oracle, keywords, num_candidates=oracle.num_tokens, continuation_tokens=continuation)
    states, pi = _exact(config)
    truth = _independent_law(oracle, keywords, continuation=continuation)
    assert len(truth) == states.shape[0]
    assert np.abs(pi - [truth[tuple(x[x != PAD].tolist())] for x in states]).max() < EXACT
    matrix = cgmh.transition_matrix(config, states)
    assert markov.is_irreducible(matrix)
    stationary = markov.stationary_distribution(matrix)
    assert markov.tv_distance(stationary, pi) < EXACT
    assert markov.detailed_balance_residual(matrix, pi) < EXACT


@pytest.mark.parametrize("keywords", KEYWORD_SETS + [[]], ids=str)
def test_top_k_kernel_satisfies_detailed_balance_over_sentences(keywords):
    """K = 2 < V: some sentences may not reach each other, but the kernel stays reversible w.r.t. rho chi / Z."""
    config = _config(_oracle(), keywords)
    states, pi = _exact(config)
    matrix = cgmh.transition_matrix(config, states)
    assert markov.detailed_balance_residual(matrix, pi) < EXACT
    assert markov.stationarity_residual(matrix, pi) < EXACT
    # Lengths really vary along the chain: the two longest lengths exchange mass.
    lengths = np.sum(states != PAD, axis=1)
    assert matrix[np.ix_(lengths == 3, lengths == 4)].sum() > 0.05


def test_keyword_order_is_free_and_the_chain_changes_it():
    """From "2 0" the chain reaches "0 2" (both keywords kept): order is not protected."""
    config = _config(_oracle(), [2, 0], num_candidates=3)
    states, _ = _exact(config)
    matrix = cgmh.transition_matrix(config, states)
    index = {tuple(x[x != PAD].tolist()): s for s, x in enumerate(states)}
    reach = np.linalg.matrix_power(matrix, 6)
    assert reach[index[(2, 0)], index[(0, 2)]] > 0


def test_multi_piece_keyword_is_never_split():
    """Keyword (2, 0) present once: no insert between its pieces, no replace or delete of a piece."""
    config = _config(_oracle(), [[2, 0]], num_candidates=3)
    state = cgmh.init(np.array([1, 2, 0, PAD]), config)
    np.testing.assert_array_equal(state.protected, [False, True, True, False])
    positions, slots = cgmh.edit_sites(config, state.x, state.protected)
    assert positions.tolist() == [0] and slots.tolist() == [0, 1, 3]
    next_states, _, _, log_alphas = cgmh.transition_paths(config, state)
    moved = next_states[log_alphas > -np.inf]
    assert moved.shape[0] > 0 and all(_contains(y[y != PAD].tolist(), (2, 0)) for y in moved)
    # With a second copy, either copy may go (one occurrence is enough for chi).
    spare = cgmh.init(np.array([2, 0, 2, 0]), config)
    assert not spare.protected.any()


def test_the_position_rule_is_exact_on_pairs_but_wrong_on_sentences():
    """The rule this package used before: pi(x, P) ∝ rho(x) on pairs, so the sentence law is ∝ N(x) rho(x)."""
    oracle = _oracle()
    config = _config(oracle, [2], num_candidates=3, keyword_rule="position")
    pairs, protected = cgmh.enumerate_placements(config)
    log_rho = cgmh.log_target(config, pairs)
    pi_pairs = np.exp(log_rho - logsumexp(log_rho))
    matrix = cgmh.transition_matrix(config, pairs, protected)
    assert markov.detailed_balance_residual(matrix, pi_pairs) < EXACT
    truth = _independent_law(oracle, [2])
    sentence_law = {}
    for x, p in zip(pairs, pi_pairs):
        key = tuple(x[x != PAD].tolist())
        sentence_law[key] = sentence_law.get(key, 0.0) + p
    tv = 0.5 * sum(abs(sentence_law.get(k, 0.0) - v) for k, v in truth.items())
    assert tv > 0.1  # measured 0.185 on this toy
    # It never changes keyword order either: from "2 0" with both protected, "0 2" is out of reach.
    two = _config(oracle, [2, 0], num_candidates=3, keyword_rule="position")
    pairs, protected = cgmh.enumerate_placements(two)
    assert not any(x[p].tolist() == [0, 2] for x, p in zip(pairs, protected))


@pytest.mark.parametrize("mistake", [{"position_ratio": False}, {"candidate_set": "biased"}])
def test_published_cgmh_mistakes_break_detailed_balance(mistake):
    """Test of the test: each published deviation moves the stationary law away from the target."""
    config = _config(_oracle(), [2], **mistake)
    states, pi = _exact(config)
    matrix = cgmh.transition_matrix(config, states)
    assert markov.detailed_balance_residual(matrix, pi) > 1e-3
    assert markov.stationarity_residual(matrix, pi) > 1e-3


def test_omitted_position_ratio_is_invisible_without_keywords():
    """Why the tests need keywords: with none, n + 1 slots and m + 1 = n + 1 tokens cancel exactly."""
    config = _config(_oracle(), [], position_ratio=False)
    states, pi = _exact(config)
    assert markov.detailed_balance_residual(cgmh.transition_matrix(config, states), pi) < EXACT


def test_reverse_move_outside_the_candidate_set_has_probability_zero():
    oracle = _oracle()
    config = _config(oracle, [2], num_candidates=1, log_similarity_fn=None)
    # Token after an empty prefix ranked last by p(x_1): replacing it at position 0 has no reverse move.
    worst_first = int(np.argmin(oracle.bigram.log_initial))
    state = cgmh.init(np.array([worst_first, 2, PAD, PAD]), config)
    outcomes = cgmh.move_outcomes(state, "replace", 0.1, config)
    assert outcomes.position == 0 and worst_first not in outcomes.states[:, 0]
    assert np.all(outcomes.log_accept_probs == -np.inf)
    new_state, info = cgmh.step([0.1, 0.1, 0.5, 1e-300], state, config)
    assert info.move == "replace" and not info.accepted and new_state is state


def test_cgmh_chain_keeps_every_keyword_and_caches_log_rho():
    oracle = _oracle(seed=4, vocab_size=5, max_length=6)
    config = cgmh.make_config(oracle, [3, [1, 4]], num_candidates=3, gamma=0.7)
    state = cgmh.keyword_state(config)
    trace = cgmh.sample(CounterGenerator(11, 0), state.x, config, 300)
    assert trace.states.x.shape == (300, config.max_length) and not trace.interrupted
    for x, mask, log_prob in zip(trace.states.x, trace.states.protected, trace.states.log_prob):
        tokens = x[x != PAD].tolist()
        assert _contains(tokens, (3,)) >= 1 and _contains(tokens, (1, 4)) >= 1
        np.testing.assert_array_equal(mask, cgmh.locked_positions(config.keywords, x)[0])
        assert log_prob == pytest.approx(cgmh.log_target(config, x[None])[0], abs=1e-12)
    assert len({int(np.sum(x != PAD)) for x in trace.states.x}) >= 3  # insert and delete both act
    assert set(trace.infos.move) == set(cgmh.MOVES) and 0 < trace.infos.accepted.mean() < 1


@pytest.mark.parametrize(
    "kwargs, match",
    [({"num_candidates": 0}, "num_candidates"), ({"gamma": -1.0}, "gamma"),
     ({"move_probabilities": (0.5, 0.5, 0.5)}, "move_probabilities"), ({"candidate_set": "x"}, "candidate_set"),
     ({"max_length": 9}, "max_length"), ({"keyword_rule": "x"}, "keyword_rule"),
     ({"keywords": [0, 1, 2, 0, 1]}, "do not fit"), ({"keywords": [[]]}, "non-empty")],
)
def test_cgmh_bad_settings_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cgmh.make_config(_oracle(), **kwargs)


def test_init_refuses_a_sentence_without_its_keywords_and_keyword_state_needs_keywords():
    config = _config(_oracle(), [2])
    with pytest.raises(ValueError, match="does not contain every keyword"):
        cgmh.init(np.array([0, 1, PAD, PAD]), config)
    with pytest.raises(ValueError, match="protected is only read"):
        cgmh.init(np.array([2, PAD, PAD, PAD]), config, protected=np.array([True, False, False, False]))
    with pytest.raises(TypeError, match="not a CGMHState"):
        cgmh.sample(CounterGenerator(0, 0), cgmh.init(np.array([2, PAD, PAD, PAD]), config), config, 3)
    with pytest.raises(ValueError, match="no keywords"):
        cgmh.keyword_state(_config(_oracle(), []))


# ----------------------------------------------------------------------------- annealing
def _anneal_config():
    """Seed and gamma chosen so that the argmax is a 3-token sentence, not the keyword alone."""
    return _config(_oracle(seed=3), [2], num_candidates=3, gamma=0.3)


def test_tempered_kernel_is_exact_and_concentrates_on_the_argmax():
    config = _anneal_config()
    for temperature in (2.0, 0.02):
        tempered = sentence_annealing.at_temperature(config, temperature)
        states, pi_t = _exact(tempered)
        matrix = sentence_annealing.transition_matrix(config, states, temperature)
        assert markov.detailed_balance_residual(matrix, pi_t) < EXACT
    argmax = int(np.argmax(cgmh.log_target(config, states)))
    assert pi_t[argmax] > 0.9  # at T = 0.02 the tempered law sits on the argmax


def test_annealing_reaches_the_exact_argmax():
    """Fixed seed; the argmax is read off the enumeration. A chain stuck at the start would fail."""
    config = _anneal_config()
    states, _ = _exact(config)
    log_rho = cgmh.log_target(config, states)
    best = int(np.argmax(log_rho))
    start = cgmh.keyword_state(config)
    assert start.log_prob < log_rho[best] - 1e-6
    temperatures = sentence_annealing.geometric_schedule(3.0, 0.02, 400)
    trace = sentence_annealing.sample(CounterGenerator(5, 0), start.x, config, 400, temperatures=temperatures)
    np.testing.assert_array_equal(trace.infos.temperature, temperatures)
    best_state = sentence_annealing.best(trace, start)
    np.testing.assert_array_equal(best_state.x, states[best])
    assert best_state.log_prob == pytest.approx(log_rho[best], abs=1e-12)


def test_keywords_refuse_non_integer_or_negative_tokens():
    oracle = BigramOracle(BigramLM.random(np.random.default_rng(0), vocab_size=4, max_length=4))
    with pytest.raises(TypeError, match="keywords"):
        cgmh.make_config(oracle, [2.7], num_candidates=2)
    with pytest.raises(ValueError, match="keywords"):
        cgmh.make_config(oracle, [-1], num_candidates=2)
    assert cgmh.keyword_state(cgmh.make_config(oracle, [2], num_candidates=2)).x[0] == 2


def test_best_is_the_first_highest_state_visited_and_the_start_counts():
    """``best`` on a hand-made trace: ties go to the earlier state, and a start as good as the best wins."""
    log_probs = np.array([-3.0, -1.0, -1.0, -2.0])
    x = np.array([[0, PAD], [1, PAD], [2, PAD], [3, PAD]])
    states = cgmh.CGMHState(x, log_probs, np.zeros_like(x, dtype=bool))
    trace = Trace(states, None, None, False)
    assert sentence_annealing.best(trace).x.tolist() == [1, PAD]
    worse_start = cgmh.CGMHState(np.array([4, PAD]), -5.0, np.zeros(2, dtype=bool))
    assert sentence_annealing.best(trace, worse_start).x.tolist() == [1, PAD]
    tied_start = worse_start._replace(log_prob=-1.0)
    assert sentence_annealing.best(trace, tied_start) is tied_start
    empty = Trace(cgmh.CGMHState(x[:0], log_probs[:0], states.protected[:0]), None, None, False)
    assert sentence_annealing.best(empty, tied_start) is tied_start
    with pytest.raises(ValueError, match="no step"):
        sentence_annealing.best(empty)


def test_sentence_annealing_sample_wants_one_temperature_per_step():
    config = _anneal_config()
    start = cgmh.keyword_state(config)
    with pytest.raises(ValueError, match="num_steps = 3"):
        sentence_annealing.sample(CounterGenerator(0, 0), start.x, config, 3, temperatures=[1.0, 0.5])
