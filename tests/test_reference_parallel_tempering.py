r"""Parallel tempering, exactly: the joint kernel leaves :math:`\Pi = \bigotimes_m \rho^{1/T_m}/Z_m` invariant.

The joint kernel is built twice: from the math (:func:`parallel_tempering.transition_matrix`: the MH
kernels at each temperature, Kronecker-multiplied, then the swap kernel) and from the step's own
uniforms-to-move map (every proposal cell of every replica, each accept uniform split at the step's own
:math:`\alpha`, the parity uniform's two cells, each swap uniform split at the swap's :math:`\alpha`).
They agree to 1e-12, :math:`\Pi P = \Pi` to 1e-12, the swap kernel satisfies detailed balance, and the
gallery's wrong swaps are not stationary. A black-box one-step test on the product target, and the
exact spectral gaps on a bimodal target (PT against the single chain at the same number of target
evaluations), complete the picture.
"""

import itertools

import numpy as np
import pytest

from textsampling import markov, testing
from textsampling.gallery.tempering import CASES
from textsampling.randomness import CounterGenerator, draw_uniforms
from textsampling.reference import annealing, proposals
from textsampling.reference import parallel_tempering as pt
from textsampling.targets import Categorical
from textsampling.targets.base import DiscreteTarget
from textsampling.testing.statistics import required_samples

TINY, NEAR_ONE = 1e-300, np.nextafter(1.0, 0.0)


class ProductOfTempered(DiscreteTarget):
    r""":math:`\Pi(x_0..x_{M-1}) \propto \prod_m \rho(x_m)^{1/T_m}` on ``(M,) + state_shape`` states.

    Enumerated with replica 0 the slowest index, as :func:`parallel_tempering.product_log_probs`.
    """

    def __init__(self, base, temperatures):
        self.base, self.temperatures = base, np.asarray(temperatures, dtype=np.float64)
        self.state_shape = (len(self.temperatures),) + tuple(base.state_shape)

    def log_prob(self, states):
        states = np.asarray(states)
        return sum(self.base.log_prob(states[:, m]) / t for m, t in enumerate(self.temperatures))

    def enumerate_states(self):
        base_states = self.base.enumerate_states()
        rows = itertools.product(range(len(base_states)), repeat=len(self.temperatures))
        return np.stack([base_states[list(row)] for row in rows])


def _small():
    return Categorical(np.log([0.1, 0.6, 0.3]))


def _bimodal():
    # Two modes (states 0 and 5) on a ring of 10, valleys 8 nats below them: chapter 4's lesson, enumerable.
    return Categorical(4.0 * np.cos(2.0 * np.pi * 2 * np.arange(10) / 10))


#: name -> (target, proposal, proposal cells [(u, probability)], temperatures). Small on purpose: the
#: enumeration calls the step once per (joint state, proposal cells, accept pattern, parity, swap pattern).
SETUPS = {
    "three-states-2": (
        _small(),
        proposals.UniformCategoricalProposal(3),
        [((j + 0.5) / 3, 1 / 3) for j in range(3)],
        np.array([1.0, 3.0]),
    ),
    "three-states-ring-2": (
        _small(),
        proposals.RingStepProposal(3, 0.7),
        [(0.35, 0.7), (0.85, 0.3)],
        np.array([0.5, 4.0]),
    ),
    "two-states-3": (
        Categorical(np.log([0.2, 0.8])),
        proposals.UniformCategoricalProposal(2),
        [(0.25, 0.5), (0.75, 0.5)],
        np.array([1.0, 2.0, 5.0]),
    ),
}


def enumerated_kernel(step_fn, target, proposal, cells, temperatures):
    """The joint kernel of ``step_fn`` from its uniforms-to-move map (scalar categorical states)."""
    num_replicas = len(temperatures)
    product = ProductOfTempered(target, temperatures)
    matrix = np.zeros((product.num_states, product.num_states))
    for a, joint in enumerate(product.states):
        state = pt.init(joint, target.log_prob, proposal)
        for proposal_cells in itertools.product(cells, repeat=num_replicas):
            for moves in itertools.product((True, False), repeat=num_replicas):
                for parity_u, swaps in itertools.product(
                    (0.25, 0.75), itertools.product((True, False), repeat=num_replicas - 1)
                ):
                    uniforms = []
                    for (u, _), accept in zip(proposal_cells, moves):
                        uniforms += [u, TINY if accept else NEAR_ONE]
                    uniforms += [parity_u] + [TINY if s else NEAR_ONE for s in swaps]
                    new_state, info = step_fn(
                        np.array(uniforms), state, target.log_prob, proposal, temperatures=temperatures
                    )
                    probability = 0.5 * np.prod([p for _, p in proposal_cells])
                    for log_alpha, accept in zip(info.log_accept_prob, moves):
                        alpha = 0.0 if np.isnan(log_alpha) else np.exp(log_alpha)
                        probability *= alpha if accept else 1.0 - alpha
                    for proposed, log_alpha, accept in zip(info.swap_proposed, info.swap_log_accept_prob, swaps):
                        if not proposed:
                            probability *= 0.0 if accept else 1.0  # its uniform is ignored: count it once
                            continue
                        alpha = 0.0 if np.isnan(log_alpha) else np.exp(log_alpha)
                        probability *= alpha if accept else 1.0 - alpha
                    if probability > 0.0:
                        matrix[a, product.state_index(new_state.x[None])[0]] += probability
    return matrix


