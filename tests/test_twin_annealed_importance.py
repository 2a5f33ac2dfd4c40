"""The AIS twin against its NumPy reference: same uniforms in, same particles, weights and decisions out.

Run ``b`` of one batched torch run (counter generator, chain index ``b``) is compared with the reference
run for ``CounterGenerator(seed, b)``, in float64, rung by rung: the particles drawn from the base,
every MH decision, every proposal; log-densities, weight increments, log-weights, log Z-hat and ESS
to rounding (1e-12). A decision could differ only if a uniform fell within an ulp of its threshold:
probability of order 1e-16 per decision. Deterministic (fixed seeds).
"""

import numpy as np
import pytest
import torch
from twin_assertions import assert_close_to_reference

from textsampling import targets
from textsampling.randomness import CounterGenerator as NumpyCounterGenerator
from textsampling.reference import annealed_importance as reference
from textsampling.reference import proposals
from textsampling.targets.named import make_target
from textsampling.torch import annealed_importance
from textsampling.torch.randomness import CounterGenerator
from textsampling.torch.twins import twin_of

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
SEED = 20240607
NUM_RUNS = 5
NUM_PARTICLES = 6
F64 = torch.float64


def _cases():
    logits = np.array([0.3, -1.0, -np.inf, 2.0, 0.5, 1.2])  # a state of probability 0
    return {
        "categorical-uniform": (
            targets.Categorical(logits),
            proposals.IndependentCategorical([0.0, 0.5, 0.0, -0.5, 1.0, 0.2]),
            proposals.UniformCategoricalProposal(6),
        ),
        "categorical-ring": (
            targets.Categorical(4.0 * np.cos(2.0 * np.pi * 2 * np.arange(10) / 10)),
            proposals.IndependentCategorical(np.zeros(10)),
            proposals.RingStepProposal(10, 0.7),
        ),
        "bigram-single-site": (
            make_target("bigram-small"),
            proposals.IndependentUniformSequences(3, 3),
            proposals.SingleSiteProposal(3, 3, np.random.default_rng(1).normal(size=(3, 3))),
        ),
    }


CASES = _cases()
LADDER = np.array([0.1, 0.1, 0.4, 0.8, 1.0])  # a repeated rung included


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_ais_twin_makes_the_reference_decisions(case, device):
    target, base, proposal = CASES[case]
    twin_target, twin_base, twin_proposal = (twin_of(o, F64, device) for o in (target, base, proposal))
    trace = annealed_importance.sample(
        CounterGenerator(SEED, torch.arange(NUM_RUNS, device=device)),
        None,
        twin_target.log_prob,
        twin_base,
        twin_proposal,
        len(LADDER),
        betas=LADDER,
        num_particles=NUM_PARTICLES,
    )
    assert trace.states.x.shape[:3] == (NUM_RUNS, len(LADDER), NUM_PARTICLES)
    for run in range(NUM_RUNS):
        expected = reference.sample(
            NumpyCounterGenerator(SEED, run),
            None,
            target.log_prob,
            base,
            proposal,
            len(LADDER),
            betas=LADDER,
            num_particles=NUM_PARTICLES,
        )
        np.testing.assert_array_equal(trace.states.x[run].cpu().numpy(), expected.states.x)
        np.testing.assert_array_equal(trace.infos.proposal[run].cpu().numpy(), expected.infos.proposal)
        np.testing.assert_array_equal(trace.infos.accepted[run].cpu().numpy(), expected.infos.accepted)
        for field in ("log_prob", "log_base_prob", "log_weight", "beta"):
            assert_close_to_reference(getattr(trace.states, field)[run], getattr(expected.states, field))
        for field in ("log_accept_prob", "log_weight_increment", "beta", "log_normalizer", "effective_sample_size"):
            assert_close_to_reference(getattr(trace.infos, field)[run], getattr(expected.infos, field))
    # The test has teeth: particles move and get rejected, and weights differ.
    assert 0 < trace.infos.accepted.double().mean() < 1
    log_weights = trace.final_state.log_weight
    assert torch.unique(log_weights[torch.isfinite(log_weights)]).numel() > 1


