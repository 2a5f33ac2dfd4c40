r"""Parallel tempering over sentences, exactly, on the bigram oracle: :math:`\Pi = \prod_m \rho^{1/T_m}/Z_m` is kept.

The state space is every pair (or triple) of sentences of length 1..3 (1..2) over 3 tokens that contain
the keyword: 25 sentences, 625 joint states for two replicas. The joint kernel is built twice:

* from the math, :func:`sentence_tempering.transition_matrix` (the exact CGMH kernels at each
  temperature, Kronecker-multiplied, then the swap kernel of
  :func:`parallel_tempering.swap_transition_matrix` on the sentences' :math:`\log\rho`);
* from the code: the same CGMH kernels (built from ``cgmh.move_outcomes``, the function the step runs)
  times the swap kernel *enumerated from the swap function's own uniforms* (both parities, every
  accept pattern, split at the swap's own :math:`\alpha`).

They agree to 1e-12; :math:`\Pi P = \Pi` to 1e-12; the chain is irreducible, so :math:`\Pi` is its only
stationary law, and the marginal of the replica at :math:`T = 1` is :math:`\rho\chi/Z` written out
from the oracle (``test_reference_cgmh._independent_law``). The gallery's wrong swaps (tempered scores;
no :math:`1/T_i - 1/T_j`) go through the same enumeration and are not stationary. That the step is the
moves then the swap is checked on its uniforms, and a black-box chi-square test compares the step's
one-step law from a fixed joint state with the exact row (false-fail rate 1e-4, fixed seed) and has a
stated power against both wrong swaps.
"""

import itertools

import numpy as np
import pytest
from test_reference_cgmh import _config, _independent_law, _oracle

from textsampling import markov, testing
from textsampling.gallery.tempering import CASES
from textsampling.randomness import CounterGenerator, draw_uniforms
from textsampling.reference import cgmh, sentence_annealing
from textsampling.reference import parallel_tempering as pt
from textsampling.reference import sentence_tempering as st
from textsampling.reference.cgmh import CGMHState
from textsampling.testing.statistics import chi_square_counts_test, required_samples

EXACT = 1e-12
TINY, NEAR_ONE = 1e-300, np.nextafter(1.0, 0.0)
KEYWORDS = [2]
BUGS = sorted(name for name, case in CASES.items() if case.algorithm == "sentence_tempering")

#: name -> (max_length, temperatures). Full candidate sets (K = V = 3): every kernel is irreducible.
SETUPS = {
    "two-replicas-length-3": (3, np.array([1.0, 3.0])),
    "three-replicas-length-2": (2, np.array([1.0, 2.0, 5.0])),
}


def _setup(max_length):
    oracle = _oracle(vocab_size=3, max_length=max_length)
    config = _config(oracle, KEYWORDS, num_candidates=3)
    return oracle, config, cgmh.enumerate_sentences(config)


def _key(x):
    return tuple(int(t) for t in x)


def enumerated_swap_kernel(swap_fn, config, states, temperatures):
    """The swap kernel of ``swap_fn`` on the joint states (``itertools.product`` order), from its uniforms."""
    num_replicas, num_states = len(temperatures), len(states)
    log_rho = cgmh.log_target(config, states)
    index = {_key(x): s for s, x in enumerate(states)}
    locks = np.array([cgmh.init(x, config).protected for x in states])  # (S, L)
    joint = list(itertools.product(range(num_states), repeat=num_replicas))
    patterns = list(itertools.product((0.25, 0.75), itertools.product((True, False), repeat=num_replicas - 1)))
    matrix = np.zeros((len(joint), len(joint)))
    for a, rows in enumerate(joint):
        rows = list(rows)
        state = st.SentenceTemperingState(states[rows], log_rho[rows], locks[rows])
        for parity_u, pattern in patterns:
            uniforms = np.array([parity_u] + [TINY if accept else NEAR_ONE for accept in pattern])
            new_state, (proposed, log_alphas, _) = swap_fn(uniforms, state, temperatures=temperatures)
            probability = 0.5
            for is_proposed, log_alpha, accept in zip(proposed, log_alphas, pattern):
                if not is_proposed:
                    probability *= 0.0 if accept else 1.0  # its uniform is ignored: count it once
                    continue
                alpha = 0.0 if np.isnan(log_alpha) else np.exp(log_alpha)
                probability *= alpha if accept else 1.0 - alpha
            if probability > 0.0:
                # The replica's whole state moves with its sentence: score and locks follow.
                for x, log_prob, protected in zip(*new_state):
                    assert log_prob == log_rho[index[_key(x)]] and np.array_equal(protected, locks[index[_key(x)]])
                b = np.ravel_multi_index([index[_key(x)] for x in new_state.x], (num_states,) * num_replicas)
                matrix[a, b] += probability
    return matrix


