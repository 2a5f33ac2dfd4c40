r"""Simulated annealing over sentences: CGMH moves on :math:`\rho^{1/T}` while :math:`T \to 0`.

Part 2 of the series (spaces.ac.cn/archives/8084) applied to part 4 (spaces.ac.cn/archives/8194): to
*search* for the best sentence containing the keywords,

.. math::
    x^\star = \arg\max_x \rho(x), \qquad \rho(x) = p(x)^\gamma\, \mathrm{sim}(x, c)\, \chi(x, c),

run the exact CGMH kernel of :mod:`textsampling.reference.cgmh` at temperature :math:`T_t`, whose
stationary law is :math:`\pi_T \propto \rho^{1/T}` (proposal weights and acceptance both tempered), along
a decreasing schedule (:func:`~textsampling.reference.annealing.geometric_schedule` and friends); as
:math:`T \to 0`, :math:`\pi_T` concentrates on the argmax. :func:`anneal` returns the best state seen.
Kirkpatrick, Gelatt & Vecchi (1983), Science 220:671; Miao et al. (2019), arXiv:1811.10996.

Uniforms: as in CGMH (move, position, candidate, accept), step ``t`` at temperature ``temperatures[t]``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from textsampling._validation import check_int, check_positive
from textsampling.randomness import as_generator
from textsampling.reference import cgmh
from textsampling.reference.annealing import (
    check_temperatures,
    geometric_schedule,
    linear_schedule,
    logarithmic_schedule,
)
from textsampling.reference.cgmh import NUM_UNIFORMS, CGMHConfig, CGMHState, num_uniforms
from textsampling.randomness import draw_uniforms_for_steps

__all__ = [
    "NUM_UNIFORMS",
    "num_uniforms",
    "SentenceAnnealingResult",
    "geometric_schedule",
    "linear_schedule",
    "logarithmic_schedule",
    "at_temperature",
    "step",
    "anneal",
    "transition_matrix",
]


class SentenceAnnealingResult(NamedTuple):
    """Best state seen (a :class:`~textsampling.reference.cgmh.CGMHState`) and the trace, row ``t`` after step ``t``."""

    best_state: CGMHState
    states: np.ndarray
    log_probs: np.ndarray
    temperatures: np.ndarray
    accepted: np.ndarray
    interrupted: bool


def at_temperature(config: CGMHConfig, temperature: float) -> CGMHConfig:
    """The same CGMH settings targeting :math:`\\rho^{1/T}`."""
    return config._replace(temperature=check_positive(temperature, "temperature"))


def step(uniforms, state: CGMHState, config: CGMHConfig, temperature: float):
    """One CGMH step at ``temperature`` (``state.log_prob`` stays the untempered :math:`\\log\\rho`)."""
    return cgmh.step(uniforms, state, at_temperature(config, temperature))


def anneal(rng, state: CGMHState, config: CGMHConfig, temperatures, first_step: int = 0) -> SentenceAnnealingResult:
    """One CGMH step per temperature; step ``t`` uses ``draw_uniforms(rng, first_step + t, 4)``.

    Returns
    -------
    SentenceAnnealingResult
        ``best_state`` maximises :math:`\\log\\rho` over the start and every state visited (the first
        one on ties).
    """
    rng = as_generator(rng)
    temperatures = check_temperatures(temperatures)
    first_step = check_int(first_step, "first_step")
    num_steps = temperatures.shape[0]
    all_uniforms = draw_uniforms_for_steps(rng, first_step, num_steps, NUM_UNIFORMS)
    states = np.empty((num_steps, config.max_length), dtype=np.int64)
    log_probs = np.empty(num_steps)
    accepted = np.zeros(num_steps, dtype=bool)
    best = state
    done = 0
    try:
        for t in range(num_steps):
            state, info = step(all_uniforms[t], state, config, temperatures[t])
            states[t], log_probs[t], accepted[t] = state.x, state.log_prob, info.accepted
            if state.log_prob > best.log_prob:
                best = state
            done = t + 1
    except KeyboardInterrupt:
        return SentenceAnnealingResult(best, states[:done], log_probs[:done], temperatures[:done], accepted[:done], True)
    return SentenceAnnealingResult(best, states, log_probs, temperatures, accepted, False)


def transition_matrix(config: CGMHConfig, states, temperature: float, protected=None) -> np.ndarray:
    """Exact kernel at ``temperature`` on enumerated sentences (see :func:`cgmh.transition_matrix`)."""
    return cgmh.transition_matrix(at_temperature(config, temperature), states, protected)
