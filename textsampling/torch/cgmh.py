r"""Torch twin of :mod:`textsampling.reference.cgmh`: CGMH for a batch of chains, no loop over chains.

Same moves, candidate sets, Hastings ratio and uniform roles as the reference (Miao et al. 2019,
arXiv:1811.10996; part 4 of the series); the derivation is in the reference's docstring. Per step
and for all ``B`` chains at once: one next-token call on the ``B`` prefixes :math:`x_{<i}` (the prefix
is the same for the three moves: a replace at :math:`i`, an insert at slot :math:`i`, and the reverse
insert of a delete at :math:`i`), one sequence-score call on the ``B * K`` candidate sentences, one
on the ``B`` deletions. A delete's reverse normaliser weighs :math:`y` with :math:`v` inserted at
:math:`i`, which is :math:`x` with :math:`x_i` replaced by :math:`v`: the replace candidates, so the
same ``(B, K, L)`` tensor serves both moves.

The configuration is the reference's :class:`~textsampling.reference.cgmh.CGMHConfig`; the model must
have the ``*_torch`` methods, and ``log_similarity_fn`` (if any) must accept a ``(N, L)`` tensor.
Fed the same float64 uniforms, chain ``c`` takes the reference's decisions (tests/test_lm_samplers_twins.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling.reference.cgmh import MOVES, NUM_UNIFORMS, CGMHConfig
from textsampling.targets.base import PAD
from textsampling.torch._validation import check_batch, check_same_device, check_tensor, raise_if
from textsampling.torch.mlm_gibbs import categorical_from_uniforms, integer_from_uniforms, sequence_lengths

__all__ = ["MOVES", "NUM_UNIFORMS", "CGMHState", "CGMHInfo", "log_target", "init", "step"]

REPLACE, INSERT, DELETE = 0, 1, 2


class CGMHState(NamedTuple):
    x: torch.Tensor  # (B, L) long, PAD-padded
    protected: torch.Tensor  # (B, L) bool
    log_prob: torch.Tensor  # (B,) untempered log rho


class CGMHInfo(NamedTuple):
    move: torch.Tensor  # (B,) index into MOVES
    position: torch.Tensor  # (B,), -1 for an impossible move
    proposal: torch.Tensor  # (B, L)
    log_accept_ratio: torch.Tensor  # (B,)
    accepted: torch.Tensor  # (B,) bool


def log_target(config: CGMHConfig, states: torch.Tensor) -> torch.Tensor:
    """Untempered :math:`\\gamma \\log p(x) + \\log\\mathrm{sim}(x, c)` of each row ``(N, L) -> (N,)``."""
    out = config.gamma * config.model.sequence_log_probs_torch(states)
    if config.log_similarity_fn is not None:
        out = out + torch.as_tensor(config.log_similarity_fn(states), dtype=out.dtype, device=out.device)
    return out


def _check_state(x, protected) -> None:
    check_tensor(x, "x", integer=True, ndim=2)
    check_tensor(protected, "protected", ndim=2)
    if protected.dtype != torch.bool:
        raise TypeError(f"protected must be a torch.bool tensor (True at keyword positions), got dtype {protected.dtype}")
    if protected.shape != x.shape:
        raise ValueError(f"protected must have the shape of x, (B, L) = {tuple(x.shape)}, got {tuple(protected.shape)}")
    check_same_device(x=x, protected=protected)


def init(x: torch.Tensor, protected: torch.Tensor, config: CGMHConfig) -> CGMHState:
    """The states ``x`` ``(B, L)`` (PAD-padded) with keyword mask ``protected`` ``(B, L)`` and their log rho."""
    _check_state(x, protected)
    return CGMHState(x, protected, log_target(config, x))


def _insert(x: torch.Tensor, slots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``x`` (B, L) with each of ``values`` (B, K) inserted at ``slots`` (B,): (B, K, L); the last entry drops off."""
    width = x.shape[1]
    positions = torch.arange(width, device=x.device)[None, :]  # (1, L)
    source = torch.clamp(positions - (positions > slots[:, None]).to(torch.int64), min=0)  # (B, L)
    shifted = x.gather(1, source)  # (B, L): x[t] before the slot, x[t-1] after it
    out = shifted[:, None, :].expand(-1, values.shape[1], -1)  # (B, K, L)
    at_slot = (positions == slots[:, None])[:, None, :]  # (B, 1, L)
    return torch.where(at_slot, values[:, :, None].to(x.dtype), out)


