"""The Gaussian-mixture target against scipy densities, numerical integration and exact draws."""

import numpy as np
import pytest
from scipy import integrate, stats

from textsampling.targets import GaussianMixture
from textsampling.testing.statistics import chi_square_counts_test


def _mixture_2d(num_bins=10):
    return GaussianMixture(
        [0.2, 0.5, 0.3], [[-2.0, 0.0], [1.5, 1.0], [0.0, -1.5]], [[0.5, 1.0], [1.0, 0.3], [0.7, 0.6]], num_bins
    )


def _mixture_1d(num_bins=10):
    return GaussianMixture([1.0, 2.0, 1.0], [-3.0, 0.5, 4.0], [0.4, 1.0, 2.0], num_bins)


# Every component of the 2-D mixture lies within 6 standard deviations of [-5, 5]^2, so its mass
# outside [-15, 15]^2 is below 1e-40: infinite cell edges are truncated there for quadrature.
TRUNCATE = 15.0


def _gauss_legendre_2d(mixture, x_range, y_range, num_nodes=160):
    """Integral of the density over a rectangle by a product Gauss–Legendre rule (vectorised)."""
    (x_low, x_high), (y_low, y_high) = (np.clip(r, -TRUNCATE, TRUNCATE) for r in (x_range, y_range))
    nodes, weights = np.polynomial.legendre.leggauss(num_nodes)
    x = 0.5 * (x_high - x_low) * nodes + 0.5 * (x_high + x_low)
    y = 0.5 * (y_high - y_low) * nodes + 0.5 * (y_high + y_low)
    grid = np.stack(np.meshgrid(x, y, indexing="ij"), axis=-1).reshape(-1, 2)
    density = np.exp(mixture.log_prob(grid)).reshape(num_nodes, num_nodes)
    return 0.25 * (x_high - x_low) * (y_high - y_low) * weights @ density @ weights


def _scipy_density(mixture, points):
    """Weighted sum of scipy.stats normal densities (the definition, in probability space)."""
    total = 0.0
    for weight, mean, scale in zip(mixture.weights, mixture.means, mixture.scales):
        total = total + weight * stats.multivariate_normal(mean, np.diag(scale**2)).pdf(points)
    return total


@pytest.mark.parametrize("make", [_mixture_1d, _mixture_2d])
def test_log_prob_matches_scipy(make):
    mixture = make()
    points = np.random.default_rng(0).normal(scale=3.0, size=(50, mixture.dimension))
    np.testing.assert_allclose(np.exp(mixture.log_prob(points)), _scipy_density(mixture, points), rtol=1e-12)
    # far out in a tail the density underflows but the log does not
    far = np.full((1, mixture.dimension), 200.0)
    assert np.isfinite(mixture.log_prob(far)[0]) and np.exp(mixture.log_prob(far)[0]) == 0.0
    assert mixture.log_prob(np.full((1, mixture.dimension), np.inf))[0] == -np.inf
    assert mixture.log_normalizer() == 0.0


def test_weights_are_normalised_and_zero_weight_components_are_ignored():
    with_zero = GaussianMixture([1.0, 0.0, 3.0], [0.0, 50.0, 2.0], [1.0, 1.0, 0.5])
    without = GaussianMixture([0.25, 0.75], [0.0, 2.0], [1.0, 0.5])
    points = np.linspace(-3, 5, 17)[:, None]
    np.testing.assert_allclose(with_zero.log_prob(points), without.log_prob(points), atol=1e-12)
    np.testing.assert_allclose(with_zero.weights, [0.25, 0.0, 0.75])


def test_density_integrates_to_one_and_moments_match_quadrature():
    mixture = _mixture_1d()
    density = lambda x: np.exp(mixture.log_prob([[x]])[0])  # noqa: E731
    total = integrate.quad(density, -np.inf, np.inf, epsabs=1e-12)[0]
    first = integrate.quad(lambda x: x * density(x), -np.inf, np.inf, epsabs=1e-12)[0]
    second = integrate.quad(lambda x: (x - first) ** 2 * density(x), -np.inf, np.inf, epsabs=1e-12)[0]
    np.testing.assert_allclose(total, 1.0, atol=1e-9)
    np.testing.assert_allclose(mixture.mean(), [first], atol=1e-9)
    np.testing.assert_allclose(mixture.covariance(), [[second]], atol=1e-8)


