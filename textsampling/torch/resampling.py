r"""Torch twin of :mod:`textsampling.reference.resampling`: the four schemes, batched over runs.

The math (why each scheme is unbiased, the inverse-CDF rule, the uniforms each consumes) is the
reference's; read it there. The batch contract:

* ``log_weights`` is ``(R, N)``: ``R`` independent particle systems of ``N`` particles each;
* ``uniforms`` is ``(R, k)`` with ``k = num_uniforms(N, scheme)``, row ``r`` the uniforms of run ``r``;
* :func:`ancestors` returns int64 ``(R, N)``, row ``r`` equal to the reference's ``ancestors(uniforms[r],
  log_weights[r], scheme)`` — the same floating operations (``exp`` after subtracting the row maximum,
  sequential cumulative sums, the total as the last cumulative sum), so in float64 on the CPU a
  decision can differ only when a point lands within an ulp of a cumulative weight (``exp`` of the two
  libraries may differ by one ulp). In float32, torch's CPU ``cumsum`` rounds each sum from a wider
  accumulator, and off the CPU a parallel ``cumsum`` groups the additions otherwise: the sums may then
  differ by several ulps (up to 13 over five rows of 1,000 uniform float32 weights, against NumPy's float32
  sums).

No Python loop over runs: the residual scheme's variable number of deterministic copies is handled by
a search in the cumulative copy counts, ancestor ``n`` of run ``r`` being a copy when ``n`` is below
that run's number of copies and the ``(n - copies)``-th residual draw otherwise.
"""

from __future__ import annotations

import torch

from textsampling.reference.resampling import SCHEMES, check_scheme, num_uniforms
from textsampling.torch._validation import check_tensor, raise_if
from textsampling.torch.randomness import cumulative_weights

__all__ = [
    "SCHEMES",
    "num_uniforms",
    "check_log_weights",
    "effective_sample_size",
    "inverse_cdf",
    "points",
    "ancestors",
    "offspring_counts",
]


def check_log_weights(log_weights, name: str = "log_weights") -> torch.Tensor:
    """A float ``(R, N)`` tensor, ``N >= 1``, no NaN or +inf, at least one finite entry per row."""
    log_weights = check_tensor(log_weights, name, integer=False, ndim=2)
    if log_weights.shape[1] == 0:
        raise ValueError(f"{name} must have at least one particle per row, got shape {tuple(log_weights.shape)}")
    raise_if(
        [torch.isnan(log_weights).any(), (log_weights == torch.inf).any(),
         (log_weights == -torch.inf).all(dim=1).any()],
        [f"{name} contains NaN; use -inf for a particle of weight zero",
         f"{name} contains +inf; log-weights must be finite or -inf",
         f"{name} is -inf everywhere in some row: every particle of that run has weight zero"],
    )
    return log_weights


def effective_sample_size(log_weights: torch.Tensor) -> torch.Tensor:
    """Kong's ESS of each row, ``(R,)``: :math:`(\\sum w)^2 / \\sum w^2`; 0 for a row of zero weights."""
    log_total = torch.logsumexp(log_weights, dim=-1)  # (R,)
    ess = torch.exp(2.0 * log_total - torch.logsumexp(2.0 * log_weights, dim=-1))  # (R,)
    return torch.where(log_total == -torch.inf, torch.zeros_like(ess), ess)


def _weights(log_weights: torch.Tensor):
    """``exp(log w - max)`` and its cumulative sums, both ``(R, N)`` (the reference's operations).

    The sums come from :func:`~textsampling.torch.randomness.cumulative_weights`: in order on the CPU,
    and off it made to repeat at zero weights, so that a particle of weight zero is never an ancestor.
    """
    weights = torch.exp(log_weights - log_weights.max(dim=-1, keepdim=True).values)  # (R, N)
    return weights, cumulative_weights(weights)  # (R, N), (R, N)


