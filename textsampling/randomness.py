r"""Explicit randomness: uniforms from a NumPy ``Generator`` or from a counter-based generator.

Every sampler in :mod:`textsampling.reference` splits a step into *drawing the randomness* — a
vector of uniforms in the open interval (0, 1) — and a *deterministic transition given those
uniforms*. This module supplies the uniforms.

Two sources are supported, behind one function :func:`draw_uniforms`:

``numpy.random.Generator``
    The ordinary NumPy generator. Same seed, same result; but the numbers a chain receives depend
    on the order in which chains and steps draw from the shared stream.

:class:`CounterGenerator`
    A counter-based generator (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3",
    SC'11): the uniforms of draw ``j`` at step ``t`` of chain ``c`` are a pure function
    ``Philox4x32-10(counter=(c_lo, c_hi, t, j), key=(seed_lo, seed_hi))``. Chain ``c`` therefore
    sees the same numbers whatever the batch size, whichever chains run beside it, and on whichever
    device: :mod:`textsampling.torch.randomness` implements the identical function in torch.

Philox4x32-10 rounds, on 32-bit words, with multipliers :math:`M_0, M_1` and Weyl constants
:math:`W_0, W_1`:

.. math::
    (hi_0, lo_0) = M_0 \cdot c_0,\quad (hi_1, lo_1) = M_1 \cdot c_2,\quad
    c \leftarrow (hi_1 \oplus c_1 \oplus k_0,\ lo_1,\ hi_0 \oplus c_3 \oplus k_1,\ lo_0),\quad
    k \leftarrow (k_0 + W_0,\ k_1 + W_1).

Each block of four 32-bit words gives two float64 uniforms with 52 random bits each,
:math:`u = (a \cdot 2^{20} + b + 1/2) / 2^{52}` with ``a`` one whole word and ``b`` the top 20
bits of the next, computed exactly in float64, so ``0 < u < 1`` always and ``log(u)`` is finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from textsampling._validation import check_logits

__all__ = [
    "CounterGenerator",
    "integer_from_uniform",
    "normal_from_uniforms",
    "categorical_from_uniforms",
    "draw_uniforms_for_steps",
    "iterate_step_uniforms",
    "philox4x32",
    "counter_uniforms",
    "check_seed",
    "draw_uniforms",
    "as_generator",
]

_MASK32 = np.uint64(0xFFFFFFFF)
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10
_TWO_POW_52 = float(2**52)


def philox4x32(counter, key, rounds: int = PHILOX_ROUNDS) -> np.ndarray:
    """Philox4x32 block function (Random123), vectorised over leading axes.

    Parameters
    ----------
    counter : array_like of int, shape (..., 4)
        Four 32-bit counter words per block.
    key : array_like of int, shape (..., 2)
        Two 32-bit key words, broadcast against ``counter``.
    rounds : int
        Number of rounds; 10 is the standard, crush-resistant choice.

    Returns
    -------
    numpy.ndarray of uint64, shape (..., 4)
        Four 32-bit output words per block (held in uint64).
    """
    counter = np.asarray(counter, dtype=np.uint64) & _MASK32
    key = np.asarray(key, dtype=np.uint64) & _MASK32
    words = _philox_rounds(*(counter[..., i] for i in range(4)), key[..., 0], key[..., 1], rounds)
    return np.stack(words, axis=-1)


def _philox_rounds(c0, c1, c2, c3, k0, k1, rounds: int = PHILOX_ROUNDS):
    """The rounds of :func:`philox4x32` on four uint64 arrays of 32-bit words (they and the keys broadcast).

    The first round broadcasts; the later ones write into buffers allocated once (``out=`` and in-place
    operations): the same integer operations, about twice as fast as allocating each result. Returns
    four fresh arrays of the broadcast shape, each word in ``[0, 2**32)``.
    """
    m0, m1 = np.uint64(PHILOX_M0), np.uint64(PHILOX_M1)
    w0, w1 = np.uint64(PHILOX_W0), np.uint64(PHILOX_W1)
    shift = np.uint64(32)
    shape = np.broadcast_shapes(np.shape(c0), np.shape(c1), np.shape(c2), np.shape(c3), np.shape(k0), np.shape(k1))
    if rounds == 0:
        return tuple(np.array(np.broadcast_to(word, shape)) for word in (c0, c1, c2, c3))
    # The 32x32 -> 64-bit products fit exactly in uint64.
    product0, product1 = m0 * c0, m1 * c2
    words = ((product1 >> shift) ^ c1 ^ k0, product1 & _MASK32, (product0 >> shift) ^ c3 ^ k1, product0 & _MASK32)
    c0, c1, c2, c3 = (np.array(np.broadcast_to(word, shape)) for word in words)  # fresh, contiguous
    k0, k1 = (k0 + w0) & _MASK32, (k1 + w1) & _MASK32
    product0, product1, high = np.empty(shape, np.uint64), np.empty(shape, np.uint64), np.empty(shape, np.uint64)
    for _ in range(rounds - 1):
        np.multiply(c0, m0, out=product0)
        np.multiply(c2, m1, out=product1)
        # new c0 = hi1 ^ c1 ^ k0 and new c2 = hi0 ^ c3 ^ k1, built in the buffers of c1 and c3
        c1 ^= np.right_shift(product1, shift, out=high)
        c1 ^= k0
        c3 ^= np.right_shift(product0, shift, out=high)
        c3 ^= k1
        # new c1 = lo1, new c3 = lo0, built in the product buffers; the old c0, c2 buffers are free
        product1 &= _MASK32
        product0 &= _MASK32
        c0, c1, c2, c3, product0, product1 = c1, product1, c3, product0, c0, c2
        k0, k1 = (k0 + w0) & _MASK32, (k1 + w1) & _MASK32
    return c0, c1, c2, c3


def check_seed(seed) -> int:
    """``seed`` as a Python int in ``[0, 2**64)`` (the Philox key), or a TypeError/ValueError naming it.

    Shared by :class:`CounterGenerator` and its torch twin, so both refuse the same seeds.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int in [0, 2**64), got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an int in [0, 2**64), got {seed}")
    return seed