def test_two_dimensional_moments_by_the_law_of_total_covariance():
    mixture = _mixture_2d()
    # E[x] = sum_k w_k mu_k; Cov = E[Cov | k] + Cov[E | k], written with explicit loops
    mean = sum(w * m for w, m in zip(mixture.weights, mixture.means))
    within = sum(w * np.diag(s**2) for w, s in zip(mixture.weights, mixture.scales))
    between = sum(w * np.outer(m - mean, m - mean) for w, m in zip(mixture.weights, mixture.means))
    np.testing.assert_allclose(mixture.mean(), mean, atol=1e-14)
    np.testing.assert_allclose(mixture.covariance(), within + between, atol=1e-14)
    assert abs(mixture.covariance()[0, 1]) > 0.1  # the components make the coordinates correlated


def test_marginal_cdf_and_quantiles():
    mixture = _mixture_2d()
    # F_1(t) = P(x_1 < t): the joint density integrated over (-inf, inf) x (-inf, t)
    for t in (-1.0, 0.7):
        cdf = _gauss_legendre_2d(mixture, (-np.inf, np.inf), (-np.inf, t))
        np.testing.assert_allclose(mixture.marginal_cdf(t, dim=1), cdf, atol=1e-10)
        cdf = _gauss_legendre_2d(mixture, (-np.inf, t), (-np.inf, np.inf))
        np.testing.assert_allclose(mixture.marginal_cdf(t, dim=0), cdf, atol=1e-10)
    for dim in (0, 1):
        for q in (0.01, 0.5, 0.93):
            np.testing.assert_allclose(mixture.marginal_cdf(mixture.marginal_quantile(q, dim), dim), q, atol=1e-12)
    np.testing.assert_array_equal(mixture.marginal_cdf(np.array([-np.inf, np.inf]), 0), [0.0, 1.0])


def test_cells_one_dimension_match_quadrature_and_are_equiprobable():
    mixture = _mixture_1d(num_bins=10)
    edges = mixture.bin_edges()
    assert edges.shape == (11,) and edges[0] == -np.inf and edges[-1] == np.inf and np.all(np.diff(edges) > 0)
    density = lambda x: np.exp(mixture.log_prob([[x]])[0])  # noqa: E731
    by_quadrature = [integrate.quad(density, a, b, epsabs=1e-13)[0] for a, b in zip(edges[:-1], edges[1:])]
    np.testing.assert_allclose(mixture.cell_probabilities(), by_quadrature, atol=1e-9)
    np.testing.assert_allclose(mixture.cell_probabilities(), 0.1, atol=1e-12)


def test_cells_two_dimensions_match_gauss_legendre_quadrature():
    mixture = _mixture_2d(num_bins=4)
    edges0, edges1 = mixture.bin_edges(0), mixture.bin_edges(1)
    probabilities = mixture.cell_probabilities()
    assert probabilities.shape == (16,)
    np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-14)
    for cell in range(16):
        i, j = divmod(cell, 4)  # row-major: dimension 0 is the slow index
        expected = _gauss_legendre_2d(mixture, edges0[i : i + 2], edges1[j : j + 2])
        np.testing.assert_allclose(probabilities[cell], expected, atol=1e-10)
    # each dimension's bins are equiprobable marginally, but the joint cells are not uniform
    table = probabilities.reshape(4, 4)
    np.testing.assert_allclose(table.sum(axis=0), 1 / 4, atol=1e-12)
    np.testing.assert_allclose(table.sum(axis=1), 1 / 4, atol=1e-12)
    assert np.ptp(probabilities) > 0.05


def test_cell_index_is_row_major_over_the_bin_edges():
    mixture = _mixture_2d(num_bins=4)
    edges0, edges1 = mixture.bin_edges(0), mixture.bin_edges(1)
    points = np.random.default_rng(1).normal(scale=2.0, size=(200, 2))
    # the bins that contain each coordinate, by a loop over the edges
    expected = []
    for x, y in points:
        i = next(k for k in range(4) if edges0[k] <= x < edges0[k + 1])
        j = next(k for k in range(4) if edges1[k] <= y < edges1[k + 1])
        expected.append(4 * i + j)
    np.testing.assert_array_equal(mixture.cell_index(points), expected)


