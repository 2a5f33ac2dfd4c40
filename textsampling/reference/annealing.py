r"""Simulated annealing: Metropolis–Hastings on the tempered target :math:`\rho^{1/T}` while :math:`T \to 0`.

To maximise :math:`\log\rho`, sample

.. math::
    \pi_T(x) \propto \exp\bigl(\log\rho(x) / T\bigr),

which is :math:`\pi` at :math:`T = 1`, flattens as :math:`T` grows and concentrates on
:math:`\arg\max \rho` as :math:`T \to 0`. One step at temperature :math:`T` is an MH step with
:math:`\log\alpha = \min\bigl(0, [\log\rho(y) - \log\rho(x)] / T + \log q(x|y) - \log q(y|x)\bigr)`
— the MH step itself, :func:`textsampling.reference.metropolis_hastings.step` with ``temperature=T``.
Schedules :math:`T_t`, :math:`t = 0, \dots, n-1`:

* logarithmic :math:`T_t = T_0 \log 2 / \log(t + 2)` — the slow schedule of the convergence proof
  (Geman & Geman 1984; Hajek 1988, Math. Oper. Res. 13:311);
* geometric :math:`T_t = T_0 (T_{n-1} / T_0)^{t / (n-1)}` (Kirkpatrick, Gelatt & Vecchi 1983, Science
  220:671);
* linear :math:`T_t = T_0 + (T_{n-1} - T_0)\, t / (n-1)`.

Part 2 of the series (spaces.ac.cn/archives/8084). :func:`sample` runs a schedule (step ``t`` at
temperature ``temperatures[t]``) and returns the trace; :func:`best` picks the best state visited, not
just the last one. Uniforms of a step: as in MH (proposal first, accept uniform last).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from textsampling._validation import check_int, check_positive
from textsampling.reference import chain, metropolis_hastings
from textsampling.reference.chain import Trace
from textsampling.reference.metropolis_hastings import MHInfo, MHState, tempered_log_prob

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
    "transition_matrix",
]

#: A run of annealing steps: :class:`textsampling.reference.chain.Trace` of :class:`MHState` and
#: :class:`AnnealingInfo` (``infos.log_accept_prob`` tempered, ``infos.temperature`` the schedule).
AnnealingTrace = Trace


class AnnealingInfo(NamedTuple):
    """:class:`~textsampling.reference.metropolis_hastings.MHInfo`'s fields, then the step's ``temperature``."""

    proposal: np.ndarray
    log_accept_prob: float
    accepted: bool
    temperature: float


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


def init(x0, log_prob_fn, proposal=None) -> MHState:
    r"""As MH: the state at ``x0`` with its untempered :math:`\log\rho` (:func:`metropolis_hastings.init`)."""
    return metropolis_hastings.init(x0, log_prob_fn, proposal)


def num_uniforms(proposal) -> int:
    """As MH: the proposal's uniforms, then the accept uniform."""
    return metropolis_hastings.num_uniforms(proposal)


def step(uniforms, state: MHState, log_prob_fn, proposal, *, temperature: float):
    r"""One MH step on :math:`\rho^{1/T}`: :func:`metropolis_hastings.step` at ``temperature``.

    ``state.log_prob`` stays the *untempered* :math:`\log\rho`; ``info.log_accept_prob`` is tempered.

    Returns
    -------
    (MHState, AnnealingInfo)
    """
    state, info = metropolis_hastings.step(uniforms, state, log_prob_fn, proposal, temperature=temperature)
    return state, AnnealingInfo(*info, float(temperature))


def sample(rng, x0, log_prob_fn, proposal, num_steps: int, *, first_step: int = 0, temperatures) -> AnnealingTrace:
    r"""Run ``num_steps`` annealing steps from ``x0``, step ``t`` at temperature ``temperatures[t]``.

    Parameters
    ----------
    rng : numpy.random.Generator or CounterGenerator (one chain)
    x0 : array_like
        Initial state.
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``
        The untempered :math:`\log\rho` to maximise.
    proposal : MH proposal
    num_steps : int
    first_step : int
        Step index of the first step (uniforms of step ``t`` come from ``first_step + t``).
    temperatures : array_like, shape (num_steps,)
        The schedule, e.g. from :func:`geometric_schedule`; all ``> 0``, read at ``t`` (this run's
        step count, not ``first_step + t``).

    Returns
    -------
    AnnealingTrace
        Every state visited; :func:`best` picks the best one.
    """
    temperatures = check_temperatures(temperatures)
    num_steps = check_int(num_steps, "num_steps")
    if temperatures.shape[0] != num_steps:
        raise ValueError(
            f"temperatures must hold one temperature per step, shape ({num_steps},), got {temperatures.shape}"
        )
    state = init(x0, log_prob_fn, proposal)

    def step_fn(uniforms, state, t):
        return step(uniforms, state, log_prob_fn, proposal, temperature=temperatures[t])

    return chain.run(rng, state, step_fn, num_uniforms(proposal), num_steps, first_step=first_step)


def best(trace: AnnealingTrace, initial_state: MHState | None = None) -> MHState:
    """The best state visited by ``trace`` (highest ``log_prob``), the first one on ties.

    ``initial_state`` (the start), when given, counts as visited before step 0. The rule is
    :func:`textsampling.reference.chain.best`, shared with sentence annealing.
    """
    return chain.best(trace, initial_state)


def transition_matrix(target, proposal, temperature: float) -> np.ndarray:
    """Exact kernel of one annealing step at fixed ``temperature``: MH on :math:`\\rho^{1/T}`.

    Its stationary law is ``softmax(target.log_prob_all() / temperature)``.
    """
    temperature = check_positive(temperature, "temperature")
    return metropolis_hastings.transition_matrix_from_log_probs(
        target.states, tempered_log_prob(target.log_prob_all(), temperature), proposal
    )
