r"""Torch twin of :mod:`textsampling.reference.mlm_metropolis_hastings` (Goyal et al. 2022), batched.

Same math and uniform roles (position, token, accept) with a leading chain dimension. The energy of the
proposals costs one model call on ``B * L`` rows (every position of every chain masked once); the
proposal one call on ``B`` rows. Fed the same float64 uniforms, chain ``c`` takes the same decisions as
the reference chain ``c``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling.reference.mlm_metropolis_hastings import NUM_UNIFORMS, check_energy
from textsampling.torch.mlm_gibbs import (
    categorical_from_uniforms,
    integer_from_uniforms,
    sampling_log_probs,
    sequence_lengths,
)

__all__ = ["NUM_UNIFORMS", "MLMMHState", "MLMMHInfo", "energy", "init", "step"]


class MLMMHState(NamedTuple):
    x: torch.Tensor  # (B, L)
    energy: torch.Tensor  # (B,)


class MLMMHInfo(NamedTuple):
    position: torch.Tensor  # (B,)
    proposal: torch.Tensor  # (B, L)
    log_accept_ratio: torch.Tensor  # (B,)
    accepted: torch.Tensor  # (B,) bool


def energy(model, x: torch.Tensor, kind="pll") -> torch.Tensor:
    """:math:`E(x)` of each row, ``(B,)``: PLL, raw-logit, or ``kind(x)`` for a callable."""
    kind = check_energy(kind)
    if callable(kind):
        return torch.as_tensor(kind(x), device=x.device)
    num_chains, width = x.shape
    lengths = sequence_lengths(x)  # (B,)
    positions = torch.arange(width, device=x.device).expand(num_chains, -1)  # (B, L)
    inside = positions < lengths[:, None]  # (B, L)
    positions = torch.minimum(positions, (lengths - 1)[:, None])  # padded slots ask a real position
    rows = x[:, None, :].expand(-1, width, -1).reshape(num_chains * width, width)  # (B*L, L)
    if kind == "pll":
        scores = model.masked_log_probs_torch(rows, positions.reshape(-1))  # (B*L, V)
    else:
        if not hasattr(model, "masked_logits_torch"):
            raise ValueError("energy='raw_logit' needs model.masked_logits_torch (unnormalised MLM scores)")
        scores = model.masked_logits_torch(rows, positions.reshape(-1))
    tokens = x.gather(1, positions).reshape(-1, 1)  # (B*L, 1)
    picked = scores.gather(1, tokens).reshape(num_chains, width)  # (B, L)
    return -torch.where(inside, picked, torch.zeros_like(picked)).sum(dim=1)


def init(x: torch.Tensor, model, kind="pll") -> MLMMHState:
    return MLMMHState(x, energy(model, x, kind))


def step(uniforms: torch.Tensor, state: MLMMHState, model, energy_kind="pll"):
    """One MH step for every chain; ``uniforms`` ``(B, 3)``. Returns ``(MLMMHState, MLMMHInfo)``."""
    x = state.x
    lengths = sequence_lengths(x)
    positions = integer_from_uniforms(uniforms[:, 0], lengths)  # (B,)
    raw = model.masked_log_probs_torch(x, positions)  # (B, V)
    row = sampling_log_probs(raw, model.special_token_ids)
    log_q = row - torch.logsumexp(row, dim=-1, keepdim=True)  # (B, V)
    tokens = categorical_from_uniforms(uniforms[:, 1], log_q)  # (B,)
    y = x.scatter(1, positions[:, None], tokens[:, None])  # (B, L)
    proposal_energy = energy(model, y, energy_kind)
    log_q_forward = log_q.gather(1, tokens[:, None])[:, 0]
    log_q_reverse = log_q.gather(1, x.gather(1, positions[:, None]))[:, 0]
    # log alpha = min(0, log rho(y) - log rho(x) + log q(x|y) - log q(y|x)) with log rho = -E;
    # -inf - (-inf) is NaN (a rejection), and leaving a state of infinite energy is always accepted.
    ratio = torch.clamp((state.energy - proposal_energy) + (log_q_reverse - log_q_forward), max=0.0)
    ratio = torch.where((state.energy == torch.inf) & torch.isfinite(proposal_energy), torch.zeros_like(ratio), ratio)
    accepted = torch.log(uniforms[:, 2]) < ratio  # NaN compares False
    new_x = torch.where(accepted[:, None], y, x)
    new_energy = torch.where(accepted, proposal_energy, state.energy)
    return MLMMHState(new_x, new_energy), MLMMHInfo(positions, y, ratio, accepted)