def inverse_cdf(points_: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """``min{k : C_k > v C_N}`` for points ``(R, M)`` against the log-weights ``(R, N)`` -> int64 ``(R, M)``."""
    weights, cumulative = _weights(log_weights)  # (R, N)
    thresholds = points_ * cumulative[:, -1:]  # (R, M)
    indices = torch.searchsorted(cumulative, thresholds.contiguous(), right=True)  # (R, M)
    num_particles = weights.shape[-1]
    last_positive = num_particles - 1 - torch.argmax((weights.flip(-1) > 0).to(torch.int64), dim=-1)  # (R,)
    return torch.minimum(indices, last_positive[:, None])


def points(uniforms: torch.Tensor, num_particles: int, scheme: str) -> torch.Tensor:
    """The points ``(R, N)`` of multinomial, stratified or systematic (see the reference)."""
    strata = torch.arange(num_particles, dtype=uniforms.dtype, device=uniforms.device)  # (N,)
    if scheme == "multinomial":
        return uniforms[:, :num_particles]
    if scheme == "stratified":
        return (strata + uniforms[:, :num_particles]) / num_particles  # (R, N)
    if scheme == "systematic":
        return (strata + uniforms[:, :1]) / num_particles  # (R, N)
    raise ValueError(f"points: scheme must be multinomial, stratified or systematic, got {scheme!r}")


def ancestors(uniforms, log_weights, scheme: str = "systematic", *, validate: bool = True) -> torch.Tensor:
    """Ancestor indices ``(R, N)`` of ``scheme``; row ``r`` is the reference's on row ``r``.

    Parameters
    ----------
    uniforms : torch.Tensor, shape (R, num_uniforms(N, scheme))
    log_weights : torch.Tensor, shape (R, N), same dtype and device
    scheme : {"multinomial", "stratified", "systematic", "residual"}
    validate : bool
        Check the values (one synchronisation); shapes are always checked.
    """
    scheme = check_scheme(scheme)
    log_weights = check_log_weights(log_weights) if validate else log_weights
    num_runs, num_particles = log_weights.shape
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    needed = num_uniforms(num_particles, scheme)
    if uniforms.shape[0] != num_runs or uniforms.shape[1] < needed:
        raise ValueError(
            f"uniforms must have shape ({num_runs}, >= {needed}) for {scheme} resampling of log_weights "
            f"{tuple(log_weights.shape)}, got {tuple(uniforms.shape)}"
        )
    if scheme != "residual":
        return inverse_cdf(points(uniforms, num_particles, scheme), log_weights)
    weights, cumulative = _weights(log_weights)  # (R, N)
    scaled = num_particles * weights / cumulative[:, -1:]  # (R, N), N W_i
    copies = torch.floor(scaled).to(torch.int64)  # (R, N)
    cumulative_copies = torch.cumsum(copies, dim=-1)  # (R, N)
    num_copies = cumulative_copies[:, -1:]  # (R, 1)
    slot = torch.arange(num_particles, device=log_weights.device).expand(num_runs, num_particles)  # (R, N)
    # slot n < copies: the particle whose cumulative copy count first exceeds n
    copied = torch.searchsorted(cumulative_copies, slot.contiguous(), right=True)  # (R, N)
    # slot n >= copies: residual draw number n - copies, with its own uniform
    residual_index = (slot - num_copies).clamp(min=0)  # (R, N)
    residual_uniforms = torch.gather(uniforms[:, :num_particles], 1, residual_index)  # (R, N)
    residual_log_weights = torch.log(scaled - copies.to(scaled.dtype))  # (R, N), -inf where no residual
    # a run with no residual draw (all copies) has only -inf residuals: give it any valid row, unused
    residual_log_weights = torch.where(
        (slot < num_copies).all(dim=-1, keepdim=True), torch.zeros_like(residual_log_weights), residual_log_weights
    )
    drawn = inverse_cdf(residual_uniforms, residual_log_weights)  # (R, N)
    return torch.where(slot < num_copies, copied, drawn)


def offspring_counts(ancestor_indices: torch.Tensor, num_particles: int) -> torch.Tensor:
    """Offspring counts ``(R, N)``: ``[r, i]`` = how many ancestors of run ``r`` equal ``i``."""
    counts = torch.zeros(ancestor_indices.shape[0], num_particles, dtype=torch.int64, device=ancestor_indices.device)
    return counts.scatter_add_(1, ancestor_indices, torch.ones_like(ancestor_indices))
