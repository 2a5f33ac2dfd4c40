r"""Torch twin of :mod:`textsampling.reference.categorical`: inverse-CDF draws, batched.

The rule (the first index whose cumulative weight exceeds the uniform times the total), why it samples
the softmax, and the paper are the reference's, in the same floating operations; read them there, so
both pick the same index from the same uniform. The batch contract:

* ``logits`` of :func:`sample` is one row ``(K,)``, float32 or float64, shared by every draw (``-inf``
  allowed, at least one entry finite);
* one uniform per draw (:data:`NUM_UNIFORMS`), drawn in the logits' dtype on their device;
* :func:`sample` returns int64 ``(N,)``: ``N = num_samples``, or the counter generator's chains;
* the map itself is :func:`categorical_from_uniforms`, which also takes one row per draw, ``(..., K)``;
  it and its unchecked core :func:`inverse_cdf` live in :mod:`textsampling.torch.randomness` beside the
  other uniform-to-variate maps and are re-exported here. They do less work per draw than the rule as
  first written (count search, lazy guard: see :func:`inverse_cdf_and_totals`) and give its index bit for
  bit (``tests/test_twin_categorical_fast.py``, against ``tests/categorical_rule.py``).

Exactness: the float64 cumulative sums agree with NumPy's to the last bit or two (``exp`` of the two
libraries may differ by one ulp), so a decision can differ only when the scaled uniform lands within an
ulp of a boundary — probability of order :math:`10^{-16}` per draw.
"""

from __future__ import annotations

import torch

from textsampling._validation import check_int
from textsampling.torch._validation import check_tensor
from textsampling.torch.randomness import (  # the rule lives beside the other uniform-to-variate maps
    as_generator,
    categorical_from_uniforms,
    check_draw_arguments,
    check_logits,
    draw_uniforms,
    inverse_cdf,
    inverse_cdf_and_totals,
    may_branch_on_values,
)

__all__ = [
    "categorical_from_uniforms",
    "inverse_cdf",
    "inverse_cdf_and_totals",
    "sample",
    "check_logits",
    "check_draw_arguments",
    "may_branch_on_values",
]

#: A categorical draw consumes one uniform.
NUM_UNIFORMS = 1


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
    uniforms = draw_uniforms(rng, 0, 1, num_chains=num_samples, dtype=logits.dtype, device=logits.device)  # (N, 1)
    return categorical_from_uniforms(uniforms[:, 0], logits)  # (N,) from uniforms[:, 0] (N,) and logits (K,)
