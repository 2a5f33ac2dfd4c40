"""Torch twin of :mod:`textsampling.reference.annealing`: simulated annealing for a batch of chains.

The math and the papers are the reference's: each step is the MH twin's step at the step's
temperature (:func:`textsampling.torch.metropolis_hastings.step` with ``temperature=``). The batch
contract: states ``(B,) + state_shape``, log-densities ``(B,)``; a schedule is a 1-D tensor
``(num_steps,)`` in the chains' dtype on their device (the reference's values, computed in NumPy and
moved there, so both sides see the very same temperatures); :func:`sample` returns a
:class:`~textsampling.torch.chain.Trace` with fields ``(B, T, ...)``; :func:`best` picks each chain's
best state, ``(B,) + state_shape`` and ``(B,)``, as the reference's :func:`~textsampling.reference.annealing.best`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from textsampling._validation import check_int
from textsampling.reference import annealing as reference
from textsampling.torch import chain, metropolis_hastings
from textsampling.torch._validation import check_float_dtype, check_tensor, raise_if, resolve_device, same_device
from textsampling.torch.chain import Trace
from textsampling.torch.metropolis_hastings import MHInfo, MHState, tempered_log_prob

__all__ = [
    "MHState",
    "MHInfo",
    "AnnealingInfo",
    "AnnealingTrace",
    "logarithmic_schedule",
    "geometric_schedule",
    "linear_schedule",
    "check_temperatures",
    "tempered_log_prob",
    "init",
    "num_uniforms",
    "step",
    "sample",
    "best",
]

class AnnealingInfo(NamedTuple):
    """The reference's :class:`~textsampling.reference.annealing.AnnealingInfo`, one row per chain."""

    proposal: torch.Tensor  # (B,) + state_shape
    log_accept_prob: torch.Tensor  # (B,)
    accepted: torch.Tensor  # (B,) bool
    temperature: torch.Tensor  # (B,), the chains' dtype


#: :class:`textsampling.torch.chain.Trace` of :class:`MHState` and :class:`AnnealingInfo`, fields ``(B, T, ...)``.
AnnealingTrace = Trace


def _schedule(values: np.ndarray, dtype, device) -> torch.Tensor:
    return torch.as_tensor(values, dtype=check_float_dtype(dtype), device=resolve_device(device))


def logarithmic_schedule(initial_temperature: float, num_steps: int, dtype=None, device=None) -> torch.Tensor:
    """The reference's :func:`~textsampling.reference.annealing.logarithmic_schedule`, on ``device``."""
    return _schedule(reference.logarithmic_schedule(initial_temperature, num_steps), dtype, device)


def geometric_schedule(initial_temperature: float, final_temperature: float, num_steps: int, dtype=None, device=None):
    """The reference's :func:`~textsampling.reference.annealing.geometric_schedule`, on ``device``."""
    return _schedule(reference.geometric_schedule(initial_temperature, final_temperature, num_steps), dtype, device)


def linear_schedule(initial_temperature: float, final_temperature: float, num_steps: int, dtype=None, device=None):
    """The reference's :func:`~textsampling.reference.annealing.linear_schedule`, on ``device``."""
    return _schedule(reference.linear_schedule(initial_temperature, final_temperature, num_steps), dtype, device)


def check_temperatures(temperatures, name: str = "temperatures") -> torch.Tensor:
    """A non-empty 1-D floating tensor of finite temperatures ``> 0``."""
    temperatures = check_tensor(temperatures, name, integer=False, ndim=1)
    if temperatures.numel() == 0:
        raise ValueError(f"{name} must be non-empty")
    raise_if([~(torch.isfinite(temperatures) & (temperatures > 0)).all()], [f"{name} must be finite and > 0"])
    return temperatures


def init(x0: torch.Tensor, log_prob_fn, proposal=None, *, dtype=None) -> MHState:
    """As the MH twin: states ``(B,) + state_shape`` and their untempered log-densities ``(B,)``."""
    return metropolis_hastings.init(x0, log_prob_fn, proposal, dtype=dtype)


def num_uniforms(proposal) -> int:
    """As MH: the proposal's uniforms, then the accept uniform."""
    return metropolis_hastings.num_uniforms(proposal)


def step(uniforms: torch.Tensor, state: MHState, log_prob_fn, proposal, *, temperature, validate: bool = True):
    """One MH twin step at ``temperature`` (a number or a ``(B,)`` tensor) for every chain.

    Returns
    -------
    (MHState, AnnealingInfo), ``info.log_accept_prob`` tempered, ``state.log_prob`` not.
    """
    state, info = metropolis_hastings.step(
        uniforms, state, log_prob_fn, proposal, temperature=temperature, validate=validate
    )
    temperatures = torch.as_tensor(temperature, dtype=info.log_accept_prob.dtype, device=info.log_accept_prob.device)
    return state, AnnealingInfo(*info, temperatures.expand_as(info.log_accept_prob))  # (B,) temperature


def sample(
    rng, x0: torch.Tensor, log_prob_fn, proposal, num_steps: int, *, first_step: int = 0, temperatures, dtype=None
) -> AnnealingTrace:
    """Run ``num_steps`` annealing steps for every chain of ``x0`` ``(B,) + state_shape``, step ``t`` at
    ``temperatures[t]``.

    Parameters
    ----------
    rng : CounterGenerator or torch.Generator, on the chains' device
    x0 : torch.Tensor, shape (B,) + state_shape
    log_prob_fn : callable, ``(B,) + state_shape -> (B,)``, the untempered log-density
    proposal : torch proposal
    num_steps : int
    first_step : int
    temperatures : torch.Tensor, shape (num_steps,), all ``> 0``, on the chains' device
    dtype : torch dtype of the uniforms and log-densities (default: ``temperatures.dtype``)

    Returns
    -------
    AnnealingTrace
    """
    temperatures = check_temperatures(temperatures)
    num_steps = check_int(num_steps, "num_steps")
    if temperatures.shape[0] != num_steps:
        raise ValueError(
            f"temperatures must hold one temperature per step, shape ({num_steps},), got {tuple(temperatures.shape)}"
        )
    state = init(x0, log_prob_fn, proposal, dtype=temperatures.dtype if dtype is None else dtype)
    if not same_device(temperatures.device, state.x.device):
        raise ValueError(f"temperatures is on {temperatures.device} but x0 on {state.x.device}")
    temperature_list = temperatures.tolist()  # one synchronisation, then Python floats per step

    def step_fn(uniforms, state, t):
        return step(uniforms, state, log_prob_fn, proposal, temperature=temperature_list[t])

    return chain.run(
        rng,
        state,
        step_fn,
        num_uniforms(proposal),
        num_steps,
        first_step=first_step,
    )


def best(trace: AnnealingTrace, initial_state: MHState | None = None) -> MHState:
    """Each chain's best state visited, the first one on ties (the start, before step 0, when given).

    Twin of :func:`textsampling.reference.annealing.best` (:func:`textsampling.torch.chain.best`):
    ``x`` ``(B,) + state_shape``, ``log_prob`` ``(B,)``.
    """
    return chain.best(trace, initial_state)
