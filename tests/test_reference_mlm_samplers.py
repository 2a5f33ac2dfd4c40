"""The bigram oracle and the MLM samplers of part 3 against exact, enumerated answers.

Every expected value comes from an independent route: the target's own enumeration
(``BigramLM.probabilities``, ``FixedLengthBigram.conditional_log_probs``) or brute-force sums over
completions, never from the sampler under test. Transition matrices are built by the samplers' own
``transition_matrix``, which calls the same functions as ``step``.
"""

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from textsampling import markov
from textsampling.lm.base import CausalLanguageModel, MaskedLanguageModel
from textsampling.lm.oracle import BigramOracle, MaskSensitiveOracle
from textsampling.randomness import CounterGenerator
from textsampling.reference import mlm_gibbs
from textsampling.reference import mlm_metropolis_hastings as mlm_mh
from textsampling.targets import PAD, BigramLM

EXACT = 1e-12  # float64 rounding of sums over at most a few hundred states


def _bigram(seed=1, vocab_size=3, max_length=3, with_zero=True):
    rng = np.random.default_rng(seed)
    initial = rng.normal(size=vocab_size)
    transition = rng.normal(size=(vocab_size, vocab_size + 1))
    if with_zero:
        transition[0, 1] = -np.inf  # an impossible transition: -inf must flow through as zero
    return BigramLM(initial, transition, max_length)


# ----------------------------------------------------------------------------- the oracle
def test_oracle_implements_both_protocols_with_specials_never_sampled():
    oracle = BigramOracle(_bigram())
    assert isinstance(oracle, MaskedLanguageModel) and isinstance(oracle, CausalLanguageModel)
    assert oracle.special_token_ids == {oracle.end_token_id, oracle.mask_token_id}
    fixed = oracle.bigram.fixed_length(3)
    masked = oracle.masked_log_probs(fixed.states, np.zeros(fixed.num_states, dtype=np.int64))
    assert np.all(masked[:, sorted(oracle.special_token_ids)] == -np.inf)
    assert np.allclose(logsumexp(masked, axis=1), 0.0, atol=EXACT)


def test_oracle_masked_conditionals_equal_the_fixed_length_closed_form():
    bigram = _bigram()
    oracle = BigramOracle(bigram)
    for length in (1, 2, 3):
        fixed = bigram.fixed_length(length)
        for position in range(length):
            positions = np.full(fixed.num_states, position)
            got = oracle.masked_log_probs(fixed.states, positions)[:, : bigram.vocab_size]
            want = fixed.brute_force_conditional_log_probs(fixed.states, positions)
            defined = np.isfinite(want).any(axis=1)  # where the conditional exists
            np.testing.assert_allclose(got[defined], want[defined], atol=EXACT)


def test_oracle_marginalises_other_masks_exactly():
    """p(x_i | observed) with other [MASK]s = brute-force sum of the joint over their completions."""
    bigram = _bigram(seed=3, max_length=4)
    oracle = BigramOracle(bigram)
    length, vocab = 4, bigram.vocab_size
    fixed = bigram.fixed_length(length)
    joint = fixed.log_prob(fixed.states)  # (V^4,)
    mask = oracle.mask_token_id
    for pattern in itertools.product([0, 2, mask], repeat=length):
        pattern = np.array(pattern)
        for position in range(length):
            observed = (pattern != mask) & (np.arange(length) != position)
            consistent = np.all(~observed | (fixed.states == pattern), axis=1)
            want = np.array(
                [logsumexp(joint[consistent & (fixed.states[:, position] == v)]) for v in range(vocab)]
            )
            want = want - logsumexp(want)
            got = oracle.masked_log_probs(pattern[None], np.array([position]))[0, :vocab]
            np.testing.assert_allclose(got, want, atol=1e-10)


def test_oracle_causal_answers_match_the_bigram():
    bigram = _bigram(max_length=3)
    oracle = BigramOracle(bigram)
    np.testing.assert_allclose(oracle.sequence_log_probs(bigram.states), bigram.sequence_log_probs(bigram.states))
    prefixes = np.array([[PAD, PAD], [2, PAD], [0, 1]])
    got = oracle.next_token_log_probs(prefixes)
    np.testing.assert_allclose(got[:, : bigram.vocab_size + 1], bigram.next_token_log_probs(prefixes))
    assert np.all(got[:, oracle.mask_token_id] == -np.inf)


