"""Exact, enumerable targets in log space (see :mod:`textsampling.targets.base`), and the named
built-in targets of ``textsampling check`` (:mod:`textsampling.targets.named`)."""

from textsampling.targets.base import PAD, DiscreteTarget
from textsampling.targets.categorical import Categorical
from textsampling.targets.composed import KeywordTarget, TopicSimilarity
from textsampling.targets.gaussian_mixture import GaussianMixture
from textsampling.targets.named import TARGETS, TemperedTarget, make_target
from textsampling.targets.sequences import BigramLM, FixedLengthBigram, PairwiseChain, SequenceTarget

__all__ = [
    "PAD",
    "DiscreteTarget",
    "Categorical",
    "SequenceTarget",
    "BigramLM",
    "FixedLengthBigram",
    "PairwiseChain",
    "KeywordTarget",
    "TopicSimilarity",
    "GaussianMixture",
    "TemperedTarget",
    "TARGETS",
    "make_target",
]
