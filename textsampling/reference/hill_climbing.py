r"""Hill climbing with restarts: accept a proposed neighbour iff it is at least as good.

To maximise :math:`f = \log\rho`, propose :math:`y \sim q(\cdot \mid x)` and move iff

.. math::
    f(y) \ge f(x),

otherwise stay at :math:`x` (part 2 of the series, spaces.ac.cn/archives/8084: Su's "plain hill
climbing"). It is simulated annealing at :math:`T = 0` — :math:`\min(1, e^{[f(y) - f(x)] / T})` tends
to :math:`\mathbb 1[f(y) \ge f(x)]` — but decided without a uniform and without a Hastings term: the
proposal only says which states are neighbours, and no law is being sampled. Equal values are
accepted, so the climber can walk along a plateau. A climber stops improving at the first local
maximum of its neighbourhood (every neighbour strictly worse). :func:`sample` runs one climb (a chain,
through the one runner :func:`textsampling.reference.chain.run`); :func:`restarts` therefore restarts
it ``num_restarts`` times from fresh starts :math:`x_0 \sim \mu` and keeps the best state found.

Conventions, as :mod:`~textsampling.reference.metropolis_hastings`: a proposal of NaN log-density is
rejected; a start of log-density ``-inf`` accepts any proposal that is not NaN (``-inf >= -inf``: the
climber walks until it finds the support). Uniforms of a step: all of them drive the proposal (the
decision needs none). Uniforms of :func:`restarts`: restart ``r`` draws its start from step
``first_step + r (num_steps + 1)`` and runs its ``num_steps`` steps on the following step indices, so a
:class:`~textsampling.randomness.CounterGenerator` gives each restart its own numbers. A run of
``num_restarts`` restarts evaluates ``log_prob_fn`` ``num_restarts (num_steps + 1)`` times — the number
to match when comparing with :func:`~textsampling.reference.annealing.sample` (``num_steps + 1``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from textsampling._validation import check_int, check_uniforms
from textsampling.randomness import as_generator, draw_uniforms
from textsampling.reference import chain, metropolis_hastings
from textsampling.reference.chain import Trace
from textsampling.reference.metropolis_hastings import MHState

__all__ = [
    "MHState",
    "HillClimbInfo",
    "HillClimbTrace",
    "RestartResult",
    "init",
    "num_uniforms",
    "is_uphill_or_equal",
    "step",
    "sample",
    "restarts",
    "num_evaluations",
    "transition_matrix",
]


class HillClimbInfo(NamedTuple):
    """What one step did: the proposed state, the decision and the proposal's log-density."""

    proposal: np.ndarray
    accepted: bool
    log_prob_proposal: float


#: One climb: :class:`textsampling.reference.chain.Trace` of :class:`MHState` and :class:`HillClimbInfo`
#: (row ``t`` = after step ``t``). The log-densities never decrease, so ``final_state`` is the best state.
HillClimbTrace = Trace


class RestartResult(NamedTuple):
    """Outcome of :func:`restarts`: the best state over all restarts and each restart's start and end.

    ``best_restart`` is the first restart that reached ``best_log_prob``; ``starts[r]`` and
    ``final_states[r]`` (``final_log_probs[r]``) are restart ``r``'s start and end state. ``interrupted``
    is True when an interrupt (Ctrl-C) stopped a climb; the arrays then hold the completed restarts and
    the interrupted one (and the best state among them).
    """

    best_state: np.ndarray
    best_log_prob: float
    best_restart: int
    starts: np.ndarray
    final_states: np.ndarray
    final_log_probs: np.ndarray
    interrupted: bool


def init(x0, log_prob_fn, proposal=None) -> MHState:
    """The state at ``x0``: evaluates ``log_prob_fn`` (batched: ``(N,)+shape -> (N,)``) once; NaN refused."""
    return metropolis_hastings.init(x0, log_prob_fn, proposal)


