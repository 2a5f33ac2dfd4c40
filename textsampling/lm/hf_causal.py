r"""Sentence and next-token log-probabilities from a Hugging Face causal LM (GPT-2 and relatives).

CGMH (Miao et al. 2019) and sentence annealing score whole candidate sentences:

.. math::
    \log p(x) = \sum_{t=1}^{n} \log p(x_t \mid \mathrm{BOS}, x_{<t}) + \log p(\mathrm{END} \mid \mathrm{BOS}, x),

with every conditional renormalised over the non-special ids plus END (the same distribution
:meth:`HFCausalLM.next_token_log_probs` gives to a decoder, so a sentence's probability is the
probability of decoding it). Without the END term, short sentences would win every comparison.

Cost. The full log-softmax over ``(N, L, V)`` in float32 is the largest tensor of the whole step
(N = 1000 candidates of 40 tokens with GPT-2's 50k vocabulary: 8 GB). We never build it: only the
hidden states of real tokens are kept ``(M, H)``; the head runs on chunks of them; of each chunk's
logits we keep the target logit (a gather) and the logsumexp over allowed ids, then drop the chunk:

.. math::
    \log p(x_t \mid x_{<t}) = z_{x_t} - \operatorname{logsumexp}_{v \notin S} z_v .
"""

from __future__ import annotations

import inspect

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

__all__ = ["HFCausalLM"]

#: logits kept alive at once, in elements, on a GPU (float32: 256 MiB: few, large launches)
CHUNK_ELEMENTS = 2**26
#: the same on the CPU (float32: 4 MiB): a chunk that stays in cache makes the passes over it (masking,
#: logsumexp, gather) about 1.3x faster there, with identical scores (each row is computed alone)
CPU_CHUNK_ELEMENTS = 2**20


