r"""The counter uniforms of :mod:`textsampling.torch.randomness` in one compiled loop on the CPU (numba).

The eager torch form of Philox4x32-10 is about a hundred tensor operations per step, each a pass over
memory with its own dispatch cost; the same function as one loop over the chains, compiled by numba
(LLVM) and vectorised, keeps the four words of a block in registers for the ten rounds and writes
only the two uniforms: over ten times faster than the torch operations on one CPU thread, and from
about 1e4 chains faster than ``torch.rand`` itself (``python benchmarks/bench_randomness.py``). The
loop runs on one thread (numba's parallel loops would share the cores with torch's own OpenMP threads).

For chain ``c`` at step ``t``, block ``j`` (uniforms ``2 j`` and ``2 j + 1``):

.. math::
    (w_0, w_1, w_2, w_3) = \mathrm{Philox4x32\text{-}10}\bigl((c \bmod 2^{32},\ \lfloor c / 2^{32} \rfloor,\ t,\ j),
    \ (s_{lo}, s_{hi})\bigr), \qquad
    u_{2j} = \frac{2 (w_0 2^{20} + \lfloor w_1 / 2^{12} \rfloor) + 1}{2^{53}}, \quad
    u_{2j+1} = \frac{2 (w_2 2^{20} + \lfloor w_3 / 2^{12} \rfloor) + 1}{2^{53}}

(Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3", SC'11), the NumPy reference's
:func:`textsampling.randomness.counter_uniforms` bit for bit: unsigned 64-bit integers hold the
32 x 32-bit products exactly, and the odd integer below :math:`2^{53}` converts to float64 exactly.
A float32 ``out`` receives the float64 uniform capped at :math:`1 - 2^{-24}` and then rounded to
nearest: the same number as rounding first and clamping to :math:`1 - 2^{-24}` after, as the reference
does (rounding is monotone and keeps the cap, a float32: at or above the cap both give the cap, below
it both give the rounded uniform, at most the cap), in the same pass instead of one more over the
uniforms. tests/test_twin_randomness.py checks it against the
reference and the torch operations.

This module imports numba, an optional dependency (``pip install "textsampling[fast]"``);
:mod:`textsampling.torch.randomness` imports it only when it is installed.
"""

import numba
import numpy as np

from textsampling.randomness import PHILOX_M0, PHILOX_M1, PHILOX_ROUNDS, PHILOX_W0, PHILOX_W1

__all__ = ["counter_uniforms_into", "one_step_uniforms_into"]

# Every constant unsigned: numba, like NumPy, turns uint64 mixed with a signed integer into float64.
# numba bakes these globals into the machine code it caches on disk, and renews that cache only when
# this file changes: a change of the constants in textsampling.randomness must touch this file too.
_M0 = np.uint64(PHILOX_M0)
_M1 = np.uint64(PHILOX_M1)
_W0 = np.uint64(PHILOX_W0)
_W1 = np.uint64(PHILOX_W1)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_SHIFT21 = np.uint64(21)
_SHIFT11 = np.uint64(11)
_ONE = np.uint64(1)
_TWO_POW_MINUS_53 = 2.0**-53


def jit_cached(**options):
    """``numba.njit(cache=True, **options)``, or without the disk cache where numba finds no writable place.

    (A read-only site-packages and no writable home: numba then refuses ``cache=True`` when the function
    is decorated; compiling once per process is slower to start, the same code.)
    """

    def decorate(function):
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(cache=False, **options)(function)

    return decorate


