r"""Torch twin of :mod:`textsampling.reference.cgmh`: CGMH for a batch of chains, no loop over chains.

The math — target, keyword rule, candidate sets, Hastings ratio, uniform roles — is the reference's
(Miao et al. 2019, arXiv:1811.10996; part 4 of the series); this module only batches it.

**Batch, shape and dtype contract.** ``B`` chains of sentences of at most ``L = config.max_length``
tokens:

* :class:`CGMHState`: ``x`` ``(B, L)`` int64, PAD-padded (``-1``); ``log_prob`` ``(B,)`` the untempered
  :math:`\log\rho` in the model's floating dtype; ``protected`` ``(B, L)`` bool.
* :func:`step` reads ``uniforms`` ``(B, 4)`` floating in (0, 1) (float64 to reproduce the reference
  decision by decision); every tensor lives on ``x``'s device.
* :class:`CGMHInfo`: ``move`` ``(B,)`` int64 indices into :data:`MOVES` (the reference stores the
  names), ``position`` ``(B,)`` int64 (-1 for an impossible move), ``proposal`` ``(B, L)``,
  ``log_accept_prob`` ``(B,)``, ``accepted`` ``(B,)`` bool.
* :func:`sample` returns a :class:`~textsampling.reference.chain.Trace` whose fields are ``(B, T, ...)``.

Per step, for all ``B`` chains at once, the model is asked through one
:class:`~textsampling.lm.base.PrefixScorer` (:func:`textsampling.lm.base.prefix_scorer_torch`) built on
the ``B`` prefixes :math:`x_{<i}` (the prefix is the same for the three moves: a replace at :math:`i`, an
insert at slot :math:`i`, and the reverse insert of a delete at :math:`i`): its next-token law gives the
candidate sets, and one call scores the ``B * (K + 1)`` sentences of the step — the ``K`` candidates and
the deletion, all of which start with :math:`x_{<i}`. A causal LM with a KV cache
(:class:`~textsampling.lm.hf_causal.HFCausalLM`) runs each prefix once and only the continuations after
it; any other model (the bigram oracle) rescores every sentence in full. A delete's reverse normaliser
weighs :math:`y` with :math:`v` inserted at :math:`i`, which is :math:`x` with :math:`x_i` replaced by
:math:`v`: the replace candidates, so the same ``(B, K, L)`` tensor serves both moves. Where a move may
act is recomputed from each proposed sentence, as in the reference: :func:`locked_positions` on the
``(B * K, L)`` candidates gives the reverse move's counts.

The configuration is the reference's :class:`~textsampling.reference.cgmh.CGMHConfig`; the model must
have the ``*_torch`` methods, and ``log_similarity_fn`` (if any) must accept a ``(N, L)`` tensor.
Fed the same float64 uniforms, chain ``c`` takes the reference's decisions (tests/test_twin_lm_samplers.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling.lm.base import prefix_scorer_torch
from textsampling.lm.tokens import PAD, mask_special_tokens_torch, sequence_lengths_torch
from textsampling.reference.cgmh import MOVES, CGMHConfig, normalize_keywords
from textsampling.reference.chain import Trace
from textsampling.torch import chain
from textsampling.torch._validation import check_batch, check_same_device, check_tensor, raise_if
from textsampling.torch.randomness import categorical_from_uniforms, check_num_chains, integer_from_uniform

__all__ = [
    "MOVES",
    "num_uniforms",
    "CGMHState",
    "CGMHInfo",
    "CGMHTrace",
    "satisfies_keywords",
    "locked_positions",
    "log_target",
    "init",
    "step",
    "check_config",
    "sample",
]

REPLACE, INSERT, DELETE = 0, 1, 2


def num_uniforms() -> int:
    """Uniforms per step and chain: move type, position, candidate, accept (the reference's roles)."""
    return 4


class CGMHState(NamedTuple):
    """The reference's :class:`~textsampling.reference.cgmh.CGMHState`, one row per chain."""

    x: torch.Tensor  # (B, L) int64, PAD-padded
    log_prob: torch.Tensor  # (B,) untempered log rho
    protected: torch.Tensor  # (B, L) bool: locked keyword pieces (carried under keyword_rule="position")


class CGMHInfo(NamedTuple):
    """The reference's :class:`~textsampling.reference.cgmh.CGMHInfo`, one row per chain."""

    move: torch.Tensor  # (B,) int64 index into MOVES
    position: torch.Tensor  # (B,) int64, -1 for an impossible move
    proposal: torch.Tensor  # (B, L)
    log_accept_prob: torch.Tensor  # (B,)
    accepted: torch.Tensor  # (B,) bool


#: A run: :class:`~textsampling.reference.chain.Trace` of :class:`CGMHState` and :class:`CGMHInfo`,
#: fields ``(B, T, ...)`` (``trace.states.x`` ``(B, T, L)``, ``trace.infos.move`` ``(B, T)``).
CGMHTrace = Trace


# ----------------------------------------------------------------------------- keyword rules
def _unit_starts(x: torch.Tensor, unit: tuple, continuation: torch.Tensor) -> torch.Tensor:
    """``(N, L)`` bool: ``unit`` occurs as a whole word from position ``s`` (PAD never matches a token).

    ``continuation`` ``(C,)``: ids of pieces that glue onto the previous token; one right after the unit
    makes it part of a longer word.
    """
    num_rows, width = x.shape
    starts = torch.zeros((num_rows, width), dtype=torch.bool, device=x.device)
    size = len(unit)
    span = width - size + 1
    if span > 0:
        match = torch.ones((num_rows, span), dtype=torch.bool, device=x.device)
        for k, token in enumerate(unit):
            match &= x[:, k : k + span] == token  # (N, span)
        following = torch.full((num_rows, span), PAD, dtype=x.dtype, device=x.device)  # token after the unit
        following[:, : span - 1] = x[:, size:]  # (N, span - 1)
        match &= ~torch.isin(following, continuation)
        starts[:, :span] = match  # (N, span) of (N, L)
    return starts


def _continuation(config_or_tokens, device) -> torch.Tensor:
    tokens = getattr(config_or_tokens, "continuation_tokens", config_or_tokens)
    return torch.as_tensor(sorted(tokens), dtype=torch.int64, device=device)


def _shifted(starts: torch.Tensor, offset: int, width: int) -> torch.Tensor:
    """``out[:, s + offset] = starts[:, s]``, cut or padded to ``width`` columns."""
    out = torch.zeros((starts.shape[0], width), dtype=torch.bool, device=starts.device)
    count = min(starts.shape[1], width - offset)
    if count > 0:
        out[:, offset : offset + count] = starts[:, :count]  # (N, count) of (N, width)
    return out


def _required(keywords) -> dict:
    counts = {}
    for unit in normalize_keywords(keywords):
        counts[unit] = counts.get(unit, 0) + 1
    return counts


def satisfies_keywords(keywords, x: torch.Tensor, continuation_tokens=()) -> torch.Tensor:
    """Twin of :func:`textsampling.reference.cgmh.satisfies_keywords`: ``(N, L) -> (N,)`` bool."""
    continuation = _continuation(continuation_tokens, x.device)
    out = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for unit, count in _required(keywords).items():
        out &= _unit_starts(x, unit, continuation).sum(dim=1) >= count
    return out


def locked_positions(keywords, x: torch.Tensor, continuation_tokens=()):
    """Twin of :func:`textsampling.reference.cgmh.locked_positions`: ``(locked (N, L), blocked slots (N, L + 1))``."""
    num_rows, width = x.shape
    continuation = _continuation(continuation_tokens, x.device)
    locked = torch.zeros((num_rows, width), dtype=torch.bool, device=x.device)
    blocked = torch.zeros((num_rows, width + 1), dtype=torch.bool, device=x.device)
    for unit, count in _required(keywords).items():
        starts = _unit_starts(x, unit, continuation)  # (N, L)
        lock = (starts.sum(dim=1) <= count)[:, None]  # (N, 1): the keyword cannot spare an occurrence
        for k in range(len(unit)):
            locked |= _shifted(starts, k, width) & lock
            if k > 0:  # slot s + k lies strictly between two pieces
                blocked |= _shifted(starts, k, width + 1) & lock
    return locked, blocked


def log_target(config: CGMHConfig, states: torch.Tensor) -> torch.Tensor:
    """Twin of :func:`textsampling.reference.cgmh.log_target`: the untempered log rho of each row.

    ``states`` ``(N, L)`` -> ``(N,)`` in the model's dtype.
    """
    return _log_target_from(config, states, config.model.sequence_log_probs_torch(states))


def _log_target_from(config: CGMHConfig, states: torch.Tensor, sequence_log_probs: torch.Tensor) -> torch.Tensor:
    """:func:`log_target` of ``states`` ``(N, L)`` given the LM's ``log p(x, END)`` of them ``(N,)``."""
    out = config.gamma * sequence_log_probs
    if config.log_similarity_fn is not None:
        out = out + torch.as_tensor(config.log_similarity_fn(states), dtype=out.dtype, device=out.device)
    if config.keywords:
        has_keywords = satisfies_keywords(config.keywords, states, config.continuation_tokens)  # (N,)
        out = torch.where(has_keywords, out, -torch.inf)  # (N,)
    return out


def _check_state(x, protected) -> None:
    check_tensor(x, "x", integer=True, ndim=2)
    check_tensor(protected, "protected", ndim=2)
    if protected.dtype != torch.bool:
        raise TypeError(f"protected must be a torch.bool tensor (True at keyword positions), got {protected.dtype}")
    if protected.shape != x.shape:
        raise ValueError(f"protected must have the shape of x, (B, L) = {tuple(x.shape)}, got {tuple(protected.shape)}")
    check_same_device(x=x, protected=protected)


def init(x0: torch.Tensor, config: CGMHConfig, *, protected: torch.Tensor | None = None) -> CGMHState:
    """The states at sentences ``x0`` ``(B, L')``, ``L' <= max_length``, PAD-padded to ``(B, max_length)``.

    Twin of :func:`textsampling.reference.cgmh.init`, row by row. ``protected`` ``(B, L')`` bool is read
    only under ``keyword_rule="position"`` (``None``: nothing protected); under the occurrence rule every
    row must contain every keyword.
    """
    if isinstance(x0, tuple):  # a CGMHState (of either side) is a tuple
        raise TypeError("x0 must be a (B, L) token tensor, not a state: give state.x (and protected=state.protected)")
    check_tensor(x0, "x0", integer=True, ndim=2)
    num_chains, width = x0.shape
    if not 1 <= width <= config.max_length:
        raise ValueError(f"x0 must have 1..max_length = {config.max_length} columns, got shape {tuple(x0.shape)}")
    padding = config.max_length - width
    x = torch.nn.functional.pad(x0.to(torch.int64), (0, padding), value=PAD)  # (B, max_length)
    lengths = sequence_lengths_torch(x)  # (B,)
    is_pad = torch.arange(config.max_length, device=x.device)[None, :] >= lengths[:, None]  # (B, L)
    raise_if(
        [(lengths == 0).any(), ((x != PAD) & is_pad).any()],
        ["x0 must hold at least one token in every row", f"x0 must hold only PAD = {PAD} after its first PAD"],
    )
    if config.keyword_rule == "position":
        if protected is None:
            protected = torch.zeros_like(x, dtype=torch.bool)  # (B, L)
        else:
            _check_state(x0, protected)
            protected = torch.nn.functional.pad(protected, (0, padding), value=False)  # (B, max_length)
    else:
        if protected is not None:
            raise ValueError(
                'protected is only read under keyword_rule="position"; the occurrence rule derives it from x0'
            )
        missing = ~satisfies_keywords(config.keywords, x, config.continuation_tokens)  # (B,)
        if missing.any():
            row = int(torch.nonzero(missing)[0, 0])  # first offending chain
            raise ValueError(f"x0[{row}] does not contain every keyword {list(config.keywords)}")
        protected = locked_positions(config.keywords, x, config.continuation_tokens)[0]  # (B, L)
    _check_state(x, protected)
    return CGMHState(x, log_target(config, x), protected)


def _insert(x: torch.Tensor, slots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``x`` (B, L) with each of ``values`` (B, K) inserted at ``slots`` (B,): (B, K, L); the last entry drops off."""
    width = x.shape[1]
    positions = torch.arange(width, device=x.device)[None, :]  # (1, L)
    source = torch.clamp(positions - (positions > slots[:, None]).to(torch.int64), min=0)  # (B, L)
    shifted = x.gather(1, source)  # (B, L): x[t] before the slot, x[t-1] after it
    out = shifted[:, None, :].expand(-1, values.shape[1], -1)  # (B, K, L)
    at_slot = (positions == slots[:, None])[:, None, :]  # (B, 1, L)
    return torch.where(at_slot, values[:, :, None].to(x.dtype), out)  # (B, K, L)


def _delete(x: torch.Tensor, positions_deleted: torch.Tensor, fill) -> torch.Tensor:
    """``x`` (B, L) without entry ``positions_deleted`` (B,), ``fill`` appended: (B, L)."""
    width = x.shape[1]
    positions = torch.arange(width, device=x.device)[None, :]
    source = positions + (positions >= positions_deleted[:, None]).to(torch.int64)  # (B, L)
    out = x.gather(1, torch.clamp(source, max=width - 1))  # (B, L): x[t] before the position, x[t+1] from it
    return torch.where(source >= width, torch.full_like(out, fill), out)  # (B, L)


def _rank_select(allowed: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """Index of the ``rank``-th True of each row of ``allowed`` ``(B, W)``: ``(B,)`` (0 where none)."""
    ranks = torch.cumsum(allowed.to(torch.int64), dim=1) - 1  # (B, W)
    return torch.argmax((allowed & (ranks == rank[:, None])).to(torch.int64), dim=1)  # (B,)


def _top_k_stable(values: torch.Tensor, k: int):
    """``(values, indices)`` ``(B, k)``: the first ``k`` columns of a stable descending sort of ``values`` ``(B, V)``.

    The largest ``k`` of each row, largest first, the lower index first among equal values, as
    ``torch.sort(values, dim=1, descending=True, stable=True)`` orders them, without sorting all ``V``
    (a full sort of GPT-2's vocabulary is most of a CGMH step's work outside the model at one chain):
    ``torch.topk`` gives the ``k``-th largest value; every entry above it and the lowest-indexed entries
    equal to it make the set, which is then sorted stably. A row holding NaN is sorted in full.
    """
    num_rows, width = values.shape
    if k >= width or bool(torch.isnan(values).any()):
        ranked = torch.sort(values, dim=1, descending=True, stable=True)
        return ranked.values[:, :k], ranked.indices[:, :k]
    threshold = torch.topk(values, k, dim=1).values[:, k - 1 :]  # (B, 1) the k-th largest
    above = values > threshold  # (B, V)
    tied = values == threshold  # (B, V)
    missing = k - above.sum(dim=1, keepdim=True)  # (B, 1) >= 1: entries equal to the threshold to take
    chosen = above | (tied & (torch.cumsum(tied.to(torch.int64), dim=1) <= missing))  # (B, V): k per row
    indices = torch.nonzero(chosen)[:, 1].reshape(num_rows, k)  # (B, k) in increasing index
    chosen_values = values.gather(1, indices)  # (B, k)
    order = torch.sort(chosen_values, dim=1, descending=True, stable=True).indices  # (B, k)
    return chosen_values.gather(1, order), indices.gather(1, order)


def _sites(config: CGMHConfig, x: torch.Tensor, protected: torch.Tensor):
    """``(editable (N, L), open slots (N, L + 1))``: where a replace/delete and an insert may act."""
    width = x.shape[1]
    lengths = sequence_lengths_torch(x)  # (N,)
    if config.keyword_rule == "position":
        locked, blocked = protected, torch.zeros((x.shape[0], width + 1), dtype=torch.bool, device=x.device)
    else:
        locked, blocked = locked_positions(config.keywords, x, config.continuation_tokens)
    editable = (torch.arange(width, device=x.device)[None, :] < lengths[:, None]) & ~locked  # (N, L)
    open_slots = (torch.arange(width + 1, device=x.device)[None, :] <= lengths[:, None]) & ~blocked  # (N, L + 1)
    return editable, open_slots


def _protected_after(config: CGMHConfig, states: torch.Tensor, carried: torch.Tensor) -> torch.Tensor:
    """``protected`` of proposed sentences ``(N, L)``: recomputed, or carried along (position rule)."""
    if config.keyword_rule == "position":
        return carried
    return locked_positions(config.keywords, states, config.continuation_tokens)[0]


def step(uniforms: torch.Tensor, state: CGMHState, config: CGMHConfig):
    """One CGMH step for every chain, deterministic given ``uniforms`` ``(B, 4)``.

    Twin of :func:`textsampling.reference.cgmh.step` (the moves and the Hastings ratio are derived there).
    Returns ``(CGMHState, CGMHInfo)``.
    """
    model, temperature = config.model, config.temperature
    x, protected = state.x, state.protected
    _check_state(x, protected)
    check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    check_batch(x.shape[0], uniforms=uniforms)
    if uniforms.shape[1] != 4:
        raise ValueError(
            f"uniforms must have shape (B, 4) (move, position, candidate, accept), got {tuple(uniforms.shape)}"
        )
    check_same_device(uniforms=uniforms, x=x)
    raise_if([~((uniforms > 0) & (uniforms < 1)).all()], ["uniforms must lie in the open interval (0, 1)"])
    num_chains, width = x.shape
    device, dtype = x.device, uniforms.dtype
    positions = torch.arange(width, device=device)[None, :]  # (1, L)
    lengths = sequence_lengths_torch(x)  # (B,)
    editable, open_slots = _sites(config, x, protected)  # (B, L), (B, L + 1)
    num_editable = editable.sum(dim=1)  # (B,)
    num_slots = open_slots.sum(dim=1)  # (B,) >= 1: slots 0 and n are never inside a keyword
    log_moves = torch.as_tensor(config.log_move_probabilities, dtype=dtype, device=device)  # (3,)

    # --- move type and position
    move = categorical_from_uniforms(uniforms[:, 0], log_moves.expand(num_chains, -1), validate=False)  # (B,)
    edit_rank = integer_from_uniform(uniforms[:, 1], torch.clamp(num_editable, min=1))  # (B,) k-th editable token
    edit_position = _rank_select(editable, edit_rank)  # (B,)
    slot = _rank_select(open_slots, integer_from_uniform(uniforms[:, 1], num_slots))  # (B,) in 0..n
    position = torch.where(move == INSERT, slot, edit_position)  # (B,)
    possible = torch.where(
        move == INSERT, lengths < width, (num_editable > 0) & ((move == REPLACE) | (lengths > 1))
    )  # (B,)

    # --- candidate set: top-K after the prefix x_{<i} (specials and zero-probability tokens excluded)
    # Every sentence scored this step starts with x_{<i}: the model may run that prefix once (a KV cache).
    scorer = prefix_scorer_torch(model, x, position.clamp(max=lengths))  # i <= n (an insert's slot n at most)
    next_log_probs = mask_special_tokens_torch(
        scorer.next_token_log_probs.to(dtype), model.special_token_ids
    )  # (B, V), special columns -inf
    num_top = min(config.num_candidates, next_log_probs.shape[1])
    top_values, candidates = _top_k_stable(next_log_probs, num_top)  # (B, K), (B, K): lower id first on ties
    valid = torch.isfinite(top_values)  # (B, K): valid ones come first
    current = x.gather(1, position.clamp(max=width - 1)[:, None])[:, 0]  # (B,) token at i (replace/delete)
    in_prefix_set = ((candidates == current[:, None]) & valid).any(dim=1)  # (B,)
    if config.candidate_set == "biased":
        # The published bias: a replace always keeps the current token among its candidates.
        appended = (move == REPLACE) & ~in_prefix_set
        candidates = torch.cat([candidates, current[:, None]], dim=1)  # (B, K+1)
        valid = torch.cat([valid, appended[:, None]], dim=1)  # (B, K+1)
    in_set = ((candidates == current[:, None]) & valid).any(dim=1)  # (B,)
    any_valid = valid.any(dim=1)  # (B,)
    possible = possible & (any_valid | (move == DELETE))
    fallback = torch.where(any_valid, candidates[:, 0], x[:, 0])  # (B,) a real token for the unused slots
    candidates = torch.where(valid, candidates, fallback[:, None])  # (B, K)

    # --- candidate sentences: x[i <- v] (replace, and a delete's reverse) or x with v inserted at i
    num_candidates = candidates.shape[1]
    replaced = x[:, None, :].expand(-1, num_candidates, -1).clone()  # (B, K, L)
    replaced = torch.where((positions == position[:, None])[:, None, :], candidates[:, :, None], replaced)  # (B, K, L)
    inserted = _insert(x, position, candidates)  # (B, K, L)
    is_insert = (move == INSERT)[:, None, None]  # (B, 1, 1)
    candidate_states = torch.where(is_insert, inserted, replaced)  # (B, K, L)
    inserted_protected = _insert(protected, position, torch.zeros_like(candidates, dtype=torch.bool))  # (B, K, L)
    kept_protected = protected[:, None, :].expand_as(inserted_protected)  # (B, K, L)
    carried = torch.where(is_insert, inserted_protected, kept_protected)  # (B, K, L)
    flat_states = candidate_states.reshape(-1, width)  # (B*K, L)
    candidate_protected = _protected_after(config, flat_states, carried.reshape(-1, width))  # (B*K, L)
    # The reverse of a replace (replace at i) or an insert (delete at i): is i editable in y, among how many?
    candidate_editable, _ = _sites(config, flat_states, candidate_protected)  # (B*K, L)
    candidate_editable = candidate_editable.reshape(num_chains, num_candidates, width)  # (B, K, L)
    candidate_protected = candidate_protected.reshape(num_chains, num_candidates, width)  # (B, K, L)
    reverse_num_editable = candidate_editable.sum(dim=2)  # (B, K)
    at_position = position.clamp(max=width - 1)[:, None, None].expand(-1, num_candidates, 1)  # (B, K, 1)
    reverse_position_open = candidate_editable.gather(2, at_position)[:, :, 0]  # (B, K)
    # One scoring call for the K candidate sentences and the deletion (x without x_i, or x itself when the
    # move is not a delete): all B * (K + 1) start with x_{<i}.
    deleted = _delete(x, position, PAD)  # (B, L)
    deleted = torch.where(possible[:, None] & (move == DELETE)[:, None], deleted, x)  # (B, L)
    scored = torch.cat([candidate_states, deleted[:, None, :]], dim=1)  # (B, K + 1, L)
    # A chain whose move is impossible rejects without reading a score: it asks about x itself, which a
    # scorer that has run x (the KV cache's) answers without running the model again.
    scored = torch.where(possible[:, None, None], scored, x[:, None, :])  # (B, K + 1, L)
    scored_log_p = scorer.sequence_log_probs(scored)  # (B, K + 1)
    scored_log_rho = _log_target_from(config, scored.reshape(-1, width), scored_log_p.reshape(-1))
    scored_log_rho = scored_log_rho.reshape(num_chains, num_candidates + 1)  # (B, K + 1)
    candidate_log_rho = scored_log_rho[:, :num_candidates]  # (B, K)
    deleted_log_rho = scored_log_rho[:, num_candidates]  # (B,)
    tempered = torch.where(valid, candidate_log_rho / temperature, -torch.inf)  # (B, K)
    log_normaliser = torch.logsumexp(tempered, dim=1)  # (B,)
    log_token = tempered - log_normaliser[:, None]  # (B, K)
    # Every candidate sentence impossible: nothing to propose, a rejection (as in the reference).
    possible = possible & ((move == DELETE) | (log_normaliser > -torch.inf))
    # A delete's reverse insert uses the prefix set only (the bias concerns replaces).
    prefix_valid = valid[:, :num_top]  # (B, K) without the biased extra column
    prefix_tempered = torch.where(prefix_valid, candidate_log_rho[:, :num_top] / temperature, -torch.inf)  # (B, K)
    reverse_normaliser = torch.logsumexp(prefix_tempered, dim=1)  # (B,)

    # --- the chosen proposal
    token_logits = torch.where(any_valid[:, None], log_token, 0.0)  # (B, K)
    chosen = categorical_from_uniforms(uniforms[:, 2].to(token_logits.dtype), token_logits, validate=False)  # (B,)
    is_delete = move == DELETE  # (B,)
    deleted_protected = _protected_after(config, deleted, _delete(protected, position, False))  # (B, L)
    # The reverse of a delete (insert at slot i of y): is the slot open in y, among how many?
    _, deleted_open_slots = _sites(config, deleted, deleted_protected)  # (B, L + 1)
    reverse_num_slots = deleted_open_slots.sum(dim=1)  # (B,)
    reverse_slot_open = deleted_open_slots.gather(1, position[:, None])[:, 0]  # (B,)
    pick = chosen[:, None, None].expand(-1, 1, width)  # (B, 1, L)
    proposal = torch.where(is_delete[:, None], deleted, candidate_states.gather(1, pick)[:, 0])  # (B, L)
    chosen_protected = candidate_protected.gather(1, pick)[:, 0]  # (B, L)
    proposal_protected = torch.where(is_delete[:, None], deleted_protected, chosen_protected)  # (B, L)
    chosen_log_rho = candidate_log_rho.gather(1, chosen[:, None])[:, 0]  # (B,)
    proposal_log_rho = torch.where(is_delete, deleted_log_rho, chosen_log_rho)  # (B,)
    chosen_log_token = log_token.gather(1, chosen[:, None])[:, 0]  # (B,)
    chosen_reverse_editable = reverse_num_editable.gather(1, chosen[:, None])[:, 0].to(dtype)  # (B,) m(y)
    chosen_reverse_open = reverse_position_open.gather(1, chosen[:, None])[:, 0]  # (B,)

    # --- log q(y | x) and log q(x | y): move type, position, token (counts of the sentence they belong to)
    log_x = state.log_prob / temperature  # (B,)
    use_positions = 1.0 if config.position_ratio else 0.0
    log_editable = torch.log(num_editable.to(dtype))  # -inf where nothing is editable (impossible rows)
    log_slots = torch.log(num_slots.to(dtype))
    log_reverse_editable = torch.log(chosen_reverse_editable)
    log_reverse_slots = torch.log(reverse_num_slots.to(dtype))
    log_replace, log_insert, log_delete = log_moves[0], log_moves[1], log_moves[2]
    minus_inf = torch.full_like(log_x, -torch.inf)
    forward = torch.where(
        move == REPLACE,
        log_replace - log_editable + chosen_log_token,
        torch.where(move == INSERT, log_insert - use_positions * log_slots + chosen_log_token,
                    log_delete - use_positions * log_editable),
    )  # (B,)
    reverse = torch.where(
        move == REPLACE,
        torch.where(chosen_reverse_open & in_set,
                    log_replace - log_reverse_editable + log_x - log_normaliser, minus_inf),
        torch.where(
            move == INSERT,
            torch.where(chosen_reverse_open, log_delete - use_positions * log_reverse_editable, minus_inf),
            torch.where(reverse_slot_open & in_prefix_set,
                        log_insert - use_positions * log_reverse_slots + log_x - reverse_normaliser, minus_inf),
        ),
    )  # (B,)
    q_ratio = reverse - forward
    proposal_tempered = proposal_log_rho / temperature  # (B,)
    # log alpha as the reference's metropolis_hastings.log_accept_ratio: NaN stays NaN (a rejection).
    log_alpha = torch.clamp(proposal_tempered - log_x + q_ratio, max=0.0)  # (B,)
    leaves_impossible = (log_x == -torch.inf) & torch.isfinite(proposal_tempered)  # (B,)
    log_alpha = torch.where(leaves_impossible, torch.zeros_like(log_alpha), log_alpha)  # (B,)
    log_alpha = torch.where(possible, log_alpha, minus_inf)  # (B,)
    accepted = (torch.log(uniforms[:, 3]) < log_alpha) & possible  # (B,)

    new_state = CGMHState(
        torch.where(accepted[:, None], proposal, x),  # (B, L)
        torch.where(accepted, proposal_log_rho, state.log_prob),  # (B,)
        torch.where(accepted[:, None], proposal_protected, protected),  # (B, L)
    )
    shown_position = torch.where(possible, position, -1)  # (B,)
    shown_proposal = torch.where(possible[:, None], proposal, x)  # (B, L)
    return new_state, CGMHInfo(move, shown_position, shown_proposal, log_alpha, accepted)


def check_config(config) -> CGMHConfig:
    """``config`` must be the reference's :class:`~textsampling.reference.cgmh.CGMHConfig`."""
    if not isinstance(config, CGMHConfig):
        raise TypeError(
            f"config must be a CGMHConfig (from textsampling.reference.cgmh.make_config), got {type(config).__name__}"
        )
    return config


def sample(rng, x0: torch.Tensor, config: CGMHConfig, num_steps: int, *, first_step: int = 0, protected=None) -> Trace:
    """Run ``num_steps`` steps for every chain from the sentences ``x0`` ``(B, L')``; twin of the reference ``sample``.

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, 4, B)`` in float64; the loop is
    :func:`textsampling.torch.chain.run`. With a :class:`~textsampling.torch.randomness.CounterGenerator`,
    chain ``b`` is the reference chain run with ``CounterGenerator(seed, rng.chain_index[b])``.

    Returns
    -------
    CGMHTrace
        ``states.x`` ``(B, T, L)``, ``states.log_prob`` ``(B, T)``, ``infos.move`` ``(B, T)`` …
    """
    check_config(config)
    state = init(x0, config, protected=protected)
    check_num_chains(rng, state.x.shape[0], "x0")
    return chain.run(
        rng, state, lambda uniforms, current, t: step(uniforms, current, config), num_uniforms(), num_steps,
        first_step=first_step, dtype=torch.float64,
    )