@pytest.mark.parametrize("name", sorted(SETUPS))
def test_the_step_is_exactly_the_kernel_and_the_kernel_keeps_the_product_law(name):
    target, proposal, cells, temperatures = SETUPS[name]
    from_step = enumerated_kernel(pt.step, target, proposal, cells, temperatures)
    from_math = pt.transition_matrix(target, proposal, temperatures)
    np.testing.assert_allclose(from_step, from_math, atol=1e-12)
    product = np.exp(pt.product_log_probs(target, temperatures))
    np.testing.assert_allclose(product, ProductOfTempered(target, temperatures).probabilities(), atol=1e-14)
    testing.assert_stationary(from_step, product, atol=1e-12)
    # The swaps alone are reversible (a mixture of two products of reversible pair swaps) ...
    testing.assert_detailed_balance(pt.swap_transition_matrix(target, temperatures), product, atol=1e-12)
    # ... and the replica at T_0 = 1, where there is one, has the target itself as its marginal law.
    stationary = markov.stationary_distribution(from_step)
    if temperatures[0] == 1.0:
        cold = stationary.reshape((target.num_states,) * len(temperatures)).sum(axis=tuple(range(1, len(temperatures))))
        np.testing.assert_allclose(cold, target.probabilities(), atol=1e-10)


@pytest.mark.parametrize("bug", sorted(n for n, c in CASES.items() if c.algorithm == "parallel_tempering"))
@pytest.mark.parametrize("name", sorted(SETUPS))
def test_each_wrong_swap_is_not_stationary(name, bug):
    # Test of the test: the same enumeration of the gallery's step moves the product law by far more than 1e-12.
    target, proposal, cells, temperatures = SETUPS[name]
    matrix = enumerated_kernel(CASES[bug].step, target, proposal, cells, temperatures)
    product = np.exp(pt.product_log_probs(target, temperatures))
    assert not testing.check_stationary(matrix, product, atol=1e-12).passed
    assert testing.one_step_tv(matrix, product) > 1e-3


def _black_box_step(step_fn, target, proposal, temperatures):
    def step(rng, joint):
        uniforms = draw_uniforms(rng, 0, pt.num_uniforms(proposal, len(temperatures)))
        state = pt.init(joint, target.log_prob, proposal)
        return step_fn(uniforms, state, target.log_prob, proposal, temperatures=temperatures)[0].x

    return step


#: The black-box setup: two replicas close in temperature, so that a swap without the factor
#: 1/T_i - 1/T_j (factor 1 instead of 1/3) moves the product law visibly in one step.
BLACK_BOX = (
    _small(),
    proposals.UniformCategoricalProposal(3),
    [((j + 0.5) / 3, 1 / 3) for j in range(3)],
    np.array([1.0, 1.5]),
)
NUM_SAMPLES = 7_000


def test_one_step_from_the_product_law_stays_there_black_box():
    # Chi-square test at the stated false-fail rate 1e-4 (fixed seed) of one PT step from exact draws of Pi.
    target, proposal, _, temperatures = BLACK_BOX
    product = ProductOfTempered(target, temperatures)
    step = _black_box_step(pt.step, target, proposal, temperatures)
    result = testing.one_step_invariance_test(step, product, np.random.default_rng(3), NUM_SAMPLES)
    result.assert_passed()


@pytest.mark.parametrize("bug", sorted(n for n, c in CASES.items() if c.algorithm == "parallel_tempering"))
def test_the_black_box_test_catches_each_wrong_swap(bug):
    # Sized by the exact TV of the bug's one-step law (from its enumerated kernel): the test's stated
    # power against that TV is >= 1 - 1e-4 at NUM_SAMPLES, so this assertion fails by chance with
    # probability <= 1e-4 (fixed seed).
    target, proposal, cells, temperatures = BLACK_BOX
    product = ProductOfTempered(target, temperatures)
    matrix = enumerated_kernel(CASES[bug].step, target, proposal, cells, temperatures)
    tv = testing.one_step_tv(matrix, product.probabilities())
    assert required_samples(tv, 1e-4, power=1 - 1e-4, num_cells=product.num_states) <= NUM_SAMPLES, tv
    step = _black_box_step(CASES[bug].step, target, proposal, temperatures)
    result = testing.one_step_invariance_test(step, product, np.random.default_rng(4), NUM_SAMPLES, tv_alternative=tv)
    assert result.power >= 1 - 1e-4, (tv, result.power)
    assert not result.passed


