r"""Simulated annealing over sentences: CGMH moves on :math:`\rho^{1/T}` while :math:`T \to 0`.

Part 2 of the series (spaces.ac.cn/archives/8084) applied to part 4 (spaces.ac.cn/archives/8194): to
*search* for the best sentence containing the keywords,

.. math::
    x^\star = \arg\max_x \rho(x), \qquad \rho(x) = p(x)^\gamma\, \mathrm{sim}(x, c)\, \chi(x, c),

run the exact CGMH kernel of :mod:`textsampling.reference.cgmh` at temperature :math:`T_t`, whose
stationary law is :math:`\pi_T \propto \rho^{1/T}` (proposal weights and acceptance both tempered), along
a decreasing schedule (:func:`~textsampling.reference.annealing.geometric_schedule` and friends); as
:math:`T \to 0`, :math:`\pi_T` concentrates on the argmax. :func:`sample` runs the schedule and
:func:`best` picks the best state visited. Kirkpatrick, Gelatt & Vecchi (1983), Science 220:671; Miao et
al. (2019), arXiv:1811.10996.

Uniforms: as in CGMH (move, position, candidate, accept), step ``t`` at temperature ``temperatures[t]``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from textsampling._validation import check_positive
from textsampling.reference import cgmh, chain
from textsampling.reference.annealing import (
    check_temperatures,
    geometric_schedule,
    linear_schedule,
    logarithmic_schedule,
)
from textsampling.reference.cgmh import CGMHConfig, CGMHState
from textsampling.reference.chain import Trace

__all__ = [
    "SentenceAnnealingInfo",
    "SentenceAnnealingTrace",
    "geometric_schedule",
    "linear_schedule",
    "logarithmic_schedule",
    "at_temperature",
    "init",
    "num_uniforms",
    "step",
    "sample",
    "best",
    "transition_matrix",
]


class SentenceAnnealingInfo(NamedTuple):
    """:class:`~textsampling.reference.cgmh.CGMHInfo`'s fields, then the step's ``temperature``."""

    move: str
    position: int
    proposal: np.ndarray
    log_accept_prob: float
    accepted: bool
    temperature: float


#: An annealing run: :class:`~textsampling.reference.chain.Trace` of
#: :class:`~textsampling.reference.cgmh.CGMHState` and :class:`SentenceAnnealingInfo`.
SentenceAnnealingTrace = Trace


def at_temperature(config: CGMHConfig, temperature: float) -> CGMHConfig:
    """The same CGMH settings targeting :math:`\\rho^{1/T}`."""
    return config._replace(temperature=check_positive(temperature, "temperature"))


def init(x0, config: CGMHConfig, *, protected=None) -> CGMHState:
    """CGMH's :func:`~textsampling.reference.cgmh.init`: the state at sentence ``x0``."""
    return cgmh.init(x0, config, protected=protected)


def num_uniforms() -> int:
    """Uniforms per step, CGMH's: move type, position, candidate, accept."""
    return cgmh.num_uniforms()


def step(uniforms, state: CGMHState, config: CGMHConfig, *, temperature: float):
    """One CGMH step at ``temperature`` (``state.log_prob`` stays the untempered :math:`\\log\\rho`).

    Returns ``(CGMHState, SentenceAnnealingInfo)``.
    """
    state, info = cgmh.step(uniforms, state, at_temperature(config, temperature))
    return state, SentenceAnnealingInfo(*info, float(temperature))


def sample(rng, x0, config: CGMHConfig, num_steps: int, *, first_step: int = 0, temperatures, protected=None) -> Trace:
    """One CGMH step per temperature from the sentence ``x0``; step ``t`` at ``temperatures[t]``.

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, 4)``; the loop is
    :func:`textsampling.reference.chain.run`. ``temperatures`` has ``num_steps`` entries, finite and
    ``> 0`` (a schedule such as :func:`geometric_schedule`). :func:`best` gives the best state visited.

    Returns
    -------
    SentenceAnnealingTrace
        As :func:`textsampling.reference.cgmh.sample`'s, with ``infos.temperature`` ``(T,)``.
    """
    temperatures = check_temperatures(temperatures)
    if temperatures.shape[0] != num_steps:
        raise ValueError(
            f"temperatures must have num_steps = {num_steps} entries, one per step, got {temperatures.shape[0]}"
        )
    state = init(x0, config, protected=protected)
    return chain.run(
        rng, state, lambda uniforms, current, t: step(uniforms, current, config, temperature=temperatures[t]),
        num_uniforms(), num_steps, first_step=first_step,
    )


def best(trace: Trace, initial_state: CGMHState | None = None) -> CGMHState:
    """The state of highest :math:`\\log\\rho` visited by ``trace`` (per chain in the twin), the first on ties.

    ``initial_state`` (the start of the run), when given, counts too and comes first. The rule is
    :func:`textsampling.reference.chain.best`, shared with annealing.
    """
    return chain.best(trace, initial_state)


def transition_matrix(config: CGMHConfig, states, temperature: float, protected=None) -> np.ndarray:
    """Exact kernel at ``temperature`` on enumerated sentences (see :func:`cgmh.transition_matrix`)."""
    return cgmh.transition_matrix(at_temperature(config, temperature), states, protected)
