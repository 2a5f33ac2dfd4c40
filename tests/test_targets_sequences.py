"""Sequence targets (bigram LM with END, fixed-length bigram, pairwise chain) against exact answers.

Every expected value is recomputed here by an independent route — a plain Python loop over the
definition, matrix powers, transfer matrices, forward–backward messages — never typed in.
"""

import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from textsampling.targets import PAD, BigramLM, FixedLengthBigram, PairwiseChain, sequences
from textsampling.testing.statistics import chi_square_counts_test


def _random_bigram(seed=0, vocab_size=3, max_length=3, min_length=1, with_zeros=True):
    rng = np.random.default_rng(seed)
    initial = rng.normal(size=vocab_size)
    transition = rng.normal(size=(vocab_size, vocab_size + 1))
    if with_zeros:
        # Impossible transitions on purpose: -inf must flow through as probability zero.
        transition[0, 1] = -np.inf
        transition[vocab_size - 1, vocab_size] = -np.inf  # the last token never ends a sentence
    return BigramLM(initial, transition, max_length, min_length=min_length)


def _loop_log_prob(bigram, sequence):
    """log p(x_1..x_n, END) by the definition, one term at a time (softmax written out)."""
    log_initial = bigram.initial_logits - logsumexp(bigram.initial_logits)
    total = log_initial[sequence[0]]
    for previous, token in zip(sequence[:-1], sequence[1:]):
        row = bigram.transition_logits[previous]
        total += row[token] - logsumexp(row)
    row = bigram.transition_logits[sequence[-1]]
    return total + row[-1] - logsumexp(row)


def _assert_closed_form_is_the_definition(target, states, positions, conditional=None):
    """Closed form == brute force wherever the conditional exists (rho(x_-i) > 0).

    Elsewhere the definition is -inf everywhere and the closed form is the local (Markov) formula:
    a normalised row or, for rows that are not states of the space, -inf. Returns how many rows had
    no conditional, so a caller can demand that the case was exercised.
    """
    conditional = target.conditional_log_probs if conditional is None else conditional
    closed = conditional(states, positions)
    brute = target.brute_force_conditional_log_probs(states, positions)
    exists = np.isfinite(brute).any(axis=1)
    np.testing.assert_allclose(closed[exists], brute[exists], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.isinf(closed[exists]), np.isinf(brute[exists]))
    normalised = logsumexp(closed[~exists], axis=1)
    assert np.all((np.abs(normalised) < 1e-12) | (normalised == -np.inf))
    return int(np.sum(~exists))


# ----------------------------------------------------------------------------- BigramLM
def test_bigram_log_prob_matches_the_definition_on_every_state():
    bigram = _random_bigram(min_length=2)
    states = bigram.states
    expected = []
    for state in states:
        sequence = [int(t) for t in state if t != PAD]
        expected.append(_loop_log_prob(bigram, sequence))
    np.testing.assert_allclose(bigram.log_prob(states), expected, rtol=0, atol=1e-12)
    # every length in the window, each once, PAD only at the right
    lengths = bigram.lengths(states)
    assert states.shape == (3**2 + 3**3, 3)
    assert np.array_equal(np.bincount(lengths), [0, 0, 9, 27])
    assert np.all((states == PAD) == (np.arange(3)[None, :] >= lengths[:, None]))


def test_bigram_normaliser_by_matrix_powers_and_forward_recursion():
    bigram = _random_bigram(vocab_size=4, max_length=4, min_length=2)
    # P(length = n) = p_1^T A^{n-1} e with A the token-to-token block and e the END column.
    p_initial = np.exp(bigram.initial_logits - logsumexp(bigram.initial_logits))
    rows = np.exp(bigram.transition_logits - logsumexp(bigram.transition_logits, axis=1, keepdims=True))
    token_block, end_column = rows[:, :4], rows[:, 4]
    by_powers = [p_initial @ np.linalg.matrix_power(token_block, n - 1) @ end_column for n in range(1, 5)]
    np.testing.assert_allclose(np.exp(bigram.length_log_probs()), by_powers, rtol=1e-12)
    np.testing.assert_allclose(np.exp(bigram.log_normalizer()), sum(by_powers[1:]), rtol=1e-12)
    # cut off at max_length, so the total is below one, as documented
    assert np.exp(bigram.log_normalizer()) < 1