@pytest.mark.parametrize("make", [_mixture_1d, _mixture_2d])
def test_exact_sampling_goodness_of_fit_and_moments(make):
    # Pearson chi-square of 20,000 exact draws over the cells (small cells pooled by the kit),
    # false-fail rate 1e-4; and a z-test on each coordinate's mean at |z| < 4.42, two-sided
    # false-fail rate 1e-5 per coordinate (so <= 2e-5 together); fixed seeds.
    mixture = make()
    num_samples = 20_000
    draws = mixture.sample_exact(np.random.default_rng(31), num_samples)
    assert draws.shape == (num_samples, mixture.dimension)
    # The kit's test pools small cells by their probabilities (never N - sum: no 0/0 from rounding).
    result = chi_square_counts_test(mixture.cell_index(draws), mixture.cell_probabilities(), false_fail_rate=1e-4)
    assert result.passed, result
    standard_errors = np.sqrt(np.diag(mixture.covariance()) / num_samples)
    assert np.all(np.abs(draws.mean(axis=0) - mixture.mean()) < 4.42 * standard_errors)


def test_one_state_and_one_dimensional_shortcuts():
    mixture = _mixture_2d()
    np.testing.assert_allclose(mixture.log_prob([0.3, -0.2]), mixture.log_prob([[0.3, -0.2]]))
    assert mixture.state_shape == (2,)
    one_d = GaussianMixture([1.0], [[2.0]], [[0.5]])
    np.testing.assert_allclose(one_d.log_prob([[2.0]]), stats.norm(2.0, 0.5).logpdf([2.0]))
    assert one_d.state_shape == (1,)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(weights=[0.5, -0.5]), ValueError, "weights must be non-negative"),
        (dict(weights=[0.0, 0.0]), ValueError, "weights are all zero"),
        (dict(weights=[np.nan, 1.0]), ValueError, "weights must be finite"),
        (dict(weights=[]), ValueError, "weights must be a non-empty 1-D array"),
        (dict(means=[[0.0, 0.0]]), ValueError, r"means must have shape \(K, D\) = \(2, D\)"),
        (dict(means=np.zeros((2, 3)), scales=np.ones((2, 3))), ValueError, "means must have D = 1 or 2"),
        (dict(means=[[0.0, np.nan], [0.0, 0.0]]), ValueError, "means must be finite"),
        (dict(scales=[[1.0, 1.0], [1.0, 0.0]]), ValueError, "scales must be standard deviations > 0"),
        (dict(scales=[[1.0, 1.0], [1.0, -2.0]]), ValueError, "scales must be standard deviations > 0"),
        (dict(scales=[[1.0, np.inf], [1.0, 1.0]]), ValueError, "scales must be finite"),
        (dict(scales=[1.0, 1.0]), ValueError, r"scales must have the shape of means \(2, 2\)"),
        (dict(num_bins=0), ValueError, "num_bins must be an int >= 1"),
        (dict(num_bins=2.5), TypeError, "num_bins must be an int"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    arguments = dict(weights=[0.5, 0.5], means=[[0.0, 0.0], [1.0, 1.0]], scales=[[1.0, 1.0], [1.0, 1.0]])
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        GaussianMixture(**arguments)


def test_bad_calls():
    mixture = _mixture_2d()
    with pytest.raises(ValueError, match=r"states must have shape \(N, 2\)"):
        mixture.log_prob(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="states contains NaN"):
        mixture.log_prob([[0.0, np.nan]])
    with pytest.raises(ValueError, match=r"dim must be in 0\.\.1"):
        mixture.marginal_cdf(0.0, dim=2)
    with pytest.raises(ValueError, match=r"probability must lie in the open interval \(0, 1\)"):
        mixture.marginal_quantile(1.0)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        mixture.sample_exact(3, 10)
    with pytest.raises(ValueError, match="num_samples must be an int >= 0"):
        mixture.sample_exact(np.random.default_rng(0), -1)
