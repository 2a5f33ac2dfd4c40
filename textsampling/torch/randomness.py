r"""Torch twin of :mod:`textsampling.randomness`: the same Philox4x32-10 counter uniforms, on any device.

:func:`counter_uniforms` computes, for every chain ``c`` of a tensor ``chain_index`` at step ``t``,

.. math::
    \mathrm{Philox4x32\text{-}10}\bigl(\text{counter} = (c_{lo}, c_{hi}, t, j),\ \text{key} = (s_{lo}, s_{hi})\bigr),

bit for bit the function of :func:`textsampling.randomness.counter_uniforms` (Salmon et al. 2011,
"Parallel random numbers: as easy as 1, 2, 3", SC'11). Chain ``c`` therefore receives the same
uniforms in NumPy, on a torch CPU and on a CUDA device, whatever the batch and whichever chains run
beside it: there is no stream to share, only a pure function of ``(seed, chain, step)``.

Torch has no unsigned 64-bit arithmetic on every device, so each 32-bit word lives in an ``int64``
tensor and every operation keeps it in :math:`[0, 2^{32})`. The product :math:`P = M \cdot c` of a
Philox round (two 32-bit numbers) needs 64 unsigned bits; one ``int64`` multiplication gives exactly
those bits, wrapped into two's complement (:math:`P - 2^{64}` when :math:`P \ge 2^{63}`), because
integer multiplication wraps modulo :math:`2^{64}` on every torch device. Then

.. math::
    \mathrm{lo} = P \bmod 2^{32}, \qquad \mathrm{hi} = \lfloor P / 2^{32} \rfloor
    = (P_{\text{wrapped}} \gg 32) \mathbin{\&} (2^{32} - 1),

since, when it wrapped, the arithmetic shift gives :math:`\lfloor P / 2^{32} \rfloor - 2^{32}`, which
the mask brings back. One multiply, a shift and two masks per word: about three times faster than the
earlier split on 16-bit halves (measured: ``python benchmarks/bench_twins.py``), and still bit for bit
the NumPy reference's ``uint64`` product (tests/test_twin_randomness.py). The float64 uniforms
:math:`u = (a\,2^{20} + b + 1/2) / 2^{52}` are exact as in the reference; a float32 uniform is the
float64 one rounded to nearest and then clamped to the largest float32 below 1, so
``0 < u < 1`` holds in both dtypes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from textsampling.randomness import PHILOX_M0, PHILOX_M1, PHILOX_ROUNDS, PHILOX_W0, PHILOX_W1, check_seed
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
    "check_logits",
    "philox4x32",
    "counter_uniforms",
    "draw_uniforms",
    "check_num_chains",
    "draw_uniforms_for_steps",
    "as_generator",
    "largest_below_one",
]

_MASK32 = 0xFFFFFFFF
_TWO_POW_52 = float(2**52)


def largest_below_one(dtype: torch.dtype) -> float:
    """The largest number of ``dtype`` below 1 (``1 - 2**-24`` for float32, ``1 - 2**-53`` for float64)."""
    return 1.0 - torch.finfo(dtype).eps / 2.0


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
    words = _philox_words(counter[..., 0], counter[..., 1], counter[..., 2], counter[..., 3], key, rounds)
    return torch.stack(words, dim=-1)


def _philox_words(c0, c1, c2, c3, key, rounds: int = PHILOX_ROUNDS):
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    for _ in range(rounds):
        high0, low0 = _multiply_high_low(PHILOX_M0, c0)
        high1, low1 = _multiply_high_low(PHILOX_M1, c2)
        c0, c1, c2, c3 = high1 ^ c1 ^ k0, low1, high0 ^ c3 ^ k1, low0
        # The key schedule is the same for every block: plain Python integers.
        k0 = (k0 + PHILOX_W0) & _MASK32
        k1 = (k1 + PHILOX_W1) & _MASK32
    return c0, c1, c2, c3


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
    # (meta tensors hold no values to check)
    if value.numel() and value.device.type != "meta" and (bool((value < 0).any()) or bool((value >= upper).any())):
        raise ValueError(f"{name} must lie in [0, {upper})")
    return value.to(torch.int64)


def counter_uniforms(seed: int, chain_index, step, num_uniforms: int, dtype=None, device=None) -> torch.Tensor:
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

    Returns
    -------
    torch.Tensor, shape ``broadcast(chain_index, step).shape + (num_uniforms,)``
        float64: bit-identical to :func:`textsampling.randomness.counter_uniforms`; float32: those
        values rounded, clamped below 1.
    """
    seed = check_seed(seed)
    dtype = check_float_dtype(dtype)
    if isinstance(num_uniforms, bool) or not isinstance(num_uniforms, int) or num_uniforms < 0:
        raise ValueError(f"num_uniforms must be a non-negative int, got {num_uniforms!r}")
    if isinstance(chain_index, torch.Tensor):
        if device is not None and not same_device(chain_index.device, device):
            raise ValueError(f"chain_index is on {chain_index.device} but device={device!r} was asked for")
        device = chain_index.device
    else:
        device = resolve_device(device)
    chain_index = _as_index_tensor(chain_index, "chain_index", 2**62, device)
    step = _as_index_tensor(step, "step", 2**32, device)
    return _uniforms(seed, chain_index, step, num_uniforms, dtype)