def test_bigram_malformed_states_have_probability_zero():
    bigram = _random_bigram(min_length=2)
    bad = np.array(
        [
            [0, PAD, 1],  # a token after PAD
            [0, 3, PAD],  # a token outside 0..V-1
            [0, -2, PAD],  # a negative non-PAD value
            [1, PAD, PAD],  # length 1 < min_length
            [PAD, PAD, PAD],  # empty
            [2, 2, PAD],  # possible length, but the last token can never end a sentence
            [0, 1, PAD],  # an impossible transition
        ]
    )
    assert np.all(bigram.log_prob(bad) == -np.inf)
    # length 1 is outside the window but the language model itself gives it a probability
    assert np.isfinite(bigram.sequence_log_probs(bad[3:4]))[0]
    np.testing.assert_array_equal(bigram.lengths(bad), [1, 2, 2, 1, 0, 2, 2])


def test_next_token_log_probs_compose_to_the_sequence_log_prob():
    bigram = _random_bigram(vocab_size=3, max_length=4)
    states = bigram.states
    lengths = bigram.lengths(states)
    total = np.zeros(len(states))
    for t in range(bigram.length + 1):
        prefix = np.where(np.arange(bigram.length)[None, :] < np.minimum(lengths, t)[:, None], states, PAD)
        next_log_probs = bigram.next_token_log_probs(prefix)  # (N, V + 1)
        np.testing.assert_allclose(logsumexp(next_log_probs, axis=1), 0.0, atol=1e-12)
        # the outcome at step t: the token x_{t+1}, or END right after the last token
        active = t <= lengths
        outcome = np.where(t < lengths, states[:, min(t, bigram.length - 1)], bigram.end_token)
        total[active] += next_log_probs[np.flatnonzero(active), outcome[active]]
    np.testing.assert_allclose(total, bigram.sequence_log_probs(states), atol=1e-12)
    # the empty prefix cannot end; prefixes of any width are accepted
    assert bigram.next_token_log_probs(np.full((1, 2), PAD))[0, -1] == -np.inf
    np.testing.assert_allclose(
        bigram.next_token_log_probs(np.zeros((1, 1), dtype=int)), bigram.log_transition[[0]]
    )


def test_variable_length_conditional_agrees_with_the_fixed_length_closed_form():
    bigram = _random_bigram(vocab_size=3, max_length=3)
    states, lengths = bigram.states, bigram.lengths(bigram.states)
    for n in range(1, 4):
        fixed = bigram.fixed_length(n)
        rows = states[lengths == n][:, :n]
        for position in range(n):
            variable = bigram.conditional_log_probs(states[lengths == n], position)
            exists = np.isfinite(variable).any(axis=1)
            np.testing.assert_allclose(
                variable[exists], fixed.conditional_log_probs(rows, position)[exists], atol=1e-12
            )
    # slot after the first PAD: no token can go there
    assert np.all(bigram.conditional_log_probs(np.array([[0, PAD, PAD]]), 2) == -np.inf)


