r"""Torch twin of :mod:`textsampling.reference.mlm_gibbs`: MLM Gibbs for a batch of chains.

Same math, names and uniform roles as the reference (Wang & Cho 2019, arXiv:1902.04094; part 3 of the
series), with a leading chain dimension ``B``: one model call per step (random scan) or per position
(systematic sweep) serves every chain, and the LM head is asked only for the masked position of each
row (``model.masked_log_probs_torch(x, positions)``). Chains of different lengths share a batch: a
sweep leaves position ``i`` of a chain shorter than ``i + 1`` untouched.

Fed the same uniforms, in float64, chain ``c`` of :func:`step` equals the reference chain for chain ``c``
token for token (tests/test_lm_samplers_twins.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling._validation import check_int, check_positive
from textsampling.reference.mlm_gibbs import (
    INIT_STEP,
    changes_target,
    check_masked_model,
    check_scan,
    check_top_k,
    num_uniforms,
)
from textsampling.targets.base import PAD
from textsampling.torch._validation import check_tensor
from textsampling.torch.randomness import categorical_from_uniforms as _categorical_from_uniforms
from textsampling.torch.randomness import integer_from_uniform
from textsampling.torch.randomness import CounterGenerator, as_generator, draw_uniforms

__all__ = [
    "MLMGibbsState",
    "MLMGibbsInfo",
    "MLMGibbsTrace",
    "num_uniforms",
    "check_sequences",
    "categorical_from_uniforms",
    "sequence_lengths",
    "sampling_log_probs",
    "init_all_mask",
    "step",
    "sample",
]


class MLMGibbsState(NamedTuple):
    """Current sequences, ``(B, L)`` long, PAD-padded."""

    x: torch.Tensor


class MLMGibbsInfo(NamedTuple):
    """Position updated (``(B,)``, or ``(B, L)`` for a sweep with -1 past the end) and whether the target changed."""

    position: torch.Tensor
    token: torch.Tensor
    changes_target: bool


class MLMGibbsTrace(NamedTuple):
    """A run, chains first: ``states`` ``(B, T, L)`` (column ``t`` = after step ``t``), ``positions`` ``(B, T)``.

    ``positions`` holds the position each random-scan step updated, -1 for systematic sweeps (as the
    reference); ``interrupted`` when a KeyboardInterrupt cut the run (the completed steps are kept).
    """

    states: torch.Tensor
    positions: torch.Tensor
    final_state: MLMGibbsState
    changes_target: bool
    interrupted: bool


def categorical_from_uniforms(uniforms: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF rule of :func:`textsampling.torch.categorical.categorical_from_uniforms` for model rows.

    ``uniforms`` ``(B,)`` in (0, 1), ``logits`` ``(B, K)`` with at least one finite entry per row (the
    samplers guarantee it, so values are not re-checked); uniforms are cast to the logits' dtype.
    """
    return _categorical_from_uniforms(uniforms.to(logits.dtype), logits, validate=False)


def sequence_lengths(x: torch.Tensor) -> torch.Tensor:
    """Entries before the first PAD of each row, ``(B,)``."""
    is_pad = x == PAD  # (B, L)
    return torch.where(is_pad.any(dim=1), torch.argmax(is_pad.to(torch.int64), dim=1), x.shape[1])


def sampling_log_probs(log_probs: torch.Tensor, special_token_ids, temperature: float = 1.0, top_k=None):
    """Batched :func:`textsampling.reference.mlm_gibbs.sampling_log_probs`: ``(B, V) -> (B, V)``."""
    row = log_probs.clone()
    special = [int(t) for t in special_token_ids if 0 <= int(t) < row.shape[-1]]
    if special:
        row[:, special] = -torch.inf
    row = row / temperature
    if top_k is not None and top_k < row.shape[-1]:
        order = torch.sort(row, dim=-1, descending=True, stable=True).indices  # (B, V), lower id first on ties
        row = row.scatter(-1, order[:, top_k:], -torch.inf)
    return row