def _check_chain_index(chain_index) -> np.ndarray:
    chain_index = np.asarray(chain_index)
    if chain_index.dtype.kind not in "iu":
        raise TypeError(f"chain_index must hold integers, got dtype {chain_index.dtype}")
    if np.any(chain_index < 0) or np.any(chain_index >= 2**62):
        raise ValueError("chain_index must lie in [0, 2**62)")
    return chain_index.astype(np.uint64)


def _check_step(step) -> np.ndarray:
    step = np.asarray(step)
    if step.dtype.kind not in "iu":
        raise TypeError(f"step must hold integers, got dtype {step.dtype}")
    if np.any(step < 0) or np.any(step >= 2**32):
        raise ValueError("step must lie in [0, 2**32)")
    return step.astype(np.uint64)


def counter_uniforms(seed: int, chain_index, step, num_uniforms: int) -> np.ndarray:
    """Uniforms in (0, 1) that depend only on ``(seed, chain_index, step)``.

    Parameters
    ----------
    seed : int
        Key of the generator, in ``[0, 2**64)``.
    chain_index : int or array_like of int
        Index of each chain, in ``[0, 2**62)``.
    step : int or array_like of int
        Step number, in ``[0, 2**32)``; broadcast against ``chain_index``.
    num_uniforms : int
        How many uniforms each (chain, step) receives.

    Returns
    -------
    numpy.ndarray of float64, shape ``broadcast(chain_index, step).shape + (num_uniforms,)``
    """
    seed = check_seed(seed)
    if not isinstance(num_uniforms, (int, np.integer)) or num_uniforms < 0:
        raise ValueError(f"num_uniforms must be a non-negative int, got {num_uniforms!r}")
    chain_index, step = np.broadcast_arrays(_check_chain_index(chain_index), _check_step(step))
    num_blocks = (int(num_uniforms) + 1) // 2
    block = np.arange(num_blocks, dtype=np.uint64)
    # counter words: (chain low, chain high, step, block), one block per uniform pair, shape (..., num_blocks)
    words = _philox_rounds(
        (chain_index & _MASK32)[..., None],
        (chain_index >> np.uint64(32))[..., None],
        step[..., None],
        block,
        np.uint64(seed & 0xFFFFFFFF),
        np.uint64(seed >> 32),
    )
    # 52 bits per uniform: 32 from one word, 20 from the next. Every operation is exact in
    # float64 (x + 1/2 < 2**52 needs only 53 bits), so 0 < u < 1 holds bit for bit.
    uniforms = np.empty(words[0].shape + (2,), dtype=np.float64)  # (..., num_blocks, 2)
    for column, (high, low) in enumerate(((words[0], words[1]), (words[2], words[3]))):
        uniforms[..., column] = high
        uniforms[..., column] *= 1048576.0
        uniforms[..., column] += low >> np.uint64(12)
    uniforms += 0.5
    uniforms /= _TWO_POW_52
    uniforms = uniforms.reshape(uniforms.shape[:-2] + (2 * num_blocks,))
    return uniforms[..., : int(num_uniforms)]


@dataclass(frozen=True)
class CounterGenerator:
    """Per-chain reproducible source of uniforms (Philox4x32-10 on ``(seed, chain, step)``).

    Parameters
    ----------
    seed : int
        Key of the generator.
    chain_index : int or array_like of int
        The chain (or chains) this generator serves; step ``t`` of chain ``c`` always receives
        ``counter_uniforms(seed, c, t, k)``.
    """

    seed: int
    chain_index: object = 0

    def __post_init__(self):
        check_seed(self.seed)
        _check_chain_index(self.chain_index)

    def uniforms(self, step: int, num_uniforms: int) -> np.ndarray:
        """Uniforms of step ``step``: shape ``chain_index.shape + (num_uniforms,)``."""
        return counter_uniforms(self.seed, self.chain_index, step, num_uniforms)