def test_fixed_length_is_the_bigram_conditioned_on_its_length():
    bigram = _random_bigram(vocab_size=3, max_length=3)
    fixed = bigram.fixed_length(3)
    assert isinstance(fixed, FixedLengthBigram) and fixed.state_shape == (3,)
    full = bigram.lengths(bigram.states) == 3
    conditioned = bigram.probabilities()[full] / bigram.probabilities()[full].sum()
    # both enumerate length-3 sequences lexicographically
    np.testing.assert_array_equal(bigram.states[full], fixed.states)
    np.testing.assert_allclose(fixed.probabilities(), conditioned, rtol=1e-12)
    np.testing.assert_allclose(fixed.log_normalizer(), bigram.length_log_probs()[2], atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_fixed_length_closed_form_conditionals_equal_brute_force(seed):
    bigram = _random_bigram(seed=seed, vocab_size=4, max_length=3)
    fixed = bigram.fixed_length(3)
    states = fixed.states
    without_conditional = 0
    for position in range(3):
        without_conditional += _assert_closed_form_is_the_definition(fixed, states, position)
    # the -inf transitions of _random_bigram leave some x_-i with no conditional: the case is covered
    assert without_conditional > 0
    # per-row positions, and the token at the position is ignored even when it is not a token (masked)
    positions = np.arange(len(states)) % 3
    masked = states.copy()
    masked[np.arange(len(states)), positions] = 99
    np.testing.assert_array_equal(
        fixed.conditional_log_probs(masked, positions), fixed.conditional_log_probs(states, positions)
    )
    _assert_closed_form_is_the_definition(fixed, states, positions)
    # an out-of-range neighbour: no conditional, both say -inf everywhere
    assert np.all(fixed.conditional_log_probs([[0, 7, 1]], 0) == -np.inf)
    assert np.all(fixed.brute_force_conditional_log_probs([[0, 7, 1]], 0) == -np.inf)


def test_fixed_length_conditional_is_the_ratio_of_joint_probabilities():
    # p(x_i = v | x_-i) = pi(x with v) / sum_w pi(x with w), read off the enumerated table
    fixed = _random_bigram(seed=3, vocab_size=3, max_length=3).fixed_length(3)
    table = fixed.probabilities().reshape(3, 3, 3)  # lexicographic order = C order
    state = np.array([[2, 0, 1]])
    np.testing.assert_allclose(
        np.exp(fixed.conditional_log_probs(state, 1))[0], table[2, :, 1] / table[2, :, 1].sum()
    )
    np.testing.assert_allclose(
        np.exp(fixed.conditional_log_probs(state, 2))[0], table[2, 0, :] / table[2, 0, :].sum()
    )


def test_bigram_marginals_and_argmax():
    bigram = _random_bigram(vocab_size=3, max_length=3)
    probabilities, states = bigram.probabilities(), bigram.states
    for position in range(3):
        expected = [probabilities[states[:, position] == v].sum() for v in range(3)]
        np.testing.assert_allclose(bigram.marginal(position), expected, rtol=1e-12)
        longer = bigram.lengths(states) > position
        np.testing.assert_allclose(bigram.marginal(position).sum(), probabilities[longer].sum())
    best = max(bigram.states.tolist(), key=lambda s: _loop_log_prob(bigram, [t for t in s if t != PAD]))
    np.testing.assert_array_equal(bigram.argmax(), best)


def test_bigram_exact_sampling_goodness_of_fit():
    # Pearson chi-square over the 39 states, small cells pooled; 40,000 draws,
    # fixed seed; false-fail rate 1e-4.
    bigram = BigramLM.random(np.random.default_rng(5), 3, 3, concentration=2.0)
    draws = bigram.sample_exact(np.random.default_rng(17), 40_000)
    assert np.all(np.isfinite(bigram.log_prob(draws)))
    # The kit's test: a draw in a zero cell fails it; small cells pooled by probability (no 0/0).
    result = chi_square_counts_test(bigram.state_index(draws), bigram.probabilities(), false_fail_rate=1e-4)
    assert result.passed, result


def test_random_bigram_is_reproducible_and_concentration_controls_peakedness():
    a = BigramLM.random(np.random.default_rng(9), 4, 2, concentration=0.3)
    b = BigramLM.random(np.random.default_rng(9), 4, 2, concentration=0.3)
    np.testing.assert_array_equal(a.transition_logits, b.transition_logits)
    np.testing.assert_allclose(logsumexp(a.log_transition, axis=1), 0.0, atol=1e-12)

    def mean_row_entropy(bigram):
        return np.mean(stats.entropy(np.exp(bigram.log_transition), axis=1))

    # Expected Dirichlet entropy rises with concentration; 50 rows each side, never close.
    peaked = BigramLM.random(np.random.default_rng(1), 50, 1, concentration=0.05)
    flat = BigramLM.random(np.random.default_rng(1), 50, 1, concentration=50.0)
    assert mean_row_entropy(peaked) < 0.5 * mean_row_entropy(flat)


# ----------------------------------------------------------------------------- PairwiseChain
def _transfer_log_partition(chain):
    """log Z by transfer matrices: Z = 1^T D_1 T_1 D_2 ... T_{L-1} D_L 1 (probability space)."""
    message = np.exp(chain.unary[0])
    for i in range(chain.length - 1):
        message = (message @ np.exp(chain.coupling[i])) * np.exp(chain.unary[i + 1])
    return np.log(message.sum())


def _forward_backward_marginals(chain):
    length = chain.length
    forward = [np.exp(chain.unary[0])]
    for i in range(length - 1):
        forward.append((forward[-1] @ np.exp(chain.coupling[i])) * np.exp(chain.unary[i + 1]))
    backward = [np.ones(chain.vocab_size)]
    for i in reversed(range(length - 1)):
        backward.insert(0, np.exp(chain.coupling[i]) @ (np.exp(chain.unary[i + 1]) * backward[0]))
    marginals = [f * b for f, b in zip(forward, backward)]
    return [m / m.sum() for m in marginals]


def _random_chain(seed=0, length=4, vocab_size=3, per_edge=True):
    rng = np.random.default_rng(seed)
    unary = rng.normal(size=(length, vocab_size))
    unary[1, 0] = -np.inf  # a forbidden token at one site
    shape = (length - 1, vocab_size, vocab_size) if per_edge else (vocab_size, vocab_size)
    return PairwiseChain(unary, rng.normal(size=shape))


@pytest.mark.parametrize("per_edge", [True, False])
def test_pairwise_chain_partition_function_and_marginals_by_transfer_matrices(per_edge):
    chain = _random_chain(per_edge=per_edge)
    np.testing.assert_allclose(chain.log_normalizer(), _transfer_log_partition(chain), atol=1e-12)
    for position, expected in enumerate(_forward_backward_marginals(chain)):
        np.testing.assert_allclose(chain.marginal(position), expected, atol=1e-12)
    assert chain.marginal(1)[0] == 0.0


def test_pairwise_chain_log_prob_matches_the_definition():
    chain = _random_chain(seed=2)
    for state in chain.states[::7]:
        expected = sum(chain.unary[i, state[i]] for i in range(4)) + sum(
            chain.coupling[i, state[i], state[i + 1]] for i in range(3)
        )
        np.testing.assert_allclose(chain.log_prob(state[None])[0], expected, atol=1e-12)
    assert chain.log_prob([[0, 1, 2, 3]])[0] == -np.inf  # token 3 is outside 0..2
    assert chain.log_prob([[0, 1, PAD, 1]])[0] == -np.inf


@pytest.mark.parametrize("seed", [0, 1])
def test_pairwise_chain_closed_form_conditionals_equal_brute_force(seed):
    chain = _random_chain(seed=seed, length=4, vocab_size=3)
    states = chain.states
    without_conditional = 0
    for position in range(4):
        without_conditional += _assert_closed_form_is_the_definition(chain, states, position)
    assert without_conditional > 0  # the forbidden token at site 1 removes some x_-i
    positions = (np.arange(len(states)) * 5) % 4
    _assert_closed_form_is_the_definition(chain, states, positions)
    # the local formula where the definition has none: x_1 = 0 is forbidden, so p(x_-3) = 0 ...
    state = np.array([[2, 0, 1, 1]])
    assert np.all(chain.brute_force_conditional_log_probs(state, 3) == -np.inf)
    # ... yet the closed form at site 3 is the softmax of h_3(v) + J_2(x_2, v)
    local = chain.unary[3] + chain.coupling[2, 1, :]
    np.testing.assert_allclose(chain.conditional_log_probs(state, 3)[0], local - logsumexp(local))
    # a single site has no neighbours: the conditional is the softmax of its field
    single = PairwiseChain([[0.5, -1.0, 2.0]], np.zeros((3, 3)))
    np.testing.assert_allclose(
        single.conditional_log_probs([[1]], 0)[0], [0.5, -1.0, 2.0] - logsumexp([0.5, -1.0, 2.0])
    )


def test_ising_chain_closed_forms():
    # Free-boundary zero-field Ising chain: Z = 2 (2 cosh J)^{L-1}, sum over 2^L spin configurations.
    for coupling in (-0.7, 0.0, 1.3):
        chain = PairwiseChain.ising(4, coupling)
        np.testing.assert_allclose(
            chain.log_normalizer(), np.log(2.0) + 3 * np.log(2 * np.cosh(coupling)), atol=1e-12
        )
    # with a field, against the transfer matrix; ferromagnet in a positive field: all spins up
    chain = PairwiseChain.ising(4, 0.8, field=0.3)
    np.testing.assert_allclose(chain.log_normalizer(), _transfer_log_partition(chain), atol=1e-12)
    np.testing.assert_array_equal(chain.argmax(), [1, 1, 1, 1])
    # antiferromagnet without field: the two alternating states tie; the first in lexicographic order wins
    np.testing.assert_array_equal(PairwiseChain.ising(4, -1.0).argmax(), [0, 1, 0, 1])
    # magnetisation is symmetric at zero field: marginal of spin +1 is one half at every site
    np.testing.assert_allclose(PairwiseChain.ising(3, 0.9).marginal(1), [0.5, 0.5], atol=1e-12)


def test_enumerate_states_is_the_full_product_space():
    chain = _random_chain(length=3, vocab_size=2)
    expected = np.array(list(itertools.product(range(2), repeat=3)))
    np.testing.assert_array_equal(chain.states, expected)


# ----------------------------------------------------------------------------- bad input
V = 3
GOOD_INITIAL = np.zeros(V)
GOOD_TRANSITION = np.zeros((V, V + 1))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(initial_logits=[0.0, np.nan, 0.0]), ValueError, "initial_logits contains NaN"),
        (dict(initial_logits=[0.0, np.inf, 0.0]), ValueError, r"initial_logits contains \+inf"),
        (dict(initial_logits=[]), ValueError, "initial_logits is empty"),
        (dict(initial_logits=[-np.inf] * 3), ValueError, "initial_logits is -inf everywhere"),
        (dict(initial_logits=np.zeros((2, 3))), ValueError, "initial_logits must be a 1-D"),
        (dict(transition_logits=np.zeros((V, V))), ValueError, r"transition_logits must have shape \(V, V\+1\)"),
        (dict(transition_logits=np.zeros((V + 1, V + 1))), ValueError, "transition_logits must have shape"),
        (
            dict(transition_logits=np.where(np.eye(V, V + 1) > 0, np.nan, 0.0)),
            ValueError,
            "transition_logits contains NaN",
        ),
        (
            dict(transition_logits=np.vstack([np.full(V + 1, -np.inf), np.zeros((V - 1, V + 1))])),
            ValueError,
            "transition_logits is -inf everywhere",
        ),
        (dict(max_length=0), ValueError, "max_length must be an int >= 1"),
        (dict(max_length=2.0), TypeError, "max_length must be an int"),
        (dict(min_length=0), ValueError, "min_length must be an int >= 1"),
        (dict(min_length=4, max_length=3), ValueError, "min_length must be <= max_length"),
    ],
)
def test_bigram_bad_arguments(kwargs, error, message):
    arguments = dict(
        initial_logits=GOOD_INITIAL, transition_logits=GOOD_TRANSITION, max_length=3, min_length=1
    )
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        BigramLM(**arguments)


