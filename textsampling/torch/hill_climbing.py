"""Torch twin of :mod:`textsampling.reference.hill_climbing`: hill climbing (with restarts) for a batch of chains.

The rule (move iff the proposal is at least as good; NaN rejects), its paper and the layout of the
restarts' uniforms are the reference's; read them there. The batch contract: states ``(B,) +
state_shape`` with log-densities ``(B,)`` (an :class:`~textsampling.torch.metropolis_hastings.MHState`);
the uniforms of a step are ``(B, k)``, all driving the proposal; :func:`sample` (one climb per chain)
returns a :class:`~textsampling.torch.chain.Trace` with fields ``(B, T, ...)``; :func:`restarts`
returns each chain's best over its restarts. With a
:class:`~textsampling.torch.randomness.CounterGenerator`, chain ``c`` is the reference run with
``CounterGenerator(seed, c)``: same starts, same states, same decisions (in float64).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling._validation import check_int
from textsampling.torch import chain, metropolis_hastings
from textsampling.torch._validation import raise_if
from textsampling.torch.chain import Trace
from textsampling.torch.metropolis_hastings import MHState
from textsampling.torch.randomness import as_generator, draw_uniforms

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
]


class HillClimbInfo(NamedTuple):
    """Per chain: proposed state ``(B,) + state_shape``, decision ``(B,)``, proposal's log-density ``(B,)``."""

    proposal: torch.Tensor
    accepted: torch.Tensor
    log_prob_proposal: torch.Tensor


#: :class:`textsampling.torch.chain.Trace` of :class:`MHState` and :class:`HillClimbInfo`, fields ``(B, T, ...)``.
HillClimbTrace = Trace


class RestartResult(NamedTuple):
    """Per chain: best state ``(B,) + state_shape``, its log-density and restart ``(B,)``.

    Per restart: ``starts`` and ``final_states`` ``(B, R) + state_shape``, ``final_log_probs`` ``(B, R)``.
    """

    best_state: torch.Tensor
    best_log_prob: torch.Tensor
    best_restart: torch.Tensor
    starts: torch.Tensor
    final_states: torch.Tensor
    final_log_probs: torch.Tensor
    interrupted: bool


def init(x0: torch.Tensor, log_prob_fn, proposal=None, *, dtype=None) -> MHState:
    """The states ``x0`` ``(B,) + state_shape`` and ``log_prob_fn(x0)`` ``(B,)``; NaN refused."""
    return metropolis_hastings.init(x0, log_prob_fn, proposal, dtype=dtype)


def num_uniforms(proposal) -> int:
    """Uniforms per step: the proposal's only (the decision is deterministic)."""
    for attribute in ("num_uniforms", "propose"):
        if not hasattr(proposal, attribute):
            raise TypeError(
                f"proposal must have num_uniforms and propose(uniforms, x) (e.g. RingStepProposal); "
                f"{type(proposal).__name__} lacks {attribute}"
            )
    return check_int(proposal.num_uniforms, "proposal.num_uniforms", minimum=1)


def is_uphill_or_equal(log_prob_current: torch.Tensor, log_prob_proposal: torch.Tensor) -> torch.Tensor:
    """The reference's rule per chain, ``(B,)`` bool."""
    return log_prob_proposal >= log_prob_current


def step(uniforms: torch.Tensor, state: MHState, log_prob_fn, proposal, *, validate: bool = True):
    """One hill-climbing step for every chain, deterministic given ``uniforms`` ``(B, k)``.

    Returns
    -------
    (MHState, HillClimbInfo)
    """
    metropolis_hastings.check_step_inputs(uniforms, state, num_uniforms(proposal))
    if validate:
        raise_if([~((uniforms > 0) & (uniforms < 1)).all()], ["uniforms must lie in the open interval (0, 1)"])
    y, _ = proposal.propose(uniforms, state.x)  # the Hastings term has no role: nothing is sampled
    log_prob_y = metropolis_hastings.evaluate_log_prob(
        log_prob_fn, y, state.log_prob.dtype, validate, "a proposed state"
    )  # (B,)
    accepted = is_uphill_or_equal(state.log_prob, log_prob_y)  # (B,)
    keep = accepted.reshape((-1,) + (1,) * (y.ndim - 1))  # (B, 1, ...) to select whole states
    new_x = torch.where(keep, y, state.x)  # (B,) + state_shape
    new_log_prob = torch.where(accepted, log_prob_y, state.log_prob)  # (B,)
    return MHState(new_x, new_log_prob), HillClimbInfo(y, accepted, log_prob_y)


