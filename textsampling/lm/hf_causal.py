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

The never-sampled ids get :math:`-\infty` through the head's bias (no masking pass over the logits) and
the logsumexp runs in place in the chunk (no temporary of its size), with the same float operations as
``masked_fill`` + ``torch.logsumexp``: the same scores, 1.5-1.7x faster on the CPU
(``benchmarks/bench_cgmh.py``, rows ``head``).

Shared prefixes. CGMH's :math:`K` candidates at position :math:`i` all start with :math:`x_{<i}`;
:meth:`HFCausalLM.prefix_scorer_torch` (a :class:`CachedPrefixScorer`) runs each current sentence
:math:`x` once and only the continuations after :math:`x_{<i}`, from its keys and values (KV cache),
instead of :math:`K` whole sentences (:class:`textsampling.lm.base.PrefixScorer`, the default of other
models). The pass over :math:`x` does not depend on :math:`i`, so the model keeps the last one and a
CGMH step after a rejection (the same sentences) runs one model call, not two; it is used only for
equal token ids and an unchanged model (its modules, weights, hooks, mode and autocast state; a write
through ``tensor.data`` is not seen: call ``forget_kept_pass()`` after one, or set ``keep_passes =
False``), and it holds exactly what running the sentences again would give, so no number depends on
what was kept (a resumed run reproduces an uninterrupted one).
"""

from __future__ import annotations

import copy
import inspect
from typing import NamedTuple

import torch

from textsampling.lm._hf_common import (
    as_token_tensor,
    content_max_length,
    decode_rows,
    display_name,
    encode_texts,
    special_token_ids,
)
from textsampling.lm.base import PrefixScorer, check_prefixes, prefixes_of
from textsampling.lm.tokens import PAD, sequence_lengths_torch, special_token_mask

__all__ = ["HFCausalLM", "CachedPrefixScorer"]

#: logits kept alive at once, in elements, on a GPU (float32: 256 MiB: few, large launches)
CHUNK_ELEMENTS = 2**26
#: the same on the CPU (float32: 4 MiB): a chunk that stays in cache makes the passes over it (masking,
#: logsumexp, gather) about 1.3x faster there, with identical scores (each row is computed alone)
CPU_CHUNK_ELEMENTS = 2**20
#: the fixed cost of one model call, in token positions, when continuations of different lengths are split
#: into batches (:class:`CachedPrefixScorer`): on a GPU a call costs about as much as thousands of positions
CALL_POSITIONS = 2**12
#: the same on the CPU, where a position costs more and a call less (one CGMH step at K = 20, 8 chains of
#: 16 tokens, one thread: 64 was faster than 16, 256 and a single batch)
CPU_CALL_POSITIONS = 64
#: the largest pass over whole sentences (keys, values and states, in bytes) the model keeps for the next
#: prefix scorer (:meth:`HFCausalLM._sentence_pass`); a larger one is used once and dropped
KEPT_PASS_BYTES = 2**26


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
        #: Keep the last pass over whole sentences for the next call on the same sentences (see _sentence_pass).
        self.keep_passes = True
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
        inputs = torch.full((tokens.shape[0], width), self.bos_token_id, dtype=torch.long, device=device)  # (N, W)
        inputs[:, 1:] = torch.where(body == PAD, torch.full_like(body, self._fill_id), body)
        attention = torch.arange(width, device=device)[None, :] < (lengths + 1)[:, None]  # (N, W)
        return inputs, attention, lengths

    @property
    def _fill_id(self) -> int:
        """The id fed at padded positions (never attended to): the pad token, else END."""
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.end_token_id

    def _next_log_probs(self, last, are_logits: bool = False) -> torch.Tensor:
        """The next-token law from last states ``(N, H)`` (or logits ``(N, V)``, by the head-only rule or when
        ``are_logits``): ``(N, V)`` float32, END allowed."""
        head = self._head_only and not are_logits
        logits = (self.model.get_output_embeddings()(last) if head else last).float()  # (N, V)
        logits = logits.masked_fill(~self._allowed.to(logits.device), float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def _hidden(self, inputs, attention):
        """Last hidden states ``(N, W, H)`` (head-only path) or logits ``(N, W, V)`` (fallback)."""
        if self._head_only:
            return self.model.base_model(input_ids=inputs, attention_mask=attention.long())[0]
        return self.model(input_ids=inputs, attention_mask=attention.long()).logits

    def _log_probs_of(self, states, targets) -> torch.Tensor:
        """``log p(target | state)`` for rows of states ``(M, H)`` (or logits ``(M, V)``) -> ``(M,)`` float32.

        Per chunk of rows: the logits with ``-inf`` at the never-sampled ids, the target's logit, and
        ``logsumexp`` over the row computed as ``torch.logsumexp`` computes it (the row maximum, 0 where
        it is infinite; the sum of ``exp`` of the differences; its log plus the maximum) but in place in
        the chunk, with no temporary of its size. With a plain linear head the ``-inf`` come from the
        matmul's bias (0 or ``-inf``; adding 0 changes no float), so no pass over the logits masks them.
        The scores are those of ``logits.masked_fill(...)`` and ``torch.logsumexp`` bit for bit on the
        machines we measured (the same float operations in the same order), and cheaper.
        """
        head = self.model.get_output_embeddings() if self._head_only else None
        allowed = self._allowed.to(states.device)
        fused = isinstance(head, torch.nn.Linear)
        if fused:
            bias = torch.zeros(self.vocab_size, dtype=head.weight.dtype, device=states.device)
            bias = bias.masked_fill(~allowed, float("-inf")) if head.bias is None else head.bias.masked_fill(
                ~allowed, float("-inf"))  # (V,)
            weight = head.weight.t()  # (H, V)
        elements = CPU_CHUNK_ELEMENTS if states.device.type == "cpu" else CHUNK_ELEMENTS
        rows_per_chunk = max(1, elements // self.vocab_size)
        out = []
        for start in range(0, states.shape[0], rows_per_chunk):
            chunk = states[start : start + rows_per_chunk]
            if fused:
                logits = torch.addmm(bias, chunk, weight).float()  # (m, V): one chunk only, ours to overwrite
            else:  # a copy: `chunk` may be the model's own logits
                logits = (chunk if head is None else head(chunk)).float().masked_fill(~allowed, float("-inf"))
            target = logits.gather(1, targets[start : start + rows_per_chunk, None])[:, 0]  # (m,)
            maxes = logits.amax(dim=-1, keepdim=True)  # (m, 1)
            maxes.masked_fill_(maxes.abs() == float("inf"), 0.0)
            log_normaliser = logits.sub_(maxes).exp_().sum(dim=-1).log_().add_(maxes[:, 0])  # (m,)
            out.append(target - log_normaliser)  # (m,)
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
        return self._next_log_probs(last)

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
        inputs = torch.where(new_tokens == PAD, torch.full_like(new_tokens, self._fill_id), new_tokens)  # (N, k')
        attention = torch.ones((num_rows, length), dtype=torch.long, device=inputs.device)  # (N, length): no padding
        output = self.model(input_ids=inputs, attention_mask=attention, use_cache=True, **{self._cache_argument: past})
        log_probs = self._next_log_probs(output.logits[:, -1], are_logits=True)  # after the last position only
        return log_probs, (getattr(output, self._cache_argument), length)

    def _versions(self) -> tuple:
        """What a pass of the model depends on besides the tokens, as a key.

        The modules now (a submodule replaced, as LoRA-style wrappers do, changes the walk), each
        parameter's and buffer's identity, storage, dtype and in-place version (``load_state_dict``,
        ``.to``, ``.data =``, an optimiser step or an assigned new parameter each change one), the
        number of forward hooks (per module and global), training mode and the autocast state. Read from
        the modules' own tables (a ``parameters()`` walk costs 20x more). Not seen: a write through
        ``tensor.data`` (``w.data.mul_(2)`` has its own version counter); call :meth:`forget_kept_pass`
        after one, or set ``keep_passes = False``.
        """
        hooks = torch.nn.modules.module
        out = [self.model.training, len(hooks._global_forward_hooks), len(hooks._global_forward_pre_hooks),
               torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")]
        if torch.cuda.is_available():
            out += [torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")]
        for module in self.model.modules():
            out.append((id(module), len(module._forward_hooks), len(module._forward_pre_hooks)))
            for table in (module._parameters, module._buffers):
                for tensor in table.values():
                    if tensor is not None:
                        out.append((id(tensor), tensor.data_ptr(), tensor.dtype, tensor._version))
        return tuple(out)

    def forget_kept_pass(self) -> None:
        """Drop the kept pass (after a change to the model that :meth:`_versions` cannot see)."""
        self._kept_pass = None

    @torch.no_grad()
    def _sentence_pass(self, tokens: torch.Tensor) -> "_SentencePass":
        """The model over ``[BOS] x`` for every row of ``tokens`` ``(B, L)`` (checked, on the model's device).

        The last pass is kept (when under :data:`KEPT_PASS_BYTES`) and returned again for a batch of equal
        token ids while no weight has changed: the same call would compute the same numbers, so a kept
        pass changes no result, only skips the model call (CGMH asks about the same sentences at every
        rejection). Anything else (another sentence in any row, another batch size or order, a weight
        changed in place or replaced) runs the model again.
        """
        versions = self._versions()
        kept = getattr(self, "_kept_pass", None)
        if (self.keep_passes and kept is not None and kept.tokens.shape == tokens.shape
                and kept.tokens.device == tokens.device and kept.versions == versions
                and torch.equal(kept.tokens, tokens)):
            return kept
        self._kept_pass = None  # drop the old one before the new one is computed (memory)
        inputs, attention, lengths = self._inputs(tokens)  # (B, W), (B, W), (B,)
        num_rows, width = inputs.shape
        module = self.model.base_model if self._head_only else self.model
        output = module(input_ids=inputs, attention_mask=attention.long(), use_cache=True)
        states = output[0] if self._head_only else output.logits  # (B, W, H) or (B, W, V)
        cache = getattr(output, self._cache_argument, None)
        # the state at t < n predicts the input at t + 1, the state at n predicts END
        targets = torch.cat([inputs[:, 1:], inputs.new_zeros(num_rows, 1)], dim=1)  # (B, W)
        targets[torch.arange(num_rows, device=inputs.device), lengths] = self.end_token_id
        token_log_probs = torch.zeros((num_rows, width), dtype=torch.float32, device=inputs.device)  # (B, W)
        token_log_probs[attention] = self._log_probs_of(states[attention], targets[attention])
        result = _SentencePass(tokens.clone(), versions, cache, states, token_log_probs)
        try:
            layers = len(cache)
        except TypeError:
            layers = None
        fits = layers is not None and states.element_size() * states.numel() * (2 * layers + 1) <= KEPT_PASS_BYTES
        if self.keep_passes and fits:
            self._kept_pass = result
        return result

    @torch.no_grad()
    def prefix_scorer_torch(self, token_ids, prefix_lengths) -> PrefixScorer:
        """Scores of sentences sharing per-row prefixes, each prefix run once (KV cache): :class:`CachedPrefixScorer`.

        ``token_ids`` ``(B, L)`` int64 tensor, PAD-padded; ``prefix_lengths`` ``(B,)``. The result's
        ``next_token_log_probs`` and ``sequence_log_probs`` equal those of the default
        :class:`~textsampling.lm.base.PrefixScorer` (full rescoring) up to float rounding.
        """
        return CachedPrefixScorer(self, token_ids, prefix_lengths)

    def __repr__(self) -> str:
        name = display_name(self.model)
        return f"HFCausalLM({name!r}, vocab_size={self.vocab_size}, max_length={self.max_length})"


def _expanded_cache(cache, rows: torch.Tensor, width: int):
    """A new cache holding ``cache``'s batch rows ``rows``, cut to its first ``width`` positions where it can
    be: ``(cache, width)``, or ``(cache, None)`` when it holds every position, or ``(None, None)`` for a
    cache we do not know. The original is left as it was.

    Transformers' ``Cache`` objects are changed in place by a forward pass (the new keys are appended), so
    each continuation gets its own copy; legacy caches are tuples of ``(keys, values)`` per layer, each
    ``(B, heads, positions, head size)``.
    """
    if isinstance(cache, (tuple, list)):
        return tuple(tuple(tensor[:, :, :width].index_select(0, rows) for tensor in layer) for layer in cache), width
    if callable(getattr(cache, "reorder_cache", None)):
        layers = getattr(cache, "layers", None)
        if isinstance(layers, list) and all(type(layer).__name__ == "DynamicLayer" for layer in layers):
            # transformers >= 4.56: each layer's keys and values are replaced (not written into) by
            # reorder_cache and by a forward pass, so shallow copies of the layers keep the original intact
            out = copy.copy(cache)
            out.layers = [copy.copy(layer) for layer in layers]
            if all(isinstance(getattr(layer, name, None), torch.Tensor) and getattr(layer, name).dim() == 4
                   for layer in out.layers for name in ("keys", "values")):
                for layer in out.layers:  # views: reorder_cache copies only the positions kept
                    layer.keys, layer.values = layer.keys[:, :, :width], layer.values[:, :, :width]
                out.reorder_cache(rows)  # index_select: new tensors
                return out, width
        else:
            out = copy.deepcopy(cache)  # any other cache: a full copy (of the prefix rows only: small)
        out.reorder_cache(rows)  # index_select: new tensors
        return out, None  # every position kept
    return None, None


class _SentencePass(NamedTuple):
    """One pass of the model over ``[BOS] x`` for a batch of whole sentences ``x`` (what a prefix scorer reads)."""

    tokens: torch.Tensor  # (B, L) int64, PAD-padded: the sentences, the key of a kept pass
    versions: tuple  # the model's parameter and buffer versions when it ran (a weight changed in place: stale)
    cache: object  # keys and values of [BOS] x_1 .. x_n, width W = max n + 1
    states: torch.Tensor  # (B, W, H) last hidden states (head-only) or (B, W, V) logits
    token_log_probs: torch.Tensor  # (B, W) float32: log p(x_{t+1} | x_{<=t}) at t < n, log p(END | x) at n, 0 after


class CachedPrefixScorer(PrefixScorer):
    r"""The sentences run once; the candidates continue from their prefix's keys and values (CGMH's scoring).

    With :math:`B` prefixes of lengths :math:`p_b` and :math:`K` sentences per prefix, full rescoring runs
    the model on :math:`BK` rows of the whole sentence. Here (:class:`~textsampling.lm.base.PrefixScorer`
    gives the decomposition):

    * at construction, one pass over each whole row ``[BOS] x_1 .. x_n`` of ``token_ids`` (:math:`B`
      rows) keeps the keys and values of every layer and every :math:`\log p(x_t \mid x_{<t})`; the shared
      sum :math:`\sum_{t<p_b} \log p(x_t \mid x_{<t})` and the next-token law after the prefix (the
      candidates' :math:`\log p(y_{p_b} \mid x_{<p_b})`) are read from it. The pass does not depend on
      the prefix lengths, so the model keeps the last one (:meth:`HFCausalLM._sentence_pass`): CGMH asks
      about the same sentences again at every rejection, at another position, and then runs no prefix;
    * :meth:`sequence_log_probs` runs the model only on each sentence's tokens after :math:`p_b`
      (:math:`y_{p_b}, \ldots`: the states that predict :math:`y_{p_b + 1}, \ldots, \mathrm{END}`), at
      positions :math:`p_b + 1, \ldots`, attending to the cached keys of :math:`[\mathrm{BOS}]\, x_{<p_b}`
      (repeated over the :math:`K` sentences; an attention mask hides the rest of :math:`x` and the
      padding). The head runs only on those states. A sentence equal to row :math:`b` itself (CGMH's
      deletion slot when the move is not a delete, a replacement by the current token) takes the score of
      the pass over :math:`x`, and no continuation.

    Every number depends only on the arguments (a kept pass is used only for equal token ids and
    unchanged weights, and holds what the same call would compute again), so a resumed run reproduces
    an uninterrupted one bit for bit. The attention sums run over the same keys in another order of
    operations, so the scores equal full rescoring's to float32 rounding, not bit for bit
    (tests/test_lm_prefix_scoring.py). A model whose cache cannot be copied falls back to full rescoring.
    """

    @torch.no_grad()
    def __init__(self, lm: HFCausalLM, token_ids, prefix_lengths):
        self.model = lm
        tokens = as_token_tensor(token_ids, lm.vocab_size).to(lm.device)  # (B, L)
        if tokens.shape[1] > lm.max_length and bool((tokens[:, lm.max_length:] != PAD).any()):
            raise ValueError(f"token_ids: a sequence is longer than the model's maximum {lm.max_length}")
        self.prefixes, self.prefix_lengths = prefixes_of(tokens, torch.as_tensor(prefix_lengths).to(tokens.device))
        num_rows = tokens.shape[0]
        if num_rows == 0:
            self._pass, self._shared = None, torch.zeros(0, dtype=torch.float32, device=tokens.device)
            self.next_token_log_probs = torch.empty((0, lm.vocab_size), dtype=torch.float32, device=tokens.device)
            return
        self._pass = lm._sentence_pass(tokens)
        token_log_probs = self._pass.token_log_probs  # (B, W)
        columns = torch.arange(token_log_probs.shape[1], device=tokens.device)[None, :]  # (1, W)
        self._attention = columns <= self.prefix_lengths[:, None]  # (B, W): BOS and the prefix
        rows = torch.arange(num_rows, device=tokens.device)
        self.next_token_log_probs = lm._next_log_probs(self._pass.states[rows, self.prefix_lengths])  # (B, V)
        # the state at position t < p_b predicts the prefix token t (the input at t + 1)
        self._shared = torch.where(columns < self.prefix_lengths[:, None], token_log_probs, 0.0).sum(dim=1)  # (B,)
        self._whole = token_log_probs.sum(dim=1)  # (B,) log p(x_b, END): zeros after the END term

    @torch.no_grad()
    def sequence_log_probs(self, sentences) -> torch.Tensor:
        """``log p(y, END)`` of sentences ``(B, K, L)``, row ``[b, k]`` after prefix ``b``: ``(B, K)`` float32."""
        lm = self.model
        if not isinstance(sentences, torch.Tensor) or sentences.dim() != 3:
            raise ValueError("sentences must be a (B, K, L) tensor of PAD-padded sentences")
        num_prefixes, num_sentences, width = sentences.shape
        flat = as_token_tensor(sentences.reshape(-1, width), lm.vocab_size, "sentences").to(lm.device)  # (N, L)
        check_prefixes(flat.reshape(num_prefixes, num_sentences, width), self.prefixes, self.prefix_lengths)
        if flat.shape[0] == 0:
            return torch.zeros((num_prefixes, num_sentences), dtype=torch.float32, device=flat.device)
        lengths = sequence_lengths_torch(flat)  # (N,)
        if int(lengths.max()) > lm.max_length:
            raise ValueError(f"sentences: a sequence of {int(lengths.max())} tokens is longer than the model's "
                             f"maximum {lm.max_length} (context minus the BOS)")
        group = torch.arange(num_prefixes, device=flat.device).repeat_interleave(num_sentences)  # (N,) prefix of row
        start = self.prefix_lengths.index_select(0, group)  # (N,) p_b
        # log p(y_p | x_{<p}) from the prefix's next-token law (END where the sentence is the prefix itself)
        first = torch.where(lengths > start, flat.gather(1, start.clamp(max=width - 1)[:, None])[:, 0],
                            lm.end_token_id)  # (N,)
        first_log_probs = self.next_token_log_probs.take(group * lm.vocab_size + first)  # (N,) law b at y_p
        out = self._shared.index_select(0, group) + first_log_probs  # (N,)
        own = _equal_rows(flat, self._pass.tokens.index_select(0, group))  # (N,) y is x_b: scored by the pass
        out = torch.where(own, self._whole.index_select(0, group), out)  # (N,)
        suffix_lengths = torch.where(own, 0, lengths - start)  # (N,) tokens y_p .. y_{n-1} fed after the prefix
        span = int(suffix_lengths.max())
        if span == 0:
            return out.reshape(num_prefixes, num_sentences)
        module = lm.model.base_model if lm._head_only else lm.model
        states, targets, rows = [], [], []
        call_positions = CPU_CALL_POSITIONS if flat.device.type == "cpu" else CALL_POSITIONS
        for members, span in _buckets(suffix_lengths, call_positions):
            prefix_of = group.index_select(0, members)  # (n,)
            begin, lengths_here = start.index_select(0, members), suffix_lengths.index_select(0, members)  # (n,), (n,)
            # the keys of [BOS] x_{<p} only: the rest of x is hidden from every continuation
            cache, held = _expanded_cache(self._pass.cache, prefix_of, int(begin.max()) + 1)
            if cache is None:  # a cache we cannot copy: rescore in full
                return lm.sequence_log_probs_torch(flat).reshape(num_prefixes, num_sentences)
            held = self._attention.shape[1] if held is None else held  # P: the positions of the cache
            sentences_here = flat.index_select(0, members)  # (n, L)
            steps = torch.arange(span, device=flat.device)[None, :]  # (1, S)
            fed = steps < lengths_here[:, None]  # (n, S)
            tokens = sentences_here.gather(1, (begin[:, None] + steps).clamp(max=width - 1))  # (n, S): y_{p + j}
            inputs = torch.where(fed, tokens, lm._fill_id)  # (n, S)
            positions = begin[:, None] + 1 + steps  # (n, S): [BOS] sits at 0, y_t at t + 1
            attention = torch.cat([self._attention.index_select(0, prefix_of)[:, :held], fed], dim=1)  # (n, P + S)
            output = module(input_ids=inputs, attention_mask=attention.long(), position_ids=positions,
                            use_cache=True, **{lm._cache_argument: cache})
            hidden = output[0] if lm._head_only else output.logits  # (n, S, H) or (n, S, V)
            # the state after y_{p + j} predicts y_{p + j + 1}; the last one predicts END
            following = sentences_here.gather(1, (begin[:, None] + steps + 1).clamp(max=width - 1))  # (n, S)
            predicted = torch.where(steps + 1 < lengths_here[:, None], following, lm.end_token_id)  # (n, S)
            if bool(fed.all()):  # one length: every position is real (the same rows, in the same order)
                states.append(hidden.reshape(-1, hidden.shape[-1]))  # (n S, H)
                targets.append(predicted.reshape(-1))
                rows.append(members.repeat_interleave(span))
            else:
                states.append(hidden[fed])  # (m, H)
                targets.append(predicted[fed])
                rows.append(members[:, None].expand_as(fed)[fed])
        if len(states) == 1:
            states, targets, rows = states[0], targets[0], rows[0]
        else:
            states, targets, rows = torch.cat(states), torch.cat(targets), torch.cat(rows)
        per_token = lm._log_probs_of(states, targets)  # (M,) one head pass for all buckets
        return out.index_add_(0, rows, per_token).reshape(num_prefixes, num_sentences)


def _equal_rows(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: row ``n`` of ``first`` ``(N, L)`` holds the sentence of row ``n`` of ``second`` ``(N, L')``."""
    width = min(first.shape[1], second.shape[1])
    same = (first[:, :width] == second[:, :width]).all(dim=1)  # (N,)
    for longer in (first, second):  # what the other does not have must be padding
        if longer.shape[1] > width:
            same &= (longer[:, width:] == PAD).all(dim=1)
    return same


def _buckets(suffix_lengths: torch.Tensor, call_positions: int) -> list:
    """Rows with a continuation ``(N,)`` split into batches by length: ``[(row indices, padded length), ...]``.

    A batch runs every row to its longest continuation, so one batch of all rows wastes the padding
    (CGMH's chains edit at different positions); one batch per length wastes the fixed cost of a model
    call. With the lengths sorted, the split that minimises (padded positions + ``call_positions`` per
    call) is found exactly by dynamic programming over the distinct lengths.
    """
    live = suffix_lengths > 0
    if not bool(live.any()):
        return []
    values, counts = torch.unique(suffix_lengths[live], return_counts=True)  # sorted
    values, counts = values.tolist(), counts.tolist()
    best, cut = [0.0] + [float("inf")] * len(values), [0] * (len(values) + 1)
    for high in range(1, len(values) + 1):  # the batch holding lengths values[low : high], padded to values[high-1]
        rows = 0
        for low in range(high - 1, -1, -1):
            rows += counts[low]
            cost = best[low] + rows * values[high - 1] + call_positions
            if cost < best[high]:
                best[high], cut[high] = cost, low
    out, high = [], len(values)
    while high > 0:
        low = cut[high]
        lower = values[low - 1] if low > 0 else 0
        members = torch.nonzero((suffix_lengths > lower) & (suffix_lengths <= values[high - 1]))[:, 0]
        out.append((members, values[high - 1]))
        high = low
    return out[::-1]
