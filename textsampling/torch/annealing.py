r"""Torch twin of :mod:`textsampling.reference.annealing`: simulated annealing for a batch of chains.

Each step is an MH step on the tempered target :math:`\rho^{1/T_t}`,

.. math::
    \log\alpha = \min\bigl(0,\ [\log\rho(y) - \log\rho(x)] / T + \log q(x|y) - \log q(y|x)\bigr),

using :func:`textsampling.torch.metropolis_hastings.log_accept_ratio` on tempered log-densities, as
the reference does (Kirkpatrick, Gelatt & Vecchi 1983; Hajek 1988; part 2 of the series,
spaces.ac.cn/archives/8084). Schedules are the reference's (computed in NumPy, moved to the device),
so both twins see the very same temperatures. :func:`anneal` keeps the best state each chain has seen
(strictly better only, as the reference).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from textsampling._validation import check_int, check_positive
from textsampling.reference import annealing as reference
from textsampling.torch import metropolis_hastings
from textsampling.torch._validation import check_float_dtype, check_tensor, raise_if, resolve_device, same_device
from textsampling.torch.metropolis_hastings import MHInfo, MHState
from textsampling.torch.randomness import as_generator, draw_uniforms

__all__ = [
    "AnnealingResult",
    "logarithmic_schedule",
    "geometric_schedule",
    "linear_schedule",
    "check_temperatures",
    "tempered_log_prob",
    "num_uniforms",
    "step",
    "anneal",
]


class AnnealingResult(NamedTuple):
    """Best state per chain ``(B,) + state_shape`` and its log-density ``(B,)``; the trace ``(B, num_steps, ...)``."""

    best_state: torch.Tensor
    best_log_prob: torch.Tensor
    states: torch.Tensor
    log_probs: torch.Tensor
    temperatures: torch.Tensor
    accepted: torch.Tensor
    interrupted: bool


def _schedule(values: np.ndarray, dtype, device) -> torch.Tensor:
    return torch.as_tensor(values, dtype=check_float_dtype(dtype), device=resolve_device(device))


def logarithmic_schedule(initial_temperature: float, num_steps: int, dtype=None, device=None) -> torch.Tensor:
    r""":math:`T_t = T_0 \log 2 / \log(t + 2)` — the reference's values on ``device``."""
    return _schedule(reference.logarithmic_schedule(initial_temperature, num_steps), dtype, device)


def geometric_schedule(initial_temperature: float, final_temperature: float, num_steps: int, dtype=None, device=None):
    r""":math:`T_t = T_0 (T_{n-1}/T_0)^{t/(n-1)}` — the reference's values on ``device``."""
    return _schedule(reference.geometric_schedule(initial_temperature, final_temperature, num_steps), dtype, device)


def linear_schedule(initial_temperature: float, final_temperature: float, num_steps: int, dtype=None, device=None):
    r""":math:`T_t = T_0 + (T_{n-1} - T_0)\, t / (n-1)` — the reference's values on ``device``."""
    return _schedule(reference.linear_schedule(initial_temperature, final_temperature, num_steps), dtype, device)


def check_temperatures(temperatures, name: str = "temperatures") -> torch.Tensor:
    """A non-empty 1-D floating tensor of finite temperatures ``> 0``."""
    temperatures = check_tensor(temperatures, name, integer=False, ndim=1)
    if temperatures.numel() == 0:
        raise ValueError(f"{name} must be non-empty")
    raise_if([~(torch.isfinite(temperatures) & (temperatures > 0)).all()], [f"{name} must be finite and > 0"])
    return temperatures


def tempered_log_prob(log_prob: torch.Tensor, temperature) -> torch.Tensor:
    r""":math:`\log\rho / T` (``-inf`` stays ``-inf``); ``temperature`` a number or a ``(B,)`` tensor."""
    return log_prob / temperature


def num_uniforms(proposal) -> int:
    """As MH: the proposal's uniforms, then the accept uniform."""
    return metropolis_hastings.num_uniforms(proposal)


def _check_temperature(temperature, state: MHState):
    if isinstance(temperature, torch.Tensor):
        if temperature.ndim == 0:
            temperature = temperature.reshape(1).expand(state.log_prob.shape[0])
        check_tensor(temperature, "temperature", integer=False, ndim=1)
        if not same_device(temperature.device, state.log_prob.device) or temperature.dtype != state.log_prob.dtype:
            raise ValueError(
                f"temperature is {temperature.dtype} on {temperature.device} but the chains are "
                f"{state.log_prob.dtype} on {state.log_prob.device}"
            )
        if temperature.shape[0] != state.log_prob.shape[0]:
            raise ValueError(f"temperature must be a number or have shape ({state.log_prob.shape[0]},) (one per chain)")
        raise_if([~(torch.isfinite(temperature) & (temperature > 0)).all()], ["temperature must be finite and > 0"])
        return temperature
    return check_positive(temperature, "temperature")