def _slem(matrix):
    """Second-largest eigenvalue modulus: the geometric rate at which the chain forgets its start."""
    moduli = np.sort(np.abs(np.linalg.eigvals(matrix)))
    return float(moduli[-2])


def test_tempering_mixes_faster_than_the_single_chain_on_a_bimodal_target():
    # Exact, no sampling: on a ring with two modes 8 nats above the valleys, a local MH chain has
    # SLEM close to 1. PT with two replicas (T = 1, 6) spends two target evaluations per step, so
    # compare it with two single-chain steps: SLEM(PT) < SLEM(P)^2, by a wide margin.
    target = _bimodal()
    proposal = proposals.RingStepProposal(10, 0.5)
    temperatures = np.array([1.0, 6.0])
    single = annealing.transition_matrix(target, proposal, 1.0)
    joint = pt.transition_matrix(target, proposal, temperatures)
    single_rate, tempered_rate = _slem(single) ** 2, _slem(joint)
    assert tempered_rate < single_rate
    # The relaxation times 1 / (1 - SLEM) per two target evaluations differ by more than tenfold.
    assert (1 - tempered_rate) > 10 * (1 - single_rate), (single_rate, tempered_rate)


def test_sample_is_init_plus_the_runner_and_keeps_replicas_in_temperature_order():
    target, proposal, _, temperatures = SETUPS["two-states-3"]
    trace = pt.sample(
        CounterGenerator(9, 1), np.array([0, 1, 1]), target.log_prob, proposal, 50, temperatures=temperatures
    )
    assert trace.states.x.shape == (50, 3) and trace.infos.swap_accepted.shape == (50, 2)
    np.testing.assert_allclose(trace.states.log_prob, target.log_prob(trace.states.x.reshape(-1)).reshape(50, 3))
    # Exactly one parity per step: pairs 0 and 1 are never proposed together.
    assert not np.any(trace.infos.swap_proposed.all(axis=1)) and np.all(trace.infos.swap_proposed.any(axis=1))
    rng = CounterGenerator(9, 1)
    state = pt.init(np.array([0, 1, 1]), target.log_prob, proposal)
    for t in range(50):
        uniforms = draw_uniforms(rng, t, pt.num_uniforms(proposal, 3))
        state, _ = pt.step(uniforms, state, target.log_prob, proposal, temperatures=temperatures)
        np.testing.assert_array_equal(state.x, trace.states.x[t])


def test_swap_acceptance_handles_impossible_states_on_purpose():
    assert pt.swap_log_accept_prob(-np.inf, -1.0, 1.0, 2.0) == 0.0  # the cold replica leaves an impossible state
    assert pt.swap_log_accept_prob(-1.0, -np.inf, 1.0, 2.0) == -np.inf
    assert np.isnan(pt.swap_log_accept_prob(-np.inf, -np.inf, 1.0, 2.0))
    # (1/1 - 1/2) * (-1 - (-3)) = 1 > 0: the better state moves down to the colder replica for sure.
    assert pt.swap_log_accept_prob(-3.0, -1.0, 1.0, 2.0) == 0.0
    assert pt.swap_log_accept_prob(-1.0, -3.0, 1.0, 2.0) == pytest.approx(-1.0, abs=1e-15)


@pytest.mark.parametrize(
    "temperatures, message",
    [
        ([1.0], "at least two"),
        ([1.0, 1.0], "strictly increasing"),
        ([2.0, 1.0], "strictly increasing"),
        ([1.0, -2.0], "> 0"),
    ],
)
def test_bad_temperatures_are_refused_with_the_argument_named(temperatures, message):
    target, proposal, _, _ = SETUPS["two-states-3"]
    with pytest.raises(ValueError, match=message):
        pt.sample(np.random.default_rng(0), np.array([0, 1]), target.log_prob, proposal, 3, temperatures=temperatures)


def test_a_start_per_replica_is_required():
    target, proposal, _, _ = SETUPS["two-states-3"]
    with pytest.raises(ValueError, match="replicas"):
        pt.sample(
            np.random.default_rng(0), np.array([0, 1]), target.log_prob, proposal, 3, temperatures=[1.0, 2.0, 3.0]
        )


def test_the_mixing_comparison_spends_the_same_evaluations_on_both():
    # A smoke test of the comparison script's function (its numbers are random and not asserted on).
    from textsampling.gallery.tempering import mixing_comparison, mixing_setups

    setup = mixing_setups()["bimodal ring"]
    result = mixing_comparison(setup, 300, seed=1, num_checkpoints=3)
    assert result["evaluations"][-1] == 300 and result["num_chains"] == len(setup.starts)
    for key in ("single", "tempering"):
        assert len(result[key]["tv"]) == len(result["evaluations"])
        assert all(0.0 <= tv <= 1.0 for tv in result[key]["tv"]) and result[key]["rhat"] > 0
