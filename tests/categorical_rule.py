"""The torch inverse-CDF rule as first written (searchsorted, the trailing-zero guard always computed).

The oracle of the tests of :func:`textsampling.torch.categorical.categorical_from_uniforms`, which does
less work per draw (count search, lazy guard) and must give the same index bit for bit; the package
keeps only that one implementation. The same floating operations as the NumPy reference's rule; the
argument checks are the package's (``check_draw_arguments``).
"""

from __future__ import annotations

import torch

from textsampling.torch._validation import raise_if
from textsampling.torch.randomness import check_draw_arguments, check_logits


def branch_free_rule(uniforms: torch.Tensor, logits: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """The inverse-CDF map from uniforms to category indices, every operation on every draw.

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
    uniforms, logits = check_draw_arguments(uniforms, logits)  # the package's argument checks
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