def _uniforms(seed: int, chain_index: torch.Tensor, step, num_uniforms: int, dtype) -> torch.Tensor:
    """:func:`counter_uniforms` on arguments already checked (no device synchronisation)."""
    device = chain_index.device
    if isinstance(step, int):
        step = torch.tensor(step, dtype=torch.int64, device=device)
    chain_index, step = torch.broadcast_tensors(chain_index, step)
    num_blocks = (num_uniforms + 1) // 2
    block = torch.arange(num_blocks, dtype=torch.int64, device=device)
    shape = chain_index.shape + (num_blocks,)
    # counter words: (chain low, chain high, step, block), one block per pair of uniforms; each
    # broadcast to shape = chain_index.shape + (num_blocks,)
    words = _philox_words(
        (chain_index & _MASK32)[..., None].expand(shape),  # (..., num_blocks)
        (chain_index >> 32)[..., None].expand(shape),  # (..., num_blocks)
        step[..., None].expand(shape),  # (..., num_blocks)
        block.expand(shape),  # (..., num_blocks)
        (seed & _MASK32, seed >> 32),
    )
    # 52 bits per uniform: a whole word and the top 20 bits of the next; exact in float64.
    first = ((words[0] << 20) + (words[1] >> 12)).to(torch.float64)  # (..., num_blocks)
    second = ((words[2] << 20) + (words[3] >> 12)).to(torch.float64)  # (..., num_blocks)
    uniforms = (torch.stack([first, second], dim=-1) + 0.5) / _TWO_POW_52  # (..., num_blocks, 2)
    uniforms = uniforms.reshape(chain_index.shape + (2 * num_blocks,))[..., :num_uniforms]  # (..., num_uniforms)
    if dtype == torch.float32:
        # Rounding to nearest can give exactly 1.0 for u > 1 - 2**-25: keep the interval open.
        uniforms = uniforms.to(torch.float32).clamp_(max=largest_below_one(torch.float32))
    return uniforms


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
    """

    seed: int
    chain_index: torch.Tensor

    def __post_init__(self):
        check_seed(self.seed)
        chain_index = check_tensor(self.chain_index, "chain_index", integer=True, ndim=1)
        _as_index_tensor(chain_index, "chain_index", 2**62, None)
        object.__setattr__(self, "chain_index", chain_index.to(torch.int64))

    @classmethod
    def from_numpy(cls, generator, device=None) -> "CounterGenerator":
        """The twin of a NumPy :class:`~textsampling.randomness.CounterGenerator` (chains as a 1-D tensor)."""
        import numpy as np

        chain_index = torch.as_tensor(np.atleast_1d(np.asarray(generator.chain_index, dtype=np.int64)))
        return cls(generator.seed, chain_index.to(resolve_device(device)))

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
        return CounterGenerator(self.seed, self.chain_index.to(resolve_device(device)))

    def uniforms(self, step, num_uniforms: int, dtype=None) -> torch.Tensor:
        """Uniforms of step ``step`` (an int, or a tensor broadcast as in :func:`counter_uniforms`): ``(B, k)``."""
        if isinstance(step, int) and not isinstance(step, bool) and 0 <= step < 2**32:
            # chain_index was checked once at construction: no synchronisation per step.
            dtype = check_float_dtype(dtype)
            if isinstance(num_uniforms, bool) or not isinstance(num_uniforms, int) or num_uniforms < 0:
                raise ValueError(f"num_uniforms must be a non-negative int, got {num_uniforms!r}")
            return _uniforms(self.seed, self.chain_index, step, num_uniforms, dtype)
        return counter_uniforms(self.seed, self.chain_index, step, num_uniforms, dtype=dtype)


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
    uniforms = torch.rand(shape, generator=rng, dtype=dtype, device=rng.device)
    # torch.rand lies in [0, 1): an exact 0 would make log(u) = -inf; map it to the smallest normal.
    return uniforms.clamp_(min=torch.finfo(dtype).tiny)


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
        steps = torch.arange(first_step, first_step + num_steps, dtype=torch.int64, device=rng.device)
        return counter_uniforms(rng.seed, rng.chain_index[:, None], steps[None, :], num_uniforms, dtype=dtype)
    if num_chains is None:
        raise ValueError("num_chains is required with a torch.Generator (it has no chain_index)")
    return _torch_uniforms(rng, (num_chains, num_steps, num_uniforms), dtype)


# ----------------------------------------------------------------------------- uniforms -> variates
# The rules of textsampling.randomness on tensors: same floating operations, same decisions.
def integer_from_uniform(uniforms: torch.Tensor, num_values) -> torch.Tensor:
    """``floor(u * n)`` clamped to ``n - 1``, int64 (the clamp guards ``u n`` rounding up to ``n``).

    ``num_values`` is an int, or an integer tensor broadcastable to ``uniforms`` (one ``n >= 1`` per
    row: the number of positions of each chain's sentence, say).
    """
    if isinstance(num_values, torch.Tensor):
        num_values = num_values.to(torch.int64)
        values = torch.floor(uniforms * num_values.to(uniforms.dtype)).to(torch.int64)
        return torch.minimum(values, num_values - 1)
    return torch.floor(uniforms * num_values).to(torch.int64).clamp_(max=num_values - 1)


def normal_from_uniforms(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    r"""Box–Muller, cosine branch: :math:`\sqrt{-2 \log u_1} \cos(2 \pi u_2)`."""
    return torch.sqrt(-2.0 * torch.log(first)) * torch.cos(2.0 * math.pi * second)


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


def categorical_from_uniforms(uniforms: torch.Tensor, logits: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """Deterministic inverse-CDF map from uniforms to category indices.

    Parameters
    ----------
    uniforms : torch.Tensor, shape (...)
        Uniforms in (0, 1), one per draw.
    logits : torch.Tensor, shape (K,) or ``uniforms.shape + (K,)``
        Unnormalised log-probabilities (``-inf`` allowed), same dtype and device as ``uniforms``.
    validate : bool
        Check the values (one synchronisation); shapes, dtypes and devices are always checked.

    Returns
    -------
    torch.Tensor of int64, shape ``uniforms.shape``
    """
    uniforms = check_tensor(uniforms, "uniforms", integer=False)
    logits = check_tensor(logits, "logits", integer=False)
    check_same_device(uniforms=uniforms, logits=logits)
    check_same_dtype(uniforms=uniforms, logits=logits)
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (K,) or (..., K) with K >= 1, got {tuple(logits.shape)}")
    if logits.ndim > 1 and logits.shape[:-1] != uniforms.shape:
        raise ValueError(
            f"logits has rows of shape {tuple(logits.shape[:-1])} but uniforms has shape {tuple(uniforms.shape)}; "
            "give one row of logits per uniform, or a single 1-D row"
        )
    if validate:
        conditions, messages = check_logits(logits)
        raise_if(
            conditions + [~((uniforms > 0) & (uniforms < 1)).all()],
            messages + ["uniforms must lie in the open interval (0, 1)"],
        )
    num_categories = logits.shape[-1]
    # Shift each row by its max so the largest weight is exactly 1.
    weights = torch.exp(logits - logits.amax(dim=-1, keepdim=True))  # (K,) or (..., K)
    cumulative = torch.cumsum(weights, dim=-1)
    if logits.ndim == 1:
        # One distribution for every draw: first k with C_k > u * C_{K-1}.
        indices = torch.searchsorted(cumulative, uniforms * cumulative[-1], right=True)  # (...)
    else:
        threshold = uniforms * cumulative[..., -1]  # (...)
        indices = torch.searchsorted(cumulative.contiguous(), threshold[..., None], right=True)[..., 0]  # (...)
    indices = indices.clamp(max=num_categories - 1)
    # Rounding can push u * C_{K-1} up to C_{K-1}; never land on a trailing zero-weight state.
    last_positive = num_categories - 1 - torch.argmax((weights > 0).flip(-1).to(torch.int8), dim=-1)
    return torch.minimum(indices, last_positive)
