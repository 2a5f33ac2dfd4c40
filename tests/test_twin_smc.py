"""The SMC twin: equal to the reference run by run on the same counter uniforms (oracle and tiny GPT-2),
and, batched over many runs, an unbiased weighted particle measure (a statistical test with a stated
false-fail rate).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from textsampling.lm.oracle import BigramOracle  # noqa: E402
from textsampling.randomness import CounterGenerator  # noqa: E402
from textsampling.reference import smc as reference  # noqa: E402
from textsampling.targets.sequences import BigramLM  # noqa: E402
from textsampling.torch import randomness as torch_randomness  # noqa: E402
from textsampling.torch import smc as twin  # noqa: E402

SEED = 41


def make_oracle(vocab_size, max_length, seed=11):
    return BigramOracle(BigramLM.random(np.random.default_rng(seed), vocab_size, max_length))


def assert_twin_equals_reference(model, potential, num_runs, num_particles, max_length, num_steps, atol=1e-12,
                                 **params):
    x0 = twin.empty_prefixes_torch(num_runs, num_particles, max_length)
    rng = torch_randomness.CounterGenerator(SEED, torch.arange(num_runs))
    got = twin.sample(rng, x0, model, potential, num_steps, dtype=torch.float64, **params)
    assert got.states.x.shape == (num_runs, num_steps, num_particles, max_length)
    for run in range(num_runs):
        expected = reference.sample(CounterGenerator(SEED, run), reference.empty_prefixes(num_particles, max_length),
                                    model, potential, num_steps, **params)
        for name in ("ancestors", "resampled", "token"):
            np.testing.assert_array_equal(getattr(got.infos, name)[run].numpy(), getattr(expected.infos, name),
                                          err_msg=f"run {run}, {name}")
        for name in ("x", "finished"):
            np.testing.assert_array_equal(getattr(got.states, name)[run].numpy(), getattr(expected.states, name),
                                          err_msg=f"run {run}, {name}")
        for name in ("log_weight", "log_potential", "log_lm"):
            np.testing.assert_allclose(getattr(got.states, name)[run].numpy(), getattr(expected.states, name),
                                       rtol=0, atol=atol, err_msg=f"run {run}, {name}")
        for name in ("ess", "log_incremental_weight", "log_evidence"):
            np.testing.assert_allclose(getattr(got.infos, name)[run].numpy(), getattr(expected.infos, name),
                                       rtol=0, atol=atol, err_msg=f"run {run}, {name}")
    return got


@pytest.mark.parametrize("proposal", reference.PROPOSALS)
@pytest.mark.parametrize("scheme, ess_threshold", [("multinomial", 1.0), ("stratified", 0.7),
                                                   ("systematic", 0.9), ("residual", 1.0)])
def test_twin_equals_reference_on_the_oracle(proposal, scheme, ess_threshold):
    oracle = make_oracle(3, 4)
    potential = reference.KeywordPotential(oracle.encode_keywords(["t0", "t2"]), 4)
    got = assert_twin_equals_reference(oracle, potential, 6, 5, 4, 5, proposal=proposal, scheme=scheme,
                                       ess_threshold=ess_threshold)
    assert bool(got.final_state.finished.all())
    assert bool(got.infos.resampled.any()), "the comparison never exercised a resampling"


def test_twin_equals_reference_with_the_exact_twist():
    oracle = make_oracle(3, 3, seed=13)
    potential = reference.KeywordPotential(oracle.encode_keywords(["t0", "t2"]), 3)
    log_twist = reference.oracle_log_twist(oracle, ["t0", "t2"], 3)
    got = assert_twin_equals_reference(oracle, potential, 4, 3, 3, 4, proposal="guided", scheme="systematic",
                                       log_twist=log_twist)
    spread = got.final_state.log_weight.max() - got.final_state.log_weight.min()
    assert float(spread) < 1e-12


@pytest.mark.parametrize("proposal", reference.PROPOSALS)
def test_twin_equals_reference_on_the_tiny_causal_model(proposal):
    from textsampling.lm.loading import load_causal_lm

    model = load_causal_lm("tiny-shakespeare")
    max_length = 6
    potential = reference.KeywordPotential.for_model(model, ["king"], max_length)
    # One run (the twin's batch is the reference's 3 rows): everything equal, log-weights to 1e-12.
    assert_twin_equals_reference(model, potential, 1, 3, max_length, 2, proposal=proposal, scheme="systematic",
                                 ess_threshold=1.0)
    # Two runs: the model computes in float32, and its forward pass over 6 rows may differ in the last bits
    # from one over 3 rows, so the decisions must still agree exactly and the log-probabilities and
    # weights to float32 accuracy.
    assert_twin_equals_reference(model, potential, 2, 3, max_length, 2, atol=1e-5, proposal=proposal,
                                 scheme="systematic", ess_threshold=1.0)


# ----------------------------------------------------------------------------- the weighted particle law
# The unnormalised weighted measure (1/N) sum_i w_i [x_i = s] of one run is an unbiased estimate of
# gamma(s) = p(s) chi(s) for every sentence s (the measure form of E[Z_hat] = Z; Del Moral 2004; Chopin &
# Papaspiliopoulos 2020, ch. 11), hence the self-normalised law sum_i W_i delta_{x_i} converges to p chi / Z.
# Without a twist every weight here lies in [0, 1] (G in {0, 1}; the guided normaliser is <= 1; resampling
# averages), so each run's value for s lies in [0, 1] and, by Hoeffding's inequality with a union bound over
# the S sentences, the mean over R runs is within eps = sqrt(log(2 S / delta) / (2 R)) of gamma(s) for all s
# with probability >= 1 - delta, delta = 1e-4: the stated false-fail rate (a bound, not an approximation).
NUM_RUNS = 20_000
FALSE_FAIL_RATE = 1e-4


def _weighted_measure(trace, sentences):
    """Mean over runs of (1/N) sum_i w_i [x_i = s], for each enumerated sentence s: ``(S,)``."""
    final = trace.final_state
    num_runs, num_particles, width = final.x.shape
    weights = torch.exp(final.log_weight).reshape(-1).numpy()  # (R*N,)
    rows = final.x.reshape(-1, width).numpy()  # (R*N, L)
    index = {tuple(s): j for j, s in enumerate(sentences.tolist())}
    positions = np.array([index.get(tuple(row), -1) for row in rows.tolist()])
    assert np.all(positions[weights > 0] >= 0), "a weighted particle is not a sentence of the target"
    totals = np.bincount(positions[weights > 0], weights=weights[weights > 0], minlength=len(sentences))
    return totals / (num_runs * num_particles)


@pytest.mark.parametrize("proposal, scheme", [("bootstrap", "systematic"), ("guided", "multinomial")])
def test_the_weighted_particles_estimate_p_chi_without_bias(proposal, scheme):
    oracle = make_oracle(3, 3, seed=15)
    potential = reference.KeywordPotential(oracle.encode_keywords(["t1", "t2"]), 3)
    sentences = oracle.bigram.enumerate_states()
    gamma = np.exp(oracle.bigram.log_prob(sentences) + potential(sentences, np.ones(len(sentences), dtype=bool)))
    x0 = twin.empty_prefixes_torch(NUM_RUNS, 4, 3)
    rng = torch_randomness.CounterGenerator(SEED, torch.arange(NUM_RUNS))
    trace = twin.sample(rng, x0, oracle, potential, 4, proposal=proposal, scheme=scheme, ess_threshold=0.5,
                        dtype=torch.float64)
    assert float(trace.final_state.log_weight.max()) <= 1e-12  # every weight in [0, 1]: Hoeffding applies
    estimate = _weighted_measure(trace, sentences)
    tolerance = np.sqrt(np.log(2 * len(sentences) / FALSE_FAIL_RATE) / (2 * NUM_RUNS))
    assert np.max(np.abs(estimate - gamma)) < tolerance, (np.max(np.abs(estimate - gamma)), tolerance)
