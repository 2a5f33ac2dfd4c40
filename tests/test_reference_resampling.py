"""Resampling schemes: unbiased offspring counts proved exactly, a statistical check of the whole pipeline,
and a cross-check against the `particles` package (Chopin & Papaspiliopoulos' companion code).

Exact: each scheme's ancestors are a piecewise-constant function of its uniforms, with breakpoints where a
point v_n crosses a cumulative weight C_k. Integrating the *code's* output over those intervals (evaluating
it at each interval's midpoint, weighting by the interval's length) gives E[O_i] exactly, which must equal
N W_i to 1e-12. Stratified and multinomial ancestors n depend on u_n alone, so E[O_i] = sum_n P(A_n = i)
and each term is a one-dimensional integral; residual adds its deterministic copies to the integral over
each residual draw's uniform.
"""

from __future__ import annotations

import os
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp

from textsampling.gallery.smc import RESAMPLER_BUGS
from textsampling.reference import resampling

SCHEMES = resampling.SCHEMES
ROOT = Path(__file__).resolve().parents[1]
PARTICLES_WHEEL = ROOT / "build" / "wheels" / "particles-0.4-py3-none-any.whl"
SKIP_PARTICLES = "TEXTSAMPLING_SKIP_PARTICLES_CROSSCHECK"


def _intervals(breakpoints):
    """The intervals of (0, 1) cut at ``breakpoints``: (midpoints, lengths)."""
    cuts = np.unique(np.concatenate([[0.0, 1.0], np.clip(breakpoints, 0.0, 1.0)]))
    lengths = np.diff(cuts)
    middles = (cuts[:-1] + cuts[1:]) / 2
    # an interval too short to hold a point strictly inside (0, 1) (length ~1e-16) is dropped: error <= 1e-16
    keep = (lengths > 0) & (middles > 0) & (middles < 1)
    return middles[keep], lengths[keep]