def num_uniforms(proposal) -> int:
    """Uniforms per step: the proposal's only (the decision is deterministic)."""
    for attribute in ("num_uniforms", "propose"):
        if not hasattr(proposal, attribute):
            raise TypeError(
                f"proposal must have num_uniforms and propose(uniforms, x) (e.g. RingStepProposal); "
                f"{type(proposal).__name__} lacks {attribute}"
            )
    return check_int(proposal.num_uniforms, "proposal.num_uniforms", minimum=1)


def is_uphill_or_equal(log_prob_current, log_prob_proposal):
    r""":math:`f(y) \ge f(x)` elementwise; a NaN on either side is False (a rejection)."""
    current = np.asarray(log_prob_current, dtype=np.float64)
    proposal = np.asarray(log_prob_proposal, dtype=np.float64)
    # NaN >= anything is False, as wanted; -inf >= -inf is True (walk until the support is found).
    accepted = proposal >= current
    return bool(accepted) if accepted.ndim == 0 else accepted


def step(uniforms, state: MHState, log_prob_fn, proposal):
    """One hill-climbing step, deterministic given ``uniforms``.

    Parameters
    ----------
    uniforms : array_like, shape (num_uniforms(proposal),)
        All go to ``proposal.propose``.
    state : MHState
    log_prob_fn : callable
        Batched log-density to maximise, ``(N,) + state_shape -> (N,)`` (e.g. ``target.log_prob``).
    proposal : object with ``num_uniforms`` and ``propose(uniforms, x) -> (y, log_q_ratio)``
        Only ``y`` is used: the Hastings term has no role when nothing is sampled.

    Returns
    -------
    (MHState, HillClimbInfo)
    """
    uniforms = check_uniforms(uniforms, num_uniforms(proposal))
    y, _ = proposal.propose(uniforms, state.x)
    log_prob_y = metropolis_hastings.evaluate_log_prob(log_prob_fn, y)
    accepted = is_uphill_or_equal(state.log_prob, log_prob_y)
    new_state = MHState(np.asarray(y), log_prob_y) if accepted else state
    return new_state, HillClimbInfo(np.asarray(y), accepted, log_prob_y)


def sample(rng, x0, log_prob_fn, proposal, num_steps: int, *, first_step: int = 0) -> HillClimbTrace:
    """Climb ``num_steps`` steps from ``x0``; step ``t`` uses the uniforms of step ``first_step + t``.

    Parameters
    ----------
    rng : numpy.random.Generator or CounterGenerator (one chain)
    x0 : array_like
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``
    proposal : MH proposal (see :mod:`textsampling.reference.proposals`)
    num_steps, first_step : int

    Returns
    -------
    HillClimbTrace
    """
    k = num_uniforms(proposal)  # refuse a proposal without num_uniforms/propose before evaluating x0
    state = init(x0, log_prob_fn, proposal)

    def step_fn(uniforms, state, t):
        return step(uniforms, state, log_prob_fn, proposal)

    return chain.run(rng, state, step_fn, k, num_steps, first_step=first_step)


def _check_start_distribution(start_distribution):
    for attribute in ("num_uniforms", "sample"):
        if not hasattr(start_distribution, attribute):
            raise TypeError(
                "start_distribution must have num_uniforms and sample(uniforms (N, k)) -> states, e.g. "
                f"IndependentCategorical or IndependentUniformSequences; {type(start_distribution).__name__} "
                f"lacks {attribute}"
            )
    return check_int(start_distribution.num_uniforms, "start_distribution.num_uniforms", minimum=1)


def num_evaluations(num_steps: int, num_restarts: int = 1) -> int:
    """Calls of ``log_prob_fn`` of :func:`restarts`: one per start and one per step, ``R (n + 1)``."""
    return check_int(num_restarts, "num_restarts", minimum=1) * (check_int(num_steps, "num_steps") + 1)