def test_bigram_with_empty_support_is_refused_when_enumerated():
    # no token may ever be followed by END: every finite sentence has probability zero
    transition = np.zeros((V, V + 1))
    transition[:, V] = -np.inf
    bigram = BigramLM(GOOD_INITIAL, transition, 3)
    with pytest.raises(ValueError, match="empty support"):
        bigram.log_normalizer()


def test_other_bad_arguments():
    bigram = BigramLM(GOOD_INITIAL, GOOD_TRANSITION, 3)
    with pytest.raises(ValueError, match=r"position must lie in 0..2"):
        bigram.conditional_log_probs([[0, 1, 2]], 3)
    with pytest.raises(ValueError, match="position must be an int or have shape"):
        bigram.conditional_log_probs([[0, 1, 2], [0, 0, 0]], [0, 1, 2])
    with pytest.raises(TypeError, match="position must be an int"):
        bigram.conditional_log_probs([[0, 1, 2]], 0.5)
    with pytest.raises(ValueError, match="states must have shape"):
        bigram.log_prob([[0, 1]])
    with pytest.raises(TypeError, match="states must hold integers"):
        bigram.log_prob([[0.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match="prefix_states must hold tokens in 0..2"):
        bigram.next_token_log_probs([[0, PAD, 1]])
    with pytest.raises(ValueError, match=r"prefix_states must have shape \(N, W\)"):
        bigram.next_token_log_probs([0, 1])
    with pytest.raises(ValueError, match="length must be an int >= 1"):
        bigram.fixed_length(0)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        BigramLM.random(0, 3, 2)
    with pytest.raises(ValueError, match="concentration must be a finite number > 0"):
        BigramLM.random(np.random.default_rng(0), 3, 2, concentration=0.0)
    with pytest.raises(ValueError, match="enumeration is limited"):
        PairwiseChain(np.zeros((30, 2)), np.zeros((2, 2))).log_normalizer()
    with pytest.raises(ValueError, match=r"unary must have shape \(L, V\)"):
        PairwiseChain(np.zeros(3), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="unary contains NaN"):
        PairwiseChain([[0.0, np.nan]], np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"coupling must have shape \(V, V\) = \(2, 2\)"):
        PairwiseChain(np.zeros((3, 2)), np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="coupling must be finite or -inf"):
        PairwiseChain(np.zeros((3, 2)), [[0.0, np.inf], [0.0, 0.0]])
    with pytest.raises(ValueError, match="coupling must be a finite number"):
        PairwiseChain.ising(3, np.nan)
    with pytest.raises(TypeError, match="field must be a finite number"):
        PairwiseChain.ising(3, 1.0, field="up")


def test_all_zero_conditional_rows_are_minus_inf_not_nan():
    log_weights = np.array([[0.0, -np.inf], [-np.inf, -np.inf]])
    out = sequences._normalise_rows(log_weights)
    np.testing.assert_array_equal(out, [[0.0, -np.inf], [-np.inf, -np.inf]])


def test_next_token_log_probs_of_width_zero_prefixes_is_the_initial_law():
    bigram = BigramLM.random(np.random.default_rng(5), vocab_size=3, max_length=3)
    out = bigram.next_token_log_probs(np.zeros((2, 0), dtype=np.int64))
    np.testing.assert_array_equal(out[:, :3], np.broadcast_to(bigram.log_initial, (2, 3)))
    assert np.all(out[:, 3] == -np.inf)
