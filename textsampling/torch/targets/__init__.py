"""Torch twins of the toy targets' log-probabilities (same class names as :mod:`textsampling.targets`).

Each twin holds its NumPy reference (``.reference``) for the math and the exact answers, and evaluates
``log_prob`` (and masked conditionals) on batches of states on any device, in float32 or float64: states
``(N,) + state_shape`` -> ``(N,)`` in the twin's dtype (the contract of
:class:`~textsampling.torch.targets.base.TorchTarget`). Build one from a reference with
:func:`textsampling.torch.twins.twin_of`.
"""

from textsampling.torch.targets.base import TorchTarget
from textsampling.torch.targets.categorical import Categorical
from textsampling.torch.targets.composed import KeywordTarget, TopicSimilarity
from textsampling.torch.targets.gaussian_mixture import GaussianMixture
from textsampling.torch.targets.sequences import BigramLM, FixedLengthBigram, PairwiseChain, SequenceTarget

__all__ = [
    "TorchTarget",
    "Categorical",
    "SequenceTarget",
    "BigramLM",
    "FixedLengthBigram",
    "PairwiseChain",
    "KeywordTarget",
    "TopicSimilarity",
    "GaussianMixture",
]