def init_all_mask(uniforms: torch.Tensor, model, max_length: int, length_log_probs=None) -> MLMGibbsState:
    """All-[MASK] starts with lengths drawn by ``uniforms[:, 0]`` (entry ``k`` of ``length_log_probs``: length ``k+1``)."""
    mask_token_id = getattr(model, "mask_token_id", None)
    if mask_token_id is None:
        raise ValueError("an all-[MASK] start needs a masked LM with a mask_token_id; give x0 instead")
    if max_length > model.max_length:
        raise ValueError(f"max_length = {max_length} is over the model's max_length = {model.max_length}")
    num_chains = uniforms.shape[0]
    if length_log_probs is None:
        length_log_probs = torch.zeros(max_length, dtype=uniforms.dtype, device=uniforms.device)
    length_log_probs = torch.as_tensor(length_log_probs, dtype=uniforms.dtype, device=uniforms.device)
    if length_log_probs.shape != (max_length,):
        raise ValueError(f"length_log_probs must have shape ({max_length},), got {tuple(length_log_probs.shape)}")
    lengths = categorical_from_uniforms(uniforms[:, 0], length_log_probs.expand(num_chains, -1)) + 1  # (B,)
    positions = torch.arange(max_length, device=uniforms.device)
    x = torch.where(positions[None, :] < lengths[:, None], int(mask_token_id), PAD)  # (B, L)
    return MLMGibbsState(x.to(torch.int64))


def _update(uniforms, x, positions, model, temperature, top_k, active):
    """Redraw ``x[c, positions[c]]`` for the chains where ``active``; ``uniforms`` ``(B,)``."""
    log_probs = model.masked_log_probs_torch(x, positions)  # (B, V)
    row = sampling_log_probs(log_probs, model.special_token_ids, temperature, top_k)  # (B, V)
    tokens = categorical_from_uniforms(uniforms, row)  # (B,)
    current = x.gather(1, positions[:, None])[:, 0]  # (B,)
    new_tokens = torch.where(active, tokens, current)
    return x.scatter(1, positions[:, None], new_tokens[:, None]), new_tokens


def step(uniforms: torch.Tensor, state: MLMGibbsState, model, scan: str = "random", temperature: float = 1.0, top_k=None):
    """One random-scan step (``uniforms`` ``(B, 2)``) or one systematic sweep (``(B, L)``) for every chain.

    Returns
    -------
    (MLMGibbsState, MLMGibbsInfo)
    """
    check_scan(scan)
    temperature = check_positive(temperature, "temperature")
    top_k = check_top_k(top_k)
    x = state.x
    lengths = sequence_lengths(x)  # (B,)
    flag = changes_target(temperature, top_k)
    if scan == "random":
        positions = integer_from_uniform(uniforms[:, 0], lengths)  # (B,)
        active = torch.ones_like(positions, dtype=torch.bool)
        x, tokens = _update(uniforms[:, 1], x, positions, model, temperature, top_k, active)
        return MLMGibbsState(x), MLMGibbsInfo(positions, tokens, flag)
    num_chains, width = x.shape
    for position in range(width):
        active = position < lengths  # (B,)
        if not bool(active.any()):
            break
        # Rows too short for this position ask about their last position and keep their token.
        positions = torch.minimum(torch.full_like(lengths, position), lengths - 1)
        x, _ = _update(uniforms[:, position], x, positions, model, temperature, top_k, active)
    swept = torch.arange(width, device=x.device)[None, :].expand(num_chains, -1)
    swept = torch.where(swept < lengths[:, None], swept, -1)
    return MLMGibbsState(x), MLMGibbsInfo(swept, x.clone(), flag)


def check_sequences(x, model, name: str = "x") -> torch.Tensor:
    """Batched :func:`textsampling.reference.mlm_gibbs.check_sequence`: ``(B, L)`` rows of tokens then only PAD.

    Every row must hold at least one token and at most ``model.max_length``; returns ``x`` as int64.
    """
    x = check_tensor(x, name, integer=True, ndim=2)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"{name} must have shape (B, L) with B, L >= 1 (a leading chain dimension), got {tuple(x.shape)}"
        )
    lengths = sequence_lengths(x)  # (B,)
    past_end = torch.arange(x.shape[1], device=x.device)[None, :] >= lengths[:, None]  # (B, L)
    empty = lengths == 0  # (B,)
    not_padded = (past_end & (x != PAD)).any(dim=1)  # (B,)
    too_long = lengths > model.max_length  # (B,)
    for bad, what in ((empty, f"is empty (starts with PAD = {PAD}); give at least one token"),
                      (not_padded, f"must hold tokens followed only by PAD = {PAD}"),
                      (too_long, f"is longer than the model's max_length = {model.max_length}")):
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0, 0])
            raise ValueError(f"{name}[{row}] {what}, got {x[row].tolist()}")
    return x.to(torch.int64)


