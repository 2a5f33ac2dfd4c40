r"""Torch twin of :mod:`textsampling.reference.decoding`: batched decoding baselines.

The filters (temperature, then top-k, then top-p, in transformers' order), the sentence law each one
samples and the papers are the reference's; read them there. The batch contract:

* a model with ``next_token_log_probs_torch``: PAD-padded prefixes ``(B, W)`` int64 -> ``(B, V)``
  log-probabilities, ``end_token_id`` and ``special_token_ids`` (never produced, END excepted:
  :func:`textsampling.lm.tokens.mask_special_tokens_torch` with ``keep=(end_token_id,)``);
* :func:`filter_log_probs` and :func:`next_token_rows` work on rows ``(B, V)`` in the rows' dtype and
  return them normalised;
* :func:`decode` takes ``uniforms`` ``(B, max_new_tokens)`` (float32 or float64; uniform ``t`` of row
  ``b`` draws token ``t`` of sentence ``b``) and returns :class:`DecodeResult`: ``tokens``
  ``(B, max_new_tokens)`` int64 PAD-padded, END excluded, and ``ended`` ``(B,)`` bool;
* :func:`beam_search` returns the reference's :class:`~textsampling.reference.decoding.BeamResult`.

One ``next_token_log_probs_torch`` call per position for the whole batch (no loop over sentences), or
one call on the new position with a KV cache; the ``k`` beams of :func:`beam_search` share one model
call per step. Fed the same float64 uniforms, sentence ``b`` equals the reference's.

Cost per step beyond the model: as the reference's ``decode``, each token is drawn from (or is the
argmax of) the filtered rows *before* their last renormalisation (neither the inverse-CDF draw nor the
argmax depends on a constant shift), so a step without filters is one float64 copy of the rows, then
the draw's max, exp and cumulative sum, done in place in buffers reused across steps (off the CPU the
cumulative sums' repair at zero weights adds temporaries: :func:`~textsampling.torch.randomness.cumulative_weights`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from textsampling.lm.tokens import PAD, special_token_mask
from textsampling.reference.decoding import BeamResult, check_decoding
from textsampling.reference.decoding import beam_search as _reference_beam_search
from textsampling.torch._validation import check_same_device, check_tensor
from textsampling.torch.categorical import inverse_cdf

__all__ = ["DecodeResult", "filter_log_probs", "next_token_rows", "decode", "beam_search", "BeamResult"]


class DecodeResult(NamedTuple):
    """Sentences of :func:`decode`, one row per uniform row ``b``."""

    tokens: torch.Tensor  # (B, max_new_tokens), PAD-padded, END excluded
    ended: torch.Tensor  # (B,) bool


def _normalise(rows: torch.Tensor) -> torch.Tensor:
    return rows - torch.logsumexp(rows, dim=-1, keepdim=True)


def filter_log_probs(log_probs: torch.Tensor, temperature=1.0, top_k=None, top_p=None) -> torch.Tensor:
    """Batched :func:`textsampling.reference.decoding.filter_log_probs`: ``(B, V) -> (B, V)`` normalised."""
    # x / 1.0 == x exactly: _filtered_logits skips the pass over (B, V) at the default temperature, and
    # _normalise makes the new tensor (log_probs is never written)
    return _normalise(_filtered_logits(log_probs, temperature, top_k, top_p))


def _filtered_logits(log_probs: torch.Tensor, temperature, top_k, top_p) -> torch.Tensor:
    """The reference's ``_filtered_logits``: the filters without the last renormalisation, ``(B, V)``.

    May return ``log_probs`` itself (no filter, temperature 1): callers pass a tensor they own.
    """
    rows = log_probs / temperature if temperature != 1.0 else log_probs
    vocab_size = rows.shape[-1]
    if top_k is not None and top_k < vocab_size:
        rows = _normalise(rows)
        order = torch.sort(rows, dim=-1, descending=True, stable=True).indices  # (B, V)
        rows = rows.scatter(-1, order[:, top_k:], -torch.inf)  # (B, V): all but the top k -inf
    if top_p is not None and top_p < 1.0:
        rows = _normalise(rows)
        ascending = torch.sort(rows, dim=-1, stable=True)  # (B, V), least probable first
        cumulative = torch.cumsum(torch.exp(ascending.values), dim=-1)  # (B, V)
        remove = cumulative <= 1.0 - top_p  # (B, V), in ascending order
        remove[:, -1] = False  # the most probable token always stays
        kept = torch.where(remove, -torch.inf, ascending.values)  # (B, V), in ascending order
        rows = rows.scatter(-1, ascending.indices, kept)  # (B, V), back in token order
    return rows


def next_token_rows(model, prefixes: torch.Tensor, temperature=1.0, top_k=None, top_p=None, dtype=torch.float64):
    """Filtered :math:`\\log q(x_{t+1} \\mid x_{\\le t})` for ``(B, W)`` PAD-padded prefixes, ``(B, V)``."""
    return _normalise(_decision_rows(model, model.next_token_log_probs_torch(prefixes), temperature, top_k, top_p,
                                     dtype))


def _special_index(model, vocab_size: int, device) -> torch.Tensor:
    """The ids :func:`~textsampling.lm.tokens.mask_special_tokens_torch` sets to ``-inf`` (END kept), ``(S,)``."""
    mask = special_token_mask(model.special_token_ids, vocab_size, keep=(model.end_token_id,))  # (V,) bool
    return torch.as_tensor(np.flatnonzero(mask), dtype=torch.int64, device=device)


def _mask_specials(rows: torch.Tensor, model, special_index=None) -> torch.Tensor:
    """``rows`` ``(B, V)`` with the special ids other than END at ``-inf``, in place (one index, computed once
    per :func:`decode` where given)."""
    if special_index is None:
        special_index = _special_index(model, rows.shape[-1], rows.device)
    return rows.index_fill_(-1, special_index, -torch.inf)


def _decision_rows(model, log_probs, temperature, top_k, top_p, dtype, out=None, special_index=None):
    """The rows :func:`decode` draws from: masked and filtered in ``dtype``, not renormalised (``(B, V)``).

    A constant shift of a row changes neither the inverse-CDF draw nor the argmax, so the last
    ``rows - logsumexp(rows)`` (several passes over ``(B, V)`` in float64, the cost that dominated a step
    once the model ran on one position) is left out, as in the reference's ``decode``. ``out``: a ``(B, V)``
    buffer of ``dtype`` to copy the rows into (reused across steps: no fresh pages every step); the result
    may be ``out`` itself.
    """
    # (B, V): our own copy, so the masking below may write in place
    rows = out.copy_(log_probs) if out is not None else log_probs.to(dtype, copy=True)
    rows = _mask_specials(rows, model, special_index)
    return _filtered_logits(rows, temperature, top_k, top_p)


def _greedy_tokens(model, log_probs, temperature, top_k, top_p, dtype, out=None, special_index=None):
    """The first maximum (lower id on ties) of each decision row, as ``numpy.argmax`` in the reference, ``(B,)``.

    ``torch.max`` along a dimension returns the first maximal index, as ``torch.argmax`` does, in about half
    its time on the CPU. Without temperature or filters, and when ``dtype`` holds every value of the model's
    dtype (float32 rows, float64 decisions), the decision rows are the model's rows converted *exactly*, with
    the special ids at ``-inf``: the same order and the same ties, so the first maximum of the model's rows
    is the decision's, unless it is a special id (then every row is decided on the decision rows).
    """
    vocab_size = log_probs.shape[-1]
    plain = temperature == 1.0 and (top_k is None or top_k >= vocab_size) and (top_p is None or top_p >= 1.0)
    if plain and log_probs.dtype.is_floating_point and torch.promote_types(log_probs.dtype, dtype) == dtype:
        chosen = torch.max(log_probs, dim=-1).indices  # (B,)
        if special_index is None:
            special_index = _special_index(model, vocab_size, log_probs.device)
        if not bool(torch.isin(chosen, special_index).any()):
            return chosen
    rows = _decision_rows(model, log_probs, temperature, top_k, top_p, dtype, out, special_index)  # (B, V)
    return torch.max(rows, dim=-1).indices


def _draw(uniforms: torch.Tensor, rows: torch.Tensor, cumulative: torch.Tensor) -> torch.Tensor:
    """:func:`~textsampling.torch.categorical.categorical_from_uniforms` of ``(B,)`` uniforms and ``(B, K)``
    rows, unchecked and in place: ``rows`` is overwritten with the weights and the cumulative sums go to the
    ``(B, K)`` buffer ``cumulative`` (no fresh ``(B, K)`` tensors per step on the CPU; elsewhere the repair of
    :func:`~textsampling.torch.randomness.cumulative_weights` makes three). The rule, and why its guard
    (never a trailing zero weight) costs a flag read on the CPU: :func:`~textsampling.torch.categorical.inverse_cdf`.
    """
    return inverse_cdf(uniforms, rows, overwrite_logits=True, cumulative=cumulative)  # (B,)


def _next_token_source(model, tokens: torch.Tensor, use_cache: bool):
    """``rows_at(t)``: the model's next-token log-probabilities after ``tokens[:, :t]`` (row ``b`` read only
    while it has not ended). A model with ``next_token_log_probs_cached_torch`` (a KV cache) is fed one new
    column per step; any other model is given the whole prefix at every step."""
    cached = getattr(model, "next_token_log_probs_cached_torch", None) if use_cache else None
    if cached is None:
        return lambda t: model.next_token_log_probs_torch(tokens)
    holder = {"cache": None}

    def rows_at(t):
        # column t - 1 was written by the previous step (PAD in rows that ended: their output is unused)
        new = tokens[:, max(t - 1, 0) : t]  # (B, 1), or (B, 0) at t = 0
        log_probs, holder["cache"] = cached(new, holder["cache"])
        return log_probs

    return rows_at


def decode(uniforms: torch.Tensor, model, temperature=1.0, top_k=None, top_p=None, greedy=False,
           use_cache: bool = True) -> DecodeResult:
    """``B`` sentences from ``uniforms`` ``(B, max_new_tokens)``; finished rows stay PAD after their END.

    With ``use_cache`` (default) a model that offers ``next_token_log_probs_cached_torch``
    (:class:`~textsampling.lm.hf_causal.HFCausalLM`) keeps the attention keys and values of the prefix,
    so each step runs the model on one new position; ``use_cache=False`` recomputes the whole prefix
    every step (the reference's way; the cached rows equal it up to float rounding).
    """
    temperature, top_k, top_p = check_decoding(temperature, top_k, top_p)
    num_sentences, max_new_tokens = check_tensor(uniforms, "uniforms", integer=False, ndim=2).shape
    tokens = torch.full((num_sentences, max_new_tokens), PAD, dtype=torch.int64, device=uniforms.device)
    ended = torch.zeros(num_sentences, dtype=torch.bool, device=uniforms.device)
    rows_at = _next_token_source(model, tokens, use_cache)
    rows_buffer = cumulative = special_index = None  # (B, V) work space and the masked ids, made at step 0
    for t in range(max_new_tokens):
        log_probs = rows_at(t)  # (B, V), the model's dtype
        if rows_buffer is None:  # V is the model's: known now; reused at every step (no fresh pages per step)
            check_same_device(uniforms=uniforms, model_rows=log_probs)
            rows_buffer = torch.empty_like(log_probs, dtype=uniforms.dtype)  # (B, V)
            cumulative = None if greedy else torch.empty_like(rows_buffer)  # (B, V)
            special_index = _special_index(model, log_probs.shape[-1], log_probs.device)  # (S,)
        if greedy:
            chosen = _greedy_tokens(model, log_probs, temperature, top_k, top_p, uniforms.dtype, rows_buffer,
                                    special_index)  # (B,)
        else:
            rows = _decision_rows(model, log_probs, temperature, top_k, top_p, uniforms.dtype, rows_buffer,
                                  special_index)  # (B, V), the uniforms' dtype
            # each row keeps a finite entry (END's or a token's)
            chosen = _draw(uniforms[:, t], rows, cumulative)  # (B,), as categorical_from_uniforms
        hit_end = chosen == model.end_token_id  # (B,)
        tokens[:, t] = torch.where(ended | hit_end, PAD, chosen)  # (B,): PAD from a row's END on
        ended |= hit_end
        if bool(ended.all()):
            break
    return DecodeResult(tokens, ended)


def beam_search(model, num_beams: int, max_new_tokens: int, length_penalty: float = 1.0) -> BeamResult:
    """Beam search with the reference's (transformers') rules; the ``k`` beams share each model call.

    The bookkeeping of at most ``2k`` candidates per step is small and stays in Python; the model calls,
    the expensive part, are those of the reference, batched over beams.
    """
    return _reference_beam_search(_NumpyView(model), num_beams, max_new_tokens, length_penalty)


class _NumpyView:
    """The NumPy face of a model through its torch methods (so the beam search runs on the model's device)."""

    def __init__(self, model):
        self._model = model
        self.end_token_id = model.end_token_id
        self.special_token_ids = model.special_token_ids
        self.vocab_size = model.vocab_size
        self.max_length = model.max_length

    def next_token_log_probs(self, token_ids):
        device = getattr(self._model, "device", "cpu")
        prefixes = torch.as_tensor(token_ids, device=device)  # (k, W): the beams' prefixes
        return self._model.next_token_log_probs_torch(prefixes).double().cpu().numpy()  # (k, V) float64
