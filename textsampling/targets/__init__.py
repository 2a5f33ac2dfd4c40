"""Exact, enumerable targets in log space (see :mod:`textsampling.targets.base`)."""

from textsampling.targets.base import PAD, DiscreteTarget
from textsampling.targets.categorical import Categorical
from textsampling.targets.composed import KeywordTarget, TopicSimilarity
from textsampling.targets.gaussian_mixture import GaussianMixture
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
]
