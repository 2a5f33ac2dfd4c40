r"""Torch twin of :mod:`textsampling.reference.mlm_metropolis_hastings` (Goyal et al. 2022), batched.

Same math and uniform roles (position, token, accept) with a leading chain dimension. The energy of the
proposals costs one model call on ``B * L`` rows (every position of every chain masked once); the
proposal one call on ``B`` rows. Fed the same float64 uniforms, chain ``c`` takes the same decisions as
the reference chain ``c``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling._validation import check_int
from textsampling.reference.mlm_gibbs import check_masked_model
from textsampling.reference.mlm_metropolis_hastings import NUM_UNIFORMS, check_energy, num_uniforms
from textsampling.torch.mlm_gibbs import (
    categorical_from_uniforms,
    check_num_chains,
    check_sequences,
    sampling_log_probs,
    sequence_lengths,
)
from textsampling.torch.randomness import as_generator, draw_uniforms, integer_from_uniform

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


class MLMMHState(NamedTuple):
    x: torch.Tensor  # (B, L)
    energy: torch.Tensor  # (B,)


class MLMMHInfo(NamedTuple):
    position: torch.Tensor  # (B,)
    proposal: torch.Tensor  # (B, L)
    log_accept_ratio: torch.Tensor  # (B,)
    accepted: torch.Tensor  # (B,) bool


class MLMMHTrace(NamedTuple):
    """A run, chains first (column ``t`` = after step ``t``); the reference's fields with a leading ``B``."""

    states: torch.Tensor  # (B, T, L)
    energies: torch.Tensor  # (B, T)
    accepted: torch.Tensor  # (B, T) bool
    final_state: MLMMHState
    interrupted: bool


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
    positions = integer_from_uniform(uniforms[:, 0], lengths)  # (B,)
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


def sample(rng, model, x0: torch.Tensor, num_steps: int, energy_kind="pll", first_step: int = 0) -> MLMMHTrace:
    """Run ``num_steps`` steps for every chain from ``x0`` ``(B, L)``; twin of the reference ``sample``.

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, 3, B)`` in float64; with a
    :class:`~textsampling.torch.randomness.CounterGenerator`, chain ``b`` is the reference chain run with
    ``CounterGenerator(seed, rng.chain_index[b])``. A KeyboardInterrupt keeps the completed steps
    (``interrupted=True``).

    Returns
    -------
    MLMMHTrace
    """
    rng = as_generator(rng)
    check_masked_model(model)
    num_steps = check_int(num_steps, "num_steps")
    first_step = check_int(first_step, "first_step")
    check_energy(energy_kind)
    x0 = check_sequences(x0, model, "x0")
    num_chains, width = x0.shape
    check_num_chains(rng, num_chains, "x0")
    state = init(x0, model, energy_kind)
    device = x0.device
    states = torch.empty((num_chains, num_steps, width), dtype=torch.int64, device=device)
    energies = torch.empty((num_chains, num_steps), dtype=state.energy.dtype, device=device)
    accepted = torch.zeros((num_chains, num_steps), dtype=torch.bool, device=device)
    done = 0
    try:
        for t in range(num_steps):
            uniforms = draw_uniforms(rng, first_step + t, NUM_UNIFORMS, num_chains, dtype=torch.float64, device=device)
            state, info = step(uniforms, state, model, energy_kind)
            states[:, t], energies[:, t], accepted[:, t] = state.x, state.energy, info.accepted
            done = t + 1
    except KeyboardInterrupt:
        # Keep what was drawn: the completed steps, flagged.
        return MLMMHTrace(states[:, :done], energies[:, :done], accepted[:, :done], state, True)
    return MLMMHTrace(states, energies, accepted, state, False)
