r"""Torch twin of :mod:`textsampling.reference.categorical`: inverse-CDF sampling, batched.

With weights :math:`w_k = \exp(\ell_k - \max_j \ell_j)` and cumulative sums :math:`C_k`, a uniform
:math:`u` selects :math:`k(u) = \min\{k : C_k > u\, C_{K-1}\}` — the same rule, in the same floating
operations, as the reference (Devroye 1986, ch. III.2), so both pick the same index from the same
uniform. The logits are either one row shared by every draw, shape ``(K,)``, or one row per draw,
shape ``(..., K)``; the search is ``torch.searchsorted`` (``O(log K)`` per draw).

Exactness: the float64 cumulative sums agree with NumPy's to the last bit or two (``exp`` of the two
libraries may differ by one ulp), so a decision can differ only when ``u C_{K-1}`` lands within an ulp
of a boundary — probability of order :math:`10^{-16}` per draw.
"""

from __future__ import annotations

import torch

from textsampling._validation import check_int
from textsampling.torch._validation import check_same_device, check_same_dtype, check_tensor, raise_if
from textsampling.torch.randomness import as_generator, draw_uniforms

__all__ = ["categorical_from_uniforms", "sample", "check_logits"]

#: A categorical draw consumes one uniform.
NUM_UNIFORMS = 1


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


def sample(rng, logits: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
    """Draw one category per chain (counter generator) or ``num_samples`` (``torch.Generator``).

    With a :class:`~textsampling.torch.randomness.CounterGenerator`, chain ``c`` draws with the uniform
    of ``(seed, c, step 0)``: the index the reference's ``sample`` gives for ``CounterGenerator(seed, c)``
    and ``num_samples = 1``.

    Parameters
    ----------
    rng : CounterGenerator or torch.Generator (on the device of ``logits``)
    logits : torch.Tensor, shape (K,)
    num_samples : int, optional
        Required with a ``torch.Generator``; with a counter generator, must equal its number of chains.

    Returns
    -------
    torch.Tensor of int64, shape (num_samples,)
    """
    rng = as_generator(rng)
    logits = check_tensor(logits, "logits", integer=False, ndim=1)
    if num_samples is not None:
        num_samples = check_int(num_samples, "num_samples")
    uniforms = draw_uniforms(rng, 0, 1, num_chains=num_samples, dtype=logits.dtype, device=logits.device)
    return categorical_from_uniforms(uniforms[:, 0], logits)
