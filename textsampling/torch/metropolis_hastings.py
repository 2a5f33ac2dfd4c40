r"""Torch twin of :mod:`textsampling.reference.metropolis_hastings`: a batch of MH chains, one step per call.

For every chain :math:`b` at once: propose :math:`y_b \sim q(\cdot \mid x_b)` and accept with

.. math::
    \log \alpha_b = \min\bigl(0,\ \log\rho(y_b) - \log\rho(x_b) + \log q(x_b \mid y_b) - \log q(y_b \mid x_b)\bigr),

i.e. accept iff :math:`\log u_b < \log\alpha_b`; a NaN ratio rejects, and a current state of
log-density ``-inf`` accepts any proposal of finite log-density — the reference's conventions, in the
same floating operations (Metropolis et al. 1953; Hastings 1970; part 2 of the series,
spaces.ac.cn/archives/8084). Uniforms of a step, ``(B, k + 1)``: ``uniforms[:, :-1]`` drive the
proposal, ``uniforms[:, -1]`` decides. No loop over chains; :func:`sample` loops over steps.

With a :class:`~textsampling.torch.randomness.CounterGenerator`, chain ``c`` of :func:`sample` is the
reference chain run with ``CounterGenerator(seed, c)``: same states, same decisions (in float64).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling._validation import check_int
from textsampling.torch._validation import check_batch, check_same_device, check_tensor, raise_if
from textsampling.torch.randomness import as_generator, draw_uniforms

__all__ = ["MHState", "MHInfo", "MHTrace", "init", "num_uniforms", "log_accept_ratio", "step", "sample"]


class MHState(NamedTuple):
    """Current states ``x`` ``(B,) + state_shape`` and their log-densities ``log_prob`` ``(B,)``."""

    x: torch.Tensor
    log_prob: torch.Tensor


class MHInfo(NamedTuple):
    """Per chain: log acceptance probability, decision and proposed state."""

    log_accept_ratio: torch.Tensor
    accepted: torch.Tensor
    proposal: torch.Tensor


class MHTrace(NamedTuple):
    """A run: ``states`` ``(B, num_steps) + state_shape`` (column ``t`` = after step ``t``), and the rest per step."""

    states: torch.Tensor
    log_probs: torch.Tensor
    accepted: torch.Tensor
    log_accept_ratios: torch.Tensor
    final_state: MHState
    interrupted: bool


def _evaluate(log_prob_fn, x: torch.Tensor, dtype, validate: bool, name: str) -> torch.Tensor:
    values = log_prob_fn(x)
    if not isinstance(values, torch.Tensor) or values.shape != (x.shape[0],):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(
            f"log_prob_fn must return a tensor with one value per chain, shape ({x.shape[0]},), got {shape}"
        )
    if values.dtype != dtype:
        raise TypeError(f"log_prob_fn returned dtype {values.dtype} but the chains compute in {dtype}")
    if validate:
        raise_if(
            [(values == torch.inf).any()],
            [f"log_prob_fn returned +inf at {name}; log-densities must be finite, -inf or NaN"],
        )
    return values


def init(x: torch.Tensor, log_prob_fn, dtype=None) -> MHState:
    """The states ``x`` ``(B,) + state_shape`` and ``log_prob_fn(x)`` ``(B,)``, evaluated once."""
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
    x = check_tensor(x, "x")
    if x.ndim == 0:
        raise ValueError("x must have a leading chain dimension, shape (B,) + state_shape")
    values = log_prob_fn(x)
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"log_prob_fn must return a tensor of shape ({x.shape[0]},)")
    log_prob = _evaluate(log_prob_fn, x, dtype or values.dtype, True, "x")
    if torch.isnan(log_prob).any():
        # As in the reference: a NaN current state would reject every move forever, silently.
        raise ValueError("log_prob_fn(x) is NaN for some chain: every start needs a log-density that is finite or -inf")
    return MHState(x, log_prob)


def num_uniforms(proposal) -> int:
    """Uniforms per step: the proposal's, then one for the accept decision."""
    return int(proposal.num_uniforms) + 1


def log_accept_ratio(log_prob_current, log_prob_proposal, log_q_ratio) -> torch.Tensor:
    r""":math:`\min(0, \log\rho(y) - \log\rho(x) + \log q(x|y) - \log q(y|x))` per chain; NaN when undefined.

    A current state of log-density ``-inf`` and a finite proposal give 0 (leave an impossible start).
    """
    # -inf - (-inf) is NaN on purpose: a rejection. torch.minimum propagates NaN, as np.minimum does.
    difference = log_prob_proposal - log_prob_current + log_q_ratio  # (B,)
    ratio = torch.minimum(difference, difference.new_zeros(()))
    return torch.where((log_prob_current == -torch.inf) & torch.isfinite(log_prob_proposal), 0.0, ratio)


