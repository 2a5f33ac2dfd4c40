"""One entry point from a NumPy reference object to its torch twin: :func:`twin_of`.

The twin holds the reference's tables (no second computation of them) in ``dtype`` (float32 by
default, or float64) on ``device``; it takes batches with a leading dimension ``N`` where the
reference takes one state, and answers with the reference's numbers: a target's ``log_prob`` maps
``(N,) + state_shape -> (N,)``, a proposal's draws and densities are those of
:mod:`textsampling.torch.proposals`. The math stays with the reference classes.

>>> from textsampling.targets import Categorical
>>> twin_of(Categorical([0.0, 1.0]), dtype=torch.float64).log_prob(torch.tensor([1]))
tensor([1.], dtype=torch.float64)
"""

from __future__ import annotations

import torch

from textsampling import targets as reference_targets
from textsampling.reference import proposals as reference_proposals
from textsampling.torch import proposals, targets

__all__ = ["twin_of"]

# Most specific classes first: FixedLengthBigram and friends before SequenceTarget.
_PAIRS = [
    (reference_targets.Categorical, targets.Categorical),
    (reference_targets.FixedLengthBigram, targets.FixedLengthBigram),
    (reference_targets.BigramLM, targets.BigramLM),
    (reference_targets.PairwiseChain, targets.PairwiseChain),
    (reference_targets.KeywordTarget, targets.KeywordTarget),
    (reference_targets.TopicSimilarity, targets.TopicSimilarity),
    (reference_targets.GaussianMixture, targets.GaussianMixture),
    (reference_proposals.UniformCategoricalProposal, proposals.UniformCategoricalProposal),
    (reference_proposals.RingStepProposal, proposals.RingStepProposal),
    (reference_proposals.SingleSiteProposal, proposals.SingleSiteProposal),
    (reference_proposals.IndependenceProposal, proposals.IndependenceProposal),
    (reference_proposals.GaussianRandomWalkProposal, proposals.GaussianRandomWalkProposal),
    (reference_proposals.IndependentCategorical, proposals.IndependentCategorical),
    (reference_proposals.IndependentUniformSequences, proposals.IndependentUniformSequences),
    (reference_proposals.IndependentGaussian, proposals.IndependentGaussian),
]


def twin_of(reference, dtype=None, device=None):
    """The torch twin of a NumPy target or proposal, with the same tables, in ``dtype`` on ``device``.

    Parameters
    ----------
    reference : a target of :mod:`textsampling.targets` or a proposal of :mod:`textsampling.reference.proposals`
    dtype : torch.float32 (default) or torch.float64
    device : torch.device or str, default "cpu"

    Raises
    ------
    TypeError
        If ``reference`` has no twin (e.g. a user-defined target).
    """
    for reference_class, twin_class in _PAIRS:
        if type(reference) is reference_class:
            return twin_class.from_reference(reference, dtype=dtype, device=device)
    names = ", ".join(r.__name__ for r, _ in _PAIRS)
    raise TypeError(f"reference must be one of {names} (a class with a torch twin), got {type(reference).__name__}")


if __name__ == "__main__":  # pragma: no cover
    print(twin_of(reference_targets.Categorical([0.0, 1.0]), dtype=torch.float64))
