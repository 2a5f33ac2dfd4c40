r"""Torch twin of :mod:`textsampling.reference.smc`: SMC over LM prefixes, batched over runs × particles.

The math (targets on prefixes, bootstrap and guided weights, the twist, ESS-triggered resampling, why
:math:`\hat Z` is unbiased) is the reference's; read it there. The batch contract:

* ``x0`` is ``(R, N, L)``: ``R`` independent runs of ``N`` particles, PAD-padded prompts of width ``L``;
  every state field has the leading ``(R, N)`` (or ``(R,)``) shape, every info field too;
* step ``t`` of run ``r`` reads the uniforms ``(seed, r, t)`` of a
  :class:`~textsampling.torch.randomness.CounterGenerator` whose ``chain_index`` lists the runs, in the
  reference's layout (resampling first, then one per particle), so run ``r`` equals the reference run
  with ``CounterGenerator(seed, r)`` decision by decision: ancestors, tokens, and log-weights to
  floating-point accuracy in float64;
* the language model is asked once per step for the ``R·N`` rows (``next_token_log_probs_torch``), so
  the cost that matters — the forward pass — is batched over runs and particles alike;
* ``log_potential`` and ``log_twist`` are the reference's NumPy callables, evaluated on the CPU
  (a keyword check is cheap next to the LM); the twin converts rows and results.

Resampling is decided per run (``resampled`` is ``(R,)``); a run that does not resample keeps its
particles in place (ancestors ``arange(N)``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from textsampling._validation import check_int
from textsampling.lm.tokens import PAD, sequence_lengths_torch
from textsampling.reference.resampling import check_scheme
from textsampling.reference.smc import (
    PROPOSALS,
    KeywordPotential,
    check_ess_threshold,
    check_proposal,
    empty_prefixes,
    extension_log_potentials,
    log_twisted_potential,
)
from textsampling.torch import chain, resampling
from textsampling.torch._validation import check_float_dtype, check_tensor
from textsampling.torch.randomness import categorical_from_uniforms

__all__ = [
    "SMCState",
    "SMCInfo",
    "SMCTrace",
    "PROPOSALS",
    "KeywordPotential",
    "empty_prefixes",
    "empty_prefixes_torch",
    "init",
    "num_uniforms",
    "step",
    "sample",
    "log_evidence",
]

SMCTrace = chain.Trace


class SMCState(NamedTuple):
    """The particle systems of ``R`` runs: the reference's fields with a leading run dimension."""

    x: torch.Tensor  # (R, N, L) int64
    log_weight: torch.Tensor  # (R, N)
    log_potential: torch.Tensor  # (R, N)
    log_lm: torch.Tensor  # (R, N)
    finished: torch.Tensor  # (R, N) bool


class SMCInfo(NamedTuple):
    """What one step did, per run."""

    ancestors: torch.Tensor  # (R, N) int64
    resampled: torch.Tensor  # (R,) bool
    ess: torch.Tensor  # (R,)
    token: torch.Tensor  # (R, N) int64, PAD for an already finished particle
    log_incremental_weight: torch.Tensor  # (R, N)
    log_evidence: torch.Tensor  # (R,)


def _potential(rows: torch.Tensor, finished: torch.Tensor, log_potential, log_twist, like: torch.Tensor):
    """:math:`\\log (G\\psi)` of ``(M, W)`` rows through the reference's NumPy callables -> ``(M,)`` like ``like``."""
    values = log_twisted_potential(rows.cpu().numpy(), finished.cpu().numpy(), log_potential, log_twist)
    return torch.as_tensor(values, dtype=like.dtype, device=like.device)


def init(x0, model, log_potential, *, log_twist=None, dtype=None) -> SMCState:
    """The runs' particles at their prompts; every weight starts at :math:`(G\\psi)(x_0)`, as the reference.

    Parameters
    ----------
    x0 : torch.Tensor of int, shape (R, N, L)
        PAD-padded prompts (:func:`empty_prefixes_torch` for none), on the device the runs live on.
    model, log_potential, log_twist
        As in :func:`textsampling.reference.smc.init`.
    dtype : torch.float32 (default) or torch.float64
        The weights' dtype (float64 for the comparisons with the reference).
    """
    x = check_tensor(x0, "x0", integer=True, ndim=3)
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"x0 must be an (R, N, L) int tensor of PAD-padded prompts, N, L >= 1; got {tuple(x.shape)}")
    dtype = check_float_dtype(dtype)
    num_runs, num_particles, width = x.shape
    flat = x.reshape(num_runs * num_particles, width).to(torch.int64)  # (R*N, L)
    if bool((sequence_lengths_torch(flat) >= width).any()):
        raise ValueError(f"x0: every prompt must leave room for a token (length < L = {width})")
    if getattr(model, "max_length", width) < width:
        raise ValueError(f"x0 has width {width}, over the model's max_length = {model.max_length}")
    finished = torch.zeros(num_runs * num_particles, dtype=torch.bool, device=x.device)  # (R*N,)
    like = torch.zeros((), dtype=dtype, device=x.device)
    log_target = _potential(flat, finished, log_potential, log_twist, like).reshape(num_runs, num_particles)
    zeros = torch.zeros(num_runs, num_particles, dtype=dtype, device=x.device)  # (R, N)
    return SMCState(x.to(torch.int64), log_target.clone(), log_target, zeros, finished.reshape(num_runs, num_particles))