def check_num_chains(rng, num_chains: int, name: str = "x0") -> None:
    """A counter generator must serve exactly the ``num_chains`` rows of ``name``."""
    if isinstance(rng, CounterGenerator) and rng.num_chains != num_chains:
        raise ValueError(
            f"rng serves {rng.num_chains} chains (chain_index) but {name} has {num_chains} rows; "
            "give one chain index per chain"
        )


def sample(
    rng,
    model,
    num_steps: int,
    x0=None,
    scan: str = "random",
    temperature: float = 1.0,
    top_k=None,
    max_length: int | None = None,
    length_log_probs=None,
    first_step: int = 0,
    num_chains: int | None = None,
) -> MLMGibbsTrace:
    """Run ``num_steps`` steps (sweeps for the systematic scan) for every chain; twin of the reference ``sample``.

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, num_uniforms(scan, L), B)`` in float64; with a
    :class:`~textsampling.torch.randomness.CounterGenerator`, chain ``b`` is the reference chain run with
    ``CounterGenerator(seed, rng.chain_index[b])``. Without ``x0`` every chain starts all [MASK], its length
    drawn from the uniforms of step :data:`~textsampling.reference.mlm_gibbs.INIT_STEP`.

    Parameters
    ----------
    rng : CounterGenerator or torch.Generator, on the chains' device
    model : masked LM with ``masked_log_probs_torch``
    num_steps, first_step : int >= 0
    x0 : torch.Tensor of int, shape (B, L), optional
        PAD-padded starts; ``None`` for all-[MASK] starts.
    scan, temperature, top_k, max_length, length_log_probs : as in the reference
    num_chains : int, optional
        ``B`` of an all-[MASK] start with a ``torch.Generator`` (a counter generator knows its chains).

    Returns
    -------
    MLMGibbsTrace
        Arrays chains first, ``(B, T, ...)``.
    """
    rng = as_generator(rng)
    check_masked_model(model)
    num_steps = check_int(num_steps, "num_steps")
    first_step = check_int(first_step, "first_step")
    check_scan(scan)
    flag = changes_target(check_positive(temperature, "temperature"), check_top_k(top_k))
    dtype = torch.float64
    if x0 is None:
        if isinstance(rng, CounterGenerator):
            num_chains = rng.num_chains if num_chains is None else num_chains
        elif num_chains is None:
            raise ValueError("num_chains is required for an all-[MASK] start with a torch.Generator (or give x0)")
        num_chains = check_int(num_chains, "num_chains", minimum=1)
        check_num_chains(rng, num_chains, "num_chains")
        max_length = model.max_length if max_length is None else check_int(max_length, "max_length", minimum=1)
        uniforms = draw_uniforms(rng, INIT_STEP, 1, num_chains, dtype=dtype, device=rng.device)  # (B, 1)
        state = init_all_mask(uniforms, model, max_length, length_log_probs)
    else:
        x0 = check_sequences(x0, model, "x0")
        if num_chains is not None and num_chains != x0.shape[0]:
            raise ValueError(f"num_chains = {num_chains!r} but x0 has {x0.shape[0]} rows; leave num_chains out with x0")
        check_num_chains(rng, x0.shape[0], "x0")
        state = MLMGibbsState(x0)
    num_chains, width = state.x.shape
    device = state.x.device
    k = num_uniforms(scan, width)
    states = torch.empty((num_chains, num_steps, width), dtype=torch.int64, device=device)
    positions = torch.full((num_chains, num_steps), -1, dtype=torch.int64, device=device)
    done = 0
    try:
        for t in range(num_steps):
            uniforms = draw_uniforms(rng, first_step + t, k, num_chains, dtype=dtype, device=device)  # (B, k)
            state, info = step(uniforms, state, model, scan, temperature, top_k)
            states[:, t] = state.x
            if scan == "random":
                positions[:, t] = info.position
            done = t + 1
    except KeyboardInterrupt:
        # Keep what was drawn: the completed steps, flagged.
        return MLMGibbsTrace(states[:, :done], positions[:, :done], state, flag, True)
    return MLMGibbsTrace(states, positions, state, flag, False)
