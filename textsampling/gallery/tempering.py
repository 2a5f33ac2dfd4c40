r"""Wrong annealed importance sampling and parallel tempering steps, beside the correct ones.

Each wrong step has the signature of the correct one (:func:`textsampling.reference.annealed_importance.step`
or :func:`textsampling.reference.parallel_tempering.step`) and gets one piece of the algorithm wrong, as
published code has:

* ``ais-weight-after-move`` — the AIS weight :math:`\gamma_k / \gamma_{k-1}` evaluated at the particle
  *after* its move instead of before it (Neal 2001, eq. 4, uses :math:`x_{k-1}`). Then
  :math:`m_k = (m_{k-1} T_k) \odot \gamma_k/\gamma_{k-1} \ne \gamma_k` and :math:`\mathbb{E}[\hat Z] \ne Z`.
* ``ais-kernel-previous-temperature`` — the weight is right but the move leaves :math:`\gamma_{k-1}`
  invariant instead of :math:`\gamma_k` (an off-by-one in the ladder): :math:`m_k = \gamma_k T_{k-1} \ne \gamma_k`.
* ``pt-swap-wrong-sign`` — the swap of replicas :math:`i < j` accepted with
  :math:`(1/T_i - 1/T_j)(\log\rho(x_i) - \log\rho(x_j))`, the sign flipped: swaps push the better
  state to the *hotter* replica.
* ``pt-swap-no-temperature`` — the swap accepted with :math:`\log\rho(x_j) - \log\rho(x_i)`, as if the
  two replicas were at one temperature (the factor :math:`1/T_i - 1/T_j` left out).
* ``spt-swap-tempered-log-prob`` — parallel tempering over sentences
  (:mod:`textsampling.reference.sentence_tempering`) whose swap reads *tempered* scores: the cached
  :math:`\log\rho(x_m)` divided by its replica's :math:`T_m` before the swap formula, so the ratio is
  :math:`(1/T_i - 1/T_j)(\log\rho(x_j)/T_j - \log\rho(x_i)/T_i)` — what a sampler that caches each
  replica's tempered target (as its own MH step needs) and feeds it to the swap computes.
* ``spt-swap-no-temperature`` — the same sampler with ``pt-swap-no-temperature``'s swap.

The two sentence cases carry their wrong ``swap`` too (:attr:`TemperingCase.swap`): the moves are exact
CGMH kernels, so ``tests/test_reference_sentence_tempering.py`` builds each case's joint kernel from the
CGMH kernels and the enumerated uniforms of its swap.

These are not kinds of ``textsampling check`` (a particle system and a product chain are not one-state
steps on a named target), so they are a separate collection, :data:`CASES`, of :class:`TemperingCase`.
The exact tests (``tests/test_reference_annealed_importance.py``, ``tests/test_reference_parallel_tempering.py``)
build the exact law of each step from its own uniforms-to-move map and must fail on every case here.

Beside the wrong steps, the *right algorithm for the wrong target*: :func:`mixing_comparison` runs a
single MH chain and parallel tempering's cold chain at the same number of target evaluations on the
targets where single chains get stuck (chapter 4's two-component mixture, chapter 5's Ising chain with
:math:`J = 2`, an enumerable bimodal ring) and reports split R-hat and the TV distance to the exact law
against the evaluations spent. ``python -m textsampling.gallery.tempering`` prints the table; the
numbers are random (seeded), not tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from textsampling import diagnostics
from textsampling.randomness import CounterGenerator, integer_from_uniform
from textsampling.reference import (
    annealed_importance,
    cgmh,
    metropolis_hastings,
    parallel_tempering,
    proposals,
    sentence_tempering,
)
from textsampling.reference.metropolis_hastings import log_accept_ratio
from textsampling.targets import Categorical, GaussianMixture, PairwiseChain

__all__ = [
    "TemperingCase",
    "CASES",
    "ais_weight_after_move",
    "ais_kernel_previous_temperature",
    "pt_swap_wrong_sign",
    "pt_swap_no_temperature",
    "spt_swap_tempered_log_prob",
    "spt_swap_no_temperature",
    "MixingSetup",
    "mixing_setups",
    "mixing_comparison",
]


@dataclass(frozen=True)
class TemperingCase:
    """A wrong step: ``name``, ``algorithm`` (``"annealed_importance"``, ``"parallel_tempering"`` or
    ``"sentence_tempering"``), a one-line ``description`` of the bug, ``step`` with the signature of that
    module's ``step``, and, for a wrong swap, ``swap`` with the signature of
    :func:`textsampling.reference.parallel_tempering.swap` (the part of ``step`` that is wrong), else None."""

    name: str
    algorithm: str
    description: str
    step: Callable
    swap: Callable | None = None


def ais_weight_after_move(uniforms, state, log_prob_fn, base, proposal, *, beta):
    """BUG: the correct rung, but the weight is computed from the particles *after* the move."""
    new_state, info = annealed_importance.step(uniforms, state, log_prob_fn, base, proposal, beta=beta)
    increment = annealed_importance.log_weight_increment(new_state.log_base_prob, new_state.log_prob, state.beta, beta)
    new_state = new_state._replace(log_weight=state.log_weight + increment)
    return new_state, info._replace(log_weight_increment=increment)


def ais_kernel_previous_temperature(uniforms, state, log_prob_fn, base, proposal, *, beta):
    """BUG: the right weight, but the move is an MH step at the previous rung's beta."""
    increment = annealed_importance.log_weight_increment(state.log_base_prob, state.log_prob, state.beta, beta)
    # A rung at the unchanged beta only moves (its increment is 0): the move of gamma_{k-1}.
    new_state, info = annealed_importance.step(uniforms, state, log_prob_fn, base, proposal, beta=state.beta)
    new_state = new_state._replace(log_weight=state.log_weight + increment, beta=float(beta))
    return new_state, info._replace(log_weight_increment=increment, beta=float(beta))