def exact_expected_offspring(log_weights, scheme, ancestors_fn=resampling.ancestors):
    """E[O_i] of ``ancestors_fn`` under ``scheme``'s uniforms, by exact integration over its intervals."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    num_particles = log_weights.shape[0]
    weights = np.exp(log_weights - logsumexp(log_weights))
    cumulative = np.cumsum(weights)
    expected = np.zeros(num_particles)
    k = resampling.num_uniforms(num_particles, scheme)
    if scheme == "systematic":
        # all N points move together with u: breakpoints where (n + u)/N = C_k, i.e. u = frac(N C_k)
        scaled = num_particles * cumulative
        for middle, length in zip(*_intervals(scaled - np.floor(scaled))):
            ancestors = ancestors_fn(np.array([middle]), log_weights, scheme)
            expected += length * np.bincount(ancestors, minlength=num_particles)
        return expected
    if scheme == "residual":
        scaled = num_particles * weights
        copies = np.floor(scaled)
        num_copies = int(copies.sum())
        num_residual = num_particles - num_copies
        base = ancestors_fn(np.full(k, 0.5), log_weights, scheme)
        expected += np.bincount(base[:num_copies], minlength=num_particles)
        residual_cumulative = np.cumsum(scaled - copies) / max(num_residual, 1)
        slots = [(num_copies + r, r, residual_cumulative) for r in range(num_residual)]
    else:
        # ancestor n depends on u_n only: multinomial at v = u, stratified at v = (n + u)/N
        slots = [
            (n, n, cumulative if scheme == "multinomial" else num_particles * cumulative - n)
            for n in range(num_particles)
        ]
    for slot, uniform_index, breakpoints in slots:
        for middle, length in zip(*_intervals(breakpoints)):
            uniforms = np.full(k, 0.5)
            uniforms[uniform_index] = middle
            expected[ancestors_fn(uniforms, log_weights, scheme)[slot]] += length
    return expected


def random_log_weights(rng, num_particles):
    """Log-weights over a wide range, with some particles of weight zero (at least one not)."""
    log_weights = rng.normal(0.0, 2.0, num_particles)
    zero = rng.random(num_particles) < 0.25
    zero[rng.integers(num_particles)] = False
    log_weights[zero] = -np.inf
    return log_weights


@pytest.mark.parametrize("scheme", SCHEMES)
def test_expected_offspring_equal_n_times_the_weights_exactly(scheme):
    rng = np.random.default_rng(1)
    for trial in range(60):
        num_particles = int(rng.integers(1, 9))
        log_weights = random_log_weights(rng, num_particles)
        if trial % 10 == 0:
            log_weights = np.zeros(num_particles)  # equal weights: N W_i = 1 exactly
        expected = exact_expected_offspring(log_weights, scheme)
        target = num_particles * np.exp(log_weights - logsumexp(log_weights))
        np.testing.assert_allclose(expected, target, rtol=0, atol=1e-12, err_msg=f"{scheme}, {log_weights}")


@pytest.mark.parametrize("name", sorted(RESAMPLER_BUGS))
def test_a_wrong_resampler_fails_the_exact_test(name):
    wrong, scheme = RESAMPLER_BUGS[name]
    rng = np.random.default_rng(2)
    worst = 0.0
    for _ in range(20):
        num_particles = int(rng.integers(3, 8))
        log_weights = random_log_weights(rng, num_particles)
        expected = exact_expected_offspring(log_weights, scheme, ancestors_fn=wrong)
        target = num_particles * np.exp(log_weights - logsumexp(log_weights))
        worst = max(worst, float(np.max(np.abs(expected - target))))
    assert worst > 1e-3, f"{name} passed the exact test: it cannot tell a biased resampler"


def test_zero_weights_are_never_chosen_and_the_support_is_the_positive_weights():
    rng = np.random.default_rng(3)
    log_weights = np.array([-np.inf, 0.3, -np.inf, -1.0, -np.inf])
    for scheme in SCHEMES:
        for _ in range(200):
            ancestors = resampling.resample(rng, log_weights, scheme)
            assert ancestors.shape == (5,) and set(ancestors.tolist()) <= {1, 3}, (scheme, ancestors)


def test_extreme_uniforms_stay_on_particles_of_positive_weight():
    log_weights = np.array([0.0, 1.0, -np.inf])
    largest = np.nextafter(1.0, 0.0)
    for scheme in SCHEMES:
        k = resampling.num_uniforms(3, scheme)
        for value in (np.finfo(np.float64).tiny, largest):
            ancestors = resampling.ancestors(np.full(k, value), log_weights, scheme)
            assert set(ancestors.tolist()) <= {0, 1}, (scheme, value, ancestors)


@pytest.mark.parametrize(
    "log_weights, message",
    [
        ([np.nan, 0.0], "NaN"),
        ([-np.inf, -np.inf], "-inf everywhere"),
        ([np.inf, 0.0], r"\+inf"),
        ([], "non-empty"),
        ([[0.0, 1.0]], "1-D"),
    ],
)
def test_bad_log_weights_are_refused_by_name(log_weights, message):
    with pytest.raises(ValueError, match=message) as error:
        resampling.ancestors(np.full(2, 0.5), log_weights, "multinomial")
    assert "log_weights" in str(error.value)


def test_bad_scheme_and_uniforms_are_refused():
    with pytest.raises(ValueError, match="scheme must be one of"):
        resampling.ancestors([0.5], [0.0], "stratfied")
    with pytest.raises(ValueError, match="open interval"):
        resampling.ancestors([0.0, 0.5], [0.0, 1.0], "stratified")
    with pytest.raises(ValueError, match="at least 2"):
        resampling.ancestors([0.5], [0.0, 1.0], "stratified")


def test_effective_sample_size():
    assert resampling.effective_sample_size(np.zeros(7)) == pytest.approx(7.0, abs=1e-12)
    assert resampling.effective_sample_size([0.0, -np.inf, -np.inf]) == pytest.approx(1.0, abs=1e-12)
    assert resampling.effective_sample_size([-np.inf, -np.inf]) == 0.0
    weights = np.array([0.1, 0.2, 0.7])
    assert resampling.effective_sample_size(np.log(weights)) == pytest.approx(1 / np.sum(weights**2), rel=1e-12)


# ----------------------------------------------------------------------------- the pipeline, statistically
# Each offspring count lies in [0, N], so by Hoeffding's inequality the mean of M independent resamplings
# is within eps = N sqrt(log(2 N / delta) / (2 M)) of N W_i with probability >= 1 - delta / N per particle;
# with delta = 1e-4 (a union bound over the N particles) the test's false-fail rate is at most 1e-4 -- a
# bound, not an asymptotic approximation. Power: a bias of 2 eps is caught with probability >= 1 - 1e-4.
NUM_RESAMPLINGS = 20_000
FALSE_FAIL_RATE = 1e-4
PIPELINE_WEIGHTS = np.log(np.array([0.05, 0.4, 1.0, 0.15, 0.3, 0.1])) + np.array([0, 0, -np.inf, 0, 0, 0])


def _hoeffding_tolerance(num_particles):
    return num_particles * np.sqrt(np.log(2 * num_particles / FALSE_FAIL_RATE) / (2 * NUM_RESAMPLINGS))


def _mean_offspring(ancestors_fn, scheme, seed):
    """Mean offspring counts over independent resamplings: ``resample(rng, ...)`` itself for the correct
    schemes (the whole pipeline: generator, uniforms, ancestors), the same uniforms for a wrong one."""
    rng = np.random.default_rng(seed)
    num_particles = PIPELINE_WEIGHTS.shape[0]
    k = resampling.num_uniforms(num_particles, scheme)
    total = np.zeros(num_particles)
    for _ in range(NUM_RESAMPLINGS):
        if ancestors_fn is resampling.ancestors:
            ancestors = resampling.resample(rng, PIPELINE_WEIGHTS, scheme)
        else:
            ancestors = ancestors_fn(np.maximum(rng.random(k), np.finfo(np.float64).tiny), PIPELINE_WEIGHTS, scheme)
        total += np.bincount(ancestors, minlength=num_particles)
    return total / NUM_RESAMPLINGS


@pytest.mark.parametrize("scheme", SCHEMES)
def test_mean_offspring_counts_over_many_resamplings(scheme):
    mean = _mean_offspring(resampling.ancestors, scheme, seed=4)
    target = PIPELINE_WEIGHTS.shape[0] * np.exp(PIPELINE_WEIGHTS)
    assert np.max(np.abs(mean - target)) < _hoeffding_tolerance(PIPELINE_WEIGHTS.shape[0]), (mean, target)


@pytest.mark.parametrize("name", sorted(RESAMPLER_BUGS))
def test_a_wrong_resampler_fails_the_pipeline_test(name):
    wrong, scheme = RESAMPLER_BUGS[name]
    target = PIPELINE_WEIGHTS.shape[0] * np.exp(PIPELINE_WEIGHTS)
    tolerance = _hoeffding_tolerance(PIPELINE_WEIGHTS.shape[0])
    # the bug's exact bias is over twice the tolerance, so the test below catches it with probability >= 1 - 1e-4
    assert np.max(np.abs(exact_expected_offspring(PIPELINE_WEIGHTS, scheme, wrong) - target)) > 2 * tolerance
    mean = _mean_offspring(wrong, scheme, seed=5)
    assert np.max(np.abs(mean - target)) > tolerance


# ----------------------------------------------------------------------------- cross-check: `particles`
def _load_particles_resampling(monkeypatch):
    """``particles/resampling.py`` of the ``particles`` 0.4 wheel, with ``numba.jit`` stubbed as the identity.

    ``particles`` cannot be a dependency (it pins numpy<2 and needs numba); its resampling module is plain
    NumPy under a ``numba.jit`` decorator, so the test runs that file's source directly.
    """
    if os.environ.get(SKIP_PARTICLES):
        pytest.skip(f"{SKIP_PARTICLES} is set: the cross-check against `particles` is skipped on request")
    if not PARTICLES_WHEEL.exists():
        pytest.fail(
            f"the cross-check needs {PARTICLES_WHEEL.relative_to(ROOT)}: run `make build/wheels` (or "
            "`pip download --no-deps particles==0.4 -d build/wheels`), or set "
            f"{SKIP_PARTICLES}=1 to skip it"
        )
    with zipfile.ZipFile(PARTICLES_WHEEL) as wheel:
        source = wheel.read("particles/resampling.py").decode("utf-8")
    numba = types.ModuleType("numba")
    numba.jit = lambda *args, **kwargs: (lambda function: function)
    monkeypatch.setitem(sys.modules, "numba", numba)  # only while this test runs
    module = types.ModuleType("particles_resampling")
    exec(compile(source, "particles/resampling.py", "exec"), module.__dict__)
    return module


class _FixedRandom:
    """Stands in for ``numpy.random`` inside the `particles` module: ``rand(n)`` returns our uniforms."""

    def __init__(self, uniforms):
        self.uniforms = np.asarray(uniforms, dtype=np.float64)

    def rand(self, count):
        assert count <= self.uniforms.shape[0], (count, self.uniforms.shape)
        return self.uniforms[:count].copy()


def test_same_ancestors_as_the_particles_package(monkeypatch):
    """Same uniforms in, same ancestors out, scheme by scheme.

    Stratified and systematic: `particles` draws ``random.rand(M)`` / ``random.rand(1)`` and forms the same
    points ``(n + u)/M``, so its ``random`` is replaced by our uniforms and the ancestors must be identical.
    Multinomial and residual: `particles` sorts its uniforms (``uniform_spacings``, exponential spacings),
    ours keep the order of the uniforms; so its ``uniform_spacings`` is replaced by our uniforms sorted, and
    (a) fed the same sorted uniforms, ours give identical ancestors; (b) fed them unsorted, ours give the
    same offspring counts (the ancestors permuted).
    """
    module = _load_particles_resampling(monkeypatch)
    rng = np.random.default_rng(6)
    for _ in range(300):
        num_particles = int(rng.integers(1, 12))
        log_weights = random_log_weights(rng, num_particles)
        normalized = module.exp_and_normalise(log_weights)
        for scheme in SCHEMES:
            uniforms = rng.random(resampling.num_uniforms(num_particles, scheme))
            if scheme in ("stratified", "systematic"):
                monkeypatch.setattr(module, "random", _FixedRandom(uniforms))
                theirs = module.resampling(scheme, normalized)
                np.testing.assert_array_equal(resampling.ancestors(uniforms, log_weights, scheme), theirs)
                continue
            monkeypatch.setattr(module, "uniform_spacings", lambda count, u=uniforms: np.sort(u[:count]))
            theirs = module.resampling(scheme, normalized)
            ours_sorted = resampling.ancestors(np.sort(uniforms), log_weights, scheme)
            if scheme == "residual":
                # the residual draws use the first R uniforms: sorted among themselves
                num_copies = int(np.sum(np.floor(num_particles * normalized)))
                residual = np.sort(uniforms[: num_particles - num_copies])
                ours_sorted = resampling.ancestors(
                    np.concatenate([residual, uniforms[num_particles - num_copies:]]), log_weights, scheme
                )
            np.testing.assert_array_equal(ours_sorted, theirs, err_msg=f"{scheme}, {log_weights}")
            ours = resampling.ancestors(uniforms, log_weights, scheme)
            np.testing.assert_array_equal(
                resampling.offspring_counts(ours, num_particles), resampling.offspring_counts(theirs, num_particles)
            )