@pytest.mark.parametrize("device", DEVICES)
def test_ais_twin_step_equals_the_reference_step_on_given_uniforms(device):
    # Step level, with the particles given (not drawn) and uniforms fed directly.
    target, base, proposal = CASES["categorical-uniform"]
    twin_target, twin_base, twin_proposal = (twin_of(o, F64, device) for o in (target, base, proposal))
    rng = np.random.default_rng(5)
    x0 = rng.choice([0, 1, 3, 4, 5], size=(NUM_RUNS, NUM_PARTICLES))
    uniforms = rng.uniform(size=(NUM_RUNS, NUM_PARTICLES * 2))
    state = annealed_importance.init(torch.tensor(x0, device=device), twin_target.log_prob, twin_base)
    new_state, info = annealed_importance.step(
        torch.tensor(uniforms, device=device), state, twin_target.log_prob, twin_base, twin_proposal, beta=0.6
    )
    for run in range(NUM_RUNS):
        ref_state = reference.init(x0[run], target.log_prob, base)
        expected_state, expected_info = reference.step(
            uniforms[run], ref_state, target.log_prob, base, proposal, beta=0.6
        )
        np.testing.assert_array_equal(new_state.x[run].cpu().numpy(), expected_state.x)
        np.testing.assert_array_equal(info.accepted[run].cpu().numpy(), expected_info.accepted)
        assert_close_to_reference(new_state.log_weight[run], expected_state.log_weight)