def _swap_with(swap_log_accept_prob):
    """A swap with :func:`parallel_tempering.swap`'s signature and uniforms whose ratio is ``swap_log_accept_prob``.

    Like the reference's, it exchanges every field of the replicas' state (``x``, ``log_prob``, and
    ``protected`` for sentences).
    """

    def swap(uniforms, state, *, temperatures):
        temperatures = parallel_tempering.check_temperatures(temperatures)
        num_replicas = temperatures.shape[0]
        uniforms = np.asarray(uniforms, dtype=np.float64)
        fields = [np.array(value, copy=True) for value in state]  # each (M, ...)
        log_prob = fields[type(state)._fields.index("log_prob")]
        proposed = np.zeros(num_replicas - 1, dtype=bool)
        log_alphas = np.full(num_replicas - 1, np.nan)
        accepted = np.zeros(num_replicas - 1, dtype=bool)
        for i in range(int(integer_from_uniform(uniforms[0], 2)), num_replicas - 1, 2):
            proposed[i] = True
            log_alphas[i] = swap_log_accept_prob(log_prob[i], log_prob[i + 1], temperatures[i], temperatures[i + 1])
            accepted[i] = bool(np.log(uniforms[1 + i]) < log_alphas[i])
            if accepted[i]:
                for value in fields:
                    value[[i, i + 1]] = value[[i + 1, i]]
        return type(state)(*fields), (proposed, log_alphas, accepted)

    return swap


def _pt_with_swap(swap_log_accept_prob):
    """A parallel tempering step whose swaps use ``swap_log_accept_prob``; moves and uniforms as the reference."""
    wrong_swap = _swap_with(swap_log_accept_prob)

    def step(uniforms, state, log_prob_fn, proposal, *, temperatures):
        temperatures = parallel_tempering.check_temperatures(temperatures)
        num_replicas = temperatures.shape[0]
        uniforms = np.asarray(uniforms, dtype=np.float64)
        split = num_replicas * (int(proposal.num_uniforms) + 1)
        moved, move_info = parallel_tempering.move(
            uniforms[:split], state, log_prob_fn, proposal, temperatures=temperatures
        )
        swapped, swap_info = wrong_swap(uniforms[split:], moved, temperatures=temperatures)
        return swapped, parallel_tempering.PTInfo(*move_info, *swap_info)

    return step


def _sentence_tempering_with_swap(wrong_swap):
    """A sentence tempering step: the reference's CGMH moves, then ``wrong_swap``; uniforms as the reference."""

    def step(uniforms, state, config, *, temperatures):
        temperatures = sentence_tempering.check_temperatures(temperatures)
        uniforms = np.asarray(uniforms, dtype=np.float64)
        split = temperatures.shape[0] * cgmh.num_uniforms()
        moved, move_info = sentence_tempering.move(uniforms[:split], state, config, temperatures=temperatures)
        swapped, swap_info = wrong_swap(uniforms[split:], moved, temperatures=temperatures)
        return swapped, sentence_tempering.SentenceTemperingInfo(*move_info, *swap_info)

    return step


def _wrong_sign(log_prob_i, log_prob_j, temperature_i, temperature_j):
    # BUG: log rho(x_i) - log rho(x_j) where the ratio needs log rho(x_j) - log rho(x_i).
    return float(log_accept_ratio(0.0, (1.0 / temperature_i - 1.0 / temperature_j) * (log_prob_i - log_prob_j), 0.0))


