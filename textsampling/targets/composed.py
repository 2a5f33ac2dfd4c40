r"""The composed targets of parts 1 and 4: fluency x relevance x hard constraint.

Part 1 of the series turns "write a sentence containing these keywords" into a distribution to sample
from, written down rather than learned:

.. math::
    \rho(x, c) = p(x)\, \chi(x, c),
    \qquad
    \chi(x, c) = \begin{cases} 1 & \text{every keyword of } c \text{ occurs in } x \\
                                0 & \text{otherwise,} \end{cases}

with :math:`p` a language model. :class:`KeywordTarget` generalises it to

.. math::
    \log \rho(x, c) = \gamma \log p(x) + \log \mathrm{sim}(x, c) + \log \chi(x, c),

so :math:`\log \chi \in \{0, -\infty\}`, and part 1's keyword target is :math:`\gamma = 1`,
:math:`\mathrm{sim} \equiv 1`. The two extra factors come from elsewhere in the series: part 1 writes
:math:`p \cdot \mathrm{sim} \cdot \chi` only for summarisation, with :math:`\mathrm{sim}` the
similarity of the summary to the text and :math:`\chi` a *length* constraint (pass both through
``log_similarity``, whose values may be ``-inf``, or give the base model a ``max_length``); and part 4
suggests :math:`p^{\gamma}` with :math:`\gamma` slightly below 1 against the language model's taste for
short sentences (bojone's code uses 0.8; the CGMH code has no :math:`\gamma`). That is a heuristic about
:math:`p` alone: with a keyword constraint :math:`\gamma < 1` can *shorten* the sentences, as chapter 1
computes exactly on its toy (the mean length of :math:`p^{0.8}\chi` is below that of :math:`p\chi`).

Here :math:`p` is any :class:`~textsampling.targets.sequences.SequenceTarget` (e.g. a
:class:`~textsampling.targets.sequences.BigramLM`), :math:`\gamma > 0` and :math:`\mathrm{sim}` a
pluggable soft relevance score. The normalised target is :math:`p(x \mid c) = \rho(x, c) / Z(c)`; on a
toy space every quantity is exact, so keyword samplers (rejection, MH, CGMH) can be checked against it.

:class:`TopicSimilarity` is a toy relevance score: ``weight`` times the fraction of tokens that belong
to a topic set. It stands in for a semantic similarity such as a cosine between sentence embeddings.

References: Su Jianlin, 【搜出来的文本】 part 1 (spaces.ac.cn/archives/8062) and part 4
(spaces.ac.cn/archives/8194); Miao, Zhou, Mou, Yan & Li (2019), "CGMH: Constrained Sentence Generation
by Metropolis-Hastings Sampling", AAAI, arXiv:1811.10996.
"""

from __future__ import annotations

import numpy as np

from textsampling._validation import check_positive
from textsampling.targets.base import sequence_lengths
from textsampling.targets.sequences import SequenceTarget

__all__ = ["KeywordTarget", "TopicSimilarity"]


def _inside_sentence(states: np.ndarray) -> np.ndarray:
    """``(N, L)`` bool: positions before the first PAD (tokens after a PAD do not count)."""
    return np.arange(states.shape[1])[None, :] < sequence_lengths(states)[:, None]


def _as_token_list(tokens, name: str) -> tuple:
    """``tokens`` as a tuple of distinct ints (first-occurrence order); refuses non-integers."""
    values = np.asarray(tokens)
    if values.ndim == 0:
        values = values[None]
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D list of token ids, got shape {values.shape}")
    if values.size and (values.dtype.kind not in "iu" or values.dtype == np.bool_):
        raise TypeError(f"{name} must hold integer token ids, got {tokens!r}")
    return tuple(dict.fromkeys(int(v) for v in values))


class TopicSimilarity:
    """Toy relevance score: :math:`\\log \\mathrm{sim}(x) = w \\cdot |\\{t \\le n : x_t \\in T\\}| / n`.

    A stand-in for the sentence-embedding cosine of part 4: it rewards sentences whose tokens lie in a
    topic set :math:`T`. Only the ``n`` tokens before the first PAD count; the empty sentence scores 0.

    Parameters
    ----------
    topic_tokens : sequence of int
        The topic set :math:`T` (non-negative token ids, at least one).
    weight : float, default 1.0
        :math:`w`, finite; negative values penalise the topic instead.
    """

    def __init__(self, topic_tokens, weight: float = 1.0):
        self.topic_tokens = _as_token_list(topic_tokens, "topic_tokens")
        if not self.topic_tokens:
            raise ValueError("topic_tokens must hold at least one token id")
        if min(self.topic_tokens) < 0:
            raise ValueError(f"topic_tokens must be token ids >= 0, got {list(self.topic_tokens)}")
        try:
            self.weight = float(weight)
        except (TypeError, ValueError):
            raise TypeError(f"weight must be a finite number, got {weight!r}") from None
        if not np.isfinite(self.weight):
            raise ValueError(f"weight must be a finite number, got {weight!r}")

    def __call__(self, states) -> np.ndarray:
        """``log sim`` of each state: ``(N, L)`` ints -> ``(N,)`` float64."""
        states = np.asarray(states)
        if states.ndim != 2 or states.dtype.kind not in "iu":
            raise ValueError(f"states must be an (N, L) integer array, got shape {states.shape}")
        inside = _inside_sentence(states)  # (N, L)
        lengths = inside.sum(axis=1)
        in_topic = np.isin(states, self.topic_tokens) & inside
        # max(n, 1) avoids 0/0 for the empty sentence, whose count is 0 anyway.
        return self.weight * in_topic.sum(axis=1) / np.maximum(lengths, 1)

    def __repr__(self) -> str:
        return f"TopicSimilarity(topic_tokens={list(self.topic_tokens)}, weight={self.weight})"