def joint_kernel(swap_fn, config, states, temperatures):
    """Exact CGMH kernels at each temperature, Kronecker-multiplied, then ``swap_fn``'s enumerated swap kernel."""
    moves = np.ones((1, 1))
    for temperature in temperatures:
        moves = np.kron(moves, sentence_annealing.transition_matrix(config, states, temperature))
    return moves @ enumerated_swap_kernel(swap_fn, config, states, temperatures)


@pytest.mark.parametrize("name", sorted(SETUPS))
def test_the_joint_kernel_keeps_the_product_law_and_its_cold_marginal_is_rho_chi_over_z(name):
    max_length, temperatures = SETUPS[name]
    oracle, config, states = _setup(max_length)
    num_replicas, num_states = len(temperatures), len(states)
    from_code = joint_kernel(st.swap, config, states, temperatures)
    from_math = st.transition_matrix(config, states, temperatures)
    np.testing.assert_allclose(from_code, from_math, rtol=0, atol=EXACT)
    # Pi from the module, against the product of the tempered laws written out from the oracle.
    product = np.exp(st.product_log_probs(config, states, temperatures))
    laws = [_independent_law(oracle, KEYWORDS, temperature=t) for t in temperatures]
    per_replica = [np.array([law[tuple(x[x >= 0].tolist())] for x in states]) for law in laws]
    independent = per_replica[0]
    for law in per_replica[1:]:
        independent = np.outer(independent, law).reshape(-1)
    np.testing.assert_allclose(product, independent, rtol=0, atol=EXACT)
    testing.assert_stationary(from_code, product, atol=EXACT)
    # The swap kernel alone is reversible (a mixture of products of reversible pair swaps).
    testing.assert_detailed_balance(pt.swap_transition_matrix(cgmh.log_target(config, states), temperatures),
                                    product, atol=EXACT)
    # Irreducible and Pi-stationary: Pi is its only stationary law (Perron-Frobenius; no eigensolver
    # needed), and the T = 1 replica's marginal is rho chi / Z.
    assert markov.is_irreducible(from_code)
    cold = product.reshape((num_states,) * num_replicas).sum(axis=tuple(range(1, num_replicas)))
    truth = _independent_law(oracle, KEYWORDS)
    np.testing.assert_allclose(cold, [truth[tuple(x[x >= 0].tolist())] for x in states], rtol=0, atol=EXACT)


@pytest.mark.parametrize("bug", BUGS)
@pytest.mark.parametrize("name", sorted(SETUPS))
def test_each_wrong_swap_fails_the_exact_test(name, bug):
    # Test of the test: the same construction with the gallery's swap moves Pi by far more than 1e-12.
    max_length, temperatures = SETUPS[name]
    _, config, states = _setup(max_length)
    matrix = joint_kernel(CASES[bug].swap, config, states, temperatures)
    product = np.exp(st.product_log_probs(config, states, temperatures))
    assert not testing.check_stationary(matrix, product, atol=EXACT).passed
    assert testing.one_step_tv(matrix, product) > 1e-3


def test_the_step_is_every_replicas_cgmh_move_at_its_temperature_then_the_swap():
    # On its uniforms: replica m reads uniforms[4m : 4m + 4] at temperatures[m], the swap the last M.
    _, config, states = _setup(3)
    temperatures = np.array([1.0, 2.0, 5.0])
    rng = CounterGenerator(11, 0)
    for t in range(30):
        rows = [(3 * t + k) % len(states) for k in range(3)]
        state = st.init(states[rows], config)
        uniforms = draw_uniforms(rng, t, st.num_uniforms(3))
        new_state, info = st.step(uniforms, state, config, temperatures=temperatures)
        moved = [
            sentence_annealing.step(uniforms[4 * m : 4 * m + 4], CGMHState(states[r], state.log_prob[m],
                                    state.protected[m]), config, temperature=temperatures[m])
            for m, r in enumerate(rows)
        ]
        before_swap = st.SentenceTemperingState(*(np.array([getattr(s, f) for s, _ in moved]) for f in
                                                  ("x", "log_prob", "protected")))
        swapped, swap_info = pt.swap(uniforms[12:], before_swap, temperatures=temperatures)
        for expected, got in zip(swapped, new_state):
            np.testing.assert_array_equal(got, expected)
        assert list(info.move) == [i.move for _, i in moved]
        np.testing.assert_array_equal(info.accepted, [i.accepted for _, i in moved])
        for expected, got in zip(swap_info, (info.swap_proposed, info.swap_log_accept_prob, info.swap_accepted)):
            np.testing.assert_array_equal(got, expected)


#: The black-box setup: two replicas close in temperature and a start where both wrong swaps move the
#: one-step law by a TV the test detects with power >= 1 - 1e-4 at NUM_SAMPLES (asserted below).
BLACK_BOX_TEMPERATURES = np.array([1.0, 1.5])
BLACK_BOX_START = ([2], [2, 1, 0])  # cold replica on a one-token sentence, hot on a longer one
NUM_SAMPLES = 1_600


