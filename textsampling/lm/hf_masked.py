r"""Masked conditionals from a Hugging Face masked LM (BERT and relatives), head only where masked.

MLM Gibbs (Wang & Cho 2019, "BERT has a mouth, and it must speak") and MLM Metropolis–Hastings
(Goyal et al. 2022) need, for each chain ``n``, the distribution of one token given the others:

.. math::
    \log p(x_i = v \mid x_{-i}) = \mathrm{logits}_v - \log \sum_{u \notin S} \exp \mathrm{logits}_u,
    \qquad v \notin S, \qquad \log p(x_i = v \mid x_{-i}) = -\infty,\ v \in S,

where the logits are BERT's head applied to the encoder's hidden state at position ``i`` of
``[CLS] x_1 .. x_{i-1} [MASK] x_{i+1} .. x_n [SEP]`` and ``S`` is the set of special ids (part 3 of
the series: special tokens must never be sampled, and the distribution is renormalised without them).

Cost. The encoder runs on the whole batch ``(N, L + 2, H)``, but the LM head — a ``H x V`` matrix,
the largest single layer of a BERT — runs only on the ``N`` masked hidden states ``(N, H)``: one
chain, one position. Applying it everywhere would cost ``L`` times more for logits nobody reads.
The log-softmax is taken in float32 whatever the model dtype (bf16 logits have 8 bits of mantissa).
"""

from __future__ import annotations

import torch

from textsampling.lm._hf_common import (
    as_token_tensor,
    content_max_length,
    decode_rows,
    display_name,
    encode_texts,
    special_token_ids,
)
from textsampling.lm.tokens import PAD, sequence_lengths_torch, special_token_mask

__all__ = ["HFMaskedLM", "masked_lm_head"]


def masked_lm_head(model):
    """The module mapping final hidden states ``(N, H)`` to vocabulary logits ``(N, V)``, or None.

    Known layouts: BERT/DeBERTa-v2/MobileBERT ``cls``, RoBERTa/XLM-R/Longformer ``lm_head``,
    ALBERT ``predictions``, ELECTRA ``generator_predictions`` + ``generator_lm_head``, DistilBERT's
    ``vocab_transform`` / ``activation`` / ``vocab_layer_norm`` / ``vocab_projector``. For anything else
    the adapter falls back to the full model output and gathers (correct, just slower).
    """
    for name in ("cls", "lm_head", "predictions"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module):
            return head
    if hasattr(model, "generator_lm_head") and hasattr(model, "generator_predictions"):
        return torch.nn.Sequential(model.generator_predictions, model.generator_lm_head)
    if all(hasattr(model, name) for name in ("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector")):
        return torch.nn.Sequential(
            model.vocab_transform, model.activation, model.vocab_layer_norm, model.vocab_projector
        )
    return None


