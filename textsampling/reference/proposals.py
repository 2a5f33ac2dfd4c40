r"""Proposal distributions: local moves for Metropolis–Hastings, independent draws for importance and
rejection sampling.

**MH proposals** (part 2 of the series, spaces.ac.cn/archives/8084) move from ``x`` to a candidate ``y``
with probability :math:`q(y \mid x)`. Each is an object with

* ``num_uniforms`` — how many uniforms in (0, 1) one proposal consumes;
* ``propose(uniforms, x) -> (y, log_q_ratio)``, deterministic given the uniforms, with the Hastings term
  :math:`\log q(x \mid y) - \log q(y \mid x)`;
* for discrete ones, ``log_prob(y, x)`` :math:`= \log q(y \mid x)` and ``log_q_ratio(y, x)``, the very
  function ``propose`` uses, so :func:`~textsampling.reference.metropolis_hastings.transition_matrix`
  builds the exact kernel from the same code.

**Independent proposals** (part 1) draw whole states: ``sample(uniforms (N, k)) -> states (N, ...)`` and
``log_prob(states) -> (N,)`` (normalised, so that importance weights :math:`\rho / q` estimate
:math:`Z`).

Uniform conventions (ARCHITECTURE.md): an integer in ``0..n-1`` is ``floor(u n)`` clamped to ``n - 1``;
a category is the inverse-CDF rule of :mod:`textsampling.reference.categorical`; a standard normal is
Box–Muller on a pair, :math:`z = \sqrt{-2 \log u_1} \cos(2 \pi u_2)` (Box & Muller 1958), using the two
uniforms of dimension ``d`` at positions ``2d`` and ``2d + 1``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from textsampling._validation import check_int, check_logits, check_positive, check_uniforms
from textsampling.randomness import categorical_from_uniforms, integer_from_uniform, normal_from_uniforms

__all__ = [
    "DiscreteProposal",
    "UniformCategoricalProposal",
    "RingStepProposal",
    "SingleSiteProposal",
    "IndependenceProposal",
    "GaussianRandomWalkProposal",
    "IndependentCategorical",
    "IndependentUniformSequences",
    "IndependentGaussian",
]


def _check_state_int(x, name: str, upper: int) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {x.dtype}")
    if np.any((x < 0) | (x >= upper)):
        raise ValueError(f"{name} must hold values in 0..{upper - 1}, got {x.tolist()}")
    return x.astype(np.int64)


# ----------------------------------------------------------------------------- MH proposals
class DiscreteProposal:
    """Base class of discrete MH proposals: subclasses implement ``num_uniforms``, ``propose``,
    ``log_prob``. The Hastings term is derived from ``log_prob`` unless a subclass has a cheaper one."""

    num_uniforms: int = 1

    def log_prob(self, y, x) -> float:
        """:math:`\\log q(y \\mid x)`."""
        raise NotImplementedError

    def log_q_ratio(self, y, x) -> float:
        """:math:`\\log q(x \\mid y) - \\log q(y \\mid x)` (``-inf`` when the reverse move is impossible)."""
        return float(self.log_prob(x, y) - self.log_prob(y, x))

    def propose(self, uniforms, x):
        raise NotImplementedError


class UniformCategoricalProposal(DiscreteProposal):
    """Symmetric proposal: ``y`` uniform over ``0..K-1`` (``x`` itself included), so the q-ratio is 0.

    Uniforms: ``uniforms[0]`` picks ``y = floor(u K)``.
    """

    num_uniforms = 1

    def __init__(self, num_categories: int):
        self.num_categories = check_int(num_categories, "num_categories", minimum=1)

    def propose(self, uniforms, x):
        uniforms = check_uniforms(uniforms, self.num_uniforms)
        _check_state_int(x, "x", self.num_categories)
        y = integer_from_uniform(uniforms[0], self.num_categories)
        return y, 0.0  # q(y | x) = q(x | y) = 1 / K

    def log_prob(self, y, x) -> float:
        inside = 0 <= int(y) < self.num_categories and 0 <= int(x) < self.num_categories
        return -np.log(self.num_categories) if inside else -np.inf

    def log_q_ratio(self, y, x) -> float:
        return 0.0


class RingStepProposal(DiscreteProposal):
    r"""Asymmetric proposal on a ring of ``K >= 3`` categories: ``y = x + 1 mod K`` with probability
    ``forward_probability`` = :math:`a`, else ``y = x - 1 mod K``.

    The Hastings term of a forward step is :math:`\log(1 - a) - \log a` (the reverse step goes
    backward), nonzero unless :math:`a = 1/2`: the proposal that exposes a missing correction.
    Uniforms: forward iff ``uniforms[0] < a``.
    """

    num_uniforms = 1

    def __init__(self, num_categories: int, forward_probability: float):
        self.num_categories = check_int(num_categories, "num_categories", minimum=3)
        forward_probability = check_positive(forward_probability, "forward_probability")
        if not forward_probability < 1:
            raise ValueError(f"forward_probability must lie in (0, 1), got {forward_probability}")
        self.forward_probability = forward_probability
        self._log_forward = np.log(forward_probability)
        self._log_backward = np.log1p(-forward_probability)

    def propose(self, uniforms, x):
        uniforms = check_uniforms(uniforms, self.num_uniforms)
        x = _check_state_int(x, "x", self.num_categories)
        forward = uniforms[0] < self.forward_probability
        y = np.int64((x + (1 if forward else -1)) % self.num_categories)
        return y, self.log_q_ratio(y, x)

    def log_prob(self, y, x) -> float:
        offset = (int(y) - int(x)) % self.num_categories
        if offset == 1:
            return self._log_forward
        if offset == self.num_categories - 1:
            return self._log_backward
        return -np.inf


class SingleSiteProposal(DiscreteProposal):
    r"""Sequence proposal: a uniform position :math:`i`, then a new token :math:`v \sim r_i`.

    .. math::
        q(y \mid x) = \frac1L\, r_i(y_i) \ \text{if } y \text{ differs from } x \text{ only at } i,
        \qquad q(x \mid x) = \frac1L \sum_i r_i(x_i),

    so the Hastings term of a change at ``i`` is :math:`\log r_i(x_i) - \log r_i(y_i)` (the position
    choice is uniform and cancels). Redrawing the current token leaves ``x`` unchanged.

    Parameters
    ----------
    vocab_size, length : int
    token_logits : array_like, shape (V,) or (L, V), optional
        Unnormalised log-probabilities of the new token (per position when 2-D); uniform by default.

    Uniforms: ``uniforms[0]`` picks the position ``floor(u L)``, ``uniforms[1]`` the token (inverse CDF).
    """

    num_uniforms = 2

    def __init__(self, vocab_size: int, length: int, token_logits=None):
        self.vocab_size = check_int(vocab_size, "vocab_size", minimum=1)
        self.length = check_int(length, "length", minimum=1)
        if token_logits is None:
            token_logits = np.zeros(self.vocab_size)
        token_logits = check_logits(token_logits, name="token_logits")
        if token_logits.shape[-1] != self.vocab_size or (
            token_logits.ndim == 2 and token_logits.shape[0] != self.length
        ):
            raise ValueError(
                f"token_logits must have shape ({self.vocab_size},) or ({self.length}, {self.vocab_size}), "
                f"got {token_logits.shape}"
            )
        token_logits = np.broadcast_to(token_logits, (self.length, self.vocab_size))
        # Normalised log r_i(v), one row per position.
        self.token_log_probs = token_logits - logsumexp(token_logits, axis=-1, keepdims=True)

    def propose(self, uniforms, x):
        uniforms = check_uniforms(uniforms, self.num_uniforms)
        x = self._check_sequence(x, "x")
        position = int(integer_from_uniform(uniforms[0], self.length))
        token = categorical_from_uniforms(uniforms[1:2], self.token_log_probs[position])[0]
        y = x.copy()
        y[position] = token
        # Only position i can change; the 1/L position factors cancel.
        log_q_ratio = self.token_log_probs[position, x[position]] - self.token_log_probs[position, token]
        return y, float(log_q_ratio)

    def log_prob(self, y, x) -> float:
        x = self._check_sequence(x, "x")
        y = np.asarray(y)
        if y.shape != x.shape or np.any((y < 0) | (y >= self.vocab_size)):
            return -np.inf
        changed = np.flatnonzero(y != x)
        positions = np.arange(self.length)
        if changed.size == 0:
            # Staying put: any position may redraw its own token.
            return float(logsumexp(self.token_log_probs[positions, x]) - np.log(self.length))
        if changed.size == 1:
            i = changed[0]
            return float(self.token_log_probs[i, y[i]] - np.log(self.length))
        return -np.inf

    def log_q_ratio(self, y, x) -> float:
        changed = np.flatnonzero(np.asarray(y) != np.asarray(x))
        if changed.size == 0:
            return 0.0
        if changed.size == 1:
            i = changed[0]
            return float(self.token_log_probs[i, x[i]] - self.token_log_probs[i, y[i]])
        return float(self.log_prob(x, y) - self.log_prob(y, x))

    def _check_sequence(self, x, name):
        x = _check_state_int(x, name, self.vocab_size)
        if x.shape != (self.length,):
            raise ValueError(f"{name} must have shape ({self.length},), got {x.shape}")
        return x


class IndependenceProposal(DiscreteProposal):
    r"""MH with an independent proposal :math:`q(y \mid x) = q(y)` (the independence sampler).

    The Hastings term :math:`\log q(x) - \log q(y)` never cancels unless ``q`` is uniform. Wraps any
    independent proposal of this module (``sample`` + ``log_prob``); uses its ``num_uniforms``.
    """

    def __init__(self, independent):
        for attribute in ("num_uniforms", "sample", "log_prob"):
            if not hasattr(independent, attribute):
                raise TypeError(
                    f"independent must have num_uniforms, sample and log_prob (e.g. IndependentCategorical); "
                    f"{type(independent).__name__} lacks {attribute}"
                )
        self.independent = independent
        self.num_uniforms = independent.num_uniforms

    def propose(self, uniforms, x):
        uniforms = check_uniforms(uniforms, self.num_uniforms)
        y = self.independent.sample(uniforms[None])[0]
        return y, self.log_q_ratio(y, x)

    def log_prob(self, y, x) -> float:
        return float(self.independent.log_prob(np.asarray(y)[None])[0])


class GaussianRandomWalkProposal:
    r"""Continuous symmetric proposal :math:`y = x + \sigma z`, :math:`z \sim N(0, I_d)` (q-ratio 0).

    Uniforms: ``2 d``; dimension ``j`` uses Box–Muller on ``uniforms[2j], uniforms[2j + 1]``.

    Parameters
    ----------
    scale : float
        Step size :math:`\sigma > 0`.
    dimension : int
        ``d``; states have shape ``()`` when ``d == 1`` or ``(d,)``.
    """

    def __init__(self, scale: float, dimension: int = 1):
        self.scale = check_positive(scale, "scale")
        self.dimension = check_int(dimension, "dimension", minimum=1)
        self.num_uniforms = 2 * self.dimension

    def propose(self, uniforms, x):
        uniforms = check_uniforms(uniforms, self.num_uniforms)
        x = np.asarray(x, dtype=np.float64)
        if x.size != self.dimension:
            raise ValueError(f"x must have {self.dimension} entries (dimension), got shape {x.shape}")
        z = normal_from_uniforms(uniforms[0::2], uniforms[1::2])  # (d,)
        return x + self.scale * z.reshape(x.shape), 0.0


# ----------------------------------------------------------------------------- independent proposals
class IndependentCategorical:
    """Independent draws from ``softmax(logits)`` over ``0..K-1`` by the inverse-CDF rule (1 uniform each)."""

    num_uniforms = 1

    def __init__(self, logits):
        logits = check_logits(logits, allow_batch=False)
        self.num_categories = logits.shape[0]
        self.log_probs = logits - logsumexp(logits)  # normalised log q(k)

    def sample(self, uniforms) -> np.ndarray:
        uniforms = _check_sample_uniforms(uniforms, self.num_uniforms)
        return categorical_from_uniforms(uniforms[:, 0], self.log_probs)

    def log_prob(self, states) -> np.ndarray:
        states = np.asarray(states)
        out = np.full(states.shape, -np.inf)
        inside = (states >= 0) & (states < self.num_categories)
        out[inside] = self.log_probs[states[inside]]
        return out


class IndependentUniformSequences:
    r"""Independent uniform sequences of length ``L`` over ``V`` tokens: :math:`\log q = -L \log V`.

    Uniforms: ``L`` per sequence, token ``i`` is ``floor(uniforms[i] V)``.
    """

    def __init__(self, vocab_size: int, length: int):
        self.vocab_size = check_int(vocab_size, "vocab_size", minimum=1)
        self.length = check_int(length, "length", minimum=1)
        self.num_uniforms = self.length

    def sample(self, uniforms) -> np.ndarray:
        uniforms = _check_sample_uniforms(uniforms, self.num_uniforms)
        return integer_from_uniform(uniforms, self.vocab_size)  # (N, L)

    def log_prob(self, states) -> np.ndarray:
        states = np.asarray(states)
        if states.ndim != 2 or states.shape[1] != self.length:
            raise ValueError(f"states must have shape (N, {self.length}), got {states.shape}")
        inside = np.all((states >= 0) & (states < self.vocab_size), axis=1)
        return np.where(inside, -self.length * np.log(self.vocab_size), -np.inf)


class IndependentGaussian:
    r"""Independent :math:`N(\mu, \sigma^2 I_d)` draws by Box–Muller (2 uniforms per dimension).

    States have shape ``(N,)`` when ``d == 1`` and ``(N, d)`` otherwise.
    """

    def __init__(self, mean, scale: float):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        if self.mean.ndim != 1 or not np.all(np.isfinite(self.mean)):
            raise ValueError(f"mean must be a finite scalar or 1-D array, got {mean!r}")
        self.scale = check_positive(scale, "scale")
        self.dimension = self.mean.shape[0]
        self.num_uniforms = 2 * self.dimension

    def sample(self, uniforms) -> np.ndarray:
        uniforms = _check_sample_uniforms(uniforms, self.num_uniforms)
        z = normal_from_uniforms(uniforms[:, 0::2], uniforms[:, 1::2])  # (N, d)
        states = self.mean + self.scale * z
        return states[:, 0] if self.dimension == 1 else states

    def log_prob(self, states) -> np.ndarray:
        states = np.asarray(states, dtype=np.float64).reshape(-1, self.dimension)
        squared = np.sum((states - self.mean) ** 2, axis=1) / self.scale**2
        return -0.5 * squared - self.dimension * (np.log(self.scale) + 0.5 * np.log(2 * np.pi))


def _check_sample_uniforms(uniforms, num_uniforms):
    uniforms = check_uniforms(uniforms, num_uniforms)
    if uniforms.ndim != 2:
        raise ValueError(f"uniforms must have shape (N, {num_uniforms}), got {uniforms.shape}")
    return uniforms
