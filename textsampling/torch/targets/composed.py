r"""Torch twin of :mod:`textsampling.targets.composed`: :math:`\gamma \log p + \log \mathrm{sim} + \log \chi`.

.. math::
    \log \rho(x, c) = \gamma \log p(x) + \log \mathrm{sim}(x, c) + \log \chi(x, c)

batched over states ``(N, L)``, added in the reference's order. Part 1 of the series
(spaces.ac.cn/archives/8062) writes the keyword target :math:`p \cdot \chi`; :math:`\mathrm{sim}` (part 1's
summarisation example) and :math:`\gamma` (Su's suggestion in part 4, spaces.ac.cn/archives/8194) are the
reference module's generalisation, explained there. The base language model must be a torch sequence twin; the
similarity a :class:`TopicSimilarity` twin, ``None``, or any torch callable ``(N, L) -> (N,)``.
"""

from __future__ import annotations

import torch

from textsampling.lm.tokens import sequence_lengths_torch
from textsampling.targets.composed import KeywordTarget as ReferenceKeywordTarget
from textsampling.targets.composed import TopicSimilarity as ReferenceTopicSimilarity
from textsampling.torch._validation import check_float_dtype, check_tensor, resolve_device, same_device
from textsampling.torch.targets.sequences import BigramLM, FixedLengthBigram, PairwiseChain, SequenceTarget

__all__ = ["KeywordTarget", "TopicSimilarity"]


def _inside_sentence(states: torch.Tensor) -> torch.Tensor:
    """``(N, L)`` bool: positions before the first PAD."""
    positions = torch.arange(states.shape[1], device=states.device)  # (L,)
    return positions[None, :] < sequence_lengths_torch(states)[:, None]  # (1, L) < (N, 1) -> (N, L)


def _sequence_twin(reference, dtype, device) -> SequenceTarget:
    """The torch twin of a NumPy sequence target, picked by its exact class.

    What :func:`textsampling.torch.twins.twin_of` does for sequence targets, without importing it
    (twins.py sits above this module and imports it).
    """
    for twin_class in (BigramLM, FixedLengthBigram, PairwiseChain, KeywordTarget):
        if type(reference) is twin_class._reference_class:
            return twin_class.from_reference(reference, dtype=dtype, device=device)
    raise TypeError(
        "the base of the reference KeywordTarget must be a BigramLM, FixedLengthBigram, PairwiseChain or "
        f"KeywordTarget (a sequence target with a torch twin), got {type(reference).__name__}"
    )


class TopicSimilarity:
    """Twin of :class:`textsampling.targets.TopicSimilarity`: ``weight * (#tokens in topic) / n``."""

    def __init__(self, topic_tokens, weight: float = 1.0, dtype=None, device=None):
        self.reference = ReferenceTopicSimilarity(topic_tokens, weight)
        self.topic_tokens, self.weight = self.reference.topic_tokens, self.reference.weight
        self.dtype, self.device = check_float_dtype(dtype), resolve_device(device)
        self._topic = torch.tensor(self.topic_tokens, dtype=torch.int64, device=self.device)

    @classmethod
    def from_reference(cls, reference, dtype=None, device=None) -> "TopicSimilarity":
        """The twin of an existing NumPy object (same tables, in ``dtype`` on ``device``)."""
        return cls(reference.topic_tokens, reference.weight, dtype, device)

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        states = check_tensor(states, "states", integer=True, ndim=2)
        if not same_device(states.device, self.device):
            raise ValueError(f"states is on {states.device} but the similarity lives on {self.device}")
        inside = _inside_sentence(states)  # (N, L)
        lengths = inside.sum(dim=1)  # (N,)
        in_topic = torch.isin(states, self._topic) & inside
        return self.weight * in_topic.sum(dim=1).to(self.dtype) / lengths.clamp(min=1).to(self.dtype)