@pytest.mark.parametrize(
    "bad, match",
    [(np.array([[0, 9]]), "tokens in"), (np.array([[0, PAD, 1]]), "followed only by PAD"),
     (np.zeros((1, 5), dtype=np.int64), "max_length"), (np.array([[0.5]]), "integer")],
)
def test_oracle_rejects_malformed_rows(bad, match):
    oracle = BigramOracle(_bigram(max_length=3))
    with pytest.raises((ValueError, TypeError), match=match):
        oracle.sequence_log_probs(bad)


# ----------------------------------------------------------------------------- MLM Gibbs
@pytest.mark.parametrize("scan", ["random", "systematic"])
def test_mlm_gibbs_leaves_the_exact_joint_invariant(scan):
    bigram = _bigram()
    oracle = BigramOracle(bigram)
    fixed = bigram.fixed_length(3)
    matrix = mlm_gibbs.transition_matrix(oracle, fixed.states, scan)
    assert markov.stationarity_residual(matrix, fixed.probabilities()) < EXACT
    # Over every length at once (Gibbs keeps the length): the variable-length joint is invariant too.
    matrix = mlm_gibbs.transition_matrix(oracle, bigram.states, scan)
    assert markov.stationarity_residual(matrix, bigram.probabilities()) < EXACT


@pytest.mark.parametrize("scan", ["random", "systematic"])
def test_mlm_gibbs_puts_mask_at_the_resampled_position(scan):
    """Under a model that peeks at x_i the kernel is still exact: the sampler masks i before asking.

    Test of the test: the same model asked with x_i in view gives another conditional (so a sampler
    that forgot the mask would get another kernel, see tests/test_gallery_forgot_mask.py).
    """
    bigram = _bigram(with_zero=False)
    sensitive = MaskSensitiveOracle(bigram)
    fixed = bigram.fixed_length(3)
    matrix = mlm_gibbs.transition_matrix(sensitive, fixed.states, scan)
    np.testing.assert_allclose(matrix, mlm_gibbs.transition_matrix(BigramOracle(bigram), fixed.states, scan),
                               atol=EXACT)
    assert markov.stationarity_residual(matrix, fixed.probabilities()) < EXACT
    x = fixed.states[5]
    peeking = sensitive.masked_log_probs(x[None], np.array([1]))[0]
    masked = mlm_gibbs.conditional_log_probs(sensitive, x, 1)
    assert np.abs(np.exp(peeking) - np.exp(masked)).max() > 1e-2


@pytest.mark.parametrize("temperature, top_k", [(0.5, None), (1.0, 2)])
def test_mlm_gibbs_temperature_and_top_k_change_the_target_and_say_so(temperature, top_k):
    """Test of the test: the same check fails once the conditional is tempered or truncated."""
    bigram = _bigram(with_zero=False)
    oracle = BigramOracle(bigram)
    fixed = bigram.fixed_length(3)
    matrix = mlm_gibbs.transition_matrix(oracle, fixed.states, "random", temperature, top_k)
    assert markov.stationarity_residual(matrix, fixed.probabilities()) > 1e-3
    state, info = mlm_gibbs.step([0.3, 0.6], mlm_gibbs.init(fixed.states[5], oracle), oracle, scan="random",
                                 temperature=temperature, top_k=top_k)
    assert info.changes_target
    assert not mlm_gibbs.step([0.3, 0.6], state, oracle)[1].changes_target


