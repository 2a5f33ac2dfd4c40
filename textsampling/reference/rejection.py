r"""Rejection sampling under an envelope :math:`M q \ge \rho`, in log space.

Draw :math:`x \sim q` and :math:`u \sim U(0, 1)`; keep :math:`x` iff

.. math::
    u < \frac{\rho(x)}{M q(x)} \iff \log u < \log\rho(x) - \log M - \log q(x).

Kept samples follow :math:`\pi = \rho / Z` exactly, and each proposal is kept with probability
:math:`\sum_x q(x) \rho(x) / (M q(x)) = Z / M`, so the number kept out of ``n`` proposals is
Binomial(``n``, :math:`Z/M`). The envelope must hold everywhere; where a drawn :math:`x` violates it
(:math:`\rho(x) > M q(x)`) the output would be biased, so :func:`step` raises instead of clipping.
Von Neumann (1951), "Various techniques used in connection with random digits"; part 1 of the series
(spaces.ac.cn/archives/8062).

Uniforms of one proposal: ``uniforms[:-1]`` go to ``proposal.sample``, ``uniforms[-1]`` decides.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from textsampling._validation import check_int, check_uniforms
from textsampling.randomness import as_generator, draw_uniforms_for_steps

__all__ = [
    "RejectionResult",
    "ENVELOPE_TOLERANCE",
    "check_log_envelope",
    "num_uniforms",
    "log_accept_probability",
    "step",
    "sample",
    "tightest_log_envelope",
]

#: Slack allowed on :math:`\log\rho - \log M - \log q \le 0` for float64 rounding (e.g. ``rho = q``, ``M = 1``).
ENVELOPE_TOLERANCE = 1e-12


class RejectionResult(NamedTuple):
    """Accepted samples (in order), how many proposals were made and how many were kept.

    ``acceptance_rate = num_accepted / num_proposed`` estimates :math:`Z / M`.
    """

    samples: np.ndarray
    num_proposed: int
    num_accepted: int
    acceptance_rate: float


def check_log_envelope(log_envelope) -> float:
    """:math:`\\log M` as a float; it must be finite (the envelope :math:`M` must be a finite number > 0)."""
    try:
        value = float(log_envelope)
    except (TypeError, ValueError):
        raise TypeError(f"log_envelope must be a real number (log M), got {log_envelope!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"log_envelope must be finite (envelope M = exp(log_envelope) > 0 and finite), got {value}")
    return value


def num_uniforms(proposal) -> int:
    """Uniforms per proposal: the proposal's, then the accept uniform."""
    return int(proposal.num_uniforms) + 1


def log_accept_probability(log_prob_values, proposal_log_probs, log_envelope) -> np.ndarray:
    r""":math:`\log\rho(x) - \log M - \log q(x)` for each proposed ``x``, checked against the envelope.

    Raises
    ------
    ValueError
        If some value exceeds ``ENVELOPE_TOLERANCE`` (the envelope is violated at that ``x``), or the
        inputs hold NaN/+inf or differ in shape.
    """
    log_envelope = check_log_envelope(log_envelope)
    log_rho = np.asarray(log_prob_values, dtype=np.float64)
    log_q = np.asarray(proposal_log_probs, dtype=np.float64)
    if log_rho.shape != log_q.shape:
        raise ValueError(f"log_prob_values and proposal_log_probs differ in shape: {log_rho.shape} vs {log_q.shape}")
    if np.any(np.isnan(log_rho)) or np.any(log_rho == np.inf):
        raise ValueError("log_prob_values must be finite or -inf, never NaN/+inf")
    if np.any(~np.isfinite(log_q)):
        raise ValueError("proposal_log_probs must be finite: a drawn x has q(x) > 0")
    values = log_rho - log_envelope - log_q
    if np.any(values > ENVELOPE_TOLERANCE):
        worst = int(np.argmax(values))
        raise ValueError(
            f"log_envelope = {log_envelope!r} is too small: at a drawn state, log rho - log q = "
            f"{float(log_rho[worst] - log_q[worst])!r} > log_envelope (rho > M q there), so the samples would be "
            "biased; raise log_envelope to at least the maximum of log rho - log q"
        )
    return values


def step(uniforms, log_prob_fn, proposal, log_envelope):
    """Propose a batch and decide each one, deterministic given ``uniforms``.

    Parameters
    ----------
    uniforms : array_like, shape (N, proposal.num_uniforms + 1)
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``
    proposal : independent proposal (``sample``, normalised ``log_prob``)
    log_envelope : float
        :math:`\\log M` with :math:`\\rho \\le M q` everywhere.

    Returns
    -------
    (states, accepted, log_accept_probabilities)
        All ``N`` proposals, the boolean decisions, and :math:`\\log(\\rho / (M q))`.
    """
    uniforms = check_uniforms(uniforms, num_uniforms(proposal))
    if uniforms.ndim != 2:
        raise ValueError(f"uniforms must have shape (N, {num_uniforms(proposal)}), got {uniforms.shape}")
    states = proposal.sample(uniforms[:, :-1])
    log_alpha = log_accept_probability(log_prob_fn(states), proposal.log_prob(states), log_envelope)
    # Keep x iff log u < log rho - log M - log q.
    accepted = np.log(uniforms[:, -1]) < log_alpha
    return states, accepted, log_alpha


def sample(rng, log_prob_fn, proposal, log_envelope, num_proposals: int, first_step: int = 0) -> RejectionResult:
    """Make ``num_proposals`` proposals and keep the accepted ones (a fixed budget, so the count kept
    is exactly Binomial(``num_proposals``, Z / M)).

    Proposal ``n`` uses ``draw_uniforms(rng, first_step + n, num_uniforms(proposal))``.
    """
    rng = as_generator(rng)
    log_envelope = check_log_envelope(log_envelope)
    num_proposals = check_int(num_proposals, "num_proposals", minimum=1)
    first_step = check_int(first_step, "first_step")
    uniforms = draw_uniforms_for_steps(rng, first_step, num_proposals, num_uniforms(proposal))
    states, accepted, _ = step(uniforms, log_prob_fn, proposal, log_envelope)
    num_accepted = int(accepted.sum())
    return RejectionResult(states[accepted], num_proposals, num_accepted, num_accepted / num_proposals)


def tightest_log_envelope(target, proposal) -> float:
    r"""The smallest valid :math:`\log M = \max_x [\log\rho(x) - \log q(x)]` over an enumerable target.

    Raises ``ValueError`` if ``q(x) = 0`` at a state with :math:`\rho(x) > 0` (no finite envelope).
    """
    log_rho = target.log_prob_all()
    log_q = np.asarray(proposal.log_prob(target.states), dtype=np.float64)
    support = log_rho > -np.inf
    if np.any(log_q[support] == -np.inf):
        raise ValueError("proposal gives probability 0 to a state of the target's support: no envelope exists")
    return float(np.max(log_rho[support] - log_q[support]))
