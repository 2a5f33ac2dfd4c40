r"""Self-normalised importance sampling, in log space.

Draw :math:`x_1, \dots, x_N \sim q` independently and weight each by the unnormalised ratio
:math:`w_i = \rho(x_i) / q(x_i)`. Then

.. math::
    \hat Z = \frac1N \sum_i w_i, \qquad
    \hat{\mathbb E}_\pi[f] = \sum_i \bar w_i f(x_i),\quad \bar w_i = \frac{w_i}{\sum_j w_j}, \qquad
    \mathrm{ESS} = \frac{(\sum_i w_i)^2}{\sum_i w_i^2} = \frac{1}{\sum_i \bar w_i^2}.

:math:`\hat Z` is unbiased; the self-normalised estimate is consistent (bias :math:`O(1/N)`) and needs
only :math:`\rho`, not :math:`Z`. The ESS (Kong 1992) falls from :math:`N` towards 1 as :math:`q` moves
away from :math:`\pi`. Everything is computed from :math:`\log w_i = \log\rho(x_i) - \log q(x_i)` with
``logsumexp``, so weights that would underflow as raw numbers are kept exactly. Part 1 of the series
(spaces.ac.cn/archives/8062); Owen, *Monte Carlo theory, methods and examples* (2013), ch. 9.

Uniforms: sample ``n`` uses the ``proposal.num_uniforms`` uniforms of step ``n``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from textsampling._validation import check_int
from textsampling.randomness import as_generator, draw_uniforms_for_steps

__all__ = [
    "ImportanceResult",
    "num_uniforms",
    "log_weights",
    "normalized_weights",
    "effective_sample_size",
    "log_normalizer_estimate",
    "estimate",
    "step",
    "sample",
]


class ImportanceResult(NamedTuple):
    """Samples from the proposal and everything derived from their weights."""

    states: np.ndarray
    log_weights: np.ndarray
    normalized_weights: np.ndarray
    effective_sample_size: float
    log_normalizer_estimate: float


def _check_log_weights(values, name: str = "log_weights") -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {values.shape}")
    if np.any(np.isnan(values)) or np.any(values == np.inf):
        raise ValueError(f"{name} must be finite or -inf (weight 0); NaN/+inf means rho or q was invalid")
    if np.all(values == -np.inf):
        raise ValueError(f"{name} are all -inf: no sample landed in the support of the target")
    return values


def num_uniforms(proposal) -> int:
    """Uniforms per sample: the proposal's."""
    return int(proposal.num_uniforms)


def log_weights(log_prob_values, proposal_log_probs) -> np.ndarray:
    r""":math:`\log w_i = \log\rho(x_i) - \log q(x_i)`.

    Raises
    ------
    ValueError
        On mismatched shapes, NaN/+inf, or a sample with :math:`q(x_i) = 0` (it cannot have been drawn).
    """
    log_rho = np.asarray(log_prob_values, dtype=np.float64)
    log_q = np.asarray(proposal_log_probs, dtype=np.float64)
    if log_rho.shape != log_q.shape or log_rho.ndim != 1:
        raise ValueError(
            f"log_prob_values and proposal_log_probs must be 1-D of the same shape, got {log_rho.shape} "
            f"and {log_q.shape}"
        )
    if np.any(np.isnan(log_rho)) or np.any(log_rho == np.inf):
        raise ValueError("log_prob_values must be finite or -inf, never NaN/+inf")
    if np.any(~np.isfinite(log_q)):
        raise ValueError("proposal_log_probs must be finite: every sample was drawn from q, so q(x) > 0")
    return log_rho - log_q


def normalized_weights(log_weights) -> np.ndarray:
    r""":math:`\bar w_i = \exp(\log w_i - \mathrm{logsumexp}(\log w))`; sums to 1."""
    values = _check_log_weights(log_weights)
    return np.exp(values - logsumexp(values))


def effective_sample_size(log_weights) -> float:
    r""":math:`(\sum w)^2 / \sum w^2 = \exp(2\,\mathrm{lse}(\log w) - \mathrm{lse}(2 \log w))`, in ``[1, N]``."""
    values = _check_log_weights(log_weights)
    return float(np.exp(2.0 * logsumexp(values) - logsumexp(2.0 * values)))


def log_normalizer_estimate(log_weights) -> float:
    r""":math:`\log \hat Z = \mathrm{logsumexp}(\log w) - \log N` (:math:`\hat Z` is unbiased for :math:`Z`)."""
    values = _check_log_weights(log_weights)
    return float(logsumexp(values) - np.log(values.shape[0]))


def estimate(function_values, log_weights) -> float:
    r"""Self-normalised estimate :math:`\sum_i \bar w_i f(x_i)` of :math:`\mathbb E_\pi[f]`.

    Parameters
    ----------
    function_values : array_like, shape (N,)
        :math:`f(x_i)`; values at samples of weight 0 are ignored (even if not finite).
    log_weights : array_like, shape (N,)
    """
    weights = normalized_weights(log_weights)
    values = np.asarray(function_values, dtype=np.float64)
    if values.shape != weights.shape:
        raise ValueError(f"function_values must have shape {weights.shape} (one per sample), got {values.shape}")
    support = weights > 0
    return float(np.sum(weights[support] * values[support]))


def step(uniforms, log_prob_fn, proposal):
    """Draw a batch of samples from the uniforms and weight them (deterministic given ``uniforms``).

    Parameters
    ----------
    uniforms : array_like, shape (N, proposal.num_uniforms)
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``
    proposal : independent proposal with ``sample(uniforms)`` and normalised ``log_prob(states)``

    Returns
    -------
    (states, log_weights)
    """
    states = proposal.sample(uniforms)
    values = log_weights(log_prob_fn(states), proposal.log_prob(states))
    return states, values


def sample(rng, log_prob_fn, proposal, num_samples: int, first_step: int = 0) -> ImportanceResult:
    """Draw ``num_samples`` from ``proposal`` and compute weights, ESS and :math:`\\log\\hat Z`.

    Sample ``n`` uses ``draw_uniforms(rng, first_step + n, proposal.num_uniforms)``.
    """
    rng = as_generator(rng)
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    first_step = check_int(first_step, "first_step")
    uniforms = draw_uniforms_for_steps(rng, first_step, num_samples, num_uniforms(proposal))
    states, values = step(uniforms, log_prob_fn, proposal)
    return ImportanceResult(
        states, values, normalized_weights(values), effective_sample_size(values), log_normalizer_estimate(values)
    )