def check_step_inputs(uniforms, state: MHState, expected_num_uniforms: int) -> int:
    """Validate a step's ``uniforms`` ``(B, expected_num_uniforms)`` against ``state``; returns ``B``.

    Shared by the MH-type twins (MH, annealing, hill climbing), whose states are :class:`MHState`.
    """
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    if not isinstance(state, MHState):
        raise TypeError(f"state must be an MHState (from init), got {type(state).__name__}")
    check_same_device(uniforms=uniforms, **{"state.x": state.x, "state.log_prob": state.log_prob})
    if uniforms.dtype != state.log_prob.dtype:
        raise TypeError(
            f"uniforms has dtype {uniforms.dtype} but state.log_prob has {state.log_prob.dtype}; use one dtype"
        )
    if uniforms.shape[1] != expected_num_uniforms:
        raise ValueError(f"uniforms must have shape (B, {expected_num_uniforms}), got {tuple(uniforms.shape)}")
    return check_batch(uniforms.shape[0], **{"state.x": state.x, "state.log_prob": state.log_prob})


def step(uniforms: torch.Tensor, state: MHState, log_prob_fn, proposal, validate: bool = True):
    """One MH step for every chain, deterministic given ``uniforms``.

    Parameters
    ----------
    uniforms : torch.Tensor, shape (B, num_uniforms(proposal))
        ``uniforms[:, :-1]`` go to ``proposal.propose``, ``uniforms[:, -1]`` decides acceptance.
    state : MHState
    log_prob_fn : callable, ``(B,) + state_shape -> (B,)`` (e.g. a torch target's ``log_prob``)
    proposal : torch proposal (``num_uniforms``, ``propose(uniforms (B, k), x) -> (y, log_q_ratio)``)
    validate : bool
        Check the values (uniforms in (0, 1), no ``+inf`` log-density) with one synchronisation.

    Returns
    -------
    (MHState, MHInfo)
    """
    check_step_inputs(uniforms, state, num_uniforms(proposal))
    if validate:
        raise_if([~((uniforms > 0) & (uniforms < 1)).all()], ["uniforms must lie in the open interval (0, 1)"])
    y, log_q_ratio = proposal.propose(uniforms[:, :-1], state.x)
    log_prob_y = _evaluate(log_prob_fn, y, state.log_prob.dtype, validate, "a proposed state")
    log_alpha = log_accept_ratio(state.log_prob, log_prob_y, log_q_ratio)  # (B,)
    # Accept iff log u < log alpha; NaN compares False, so an undefined ratio rejects.
    accepted = torch.log(uniforms[:, -1]) < log_alpha  # (B,)
    keep = accepted.reshape((-1,) + (1,) * (y.ndim - 1))  # (B, 1, ...) to select whole states
    new_state = MHState(torch.where(keep, y, state.x), torch.where(accepted, log_prob_y, state.log_prob))
    return new_state, MHInfo(log_alpha, accepted, y)


def sample(rng, x0: torch.Tensor, log_prob_fn, proposal, num_steps: int, first_step: int = 0, dtype=None) -> MHTrace:
    """Run ``num_steps`` MH steps for every chain from ``x0`` ``(B,) + state_shape`` and keep every state.

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, num_uniforms(proposal), B)``; with a counter
    generator, chain ``b`` gets the uniforms of ``(seed, rng.chain_index[b], first_step + t)``.

    Parameters
    ----------
    rng : CounterGenerator or torch.Generator, on the chains' device
    x0 : torch.Tensor, shape (B,) + state_shape
    log_prob_fn, proposal : as in :func:`step`
    num_steps, first_step : int
    dtype : torch dtype of the uniforms and log-densities (default: ``log_prob_fn``'s output dtype)

    Returns
    -------
    MHTrace
    """
    rng = as_generator(rng)
    num_steps = check_int(num_steps, "num_steps")
    first_step = check_int(first_step, "first_step")
    state = init(x0, log_prob_fn, dtype)
    num_chains, dtype = state.x.shape[0], state.log_prob.dtype
    states = torch.empty((num_chains, num_steps) + tuple(state.x.shape[1:]), dtype=state.x.dtype, device=state.x.device)
    log_probs = torch.empty((num_chains, num_steps), dtype=dtype, device=state.x.device)
    accepted = torch.zeros((num_chains, num_steps), dtype=torch.bool, device=state.x.device)
    log_accept_ratios = torch.empty_like(log_probs)
    done = 0
    try:
        for t in range(num_steps):
            uniforms = draw_uniforms(rng, first_step + t, num_uniforms(proposal), num_chains, dtype, state.x.device)
            state, info = step(uniforms, state, log_prob_fn, proposal)
            states[:, t], log_probs[:, t] = state.x, state.log_prob
            accepted[:, t], log_accept_ratios[:, t] = info.accepted, info.log_accept_ratio
            done = t + 1
    except KeyboardInterrupt:
        # Keep what was drawn: the completed steps, flagged.
        return MHTrace(
            states[:, :done], log_probs[:, :done], accepted[:, :done], log_accept_ratios[:, :done], state, True
        )
    return MHTrace(states, log_probs, accepted, log_accept_ratios, state, False)