def as_generator(rng) -> np.random.Generator | CounterGenerator:
    """Check that ``rng`` is an explicit source of randomness and return it.

    Accepts a :class:`numpy.random.Generator` or a :class:`CounterGenerator`. Integers are
    refused on purpose: the caller states which generator, so no code seeds a global stream.
    """
    if isinstance(rng, (np.random.Generator, CounterGenerator)):
        return rng
    raise TypeError(
        "rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)) or a "
        f"textsampling.randomness.CounterGenerator, got {type(rng).__name__}"
    )


def draw_uniforms(rng, step: int, num_uniforms: int) -> np.ndarray:
    """Draw the uniforms of one step from either kind of generator.

    Parameters
    ----------
    rng : numpy.random.Generator or CounterGenerator
        The source. A NumPy generator ignores ``step`` and advances its stream.
    step : int
        Step number (used by the counter-based generator).
    num_uniforms : int
        How many uniforms.

    Returns
    -------
    numpy.ndarray of float64, in the open interval (0, 1)
        Shape ``(num_uniforms,)`` for a NumPy generator or a scalar chain index;
        ``chain_index.shape + (num_uniforms,)`` for a counter generator over several chains.
    """
    rng = as_generator(rng)
    if isinstance(rng, CounterGenerator):
        return rng.uniforms(step, num_uniforms)
    uniforms = rng.random(num_uniforms)
    # Generator.random lies in [0, 1); an exact 0 would make log(u) = -inf. Map it to the
    # smallest positive float so that every sampler may take log(u) without a special case.
    return np.where(uniforms > 0.0, uniforms, np.finfo(np.float64).tiny)


# ----------------------------------------------------------------------------- uniforms -> variates
# The rules every sampler, reference and twin, uses to turn uniforms into integers, normals and
# categories (ARCHITECTURE.md, "uniform roles"); the torch twin has the same rules on tensors.
def integer_from_uniform(uniforms, num_values: int) -> np.ndarray:
    """``floor(u * n)`` clamped to ``n - 1``: a uniform integer in ``0..n-1`` from ``u`` in (0, 1)."""
    uniforms = np.asarray(uniforms, dtype=np.float64)
    # The clamp guards u * n rounding up to n when u is the largest double below 1.
    return np.minimum(np.floor(uniforms * num_values), num_values - 1).astype(np.int64)


def normal_from_uniforms(first, second) -> np.ndarray:
    r"""Box–Muller: :math:`z = \sqrt{-2 \log u_1}\, \cos(2 \pi u_2)` is standard normal.

    Only the cosine branch is used, so each normal costs exactly two uniforms; ``u_1 > 0`` keeps the
    logarithm finite.
    """
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    return np.sqrt(-2.0 * np.log(first)) * np.cos(2.0 * np.pi * second)


def draw_uniforms_for_steps(rng, first_step: int, num_steps: int, num_uniforms: int) -> np.ndarray:
    """The uniforms of steps ``first_step .. first_step + num_steps - 1`` at once, shape (num_steps, k).

    Row ``t`` equals ``draw_uniforms(rng, first_step + t, k)``: a NumPy generator's stream is read in
    order (one call of ``random(n * k)`` gives the same numbers as ``n`` calls of ``random(k)``), and a
    :class:`~textsampling.randomness.CounterGenerator` (one chain) is a pure function of the step.
    """
    rng = as_generator(rng)
    if isinstance(rng, CounterGenerator):
        if np.ndim(rng.chain_index) != 0:
            raise ValueError("rng must serve a single chain (a scalar chain_index) in the reference samplers")
        steps = np.arange(first_step, first_step + num_steps, dtype=np.int64)
        return counter_uniforms(rng.seed, rng.chain_index, steps, num_uniforms).reshape(num_steps, num_uniforms)
    uniforms = rng.random(num_steps * num_uniforms).reshape(num_steps, num_uniforms)
    # Same guard as draw_uniforms: Generator.random may return exactly 0.
    return np.where(uniforms > 0.0, uniforms, np.finfo(np.float64).tiny)


def iterate_step_uniforms(rng, first_step: int, num_steps: int, num_uniforms: int, block_size: int = 4096):
    """Yield the uniforms of steps ``first_step, first_step + 1, ...`` one row at a time.

    Draws them ``block_size`` steps at a time with :func:`draw_uniforms_for_steps`, so a long chain
    neither holds all its uniforms in memory nor pays one generator call per step.
    """
    for block_start in range(0, num_steps, block_size):
        block = draw_uniforms_for_steps(
            rng, first_step + block_start, min(block_size, num_steps - block_start), num_uniforms
        )
        yield from block


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
