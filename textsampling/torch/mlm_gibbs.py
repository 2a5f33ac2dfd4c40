r"""Torch twin of :mod:`textsampling.reference.mlm_gibbs`: MLM Gibbs for a batch of chains.

The math (Wang & Cho 2019, arXiv:1902.04094; part 3 of the series), the uniform roles and the
caller-masks rule are the reference's; see :mod:`textsampling.reference.mlm_gibbs`. This module only
batches them.

Batch, shape and dtype contract:

* chains first: a state ``x`` is ``(B, L)`` int64, each row PAD-padded; rows of different lengths
  share a batch (a sweep leaves position ``i`` of a row shorter than ``i + 1`` untouched);
* uniforms ``(B, num_uniforms(scan, L))``, float64 for the exact cross-checks (float32 allowed);
* one model call per random-scan step, or per position of a sweep, serves every chain:
  ``model.masked_log_probs_torch(x (B, L), positions (B,)) -> (B, V)`` on ``x``'s device, with
  ``[MASK]`` put at ``positions`` first;
* :func:`sample` returns :class:`~textsampling.reference.chain.Trace` with fields ``(B, T, ...)``.

Fed the same uniforms, in float64, chain ``c`` of :func:`step` equals the reference chain ``c`` token
for token (``tests/test_twin_lm_samplers.py``, ``tests/test_twin_lm_samplers_sample.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling._validation import check_int, check_positive
from textsampling.lm.tokens import (
    PAD,
    check_sequences_torch,
    mask_special_tokens_torch,
    sequence_lengths_torch,
    with_mask_at_torch,
)
from textsampling.reference import mlm_gibbs as reference
from textsampling.reference.mlm_gibbs import (
    INIT_STEP,
    changes_target,
    check_masked_model,
    check_scan,
    check_top_k,
)
from textsampling.torch import chain, randomness
from textsampling.torch.randomness import (
    CounterGenerator,
    as_generator,
    check_num_chains,
    draw_uniforms,
    integer_from_uniform,
)

__all__ = [
    "MLMGibbsState",
    "MLMGibbsInfo",
    "MLMGibbsTrace",
    "init",
    "num_uniforms",
    "sampling_log_probs",
    "conditional_log_probs",
    "init_all_mask",
    "draw_all_mask_starts",
    "step",
    "sample",
]

#: The twin's run: :class:`textsampling.reference.chain.Trace`, fields ``(B, T, ...)``.
MLMGibbsTrace = chain.Trace


class MLMGibbsState(NamedTuple):
    """Current sequences, ``(B, L)`` int64, PAD-padded."""

    x: torch.Tensor


class MLMGibbsInfo(NamedTuple):
    """The reference's info with a leading ``B``.

    Random scan: ``position`` and ``token`` ``(B,)``. Sweep: ``position`` ``(B, L)`` (-1 past each
    row's end) and ``token`` ``(B, L)`` (the rows after the sweep). ``changes_target``: a bool shared by
    all chains.
    """

    position: torch.Tensor
    token: torch.Tensor
    changes_target: bool


def num_uniforms(scan: str = "random", max_length: int | None = None) -> int:
    """Uniforms per chain and step, as :func:`textsampling.reference.mlm_gibbs.num_uniforms`."""
    return reference.num_uniforms(scan, max_length)


def sampling_log_probs(log_probs: torch.Tensor, special_token_ids, temperature: float = 1.0, top_k=None):
    """Batched :func:`textsampling.reference.mlm_gibbs.sampling_log_probs`: ``(B, V) -> (B, V)``, same dtype."""
    row = mask_special_tokens_torch(log_probs, special_token_ids) / temperature  # (B, V)
    if top_k is not None and top_k < row.shape[-1]:
        order = torch.sort(row, dim=-1, descending=True, stable=True).indices  # (B, V), lower id first on ties
        row = row.scatter(-1, order[:, top_k:], -torch.inf)  # (B, V): all but the top k of each row -inf
    return row


def conditional_log_probs(model, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Batched :func:`textsampling.reference.mlm_gibbs.conditional_log_probs`: ``x`` ``(B, L)``,
    ``positions`` ``(B,)`` -> ``(B, V)``, asked with [MASK] put at each row's position."""
    query = with_mask_at_torch(x, positions, model.mask_token_id)  # (B, L)
    return model.masked_log_probs_torch(query, positions)  # (B, V)


def init(x0: torch.Tensor, model) -> MLMGibbsState:
    """The states at ``x0`` ``(B, L)``: every row tokens (or [MASK]) then PAD, at most ``model.max_length``."""
    check_masked_model(model)
    return MLMGibbsState(check_sequences_torch(x0, "x0", max_length=model.max_length))


def init_all_mask(uniforms: torch.Tensor, model, max_length: int, length_log_probs=None) -> MLMGibbsState:
    """All-[MASK] starts, lengths drawn by ``uniforms[:, 0]`` ``(B, 1)``; as the reference's ``init_all_mask``."""
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
    length_rows = length_log_probs.expand(num_chains, -1)  # (B, max_length), one row per chain
    # validate=False: the rows were checked above and the uniforms come from draw_uniforms, in (0, 1).
    lengths = randomness.categorical_from_uniforms(uniforms[:, 0], length_rows, validate=False) + 1  # (B,)
    positions = torch.arange(max_length, device=uniforms.device)  # (L,)
    x = torch.where(positions[None, :] < lengths[:, None], int(mask_token_id), PAD)  # (B, L): [MASK] then PAD
    return MLMGibbsState(x.to(torch.int64))


def draw_all_mask_starts(rng, model, max_length: int | None = None, length_log_probs=None, *, num_chains=None):
    """All-[MASK] ``x0`` ``(B, L)`` for :func:`sample`; twin of the reference ``draw_all_mask_start``.

    The lengths come from the float64 uniforms of step :data:`~textsampling.reference.mlm_gibbs.INIT_STEP`.
    ``num_chains`` (``B``) is required with a ``torch.Generator``; a counter generator knows its chains.
    """
    rng = as_generator(rng)
    check_masked_model(model)
    if isinstance(rng, CounterGenerator):
        num_chains = rng.num_chains if num_chains is None else num_chains
    elif num_chains is None:
        raise ValueError("num_chains is required for an all-[MASK] start with a torch.Generator (or give x0)")
    num_chains = check_int(num_chains, "num_chains", minimum=1)
    check_num_chains(rng, num_chains, "num_chains")
    max_length = model.max_length if max_length is None else check_int(max_length, "max_length", minimum=1)
    uniforms = draw_uniforms(rng, INIT_STEP, 1, num_chains, dtype=torch.float64, device=rng.device)  # (B, 1)
    return init_all_mask(uniforms, model, max_length, length_log_probs).x


def _update(uniforms, x, positions, model, temperature, top_k, active):
    """Redraw ``x[c, positions[c]]`` for the chains where ``active``; ``uniforms`` ``(B,)``."""
    log_probs = conditional_log_probs(model, x, positions)  # (B, V)
    row = sampling_log_probs(log_probs, model.special_token_ids, temperature, top_k)  # (B, V)
    # validate=False: every row keeps a finite entry (the model's), and the uniforms are in (0, 1).
    tokens = randomness.categorical_from_uniforms(uniforms.to(row.dtype), row, validate=False)  # (B,)
    current = x.gather(1, positions[:, None])[:, 0]  # (B,): x[c, positions[c]]
    new_tokens = torch.where(active, tokens, current)  # (B,): inactive rows keep their token
    return x.scatter(1, positions[:, None], new_tokens[:, None]), new_tokens  # (B, L), (B,)


def step(uniforms: torch.Tensor, state: MLMGibbsState, model, *, scan: str = "random", temperature: float = 1.0,
         top_k=None):
    """One random-scan step (``uniforms`` ``(B, 2)``) or one systematic sweep (``(B, L)``) for every chain.

    Returns
    -------
    (MLMGibbsState, MLMGibbsInfo)
    """
    check_scan(scan)
    temperature = check_positive(temperature, "temperature")
    top_k = check_top_k(top_k)
    x = state.x
    lengths = sequence_lengths_torch(x)  # (B,)
    flag = changes_target(temperature, top_k)
    if scan == "random":
        positions = integer_from_uniform(uniforms[:, 0], lengths)  # (B,)
        active = torch.ones_like(positions, dtype=torch.bool)  # (B,)
        x, tokens = _update(uniforms[:, 1], x, positions, model, temperature, top_k, active)
        return MLMGibbsState(x), MLMGibbsInfo(positions, tokens, flag)
    num_chains, width = x.shape
    for position in range(width):
        active = position < lengths  # (B,)
        if not bool(active.any()):
            break
        # Rows too short for this position ask about their last position and keep their token.
        positions = torch.minimum(torch.full_like(lengths, position), lengths - 1)  # (B,)
        x, _ = _update(uniforms[:, position], x, positions, model, temperature, top_k, active)
    swept = torch.arange(width, device=x.device)[None, :].expand(num_chains, -1)  # (B, L)
    swept = torch.where(swept < lengths[:, None], swept, -1)  # (B, L): -1 past each row's end
    return MLMGibbsState(x), MLMGibbsInfo(swept, x.clone(), flag)


def sample(
    rng, x0: torch.Tensor, model, num_steps: int, *, first_step: int = 0, scan: str = "random",
    temperature: float = 1.0, top_k=None,
):
    """Run ``num_steps`` steps (sweeps for the systematic scan) for every chain; twin of the reference ``sample``.

    :func:`init` + :func:`textsampling.torch.chain.run` with float64 uniforms on ``x0``'s device: step
    ``t`` uses ``draw_uniforms(rng, first_step + t, num_uniforms(scan, L), B)``, so with a
    :class:`~textsampling.torch.randomness.CounterGenerator` chain ``b`` is the reference chain run with
    ``CounterGenerator(seed, rng.chain_index[b])``. For all-[MASK] starts give
    ``x0 = draw_all_mask_starts(rng, model)``.

    Parameters
    ----------
    rng : CounterGenerator or torch.Generator, on the chains' device
    x0 : torch.Tensor of int, shape (B, L)
    model : masked LM with ``masked_log_probs_torch``
    num_steps, first_step : int >= 0
    scan, temperature, top_k : as in the reference

    Returns
    -------
    MLMGibbsTrace
        Fields ``(B, T, ...)``.
    """
    rng = as_generator(rng)
    state = init(x0, model)
    num_chains, width = state.x.shape
    check_num_chains(rng, num_chains, "x0")

    def step_fn(uniforms, state, t):
        return step(uniforms, state, model, scan=scan, temperature=temperature, top_k=top_k)

    return chain.run(
        rng, state, step_fn, num_uniforms(scan, width), num_steps, first_step=first_step,
        dtype=torch.float64,
    )
