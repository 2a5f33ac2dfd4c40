r"""A 1-D or 2-D mixture of diagonal Gaussians: the continuous toy target (random-walk MH intuition).

.. math::
    \pi(x) = \sum_{k=1}^{K} w_k \prod_{d=1}^{D} \frac{1}{\sigma_{kd}} \,
    \varphi\!\Big(\frac{x_d - \mu_{kd}}{\sigma_{kd}}\Big), \qquad
    \log \pi(x) = \operatorname{logsumexp}_k \Big[\log w_k - \sum_d \Big(\log \sigma_{kd}
    + \tfrac12 \log 2\pi + \tfrac12 \big(\tfrac{x_d - \mu_{kd}}{\sigma_{kd}}\big)^2\Big)\Big].

Everything a sampler estimates is known in closed form: the density (normalised, so
:math:`\log Z = 0`), exact draws (pick a component, then a Gaussian), the mean
:math:`\sum_k w_k \mu_k`, the covariance
:math:`\sum_k w_k (\operatorname{diag}\sigma_k^2 + \mu_k \mu_k^\top) - \mu \mu^\top`, and the
marginal CDFs :math:`F_d(t) = \sum_k w_k \Phi((t - \mu_{kd}) / \sigma_{kd})`.

The space is continuous, so this is *not* a :class:`~textsampling.targets.base.DiscreteTarget`
and cannot be enumerated. For goodness-of-fit tests it offers the same cell API: the plane is cut into
a product grid of per-dimension bins with equal *marginal* probability (edges = marginal quantiles
found by root-finding); the exact probability of a cell :math:`[a_1, b_1) \times [a_2, b_2)` is

.. math::
    P(\text{cell}) = \sum_k w_k \prod_d \big(\Phi_{kd}(b_d) - \Phi_{kd}(a_d)\big),

which is not uniform in 2-D (the components do not factor across dimensions), but sums to one.

Reference: Su Jianlin, 【搜出来的文本】 part 2 (spaces.ac.cn/archives/8084) — Metropolis–Hastings on
a target known up to a constant; Bishop (2006), *Pattern Recognition and Machine Learning*, §2.3.9.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp, ndtr

from textsampling._validation import check_int, check_probabilities

__all__ = ["GaussianMixture"]

#: log(2 pi) / 2, the constant of a standard normal log-density (the torch twin imports it).
HALF_LOG_TWO_PI = 0.5 * np.log(2.0 * np.pi)


def _interval_probability(lower_z, upper_z):
    """:math:`\\Phi(b) - \\Phi(a)` for standardised ``a <= b``, without cancellation in the upper tail."""
    # For a > 0 both CDFs are near 1; the mirrored difference Phi(-a) - Phi(-b) keeps the digits.
    return np.where(lower_z > 0, ndtr(-lower_z) - ndtr(-upper_z), ndtr(upper_z) - ndtr(lower_z))


class GaussianMixture:
    """Mixture of ``K`` Gaussians with diagonal covariances in ``D = 1`` or ``2`` dimensions.

    States are float arrays of shape ``state_shape = (D,)``; a batch is ``(N, D)``. Not enumerable:
    exact answers come from closed forms, and goodness-of-fit tests use :meth:`cell_index` and
    :meth:`cell_probabilities` (equal-probability marginal bins, ``num_bins`` per dimension).

    Parameters
    ----------
    weights : array_like of float, shape (K,)
        Mixture weights :math:`w_k \\ge 0`, finite, positive sum; normalised here.
    means : array_like of float, shape (K, D)
        Component means :math:`\\mu_k`, finite. Shape ``(K,)`` is read as ``D = 1``.
    scales : array_like of float, shape (K, D)
        Component standard deviations :math:`\\sigma_{kd} > 0`, finite. Shape ``(K,)`` is read as ``D = 1``.
    num_bins : int, default 10
        Bins per dimension for the goodness-of-fit cells (``num_bins ** D`` cells), at least 1.
    """

    def __init__(self, weights, means, scales, num_bins: int = 10):
        self.log_weights = check_probabilities(weights, name="weights")  # (K,) logs, may hold -inf
        self.log_weights = self.log_weights - logsumexp(self.log_weights)
        self.weights = np.exp(self.log_weights)
        num_components = self.log_weights.shape[0]
        self.means = self._check_parameter(means, "means", num_components)
        self.scales = self._check_parameter(scales, "scales", num_components)
        if self.scales.shape != self.means.shape:
            raise ValueError(
                f"scales must have the shape of means {self.means.shape}, got {self.scales.shape}"
            )
        if np.any(self.scales <= 0):
            raise ValueError(f"scales must be standard deviations > 0, got minimum {self.scales.min()}")
        self.num_components = num_components
        self.dimension = int(self.means.shape[1])
        self.state_shape = (self.dimension,)
        self.num_bins = check_int(num_bins, "num_bins", minimum=1)
        self._edges = {}  # dim -> bin edges (computed on first use)

    @staticmethod
    def _check_parameter(values, name: str, num_components: int) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]  # (K,) -> (K, 1): one dimension
        if values.ndim != 2 or values.shape[0] != num_components:
            raise ValueError(
                f"{name} must have shape (K, D) = ({num_components}, D) with K = len(weights), "
                f"got {np.shape(values)}"
            )
        if values.shape[1] not in (1, 2):
            raise ValueError(f"{name} must have D = 1 or 2 columns (dimensions), got {values.shape[1]}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} must be finite (no NaN or inf)")
        return values

    # ----------------------------------------------------------------- density
    def _as_points(self, states, name: str = "states") -> np.ndarray:
        states = np.asarray(states, dtype=np.float64)
        if states.ndim == 1:
            states = states[None]  # one state (D,) -> (1, D)
        if states.ndim != 2 or states.shape[1] != self.dimension:
            raise ValueError(
                f"{name} must have shape (N, {self.dimension}) (or ({self.dimension},) for one state), "
                f"got {np.shape(states)}"
            )
        if np.any(np.isnan(states)):
            raise ValueError(f"{name} contains NaN")
        return states

    def component_log_probs(self, states) -> np.ndarray:
        """:math:`\\log w_k + \\log \\mathcal N(x; \\mu_k, \\operatorname{diag}\\sigma_k^2)`, shape ``(N, K)``."""
        points = self._as_points(states)
        standardised = (points[:, None, :] - self.means[None]) / self.scales[None]  # (N, K, D)
        log_densities = -np.sum(
            np.log(self.scales)[None] + HALF_LOG_TWO_PI + 0.5 * standardised**2, axis=2
        )  # (N, K)
        return self.log_weights[None] + log_densities

    def log_prob(self, states) -> np.ndarray:
        """Exact normalised :math:`\\log \\pi(x)`, shape ``(N,)``; ``-inf`` at infinite coordinates."""
        return logsumexp(self.component_log_probs(states), axis=1)

    def log_normalizer(self) -> float:
        """:math:`\\log Z = 0`: :meth:`log_prob` is already normalised."""
        return 0.0

    def sample_exact(self, rng, num_samples: int) -> np.ndarray:
        """Independent exact draws: a component :math:`k \\sim w`, then :math:`\\mu_k + \\sigma_k z`.

        Parameters
        ----------
        rng : numpy.random.Generator
        num_samples : int

        Returns
        -------
        numpy.ndarray of float64, shape ``(num_samples, D)``
        """
        from textsampling.randomness import categorical_from_uniforms

        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        num_samples = check_int(num_samples, "num_samples")
        components = categorical_from_uniforms(rng.random(num_samples), self.log_weights)
        normals = rng.standard_normal((num_samples, self.dimension))
        return self.means[components] + self.scales[components] * normals

    # ----------------------------------------------------------------- moments and marginals
    def mean(self) -> np.ndarray:
        """:math:`\\mathbb{E}[x] = \\sum_k w_k \\mu_k`, shape ``(D,)``."""
        return self.weights @ self.means

    def covariance(self) -> np.ndarray:
        """Exact covariance, shape ``(D, D)``.

        :math:`\\sum_k w_k(\\operatorname{diag}\\sigma_k^2 + \\mu_k\\mu_k^\\top) - \\mu\\mu^\\top`
        (law of total covariance).
        """
        second_moment = np.einsum("k,kd,ke->de", self.weights, self.means, self.means)
        second_moment += np.diag(self.weights @ self.scales**2)
        mean = self.mean()
        return second_moment - np.outer(mean, mean)

    def _check_dim(self, dim) -> int:
        dim = check_int(dim, "dim")
        if dim >= self.dimension:
            raise ValueError(f"dim must be in 0..{self.dimension - 1}, got {dim}")
        return dim

    def marginal_cdf(self, x, dim: int = 0) -> np.ndarray:
        """:math:`F_d(x) = \\sum_k w_k \\Phi((x - \\mu_{kd}) / \\sigma_{kd})`, same shape as ``x``."""
        dim = self._check_dim(dim)
        x = np.asarray(x, dtype=np.float64)
        standardised = (x[..., None] - self.means[:, dim]) / self.scales[:, dim]  # (..., K)
        return ndtr(standardised) @ self.weights

    def marginal_quantile(self, probability, dim: int = 0) -> float:
        """The :math:`t` with :math:`F_d(t) = q`, for ``0 < q < 1``, by Brent's root-finding."""
        dim = self._check_dim(dim)
        probability = float(probability)
        if not 0 < probability < 1:
            raise ValueError(f"probability must lie in the open interval (0, 1), got {probability}")
        # F_d is continuous and increasing; 40 standard deviations beyond every component bracket it.
        lower = np.min(self.means[:, dim] - 40 * self.scales[:, dim])
        upper = np.max(self.means[:, dim] + 40 * self.scales[:, dim])
        return float(
            brentq(lambda t: self.marginal_cdf(t, dim) - probability, lower, upper, xtol=1e-13, rtol=1e-15)
        )

    # ----------------------------------------------------------------- goodness-of-fit cells
    def bin_edges(self, dim: int = 0) -> np.ndarray:
        """Edges of the equal-probability bins of dimension ``dim``: ``(num_bins + 1,)``, from -inf to inf."""
        dim = self._check_dim(dim)
        if dim not in self._edges:  # root-finding once per dimension, then cached
            interior = [self.marginal_quantile(j / self.num_bins, dim) for j in range(1, self.num_bins)]
            self._edges[dim] = np.concatenate([[-np.inf], interior, [np.inf]])
        return self._edges[dim].copy()

    def cell_index(self, states) -> np.ndarray:
        """Cell of each state, ``(N,)`` ints in ``0..num_bins**D - 1`` (row-major over dimensions)."""
        points = self._as_points(states)
        index = np.zeros(points.shape[0], dtype=np.int64)
        for dim in range(self.dimension):
            interior = self.bin_edges(dim)[1:-1]
            # bin j holds edges[j] <= x < edges[j + 1]
            index = index * self.num_bins + np.searchsorted(interior, points[:, dim], side="right")
        return index

    def cell_probabilities(self) -> np.ndarray:
        """Exact :math:`\\sum_k w_k \\prod_d (\\Phi_{kd}(b_d) - \\Phi_{kd}(a_d))` per cell, ``(num_bins**D,)``."""
        per_dimension = []
        for dim in range(self.dimension):
            edges = self.bin_edges(dim)
            standardised = (edges[None, :] - self.means[:, dim, None]) / self.scales[:, dim, None]  # (K, B+1)
            per_dimension.append(_interval_probability(standardised[:, :-1], standardised[:, 1:]))  # (K, B)
        if self.dimension == 1:
            return self.weights @ per_dimension[0]
        joint = np.einsum("k,ki,kj->ij", self.weights, per_dimension[0], per_dimension[1])  # (B, B)
        return joint.reshape(-1)

    def __repr__(self) -> str:
        return f"GaussianMixture(num_components={self.num_components}, dimension={self.dimension})"