def test_mlm_gibbs_sweep_from_all_mask_with_drawn_length_is_an_exact_sample():
    """All-[MASK] start, length n ~ P(n), one systematic sweep: the law is the bigram's joint exactly.

    The law is computed with the samplers' own site kernels on the space of sequences over
    {tokens, [MASK]} and compared with the target's enumeration.
    """
    bigram = _bigram(max_length=3)
    oracle = BigramOracle(bigram)
    length_log_probs = bigram.length_log_probs()
    length_law = np.exp(length_log_probs - logsumexp(length_log_probs))
    law = np.zeros(bigram.num_states)
    alphabet = list(range(bigram.vocab_size)) + [oracle.mask_token_id]
    for length in range(1, bigram.max_length + 1):
        extended = np.array(list(itertools.product(alphabet, repeat=length)), dtype=np.int64)
        extended = np.concatenate([extended, np.full((len(extended), 3 - length), PAD)], axis=1)
        matrix = mlm_gibbs.transition_matrix(oracle, extended, "systematic")
        start = mlm_gibbs.init_all_mask(
            np.exp(logsumexp(length_log_probs[:length]) - logsumexp(length_log_probs)) - 1e-12,
            oracle, 3, length_log_probs,
        ).x
        assert np.sum(start != PAD) == length and np.all(start[:length] == oracle.mask_token_id)
        start_index = int(np.flatnonzero(np.all(extended == start, axis=1))[0])
        after = matrix[start_index]
        for s, state in enumerate(extended):
            if after[s] > 0:
                law[bigram.state_index(state)[0]] += length_law[length - 1] * after[s]
    np.testing.assert_allclose(law, bigram.probabilities(), atol=EXACT)


def test_mlm_gibbs_sample_is_reproducible_and_keeps_specials_out():
    oracle = BigramOracle(_bigram(max_length=4))

    def run(scan):
        x0 = mlm_gibbs.draw_all_mask_start(CounterGenerator(7, 2), oracle)
        return mlm_gibbs.sample(CounterGenerator(7, 2), x0, oracle, 30, scan=scan).states.x

    random_scan, sweeps = run("random"), run("systematic")
    np.testing.assert_array_equal(random_scan, run("random"))
    # Random scan may leave a [MASK] not yet visited; neither scan ever writes END or [MASK].
    inside = random_scan[random_scan != PAD]
    assert np.all((inside < oracle.num_tokens) | (inside == oracle.mask_token_id))
    assert np.all(sweeps[sweeps != PAD] < oracle.num_tokens)  # a sweep fills every [MASK]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"scan": "forward"}, "scan must be one of"), ({"temperature": 0.0}, "temperature"),
     ({"top_k": 0}, "top_k"), ({"x0": [PAD, 1]}, "empty"), ({"x0": [0, 1, 1, 1, 2]}, "max_length"),
     ({"model": "bert"}, "model must be a masked language model")],
)
def test_mlm_gibbs_bad_input_names_the_argument(kwargs, match):
    model = kwargs.pop("model", BigramOracle(_bigram(max_length=3)))
    x0 = kwargs.pop("x0", [0, 1, 2])
    with pytest.raises((ValueError, TypeError), match=match):
        mlm_gibbs.sample(np.random.default_rng(0), x0, model, 2, **kwargs)


# ----------------------------------------------------------------------------- MLM Metropolis–Hastings
def _energy_law(oracle, states, kind):
    energies = np.array([mlm_mh.energy(oracle, x, kind) for x in states])
    return np.exp(-energies - logsumexp(-energies))


def test_mlm_mh_with_the_joint_energy_leaves_the_exact_joint_invariant():
    bigram = _bigram()
    oracle = BigramOracle(bigram)
    fixed = bigram.fixed_length(3)
    joint_energy = lambda states: -oracle.sequence_log_probs(states)  # noqa: E731
    matrix = mlm_mh.transition_matrix(oracle, fixed.states, joint_energy)
    assert markov.detailed_balance_residual(matrix, fixed.probabilities()) < EXACT
    assert markov.stationarity_residual(matrix, fixed.probabilities()) < EXACT


@pytest.mark.parametrize("kind", ["pll", "raw_logit"])
def test_mlm_mh_is_reversible_for_exp_minus_energy(kind):
    bigram = _bigram(with_zero=False)
    oracle = BigramOracle(bigram)
    fixed = bigram.fixed_length(3)
    matrix = mlm_mh.transition_matrix(oracle, fixed.states, kind)
    target = _energy_law(oracle, fixed.states, kind)
    assert markov.detailed_balance_residual(matrix, target) < EXACT
    # The proposal and the PLL ask with [MASK] put in place: a model that peeks at x_i changes nothing.
    sensitive = MaskSensitiveOracle(bigram)
    np.testing.assert_allclose(mlm_mh.transition_matrix(sensitive, fixed.states, kind), matrix, atol=EXACT)
    # The energy is not the joint: the same check against the joint fails (test of the test).
    assert markov.detailed_balance_residual(matrix, fixed.probabilities()) > 1e-4


