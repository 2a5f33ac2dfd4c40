r"""Torch twin of :mod:`textsampling.randomness`: the same Philox4x32-10 counter uniforms, on any device.

:func:`counter_uniforms` computes, for every chain ``c`` of a tensor ``chain_index`` at step ``t``,

.. math::
    \mathrm{Philox4x32\text{-}10}\bigl(\text{counter} = (c_{lo}, c_{hi}, t, j),\ \text{key} = (s_{lo}, s_{hi})\bigr),

bit for bit the function of :func:`textsampling.randomness.counter_uniforms` (Salmon et al. 2011,
"Parallel random numbers: as easy as 1, 2, 3", SC'11). Chain ``c`` therefore receives the same
uniforms in NumPy, on a torch CPU and on a CUDA device, whatever the batch and whichever chains run
beside it: there is no stream to share, only a pure function of ``(seed, chain, step)``.

Torch has no unsigned 64-bit arithmetic on every device, so each 32-bit word lives in an ``int64``
tensor. The product :math:`P = M \cdot c` of a Philox round (two 32-bit numbers) needs 64 unsigned
bits; one ``int64`` multiplication gives exactly those bits, wrapped into two's complement
(:math:`P - 2^{64}` when :math:`P \ge 2^{63}`), because integer multiplication wraps modulo
:math:`2^{64}` on every torch device. Then

.. math::
    \mathrm{lo} = P \bmod 2^{32}, \qquad \mathrm{hi} = \lfloor P / 2^{32} \rfloor
    = (P_{\text{wrapped}} \gg 32) \mathbin{\&} (2^{32} - 1),

since, when it wrapped, the arithmetic shift gives :math:`\lfloor P / 2^{32} \rfloor - 2^{32}`, which
the mask brings back. Only the words that are multiplied need to be exact 32-bit numbers: the low
word travels unmasked (the product itself) and the high word with its sign bits, and one mask on each
new multiplied word clears both, since XOR acts bit by bit. A round is then two multiplications, two
shifts, four XORs and two masks; in eager mode they run in place in buffers reused across rounds.

Three ways to run the same operations:

* **numba** (the default on the CPU when numba is installed, ``pip install "textsampling[fast]"``):
  one loop over the chains compiled by numba, the four words of a block in registers for the ten
  rounds (:mod:`textsampling.torch._philox_numba`); on one thread faster than ``torch.rand`` from
  about 1e4 chains. The first call in a process compiles it, or loads it from numba's disk cache
  (about a second).
* **eager torch operations** (the default on other devices and without numba; ``numba=False``):
  about a hundred passes over memory per step, each a torch kernel; bit for bit the NumPy reference's
  ``uint64`` arithmetic (tests/test_twin_randomness.py).
* **compiled**, ``CounterGenerator(seed, chains, compiled=True)``: ``torch.compile`` fuses the ten
  rounds and the conversion to floats into one loop over the chains (vectorised C++ on the CPU, Triton
  on CUDA), several times faster than the torch operations from about 1e4 chains (``python
  benchmarks/bench_randomness.py``); on the CPU slower than numba's loop, so meant for CUDA or a CPU
  without numba.
  The first call compiles (dynamic shapes: once per dtype and number of uniform pairs, whatever the
  number of chains); the tests check it against NumPy bit for bit.

The float64 uniforms :math:`u = (a\,2^{20} + b + 1/2) / 2^{52} = (2 (a\,2^{20} + b) + 1)\, 2^{-53}` are
exact as in the reference (the odd integer below :math:`2^{53}` is formed in ``int64``, converted
exactly and scaled by a power of two); a float32 uniform is the float64 one rounded to nearest and
then clamped to the largest float32 below 1, so ``0 < u < 1`` holds in both dtypes.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import torch

from textsampling.randomness import PHILOX_M0, PHILOX_M1, PHILOX_ROUNDS, PHILOX_W0, PHILOX_W1, check_seed
from textsampling.torch._numba_loader import load_once
from textsampling.torch._validation import (
    check_float_dtype,
    check_same_device,
    check_same_dtype,
    check_tensor,
    raise_if,
    resolve_device,
    same_device,
)

__all__ = [
    "CounterGenerator",
    "integer_from_uniform",
    "normal_from_uniforms",
    "categorical_from_uniforms",
    "inverse_cdf",
    "inverse_cdf_and_totals",
    "cumulative_weights",
    "check_draw_arguments",
    "may_branch_on_values",
    "check_logits",
    "philox4x32",
    "counter_uniforms",
    "draw_uniforms",
    "check_num_chains",
    "draw_uniforms_for_steps",
    "as_generator",
    "largest_below_one",
    "numba_kernel_available",
]

_MASK32 = 0xFFFFFFFF
_TWO_POW_MINUS_53 = 2.0**-53
# Below this many Philox blocks the eager path allocates each result (measured faster on the CPU: fewer
# launches); from it on, it recycles buffers in place (about 1.5x faster at 1e5 blocks).
_IN_PLACE_MIN_BLOCKS = 2**15


def largest_below_one(dtype: torch.dtype) -> float:
    """The largest number of ``dtype`` below 1 (``1 - 2**-24`` for float32, ``1 - 2**-53`` for float64)."""
    return 1.0 - torch.finfo(dtype).eps / 2.0


_FLOAT32_BELOW_ONE = largest_below_one(torch.float32)  # 1 - 2**-24, exact in float64


def _multiply_high_low(multiplier: int, word: torch.Tensor):
    """``(hi, lo)`` of the 64-bit product ``multiplier * word`` of two 32-bit numbers.

    The int64 product wraps modulo 2**64 (two's complement); its low 64 bits are the unsigned
    product's, so the shift-and-mask recovers the high word and the mask the low one (module docstring).
    """
    product = multiplier * word  # the unsigned 64-bit product, wrapped into int64
    return (product >> 32) & _MASK32, product & _MASK32


def philox4x32(counter: torch.Tensor, key, rounds: int = PHILOX_ROUNDS) -> torch.Tensor:
    """Philox4x32 block function, vectorised over leading dimensions (twin of the NumPy ``philox4x32``).

    Parameters
    ----------
    counter : torch.Tensor of int64, shape (..., 4)
        Four 32-bit counter words per block (values in ``[0, 2**32)``).
    key : tuple of two ints
        The two 32-bit key words.
    rounds : int
        Number of rounds (10 is the standard).

    Returns
    -------
    torch.Tensor of int64, shape (..., 4), words in ``[0, 2**32)``.
    """
    counter = check_tensor(counter, "counter", integer=True)
    if counter.ndim == 0 or counter.shape[-1] != 4:
        raise ValueError(f"counter must have last dimension 4 (four 32-bit words), got shape {tuple(counter.shape)}")
    if len(key) != 2:
        raise ValueError(f"key must hold two 32-bit words, got {key!r}")
    counter = counter.to(torch.int64) & _MASK32
    words = _philox_rounds_in_place(*counter.unbind(-1), _round_keys(key, rounds))
    return torch.stack(words, dim=-1)


def _round_keys(key, rounds: int = PHILOX_ROUNDS) -> list:
    """The key of every round, ``[(k0, k1), ...]``: the same for every block, so plain Python integers."""
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    keys = []
    for _ in range(rounds):
        keys.append((k0, k1))
        k0 = (k0 + PHILOX_W0) & _MASK32
        k1 = (k1 + PHILOX_W1) & _MASK32
    return keys


def _philox_round(c0, c1, c2, c3, k0, k1):
    """One Philox round on int64 tensors; ``c0, c2`` are 32-bit words, ``c1, c3`` may carry bits above 32.

    The new ``c1, c3`` are the products themselves, unmasked: their low 32 bits are the low words, and
    the bits above are cleared when they are XORed into a word that is masked one round later.
    Likewise ``product >> 32`` is the high word plus sign bits when the product wrapped; the same mask
    clears them. One mask per new ``c0``/``c2`` instead of four per round.
    """
    product0 = c0 * PHILOX_M0  # the unsigned 64-bit product, wrapped into int64
    product1 = c2 * PHILOX_M1
    return ((product1 >> 32) ^ c1 ^ k0) & _MASK32, product1, ((product0 >> 32) ^ c3 ^ k1) & _MASK32, product0


def _philox_rounds(c0, c1, c2, c3, round_keys):
    """Philox rounds as pure elementwise operations (what ``torch.compile`` fuses into one loop).

    ``c0, c2`` must be 32-bit words; ``c1, c3`` may carry bits above 32. Returns four 32-bit words;
    the arguments broadcast.
    """
    for k0, k1 in round_keys:
        c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    return c0, c1 & _MASK32, c2, c3 & _MASK32


def _philox_rounds_in_place(c0, c1, c2, c3, round_keys):
    """:func:`_philox_rounds` in eager mode: the same operations, into two buffers recycled across rounds.

    The first round broadcasts the counter words (the step and block words are small); from the second
    on, a round is two multiplications and two shifts into buffers, and six in-place bitwise operations:
    no allocation beyond the shifts' results. Returns four fresh tensors of the broadcast shape.
    """
    if not round_keys:
        shape = torch.broadcast_shapes(c0.shape, c1.shape, c2.shape, c3.shape)
        return tuple((word & _MASK32).expand(shape).contiguous() for word in (c0, c1, c2, c3))
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, *round_keys[0])
    shape = torch.broadcast_shapes(c0.shape, c1.shape, c2.shape, c3.shape)
    # fresh results of the first round: contiguous() copies only those smaller than the shape
    c0, c1, c2, c3 = (word.expand(shape).contiguous() for word in (c0, c1, c2, c3))
    spare0, spare1 = torch.empty_like(c0), torch.empty_like(c0)
    for k0, k1 in round_keys[1:]:
        torch.mul(c0, PHILOX_M0, out=spare0)  # product0
        torch.mul(c2, PHILOX_M1, out=spare1)  # product1
        c1 ^= spare1 >> 32  # the new c0, built in c1's buffer
        c1 ^= k0
        c1 &= _MASK32
        c3 ^= spare0 >> 32  # the new c2, built in c3's buffer
        c3 ^= k1
        c3 &= _MASK32
        # new (c0, c1, c2, c3) = (those, product1, those, product0); the old c0, c2 buffers are free
        c0, c1, c2, c3, spare0, spare1 = c1, spare1, c3, spare0, c0, c2
    c1 &= _MASK32
    c3 &= _MASK32
    return c0, c1, c2, c3


def _uniform_bits(high, low):
    """``2 x + 1`` with ``x = high * 2**20 + (low >> 12)`` (52 random bits), as int64: below ``2**53``.

    ``(x + 1/2) / 2**52 = (2 x + 1) * 2**-53``, and ``2 x + 1`` is ``high << 21`` with ``low >> 11``
    in its 21 low bits and the last bit set; both sides are exact in float64.
    """
    return (high << 21) | (low >> 11) | 1


def _uniforms_from_words(w0, w1, w2, w3, dtype, dim: int):
    """Pure form (traced by ``torch.compile``): the two uniforms of each block, stacked at ``dim``.

    Block-major words ``(num_blocks,) + batch`` with ``dim=1`` give ``(num_blocks, 2) + batch`` (the
    eager path's uniform-major layout); chain-major words ``batch + (num_blocks,)`` with ``dim=-1`` give
    ``batch + (num_blocks, 2)`` (the compiled paths' rows).
    """
    pairs = []
    for high, low in ((w0, w1), (w2, w3)):
        uniform = _uniform_bits(high, low).to(torch.float64) * _TWO_POW_MINUS_53
        if dtype == torch.float32:
            # Rounding to nearest can give exactly 1.0 for u > 1 - 2**-25: keep the interval open.
            uniform = uniform.to(torch.float32).clamp(max=largest_below_one(torch.float32))
        pairs.append(uniform)
    return torch.stack(pairs, dim=dim)


def _uniforms_from_words_in_place(w0, w1, w2, w3, dtype):
    """:func:`_uniforms_from_words` in eager mode, overwriting the words (fresh buffers of the rounds)."""
    uniforms = torch.empty((w0.shape[0], 2) + w0.shape[1:], dtype=torch.float64, device=w0.device)
    for column, (high, low) in enumerate(((w0, w1), (w2, w3))):
        high <<= 21
        low >>= 11
        high |= low
        high |= 1
        uniforms[:, column] = high  # int64 -> float64, exact below 2**53
    uniforms *= _TWO_POW_MINUS_53
    if dtype == torch.float32:
        # Rounding to nearest can give exactly 1.0 for u > 1 - 2**-25: keep the interval open.
        uniforms = uniforms.to(torch.float32).clamp_(max=largest_below_one(torch.float32))
    return uniforms


def _as_index_tensor(value, name: str, upper: int, device) -> torch.Tensor:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or an integer tensor, got a bool")
    if isinstance(value, int):
        if not 0 <= value < upper:
            raise ValueError(f"{name} must lie in [0, {upper}), got {value}")
        return torch.tensor(value, dtype=torch.int64, device=device)
    value = check_tensor(value, name, integer=True)
    if device is not None and not same_device(value.device, device):
        raise ValueError(f"{name} is on {value.device} but the uniforms are requested on {device}")
    value = value.to(torch.int64)  # first: a narrower tensor compared with 2**62 wraps it (all True in int32)
    # (meta tensors hold no values to check)
    if value.numel() and value.device.type != "meta" and (bool((value < 0).any()) or bool((value >= upper).any())):
        raise ValueError(f"{name} must lie in [0, {upper})")
    return value


def counter_uniforms(
    seed: int, chain_index, step, num_uniforms: int, dtype=None, device=None, numba=None
) -> torch.Tensor:
    """Uniforms in (0, 1) that depend only on ``(seed, chain_index, step)``; equal to the NumPy function.

    Parameters
    ----------
    seed : int
        Key of the generator, in ``[0, 2**64)``.
    chain_index : torch.Tensor of int (or int)
        Index of each chain, in ``[0, 2**62)``; its device is the device of the result.
    step : int or torch.Tensor of int
        Step number in ``[0, 2**32)``, broadcast against ``chain_index`` (same device).
    num_uniforms : int
        How many uniforms each (chain, step) receives.
    dtype : torch.float32 (default) or torch.float64
    device : optional
        Required to match ``chain_index``'s device when both are given; used when ``chain_index`` is an int.
    numba : None, True or False
        On the CPU, make the uniforms with numba's compiled loop: None (the default) where numba is
        installed, True to require it, False for the torch operations. The same numbers either way.

    Returns
    -------
    torch.Tensor, shape ``broadcast(chain_index, step).shape + (num_uniforms,)``
        float64: bit-identical to :func:`textsampling.randomness.counter_uniforms`; float32: those
        values rounded, clamped below 1.
    """
    seed = check_seed(seed)
    dtype = check_float_dtype(dtype)
    _check_num_uniforms(num_uniforms)
    if isinstance(chain_index, torch.Tensor):
        if device is not None and not same_device(chain_index.device, device):
            raise ValueError(f"chain_index is on {chain_index.device} but device={device!r} was asked for")
        device = chain_index.device
    else:
        device = resolve_device(device)
    _check_numba_choice(numba, device)
    chain_index = _as_index_tensor(chain_index, "chain_index", 2**62, device)
    step = _as_index_tensor(step, "step", 2**32, device)
    return _uniforms(seed, chain_index, step, num_uniforms, dtype, numba)


def _check_num_uniforms(num_uniforms) -> None:
    if isinstance(num_uniforms, bool) or not isinstance(num_uniforms, int) or num_uniforms < 0:
        raise ValueError(f"num_uniforms must be a non-negative int, got {num_uniforms!r}")


# textsampling.torch._philox_numba, imported on first use; "failed" holds why it could not be (numba missing).
_numba = {"module": None, "failed": None}


def numba_kernel_available() -> bool:
    """Whether numba is installed, so that the CPU counter uniforms run as one compiled loop.

    Without it (``pip install "textsampling[fast]"`` adds it) the same numbers come from the torch
    operations, twenty to fifty times slower on the CPU (``benchmarks/bench_randomness.py``).
    """
    return _numba["module"] is not None or load_once(  # the dict first: a per-step call
        _numba,
        _import_loop,
        "numba is installed but the counter generator's loop",
        "using the torch operations (the same numbers, slower)",
    )


def _import_loop():
    from textsampling.torch import _philox_numba

    return _philox_numba


def _check_numba_choice(numba, device) -> None:
    """``numba`` is None (where it can run), True (required: installed, and the uniforms on the CPU) or False."""
    if numba is not None and not isinstance(numba, bool):
        raise TypeError(f"numba must be None (use it where it can run), True or False, got {numba!r}")
    if numba:
        if not numba_kernel_available():
            raise ValueError(
                f"numba=True but numba cannot be imported ({_numba['failed']}); install it with "
                "pip install \"textsampling[fast]\", or pass numba=None to use it only where it is installed"
            )
        if device.type != "cpu":
            raise ValueError(f"numba=True makes the uniforms on the CPU, but the chains are on {device}")


def _numba_uniforms(seed: int, chain_index: torch.Tensor, step, shape, num_uniforms: int, dtype):
    """The counter uniforms of the broadcast ``(chain_index, step)`` from numba's loop, uniform-major."""
    num_blocks = (num_uniforms + 1) // 2
    num_values = shape.numel()
    uniforms = torch.empty((2 * num_blocks, num_values), dtype=dtype, device="cpu")  # whatever the default device
    if chain_index.shape == shape and chain_index.ndim == 1 and chain_index.is_contiguous():
        chains = chain_index  # a CounterGenerator's chains at one step: as they are (three operations fewer)
    else:  # a copy for other shapes, broadcasts and strides
        chains = chain_index.expand(shape).reshape(num_values).contiguous()
    kernels, key = _numba["module"], (seed & _MASK32, seed >> 32)
    # float32: rounding to nearest can give exactly 1.0 for u > 1 - 2**-25; the loop caps each float64
    # uniform at 1 - 2**-24 before rounding, which keeps the interval open as clamping after would.
    cap = _FLOAT32_BELOW_ONE if dtype == torch.float32 else 1.0
    if isinstance(step, int) or step.ndim == 0:  # one step for every chain: the loop LLVM vectorises
        kernels.one_step_uniforms_into(uniforms.numpy(), chains.numpy(), int(step), *key, cap)
    else:
        steps = step.expand(shape).reshape(num_values).contiguous()
        kernels.counter_uniforms_into(uniforms.numpy(), chains.numpy(), steps.numpy(), *key, cap)
    if num_uniforms < 2 * num_blocks:
        uniforms = uniforms[:num_uniforms]
    if len(shape) == 1:  # (k, B) already: the uniform-major view is its transpose (one view, not two)
        return uniforms.t()
    return _uniform_major(uniforms.view((num_uniforms,) + shape))


def _uniforms(seed: int, chain_index: torch.Tensor, step, num_uniforms: int, dtype, numba=None) -> torch.Tensor:
    """:func:`counter_uniforms` on arguments already checked (no device synchronisation).

    On the CPU, with numba installed and ``numba`` not False: numba's compiled loop. Otherwise eager:
    the in-place rounds, or for small batches the pure form (fewer kernel launches, no copies;
    the launches dominate there), both block-major so that the result is uniform-major (see
    :func:`_uniform_major`). Under ``torch.compile`` (a caller compiling "uniforms + step"): the pure
    elementwise form, chain-major, which Inductor fuses into one loop (traced block-major, it stored the
    words between several loops: a fused MH step twice as slow at 1e4-1e5 chains). All are the same
    integer operations, hence the same numbers.
    """
    device = chain_index.device
    compiling = torch.compiler.is_compiling()
    if numba is not False and not compiling and device.type == "cpu" and numba_kernel_available():
        shape = chain_index.shape if isinstance(step, int) else torch.broadcast_shapes(chain_index.shape, step.shape)
        return _numba_uniforms(seed, chain_index, step, shape, num_uniforms, dtype)
    if isinstance(step, int):
        step = torch.tensor(step, dtype=torch.int64, device=device)
    shape = torch.broadcast_shapes(chain_index.shape, step.shape)
    num_blocks = (num_uniforms + 1) // 2
    block = torch.arange(num_blocks, dtype=torch.int64, device=device)
    round_keys = _round_keys((seed & _MASK32, seed >> 32))
    if compiling:
        # counter words (chain low, chain high, step, block), one block per pair of uniforms; they
        # broadcast to shape + (num_blocks,) in the first round
        counter = ((chain_index & _MASK32)[..., None], (chain_index >> 32)[..., None], step[..., None], block)
        words = tuple(word.expand(shape + (num_blocks,)) for word in _philox_rounds(*counter, round_keys))
        uniforms = _uniforms_from_words(*words, dtype, dim=-1)  # (..., num_blocks, 2)
        return uniforms.reshape(shape + (2 * num_blocks,))[..., :num_uniforms]  # (..., num_uniforms)
    # The same words block-major, broadcast to (num_blocks,) + shape: each uniform is computed, and
    # stored, contiguously over the chains.
    block = block.reshape((num_blocks,) + (1,) * len(shape))
    counter = ((chain_index & _MASK32)[None], (chain_index >> 32)[None], step[None], block)
    if shape.numel() * num_blocks < _IN_PLACE_MIN_BLOCKS:
        words = _philox_rounds(*counter, round_keys)
        words = tuple(word.expand((num_blocks,) + shape) for word in words)
        uniforms = _uniforms_from_words(*words, dtype, dim=1)  # (num_blocks, 2, ...)
    else:
        words = _philox_rounds_in_place(*counter, round_keys)
        words = tuple(word.expand((num_blocks,) + shape).contiguous() for word in words)
        uniforms = _uniforms_from_words_in_place(*words, dtype)  # (num_blocks, 2, ...)
    return _uniform_major(uniforms.reshape((2 * num_blocks,) + shape)[:num_uniforms])  # (..., num_uniforms)


def _uniform_major(uniforms: torch.Tensor) -> torch.Tensor:
    """``(k,) + batch`` as ``batch + (k,)``: a view in which each uniform is contiguous over the chains.

    A step reads its uniforms column by column (``uniforms[:, 0]`` picks a position, ``uniforms[:, -1]``
    decides acceptance); with the chains contiguous in each column those reads, and the elementwise
    operations on them, run on unit-stride memory (about 10% of an MH step at 1e5 chains on the CPU).
    """
    return uniforms.movedim(0, -1)


# ----------------------------------------------------------------------------- the compiled path
def _uniform_blocks(chain_index, step, blocks, keys, dtype):
    """The uniforms of every chain at one step, shape ``(B, 2 num_blocks)``: the function compiled.

    ``chain_index (B,)``, ``step (1,)`` and ``blocks (num_blocks,)`` int64; ``keys (rounds, 2)`` the round
    keys as a tensor, so that another seed or step reuses the compiled code (Python ints would be baked in).
    """
    # One flat dimension of (chain, block) pairs, chain-major: Inductor makes one vectorised loop of it.
    # (Block-major, for uniform-major columns as in the eager path, made Inductor store the words of
    # the rounds in buffers between several loops: twice as slow at 8 uniforms and 1e6 chains.)
    num_chains, num_blocks = chain_index.shape[0], blocks.shape[0]
    chain_index = chain_index[:, None].expand(num_chains, num_blocks).reshape(-1)  # (B * num_blocks,)
    block = blocks[None, :].expand(num_chains, num_blocks).reshape(-1)  # (B * num_blocks,)
    words = _philox_rounds(
        chain_index & _MASK32,
        chain_index >> 32,
        step,
        block,
        [(keys[r, 0], keys[r, 1]) for r in range(PHILOX_ROUNDS)],
    )
    # the pairs stack as (B * num_blocks, 2): each chain's 2 num_blocks uniforms in a row
    return _uniforms_from_words(*words, dtype, dim=-1).reshape(num_chains, 2 * num_blocks)


# torch.compile(_uniform_blocks), made on first use; dynamic shapes, so one compilation serves every
# number of chains (one per dtype and num_blocks). "failed" maps a device type ("cpu", "cuda") to the
# reason it could not compile there: C++ on the CPU and Triton on CUDA fail apart (a missing C++
# compiler must not send CUDA to the eager path).
_compiled = {"function": None, "failed": {}}


def _fused_uniforms(generator: "CounterGenerator", step: int, num_uniforms: int, dtype) -> torch.Tensor:
    """``(B, num_uniforms)`` from the compiled kernel, or from the eager path where it cannot run."""
    num_blocks = (num_uniforms + 1) // 2
    # One chain (a size-1 dimension would be compiled apart) or no uniforms: the eager path is as fast.
    device_type = generator.device.type
    if device_type not in _compiled["failed"] and generator.num_chains > 1 and num_blocks > 0:
        step_tensor = torch.full((1,), step, dtype=torch.int64, device=generator.device)
        arguments = (generator.chain_index, step_tensor, generator._blocks(num_blocks), generator._round_key_tensor)
        try:
            if _compiled["function"] is None:
                _compiled["function"] = torch.compile(_uniform_blocks, dynamic=True, fullgraph=True)
            uniforms = _compiled["function"](*arguments, dtype)  # (B, 2 num_blocks), row-major
        except torch._dynamo.exc.TorchDynamoException as error:  # no C++ compiler, an unsupported platform, ...
            reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
            _compiled["failed"][device_type] = reason
            warnings.warn(
                f"torch.compile of the counter generator failed on {device_type} ({reason}); using the eager "
                "path there (the same numbers, slower)",
                stacklevel=3,
            )
        else:
            return uniforms if num_uniforms % 2 == 0 else uniforms[:, :num_uniforms]
    return _uniforms(generator.seed, generator.chain_index, step, num_uniforms, dtype, generator.numba)


@dataclass(frozen=True, eq=False)
class CounterGenerator:
    """Per-chain reproducible uniforms on a device: step ``t`` of chain ``c`` is ``counter_uniforms(seed, c, t, k)``.

    Twin of :class:`textsampling.randomness.CounterGenerator`; ``chain_index`` is a 1-D int64 tensor
    (one entry per chain of the batch) whose device is where the uniforms are made.

    Parameters
    ----------
    seed : int
        Key of the generator, in ``[0, 2**64)``.
    chain_index : torch.Tensor of int, shape (B,)
        The chains served, e.g. ``torch.arange(num_chains, device="cuda")``.
    compiled : bool
        Make the uniforms with ``torch.compile`` of the Philox rounds: one fused loop (C++ on the CPU,
        Triton on CUDA) instead of about a hundred torch operations, several times faster than those
        from about 1e4 chains (on the CPU numba's loop, the default where installed, is faster still).
        The same numbers bit for bit (tests/test_twin_randomness.py). The first call compiles
        (seconds to a minute; Inductor caches the result on disk for later processes), once per dtype
        and number of uniform pairs ``ceil(k / 2)`` whatever the number of chains (past torch's recompile
        limit, 8 by default, the same code runs uncompiled). If compilation fails, a warning says so and
        the eager path is used from then on, on that device type only (C++ on the CPU and Triton on
        CUDA fail apart); a single chain always uses the eager path.
    numba : None, True or False
        On the CPU, the uncompiled path makes the uniforms with numba's compiled loop
        (:mod:`textsampling.torch._philox_numba`, on one thread faster than ``torch.rand`` from about 1e4
        chains): None (the default) where numba is installed, True to require it (an error without
        numba or off the CPU), False for the torch operations. The same numbers bit for bit. ``compiled=True`` asks for
        ``torch.compile``'s kernel instead, so it cannot be combined with ``numba=True``.
    """

    seed: int
    chain_index: torch.Tensor
    compiled: bool = False
    numba: bool | None = None

    def __post_init__(self):
        check_seed(self.seed)
        if not isinstance(self.compiled, bool):
            raise TypeError(f"compiled must be a bool, got {type(self.compiled).__name__}")
        chain_index = check_tensor(self.chain_index, "chain_index", integer=True, ndim=1)
        _check_numba_choice(self.numba, chain_index.device)
        if self.compiled and self.numba:
            raise ValueError("compiled=True (torch.compile's kernel) and numba=True ask for two kernels; choose one")
        _as_index_tensor(chain_index, "chain_index", 2**62, None)
        object.__setattr__(self, "chain_index", chain_index.to(torch.int64))
        object.__setattr__(self, "_block_indices", {})
        if self.compiled:
            # The round keys as a tensor on the chains' device: an argument of the compiled kernel, not a constant.
            keys = torch.tensor(_round_keys((self.seed & _MASK32, self.seed >> 32)), dtype=torch.int64)
            object.__setattr__(self, "_round_key_tensor", keys.to(self.chain_index.device))

    def _blocks(self, num_blocks: int) -> torch.Tensor:
        """``arange(num_blocks)`` on the device, made once per width."""
        if num_blocks not in self._block_indices:
            blocks = torch.arange(num_blocks, dtype=torch.int64, device=self.device)
            # A compile-time constant for the compiled kernel: the (chain, block) index is then split by
            # a constant, not by a division per element.
            torch._dynamo.mark_static(blocks, 0)
            self._block_indices[num_blocks] = blocks
        return self._block_indices[num_blocks]

    @classmethod
    def from_numpy(cls, generator, device=None, compiled: bool = False, numba=None) -> "CounterGenerator":
        """The twin of a NumPy :class:`~textsampling.randomness.CounterGenerator` (chains as a 1-D tensor)."""
        import numpy as np

        chain_index = torch.as_tensor(np.atleast_1d(np.asarray(generator.chain_index, dtype=np.int64)))
        return cls(generator.seed, chain_index.to(resolve_device(device)), compiled=compiled, numba=numba)

    @property
    def device(self) -> torch.device:
        """Where the uniforms are made: the device of ``chain_index``."""
        return self.chain_index.device

    @property
    def num_chains(self) -> int:
        """Number of chains served, ``B``."""
        return int(self.chain_index.shape[0])

    def to(self, device) -> "CounterGenerator":
        """The same chains, with uniforms made on ``device``."""
        return CounterGenerator(
            self.seed, self.chain_index.to(resolve_device(device)), compiled=self.compiled, numba=self.numba
        )

    def uniforms(self, step, num_uniforms: int, dtype=None) -> torch.Tensor:
        """Uniforms of step ``step`` (an int, or a tensor broadcast as in :func:`counter_uniforms`): ``(B, k)``."""
        if isinstance(step, int) and not isinstance(step, bool) and 0 <= step < 2**32:
            # chain_index was checked once at construction: no synchronisation per step.
            dtype = check_float_dtype(dtype)
            _check_num_uniforms(num_uniforms)
            if self.compiled:
                return _fused_uniforms(self, step, num_uniforms, dtype)
            return _uniforms(self.seed, self.chain_index, step, num_uniforms, dtype, self.numba)
        return counter_uniforms(self.seed, self.chain_index, step, num_uniforms, dtype=dtype, numba=self.numba)

    def uniforms_for_steps(self, first_step: int, num_steps: int, num_uniforms: int, dtype=None) -> torch.Tensor:
        """Uniforms of steps ``first_step .. first_step + num_steps - 1``: ``(B, num_steps, k)``.

        Never ``torch.compile``'s kernel, which makes one step at a time (what the chain runners ask);
        numba's loop where ``numba`` allows it.
        """
        dtype = check_float_dtype(dtype)
        _check_num_uniforms(num_uniforms)
        for name, value in (("first_step", first_step), ("num_steps", num_steps)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        first_step, num_steps = int(first_step), int(num_steps)
        if first_step + num_steps > 2**32:
            raise ValueError(f"steps must lie in [0, 2**32), got up to {first_step + num_steps - 1}")
        steps = torch.arange(first_step, first_step + num_steps, dtype=torch.int64, device=self.device)
        return _uniforms(self.seed, self.chain_index[:, None], steps[None, :], num_uniforms, dtype, self.numba)


def as_generator(rng):
    """Check that ``rng`` is an explicit torch source of randomness: CounterGenerator or torch.Generator."""
    if isinstance(rng, (CounterGenerator, torch.Generator)):
        return rng
    raise TypeError(
        "rng must be a textsampling.torch.randomness.CounterGenerator (per-chain reproducible) or a "
        f"torch.Generator (fast, batch-dependent), got {type(rng).__name__}"
    )


def _check_generator_device(rng, device):
    if device is not None and not same_device(rng.device, device):
        raise ValueError(
            f"rng makes its numbers on {rng.device} but the chains live on {resolve_device(device)}; "
            "create the generator on the chains' device"
        )


def _torch_uniforms(rng: torch.Generator, shape, dtype) -> torch.Tensor:
    """``shape`` ``batch + (k,)`` of uniforms in (0, 1) from ``rng``, each uniform contiguous over the batch."""
    shape = tuple(shape)
    uniforms = torch.rand(shape[-1:] + shape[:-1], generator=rng, dtype=dtype, device=rng.device)
    # torch.rand lies in [0, 1): an exact 0 would make log(u) = -inf; map it to the smallest normal.
    return _uniform_major(uniforms.clamp_(min=torch.finfo(dtype).tiny))


def check_num_chains(rng, num_chains: int, name: str = "x0") -> None:
    """A counter generator must serve exactly the ``num_chains`` rows of ``name``."""
    if isinstance(rng, CounterGenerator) and rng.num_chains != num_chains:
        raise ValueError(
            f"rng serves {rng.num_chains} chains (chain_index) but {name} has {num_chains} rows; "
            "give one chain index per chain"
        )


def draw_uniforms(rng, step: int, num_uniforms: int, num_chains: int | None = None, dtype=None, device=None):
    """The uniforms of one step for a batch of chains, ``(B, num_uniforms)``.

    Parameters
    ----------
    rng : CounterGenerator or torch.Generator
        A counter generator gives chain ``c`` the uniforms of ``(seed, c, step)``; a ``torch.Generator``
        ignores ``step`` and advances its stream (fast, but the numbers depend on the batch).
    step : int
    num_uniforms : int
    num_chains : int, optional
        Batch size ``B``; required for a ``torch.Generator``, checked against a counter generator.
    dtype : torch.float32 (default) or torch.float64
    device : optional
        The chains' device; the generator must live there.

    Notes
    -----
    The result is uniform-major: each column is contiguous over the chains (a transposed view), which
    the samplers read column by column. A ``torch.Generator`` therefore fills it column by column, as
    ``torch.rand((num_uniforms, B)).T``: column ``j`` takes the stream's numbers ``j B`` to
    ``(j + 1) B - 1``. (Until this layout was adopted it filled rows, so a seeded ``torch.Generator``
    run of an older checkout gives other chains; a counter generator gives the same numbers as before.)
    """
    rng = as_generator(rng)
    dtype = check_float_dtype(dtype)
    _check_generator_device(rng, device)
    if isinstance(rng, CounterGenerator):
        if num_chains is not None and num_chains != rng.num_chains:
            raise ValueError(f"num_chains = {num_chains} but rng serves {rng.num_chains} chains (chain_index)")
        return rng.uniforms(step, num_uniforms, dtype=dtype)
    if num_chains is None:
        raise ValueError("num_chains is required with a torch.Generator (it has no chain_index)")
    return _torch_uniforms(rng, (num_chains, num_uniforms), dtype)


def draw_uniforms_for_steps(
    rng, first_step: int, num_steps: int, num_uniforms: int, num_chains=None, dtype=None, device=None
):
    """Uniforms of steps ``first_step .. first_step + num_steps - 1`` for every chain, ``(B, num_steps, k)``.

    With a counter generator, ``[c, t]`` equals ``draw_uniforms_for_steps`` of the NumPy reference for
    chain ``c`` (row ``t``): the importance and rejection twins use step ``n`` for sample ``n``.
    """
    rng = as_generator(rng)
    dtype = check_float_dtype(dtype)
    _check_generator_device(rng, device)
    if isinstance(rng, CounterGenerator):
        if num_chains is not None and num_chains != rng.num_chains:
            raise ValueError(f"num_chains = {num_chains} but rng serves {rng.num_chains} chains (chain_index)")
        return rng.uniforms_for_steps(first_step, num_steps, num_uniforms, dtype=dtype)
    if num_chains is None:
        raise ValueError("num_chains is required with a torch.Generator (it has no chain_index)")
    return _torch_uniforms(rng, (num_chains, num_steps, num_uniforms), dtype)


# ----------------------------------------------------------------------------- uniforms -> variates
# The rules of textsampling.randomness on tensors: same floating operations, same decisions.
def integer_from_uniform(uniforms: torch.Tensor, num_values) -> torch.Tensor:
    """``floor(u * n)`` clamped to ``n - 1``, int64 (the clamp guards ``u n`` rounding up to ``n``).

    ``num_values`` is an int, or an integer tensor broadcastable to ``uniforms`` (one ``n >= 1`` per
    row: the number of positions of each chain's sentence, say).

    The conversion to int64 truncates toward zero, which is the floor for ``u n >= 0``: one pass fewer
    than an explicit ``floor``, the same integers for every uniform in (0, 1) (``floor`` keeps a NaN a
    NaN, so a NaN converts as it did with it).
    """
    if isinstance(num_values, torch.Tensor):
        num_values = num_values.to(torch.int64)
        values = (uniforms * num_values.to(uniforms.dtype)).to(torch.int64)
        return torch.minimum(values, num_values - 1)
    return (uniforms * num_values).to(torch.int64).clamp_(max=num_values - 1)


def normal_from_uniforms(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    r"""Box–Muller, cosine branch: :math:`\sqrt{-2 \log u_1} \cos(2 \pi u_2)`."""
    return torch.sqrt(-2.0 * torch.log(first)) * torch.cos(2.0 * math.pi * second)


#: Rows at most this wide are searched by counting (one comparison per entry, vectorised), wider ones
#: by ``torch.searchsorted`` (a binary search per row); both give the same index (see :func:`inverse_cdf`).
#: At most 255: the count is kept in uint8.
COUNT_SEARCH_MAX_CATEGORIES = 64


def check_logits(logits: torch.Tensor, name: str = "logits") -> list:
    """Value conditions (to pass to ``raise_if``) refusing NaN, ``+inf`` and all ``-inf`` rows."""
    return (
        [torch.isnan(logits).any(), (logits == torch.inf).any(), (logits == -torch.inf).all(dim=-1).any()],
        [
            f"{name} contains NaN; use -inf for a state of probability zero",
            f"{name} contains +inf; log-weights must be finite or -inf",
            f"{name} is -inf everywhere in some row: every state has probability zero",
        ],
    )


def may_branch_on_values(tensor: torch.Tensor) -> bool:
    """Whether code may look at ``tensor``'s values to skip work: eager on the CPU, where reading a flag
    waits for no device and breaks no ``torch.compile`` graph. Elsewhere the branch-free form runs; both
    forms give the same result bit for bit (each fast branch is pinned by a test on the other's answers)."""
    return tensor.device.type == "cpu" and not torch.compiler.is_compiling()


def categorical_from_uniforms(uniforms: torch.Tensor, logits: torch.Tensor, validate: bool = True) -> torch.Tensor:
    r"""Deterministic inverse-CDF map from uniforms to category indices (the reference's rule).

    Twin of :func:`textsampling.randomness.categorical_from_uniforms`: the first :math:`k` with
    :math:`C_k > u\, C_{K-1}`. Shapes, dtypes and devices are always checked, values when ``validate``;
    the index is computed by :func:`inverse_cdf`.

    Parameters
    ----------
    uniforms : torch.Tensor, shape (...)
        Uniforms in (0, 1), one per draw.
    logits : torch.Tensor, shape (K,) or ``uniforms.shape + (K,)``
        Unnormalised log-probabilities (``-inf`` allowed), same dtype and device as ``uniforms``.
    validate : bool
        Check the values (one synchronisation).

    Returns
    -------
    torch.Tensor of int64, shape ``uniforms.shape``
    """
    uniforms, logits = check_draw_arguments(uniforms, logits)
    if validate:
        conditions, messages = check_logits(logits)
        raise_if(
            conditions + [~((uniforms > 0) & (uniforms < 1)).all()],
            messages + ["uniforms must lie in the open interval (0, 1)"],
        )
    return inverse_cdf(uniforms, logits)


def check_draw_arguments(uniforms, logits):
    """The types, shapes, dtypes and devices :func:`categorical_from_uniforms` accepts (no value read)."""
    uniforms = check_tensor(uniforms, "uniforms", integer=False)
    logits = check_tensor(logits, "logits", integer=False)
    if uniforms.device != logits.device:  # equal torch.device objects: the common case, checked for free
        check_same_device(uniforms=uniforms, logits=logits)
    check_same_dtype(uniforms=uniforms, logits=logits)
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (K,) or (..., K) with K >= 1, got {tuple(logits.shape)}")
    if logits.ndim > 1 and logits.shape[:-1] != uniforms.shape:
        raise ValueError(
            f"logits has rows of shape {tuple(logits.shape[:-1])} but uniforms has shape {tuple(uniforms.shape)}; "
            "give one row of logits per uniform, or a single 1-D row"
        )
    return uniforms, logits


#: Device types whose ``torch.cumsum`` adds in order along the last dimension (a test patches it to
#: run :func:`_repeat_sums_at_zero_weights` on the CPU).
_SEQUENTIAL_CUMSUM_DEVICES = frozenset({"cpu"})


def cumulative_weights(weights: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    r"""Cumulative sums of non-negative weights along the last dimension, in which a zero weight adds nothing.

    On the CPU ``torch.cumsum`` adds in order (float32 and narrower in a wider accumulator, each sum
    rounded when stored), so the sums never decrease and a zero weight repeats the sum before it: the
    inverse-CDF search (first :math:`k` with :math:`C_k > t`) can never land on it, as with the NumPy
    rule's ``np.cumsum``. A parallel scan (torch's CUDA ``cumsum`` is one) can group the additions of
    neighbouring :math:`k` differently, so that where :math:`w_k = 0` its :math:`C_k` exceeds
    :math:`C_{k-1}` by an ulp, giving a state of probability zero (a ``-inf`` logit, a masked token) an
    interval of one ulp, or falls below it (tests/test_twin_randomness.py shows both with a
    Hillis-Steele scan written out on the CPU; no GPU has run it here). Off the CPU the sums are
    therefore made to repeat at zero weights:

    .. math::
        C'_k = \max\bigl(0, \max_{j \le k,\ w_j \ne 0} C_j\bigr),

    by :func:`_repeat_sums_at_zero_weights`. Then a zero weight gets no interval, the sums never
    decrease (as ``searchsorted`` needs), and a NaN stays NaN (the totals' value check). On sums that
    never decrease and repeat at zero weights, as the CPU's do, it changes no bit
    (tests/test_twin_randomness.py), so the CPU skips it.

    Parameters
    ----------
    weights : torch.Tensor of a floating dtype, shape (..., K)
        Non-negative weights (NaN allowed: it propagates).
    out : torch.Tensor, optional
        A buffer of ``weights``' shape and dtype: the sums are written there and it is returned, on every
        device. Off the CPU the repair still makes three temporaries of that shape (a mask, the running
        maximum and its int64 indices).

    Returns
    -------
    torch.Tensor, shape (..., K)
    """
    if not weights.is_floating_point():
        raise TypeError(f"weights must have a floating dtype, got {weights.dtype}")
    cumulative = torch.cumsum(weights, dim=-1, out=out)  # (..., K)
    if weights.device.type in _SEQUENTIAL_CUMSUM_DEVICES:
        return cumulative
    return _repeat_sums_at_zero_weights(cumulative, weights, in_place=out is not None)


def _repeat_sums_at_zero_weights(cumulative: torch.Tensor, weights: torch.Tensor, in_place: bool = False):
    """``C'_k``: the running maximum of the sums at nonzero weights, at least 0 (:func:`cumulative_weights`).

    ``in_place``: written into ``cumulative`` (returned); else a new tensor.
    """
    # -inf at zero weights drops their sums from the running maximum; a NaN weight keeps its (NaN) sum,
    # which cummax and clamp carry on; the clamp gives leading zero weights 0, as a sum in order does.
    at_zero = weights == 0  # (..., K)
    if in_place:
        at_nonzero = cumulative.masked_fill_(at_zero, -torch.inf)
    else:
        at_nonzero = torch.where(at_zero, -torch.inf, cumulative)  # (..., K)
    repeated = torch.cummax(at_nonzero, dim=-1).values.clamp_(min=0)  # (..., K)
    return cumulative.copy_(repeated) if in_place else repeated


def inverse_cdf(
    uniforms: torch.Tensor,
    logits: torch.Tensor,
    *,
    overwrite_logits: bool = False,
    cumulative: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""The rule of :func:`categorical_from_uniforms` without any check, ``uniforms.shape`` int64.

    See :func:`inverse_cdf_and_totals` (the same, also returning the weights' totals).
    """
    return inverse_cdf_and_totals(uniforms, logits, overwrite_logits=overwrite_logits, cumulative=cumulative)[0]


def inverse_cdf_and_totals(
    uniforms: torch.Tensor,
    logits: torch.Tensor,
    *,
    overwrite_logits: bool = False,
    cumulative: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The rule of :func:`categorical_from_uniforms` without any check: the first :math:`k` with
    :math:`C_k > u\, C_{K-1}`, where :math:`C` are the cumulative sums of :math:`w = \exp(\ell - \max \ell)`,
    never a trailing zero weight.

    Parameters
    ----------
    uniforms : torch.Tensor, shape (...)
    logits : torch.Tensor, shape (K,) or ``uniforms.shape + (K,)``, the uniforms' dtype and device
    overwrite_logits : bool
        Write the weights into ``logits`` (no fresh ``(..., K)`` tensor; its values are lost).
    cumulative : torch.Tensor, optional
        A buffer of ``logits``' shape and dtype for the cumulative sums (else a new tensor).

    Returns
    -------
    indices : torch.Tensor of int64, shape ``uniforms.shape``
    totals : torch.Tensor, shape ``logits.shape[:-1]``
        :math:`C_{K-1}`, NaN exactly where a row holds a NaN or ``+inf`` or is ``-inf`` everywhere (its
        maximum is then NaN or infinite, and so is a weight), else in :math:`[1, K]`: a value check for free.

    Notes
    -----
    The floating operations are those of the randomness module's rule (the same weights, sums and
    threshold), so the index is the same; only the search and the guard take less work:

    * *Search.* ``searchsorted(C, t, right=True)`` is the number of :math:`k` with ``not (C_k > t)``
      (its binary search takes a step right exactly when ``not (C_mid > t)``). On the CPU the cumulative
      sums are sequential, hence non-decreasing, unless a NaN weight makes every later one NaN --
      :math:`C_{K-1}` and the threshold among them, and then both forms give :math:`K`. So for rows of at
      most :data:`COUNT_SEARCH_MAX_CATEGORIES` entries eager code on the CPU counts, ``K - sum(C > t)``
      (compiled code keeps ``searchsorted``, which Inductor runs faster than the count).
    * *Guard.* A found :math:`k < K` has :math:`w_k > 0` (:math:`C_k > t \ge C_{k-1}` so
      :math:`C_k > C_{k-1}`, which sums that repeat at zero weights allow only for :math:`w_k > 0`:
      :func:`cumulative_weights`; or :math:`k = 0` and :math:`C_0 > t`, where a negative threshold makes the guard
      return 0 anyway), so the guard (never a trailing zero weight) can only act where nothing was found,
      :math:`k = K`: in round-to-nearest :math:`u\, C_{K-1} < C_{K-1}` for every float :math:`u < 1`, so only
      a uniform the validating rule refuses (or a NaN row) gets there. On the CPU the last positive weight
      is computed only when some row got there (one flag read); elsewhere always, as the rule writes it.
    """
    num_categories = logits.shape[-1]
    shift = logits.amax(dim=-1, keepdim=True)  # (..., 1): the largest weight is exactly 1
    weights = logits.sub_(shift) if overwrite_logits else torch.sub(logits, shift)  # (..., K)
    weights = weights.exp_()  # (..., K)
    cumulative = cumulative_weights(weights, out=cumulative)  # (..., K)
    # The count search in eager CPU code only: compiled by Inductor, the uint8 count ran the fused Gibbs
    # step 4x slower than searchsorted (benchmarks/bench_twins.py, fused row, 1e4 chains).
    count_search = uniforms.device.type == "cpu" and not torch.compiler.is_compiling()
    if logits.ndim == 1:
        # One distribution for every draw: first k with C_k > u * C_{K-1}.
        indices = torch.searchsorted(cumulative, uniforms * cumulative[-1], right=True)  # (...)
    else:
        threshold = (uniforms * cumulative[..., -1])[..., None]  # (..., 1)
        if count_search and num_categories <= COUNT_SEARCH_MAX_CATEGORIES:
            # (...), as searchsorted (Notes); counted in uint8 (K <= 64), which skips a cast of the mask to int64
            above = (cumulative > threshold).view(torch.uint8).sum(dim=-1, dtype=torch.uint8)  # (...)
            indices = num_categories - above.to(torch.int64)  # (...)
        else:
            indices = torch.searchsorted(cumulative.contiguous(), threshold, right=True)[..., 0]  # (...)
    totals = cumulative[..., -1]  # (...)
    if may_branch_on_values(indices) and not bool((indices >= num_categories).any()):
        return indices, totals  # nothing to guard (Notes): every index found has a positive weight
    indices = indices.clamp(max=num_categories - 1)
    # Rounding can push u * C_{K-1} up to C_{K-1}; never land on a trailing zero-weight state.
    last_positive = num_categories - 1 - torch.argmax((weights > 0).flip(-1).to(torch.int8), dim=-1)
    return torch.minimum(indices, last_positive), totals
