r"""Torch twin of :class:`textsampling.targets.GaussianMixture`: the continuous toy target, batched.

.. math::
    \log \pi(x) = \operatorname{logsumexp}_k \Big[\log w_k - \sum_d \Big(\log \sigma_{kd}
    + \tfrac12 \log 2\pi + \tfrac12 \big(\tfrac{x_d - \mu_{kd}}{\sigma_{kd}}\big)^2\Big)\Big]

for states ``(N, D)`` (or ``(N,)`` when ``D = 1``, the shape a 1-D random walk carries). The tables
(:math:`\log w`, :math:`\mu`, :math:`\sigma`, :math:`\log\sigma`) come from the reference; the
``logsumexp`` is torch's, so float64 values agree with the reference to an ulp, not always bit for bit.
Goodness-of-fit cells and exact draws are the reference's (Bishop 2006, §2.3.9; part 2 of the series).
"""

from __future__ import annotations

import numpy as np
import torch

from textsampling.targets.gaussian_mixture import HALF_LOG_TWO_PI
from textsampling.targets.gaussian_mixture import GaussianMixture as ReferenceGaussianMixture
from textsampling.torch._validation import check_tensor, same_device
from textsampling.torch.targets.base import TorchTarget

__all__ = ["GaussianMixture"]


class GaussianMixture(TorchTarget):
    """Mixture of diagonal Gaussians in 1 or 2 dimensions (arguments as the reference, then dtype, device)."""

    _reference_class = ReferenceGaussianMixture

    def __init__(self, weights, means, scales, num_bins: int = 10, dtype=None, device=None):
        self._setup(ReferenceGaussianMixture(weights, means, scales, num_bins), dtype, device)

    def _build(self) -> None:
        self.dimension = self.reference.dimension
        self.num_components = self.reference.num_components
        self.log_weights = self._table(self.reference.log_weights)  # (K,)
        self.means = self._table(self.reference.means)  # (K, D)
        self.scales = self._table(self.reference.scales)  # (K, D)
        self.log_scales = self._table(np.log(self.reference.scales))  # (K, D), NumPy's logs

    def _as_points(self, states: torch.Tensor) -> torch.Tensor:
        states = check_tensor(states, "states", integer=False)
        if not same_device(states.device, self.device):
            raise ValueError(f"states is on {states.device} but the target lives on {self.device}; use .to()")
        if states.dtype != self.dtype:
            raise TypeError(f"states must have the target's dtype {self.dtype}, got {states.dtype}")
        if states.ndim == 1 and self.dimension == 1:
            states = states[:, None]  # (N,) -> (N, 1)
        if states.ndim != 2 or states.shape[1] != self.dimension:
            raise ValueError(
                f"states must have shape (N, {self.dimension})"
                + (" or (N,)" if self.dimension == 1 else "")
                + f", got {tuple(states.shape)}"
            )
        return states

    def component_log_probs(self, states: torch.Tensor) -> torch.Tensor:
        """:math:`\\log w_k + \\log \\mathcal N(x; \\mu_k, \\operatorname{diag}\\sigma_k^2)`, ``(N, K)``."""
        points = self._as_points(states)
        standardised = (points[:, None, :] - self.means[None]) / self.scales[None]  # (N, K, D)
        terms = self.log_scales[None] + HALF_LOG_TWO_PI + 0.5 * standardised**2  # (N, K, D)
        log_densities = -terms.sum(dim=2)  # (N, K); D <= 2, so any order of addition is exact
        return self.log_weights[None] + log_densities

    def log_prob(self, states: torch.Tensor) -> torch.Tensor:
        """Normalised :math:`\\log\\pi(x)`, ``(N,)``."""
        return torch.logsumexp(self.component_log_probs(states), dim=1)
