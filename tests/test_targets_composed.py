"""The keyword target of part 1, log rho = gamma log p + log sim + log chi, against exact answers.

Expected values come from the definition written out in Python loops, or from an independent route
(inclusion–exclusion over keyword sets with restricted matrix powers); none is typed in.
"""

import itertools

import numpy as np
import pytest

from textsampling.targets import PAD, BigramLM, KeywordTarget, PairwiseChain, TopicSimilarity
from textsampling.testing.statistics import chi_square_counts_test


def _bigram(seed=0, vocab_size=4, max_length=3, min_length=1):
    rng = np.random.default_rng(seed)
    return BigramLM(
        rng.normal(size=vocab_size), rng.normal(size=(vocab_size, vocab_size + 1)), max_length, min_length
    )


def _loop_topic_score(state, topic, weight):
    tokens = []
    for token in state:
        if token == PAD:
            break
        tokens.append(int(token))
    if not tokens:
        return 0.0
    return weight * sum(token in topic for token in tokens) / len(tokens)


def _loop_contains(state, keywords):
    tokens = []
    for token in state:
        if token == PAD:
            break
        tokens.append(int(token))
    return all(keyword in tokens for keyword in keywords)


@pytest.mark.parametrize("gamma", [1.0, 0.5])
def test_log_prob_is_the_definition(gamma):
    base = _bigram()
    similarity = TopicSimilarity([1, 3], weight=2.0)
    target = KeywordTarget(base, [2, 0], log_similarity=similarity, gamma=gamma)
    states = target.states
    expected = []
    for state, log_p in zip(states, base.log_prob(states)):
        if _loop_contains(state, [2, 0]):
            expected.append(gamma * log_p + _loop_topic_score(state, {1, 3}, 2.0))
        else:
            expected.append(-np.inf)
    np.testing.assert_allclose(target.log_prob(states), expected, rtol=0, atol=1e-12)
    assert target.state_shape == base.state_shape and target.num_states == base.num_states
    # the constraint has bite on this space, and leaves some states
    assert 0 < np.sum(np.isfinite(expected)) < len(states)


def _restricted_mass(base, allowed):
    """Sum of p(x) over sentences of length min..max using only tokens in ``allowed`` (matrix powers)."""
    allowed = np.asarray(sorted(allowed), dtype=int)
    if allowed.size == 0:
        return 0.0
    initial = np.exp(base.log_initial[allowed])
    block = np.exp(base.log_transition[np.ix_(allowed, allowed)])
    end = np.exp(base.log_transition[allowed, base.vocab_size])
    return sum(
        initial @ np.linalg.matrix_power(block, n - 1) @ end
        for n in range(base.min_length, base.max_length + 1)
    )


def test_normaliser_by_inclusion_exclusion():
    # Z(c) = P(all keywords occur) = sum over keyword subsets S of (-1)^|S| P(no token of S occurs).
    base = _bigram(seed=1, vocab_size=4, max_length=4, min_length=2)
    keywords = [3, 1]
    target = KeywordTarget(base, keywords)
    vocab = set(range(4))
    expected = sum(
        (-1) ** size * _restricted_mass(base, vocab - set(subset))
        for size in range(len(keywords) + 1)
        for subset in itertools.combinations(keywords, size)
    )
    np.testing.assert_allclose(np.exp(target.log_normalizer()), expected, rtol=1e-12)


def test_normalised_target_is_the_base_conditioned_on_the_keywords():
    base = _bigram(seed=2)
    target = KeywordTarget(base, [1])
    keep = np.array([_loop_contains(s, [1]) for s in base.states])
    conditioned = base.probabilities() * keep / np.sum(base.probabilities() * keep)
    np.testing.assert_allclose(target.probabilities(), conditioned, atol=1e-15)
    np.testing.assert_array_equal(target.satisfies_keywords(base.states), keep)
    np.testing.assert_array_equal(target.log_constraint(base.states), np.where(keep, 0.0, -np.inf))


def test_keyword_after_pad_does_not_count_and_repeats_count_once():
    base = _bigram(max_length=3)
    target = KeywordTarget(base, [2, 2])
    assert target.keywords == (2,)
    np.testing.assert_array_equal(
        target.satisfies_keywords([[2, PAD, PAD], [0, PAD, 2], [0, 1, 2], [PAD, PAD, PAD]]),
        [True, False, True, False],
    )
    assert target.log_prob([[0, PAD, 2]])[0] == -np.inf


def test_conditional_forces_the_only_copy_of_a_keyword():
    # When x_i is the only occurrence of a keyword, p(x_i = v | x_-i) is a point mass on it.
    base = _bigram(seed=3, vocab_size=3, max_length=3)
    fixed = base.fixed_length(3)
    target = KeywordTarget(fixed, [2])
    conditional = np.exp(target.conditional_log_probs([[0, 2, 1]], 1))[0]
    np.testing.assert_array_equal(conditional, [0.0, 0.0, 1.0])
    # with the keyword elsewhere, the constraint is inactive and the base's conditional returns
    np.testing.assert_allclose(
        target.conditional_log_probs([[2, 0, 1]], 1), fixed.conditional_log_probs([[2, 0, 1]], 1), atol=1e-12
    )