class HFCausalLM:
    """A ``transformers`` causal LM behind :class:`textsampling.lm.base.CausalLanguageModel`.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A ``*ForCausalLM`` / ``*LMHeadModel`` (any dtype, any device); put in eval mode here.
    tokenizer : transformers.PreTrainedTokenizerBase
        Its tokenizer; needs an end token (EOS, or [SEP]) and a start token (BOS, or [CLS], or EOS as
        GPT-2 does).

    Attributes
    ----------
    vocab_size, special_token_ids, max_length, end_token_id
        As in :class:`~textsampling.lm.base.CausalLanguageModel`; ``max_length`` is the model's
        context minus one (the BOS).
    bos_token_id : int
        Prepended to every sequence.
    """

    def __init__(self, model, tokenizer):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.special_token_ids = special_token_ids(tokenizer, self.vocab_size)
        end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        if end is None:
            raise ValueError("tokenizer has no EOS (or [SEP]) token: a causal LM needs one to end a sentence")
        start = next((i for i in (tokenizer.bos_token_id, tokenizer.cls_token_id, end) if i is not None))
        self.end_token_id, self.bos_token_id = int(end), int(start)
        config = model.config
        self.max_length = content_max_length(config, tokenizer, "causal")
        # (V,) bool: the ids a sampler may produce, END included (it ends the sentence)
        self._allowed = torch.as_tensor(
            ~special_token_mask(self.special_token_ids, self.vocab_size, keep=(self.end_token_id,))
        )
        # the KV cache's keyword and output field: `cache` since transformers 5, `past_key_values` before
        self._cache_argument = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        # models that rescale or soft-cap logits after the head: use their full output instead
        self._head_only = not any(
            getattr(config, name, None) not in (None, 1.0) for name in ("final_logit_softcapping", "logit_scale")
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, texts):
        """Texts -> PAD-padded content ids (no BOS/END)."""
        return encode_texts(self.tokenizer, texts)

    def decode(self, token_ids):
        """Content ids -> text: one row ``(L,)`` gives a str, a batch ``(N, L)`` a list (PAD dropped)."""
        return decode_rows(self.tokenizer, token_ids)

    def _inputs(self, token_ids):
        """``[BOS] x_1 .. x_n`` padded: ids ``(N, W)``, attention ``(N, W)``, lengths ``(N,)``."""
        tokens = as_token_tensor(token_ids, self.vocab_size)
        lengths = sequence_lengths_torch(tokens)  # (N,)
        if tokens.shape[0] and int(lengths.max()) > self.max_length:
            raise ValueError(
                f"token_ids: a sequence of {int(lengths.max())} tokens is longer than the model's maximum "
                f"{self.max_length} (context minus the BOS)"
            )
        device = self.device
        tokens, lengths = tokens.to(device), lengths.to(device)
        width = int(lengths.max()) + 1 if tokens.shape[0] else 1
        body = tokens[:, : width - 1]  # (N, W-1)
        fill = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.end_token_id
        inputs = torch.full((tokens.shape[0], width), self.bos_token_id, dtype=torch.long, device=device)  # (N, W)
        inputs[:, 1:] = torch.where(body == PAD, torch.full_like(body, fill), body)
        attention = torch.arange(width, device=device)[None, :] < (lengths + 1)[:, None]  # (N, W)
        return inputs, attention, lengths

    def _hidden(self, inputs, attention):
        """Last hidden states ``(N, W, H)`` (head-only path) or logits ``(N, W, V)`` (fallback)."""
        if self._head_only:
            return self.model.base_model(input_ids=inputs, attention_mask=attention.long())[0]
        return self.model(input_ids=inputs, attention_mask=attention.long()).logits

    def _log_probs_of(self, states, targets) -> torch.Tensor:
        """``log p(target | state)`` for rows of states ``(M, H)`` (or logits ``(M, V)``) -> ``(M,)`` float32."""
        head = self.model.get_output_embeddings() if self._head_only else (lambda x: x)
        allowed = self._allowed.to(states.device)
        elements = CPU_CHUNK_ELEMENTS if states.device.type == "cpu" else CHUNK_ELEMENTS
        rows_per_chunk = max(1, elements // self.vocab_size)
        out = []
        for start in range(0, states.shape[0], rows_per_chunk):
            logits = head(states[start : start + rows_per_chunk]).float()  # (m, V): one chunk only
            logits = logits.masked_fill(~allowed, float("-inf"))
            target = targets[start : start + rows_per_chunk]
            out.append(logits.gather(1, target[:, None])[:, 0] - torch.logsumexp(logits, dim=-1))  # (m,)
        return torch.cat(out) if out else states.new_zeros(0, dtype=torch.float32)

    @torch.no_grad()
    def sequence_log_probs_torch(self, token_ids) -> torch.Tensor:
        """``log p(x_1..x_n, END)`` of each PAD-padded row: ``(N, L)`` -> ``(N,)`` float32 tensor."""
        inputs, attention, lengths = self._inputs(token_ids)
        num_rows, width = inputs.shape
        if num_rows == 0:
            return torch.zeros(0, dtype=torch.float32, device=inputs.device)
        states = self._hidden(inputs, attention)  # (N, W, H)
        # the state at position t predicts token t+1; the state after the last token predicts END
        targets = torch.cat([inputs[:, 1:], inputs.new_zeros(num_rows, 1)], dim=1)  # (N, W)
        rows = torch.arange(num_rows, device=inputs.device)
        targets[rows, lengths] = self.end_token_id
        per_token = self._log_probs_of(states[attention], targets[attention])  # (M,) over real positions only
        row_of = rows[:, None].expand(num_rows, width)[attention]  # (M,)
        return torch.zeros(num_rows, dtype=torch.float32, device=inputs.device).index_add_(0, row_of, per_token)

    def sequence_log_probs(self, token_ids):
        """NumPy twin: ``(N, L)`` ints -> ``(N,)`` float64 array."""
        return self.sequence_log_probs_torch(token_ids).double().cpu().numpy()

    @torch.no_grad()
    def next_token_log_probs_torch(self, token_ids) -> torch.Tensor:
        """``log p(x_{n+1} = v | x_1..x_n)``: ``(N, L)`` -> ``(N, V)`` float32; END allowed, other specials -inf."""
        inputs, attention, lengths = self._inputs(token_ids)
        if inputs.shape[0] == 0:
            return torch.empty((0, self.vocab_size), dtype=torch.float32, device=inputs.device)
        rows = torch.arange(inputs.shape[0], device=inputs.device)
        last = self._hidden(inputs, attention)[rows, lengths]  # (N, H) or (N, V): the last real position
        logits = (self.model.get_output_embeddings()(last) if self._head_only else last).float()  # (N, V)
        logits = logits.masked_fill(~self._allowed.to(logits.device), float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def next_token_log_probs(self, token_ids):
        """NumPy twin: ``(N, L)`` ints -> ``(N, V)`` float64 array."""
        return self.next_token_log_probs_torch(token_ids).double().cpu().numpy()

    @torch.no_grad()
    def next_token_log_probs_cached_torch(self, new_tokens, cache=None):
        """Next-token log-probabilities of prefixes that grow together, reusing the keys and values (KV cache).

        Left-to-right decoding extends every row of a batch by one token per step. Recomputing the whole
        prefix at each step costs :math:`O(t)` positions per step; with the attention keys and values of
        the prefix kept (Transformers' ``past_key_values``), step :math:`t` runs the model on one new
        position only, as ``transformers``' ``generate`` does.

        Parameters
        ----------
        new_tokens : torch.Tensor of int64, shape (N, k)
            The tokens appended to every row since the last call (``k = 0`` on the first call, which
            starts every row at BOS). All rows have the same length; a PAD (a row the caller no longer
            reads, e.g. one that has ended) is fed as the padding id and its output is meaningless.
        cache : object or None
            What the previous call returned; None starts new prefixes (then ``new_tokens`` may hold a
            common start, usually nothing).

        Returns
        -------
        log_probs : torch.Tensor, shape (N, V), float32
            As :meth:`next_token_log_probs_torch` of the full prefixes (END allowed, other specials
            -inf); equal to it up to float rounding (the attention sums run over the same keys in
            another order of operations).
        cache : object
            Pass it to the next call.
        """
        new_tokens = as_token_tensor(new_tokens, self.vocab_size).to(self.device)  # (N, k)
        num_rows = new_tokens.shape[0]
        past, length = (None, 0) if cache is None else cache
        if cache is None:  # every prefix starts with BOS
            bos = torch.full((num_rows, 1), self.bos_token_id, dtype=torch.long, device=new_tokens.device)
            new_tokens = torch.cat([bos, new_tokens], dim=1)  # (N, k + 1)
        length += new_tokens.shape[1]
        if length > self.max_length + 1:
            raise ValueError(f"new_tokens: the prefixes would hold {length - 1} tokens, over the model's maximum "
                             f"{self.max_length} (context minus the BOS)")
        fill = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.end_token_id
        inputs = torch.where(new_tokens == PAD, torch.full_like(new_tokens, fill), new_tokens)  # (N, k')
        attention = torch.ones((num_rows, length), dtype=torch.long, device=inputs.device)  # (N, length): no padding
        output = self.model(input_ids=inputs, attention_mask=attention, use_cache=True, **{self._cache_argument: past})
        logits = output.logits[:, -1].float()  # (N, V): after the last position only
        logits = logits.masked_fill(~self._allowed.to(logits.device), float("-inf"))
        return torch.log_softmax(logits, dim=-1), (getattr(output, self._cache_argument), length)


    def __repr__(self) -> str:
        name = display_name(self.model)
        return f"HFCausalLM({name!r}, vocab_size={self.vocab_size}, max_length={self.max_length})"