def num_uniforms(num_particles: int, scheme: str = "systematic") -> int:
    """``resampling.num_uniforms(N, scheme) + N``, as the reference."""
    return resampling.num_uniforms(num_particles, scheme) + check_int(num_particles, "num_particles", minimum=1)


def log_evidence(state: SMCState) -> torch.Tensor:
    """:math:`\\log \\hat Z` of each run, ``(R,)``."""
    return torch.logsumexp(state.log_weight, dim=-1) - math.log(state.log_weight.shape[-1])


def step(
    uniforms,
    state: SMCState,
    model,
    log_potential,
    *,
    proposal: str = "bootstrap",
    scheme: str = "systematic",
    ess_threshold: float = 0.5,
    log_twist=None,
) -> tuple[SMCState, SMCInfo]:
    """One SMC step of every run; ``uniforms`` is ``(R, num_uniforms(N, scheme))`` (layout as the reference)."""
    proposal = check_proposal(proposal)
    scheme = check_scheme(scheme)
    ess_threshold = check_ess_threshold(ess_threshold)
    num_runs, num_particles, width = state.x.shape
    k = resampling.num_uniforms(num_particles, scheme)
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    if tuple(uniforms.shape) != (num_runs, k + num_particles):
        raise ValueError(f"uniforms must have shape ({num_runs}, {k + num_particles}), got {tuple(uniforms.shape)}")
    device, dtype = state.log_weight.device, state.log_weight.dtype
    uniforms = uniforms.to(dtype)

    # 1. resample the runs whose ESS is low; their weights become the mean weight
    ess = resampling.effective_sample_size(state.log_weight)  # (R,)
    resampled = (ess > 0) & ((ess_threshold >= 1.0) | (ess < ess_threshold * num_particles))  # (R,)
    # a run of all-zero weights is never resampled: give it harmless weights for the (unused) search
    safe = torch.where(ess[:, None] > 0, state.log_weight, torch.zeros_like(state.log_weight))  # (R, N)
    drawn_ancestors = resampling.ancestors(uniforms[:, :k], safe, scheme, validate=False)  # (R, N)
    identity = torch.arange(num_particles, device=device).expand(num_runs, num_particles)  # (R, N)
    ancestors = torch.where(resampled[:, None], drawn_ancestors, identity)  # (R, N)
    mean_log_weight = torch.logsumexp(state.log_weight, dim=-1, keepdim=True) - math.log(num_particles)  # (R, 1)
    log_weight = torch.where(resampled[:, None], mean_log_weight.expand(num_runs, num_particles), state.log_weight)
    x = torch.gather(state.x, 1, ancestors[:, :, None].expand(num_runs, num_particles, width))  # (R, N, L)
    log_target = torch.gather(state.log_potential, 1, ancestors)  # (R, N)
    log_lm = torch.gather(state.log_lm, 1, ancestors)  # (R, N)
    finished = torch.gather(state.finished, 1, ancestors)  # (R, N)

    # 2. extend every unfinished particle by one token (all runs' particles in one batch)
    x = x.reshape(num_runs * num_particles, width)  # (R*N, L)
    log_weight, log_target = log_weight.reshape(-1).clone(), log_target.reshape(-1).clone()  # (R*N,)
    log_lm, finished = log_lm.reshape(-1).clone(), finished.reshape(-1).clone()  # (R*N,)
    token = torch.full((num_runs * num_particles,), PAD, dtype=torch.int64, device=device)  # (R*N,)
    log_increment = torch.zeros(num_runs * num_particles, dtype=dtype, device=device)  # (R*N,)
    token_uniforms = uniforms[:, k:].reshape(-1)  # (R*N,)
    active = torch.nonzero(~finished).reshape(-1)  # (M,)
    if active.numel():
        rows = x[active]  # (M, L)
        lengths = sequence_lengths_torch(rows)  # (M,)
        log_next = model.next_token_log_probs_torch(rows).to(device=device, dtype=dtype)  # (M, V)
        old = log_target[active]  # (M,)
        if proposal == "bootstrap":
            drawn = categorical_from_uniforms(token_uniforms[active], log_next)  # (M,)
            extended, is_end = _extend(rows, lengths, drawn, model.end_token_id)  # (M, L+1), (M,)
            new = _potential(extended, is_end, log_potential, log_twist, old)  # (M,)
            increment = new - old
        else:
            all_new = extension_log_potentials(
                rows.cpu().numpy(), lengths.cpu().numpy(), log_next.cpu().numpy(), model.end_token_id,
                log_potential, log_twist,
            )
            all_new = torch.as_tensor(all_new, dtype=dtype, device=device)  # (M, V)
            logits = log_next + all_new  # (M, V)
            normaliser = torch.logsumexp(logits, dim=-1)  # (M,)
            logits = torch.where(torch.isfinite(normaliser)[:, None], logits, log_next)  # dead end: the LM
            drawn = categorical_from_uniforms(token_uniforms[active], logits)  # (M,)
            new = all_new.gather(1, drawn[:, None])[:, 0]  # (M,)
            increment = normaliser - old
        increment = torch.where(old == -torch.inf, torch.full_like(increment, -torch.inf), increment)
        extended, is_end = _extend(rows, lengths, drawn, model.end_token_id)  # (M, L+1), (M,)
        overflow = ~is_end & (lengths >= width)  # (M,) a token past the width: gamma = 0
        increment = torch.where(overflow, torch.full_like(increment, -torch.inf), increment)
        x[active] = extended[:, :width]
        token[active] = drawn
        log_increment[active] = increment
        log_weight[active] = log_weight[active] + increment
        log_target[active] = torch.where(overflow, torch.full_like(new, -torch.inf), new)
        log_lm[active] = log_lm[active] + log_next.gather(1, drawn[:, None])[:, 0]
        finished[active] = is_end | overflow
    shape = (num_runs, num_particles)
    new_state = SMCState(
        x.reshape(num_runs, num_particles, width), log_weight.reshape(shape), log_target.reshape(shape),
        log_lm.reshape(shape), finished.reshape(shape),
    )
    info = SMCInfo(ancestors, resampled, ess, token.reshape(shape), log_increment.reshape(shape),
                   log_evidence(new_state))
    return new_state, info


