r"""Torch twin of :mod:`textsampling.reference.categorical`: inverse-CDF draws, batched.

The rule (the first index whose cumulative weight exceeds the uniform times the total), why it samples
the softmax, and the paper are the reference's, in the same floating operations; read them there, so
both pick the same index from the same uniform. The batch contract:

* ``logits`` of :func:`sample` is one row ``(K,)``, float32 or float64, shared by every draw (``-inf``
  allowed, at least one entry finite);
* one uniform per draw (:data:`NUM_UNIFORMS`), drawn in the logits' dtype on their device;
* :func:`sample` returns int64 ``(N,)``: ``N = num_samples``, or the counter generator's chains;
* the map itself is :func:`categorical_from_uniforms`, which also takes one row per draw, ``(..., K)``:
  the rule of :func:`textsampling.torch.randomness.categorical_from_uniforms`, the same index bit for
  bit (``tests/test_twin_categorical_fast.py``), with less work per draw (see its notes).

Exactness: the float64 cumulative sums agree with NumPy's to the last bit or two (``exp`` of the two
libraries may differ by one ulp), so a decision can differ only when the scaled uniform lands within an
ulp of a boundary — probability of order :math:`10^{-16}` per draw.
"""

from __future__ import annotations

import torch

from textsampling._validation import check_int
from textsampling.torch._validation import check_same_device, check_same_dtype, check_tensor, raise_if
from textsampling.torch.randomness import as_generator, check_logits, draw_uniforms

__all__ = [
    "categorical_from_uniforms",
    "inverse_cdf",
    "inverse_cdf_and_totals",
    "sample",
    "check_logits",
    "check_draw_arguments",
    "may_branch_on_values",
]

#: Rows at most this wide are searched by counting (one comparison per entry, vectorised), wider ones
#: by ``torch.searchsorted`` (a binary search per row); both give the same index (see :func:`inverse_cdf`).
#: At most 255: the count is kept in uint8.
COUNT_SEARCH_MAX_CATEGORIES = 64

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


def may_branch_on_values(tensor: torch.Tensor) -> bool:
    """Whether code may look at ``tensor``'s values to skip work: eager on the CPU, where reading a flag
    waits for no device and breaks no ``torch.compile`` graph. Elsewhere the branch-free form runs; both
    forms give the same result bit for bit (each fast branch is pinned by a test on the other's answers)."""
    return tensor.device.type == "cpu" and not torch.compiler.is_compiling()


def categorical_from_uniforms(uniforms: torch.Tensor, logits: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """Deterministic inverse-CDF map from uniforms to category indices (the reference's rule).

    The same checks, errors and indices as :func:`textsampling.torch.randomness.categorical_from_uniforms`
    (shapes, dtypes and devices always; values when ``validate``), computed by :func:`inverse_cdf`.

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
      most :data:`COUNT_SEARCH_MAX_CATEGORIES` entries the CPU counts, ``K - sum(C > t)``.
    * *Guard.* A found :math:`k < K` has :math:`w_k > 0` (:math:`C_k > t \ge C_{k-1}` so
      :math:`C_k > C_{k-1}`; or :math:`k = 0` and :math:`C_0 > t`, where a negative threshold makes the guard
      return 0 anyway), so the guard (never a trailing zero weight) can only act where nothing was found,
      :math:`k = K`: in round-to-nearest :math:`u\, C_{K-1} < C_{K-1}` for every float :math:`u < 1`, so only
      a uniform the validating rule refuses (or a NaN row) gets there. On the CPU the last positive weight
      is computed only when some row got there (one flag read); elsewhere always, as the rule writes it.
    """
    num_categories = logits.shape[-1]
    shift = logits.amax(dim=-1, keepdim=True)  # (..., 1): the largest weight is exactly 1
    weights = logits.sub_(shift) if overwrite_logits else torch.sub(logits, shift)  # (..., K)
    weights = weights.exp_()  # (..., K)
    cumulative = torch.cumsum(weights, dim=-1, out=cumulative)  # (..., K)
    on_cpu = uniforms.device.type == "cpu"
    if logits.ndim == 1:
        # One distribution for every draw: first k with C_k > u * C_{K-1}.
        indices = torch.searchsorted(cumulative, uniforms * cumulative[-1], right=True)  # (...)
    else:
        threshold = (uniforms * cumulative[..., -1])[..., None]  # (..., 1)
        if on_cpu and num_categories <= COUNT_SEARCH_MAX_CATEGORIES:
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