class KeywordTarget(SequenceTarget):
    """Twin of :class:`textsampling.targets.KeywordTarget`.

    Parameters
    ----------
    base : torch sequence twin (e.g. :class:`~textsampling.torch.targets.BigramLM`)
    keywords : sequence of int
    log_similarity : TopicSimilarity twin, torch callable ``(N, L) -> (N,)``, or None
        The NumPy reference (used for exact answers: normaliser, cells, exact draws) receives the twin's
        ``.reference`` when it has one, else the callable itself, which must then accept NumPy arrays too.
    gamma : float
    dtype, device : taken from ``base`` when not given (and must then agree with it)
    """

    _reference_class = ReferenceKeywordTarget

    def __init__(self, base, keywords, log_similarity=None, gamma: float = 1.0):
        if not isinstance(base, SequenceTarget):
            raise TypeError(
                "base must be a torch sequence twin (e.g. textsampling.torch.targets.BigramLM), "
                f"got {type(base).__name__}"
            )
        reference_similarity = getattr(log_similarity, "reference", log_similarity)
        reference = ReferenceKeywordTarget(base.reference, keywords, reference_similarity, gamma)
        self.base, self.log_similarity = base, log_similarity
        self._setup(reference, base.dtype, base.device)

    @classmethod
    def from_reference(cls, reference, dtype=None, device=None) -> "KeywordTarget":
        """The twin of an existing NumPy object (same tables, in ``dtype`` on ``device``)."""
        if not isinstance(reference, ReferenceKeywordTarget):
            raise TypeError(f"reference must be a KeywordTarget, got {type(reference).__name__}")
        similarity = reference.log_similarity
        if similarity is not None:
            if not isinstance(similarity, ReferenceTopicSimilarity):
                raise TypeError(
                    "log_similarity of the reference is a NumPy callable without a torch twin; build the twin "
                    "with KeywordTarget(base_twin, keywords, torch_callable, gamma)"
                )
            similarity = TopicSimilarity.from_reference(similarity, dtype, device)
        return cls(_sequence_twin(reference.base, dtype, device), reference.keywords, similarity, reference.gamma)

    def _build(self) -> None:
        SequenceTarget._build(self)
        self.keywords, self.gamma = self.reference.keywords, self.reference.gamma

    def satisfies_keywords(self, states: torch.Tensor) -> torch.Tensor:
        """Every keyword occurs before the first PAD, ``(N,)`` bool."""
        states = self._check_states(states)
        inside = _inside_sentence(states)
        found = torch.ones(states.shape[0], dtype=torch.bool, device=self.device)
        for keyword in self.keywords:
            found &= ((states == keyword) & inside).any(dim=1)
        return found

    def log_constraint(self, states: torch.Tensor) -> torch.Tensor:
        """:math:`\\log\\chi \\in \\{0, -\\infty\\}`, ``(N,)``."""
        satisfied = self.satisfies_keywords(states)
        zero = torch.zeros((), dtype=self.dtype, device=self.device)
        return torch.where(satisfied, zero, -torch.inf)  # (N,)

    def log_relevance(self, states: torch.Tensor) -> torch.Tensor:
        """:math:`\\log\\mathrm{sim}`, ``(N,)`` (zeros without a similarity)."""
        states = self._check_states(states)
        if self.log_similarity is None:
            return torch.zeros(states.shape[0], dtype=self.dtype, device=self.device)
        values = self.log_similarity(states)
        if not isinstance(values, torch.Tensor) or values.shape != (states.shape[0],):
            raise ValueError(f"log_similarity must return a tensor of shape ({states.shape[0]},) (one per state)")
        return values.to(self.dtype)

    def log_prob(self, states: torch.Tensor) -> torch.Tensor:
        """Unnormalised :math:`\\log\\rho` of states ``(N,) + state_shape``, shape ``(N,)``; ``-inf`` outside."""
        states = self._check_states(states)
        # gamma > 0: a sentence the LM forbids (-inf) stays forbidden.
        fluency = self.gamma * self.base.log_prob(states)
        return fluency + self.log_relevance(states) + self.log_constraint(states)