def test_mlm_mh_step_matches_its_matrix_and_caches_the_energy():
    oracle = BigramOracle(_bigram(max_length=4))
    trace = mlm_mh.sample(CounterGenerator(3, 0), [0, 2, 1, PAD], oracle, 40, energy_kind="pll")
    for x, cached in zip(trace.states.x, trace.states.log_prob):
        assert cached == pytest.approx(-mlm_mh.energy(oracle, x, "pll"), abs=1e-12)  # log_prob = -E
    assert 0 < trace.infos.accepted.mean() <= 1
    with pytest.raises(ValueError, match="energy_kind must be one of"):
        mlm_mh.sample(np.random.default_rng(0), [0, 1], oracle, 1, energy_kind="bogus")
    with pytest.raises(TypeError, match="model must be a masked language model"):
        mlm_mh.sample(np.random.default_rng(0), [0, 1], object(), 1)


# ----------------------------------------------------------------------------- the token rules (lm.tokens)
def test_the_numpy_and_torch_token_rules_agree():
    """One rule each, two array libraries: lengths, special-token masking, [MASK] placement, checks."""
    import torch

    from textsampling.lm import tokens

    rng = np.random.default_rng(0)
    rows = rng.integers(0, 6, size=(40, 5))
    lengths = rng.integers(0, 6, size=40)
    rows[np.arange(5)[None, :] >= lengths[:, None]] = PAD
    np.testing.assert_array_equal(tokens.sequence_lengths(rows), lengths)
    np.testing.assert_array_equal(tokens.sequence_lengths_torch(torch.as_tensor(rows)).numpy(), lengths)
    assert [tokens.sequence_length(row) for row in rows] == lengths.tolist()

    log_probs = rng.normal(size=(40, 6))
    masked = tokens.mask_special_tokens(log_probs, {1, 4, 99}, keep=(4,))
    assert np.all(masked[:, 1] == -np.inf) and np.all(masked[:, [0, 2, 3, 4, 5]] == log_probs[:, [0, 2, 3, 4, 5]])
    np.testing.assert_array_equal(
        tokens.mask_special_tokens_torch(torch.as_tensor(log_probs), {1, 4, 99}, keep=(4,)).numpy(), masked
    )
    np.testing.assert_array_equal(tokens.special_token_mask({1, 4, 99}, 6, keep=(4,)), masked[0] == -np.inf)

    positions = np.maximum(lengths - 1, 0)
    query = tokens.with_mask_at(rows, positions, 9)
    assert np.all(query[np.arange(40), positions] == 9) and np.sum(query != rows) <= 40
    np.testing.assert_array_equal(
        tokens.with_mask_at_torch(torch.as_tensor(rows), torch.as_tensor(positions), 9).numpy(), query
    )
    np.testing.assert_array_equal(tokens.with_mask_at(rows[3], positions[3], 9), query[3])

    good = rows[lengths > 0]
    np.testing.assert_array_equal(tokens.check_sequences_torch(torch.as_tensor(good), max_length=5).numpy(), good)
    for row in good:
        tokens.check_sequence(row, max_length=5)
    empty = int(np.flatnonzero(lengths == 0)[0])
    with pytest.raises(ValueError, match="x is empty"):
        tokens.check_sequence(rows[empty])
    with pytest.raises(ValueError, match=rf"x\[{empty}\] is empty"):
        tokens.check_sequences_torch(torch.as_tensor(rows))
    with pytest.raises(ValueError, match="over the model's max_length = 2"):
        tokens.check_sequence([0, 1, 2], max_length=2)
    with pytest.raises(ValueError, match="followed only by PAD"):
        tokens.check_sequence([0, PAD, 2])