def test_ais_twin_refuses_a_decreasing_ladder_and_a_missing_particle_count():
    target, base, proposal = CASES["categorical-uniform"]
    twin_target, twin_base, twin_proposal = (twin_of(o, F64) for o in (target, base, proposal))
    rng = CounterGenerator(SEED, torch.arange(2))
    with pytest.raises(ValueError, match="non-decreasing"):
        annealed_importance.sample(
            rng, None, twin_target.log_prob, twin_base, twin_proposal, 2, betas=[0.5, 0.2], num_particles=3
        )
    with pytest.raises(ValueError, match="num_particles"):
        annealed_importance.sample(rng, None, twin_target.log_prob, twin_base, twin_proposal, 1, betas=[1.0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scheme", ["multinomial", "stratified", "systematic", "residual"])
def test_ais_twin_resample_equals_the_reference_run_by_run(scheme, device):
    # Tempered SMC's resampling step between rungs: rung 1, then resample each run with its own uniforms.
    from textsampling.reference import resampling

    target, base, proposal = CASES["bigram-single-site"]
    twin_target, twin_base, twin_proposal = (twin_of(o, F64, device) for o in (target, base, proposal))
    rng = np.random.default_rng(11)
    x0 = rng.integers(0, 3, size=(NUM_RUNS, NUM_PARTICLES, 3))  # (B, N, L) sentences
    step_uniforms = rng.uniform(size=(NUM_RUNS, annealed_importance.num_uniforms(twin_proposal, NUM_PARTICLES)))
    resampling_uniforms = rng.uniform(size=(NUM_RUNS, resampling.num_uniforms(NUM_PARTICLES, scheme)))
    state = annealed_importance.init(torch.tensor(x0, device=device), twin_target.log_prob, twin_base)
    state, _ = annealed_importance.step(torch.tensor(step_uniforms, device=device), state, twin_target.log_prob,
                                        twin_base, twin_proposal, beta=0.5)
    resampled = annealed_importance.resample(torch.tensor(resampling_uniforms, device=device), state, scheme)
    for run in range(NUM_RUNS):
        expected, _ = reference.step(step_uniforms[run], reference.init(x0[run], target.log_prob, base),
                                     target.log_prob, base, proposal, beta=0.5)
        expected = reference.resample(resampling_uniforms[run], expected, scheme)
        np.testing.assert_array_equal(resampled.x[run].cpu().numpy(), expected.x)
        for field in ("log_prob", "log_base_prob", "log_weight"):
            assert_close_to_reference(getattr(resampled, field)[run], getattr(expected, field))
    assert torch.unique(resampled.log_weight[0]).numel() == 1  # every weight the mean weight


GIBBS_CASES = {
    # target, base, number of tokens (uniform bases: the twin has them; the ising chain has a zero-free law)
    "bigram-small": (make_target("bigram-small"), proposals.IndependentUniformSequences(3, 3), 3),
    "ising-5": (targets.PairwiseChain.ising(5, coupling=1.5), proposals.IndependentUniformSequences(2, 5), 2),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scan", ["random", "systematic"])
@pytest.mark.parametrize("case", sorted(GIBBS_CASES))
def test_ais_twin_with_gibbs_moves_makes_the_reference_decisions(case, scan, device):
    # The same comparison with a GibbsMove as the move: every sequence drawn, every cached density and weight.
    target, base, num_tokens = GIBBS_CASES[case]
    move = reference.GibbsMove(num_tokens, scan=scan, length=target.states.shape[1])
    twin_target, twin_base = (twin_of(o, F64, device) for o in (target, base))
    trace = annealed_importance.sample(
        CounterGenerator(SEED, torch.arange(NUM_RUNS, device=device)), None, twin_target.log_prob, twin_base, move,
        len(LADDER), betas=LADDER, num_particles=NUM_PARTICLES,
    )
    for run in range(NUM_RUNS):
        expected = reference.sample(NumpyCounterGenerator(SEED, run), None, target.log_prob, base, move, len(LADDER),
                                    betas=LADDER, num_particles=NUM_PARTICLES)
        np.testing.assert_array_equal(trace.states.x[run].cpu().numpy(), expected.states.x)
        np.testing.assert_array_equal(trace.infos.proposal[run].cpu().numpy(), expected.infos.proposal)
        np.testing.assert_array_equal(trace.infos.accepted[run].cpu().numpy(), expected.infos.accepted)
        for field in ("log_prob", "log_base_prob", "log_weight", "beta"):
            assert_close_to_reference(getattr(trace.states, field)[run], getattr(expected.states, field))
        for field in ("log_accept_prob", "log_weight_increment", "beta", "log_normalizer", "effective_sample_size"):
            assert_close_to_reference(getattr(trace.infos, field)[run], getattr(expected.infos, field))
    # The test has teeth: the particles change between rungs and the weights differ.
    assert bool((trace.states.x[:, 1:] != trace.states.x[:, :-1]).any())
    assert torch.unique(trace.final_state.log_weight).numel() > 1


@pytest.mark.parametrize("device", DEVICES)
def test_twin_bridge_conditionals_equal_the_reference_and_a_dead_particle_stays(device):
    base = proposals.IndependentUniformSequences(3, 2)

    def log_prob_fn(states):
        states = np.asarray(states)
        return np.where(states[:, 0] == 0, -np.inf, 0.5 * states[:, 1] - 1.0 * states[:, 0])

    def twin_log_prob_fn(states):
        return torch.as_tensor(log_prob_fn(states.cpu().numpy()), dtype=F64, device=states.device)

    states = np.array([[1, 2], [0, 1], [2, 0]])
    expected = reference.bridge_conditional_log_probs(log_prob_fn, base, 0.4, 3)(states, 1)
    conditional = annealed_importance.bridge_conditional_log_probs(twin_log_prob_fn, twin_of(base, F64, device), 0.4,
                                                                   3, dtype=F64)
    got = conditional(torch.tensor(states, device=device), torch.ones(3, dtype=torch.int64, device=device))
    assert_close_to_reference(got, expected)
    np.testing.assert_array_equal(got[1].cpu().numpy(), [-np.inf, 0.0, -np.inf])