def _delete(x: torch.Tensor, positions_deleted: torch.Tensor, fill) -> torch.Tensor:
    """``x`` (B, L) without entry ``positions_deleted`` (B,), ``fill`` appended: (B, L)."""
    width = x.shape[1]
    positions = torch.arange(width, device=x.device)[None, :]
    source = positions + (positions >= positions_deleted[:, None]).to(torch.int64)  # (B, L)
    out = x.gather(1, torch.clamp(source, max=width - 1))
    return torch.where(source >= width, torch.full_like(out, fill), out)


def step(uniforms: torch.Tensor, state: CGMHState, config: CGMHConfig):
    """One CGMH step for every chain; ``uniforms`` ``(B, 4)``. Returns ``(CGMHState, CGMHInfo)``."""
    model, temperature = config.model, config.temperature
    x, protected = state.x, state.protected
    _check_state(x, protected)
    check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    check_batch(x.shape[0], uniforms=uniforms)
    if uniforms.shape[1] != 4:
        raise ValueError(f"uniforms must have shape (B, 4) (move, position, candidate, accept), got {tuple(uniforms.shape)}")
    check_same_device(uniforms=uniforms, x=x)
    raise_if([~((uniforms > 0) & (uniforms < 1)).all()], ["uniforms must lie in the open interval (0, 1)"])
    num_chains, width = x.shape
    device, dtype = x.device, uniforms.dtype
    positions = torch.arange(width, device=device)[None, :]  # (1, L)
    lengths = sequence_lengths(x)  # (B,)
    editable = (positions < lengths[:, None]) & ~protected  # (B, L)
    num_editable = editable.sum(dim=1)  # (B,)
    log_moves = torch.as_tensor(config.log_move_probabilities, dtype=dtype, device=device)  # (3,)

    # --- move type and position
    move = categorical_from_uniforms(uniforms[:, 0], log_moves.expand(num_chains, -1))  # (B,)
    rank = integer_from_uniforms(uniforms[:, 1], torch.clamp(num_editable, min=1))  # k-th editable token
    ranks = torch.cumsum(editable.to(torch.int64), dim=1) - 1  # (B, L)
    edit_position = torch.argmax((editable & (ranks == rank[:, None])).to(torch.int64), dim=1)  # (B,)
    slot = integer_from_uniforms(uniforms[:, 1], lengths + 1)  # (B,) in 0..n
    position = torch.where(move == INSERT, slot, edit_position)
    possible = torch.where(
        move == INSERT, lengths < width, (num_editable > 0) & ((move == REPLACE) | (lengths > 1))
    )

    # --- candidate set: top-K after the prefix x_{<i} (specials and zero-probability tokens excluded)
    prefix = torch.where(positions < position[:, None], x, PAD)  # (B, L)
    next_log_probs = model.next_token_log_probs_torch(prefix).to(dtype)  # (B, V)
    special = [int(t) for t in model.special_token_ids if 0 <= int(t) < next_log_probs.shape[1]]
    if special:
        next_log_probs[:, special] = -torch.inf
    num_top = min(config.num_candidates, next_log_probs.shape[1])
    ranked = torch.sort(next_log_probs, dim=1, descending=True, stable=True)  # lower id first on ties
    candidates = ranked.indices[:, :num_top]  # (B, K)
    valid = torch.isfinite(ranked.values[:, :num_top])  # (B, K): valid ones come first
    current = x.gather(1, position.clamp(max=width - 1)[:, None])[:, 0]  # (B,) token at i (replace/delete)
    in_prefix_set = ((candidates == current[:, None]) & valid).any(dim=1)  # (B,)
    if config.candidate_set == "biased":
        # The published bias: a replace always keeps the current token among its candidates.
        appended = (move == REPLACE) & ~in_prefix_set
        candidates = torch.cat([candidates, current[:, None]], dim=1)  # (B, K+1)
        valid = torch.cat([valid, appended[:, None]], dim=1)
    in_set = ((candidates == current[:, None]) & valid).any(dim=1)  # (B,)
    any_valid = valid.any(dim=1)
    possible = possible & (any_valid | (move == DELETE))
    fallback = torch.where(any_valid, candidates[:, 0], x[:, 0])  # a real token for the unused slots
    candidates = torch.where(valid, candidates, fallback[:, None])  # (B, K)

    # --- candidate sentences: x[i <- v] (replace, and a delete's reverse) or x with v inserted at i
    replaced = x[:, None, :].expand(-1, candidates.shape[1], -1).clone()  # (B, K, L)
    replaced = torch.where((positions == position[:, None])[:, None, :], candidates[:, :, None], replaced)
    inserted = _insert(x, position, candidates)  # (B, K, L)
    is_insert = (move == INSERT)[:, None, None]
    candidate_states = torch.where(is_insert, inserted, replaced)  # (B, K, L)
    inserted_protected = _insert(protected, position, torch.zeros_like(candidates, dtype=torch.bool))  # (B, K, L)
    candidate_protected = torch.where(is_insert, inserted_protected, protected[:, None, :].expand_as(inserted_protected))
    num_candidates = candidate_states.shape[1]
    candidate_log_rho = log_target(config, candidate_states.reshape(-1, width)).reshape(num_chains, num_candidates)
    tempered = torch.where(valid, candidate_log_rho / temperature, -torch.inf)  # (B, K)
    log_normaliser = torch.logsumexp(tempered, dim=1)  # (B,)
    log_token = tempered - log_normaliser[:, None]  # (B, K)
    # A delete's reverse insert uses the prefix set only (the bias concerns replaces).
    prefix_valid = valid[:, :num_top]
    reverse_normaliser = torch.logsumexp(torch.where(prefix_valid, candidate_log_rho[:, :num_top] / temperature, -torch.inf), dim=1)

    # --- the chosen proposal
    chosen = categorical_from_uniforms(uniforms[:, 2], torch.where(any_valid[:, None], log_token, 0.0))  # (B,)
    deleted = _delete(x, position, PAD)  # (B, L)
    deleted_protected = _delete(protected, position, False)
    deleted_log_rho = log_target(config, torch.where(possible[:, None] & (move == DELETE)[:, None], deleted, x))
    is_delete = move == DELETE
    pick = chosen[:, None, None].expand(-1, 1, width)
    proposal = torch.where(is_delete[:, None], deleted, candidate_states.gather(1, pick)[:, 0])
    proposal_protected = torch.where(is_delete[:, None], deleted_protected, candidate_protected.gather(1, pick)[:, 0])
    proposal_log_rho = torch.where(is_delete, deleted_log_rho, candidate_log_rho.gather(1, chosen[:, None])[:, 0])
    chosen_log_token = log_token.gather(1, chosen[:, None])[:, 0]

    # --- log q(y | x) and log q(x | y): move type, position, token
    log_x = state.log_prob / temperature
    lengths_f, editable_f = lengths.to(dtype), num_editable.to(dtype)
    log_editable = torch.log(editable_f)  # -inf where nothing is editable (impossible rows)
    slot_term = -torch.log(lengths_f + 1) if config.position_ratio else torch.zeros_like(lengths_f)
    delete_term = -torch.log(editable_f + 1) if config.position_ratio else torch.zeros_like(lengths_f)
    reverse_slot_term = -torch.log(lengths_f) if config.position_ratio else torch.zeros_like(lengths_f)
    own_delete_term = -log_editable if config.position_ratio else torch.zeros_like(lengths_f)
    log_replace, log_insert, log_delete = log_moves[0], log_moves[1], log_moves[2]
    minus_inf = torch.full_like(log_x, -torch.inf)
    forward = torch.where(
        move == REPLACE,
        log_replace - log_editable + chosen_log_token,
        torch.where(move == INSERT, log_insert + slot_term + chosen_log_token, log_delete + own_delete_term),
    )
    reverse = torch.where(
        move == REPLACE,
        log_replace - log_editable + torch.where(in_set, log_x - log_normaliser, minus_inf),
        torch.where(
            move == INSERT,
            log_delete + delete_term,
            log_insert + reverse_slot_term + torch.where(in_prefix_set, log_x - reverse_normaliser, minus_inf),
        ),
    )
    q_ratio = reverse - forward
    proposal_tempered = proposal_log_rho / temperature
    log_alpha = torch.clamp(proposal_tempered - log_x + q_ratio, max=0.0)  # NaN stays NaN: a rejection
    log_alpha = torch.where((log_x == -torch.inf) & torch.isfinite(proposal_tempered), torch.zeros_like(log_alpha), log_alpha)
    log_alpha = torch.where(possible, log_alpha, minus_inf)
    accepted = (torch.log(uniforms[:, 3]) < log_alpha) & possible

    new_state = CGMHState(
        torch.where(accepted[:, None], proposal, x),
        torch.where(accepted[:, None], proposal_protected, protected),
        torch.where(accepted, proposal_log_rho, state.log_prob),
    )
    info = CGMHInfo(move, torch.where(possible, position, -1), torch.where(possible[:, None], proposal, x), log_alpha, accepted)
    return new_state, info
