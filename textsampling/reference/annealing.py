r"""Simulated annealing: Metropolis–Hastings on the tempered target :math:`\rho^{1/T}` while :math:`T \to 0`.

To maximise :math:`\log\rho`, sample

.. math::
    \pi_T(x) \propto \exp\bigl(\log\rho(x) / T\bigr),

which is :math:`\pi` at :math:`T = 1`, flattens as :math:`T` grows and concentrates on
:math:`\arg\max \rho` as :math:`T \to 0`. One step at temperature :math:`T` is an MH step with
:math:`\log\alpha = \min\bigl(0, [\log\rho(y) - \log\rho(x)] / T + \log q(x|y) - \log q(y|x)\bigr)`
(the very :func:`~textsampling.reference.metropolis_hastings.log_accept_ratio` of plain MH, fed the
tempered log-densities). Schedules :math:`T_t`, :math:`t = 0, \dots, n-1`:

* logarithmic :math:`T_t = T_0 \log 2 / \log(t + 2)` — the slow schedule of the convergence proof
  (Geman & Geman 1984; Hajek 1988, Math. Oper. Res. 13:311);
* geometric :math:`T_t = T_0 (T_{n-1} / T_0)^{t / (n-1)}` (Kirkpatrick, Gelatt & Vecchi 1983, Science
  220:671);
* linear :math:`T_t = T_0 + (T_{n-1} - T_0)\, t / (n-1)`.

Part 2 of the series (spaces.ac.cn/archives/8084). :func:`anneal` returns the best state seen, not
just the last one. Uniforms of a step: as in MH (proposal first, accept uniform last).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from textsampling._validation import check_int, check_positive, check_uniforms
from textsampling.randomness import as_generator
from textsampling.reference import metropolis_hastings
from textsampling.reference.metropolis_hastings import MHInfo, MHState
from textsampling.randomness import iterate_step_uniforms

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
    "transition_matrix",
]


class AnnealingResult(NamedTuple):
    """Outcome of :func:`anneal`: the best state seen and the whole trace (row ``t`` = after step ``t``).

    ``interrupted`` is True when a ``KeyboardInterrupt`` cut the run short; the trace then holds the
    completed steps and the best state among them (or the start).
    """

    best_state: np.ndarray
    best_log_prob: float
    states: np.ndarray
    log_probs: np.ndarray
    temperatures: np.ndarray
    accepted: np.ndarray
    interrupted: bool


def check_temperatures(temperatures, name: str = "temperatures") -> np.ndarray:
    """A non-empty 1-D array of finite temperatures ``> 0``."""
    temperatures = np.asarray(temperatures, dtype=np.float64)
    if temperatures.ndim != 1 or temperatures.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {temperatures.shape}")
    bad = ~(np.isfinite(temperatures) & (temperatures > 0))
    if np.any(bad):
        raise ValueError(f"{name} must be finite and > 0, got {temperatures[bad][0]!r} at index {np.argmax(bad)}")
    return temperatures


def logarithmic_schedule(initial_temperature: float, num_steps: int) -> np.ndarray:
    r""":math:`T_t = T_0 \log 2 / \log(t + 2)`, :math:`t = 0..n-1` (so :math:`T_0` first)."""
    initial_temperature = check_positive(initial_temperature, "initial_temperature")
    num_steps = check_int(num_steps, "num_steps", minimum=1)
    t = np.arange(num_steps)
    return check_temperatures(initial_temperature * np.log(2.0) / np.log(t + 2.0))


def geometric_schedule(initial_temperature: float, final_temperature: float, num_steps: int) -> np.ndarray:
    r""":math:`T_t = T_0 (T_{n-1}/T_0)^{t/(n-1)}`: a constant ratio between consecutive temperatures."""
    initial_temperature = check_positive(initial_temperature, "initial_temperature")
    final_temperature = check_positive(final_temperature, "final_temperature")
    num_steps = check_int(num_steps, "num_steps", minimum=1)
    fraction = np.arange(num_steps) / max(num_steps - 1, 1)
    # Interpolate in log space: exact endpoints, never an underflow to 0.
    log_t = np.log(initial_temperature) + fraction * (np.log(final_temperature) - np.log(initial_temperature))
    return check_temperatures(np.exp(log_t))


def linear_schedule(initial_temperature: float, final_temperature: float, num_steps: int) -> np.ndarray:
    r""":math:`T_t = T_0 + (T_{n-1} - T_0)\, t / (n-1)`."""
    initial_temperature = check_positive(initial_temperature, "initial_temperature")
    final_temperature = check_positive(final_temperature, "final_temperature")
    num_steps = check_int(num_steps, "num_steps", minimum=1)
    fraction = np.arange(num_steps) / max(num_steps - 1, 1)
    return check_temperatures(initial_temperature + fraction * (final_temperature - initial_temperature))


def tempered_log_prob(log_prob, temperature: float):
    r""":math:`\log\rho / T` (``-inf`` stays ``-inf``)."""
    temperature = check_positive(temperature, "temperature")
    return np.asarray(log_prob, dtype=np.float64) / temperature


def num_uniforms(proposal) -> int:
    """As MH: the proposal's uniforms, then the accept uniform."""
    return metropolis_hastings.num_uniforms(proposal)


