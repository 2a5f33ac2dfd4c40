r"""Resampling: multinomial, stratified, systematic and residual, as functions of uniforms.

Given normalised weights :math:`W_1, \dots, W_N` (here from log-weights, normalised with
``logsumexp``), a resampling scheme draws ancestor indices :math:`A_1, \dots, A_N` whose offspring
counts :math:`O_i = \#\{n : A_n = i\}` are *unbiased*:

.. math::
    \mathbb E[O_i] = N W_i \qquad \text{for every } i,

so :math:`\frac1N \sum_n f(x_{A_n})` is an unbiased estimate of :math:`\sum_i W_i f(x_i)` and the
evidence estimate of SMC stays unbiased (Chopin & Papaspiliopoulos 2020, *An Introduction to
Sequential Monte Carlo*, ch. 9). With cumulative weights :math:`C_k = \sum_{i \le k} W_i`, every scheme
here is the inverse CDF :math:`A(v) = \min\{k : C_k > v\}` applied to points :math:`v \in (0, 1)`:

multinomial
    :math:`v_n = u_n`, :math:`N` independent uniforms: the :math:`A_n` are i.i.d. with law :math:`W`
    (in the order of the uniforms, not sorted).
stratified
    :math:`v_n = (n + u_n) / N`: one independent uniform in each stratum :math:`[n/N, (n+1)/N)`.
systematic
    :math:`v_n = (n + u) / N`: a *single* uniform shifts an evenly spaced comb; the cheapest and
    usually the least noisy, though not always (Douc, Cappé & Moulines 2005).
residual
    :math:`\lfloor N W_i \rfloor` copies of each :math:`i` first (deterministic), then the
    :math:`R = N - \sum_i \lfloor N W_i \rfloor` remaining ancestors multinomially from the residual
    weights :math:`(N W_i - \lfloor N W_i \rfloor) / R`.

Why each is unbiased: for multinomial :math:`P(A_n = i) = C_i - C_{i-1} = W_i`; for stratified
:math:`P(A_n = i) = N\,|[n/N, (n+1)/N) \cap [C_{i-1}, C_i)|` and the strata tile :math:`[0, 1)`, so the
sum over :math:`n` is :math:`N W_i`; systematic has the same marginal law for each :math:`v_n`; residual
gives :math:`\lfloor N W_i\rfloor + R \cdot (N W_i - \lfloor N W_i\rfloor)/R`. ``tests`` check these
*exactly* on the code: the count is piecewise constant in the uniforms, with breakpoints where a point
:math:`v_n` crosses a :math:`C_k`, so its expectation is a finite sum over intervals.

Uniforms (the package's convention: a step is a deterministic function of uniforms in (0, 1)):
``num_uniforms(N, scheme)`` is :math:`N` for multinomial, stratified and residual (residual uses the
first :math:`R \le N - 1` of them) and 1 for systematic. The inverse CDF is the package's categorical
rule: the first :math:`k` with :math:`C_k > v \cdot C_N` on *unnormalised* cumulative weights
:math:`\exp(\log w - \max \log w)`, so a particle of weight 0 (log-weight ``-inf``) is never chosen.

The ``particles`` package (Chopin's companion code, ``particles/resampling.py``) implements the same
four schemes; ``tests/test_reference_resampling.py`` feeds both the same uniforms and checks that the
ancestors agree.
"""

from __future__ import annotations

import numpy as np

from textsampling._validation import check_int
from textsampling.randomness import as_generator, draw_uniforms

__all__ = [
    "SCHEMES",
    "check_scheme",
    "check_log_weights",
    "log_sum_exp",
    "num_uniforms",
    "normalized_weights",
    "effective_sample_size",
    "inverse_cdf",
    "points",
    "ancestors",
    "offspring_counts",
    "resample",
]

#: The resampling schemes, by name.
SCHEMES = ("multinomial", "stratified", "systematic", "residual")


