r"""Torch twin of :mod:`textsampling.reference.sentence_annealing`: batched CGMH steps on :math:`\rho^{1/T}`.

The math (the tempered CGMH kernel, the schedules) is the reference's (Kirkpatrick et al. 1983; parts 2
and 4 of the series). Each step is :func:`textsampling.torch.cgmh.step` at the step's temperature, for
``B`` chains at once, with :mod:`textsampling.torch.cgmh`'s batch, shape and dtype contract; the info
adds ``temperature`` ``(B,)`` float64. :func:`sample` runs a schedule, :func:`best` picks per chain the
best state visited.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling.reference.annealing import check_temperatures
from textsampling.reference.cgmh import CGMHConfig
from textsampling.reference.chain import Trace
from textsampling.reference.sentence_annealing import at_temperature
from textsampling.torch import cgmh, chain
from textsampling.torch.cgmh import CGMHState
from textsampling.torch.randomness import check_num_chains

__all__ = [
    "SentenceAnnealingInfo",
    "SentenceAnnealingTrace",
    "at_temperature",
    "init",
    "num_uniforms",
    "step",
    "sample",
    "best",
]


class SentenceAnnealingInfo(NamedTuple):
    """The reference's :class:`~textsampling.reference.sentence_annealing.SentenceAnnealingInfo`, one row per chain."""

    move: torch.Tensor  # (B,) int64 index into MOVES
    position: torch.Tensor  # (B,) int64, -1 for an impossible move
    proposal: torch.Tensor  # (B, L)
    log_accept_prob: torch.Tensor  # (B,)
    accepted: torch.Tensor  # (B,) bool
    temperature: torch.Tensor  # (B,) float64


#: An annealing run: :class:`~textsampling.reference.chain.Trace` of
#: :class:`~textsampling.torch.cgmh.CGMHState` and :class:`SentenceAnnealingInfo`, fields ``(B, T, ...)``.
SentenceAnnealingTrace = Trace


def init(x0: torch.Tensor, config: CGMHConfig, *, protected: torch.Tensor | None = None) -> CGMHState:
    """CGMH's :func:`~textsampling.torch.cgmh.init`: the states at sentences ``x0`` ``(B, L')``."""
    return cgmh.init(x0, config, protected=protected)


def num_uniforms() -> int:
    """Uniforms per step and chain, CGMH's: move type, position, candidate, accept."""
    return cgmh.num_uniforms()


def step(uniforms: torch.Tensor, state: CGMHState, config: CGMHConfig, *, temperature: float):
    """One CGMH step for every chain at ``temperature``; ``state.log_prob`` stays untempered.

    Returns ``(CGMHState, SentenceAnnealingInfo)``.
    """
    state, info = cgmh.step(uniforms, state, at_temperature(config, temperature))
    temperatures = torch.full_like(info.log_accept_prob, float(temperature), dtype=torch.float64)  # (B,)
    return state, SentenceAnnealingInfo(*info, temperatures)


def sample(
    rng, x0: torch.Tensor, config: CGMHConfig, num_steps: int, *, first_step: int = 0, temperatures, protected=None
) -> Trace:
    """One CGMH step per temperature for every chain from ``x0`` ``(B, L')``; step ``t`` at ``temperatures[t]``.

    Twin of :func:`textsampling.reference.sentence_annealing.sample`: step ``t`` uses
    ``draw_uniforms(rng, first_step + t, 4, B)`` in float64, the loop is :func:`textsampling.torch.chain.run`.

    Returns
    -------
    SentenceAnnealingTrace
        As :func:`textsampling.torch.cgmh.sample`'s, with ``infos.temperature`` ``(B, T)``.
    """
    cgmh.check_config(config)
    temperatures = check_temperatures(temperatures)  # (T,) NumPy float64
    if temperatures.shape[0] != num_steps:
        raise ValueError(
            f"temperatures must have num_steps = {num_steps} entries, one per step, got {temperatures.shape[0]}"
        )
    state = init(x0, config, protected=protected)
    check_num_chains(rng, state.x.shape[0], "x0")
    return chain.run(
        rng, state, lambda uniforms, current, t: step(uniforms, current, config, temperature=float(temperatures[t])),
        num_uniforms(), num_steps, first_step=first_step, dtype=torch.float64,
    )


def best(trace: Trace, initial_state: CGMHState | None = None) -> CGMHState:
    """The state of highest :math:`\\log\\rho` visited by ``trace`` (per chain in the twin), the first on ties.

    ``initial_state`` (the start of the run), when given, counts too and comes first. The rule is
    :func:`textsampling.torch.chain.best`, shared with annealing.
    """
    return chain.best(trace, initial_state)