def sample(rng, x0: torch.Tensor, log_prob_fn, proposal, num_steps: int, *, first_step: int = 0, dtype=None):
    """Climb ``num_steps`` steps for every chain from ``x0`` ``(B,) + state_shape``.

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, k, B)``; ``dtype`` as in the MH twin's
    :func:`~textsampling.torch.metropolis_hastings.sample`. Returns a :class:`HillClimbTrace`.
    """
    k = num_uniforms(proposal)  # refuse a proposal without num_uniforms/propose before evaluating x0
    state = init(x0, log_prob_fn, proposal, dtype=dtype)

    def step_fn(uniforms, state, t):
        return step(uniforms, state, log_prob_fn, proposal)

    return chain.run(
        rng,
        state,
        step_fn,
        k,
        num_steps,
        first_step=first_step,
    )


def _check_start_distribution(start_distribution) -> int:
    for attribute in ("num_uniforms", "sample", "dtype", "device"):
        if not hasattr(start_distribution, attribute):
            raise TypeError(
                "start_distribution must be a torch independent proposal (num_uniforms, sample, dtype, device), "
                f"e.g. IndependentCategorical; {type(start_distribution).__name__} lacks {attribute}"
            )
    return check_int(start_distribution.num_uniforms, "start_distribution.num_uniforms", minimum=1)


def restarts(
    rng,
    start_distribution,
    log_prob_fn,
    proposal,
    num_steps: int,
    num_restarts: int,
    *,
    first_step: int = 0,
    num_chains: int | None = None,
) -> RestartResult:
    r"""Hill climbing with ``num_restarts`` restarts from :math:`x_0 \sim \mu`, for every chain; keep each chain's best.

    Parameters
    ----------
    rng : CounterGenerator or torch.Generator
    start_distribution : torch independent proposal (e.g. ``IndependentCategorical``), :math:`\mu`
        Its ``dtype`` is the dtype of the uniforms and log-densities.
    log_prob_fn : callable, ``(B,) + state_shape -> (B,)``
    proposal : torch proposal (its neighbourhood)
    num_steps : int, steps per restart
    num_restarts : int, >= 1
    first_step : int
    num_chains : int, required with a ``torch.Generator``

    Returns
    -------
    RestartResult
        Strictly better only: each chain keeps the first restart that reached its best value.
    """
    rng = as_generator(rng)
    start_uniforms = _check_start_distribution(start_distribution)
    num_steps = check_int(num_steps, "num_steps")
    num_restarts = check_int(num_restarts, "num_restarts", minimum=1)
    first_step = check_int(first_step, "first_step")
    num_uniforms(proposal)  # refuse a proposal without num_uniforms/propose before any work
    dtype, device = start_distribution.dtype, start_distribution.device
    starts, final_states, final_log_probs = [], [], []
    best_state = best_log_prob = best_restart = None
    interrupted = False
    for restart in range(num_restarts):
        start_step = first_step + restart * (num_steps + 1)
        uniforms = draw_uniforms(rng, start_step, start_uniforms, num_chains, dtype, device)  # (B, k0)
        x0 = start_distribution.sample(uniforms)  # (B,) + state_shape
        # Each climb is a run of the one runner, which keeps the completed steps on an interrupt.
        trace = sample(rng, x0, log_prob_fn, proposal, num_steps, first_step=start_step + 1, dtype=dtype)
        final = trace.final_state
        starts.append(x0)
        final_states.append(final.x)
        final_log_probs.append(final.log_prob)
        if best_state is None:
            best_state, best_log_prob = final.x.clone(), final.log_prob.clone()
            best_restart = torch.zeros_like(final.log_prob, dtype=torch.int64)
        else:
            # Strictly better only, as the reference.
            better = final.log_prob > best_log_prob  # (B,)
            keep = better.reshape((-1,) + (1,) * (final.x.ndim - 1))  # (B, 1, ...) to select whole states
            best_state = torch.where(keep, final.x, best_state)  # (B,) + state_shape
            best_log_prob = torch.where(better, final.log_prob, best_log_prob)  # (B,)
            best_restart = torch.where(better, restart, best_restart)  # (B,)
        if trace.interrupted:
            interrupted = True
            break
    return RestartResult(
        best_state,
        best_log_prob,
        best_restart,
        torch.stack(starts, dim=1),  # (B, R) + state_shape
        torch.stack(final_states, dim=1),  # (B, R) + state_shape
        torch.stack(final_log_probs, dim=1),  # (B, R)
        interrupted,
    )
