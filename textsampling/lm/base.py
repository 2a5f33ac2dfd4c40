r"""The language-model interface every LM sampler talks to.

Two kinds of model, one vocabulary convention:

* a **masked LM** gives the masked conditionals :math:`\log p(x_i = v \mid x_{-i})` — BERT's head at a
  [MASK] (Wang & Cho 2019), or exactly, for the bigram oracle,
  :math:`p(x_i \mid x_{-i}) \propto p(x_i \mid x_{i-1})\, p(x_{i+1} \mid x_i)`;
* a **causal LM** gives sentence log-probabilities
  :math:`\log p(x) = \sum_t \log p(x_t \mid x_{<t}) + \log p(\text{END} \mid x)` and next-token
  log-probabilities for decoding.

Token sequences are *content tokens only*: an adapter adds [CLS]/[SEP] or BOS itself. A batch of
variable-length sequences is an int array ``(N, L)`` padded on the right with ``PAD = -1``.
Ids in :attr:`special_token_ids` (``[MASK]``, ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``, END...) are
never sampled: their log-probabilities come back as ``-inf``.

**The caller masks.** A masked LM answers for the sequence it is shown: to get
:math:`p(x_i = v \mid x_{-i})` the caller puts ``mask_token_id`` at position :math:`i` first
(:func:`textsampling.lm.tokens.with_mask_at`). A model may look at what sits there — a real BERT shown
:math:`x_i` leans toward it, and so does :class:`~textsampling.lm.oracle.MaskSensitiveOracle`, the model
that lets ``textsampling check`` catch a sampler that forgets the mask. (The HF adapter also writes
[MASK] there, harmlessly; the exact :class:`~textsampling.lm.oracle.BigramOracle` ignores it.) The token
rules — length before PAD, special-token masking, sequence checks — live in :mod:`textsampling.lm.tokens`.

Optional attributes some samplers use when present: ``masked_logits`` / ``masked_logits_torch`` (raw
logits at the masked position, for the raw-logit energy of MLM Metropolis–Hastings; the HF adapters and
the bigram oracle provide it), and a causal LM's ``prefix_scorer_torch(token_ids, prefix_lengths)``
returning a :class:`PrefixScorer`: scores of many sentences that share a prefix (CGMH's candidates at
one position) without recomputing the prefix for each. Call it through :func:`prefix_scorer_torch`,
which falls back to :class:`PrefixScorer` itself — every sentence rescored in full, through
``next_token_log_probs_torch`` and ``sequence_log_probs_torch`` — for a model without it (the bigram
oracle); :class:`~textsampling.lm.hf_causal.HFCausalLM` runs each sentence once (and keeps that pass for
the next call on the same sentences) and continues from its prefix's keys and values (a KV cache).

Each method exists twice: a NumPy one returning float64 arrays (used by the reference samplers) and a
``*_torch`` one on tensors (used by the batched twins, on the model's device).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from textsampling.targets.base import PAD

__all__ = ["PAD", "MaskedLanguageModel", "CausalLanguageModel", "PrefixScorer", "prefix_scorer_torch", "FullRescoring"]


@runtime_checkable
class MaskedLanguageModel(Protocol):
    """What MLM Gibbs and MLM Metropolis–Hastings need."""

    #: Size of the output distribution (including special ids, which get -inf).
    vocab_size: int
    #: Ids never sampled.
    special_token_ids: frozenset
    #: Longest content sequence the model accepts.
    max_length: int
    #: The [MASK] id: callers put it at the position they ask about (and the all-[MASK] start uses it).
    mask_token_id: int

    def masked_log_probs(self, token_ids, positions):
        """``log p(x_pos = v | x_-pos)`` for each row: ``(N, L)`` ints, ``(N,)`` ints -> ``(N, V)`` float64.

        The caller has put ``mask_token_id`` at ``positions[n]``; the model may read that slot, so a
        row with a token there asks another question. Normalised over the non-special ids; special
        ids are ``-inf``.
        """

    def masked_log_probs_torch(self, token_ids, positions):
        """Torch twin of :meth:`masked_log_probs`: tensors in, ``(N, V)`` tensor out (model's device)."""


@runtime_checkable
class CausalLanguageModel(Protocol):
    """What CGMH, sentence annealing and the decoding baselines need."""

    vocab_size: int
    special_token_ids: frozenset
    max_length: int
    #: Id whose probability ends a sentence (EOS / END); never inside a sequence.
    end_token_id: int

    def sequence_log_probs(self, token_ids):
        """``log p(x_1..x_n, END)`` of each PAD-padded row: ``(N, L)`` ints -> ``(N,)`` float64."""

    def sequence_log_probs_torch(self, token_ids):
        """Torch twin of :meth:`sequence_log_probs`."""

    def next_token_log_probs(self, token_ids):
        """``log p(x_{n+1} = v | x_1..x_n)`` for each PAD-padded row -> ``(N, V)`` float64.

        The END id is a valid outcome here; other special ids are ``-inf``.
        """

    def next_token_log_probs_torch(self, token_ids):
        """Torch twin of :meth:`next_token_log_probs`."""


class PrefixScorer:
    r"""Sentence log-probabilities of sentences that share a prefix, the prefix's next-token law with them.

    CGMH (Miao et al. 2019) proposes, at position :math:`i` of chain :math:`b`, sentences :math:`y` that
    all begin with :math:`x_{<i}`; their scores share the terms of the prefix,

    .. math::
        \log p(y, \mathrm{END}) = \underbrace{\sum_{t<i} \log p(x_t \mid x_{<t})}_{\text{shared}}
        + \log p(y_i \mid x_{<i}) + \sum_{t>i} \log p(y_t \mid y_{<t}) + \log p(\mathrm{END} \mid y),

    and the candidate set is drawn from the same :math:`p(\cdot \mid x_{<i})`. This class is the
    default: it rescores every sentence in full (any causal LM); a model may return a subclass that
    computes the shared part once (:meth:`textsampling.lm.hf_causal.HFCausalLM.prefix_scorer_torch`).
    Both give the same numbers up to float rounding.

    Parameters
    ----------
    model : CausalLanguageModel
    token_ids : torch.Tensor of int64, shape (B, L)
        PAD-padded sentences; row ``b``'s prefix is its first ``prefix_lengths[b]`` tokens.
    prefix_lengths : torch.Tensor of int64, shape (B,)
        ``0 <= prefix_lengths[b] <=`` the length of row ``b``.

    Attributes
    ----------
    next_token_log_probs : torch.Tensor, shape (B, V)
        ``model.next_token_log_probs_torch`` of the prefixes (END allowed, other specials -inf).
    """

    def __init__(self, model, token_ids, prefix_lengths):
        self.model = model
        self.prefixes, self.prefix_lengths = prefixes_of(token_ids, prefix_lengths)
        self.next_token_log_probs = model.next_token_log_probs_torch(self.prefixes)  # (B, V)

    def sequence_log_probs(self, sentences):
        """``log p(y, END)`` of sentences ``(B, K, L)`` whose row ``[b, k]`` starts with prefix ``b`` -> ``(B, K)``."""
        check_prefixes(sentences, self.prefixes, self.prefix_lengths)
        num_prefixes, num_sentences, width = sentences.shape
        return self.model.sequence_log_probs_torch(sentences.reshape(-1, width)).reshape(num_prefixes, num_sentences)


def prefixes_of(token_ids, prefix_lengths):
    """``(prefixes (B, L) with PAD from prefix_lengths[b] on, prefix_lengths (B,) int64)``, both checked."""
    import torch

    if not isinstance(token_ids, torch.Tensor) or token_ids.dim() != 2 or token_ids.dtype.is_floating_point:
        raise TypeError("token_ids must be a (B, L) integer tensor of PAD-padded sentences")
    prefix_lengths = torch.as_tensor(prefix_lengths, device=token_ids.device)
    if prefix_lengths.shape != token_ids.shape[:1] or prefix_lengths.dtype.is_floating_point:
        raise ValueError(f"prefix_lengths must be (B,) = ({token_ids.shape[0]},) integers, got shape "
                         f"{tuple(prefix_lengths.shape)} and dtype {prefix_lengths.dtype}")
    prefix_lengths = prefix_lengths.to(torch.int64)
    lengths = (token_ids != PAD).sum(dim=1)  # (B,) the caller's rows are right-padded (the models check it)
    if bool(((prefix_lengths < 0) | (prefix_lengths > lengths)).any()):
        raise ValueError("prefix_lengths must lie in 0..the length of each row of token_ids")
    columns = torch.arange(token_ids.shape[1], device=token_ids.device)[None, :]  # (1, L)
    prefixes = torch.where(columns < prefix_lengths[:, None], token_ids.to(torch.int64), PAD)  # (B, L)
    return prefixes, prefix_lengths


def check_prefixes(sentences, prefixes, prefix_lengths) -> None:
    """``ValueError`` unless every sentence ``[b, k]`` ``(B, K, L)`` starts with prefix ``b`` ``(B, L)``."""
    import torch

    if not isinstance(sentences, torch.Tensor) or sentences.dim() != 3 or sentences.shape[0] != prefixes.shape[0]:
        raise ValueError(f"sentences must be a (B, K, L) tensor with B = {prefixes.shape[0]} (one group per prefix)")
    width = min(sentences.shape[2], prefixes.shape[1])
    columns = torch.arange(width, device=sentences.device)[None, None, :]  # (1, 1, W)
    in_prefix = columns < prefix_lengths[:, None, None]  # (B, 1, W)
    differs = (sentences[:, :, :width] != prefixes[:, None, :width]) & in_prefix  # (B, K, W)
    if bool(differs.any()) or (sentences.shape[2] < prefixes.shape[1] and bool((prefix_lengths > width).any())):
        raise ValueError("sentences: every sentence of group b must start with the first prefix_lengths[b] tokens "
                         "of token_ids[b]")


def prefix_scorer_torch(model, token_ids, prefix_lengths) -> PrefixScorer:
    """The model's own :class:`PrefixScorer` (``model.prefix_scorer_torch``) when it has one, else the default.

    ``token_ids`` ``(B, L)`` int64 tensor, ``prefix_lengths`` ``(B,)``: see :class:`PrefixScorer`.
    """
    method = getattr(model, "prefix_scorer_torch", None)
    if callable(method):
        return method(token_ids, prefix_lengths)
    return PrefixScorer(model, token_ids, prefix_lengths)


class FullRescoring:
    """``model`` seen without its ``prefix_scorer_torch``: :func:`prefix_scorer_torch` then gives the default
    :class:`PrefixScorer`, which scores every candidate sentence in full (to compare with prefix reuse)."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        if name == "prefix_scorer_torch":
            raise AttributeError(name)
        return getattr(self._model, name)