def _no_temperature(log_prob_i, log_prob_j, temperature_i, temperature_j):
    # BUG: the plain MH ratio of the two states, as if both replicas were at one temperature.
    return float(log_accept_ratio(log_prob_i, log_prob_j, 0.0))


def _tempered_log_probs(log_prob_i, log_prob_j, temperature_i, temperature_j):
    # BUG: each replica's cached score tempered by its own T before the swap formula, which wants log rho.
    return parallel_tempering.swap_log_accept_prob(
        log_prob_i / temperature_i, log_prob_j / temperature_j, temperature_i, temperature_j
    )


pt_swap_wrong_sign = _pt_with_swap(_wrong_sign)
pt_swap_no_temperature = _pt_with_swap(_no_temperature)
_spt_tempered_swap = _swap_with(_tempered_log_probs)
_spt_no_temperature_swap = _swap_with(_no_temperature)
spt_swap_tempered_log_prob = _sentence_tempering_with_swap(_spt_tempered_swap)
spt_swap_no_temperature = _sentence_tempering_with_swap(_spt_no_temperature_swap)

#: The wrong steps, by name.
CASES: dict[str, TemperingCase] = {
    case.name: case
    for case in (
        TemperingCase(
            "ais-weight-after-move",
            "annealed_importance",
            "AIS weight gamma_k/gamma_(k-1) evaluated at the particle after its move, not before",
            ais_weight_after_move,
        ),
        TemperingCase(
            "ais-kernel-previous-temperature",
            "annealed_importance",
            "AIS move at the previous rung's beta (leaves gamma_(k-1) invariant, not gamma_k)",
            ais_kernel_previous_temperature,
        ),
        TemperingCase(
            "pt-swap-wrong-sign",
            "parallel_tempering",
            "replica swap accepted with the sign of the log-density difference flipped",
            pt_swap_wrong_sign,
        ),
        TemperingCase(
            "pt-swap-no-temperature",
            "parallel_tempering",
            "replica swap accepted without the factor 1/T_i - 1/T_j (as if at one temperature)",
            pt_swap_no_temperature,
        ),
        TemperingCase(
            "spt-swap-tempered-log-prob",
            "sentence_tempering",
            "sentence replicas swapped on tempered scores log rho / T_m instead of the untempered log rho",
            spt_swap_tempered_log_prob,
            _spt_tempered_swap,
        ),
        TemperingCase(
            "spt-swap-no-temperature",
            "sentence_tempering",
            "sentence replicas swapped without the factor 1/T_i - 1/T_j (as if at one temperature)",
            spt_swap_no_temperature,
            _spt_no_temperature_swap,
        ),
    )
}


# ----------------------------------------------------------------------------- PT against a single chain
@dataclass(frozen=True)
class MixingSetup:
    """A target where one chain gets stuck: its MH proposal, the ladder, the chains' starts ``(C,) + shape``
    (half in each mode), a scalar ``statistic(states) -> (T,)`` for R-hat, and ``cells(states) -> (T,)``
    with the exact ``cell_probabilities`` for the TV distance."""

    name: str
    target: object
    proposal: object
    temperatures: np.ndarray
    starts: np.ndarray
    statistic: Callable
    cells: Callable
    cell_probabilities: np.ndarray


def mixing_setups(num_chains: int = 4) -> dict:
    """The three setups: chapter 4's mixture, chapter 5's J = 2 Ising chain, an enumerable bimodal ring."""
    half = num_chains // 2
    mixture = GaussianMixture(weights=[0.35, 0.65], means=[-3.0, 2.0], scales=[0.8, 1.2])  # chapter 4's
    ising = PairwiseChain.ising(10, coupling=2.0)  # chapter 5's
    up_spins = ising.states.sum(axis=1)
    magnetisation_law = np.bincount(up_spins, weights=ising.probabilities(), minlength=11)
    ring = Categorical(4.0 * np.cos(2.0 * np.pi * 2 * np.arange(10) / 10))  # modes 0 and 5, valleys 8 nats deep
    return {
        "mixture (ch. 4)": MixingSetup(
            "mixture (ch. 4)",
            mixture,
            proposals.GaussianRandomWalkProposal(0.25),
            parallel_tempering.geometric_temperatures(4, 20.0),
            np.array([[-3.0]] * half + [[2.0]] * (num_chains - half)),
            lambda states: np.asarray(states, dtype=np.float64).reshape(len(states), -1)[:, 0],
            mixture.cell_index,
            mixture.cell_probabilities(),
        ),
        "Ising J=2 (ch. 5)": MixingSetup(
            "Ising J=2 (ch. 5)",
            ising,
            proposals.SingleSiteProposal(2, 10),
            parallel_tempering.geometric_temperatures(4, 8.0),
            np.array([[0] * 10] * half + [[1] * 10] * (num_chains - half)),
            lambda states: (2.0 * np.asarray(states) - 1.0).mean(axis=1),  # the magnetisation
            lambda states: np.asarray(states).sum(axis=1),  # its law: the number of up spins
            magnetisation_law,
        ),
        "bimodal ring": MixingSetup(
            "bimodal ring",
            ring,
            proposals.RingStepProposal(10, 0.5),
            parallel_tempering.geometric_temperatures(3, 8.0),
            np.array([0] * half + [5] * (num_chains - half)),
            lambda states: np.asarray(states, dtype=np.float64),
            ring.state_index,
            ring.probabilities(),
        ),
    }