def check_scheme(scheme) -> str:
    """``scheme`` if it names a scheme of :data:`SCHEMES`, else a ValueError listing them."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}")
    return scheme


def check_log_weights(log_weights, name: str = "log_weights") -> np.ndarray:
    """``log_weights`` as a non-empty 1-D float64 array with at least one finite entry, no NaN, no +inf."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    if log_weights.ndim != 1 or log_weights.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of log-weights, got shape {log_weights.shape}")
    if np.any(np.isnan(log_weights)):
        raise ValueError(f"{name} contains NaN; use -inf for a particle of weight zero")
    if np.any(log_weights == np.inf):
        raise ValueError(f"{name} contains +inf; log-weights must be finite or -inf")
    if np.all(log_weights == -np.inf):
        raise ValueError(f"{name} is -inf everywhere: every particle has weight zero, nothing to resample")
    return log_weights


def log_sum_exp(values, axis: int = -1) -> np.ndarray:
    r""":math:`\log \sum \exp` along ``axis`` with the maximum subtracted; ``-inf`` for an all ``-inf`` slice.

    Plain NumPy (``scipy.special.logsumexp`` costs ~50 µs a call, the bulk of a small SMC step).
    """
    values = np.asarray(values, dtype=np.float64)
    largest = np.max(values, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(largest), largest, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.sum(np.exp(values - shift), axis=axis, keepdims=True)) + shift
    return np.squeeze(total, axis=axis)


def num_uniforms(num_particles: int, scheme: str = "systematic") -> int:
    """Uniforms one resampling of ``num_particles`` particles consumes: 1 for systematic, else ``N``."""
    num_particles = check_int(num_particles, "num_particles", minimum=1)
    return 1 if check_scheme(scheme) == "systematic" else num_particles


def normalized_weights(log_weights) -> np.ndarray:
    r""":math:`W_i = \exp(\log w_i - \operatorname{logsumexp}(\log w))`, shape ``(N,)``."""
    log_weights = check_log_weights(log_weights)
    return np.exp(log_weights - log_sum_exp(log_weights))


def effective_sample_size(log_weights) -> float:
    r"""Kong's ESS :math:`(\sum w)^2 / \sum w^2 = 1 / \sum_i W_i^2`, in :math:`[1, N]`; 0 when every weight is 0.

    The one quantity SMC watches to decide when to resample (Kong, Liu & Wong 1994).
    """
    log_weights = np.asarray(log_weights, dtype=np.float64)
    if log_weights.size == 0 or np.all(log_weights == -np.inf):
        return 0.0
    log_total = log_sum_exp(log_weights)
    return float(np.exp(2.0 * log_total - log_sum_exp(2.0 * log_weights)))


def inverse_cdf(points_, log_weights) -> np.ndarray:
    r"""Ancestors :math:`A(v_n) = \min\{k : C_k > v_n C_N\}` for points ``v`` in (0, 1] (any order).

    The categorical rule of :func:`textsampling.randomness.categorical_from_uniforms`, on the
    cumulative sums of :math:`\exp(\log w - \max \log w)`; a zero weight is never chosen (its cumulative
    sum equals its predecessor's, which already exceeded :math:`v C_N`), and a point that rounds up to
    :math:`C_N` is given to the last particle of positive weight.
    """
    log_weights = check_log_weights(log_weights)
    points_ = np.asarray(points_, dtype=np.float64)
    weights = np.exp(log_weights - np.max(log_weights))  # (N,), the largest exactly 1
    cumulative = np.cumsum(weights)  # (N,)
    indices = np.searchsorted(cumulative, points_ * cumulative[-1], side="right")  # first C_k > v C_N
    last_positive = weights.size - 1 - int(np.argmax(weights[::-1] > 0))
    return np.minimum(indices, last_positive).astype(np.int64)