def test_conditionals_are_ratios_of_the_enumerated_table():
    rng = np.random.default_rng(4)
    base = PairwiseChain(rng.normal(size=(3, 3)), rng.normal(size=(3, 3)))
    target = KeywordTarget(base, [0, 2], log_similarity=TopicSimilarity([1], weight=-1.0), gamma=0.7)
    table = target.probabilities().reshape(3, 3, 3)
    for state in ([0, 1, 2], [1, 0, 2], [2, 2, 0]):
        for position in range(3):
            index = list(state)
            index[position] = slice(None)
            column = table[tuple(index)]
            log_conditional = target.conditional_log_probs([state], position)[0]
            if column.sum() > 0:
                np.testing.assert_allclose(np.exp(log_conditional), column / column.sum(), atol=1e-12)
            else:
                assert np.all(log_conditional == -np.inf)


def test_argmax_and_marginals():
    base = _bigram(seed=6)
    target = KeywordTarget(base, [0, 3], log_similarity=TopicSimilarity([3]))
    log_rho = target.log_prob(target.states)
    best = target.states[int(np.argmax(log_rho))]
    np.testing.assert_array_equal(target.argmax(), best)
    assert _loop_contains(target.argmax(), [0, 3])
    # P(x_1 = v) from the enumerated probabilities by a loop
    probabilities = target.probabilities()
    expected = np.zeros(4)
    for state, probability in zip(target.states, probabilities):
        expected[state[0]] += probability
    np.testing.assert_allclose(target.marginal(0), expected, atol=1e-14)


def test_exact_sampling_goodness_of_fit():
    # Pearson chi-square over the states of positive probability (textsampling.testing's test: cells
    # of expected count < 20 pooled by summing their own expectations, states of probability exactly
    # 0 left out and a draw there failing outright, so no cell is ever 0/0, whatever the summation
    # order); 30,000 draws, fixed seed; false-fail rate 1e-4.
    target = KeywordTarget(_bigram(seed=7, vocab_size=3), [1], log_similarity=TopicSimilarity([0, 2], 1.5))
    draws = target.sample_exact(np.random.default_rng(23), 30_000)
    assert np.all(target.satisfies_keywords(draws))
    probabilities = target.probabilities()
    assert np.any(probabilities == 0)  # the keyword constraint excludes states: the case that broke
    result = chi_square_counts_test(target.state_index(draws), probabilities, false_fail_rate=1e-4)
    assert result.zero_probability_hits == 0
    assert np.isfinite(result.statistic)
    result.assert_passed()


def test_topic_similarity_is_the_topic_fraction():
    similarity = TopicSimilarity([1, 4], weight=-0.5)
    rng = np.random.default_rng(8)
    states = rng.integers(0, 5, size=(40, 4))
    states[::3, 2:] = PAD
    states[5] = PAD  # the empty sentence scores 0
    states[7, 1] = PAD  # a token after PAD does not count
    expected = [_loop_topic_score(s, {1, 4}, -0.5) for s in states]
    np.testing.assert_allclose(similarity(states), expected, atol=1e-15)


def test_no_keywords_and_no_similarity_is_the_tempered_base():
    base = _bigram(seed=9)
    target = KeywordTarget(base, [], gamma=0.5)
    np.testing.assert_allclose(target.log_prob(base.states), 0.5 * base.log_prob(base.states))
    tempered = np.exp(0.5 * base.log_prob(base.states))
    np.testing.assert_allclose(target.probabilities(), tempered / tempered.sum(), atol=1e-15)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(keywords=[4]), ValueError, r"keywords must be token ids in 0\.\.3"),
        (dict(keywords=[-1]), ValueError, r"keywords must be token ids in 0\.\.3"),
        (dict(keywords=[1.0]), TypeError, "keywords must hold integer token ids"),
        (dict(keywords=[[0, 1]]), ValueError, "keywords must be a 1-D list"),
        (dict(keywords=[0, 1, 2, 3]), ValueError, "keywords holds 4 distinct tokens but sentences have at most 3"),
        (dict(gamma=0.0), ValueError, "gamma must be a finite number > 0"),
        (dict(gamma=-1.0), ValueError, "gamma must be a finite number > 0"),
        (dict(gamma=np.nan), ValueError, "gamma must be a finite number > 0"),
        (dict(log_similarity="cosine"), TypeError, "log_similarity must be a callable"),
        (dict(base=np.zeros(3)), TypeError, "base must be a SequenceTarget"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    arguments = dict(base=_bigram(), keywords=[0])
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        KeywordTarget(**arguments)


def test_bad_similarity_outputs_and_topic_arguments():
    base = _bigram()
    with pytest.raises(ValueError, match=r"log_similarity must return one value per state"):
        KeywordTarget(base, [0], log_similarity=lambda states: np.zeros(2)).log_prob(base.states)
    with pytest.raises(ValueError, match="log_similarity returned NaN"):
        KeywordTarget(base, [0], log_similarity=lambda s: np.full(len(s), np.nan)).log_prob(base.states)
    with pytest.raises(ValueError, match="topic_tokens must hold at least one"):
        TopicSimilarity([])
    with pytest.raises(ValueError, match="topic_tokens must be token ids >= 0"):
        TopicSimilarity([1, -2])
    with pytest.raises(TypeError, match="topic_tokens must hold integer"):
        TopicSimilarity([0.5])
    with pytest.raises(ValueError, match="weight must be a finite number"):
        TopicSimilarity([1], weight=np.inf)
    with pytest.raises(TypeError, match="weight must be a finite number"):
        TopicSimilarity([1], weight="high")


def test_keywords_the_base_never_produces_give_an_empty_support():
    transition = np.zeros((3, 4))
    transition[:, 2] = -np.inf  # token 2 never follows anything ...
    base = BigramLM([0.0, 0.0, -np.inf], transition, 3)  # ... and never starts a sentence
    target = KeywordTarget(base, [2])
    with pytest.raises(ValueError, match="empty support"):
        target.log_normalizer()
