r"""The named built-in targets of ``textsampling check`` (:data:`TARGETS`, :func:`make_target`), and the
tempered law :math:`\pi_T \propto \rho^{1/T}` of a target (:class:`TemperedTarget`).

Every named target is small enough to enumerate, so a check on it is an exact statistical test.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from textsampling._validation import check_positive
from textsampling.targets.base import DiscreteTarget
from textsampling.targets.categorical import Categorical
from textsampling.targets.composed import KeywordTarget, TopicSimilarity
from textsampling.targets.sequences import BigramLM, FixedLengthBigram, PairwiseChain

__all__ = ["TARGETS", "make_target", "TemperedTarget"]


def _categorical_small() -> Categorical:
    # Six states with distinct probabilities, none tiny: every state is visited in a one-step test.
    return Categorical(np.log([0.04, 0.08, 0.12, 0.16, 0.25, 0.35]))


def _categorical_far() -> Categorical:
    # The same law written 1000 nats below zero, as the log-probability of a long sentence is:
    # exp() of these log-densities underflows to 0.0, so only log-space code survives.
    return Categorical(np.log([0.04, 0.08, 0.12, 0.16, 0.25, 0.35]) - 1000.0)


_BIGRAM_INITIAL = np.log([0.5, 0.3, 0.2])
# Row v: p(next | v) over tokens 0, 1, 2 and END (column 3).
_BIGRAM_TRANSITION = np.log(
    [
        [0.10, 0.50, 0.20, 0.20],
        [0.40, 0.10, 0.30, 0.20],
        [0.30, 0.30, 0.10, 0.30],
    ]
)
_BIGRAM_LENGTH = 3


def _bigram_small() -> FixedLengthBigram:
    return FixedLengthBigram(_BIGRAM_INITIAL, _BIGRAM_TRANSITION, _BIGRAM_LENGTH)


def _pairwise_small() -> PairwiseChain:
    # Strong, uneven couplings: updating sites in parallel (stale conditionals) visibly breaks pi.
    unary = np.array([[0.2, 0.0, -0.3], [0.0, 0.3, 0.0], [-0.2, 0.0, 0.4]])
    coupling = np.array([[1.2, -0.6, 0.0], [-0.6, 1.0, 0.2], [0.0, 0.2, 1.4]])
    return PairwiseChain(unary, coupling)


def _bigram_keywords() -> KeywordTarget:
    # Sentences of 1..4 tokens that contain token 2, scored by p(x)^0.8 times a topic bonus for token 1.
    base = BigramLM(_BIGRAM_INITIAL, _BIGRAM_TRANSITION, max_length=4, min_length=1)
    return KeywordTarget(base, keywords=[2], log_similarity=TopicSimilarity([1], weight=0.5), gamma=0.8)


#: name -> (one-line description, factory). Every target is small enough to enumerate.
TARGETS: dict[str, tuple[str, Callable[[], DiscreteTarget]]] = {
    "categorical-small": ("categorical over 6 states, probabilities 0.04..0.35", _categorical_small),
    "categorical-far": (
        "categorical-small with log-densities near -1000 (exp underflows, as for a long sentence)",
        _categorical_far,
    ),
    "bigram-small": ("bigram LM with END conditioned on length 3, V = 3 (27 sentences)", _bigram_small),
    "pairwise-small": ("pairwise chain (Potts-like MRF), L = 3, V = 3 (27 states)", _pairwise_small),
    "bigram-keywords": (
        "bigram LM, lengths 1..4, V = 3, keyword 2 required, gamma 0.8, topic bonus (90 sentences)",
        _bigram_keywords,
    ),
}


_BUILT = {}


def make_target(name: str) -> DiscreteTarget:
    """The named built-in target (see :data:`TARGETS`).

    Built once and shared (do not modify it): its enumeration, and the memo tables step functions keep
    per target (e.g. the CGMH paths of :mod:`textsampling.gallery.cgmh`), then serve every check.
    """
    if name not in TARGETS:
        raise ValueError(f"target must be one of {sorted(TARGETS)}, got {name!r}")
    if name not in _BUILT:
        _BUILT[name] = TARGETS[name][1]()
    return _BUILT[name]


class TemperedTarget(DiscreteTarget):
    r""":math:`\pi_T \propto \exp(\log\rho / T)` on the states of ``base`` (what an annealing step keeps)."""

    def __init__(self, base: DiscreteTarget, temperature: float):
        self.base = base
        self.temperature = check_positive(temperature, "temperature")
        self.state_shape = base.state_shape

    def log_prob(self, states):
        return np.asarray(self.base.log_prob(states), dtype=np.float64) / self.temperature

    def enumerate_states(self):
        return self.base.enumerate_states()