def step(uniforms, state: MHState, log_prob_fn, proposal, temperature: float):
    """One MH step on :math:`\\rho^{1/T}`; ``state.log_prob`` stays the *untempered* :math:`\\log\\rho`.

    Returns
    -------
    (MHState, MHInfo)
        ``info.log_accept_ratio`` is the tempered one.
    """
    temperature = check_positive(temperature, "temperature")
    uniforms = check_uniforms(uniforms, num_uniforms(proposal))
    y, log_q_ratio = proposal.propose(uniforms[:-1], state.x)
    log_prob_y = metropolis_hastings._log_prob_one(log_prob_fn, y)
    # Same acceptance function as plain MH, on tempered log-densities.
    log_alpha = metropolis_hastings.log_accept_ratio(
        tempered_log_prob(state.log_prob, temperature), tempered_log_prob(log_prob_y, temperature), log_q_ratio
    )
    accepted = bool(np.log(uniforms[-1]) < log_alpha)
    new_state = MHState(np.asarray(y), log_prob_y) if accepted else state
    return new_state, MHInfo(float(log_alpha), accepted, np.asarray(y))


def anneal(rng, x0, log_prob_fn, proposal, temperatures, first_step: int = 0) -> AnnealingResult:
    """Run one annealing step per temperature and keep the best state seen.

    Parameters
    ----------
    rng : numpy.random.Generator or CounterGenerator (one chain)
    x0 : array_like
        Initial state (counts as seen).
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``
        The untempered :math:`\\log\\rho` to maximise.
    proposal : MH proposal
    temperatures : array_like, shape (num_steps,)
        E.g. from :func:`geometric_schedule`; all ``> 0``.
    first_step : int
        Step index of the first step (uniforms of step ``t`` come from ``first_step + t``).

    Returns
    -------
    AnnealingResult
    """
    rng = as_generator(rng)
    temperatures = check_temperatures(temperatures)
    first_step = check_int(first_step, "first_step")
    num_steps = temperatures.shape[0]
    state = metropolis_hastings.init(x0, log_prob_fn)
    best_state, best_log_prob = state.x.copy(), state.log_prob
    step_uniforms = iterate_step_uniforms(rng, first_step, num_steps, num_uniforms(proposal))
    states = np.empty((num_steps,) + state.x.shape, dtype=state.x.dtype)
    log_probs = np.empty(num_steps)
    accepted = np.zeros(num_steps, dtype=bool)
    done = 0
    try:
        for t, uniforms in enumerate(step_uniforms):
            state, info = step(uniforms, state, log_prob_fn, proposal, temperatures[t])
            states[t], log_probs[t], accepted[t] = state.x, state.log_prob, info.accepted
            # Strictly better only: the first state reaching the best value is kept.
            if state.log_prob > best_log_prob:
                best_state, best_log_prob = state.x.copy(), state.log_prob
            done = t + 1
    except KeyboardInterrupt:
        return AnnealingResult(
            best_state, best_log_prob, states[:done], log_probs[:done], temperatures[:done], accepted[:done], True
        )
    return AnnealingResult(best_state, best_log_prob, states, log_probs, temperatures, accepted, False)


def transition_matrix(target, proposal, temperature: float) -> np.ndarray:
    """Exact kernel of one annealing step at fixed ``temperature``: MH on :math:`\\rho^{1/T}`.

    Its stationary law is ``softmax(target.log_prob_all() / temperature)``.
    """
    temperature = check_positive(temperature, "temperature")
    return metropolis_hastings.transition_matrix_from_log_probs(
        target.states, tempered_log_prob(target.log_prob_all(), temperature), proposal
    )