def _black_box(step_fn, seed):
    _, config, states = _setup(3)
    index = {_key(x): s for s, x in enumerate(states)}
    start = np.full((2, 3), -1)
    for m, tokens in enumerate(BLACK_BOX_START):
        start[m, : len(tokens)] = tokens
    state = st.init(start, config)
    rng = CounterGenerator(seed, 0)
    cells = np.empty(NUM_SAMPLES, dtype=np.int64)
    for n in range(NUM_SAMPLES):
        new_state, _ = step_fn(draw_uniforms(rng, n, st.num_uniforms(2)), state, config,
                               temperatures=BLACK_BOX_TEMPERATURES)
        cells[n] = index[_key(new_state.x[0])] * len(states) + index[_key(new_state.x[1])]
    matrix = st.transition_matrix(config, states, BLACK_BOX_TEMPERATURES)
    row = index[_key(start[0])] * len(states) + index[_key(start[1])]
    return cells, matrix[row]


def test_one_step_from_a_fixed_joint_state_follows_the_exact_row_black_box():
    # Chi-square at the stated false-fail rate 1e-4, fixed seed: the reference step's own uniforms.
    cells, row = _black_box(st.step, seed=5)
    result = chi_square_counts_test(cells, row / row.sum(), false_fail_rate=1e-4)
    result.assert_passed()


@pytest.mark.parametrize("bug", BUGS)
def test_the_black_box_test_catches_each_wrong_swap(bug):
    # Sized by the exact TV between the bug's row and the right one: the stated power at NUM_SAMPLES is
    # >= 1 - 1e-4, so this fails by chance with probability <= 1e-4 (fixed seed).
    _, config, states = _setup(3)
    index = {_key(x): s for s, x in enumerate(states)}
    wrong = joint_kernel(CASES[bug].swap, config, states, BLACK_BOX_TEMPERATURES)
    cells, row = _black_box(CASES[bug].step, seed=6)
    start = index[(2, -1, -1)] * len(states) + index[(2, 1, 0)]
    tv = 0.5 * np.abs(wrong[start] - row).sum()
    assert required_samples(tv, 1e-4, power=1 - 1e-4, num_cells=int((row > 0).sum())) <= NUM_SAMPLES, tv
    result = chi_square_counts_test(cells, row / row.sum(), false_fail_rate=1e-4, tv_alternative=tv)
    assert result.power >= 1 - 1e-4, (tv, result.power)
    assert not result.passed


def test_sample_is_init_plus_the_runner_and_keeps_every_keyword_in_every_replica():
    _, config, _ = _setup(3)
    temperatures = st.geometric_temperatures(3, 6.0)
    trace = st.sample(CounterGenerator(3, 0), np.array([2]), config, 40, temperatures=temperatures)
    assert trace.states.x.shape == (40, 3, 3) and trace.infos.swap_accepted.shape == (40, 2)
    flat = trace.states.x.reshape(-1, 3)
    assert cgmh.satisfies_keywords(config.keywords, flat).all()
    np.testing.assert_array_equal(trace.states.log_prob.reshape(-1), cgmh.log_target(config, flat))
    assert trace.infos.swap_accepted.any() and not trace.infos.swap_accepted.all()
    # Continued with first_step, it is the same chain.
    head = st.sample(CounterGenerator(3, 0), np.array([2]), config, 25, temperatures=temperatures)
    tail = st.sample(CounterGenerator(3, 0), head.final_state.x, config, 15, first_step=25, temperatures=temperatures)
    np.testing.assert_array_equal(np.concatenate([head.states.x, tail.states.x]), trace.states.x)


@pytest.mark.parametrize(
    "x0, kwargs, error, match",
    [
        (np.array([2]), {}, ValueError, "num_replicas"),
        (np.array([[2, -1], [2, 0], [0, 2]]), {"num_replicas": 2}, ValueError, "3 replicas but num_replicas = 2"),
        (np.array([[2, -1]]), {}, ValueError, "M >= 2"),
        (np.array([[0, 1], [2, 0]]), {}, ValueError, "does not contain every keyword"),
    ],
)
def test_init_refuses_bad_starts_naming_what_is_wrong(x0, kwargs, error, match):
    _, config, _ = _setup(2)
    with pytest.raises(error, match=match):
        st.init(x0, config, **kwargs)


def test_sample_refuses_a_ladder_that_is_not_increasing_or_too_short():
    _, config, _ = _setup(2)
    with pytest.raises(ValueError, match="strictly increasing"):
        st.sample(CounterGenerator(0, 0), np.array([2]), config, 2, temperatures=[2.0, 1.0])
    with pytest.raises(ValueError, match="at least two"):
        st.sample(CounterGenerator(0, 0), np.array([2]), config, 2, temperatures=[1.0])