@jit_cached(inline="always")
def philox_block(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of the counter ``(c0, c1, c2, c3)`` with key ``(k0, k1)``, all uint64 below ``2**32``."""
    for _ in range(PHILOX_ROUNDS):
        product0 = _M0 * c0  # exact: both factors below 2**32
        product1 = _M1 * c2
        c0 = (product1 >> _SHIFT32) ^ c1 ^ k0
        c1 = product1 & _MASK32
        c2 = (product0 >> _SHIFT32) ^ c3 ^ k1
        c3 = product0 & _MASK32
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


@jit_cached(inline="always")
def uniform_from_words(high, low):
    """``(2 (high 2**20 + low >> 12) + 1) 2**-53``: the float64 uniform of two 32-bit words (uint64)."""
    odd = (high << _SHIFT21) | (low >> _SHIFT11) | _ONE  # an odd integer below 2**53: exact in float64
    return np.float64(np.int64(odd)) * _TWO_POW_MINUS_53


@jit_cached(nogil=True, boundscheck=False)
def _block_into(even_row, odd_row, chain_index, step, key0, key1, block, cap):
    """Block ``block`` (uniforms ``2 block`` and ``2 block + 1``) of every chain at one step, into two rows,
    each uniform first capped at ``cap`` (float64).

    One loop per block, in a function of its own: with the loop over blocks around it in the same
    function, LLVM vectorised float32 rows after the first block four times slower (measured).
    """
    for n in range(chain_index.shape[0]):
        chain = np.uint64(chain_index[n])
        w0, w1, w2, w3 = philox_block(chain & _MASK32, chain >> _SHIFT32, step, block, key0, key1)
        even_row[n] = min(uniform_from_words(w0, w1), cap)
        odd_row[n] = min(uniform_from_words(w2, w3), cap)


@jit_cached(nogil=True, boundscheck=False)
def _block_per_step_into(even_row, odd_row, chain_index, steps, key0, key1, block, cap):
    """:func:`_block_into` with a step per chain."""
    for n in range(chain_index.shape[0]):
        chain = np.uint64(chain_index[n])
        w0, w1, w2, w3 = philox_block(chain & _MASK32, chain >> _SHIFT32, np.uint64(steps[n]), block, key0, key1)
        even_row[n] = min(uniform_from_words(w0, w1), cap)
        odd_row[n] = min(uniform_from_words(w2, w3), cap)


@jit_cached(nogil=True, boundscheck=False)
def one_step_uniforms_into(out, chain_index, step, key0, key1, cap):
    """Write the uniforms of chain ``chain_index[n]`` at step ``step`` into column ``n`` of ``out``.

    Parameters
    ----------
    out : numpy.ndarray of float32 or float64, shape (2 num_blocks, N), C-contiguous
        Rows ``2 j`` and ``2 j + 1`` receive the uniforms of block ``j``: each uniform is contiguous over
        the chains (the samplers' uniform-major layout). A float32 ``out`` receives them rounded to
        nearest, after the cap.
    chain_index : numpy.ndarray of int64, shape (N,), C-contiguous
        Chain indices in ``[0, 2**62)`` (checked by the caller).
    step : int
        The step, in ``[0, 2**32)``: one number for all chains, which lets LLVM vectorise the loop
        (a zero-stride array of steps made it four times slower).
    key0, key1 : int
        The seed's low and high 32-bit words.
    cap : float
        Each float64 uniform is replaced by ``min(u, cap)`` before it is stored: ``1 - 2**-24`` for a
        float32 ``out`` keeps the interval open there (rounding to nearest gives exactly 1.0 for
        ``u > 1 - 2**-25``), and the same as clamping after rounding; 1.0 for float64 (no change).
    """
    key0 = np.uint64(key0) & _MASK32
    key1 = np.uint64(key1) & _MASK32
    for block in range(out.shape[0] // 2):
        _block_into(
            out[2 * block], out[2 * block + 1], chain_index, np.uint64(step), key0, key1, np.uint64(block), cap
        )


@jit_cached(nogil=True, boundscheck=False)
def counter_uniforms_into(out, chain_index, steps, key0, key1, cap):
    """:func:`one_step_uniforms_into` with a step per column: ``steps`` int64, shape (N,), C-contiguous."""
    key0 = np.uint64(key0) & _MASK32
    key1 = np.uint64(key1) & _MASK32
    for block in range(out.shape[0] // 2):
        _block_per_step_into(
            out[2 * block], out[2 * block + 1], chain_index, steps, key0, key1, np.uint64(block), cap
        )
