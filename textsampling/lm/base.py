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

Optional attribute some samplers use when present: ``masked_logits`` / ``masked_logits_torch`` (raw
logits at the masked position, for the raw-logit energy of MLM Metropolis–Hastings). The HF adapters
and the bigram oracle provide it.

Each method exists twice: a NumPy one returning float64 arrays (used by the reference samplers) and a
``*_torch`` one on tensors (used by the batched twins, on the model's device).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from textsampling.targets.base import PAD

__all__ = ["PAD", "MaskedLanguageModel", "CausalLanguageModel"]


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
