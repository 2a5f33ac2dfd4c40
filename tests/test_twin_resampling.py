"""The resampling twin equals the reference run by run on the same uniforms, batched over runs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from textsampling.reference import resampling as reference  # noqa: E402
from textsampling.torch import resampling as twin  # noqa: E402


def _log_weights(rng, num_runs, num_particles):
    log_weights = rng.normal(0.0, 2.0, (num_runs, num_particles))
    log_weights[rng.random((num_runs, num_particles)) < 0.25] = -np.inf
    log_weights[np.arange(num_runs), rng.integers(num_particles, size=num_runs)] = rng.normal(size=num_runs)
    log_weights[::7] = 0.0  # equal weights: residual gives exactly one copy each
    log_weights[1::9] = np.log(np.arange(1, num_particles + 1))  # integer multiples
    return log_weights


@pytest.mark.parametrize("scheme", reference.SCHEMES)
@pytest.mark.parametrize("num_particles", [1, 2, 5, 16])
def test_twin_ancestors_equal_the_reference_run_by_run(scheme, num_particles):
    rng = np.random.default_rng(30 + num_particles)
    num_runs = 400
    log_weights = _log_weights(rng, num_runs, num_particles)
    uniforms = rng.random((num_runs, reference.num_uniforms(num_particles, scheme)))
    got = twin.ancestors(torch.as_tensor(uniforms), torch.as_tensor(log_weights), scheme)
    assert got.shape == (num_runs, num_particles) and got.dtype == torch.int64
    for run in range(num_runs):
        expected = reference.ancestors(uniforms[run], log_weights[run], scheme)
        np.testing.assert_array_equal(got[run].numpy(), expected, err_msg=f"run {run}: {log_weights[run]}")
    counts = twin.offspring_counts(got, num_particles)
    np.testing.assert_array_equal(counts.sum(dim=1).numpy(), np.full(num_runs, num_particles))


def test_twin_effective_sample_size_and_errors():
    log_weights = torch.tensor([[0.0, 0.0, 0.0], [0.0, -torch.inf, -torch.inf], [-torch.inf] * 3], dtype=torch.float64)
    np.testing.assert_allclose(twin.effective_sample_size(log_weights).numpy(), [3.0, 1.0, 0.0], atol=1e-12)
    uniforms = torch.full((3, 1), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match="log_weights is -inf everywhere"):
        twin.ancestors(uniforms, log_weights, "systematic")
    with pytest.raises(ValueError, match="NaN"):
        twin.ancestors(uniforms[:1], torch.tensor([[0.0, float("nan"), 0.0]], dtype=torch.float64), "systematic")
    with pytest.raises(ValueError, match="scheme must be one of"):
        twin.ancestors(uniforms, log_weights, "bogus")
    with pytest.raises(ValueError, match="uniforms must have shape"):
        twin.ancestors(uniforms[:2], log_weights[:1], "systematic")