def points(uniforms, num_particles: int, scheme: str) -> np.ndarray:
    """The points :math:`v_n` in (0, 1] of ``scheme`` (not residual): ``u``, ``(n + u_n)/N`` or ``(n + u)/N``."""
    uniforms = np.asarray(uniforms, dtype=np.float64)
    strata = np.arange(num_particles, dtype=np.float64)
    if scheme == "multinomial":
        return uniforms[:num_particles]
    if scheme == "stratified":
        return (strata + uniforms[:num_particles]) / num_particles
    if scheme == "systematic":
        return (strata + uniforms[0]) / num_particles
    raise ValueError(f"points: scheme must be multinomial, stratified or systematic, got {scheme!r}")


def _check_uniforms(uniforms, count: int) -> np.ndarray:
    uniforms = np.asarray(uniforms, dtype=np.float64)
    if uniforms.ndim != 1 or uniforms.shape[0] < count:
        raise ValueError(f"uniforms must be a 1-D array of at least {count} values, got shape {uniforms.shape}")
    if np.any(~(uniforms > 0)) or np.any(~(uniforms < 1)):
        raise ValueError("uniforms must lie in the open interval (0, 1)")
    return uniforms


def ancestors(uniforms, log_weights, scheme: str = "systematic") -> np.ndarray:
    """Ancestor indices ``(N,)`` of ``scheme``, a deterministic function of ``uniforms``.

    Parameters
    ----------
    uniforms : array_like, shape (num_uniforms(N, scheme),)
        Uniforms in (0, 1). Multinomial: ``u_n`` drives ancestor ``n``; stratified: ``u_n`` places
        ancestor ``n`` in stratum ``n``; systematic: ``u_0`` shifts the comb; residual: ``u_r`` draws the
        ``r``-th residual ancestor (``r < R``; the rest are unused).
    log_weights : array_like, shape (N,)
        Unnormalised log-weights; ``-inf`` = weight zero (never chosen); NaN or all ``-inf`` raise.
    scheme : {"multinomial", "stratified", "systematic", "residual"}

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Multinomial: in the order of the uniforms; the others in increasing order (the residual copies
        first, then the residual draws in the order of their uniforms).
    """
    log_weights = check_log_weights(log_weights)
    scheme = check_scheme(scheme)
    num_particles = log_weights.shape[0]
    uniforms = _check_uniforms(uniforms, num_uniforms(num_particles, scheme))
    if scheme != "residual":
        return inverse_cdf(points(uniforms, num_particles, scheme), log_weights)
    # Residual: floor(N W_i) copies of i, then R draws from the residual weights N W_i - floor(N W_i).
    # N w_i / sum_j w_j with w = exp(log w - max) and the sum as the last cumulative sum (the twin does the
    # same operations): equal weights give exactly 1 copy each, not 0.999... (which floor would drop).
    weights = np.exp(log_weights - np.max(log_weights))  # (N,)
    scaled = num_particles * weights / np.cumsum(weights)[-1]  # (N,), N W_i
    copies = np.floor(scaled).astype(np.int64)  # (N,)
    deterministic = np.repeat(np.arange(num_particles), copies)
    num_residual = num_particles - deterministic.shape[0]
    if num_residual == 0:
        return deterministic
    residual = scaled - copies  # (N,), in [0, 1), sum R
    with np.errstate(divide="ignore"):
        residual_log_weights = np.log(residual)
    drawn = inverse_cdf(uniforms[:num_residual], residual_log_weights)
    return np.concatenate([deterministic, drawn])


def offspring_counts(ancestor_indices, num_particles: int) -> np.ndarray:
    """:math:`O_i = \\#\\{n : A_n = i\\}`, shape ``(num_particles,)``."""
    return np.bincount(np.asarray(ancestor_indices, dtype=np.int64), minlength=num_particles)


def resample(rng, log_weights, scheme: str = "systematic", step: int = 0) -> np.ndarray:
    """Draw the uniforms of ``step`` from ``rng`` and return :func:`ancestors` (a convenience)."""
    log_weights = check_log_weights(log_weights)
    uniforms = draw_uniforms(as_generator(rng), step, num_uniforms(log_weights.shape[0], scheme))
    return ancestors(uniforms, log_weights, scheme)