class KeywordTarget(SequenceTarget):
    """:math:`\\log \\rho(x, c) = \\gamma \\log p(x) + \\log \\mathrm{sim}(x, c) + \\log \\chi(x, c)`.

    Parameters
    ----------
    base : SequenceTarget
        The language model :math:`p` (its :meth:`log_prob`; need not be normalised). States, vocabulary
        and enumeration are the base's.
    keywords : sequence of int
        Tokens that must all occur in :math:`x` (before the first PAD); repeats count once. Each must
        lie in ``0..V-1``, and there may be at most ``base.length`` distinct ones. May be empty
        (:math:`\\chi \\equiv 1`).
    log_similarity : callable or None, default None
        ``states (N, L) -> (N,)`` float log-similarity (finite or ``-inf``), e.g.
        :class:`TopicSimilarity`; ``None`` means :math:`\\mathrm{sim} \\equiv 1`.
    gamma : float, default 1.0
        Exponent :math:`\\gamma > 0` of the language model.

    Notes
    -----
    :meth:`conditional_log_probs` is the brute-force definition of
    :class:`~textsampling.targets.sequences.SequenceTarget`: with a keyword constraint there is no
    local closed form (whether :math:`x_i` may change depends on the whole sentence).
    """

    def __init__(self, base, keywords, log_similarity=None, gamma: float = 1.0):
        if not isinstance(base, SequenceTarget):
            raise TypeError(f"base must be a SequenceTarget (e.g. BigramLM), got {type(base).__name__}")
        self.base = base
        self._init_sequence(base.vocab_size, base.length)
        self.keywords = _as_token_list(keywords, "keywords")
        outside = [k for k in self.keywords if not 0 <= k < self.vocab_size]
        if outside:
            raise ValueError(
                f"keywords must be token ids in 0..{self.vocab_size - 1} (the vocabulary of base), "
                f"got {outside}"
            )
        if len(self.keywords) > self.length:
            raise ValueError(
                f"keywords holds {len(self.keywords)} distinct tokens but sentences have at most "
                f"{self.length} (base.length): no sentence could contain them all"
            )
        if log_similarity is not None and not callable(log_similarity):
            raise TypeError(
                f"log_similarity must be a callable states -> (N,) log-similarities, or None, "
                f"got {type(log_similarity).__name__}"
            )
        self.log_similarity = log_similarity
        self.gamma = check_positive(gamma, "gamma")

    def satisfies_keywords(self, states) -> np.ndarray:
        """:math:`\\chi(x, c) = 1`: every keyword occurs before the first PAD, ``(N,)`` bool."""
        states = self._as_states(states)
        inside = _inside_sentence(states)
        found = np.ones(states.shape[0], dtype=bool)
        for keyword in self.keywords:
            found &= np.any((states == keyword) & inside, axis=1)
        return found

    def log_constraint(self, states) -> np.ndarray:
        """:math:`\\log \\chi(x, c) \\in \\{0, -\\infty\\}`, shape ``(N,)``."""
        return np.where(self.satisfies_keywords(states), 0.0, -np.inf)

    def log_relevance(self, states) -> np.ndarray:
        """:math:`\\log \\mathrm{sim}(x, c)`, shape ``(N,)`` (zeros without a ``log_similarity``)."""
        states = self._as_states(states)
        if self.log_similarity is None:
            return np.zeros(states.shape[0])
        values = np.asarray(self.log_similarity(states), dtype=np.float64)
        if values.shape != (states.shape[0],):
            raise ValueError(
                f"log_similarity must return one value per state, shape ({states.shape[0]},), "
                f"got {values.shape}"
            )
        if np.any(np.isnan(values)) or np.any(values == np.inf):
            raise ValueError("log_similarity returned NaN or +inf; values must be finite or -inf")
        return values

    def log_prob(self, states) -> np.ndarray:
        states = self._as_states(states)
        # gamma > 0, so gamma * (-inf) = -inf: a sentence the LM forbids stays forbidden.
        fluency = self.gamma * np.asarray(self.base.log_prob(states), dtype=np.float64)
        return fluency + self.log_relevance(states) + self.log_constraint(states)

    def enumerate_states(self) -> np.ndarray:
        """The base's states (those without every keyword are in the space, with probability 0)."""
        return self.base.enumerate_states()

    def __repr__(self) -> str:
        return (
            f"KeywordTarget(base={self.base!r}, keywords={list(self.keywords)}, "
            f"log_similarity={self.log_similarity!r}, gamma={self.gamma})"
        )
