r"""Wrong annealed importance sampling and parallel tempering steps, beside the correct ones.

Each wrong step has the signature of the correct one (:func:`textsampling.reference.annealed_importance.step`
or :func:`textsampling.reference.parallel_tempering.step`) and gets one piece of the algorithm wrong, as
published code has:

* ``ais-weight-after-move`` — the AIS weight :math:`\gamma_k / \gamma_{k-1}` evaluated at the particle
  *after* its move instead of before it (Neal 2001, eq. 4, uses :math:`x_{k-1}`). Then
  :math:`m_k = (m_{k-1} T_k) \odot \gamma_k/\gamma_{k-1} \ne \gamma_k` and :math:`\mathbb{E}[\hat Z] \ne Z`.
* ``ais-kernel-previous-temperature`` — the weight is right but the move leaves :math:`\gamma_{k-1}`
  invariant instead of :math:`\gamma_k` (an off-by-one in the ladder): :math:`m_k = \gamma_k T_{k-1} \ne \gamma_k`.
* ``pt-swap-wrong-sign`` — the swap of replicas :math:`i < j` accepted with
  :math:`(1/T_i - 1/T_j)(\log\rho(x_i) - \log\rho(x_j))`, the sign flipped: swaps push the better
  state to the *hotter* replica.
* ``pt-swap-no-temperature`` — the swap accepted with :math:`\log\rho(x_j) - \log\rho(x_i)`, as if the
  two replicas were at one temperature (the factor :math:`1/T_i - 1/T_j` left out).

These are not kinds of ``textsampling check`` (a particle system and a product chain are not one-state
steps on a named target), so they are a separate collection, :data:`CASES`, of :class:`TemperingCase`.
The exact tests (``tests/test_reference_annealed_importance.py``, ``tests/test_reference_parallel_tempering.py``)
build the exact law of each step from its own uniforms-to-move map and must fail on every case here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from textsampling.randomness import integer_from_uniform
from textsampling.reference import annealed_importance, parallel_tempering
from textsampling.reference.metropolis_hastings import log_accept_ratio

__all__ = [
    "TemperingCase",
    "CASES",
    "ais_weight_after_move",
    "ais_kernel_previous_temperature",
    "pt_swap_wrong_sign",
    "pt_swap_no_temperature",
]


@dataclass(frozen=True)
class TemperingCase:
    """A wrong step: ``name``, ``algorithm`` (``"annealed_importance"`` or ``"parallel_tempering"``), a
    one-line ``description`` of the bug, and ``step`` with the signature of that module's ``step``."""

    name: str
    algorithm: str
    description: str
    step: Callable


def ais_weight_after_move(uniforms, state, log_prob_fn, base, proposal, *, beta):
    """BUG: the correct rung, but the weight is computed from the particles *after* the move."""
    new_state, info = annealed_importance.step(uniforms, state, log_prob_fn, base, proposal, beta=beta)
    increment = annealed_importance.log_weight_increment(new_state.log_base_prob, new_state.log_prob, state.beta, beta)
    new_state = new_state._replace(log_weight=state.log_weight + increment)
    return new_state, info._replace(log_weight_increment=increment)


def ais_kernel_previous_temperature(uniforms, state, log_prob_fn, base, proposal, *, beta):
    """BUG: the right weight, but the move is an MH step at the previous rung's beta."""
    increment = annealed_importance.log_weight_increment(state.log_base_prob, state.log_prob, state.beta, beta)
    # A rung at the unchanged beta only moves (its increment is 0): the move of gamma_{k-1}.
    new_state, info = annealed_importance.step(uniforms, state, log_prob_fn, base, proposal, beta=state.beta)
    new_state = new_state._replace(log_weight=state.log_weight + increment, beta=float(beta))
    return new_state, info._replace(log_weight_increment=increment, beta=float(beta))


def _pt_with_swap(swap_log_accept_prob):
    """A parallel tempering step whose swaps use ``swap_log_accept_prob``; moves and uniforms as the reference."""

    def step(uniforms, state, log_prob_fn, proposal, *, temperatures):
        temperatures = parallel_tempering.check_temperatures(temperatures)
        num_replicas = temperatures.shape[0]
        uniforms = np.asarray(uniforms, dtype=np.float64)
        split = num_replicas * (int(proposal.num_uniforms) + 1)
        moved, move_info = parallel_tempering.move(
            uniforms[:split], state, log_prob_fn, proposal, temperatures=temperatures
        )
        swap_uniforms = uniforms[split:]
        x, log_prob = moved.x.copy(), moved.log_prob.copy()
        proposed = np.zeros(num_replicas - 1, dtype=bool)
        log_alphas = np.full(num_replicas - 1, np.nan)
        accepted = np.zeros(num_replicas - 1, dtype=bool)
        for i in range(int(integer_from_uniform(swap_uniforms[0], 2)), num_replicas - 1, 2):
            proposed[i] = True
            log_alphas[i] = swap_log_accept_prob(log_prob[i], log_prob[i + 1], temperatures[i], temperatures[i + 1])
            accepted[i] = bool(np.log(swap_uniforms[1 + i]) < log_alphas[i])
            if accepted[i]:
                x[[i, i + 1]] = x[[i + 1, i]]
                log_prob[[i, i + 1]] = log_prob[[i + 1, i]]
        info = parallel_tempering.PTInfo(*move_info, proposed, log_alphas, accepted)
        return parallel_tempering.PTState(x, log_prob), info

    return step


def _wrong_sign(log_prob_i, log_prob_j, temperature_i, temperature_j):
    # BUG: log rho(x_i) - log rho(x_j) where the ratio needs log rho(x_j) - log rho(x_i).
    return float(log_accept_ratio(0.0, (1.0 / temperature_i - 1.0 / temperature_j) * (log_prob_i - log_prob_j), 0.0))


def _no_temperature(log_prob_i, log_prob_j, temperature_i, temperature_j):
    # BUG: the plain MH ratio of the two states, as if both replicas were at one temperature.
    return float(log_accept_ratio(log_prob_i, log_prob_j, 0.0))


pt_swap_wrong_sign = _pt_with_swap(_wrong_sign)
pt_swap_no_temperature = _pt_with_swap(_no_temperature)

#: The wrong steps, by name.
CASES: dict[str, TemperingCase] = {
    case.name: case
    for case in (
        TemperingCase(
            "ais-weight-after-move",
            "annealed_importance",
            "AIS weight gamma_k/gamma_(k-1) evaluated at the particle after its move, not before",
            ais_weight_after_move,
        ),
        TemperingCase(
            "ais-kernel-previous-temperature",
            "annealed_importance",
            "AIS move at the previous rung's beta (leaves gamma_(k-1) invariant, not gamma_k)",
            ais_kernel_previous_temperature,
        ),
        TemperingCase(
            "pt-swap-wrong-sign",
            "parallel_tempering",
            "replica swap accepted with the sign of the log-density difference flipped",
            pt_swap_wrong_sign,
        ),
        TemperingCase(
            "pt-swap-no-temperature",
            "parallel_tempering",
            "replica swap accepted without the factor 1/T_i - 1/T_j (as if at one temperature)",
            pt_swap_no_temperature,
        ),
    )
}
