r"""Torch twin of :mod:`textsampling.reference.mlm_metropolis_hastings` (Goyal et al. 2022), batched.

The math — masked-LM proposal, energies, the Hastings term, ``log_prob = -E`` — and the uniform roles
(position, token, accept) are the reference's; see :mod:`textsampling.reference.mlm_metropolis_hastings`.

Batch, shape and dtype contract:

* chains first: ``x`` ``(B, L)`` int64, PAD-padded; ``log_prob`` ``(B,)`` in the model's output dtype
  (float64 for the bigram oracle, float32 for a Hugging Face model);
* uniforms ``(B, 3)``, float64 in :func:`sample`;
* the energy of a batch costs one model call on ``B * L`` rows (every position of every chain masked
  once), the proposal one call on ``B`` rows; every call puts [MASK] at the position it asks about;
* :func:`sample` returns :class:`~textsampling.reference.chain.Trace` with fields ``(B, T, ...)``.

Fed the same float64 uniforms, chain ``c`` takes the same decisions as the reference chain ``c``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling.lm.tokens import sequence_lengths_torch, with_mask_at_torch
from textsampling.reference.mlm_metropolis_hastings import NUM_UNIFORMS, check_energy
from textsampling.torch import chain, mlm_gibbs
from textsampling.torch.mlm_gibbs import (
    conditional_log_probs,
    sampling_log_probs,
)
from textsampling.torch.randomness import (
    as_generator,
    categorical_from_uniforms,
    check_num_chains,
    integer_from_uniform,
)

__all__ = [
    "NUM_UNIFORMS",
    "num_uniforms",
    "MLMMHState",
    "MLMMHInfo",
    "MLMMHTrace",
    "energy",
    "init",
    "step",
    "sample",
]

#: The twin's run: :class:`textsampling.reference.chain.Trace`, fields ``(B, T, ...)``.
MLMMHTrace = chain.Trace


def num_uniforms() -> int:
    """Uniforms per chain and step: position, token, accept."""
    return NUM_UNIFORMS


class MLMMHState(NamedTuple):
    x: torch.Tensor  # (B, L)
    log_prob: torch.Tensor  # (B,): -E(x)


class MLMMHInfo(NamedTuple):
    position: torch.Tensor  # (B,)
    proposal: torch.Tensor  # (B, L)
    log_accept_prob: torch.Tensor  # (B,)
    accepted: torch.Tensor  # (B,) bool


def energy(model, x: torch.Tensor, energy_kind="pll") -> torch.Tensor:
    """:math:`E(x)` of each row, ``(B,)``: PLL, raw-logit, or ``energy_kind(x)`` for a callable."""
    energy_kind = check_energy(energy_kind)
    if callable(energy_kind):
        return torch.as_tensor(energy_kind(x), device=x.device)
    num_chains, width = x.shape
    lengths = sequence_lengths_torch(x)  # (B,)
    positions = torch.arange(width, device=x.device).expand(num_chains, -1)  # (B, L)
    inside = positions < lengths[:, None]  # (B, L)
    positions = torch.minimum(positions, (lengths - 1)[:, None])  # (B, L): padded slots ask a real position
    rows = x[:, None, :].expand(-1, width, -1).reshape(num_chains * width, width)  # (B*L, L): row b*L+t is x_b
    flat_positions = positions.reshape(-1)  # (B*L,)
    rows = with_mask_at_torch(rows, flat_positions, model.mask_token_id)  # (B*L, L): row b*L+t masks t
    if energy_kind == "pll":
        scores = model.masked_log_probs_torch(rows, flat_positions)  # (B*L, V)
    else:
        if not hasattr(model, "masked_logits_torch"):
            raise ValueError("energy_kind='raw_logit' needs model.masked_logits_torch (unnormalised MLM scores)")
        scores = model.masked_logits_torch(rows, flat_positions)  # (B*L, V)
    tokens = x.gather(1, positions).reshape(-1, 1)  # (B*L, 1): x_b[t], the token scored
    picked = scores.gather(1, tokens).reshape(num_chains, width)  # (B, L): score of x_b[t] at t
    return -torch.where(inside, picked, torch.zeros_like(picked)).sum(dim=1)  # (B,): padded slots add 0


def init(x0: torch.Tensor, model, *, energy_kind="pll") -> MLMMHState:
    """The states at ``x0`` ``(B, L)`` with their log targets :math:`-E` ``(B,)``."""
    x = mlm_gibbs.init(x0, model).x  # the same checks of x0 and model
    check_energy(energy_kind)
    return MLMMHState(x, -energy(model, x, energy_kind))


def step(uniforms: torch.Tensor, state: MLMMHState, model, *, energy_kind="pll"):
    """One MH step for every chain; ``uniforms`` ``(B, 3)``. Returns ``(MLMMHState, MLMMHInfo)``."""
    x = state.x
    lengths = sequence_lengths_torch(x)  # (B,)
    positions = integer_from_uniform(uniforms[:, 0], lengths)  # (B,)
    row = sampling_log_probs(conditional_log_probs(model, x, positions), model.special_token_ids)  # (B, V)
    log_q = row - torch.logsumexp(row, dim=-1, keepdim=True)  # (B, V)
    tokens = categorical_from_uniforms(uniforms[:, 1].to(log_q.dtype), log_q, validate=False)  # (B,)
    y = x.scatter(1, positions[:, None], tokens[:, None])  # (B, L): y_b = x_b with token at its position
    proposal_log_prob = -energy(model, y, energy_kind)  # (B,)
    log_q_forward = log_q.gather(1, tokens[:, None])[:, 0]  # (B,): log q_i(v)
    log_q_reverse = log_q.gather(1, x.gather(1, positions[:, None]))[:, 0]  # (B,): log q_i(x_i)
    # log alpha = min(0, log rho(y) - log rho(x) + log q(x|y) - log q(y|x)) with log rho = -E;
    # -inf - (-inf) is NaN (a rejection), and leaving a state of log target -inf is always accepted.
    ratio = torch.clamp((proposal_log_prob - state.log_prob) + (log_q_reverse - log_q_forward), max=0.0)  # (B,)
    leaves_impossible = (state.log_prob == -torch.inf) & torch.isfinite(proposal_log_prob)  # (B,)
    ratio = torch.where(leaves_impossible, torch.zeros_like(ratio), ratio)  # (B,)
    accepted = torch.log(uniforms[:, 2]) < ratio  # (B,); NaN compares False
    new_x = torch.where(accepted[:, None], y, x)  # (B, L)
    new_log_prob = torch.where(accepted, proposal_log_prob, state.log_prob)  # (B,)
    return MLMMHState(new_x, new_log_prob), MLMMHInfo(positions, y, ratio, accepted)


def sample(rng, x0: torch.Tensor, model, num_steps: int, *, first_step: int = 0, energy_kind="pll"):
    """Run ``num_steps`` steps for every chain from ``x0`` ``(B, L)``; twin of the reference ``sample``.

    :func:`init` + :func:`textsampling.torch.chain.run` with float64 uniforms on ``x0``'s device: step
    ``t`` uses ``draw_uniforms(rng, first_step + t, 3, B)``; with a
    :class:`~textsampling.torch.randomness.CounterGenerator`, chain ``b`` is the reference chain run with
    ``CounterGenerator(seed, rng.chain_index[b])``.

    Returns
    -------
    MLMMHTrace
        ``states.x`` ``(B, T, L)``, ``states.log_prob`` ``(B, T)``, ``infos`` fields ``(B, T, ...)``.
    """
    rng = as_generator(rng)
    state = init(x0, model, energy_kind=energy_kind)
    num_chains = state.x.shape[0]
    check_num_chains(rng, num_chains, "x0")

    def step_fn(uniforms, state, t):
        return step(uniforms, state, model, energy_kind=energy_kind)

    return chain.run(
        rng, state, step_fn, num_uniforms(), num_steps, first_step=first_step,
        dtype=torch.float64,
    )
