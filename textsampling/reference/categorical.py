r"""Inverse-CDF sampling of a categorical distribution given by logits.

With weights :math:`w_k = \exp(\ell_k - \max_j \ell_j)` and cumulative sums
:math:`C_k = \sum_{j \le k} w_j`, a uniform :math:`u \in (0, 1)` selects

.. math::
    k(u) = \min\{k : C_k > u \, C_{K-1}\},

so :math:`P(k(u) = k) = w_k / C_{K-1} = \mathrm{softmax}(\ell)_k`. The same rule (first index whose
cumulative weight exceeds :math:`u` times the total) is used by the torch twin, so both pick the same
index from the same uniform. A state of logit ``-inf`` has zero weight and is never selected.

Reference: Devroye, *Non-Uniform Random Variate Generation* (1986), ch. III.2.
"""

from __future__ import annotations

import numpy as np

from textsampling._validation import check_int, check_logits
from textsampling.randomness import as_generator, categorical_from_uniforms, draw_uniforms

__all__ = ["categorical_from_uniforms", "sample"]

#: A categorical draw consumes one uniform.
NUM_UNIFORMS = 1


def sample(rng, logits, num_samples: int) -> np.ndarray:
    """Draw ``num_samples`` independent categories from ``softmax(logits)``.

    Parameters
    ----------
    rng : numpy.random.Generator or textsampling.randomness.CounterGenerator
    logits : array_like of float, shape (K,)
    num_samples : int

    Returns
    -------
    numpy.ndarray of int64, shape (num_samples,)
    """
    rng = as_generator(rng)
    num_samples = check_int(num_samples, "num_samples")
    logits = check_logits(logits, allow_batch=False)
    uniforms = draw_uniforms(rng, 0, num_samples)
    return categorical_from_uniforms(np.reshape(uniforms, -1), logits)