def _extend(rows: torch.Tensor, lengths: torch.Tensor, tokens: torch.Tensor, end_token_id: int):
    """Rows ``(M, L + 1)`` with ``tokens`` written at ``lengths`` (not END), and the END flags ``(M,)``."""
    pad = torch.full((rows.shape[0], 1), PAD, dtype=rows.dtype, device=rows.device)  # (M, 1)
    extended = torch.cat([rows, pad], dim=1)  # (M, L+1)
    is_end = tokens == end_token_id  # (M,)
    written = torch.nonzero(~is_end).reshape(-1)  # (W,)
    extended[written, lengths[written]] = tokens[written]
    return extended, is_end


def sample(
    rng,
    x0,
    model,
    log_potential,
    num_steps: int,
    *,
    first_step: int = 0,
    proposal: str = "bootstrap",
    scheme: str = "systematic",
    ess_threshold: float = 0.5,
    log_twist=None,
    dtype=None,
) -> chain.Trace:
    """``num_steps`` SMC steps of every run from the prompts ``x0`` ``(R, N, L)``; fields are ``(R, T, ...)``."""
    state = init(x0, model, log_potential, log_twist=log_twist, dtype=dtype)

    def step_fn(uniforms, state, t):
        return step(uniforms, state, model, log_potential, proposal=proposal, scheme=scheme,
                    ess_threshold=ess_threshold, log_twist=log_twist)

    num_particles = state.x.shape[1]
    return chain.run(rng, state, step_fn, num_uniforms(num_particles, scheme), num_steps, first_step=first_step,
                     dtype=state.log_weight.dtype)


def empty_prefixes_torch(num_runs: int, num_particles: int, max_length: int, device=None) -> torch.Tensor:
    """``(R, N, L)`` of PAD, on ``device``: every particle of every run starting from nothing."""
    prefixes = empty_prefixes(num_particles, max_length)
    return torch.as_tensor(np.broadcast_to(prefixes, (check_int(num_runs, "num_runs", minimum=1),) + prefixes.shape)
                           .copy(), device=device)