def step(uniforms: torch.Tensor, state: MHState, log_prob_fn, proposal, temperature, validate: bool = True):
    """One MH step on :math:`\\rho^{1/T}` for every chain; ``state.log_prob`` stays the untempered one.

    Returns
    -------
    (MHState, MHInfo), ``info.log_accept_ratio`` tempered.
    """
    temperature = _check_temperature(temperature, state)
    metropolis_hastings.check_step_inputs(uniforms, state, num_uniforms(proposal))
    if validate:
        raise_if([~((uniforms > 0) & (uniforms < 1)).all()], ["uniforms must lie in the open interval (0, 1)"])
    y, log_q_ratio = proposal.propose(uniforms[:, :-1], state.x)
    log_prob_y = metropolis_hastings._evaluate(log_prob_fn, y, state.log_prob.dtype, validate, "a proposed state")
    # Same acceptance function as plain MH, on tempered log-densities.
    log_alpha = metropolis_hastings.log_accept_ratio(
        tempered_log_prob(state.log_prob, temperature), tempered_log_prob(log_prob_y, temperature), log_q_ratio
    )
    accepted = torch.log(uniforms[:, -1]) < log_alpha
    keep = accepted.reshape((-1,) + (1,) * (y.ndim - 1))
    new_state = MHState(torch.where(keep, y, state.x), torch.where(accepted, log_prob_y, state.log_prob))
    return new_state, MHInfo(log_alpha, accepted, y)


def anneal(rng, x0: torch.Tensor, log_prob_fn, proposal, temperatures, first_step: int = 0) -> AnnealingResult:
    """One annealing step per temperature for every chain, keeping each chain's best state.

    Parameters
    ----------
    rng : CounterGenerator or torch.Generator
    x0 : torch.Tensor, shape (B,) + state_shape (counts as seen)
    log_prob_fn : callable, ``(B,) + state_shape -> (B,)``, the untempered :math:`\\log\\rho`
    proposal : torch proposal
    temperatures : torch.Tensor, shape (num_steps,), all ``> 0``, the dtype of the chains
    first_step : int

    Returns
    -------
    AnnealingResult
    """
    rng = as_generator(rng)
    temperatures = check_temperatures(temperatures)
    first_step = check_int(first_step, "first_step")
    state = metropolis_hastings.init(x0, log_prob_fn, temperatures.dtype)
    if not same_device(temperatures.device, state.x.device):
        raise ValueError(f"temperatures is on {temperatures.device} but x0 on {state.x.device}")
    num_chains, num_steps, device = state.x.shape[0], temperatures.shape[0], state.x.device
    best_state, best_log_prob = state.x.clone(), state.log_prob.clone()
    temperature_list = temperatures.tolist()  # one synchronisation, then Python floats per step
    states = torch.empty((num_chains, num_steps) + tuple(state.x.shape[1:]), dtype=state.x.dtype, device=device)
    log_probs = torch.empty((num_chains, num_steps), dtype=temperatures.dtype, device=device)
    accepted = torch.zeros((num_chains, num_steps), dtype=torch.bool, device=device)
    done = 0
    try:
        for t in range(num_steps):
            uniforms = draw_uniforms(
                rng, first_step + t, num_uniforms(proposal), num_chains, temperatures.dtype, device
            )
            state, info = step(uniforms, state, log_prob_fn, proposal, temperature_list[t])
            states[:, t], log_probs[:, t], accepted[:, t] = state.x, state.log_prob, info.accepted
            # Strictly better only: the first state reaching the best value is kept.
            better = state.log_prob > best_log_prob
            best_state = torch.where(better.reshape((-1,) + (1,) * (state.x.ndim - 1)), state.x, best_state)
            best_log_prob = torch.where(better, state.log_prob, best_log_prob)
            done = t + 1
    except KeyboardInterrupt:
        return AnnealingResult(
            best_state,
            best_log_prob,
            states[:, :done],
            log_probs[:, :done],
            temperatures[:done],
            accepted[:, :done],
            True,
        )
    return AnnealingResult(best_state, best_log_prob, states, log_probs, temperatures, accepted, False)
