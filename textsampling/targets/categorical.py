r"""A categorical distribution over ``K`` states given by logits.

.. math::
    \log \rho(k) = \ell_k, \qquad \pi(k) = \frac{e^{\ell_k}}{\sum_j e^{\ell_j}}, \quad k = 0, \dots, K-1.

The simplest target with an exact answer: every sampler of parts 1–2 is first checked here.
"""

from __future__ import annotations

import numpy as np

from textsampling._validation import check_logits, check_probabilities
from textsampling.targets.base import DiscreteTarget

__all__ = ["Categorical"]


class Categorical(DiscreteTarget):
    """Categorical target :math:`\\pi = \\mathrm{softmax}(\\text{logits})`; states are ints ``0..K-1``.

    Parameters
    ----------
    logits : array_like of float, shape (K,)
        Unnormalised log-probabilities. ``-inf`` marks a state of probability zero; NaN, ``+inf``,
        an empty array or all ``-inf`` raise ``ValueError``.
    """

    state_shape = ()

    def __init__(self, logits):
        self.logits = check_logits(logits, allow_batch=False)
        self.num_categories = int(self.logits.shape[0])

    @classmethod
    def from_probabilities(cls, probabilities) -> "Categorical":
        """Build from probabilities (non-negative, finite, positive sum; need not sum to 1)."""
        return cls(check_probabilities(probabilities))

    def log_prob(self, states) -> np.ndarray:
        states = self._as_states(states)
        out = np.full(states.shape[0], -np.inf)
        inside = (states >= 0) & (states < self.num_categories)
        out[inside] = self.logits[states[inside]]
        return out

    def enumerate_states(self) -> np.ndarray:
        return np.arange(self.num_categories, dtype=np.int64)

    def state_index(self, states) -> np.ndarray:
        # States are their own index: no dictionary needed.
        states = self._as_states(states)
        if np.any((states < 0) | (states >= self.num_categories)):
            bad = states[(states < 0) | (states >= self.num_categories)][0]
            raise ValueError(f"state {bad} is outside 0..{self.num_categories - 1}")
        return states.copy()

    def mean(self) -> float:
        """Exact :math:`\\mathbb{E}[k]`."""
        return self.expectation(lambda states: states.astype(np.float64))

    def __repr__(self) -> str:
        return f"Categorical(num_categories={self.num_categories})"
