r"""Torch twin of :mod:`textsampling.reference.sentence_annealing`: batched CGMH steps on :math:`\rho^{1/T}`.

Each step is :func:`textsampling.torch.cgmh.step` at the step's temperature (Kirkpatrick et al. 1983;
parts 2 and 4 of the series); :func:`update_best` keeps, per chain, the best state seen so far;
:func:`anneal` runs a schedule (twin of the reference :func:`~textsampling.reference.sentence_annealing.anneal`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling._validation import check_int
from textsampling.reference.annealing import check_temperatures
from textsampling.reference.cgmh import CGMHConfig
from textsampling.reference.sentence_annealing import at_temperature
from textsampling.torch import cgmh
from textsampling.torch.cgmh import NUM_UNIFORMS, CGMHState, num_uniforms
from textsampling.torch.mlm_gibbs import check_num_chains
from textsampling.torch.randomness import as_generator, draw_uniforms

__all__ = [
    "NUM_UNIFORMS",
    "num_uniforms",
    "SentenceAnnealingResult",
    "at_temperature",
    "step",
    "update_best",
    "anneal",
]


class SentenceAnnealingResult(NamedTuple):
    """Best state per chain and the trace, chains first (column ``t`` after step ``t``); the reference's fields."""

    best_state: CGMHState  # x (B, L), protected (B, L), log_prob (B,)
    states: torch.Tensor  # (B, T, L)
    log_probs: torch.Tensor  # (B, T) untempered log rho
    temperatures: torch.Tensor  # (T,) float64, the schedule's steps that ran
    accepted: torch.Tensor  # (B, T) bool
    interrupted: bool


def step(uniforms: torch.Tensor, state: CGMHState, config: CGMHConfig, temperature: float):
    """One CGMH step for every chain at ``temperature``; ``state.log_prob`` stays untempered."""
    return cgmh.step(uniforms, state, at_temperature(config, temperature))


def update_best(best: CGMHState, state: CGMHState) -> CGMHState:
    """Per chain, ``state`` where its :math:`\\log\\rho` is strictly higher than ``best``'s, else ``best``."""
    better = state.log_prob > best.log_prob  # (B,)
    return CGMHState(
        torch.where(better[:, None], state.x, best.x),
        torch.where(better[:, None], state.protected, best.protected),
        torch.where(better, state.log_prob, best.log_prob),
    )


def anneal(rng, state: CGMHState, config: CGMHConfig, temperatures, first_step: int = 0) -> SentenceAnnealingResult:
    """One CGMH step per temperature for every chain; step ``t`` uses ``draw_uniforms(rng, first_step + t, 4, B)``.

    Twin of :func:`textsampling.reference.sentence_annealing.anneal` (float64 uniforms; with a
    :class:`~textsampling.torch.randomness.CounterGenerator`, chain ``b`` is the reference chain run with
    ``CounterGenerator(seed, rng.chain_index[b])``). A KeyboardInterrupt keeps the completed steps.

    Returns
    -------
    SentenceAnnealingResult
        ``best_state`` maximises :math:`\\log\\rho` per chain over the start and every state visited
        (the first one on ties).
    """
    rng = as_generator(rng)
    if not isinstance(config, CGMHConfig):
        raise TypeError(
            f"config must be a CGMHConfig (from textsampling.reference.cgmh.make_config), got {type(config).__name__}"
        )
    temperatures = check_temperatures(temperatures)  # (T,) NumPy float64
    first_step = check_int(first_step, "first_step")
    cgmh.check_state(state)
    num_chains, width = state.x.shape
    check_num_chains(rng, num_chains, "state.x")
    num_steps = temperatures.shape[0]
    device = state.x.device
    states = torch.empty((num_chains, num_steps, width), dtype=state.x.dtype, device=device)
    log_probs = torch.empty((num_chains, num_steps), dtype=state.log_prob.dtype, device=device)
    accepted = torch.zeros((num_chains, num_steps), dtype=torch.bool, device=device)
    schedule = torch.as_tensor(temperatures, dtype=torch.float64, device=device)  # (T,)
    best = state
    done = 0
    try:
        for t in range(num_steps):
            uniforms = draw_uniforms(rng, first_step + t, NUM_UNIFORMS, num_chains, dtype=torch.float64, device=device)
            state, info = step(uniforms, state, config, float(temperatures[t]))
            states[:, t], log_probs[:, t], accepted[:, t] = state.x, state.log_prob, info.accepted
            best = update_best(best, state)
            done = t + 1
    except KeyboardInterrupt:
        # Keep what was drawn: the completed steps, flagged.
        return SentenceAnnealingResult(
            best, states[:, :done], log_probs[:, :done], schedule[:done], accepted[:, :done], True
        )
    return SentenceAnnealingResult(best, states, log_probs, schedule, accepted, False)
