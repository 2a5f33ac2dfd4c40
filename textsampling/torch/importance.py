r"""Torch twin of :mod:`textsampling.reference.importance`: self-normalised importance sampling, per chain.

The estimators (:math:`\log\hat Z`, the normalised weights, the ESS) and their papers are the
reference's (Kong 1992; Owen 2013, ch. 9; part 1 of the series): one copy of the math, there. The
batch contract: ``B`` chains of ``N`` samples each, states ``(B, N) + state_shape``, log-weights
``(B, N)``, one estimate per chain ``(B,)``, in the proposal's dtype (float32 by default, float64 for
the cross-checks). So a million estimates of :math:`\log Z` (their spread is the estimator's error)
cost one batched call. Sample ``n`` of chain ``c`` uses the uniforms of ``(seed, c, first_step + n)``:
chain ``c`` equals the reference's :func:`~textsampling.reference.importance.sample` with
``CounterGenerator(seed, c)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from textsampling._validation import check_int
from textsampling.torch._validation import check_same_device, check_same_dtype, check_tensor, raise_if
from textsampling.torch.randomness import as_generator, draw_uniforms_for_steps

__all__ = [
    "ImportanceResult",
    "flat_log_prob",
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
    """Per chain: samples ``(B, N) + state_shape``, weights ``(B, N)``, ESS ``(B,)``, :math:`\\log\\hat Z` ``(B,)``."""

    states: torch.Tensor
    log_weights: torch.Tensor
    normalized_weights: torch.Tensor
    effective_sample_size: torch.Tensor
    log_normalizer_estimate: torch.Tensor


def num_uniforms(proposal) -> int:
    """Uniforms per sample: the proposal's."""
    return int(proposal.num_uniforms)


def _check_log_weights(values, name: str = "log_weights") -> torch.Tensor:
    values = check_tensor(values, name, integer=False, ndim=2)
    if values.shape[1] == 0:
        raise ValueError(f"{name} must have shape (B, N) with N >= 1, got {tuple(values.shape)}")
    raise_if(
        [torch.isnan(values).any() | (values == torch.inf).any(), (values == -torch.inf).all(dim=1).any()],
        [
            f"{name} must be finite or -inf (weight 0); NaN/+inf means rho or q was invalid",
            f"{name} are all -inf in some chain: no sample of that chain landed in the support of the target",
        ],
    )
    return values


def log_weights(log_prob_values: torch.Tensor, proposal_log_probs: torch.Tensor) -> torch.Tensor:
    r""":math:`\log w = \log\rho - \log q`, ``(B, N)``; refuses NaN/+inf and samples with :math:`q = 0`."""
    log_rho = check_tensor(log_prob_values, "log_prob_values", integer=False)
    log_q = check_tensor(proposal_log_probs, "proposal_log_probs", integer=False)
    check_same_device(log_prob_values=log_rho, proposal_log_probs=log_q)
    check_same_dtype(log_prob_values=log_rho, proposal_log_probs=log_q)
    if log_rho.shape != log_q.shape or log_rho.ndim != 2:
        raise ValueError(
            f"log_prob_values and proposal_log_probs must both have shape (B, N), got {tuple(log_rho.shape)} "
            f"and {tuple(log_q.shape)}"
        )
    raise_if(
        [torch.isnan(log_rho).any() | (log_rho == torch.inf).any(), ~torch.isfinite(log_q).all()],
        [
            "log_prob_values must be finite or -inf, never NaN/+inf",
            "proposal_log_probs must be finite: every sample was drawn from q, so q(x) > 0",
        ],
    )
    return log_rho - log_q


def normalized_weights(log_weights: torch.Tensor) -> torch.Tensor:
    r""":math:`\bar w_{bi}`, each chain's row summing to 1."""
    values = _check_log_weights(log_weights)
    return torch.exp(values - torch.logsumexp(values, dim=1, keepdim=True))