class HFMaskedLM:
    """A ``transformers`` masked LM behind :class:`textsampling.lm.base.MaskedLanguageModel`.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A ``*ForMaskedLM`` model (any dtype, any device); put in eval mode here.
    tokenizer : transformers.PreTrainedTokenizerBase
        Its tokenizer; must define a mask token.

    Attributes
    ----------
    vocab_size : int
        Size of the model's output distribution.
    special_token_ids : frozenset
        Ids that always get ``-inf`` (see :func:`textsampling.lm._hf_common.special_token_ids`).
    max_length : int
        Longest content sequence: the model's positions minus 2 for [CLS] and [SEP].
    """

    def __init__(self, model, tokenizer):
        if tokenizer.mask_token_id is None:
            raise ValueError("tokenizer has no mask token: a masked LM needs one (is this a causal LM's tokenizer?)")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.special_token_ids = special_token_ids(tokenizer, self.vocab_size)
        self.mask_token_id = int(tokenizer.mask_token_id)
        # RoBERTa-style tokenizers call their start/end tokens bos/eos and also cls/sep; prefer cls/sep
        self.cls_token_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        self.sep_token_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        if self.cls_token_id is None or self.sep_token_id is None:
            raise ValueError("tokenizer needs [CLS]/[SEP] (or BOS/EOS) tokens to frame a sequence for a masked LM")
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.sep_token_id
        self.max_length = content_max_length(model.config, tokenizer, "masked")
        self._head = masked_lm_head(model)
        # The special-token rule (textsampling.lm.tokens), cached as a (V,) bool mask for masked_fill.
        self._special_mask = torch.as_tensor(special_token_mask(self.special_token_ids, self.vocab_size))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, texts):
        """Texts -> PAD-padded content ids (no [CLS]/[SEP])."""
        return encode_texts(self.tokenizer, texts)

    def decode(self, token_ids):
        """Content ids -> text: one row ``(L,)`` gives a str, a batch ``(N, L)`` a list (PAD dropped)."""
        return decode_rows(self.tokenizer, token_ids)

    def _check(self, token_ids, positions):
        tokens = as_token_tensor(token_ids, self.vocab_size)
        lengths = sequence_lengths_torch(tokens)  # (N,)
        if tokens.shape[0] and int(lengths.max()) > self.max_length:
            raise ValueError(
                f"token_ids: a sequence of {int(lengths.max())} tokens is longer than the model's maximum "
                f"{self.max_length} (positions minus [CLS] and [SEP])"
            )
        if isinstance(positions, torch.Tensor):
            if positions.dtype.is_floating_point or positions.dtype == torch.bool:
                raise TypeError(f"positions must hold integers, got dtype {positions.dtype}")
            where = positions.long().to(tokens.device)
        else:
            where = torch.as_tensor(positions)
            if where.dtype.is_floating_point or where.dtype == torch.bool:
                raise TypeError(f"positions must hold integers, got dtype {where.dtype}")
            where = where.long()
        if where.shape != (tokens.shape[0],):
            raise ValueError(f"positions must have shape ({tokens.shape[0]},), one per row, got {tuple(where.shape)}")
        if bool(((where < 0) | (where >= lengths)).any()):
            raise ValueError("positions must satisfy 0 <= positions[n] < length of row n (PAD excluded)")
        return tokens, where, lengths

    @torch.no_grad()
    def masked_logits_torch(self, token_ids, positions) -> torch.Tensor:
        """Raw head logits at the masked positions, float32 ``(N, V)``, special ids ``-inf``.

        The unnormalised scores whose sum is the raw-logit energy of Goyal et al. (2022). Callers put
        [MASK] at ``positions[n]`` (:mod:`textsampling.lm.base`); the adapter writes it there again, so a
        caller that forgot still asks BERT the masked question (other [MASK] tokens in a row stay masked).
        """
        tokens, where, lengths = self._check(token_ids, positions)
        device = self.device
        tokens, where, lengths = tokens.to(device), where.to(device), lengths.to(device)
        num_rows = tokens.shape[0]
        if num_rows == 0:
            return torch.empty((0, self.vocab_size), dtype=torch.float32, device=device)
        width = int(lengths.max()) + 2
        rows = torch.arange(num_rows, device=device)
        inputs = torch.full((num_rows, width), self.pad_token_id, dtype=torch.long, device=device)  # (N, W)
        body = tokens[:, : width - 2]  # (N, W-2): trailing all-PAD columns dropped
        inputs[:, 1:-1] = torch.where(body == PAD, torch.full_like(body, self.pad_token_id), body)
        inputs[:, 0] = self.cls_token_id
        inputs[rows, lengths + 1] = self.sep_token_id
        inputs[rows, where + 1] = self.mask_token_id  # +1: [CLS] comes first
        attention = torch.arange(width, device=device)[None, :] < (lengths + 2)[:, None]  # (N, W)
        if self._head is not None:
            hidden = self.model.base_model(input_ids=inputs, attention_mask=attention.long())[0]  # (N, W, H)
            logits = self._head(hidden[rows, where + 1])  # (N, H) -> (N, V): the head only where masked
        else:
            logits = self.model(input_ids=inputs, attention_mask=attention.long()).logits[rows, where + 1]  # (N, V)
        return logits.float().masked_fill(self._special_mask.to(device), float("-inf"))  # (N, V) float32

    def masked_logits(self, token_ids, positions):
        """NumPy twin of :meth:`masked_logits_torch`: ``(N, V)`` float64 array."""
        return self.masked_logits_torch(token_ids, positions).double().cpu().numpy()

    def masked_log_probs_torch(self, token_ids, positions) -> torch.Tensor:
        """``log p(x_pos = v | x_-pos)``: ``(N, L)`` ids, ``(N,)`` positions -> ``(N, V)`` float32 tensor.

        [MASK] at ``positions[n]`` (put there by the caller, and again here); special ids get ``-inf``
        and the rest is renormalised (log-softmax in float32).
        """
        return torch.log_softmax(self.masked_logits_torch(token_ids, positions), dim=-1)

    def masked_log_probs(self, token_ids, positions):
        """NumPy twin: ``(N, L)`` ints, ``(N,)`` ints -> ``(N, V)`` float64 array."""
        return self.masked_log_probs_torch(token_ids, positions).double().cpu().numpy()

    def __repr__(self) -> str:
        name = display_name(self.model)
        return f"HFMaskedLM({name!r}, vocab_size={self.vocab_size}, max_length={self.max_length})"
