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
from textsampling.randomness import as_generator, draw_uniforms

__all__ = ["categorical_from_uniforms", "sample"]

#: A categorical draw consumes one uniform.
NUM_UNIFORMS = 1


def categorical_from_uniforms(uniforms, logits) -> np.ndarray:
    """Deterministic inverse-CDF map from uniforms to category indices.

    Parameters
    ----------
    uniforms : array_like of float, shape (N,)
        Uniforms in (0, 1), one per draw.
    logits : array_like of float, shape (K,) or (N, K)
        Unnormalised log-probabilities (``-inf`` allowed); one row per draw when 2-D.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
    """
    logits = check_logits(logits)
    uniforms = np.atleast_1d(np.asarray(uniforms, dtype=np.float64))
    if uniforms.ndim != 1:
        raise ValueError(f"uniforms must be 1-D, got shape {uniforms.shape}")
    if np.any(~(uniforms > 0)) or np.any(~(uniforms < 1)):
        raise ValueError("uniforms must lie in the open interval (0, 1)")
    if logits.ndim == 2 and logits.shape[0] != uniforms.shape[0]:
        raise ValueError(
            f"logits has {logits.shape[0]} rows but uniforms has {uniforms.shape[0]} entries; "
            "give one row of logits per uniform, or a single 1-D row"
        )
    # Shift each row by its max so the largest weight is exactly 1: no overflow, no total underflow.
    weights = np.exp(logits - np.max(logits, axis=-1, keepdims=True))  # (K,) or (N, K)
    cumulative = np.cumsum(weights, axis=-1)
    if cumulative.ndim == 1:
        # One distribution for every draw: first k with C_k > u * C_{K-1}.
        indices = np.searchsorted(cumulative, uniforms * cumulative[-1], side="right")
    else:
        threshold = uniforms * cumulative[:, -1]  # (N,)
        indices = np.sum(cumulative <= threshold[:, None], axis=-1)
    indices = np.minimum(indices, logits.shape[-1] - 1).astype(np.int64)
    # Rounding can only push u * C_{K-1} up to C_{K-1} itself; if the clamped last state has zero
    # weight, step back to the last state of positive weight.
    last_positive = weights.shape[-1] - 1 - np.argmax(weights[..., ::-1] > 0, axis=-1)
    indices = np.minimum(indices, last_positive)
    return indices


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