def effective_sample_size(log_weights: torch.Tensor) -> torch.Tensor:
    r""":math:`(\sum w)^2 / \sum w^2` per chain, ``(B,)``, in ``[1, N]``."""
    values = _check_log_weights(log_weights)
    return torch.exp(2.0 * torch.logsumexp(values, dim=1) - torch.logsumexp(2.0 * values, dim=1))


def log_normalizer_estimate(log_weights: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\hat Z_b = \mathrm{logsumexp}_i \log w_{bi} - \log N`, ``(B,)``."""
    values = _check_log_weights(log_weights)
    return torch.logsumexp(values, dim=1) - math.log(values.shape[1])


def estimate(function_values: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    r"""Self-normalised :math:`\sum_i \bar w_{bi} f(x_{bi})` per chain; values at weight 0 are ignored."""
    weights = normalized_weights(log_weights)
    values = check_tensor(function_values, "function_values", integer=False)
    check_same_device(function_values=values, log_weights=weights)
    if values.shape != weights.shape:
        raise ValueError(
            f"function_values must have shape {tuple(weights.shape)} (one per sample), got {tuple(values.shape)}"
        )
    return torch.where(weights > 0, weights * values, 0.0).sum(dim=1)  # (B, N) -> (B,)


def flat_log_prob(log_prob_fn, states: torch.Tensor, batch_shape) -> torch.Tensor:
    """``log_prob_fn`` of states with leading ``batch_shape`` (e.g. ``(B, N)``), called once on them all.

    ``log_prob_fn`` is batched over one leading axis, ``(M,) + state_shape -> (M,)``; the states are
    flattened to ``M = prod(batch_shape)`` rows and the values reshaped back to ``batch_shape``. Shared by
    importance and rejection sampling; a ValueError names ``log_prob_fn`` if it returns another shape.
    """
    # (B, N) + state_shape -> (B N,) + state_shape -> log_prob -> (B, N)
    flat = states.reshape((-1,) + tuple(states.shape[len(batch_shape) :]))  # (M,) + state_shape
    values = log_prob_fn(flat)
    if not isinstance(values, torch.Tensor) or values.shape != (flat.shape[0],):
        raise ValueError(f"log_prob_fn must return a tensor of shape ({flat.shape[0]},) (one value per state)")
    return values.reshape(batch_shape)  # (M,) -> batch_shape


def step(uniforms: torch.Tensor, log_prob_fn, proposal):
    """Draw every chain's samples from the uniforms and weight them (deterministic).

    Parameters
    ----------
    uniforms : torch.Tensor, shape (B, N, proposal.num_uniforms)
    log_prob_fn : callable, ``(M,) + state_shape -> (M,)``
    proposal : torch independent proposal (``sample``, normalised ``log_prob``)

    Returns
    -------
    (states (B, N) + state_shape, log_weights (B, N))
    """
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=3)
    states = proposal.sample(uniforms)
    batch_shape = uniforms.shape[:2]
    values = log_weights(flat_log_prob(log_prob_fn, states, batch_shape), proposal.log_prob(states))
    return states, values


def sample(
    rng, log_prob_fn, proposal, num_samples: int, first_step: int = 0, num_chains: int | None = None
) -> ImportanceResult:
    """``num_samples`` proposals per chain, their weights, ESS and :math:`\\log\\hat Z`, per chain.

    Sample ``n`` uses the uniforms of step ``first_step + n`` (``num_chains`` is needed with a ``torch.Generator``).
    """
    rng = as_generator(rng)
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    first_step = check_int(first_step, "first_step")
    uniforms = draw_uniforms_for_steps(
        rng, first_step, num_samples, num_uniforms(proposal), num_chains, proposal.dtype, proposal.device
    )
    states, values = step(uniforms, log_prob_fn, proposal)
    return ImportanceResult(
        states, values, normalized_weights(values), effective_sample_size(values), log_normalizer_estimate(values)
    )