def mixing_comparison(setup: MixingSetup, num_evaluations: int, seed: int = 0, num_checkpoints: int = 6) -> dict:
    r"""Single MH chains against parallel tempering's cold chains, at equal numbers of target evaluations.

    Each of the ``C`` chains (from ``setup.starts``) gets ``num_evaluations`` evaluations of
    :math:`\log\rho`: ``num_evaluations`` MH steps for the single chain, ``num_evaluations // M`` PT steps
    for a PT run of ``M`` replicas (one evaluation per replica per step, the swaps are free: they reuse
    the cached log-densities); PT replica ``m`` of chain ``c`` starts where chain ``c`` does. Chain
    ``c`` uses ``CounterGenerator(seed, c)``.

    Returns
    -------
    dict
        ``evaluations`` (the checkpoints), and for ``"single"`` and ``"tempering"``: ``rhat`` (split
        R-hat of ``setup.statistic`` over the ``C`` chains, whole run) and ``tv`` (TV distance between
        the pooled histogram of ``setup.cells`` of the first draws up to each checkpoint and
        ``setup.cell_probabilities``).
    """
    num_replicas = len(setup.temperatures)
    num_chains = len(setup.starts)
    single, tempered = [], []
    for c, start in enumerate(setup.starts):
        trace = metropolis_hastings.sample(
            CounterGenerator(seed, c), start, setup.target.log_prob, setup.proposal, num_evaluations
        )
        single.append(trace.states.x)
        trace = parallel_tempering.sample(
            CounterGenerator(seed, c),
            np.stack([start] * num_replicas),
            setup.target.log_prob,
            setup.proposal,
            num_evaluations // num_replicas,
            temperatures=setup.temperatures,
        )
        tempered.append(trace.states.x[:, 0])  # the cold chain, T_0 = 1
    # Checkpoints in evaluations, geometric; PT has spent M evaluations per step.
    evaluations = np.unique(np.geomspace(num_replicas * 10, num_evaluations, num_checkpoints).astype(int))
    result = {"evaluations": evaluations.tolist()}
    for name, draws, per_step in (("single", single, 1), ("tempering", tempered, num_replicas)):
        statistic = np.stack([setup.statistic(x) for x in draws])  # (C, T)
        cells = np.stack([setup.cells(x) for x in draws])  # (C, T)
        # Per chain, then averaged: a pooled histogram of chains started in both modes would look
        # right even if no chain ever left its mode.
        tvs = [
            float(
                np.mean(
                    [
                        diagnostics.empirical_tv_distance(row[: max(n // per_step, 1)], setup.cell_probabilities)
                        for row in cells
                    ]
                )
            )
            for n in evaluations
        ]
        result[name] = {"rhat": diagnostics.split_rhat(statistic), "tv": tvs}
    result["num_chains"] = num_chains
    return result


def _print_comparisons(num_evaluations: int = 20_000, seed: int = 0) -> None:  # pragma: no cover - a script
    for name, setup in mixing_setups().items():
        result = mixing_comparison(setup, num_evaluations, seed)
        print(
            f"{name}: {result['num_chains']} chains x {num_evaluations} target evaluations, "
            f"PT temperatures {np.round(setup.temperatures, 2).tolist()}"
        )
        rhats = result["single"]["rhat"], result["tempering"]["rhat"]
        print(f"  split R-hat: single chain {rhats[0]:.3f}, PT cold chain {rhats[1]:.3f}")
        print("  evaluations   " + " ".join(f"{n:>7d}" for n in result["evaluations"]))
        for key in ("single", "tempering"):
            print(f"  TV {key:<10s}" + " ".join(f"{tv:7.3f}" for tv in result[key]["tv"]))


if __name__ == "__main__":  # pragma: no cover
    import sys

    _print_comparisons(*(int(a) for a in sys.argv[1:3]))