def restarts(
    rng, start_distribution, log_prob_fn, proposal, num_steps: int, num_restarts: int, *, first_step: int = 0
) -> RestartResult:
    r"""Hill climbing with restarts: ``num_restarts`` climbs from fresh starts :math:`x_0 \sim \mu`.

    Parameters
    ----------
    rng : numpy.random.Generator or CounterGenerator (one chain)
    start_distribution : independent proposal, e.g. ``IndependentCategorical``
        :math:`\mu`, with ``num_uniforms`` and ``sample(uniforms (N, k)) -> states``.
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``
        The :math:`f = \log\rho` to maximise.
    proposal : MH proposal (its neighbourhood; the Hastings term is unused)
    num_steps : int
        Steps per restart.
    num_restarts : int, >= 1
    first_step : int
        Step index where restart 0 draws its start.

    Returns
    -------
    RestartResult
        The best state over all restarts (the first restart reaching the best value is kept).
    """
    rng = as_generator(rng)
    start_uniforms = _check_start_distribution(start_distribution)
    num_steps = check_int(num_steps, "num_steps")
    num_restarts = check_int(num_restarts, "num_restarts", minimum=1)
    first_step = check_int(first_step, "first_step")
    num_uniforms(proposal)  # refuse a proposal without num_uniforms/propose before any work
    starts, final_states, final_log_probs = [], [], []
    best_state, best_log_prob, best_restart = None, -np.inf, 0
    interrupted = False
    for restart in range(num_restarts):
        start_step = first_step + restart * (num_steps + 1)
        uniforms = draw_uniforms(rng, start_step, start_uniforms)
        x0 = start_distribution.sample(np.asarray(uniforms).reshape(1, start_uniforms))[0]
        # Each climb is one chain of the runner, which keeps the completed steps on an interrupt.
        trace = sample(rng, x0, log_prob_fn, proposal, num_steps, first_step=start_step + 1)
        starts.append(np.asarray(x0))
        final_states.append(trace.final_state.x)
        final_log_probs.append(trace.final_state.log_prob)
        # Strictly better only (the first restart reaching the best value is kept); a first restart
        # that never leaves log rho = -inf still provides a best state.
        if best_state is None or trace.final_state.log_prob > best_log_prob:
            best_state, best_log_prob, best_restart = trace.final_state.x.copy(), trace.final_state.log_prob, restart
        if trace.interrupted:
            interrupted = True
            break
    return RestartResult(
        best_state, float(best_log_prob), best_restart, np.stack(starts), np.stack(final_states),
        np.asarray(final_log_probs), interrupted,
    )


def transition_matrix(target, proposal) -> np.ndarray:
    r"""Exact kernel of one step on an enumerable ``target``: :math:`P_{ij} = q(j \mid i)\,\mathbb 1[f_j \ge f_i]`.

    The rest of each row (rejected and self-proposals) stays on the diagonal. Every proposal must land
    inside ``target.states`` (else ``ValueError``); ``proposal`` needs ``log_prob(y, x)``.
    """
    states = np.asarray(target.states)
    log_probs = np.asarray(target.log_prob_all(), dtype=np.float64)
    if not hasattr(proposal, "log_prob"):
        raise TypeError("proposal must be discrete, with log_prob(y, x)")
    num_states = states.shape[0]
    matrix = np.zeros((num_states, num_states))
    for i in range(num_states):
        proposal_mass = np.exp(proposal.log_prob(states[i], states[i]))
        for j in range(num_states):
            if j == i:
                continue
            log_q = proposal.log_prob(states[j], states[i])
            if log_q == -np.inf:
                continue
            proposal_mass += np.exp(log_q)
            if is_uphill_or_equal(log_probs[i], log_probs[j]):
                matrix[i, j] = np.exp(log_q)
        if abs(proposal_mass - 1.0) > 1e-9:
            raise ValueError(
                f"proposal puts probability {1.0 - proposal_mass!r} outside the enumerated states when "
                f"moving from state {states[i].tolist()}; every proposal must land inside target.states"
            )
        matrix[i, i] = max(0.0, 1.0 - matrix[i].sum())
    return matrix
