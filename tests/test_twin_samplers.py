"""Each torch sampler against its NumPy reference: same uniforms in, same states and decisions out.

Both twins get their randomness from the counter generator (Philox on (seed, chain, step)): chain ``c``
of one batched torch run is compared with the reference run for ``CounterGenerator(seed, c)``, over many
steps, in float64. Discrete states and every accept decision must be identical; log-densities agree to
rounding (a few ulps where ``logsumexp``/``exp`` of NumPy and torch differ in the last bit), and
continuous states (Box–Muller uses ``log``/``cos``) to 1e-12. A decision could differ only if a uniform
fell within an ulp of its threshold: probability of order 1e-16 per decision, about 1e-11 for the
whole file. Deterministic (fixed seeds), so a failure is a real difference.
"""

import numpy as np
import pytest
import torch

from textsampling import randomness as numpy_randomness
from textsampling import targets
from textsampling.randomness import CounterGenerator as NumpyCounterGenerator
from textsampling.reference import annealing as reference_annealing
from textsampling.reference import categorical as reference_categorical
from textsampling.reference import gibbs as reference_gibbs
from textsampling.reference import importance as reference_importance
from textsampling.reference import metropolis_hastings as reference_mh
from textsampling.reference import proposals
from textsampling.reference import rejection as reference_rejection
from textsampling.torch import annealing, categorical, gibbs, importance, metropolis_hastings, rejection
from textsampling.torch.randomness import CounterGenerator
from textsampling.torch.twins import twin_of

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
SEED = 20210114
NUM_CHAINS = 12
NUM_STEPS = 150
F64 = torch.float64


def _rng(seed=0):
    return np.random.default_rng(seed)


def _bigram(length=3, vocab_size=4):
    return targets.FixedLengthBigram(
        _rng(1).normal(size=vocab_size), _rng(2).normal(size=(vocab_size, vocab_size + 1)), length
    )


def _keyword_target():
    # A keyword target whose chain may start outside the support (log rho = -inf) and must leave it.
    return targets.KeywordTarget(_bigram(4), [1, 2], targets.TopicSimilarity([0, 3], 0.8), gamma=0.7)


def _mh_cases():
    logits = np.array([0.3, -1.0, -np.inf, 2.0, 0.5, 1.2])
    categorical_target = targets.Categorical(logits)
    sequence_initial = _rng(3).integers(0, 4, (NUM_CHAINS, 3))
    keyword_initial = _rng(4).integers(0, 4, (NUM_CHAINS, 4))
    pairwise = targets.PairwiseChain(_rng(5).normal(size=(4, 3)), _rng(6).normal(size=(3, 3, 3)))
    mixture_2d = targets.GaussianMixture([0.4, 0.6], [[-1.0, 0.5], [2.0, -1.0]], [[0.7, 1.0], [1.2, 0.4]])
    mixture_1d = targets.GaussianMixture([0.5, 0.5], [-2.0, 2.0], [0.8, 1.1])
    chains = np.arange(NUM_CHAINS)
    return {
        "categorical-uniform": (categorical_target, proposals.UniformCategoricalProposal(6), chains % 6),
        "categorical-ring": (categorical_target, proposals.RingStepProposal(6, 0.7), (chains % 5) + (chains % 5 >= 2)),
        "categorical-independence": (
            categorical_target,
            proposals.IndependenceProposal(proposals.IndependentCategorical([0.0, 1.0, 0.0, -0.5, 2.0, 0.1])),
            chains % 6,
        ),
        "bigram-single-site": (
            _bigram(),
            proposals.SingleSiteProposal(4, 3, _rng(7).normal(size=(3, 4))),
            sequence_initial,
        ),
        "bigram-independent-sequences": (
            _bigram(),
            proposals.IndependenceProposal(proposals.IndependentUniformSequences(4, 3)),
            sequence_initial,
        ),
        "pairwise-single-site": (pairwise, proposals.SingleSiteProposal(3, 4), _rng(8).integers(0, 3, (NUM_CHAINS, 4))),
        "keyword-single-site": (_keyword_target(), proposals.SingleSiteProposal(4, 4), keyword_initial),
        "mixture-2d-random-walk": (
            mixture_2d,
            proposals.GaussianRandomWalkProposal(1.3, 2),
            _rng(9).normal(size=(NUM_CHAINS, 2)),
        ),
        "mixture-1d-random-walk": (
            mixture_1d,
            proposals.GaussianRandomWalkProposal(2.0, 1),
            _rng(10).normal(size=NUM_CHAINS),
        ),
    }


MH_CASES = _mh_cases()


def _assert_states(expected, got, continuous):
    if continuous:
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_array_equal(got, expected)


def _assert_log_probs(expected, got):
    # Same -inf pattern, finite values equal to rounding.
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(MH_CASES))
def test_metropolis_hastings_twin_makes_the_reference_decisions(case, device):
    target, proposal, initial = MH_CASES[case]
    continuous = isinstance(target, targets.GaussianMixture)
    twin_target, twin_proposal = twin_of(target, F64, device), twin_of(proposal, F64, device)
    x0 = torch.tensor(initial, device=device)
    trace = metropolis_hastings.sample(
        CounterGenerator(SEED, torch.arange(NUM_CHAINS, device=device)),
        x0,
        twin_target.log_prob,
        twin_proposal,
        NUM_STEPS,
    )
    assert trace.states.x.shape == (NUM_CHAINS, NUM_STEPS) + tuple(x0.shape[1:])
    for chain in range(NUM_CHAINS):
        expected = reference_mh.sample(
            NumpyCounterGenerator(SEED, chain), initial[chain], target.log_prob, proposal, NUM_STEPS
        )
        np.testing.assert_array_equal(trace.infos.accepted[chain].cpu().numpy(), expected.infos.accepted)
        _assert_states(expected.states.x, trace.states.x[chain].cpu().numpy(), continuous)
        _assert_log_probs(expected.states.log_prob, trace.states.log_prob[chain].cpu().numpy())
        got_prob, expected_prob = trace.infos.log_accept_prob[chain].cpu().numpy(), expected.infos.log_accept_prob
        np.testing.assert_array_equal(np.isnan(got_prob), np.isnan(expected_prob))
        _assert_log_probs(expected_prob[~np.isnan(expected_prob)], got_prob[~np.isnan(got_prob)])
    # The test has teeth: chains do move and do get rejected.
    assert 0 < trace.infos.accepted.double().mean() < 1


@pytest.mark.parametrize("device", DEVICES)
def test_mh_step_takes_the_same_decision_given_the_same_uniforms(device):
    # Step level, with uniforms fed directly (numbers near the thresholds included).
    target, proposal, initial = MH_CASES["categorical-ring"]
    twin_target, twin_proposal = twin_of(target, F64, device), twin_of(proposal, F64, device)
    uniforms = _rng(11).uniform(size=(500, 2))
    uniforms[:, 0] = np.where(np.arange(500) % 3 == 0, 0.7, uniforms[:, 0])  # exactly the forward threshold
    x = np.arange(500) % 6
    x = np.where(x == 2, 3, x)
    state = metropolis_hastings.init(torch.tensor(x, device=device), twin_target.log_prob)
    new_state, info = metropolis_hastings.step(
        torch.tensor(uniforms, device=device), state, twin_target.log_prob, twin_proposal
    )
    for b in range(500):
        ref_state, ref_info = reference_mh.step(
            uniforms[b], reference_mh.init(x[b], target.log_prob), target.log_prob, proposal
        )
        assert bool(info.accepted[b]) == ref_info.accepted
        assert int(new_state.x[b]) == int(ref_state.x) and int(info.proposal[b]) == int(ref_info.proposal)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scan", ["random", "systematic"])
@pytest.mark.parametrize("name", ["bigram", "pairwise", "keyword"])
def test_gibbs_twin_writes_the_reference_tokens(name, scan, device):
    if name == "bigram":
        target, initial = _bigram(4), _rng(12).integers(0, 4, (NUM_CHAINS, 4))
    elif name == "pairwise":
        target = targets.PairwiseChain.ising(5, 0.8, 0.3)
        initial = _rng(13).integers(0, 2, (NUM_CHAINS, 5))
    else:
        # brute-force conditionals; start inside the support so every conditional exists
        target, initial = _keyword_target(), np.tile([1, 2, 0, 3], (NUM_CHAINS, 1))
    twin_target = twin_of(target, F64, device)
    num_steps = 60 if scan == "systematic" else NUM_STEPS
    trace = gibbs.sample(
        CounterGenerator(SEED, torch.arange(NUM_CHAINS, device=device)),
        torch.tensor(initial, device=device),
        twin_target.conditional_log_probs,
        num_steps,
        scan=scan,
        dtype=F64,
    )
    for chain in range(NUM_CHAINS):
        expected = reference_gibbs.sample(
            NumpyCounterGenerator(SEED, chain), initial[chain], target.conditional_log_probs, num_steps, scan=scan
        )
        np.testing.assert_array_equal(trace.states.x[chain].cpu().numpy(), expected.states.x)
        np.testing.assert_array_equal(trace.infos.position[chain].cpu().numpy(), expected.infos.position)
        np.testing.assert_array_equal(trace.infos.token[chain].cpu().numpy(), expected.infos.token)
    assert len(np.unique(trace.states.x.cpu().numpy().reshape(-1, initial.shape[1]), axis=0)) > 5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("schedule", ["geometric", "logarithmic"])
def test_annealing_twin_follows_the_reference(schedule, device):
    target, proposal = (
        targets.PairwiseChain(_rng(14).normal(size=(4, 3)), _rng(15).normal(size=(3, 3))),
        proposals.SingleSiteProposal(3, 4),
    )
    if schedule == "geometric":
        temperatures = reference_annealing.geometric_schedule(3.0, 0.05, NUM_STEPS)
        twin_temperatures = annealing.geometric_schedule(3.0, 0.05, NUM_STEPS, dtype=F64, device=device)
    else:
        temperatures = reference_annealing.logarithmic_schedule(2.0, NUM_STEPS)
        twin_temperatures = annealing.logarithmic_schedule(2.0, NUM_STEPS, dtype=F64, device=device)
    np.testing.assert_array_equal(twin_temperatures.cpu().numpy(), temperatures)
    initial = _rng(16).integers(0, 3, (NUM_CHAINS, 4))
    twin_log_prob = twin_of(target, F64, device).log_prob
    trace = annealing.sample(
        CounterGenerator(SEED, torch.arange(NUM_CHAINS, device=device)),
        torch.tensor(initial, device=device),
        twin_log_prob,
        twin_of(proposal, F64, device),
        NUM_STEPS,
        temperatures=twin_temperatures,
    )
    best = annealing.best(trace, annealing.init(torch.tensor(initial, device=device), twin_log_prob))
    for chain in range(NUM_CHAINS):
        expected = reference_annealing.sample(
            NumpyCounterGenerator(SEED, chain), initial[chain], target.log_prob, proposal, NUM_STEPS,
            temperatures=temperatures,
        )
        expected_best = reference_annealing.best(expected, reference_annealing.init(initial[chain], target.log_prob))
        np.testing.assert_array_equal(trace.states.x[chain].cpu().numpy(), expected.states.x)
        np.testing.assert_array_equal(trace.infos.accepted[chain].cpu().numpy(), expected.infos.accepted)
        np.testing.assert_array_equal(best.x[chain].cpu().numpy(), expected_best.x)
        np.testing.assert_allclose(best.log_prob[chain].item(), expected_best.log_prob, rtol=1e-13)


def test_annealing_best_breaks_ties_as_the_reference():
    # Per chain: ties inside the trace go to the first step, ties with the start to the start.
    log_probs = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -np.inf], [-np.inf, -np.inf, -np.inf]])
    states = np.arange(9).reshape(3, 3, 1)
    start_x, start_log_prob = np.array([[10], [11], [12]]), np.array([3.0, 1.0, -np.inf])
    trace = annealing.AnnealingTrace(
        annealing.MHState(torch.tensor(states), torch.tensor(log_probs)), None, None, False
    )
    for initial in (None, annealing.MHState(torch.tensor(start_x), torch.tensor(start_log_prob))):
        best = annealing.best(trace, initial)
        for chain in range(3):
            reference_trace = reference_annealing.AnnealingTrace(
                reference_mh.MHState(states[chain], log_probs[chain]), None, None, False
            )
            reference_initial = None if initial is None else reference_mh.MHState(start_x[chain], start_log_prob[chain])
            expected = reference_annealing.best(reference_trace, reference_initial)
            np.testing.assert_array_equal(best.x[chain].numpy(), expected.x)
            assert float(best.log_prob[chain]) == expected.log_prob


def _independent_cases():
    # 2-D: a 1-D IndependentGaussian gives states (N,), which the reference mixture reads as one state.
    mixture = targets.GaussianMixture([0.3, 0.7], [[-1.0, 0.0], [1.5, 1.0]], [[0.6, 1.0], [1.0, 0.5]])
    return {
        "categorical": (
            targets.Categorical([0.0, 2.0, -1.0, -np.inf, 1.0]),
            proposals.IndependentCategorical([0.5, 0.0, 0.0, 0.0, 1.0]),
        ),
        "bigram": (_bigram(), proposals.IndependentUniformSequences(4, 3)),
        "mixture": (mixture, proposals.IndependentGaussian([0.0, 0.5], 2.0)),
    }


INDEPENDENT_CASES = _independent_cases()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(INDEPENDENT_CASES))
def test_importance_twin_gives_the_reference_weights_per_chain(case, device):
    target, proposal = INDEPENDENT_CASES[case]
    continuous = case == "mixture"
    num_samples = 400
    result = importance.sample(
        CounterGenerator(SEED, torch.arange(NUM_CHAINS, device=device)),
        twin_of(target, F64, device).log_prob,
        twin_of(proposal, F64, device),
        num_samples,
    )
    assert result.log_weights.shape == (NUM_CHAINS, num_samples)
    for chain in range(NUM_CHAINS):
        expected = reference_importance.sample(
            NumpyCounterGenerator(SEED, chain), target.log_prob, proposal, num_samples
        )
        _assert_states(expected.states, result.states[chain].cpu().numpy(), continuous)
        _assert_log_probs(expected.log_weights, result.log_weights[chain].cpu().numpy())
        np.testing.assert_allclose(
            result.normalized_weights[chain].cpu().numpy(), expected.normalized_weights, rtol=1e-11, atol=1e-300
        )
        np.testing.assert_allclose(
            result.effective_sample_size[chain].item(), expected.effective_sample_size, rtol=1e-11
        )
        np.testing.assert_allclose(
            result.log_normalizer_estimate[chain].item(), expected.log_normalizer_estimate, rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", ["categorical", "bigram"])
def test_rejection_twin_keeps_the_reference_samples(case, device):
    target, proposal = INDEPENDENT_CASES[case]
    log_envelope = reference_rejection.tightest_log_envelope(target, proposal)
    twin_target, twin_proposal = twin_of(target, F64, device), twin_of(proposal, F64, device)
    assert rejection.tightest_log_envelope(twin_target, twin_proposal) == log_envelope
    result = rejection.sample(
        CounterGenerator(SEED, torch.arange(NUM_CHAINS, device=device)),
        twin_target.log_prob,
        twin_proposal,
        log_envelope,
        300,
    )
    for chain in range(NUM_CHAINS):
        expected = reference_rejection.sample(
            NumpyCounterGenerator(SEED, chain), target.log_prob, proposal, log_envelope, 300
        )
        np.testing.assert_array_equal(result.samples(chain).cpu().numpy(), expected.samples)
        # decision by decision: the reference's step on the same uniforms
        uniforms = numpy_randomness.draw_uniforms_for_steps(
            NumpyCounterGenerator(SEED, chain), 0, 300, reference_rejection.num_uniforms(proposal)
        )
        _, expected_accepted, _ = reference_rejection.step(uniforms, target.log_prob, proposal, log_envelope)
        np.testing.assert_array_equal(result.accepted[chain].cpu().numpy(), expected_accepted)
        assert int(result.num_accepted[chain]) == expected.num_accepted
    assert 0 < int(result.num_accepted.sum()) < NUM_CHAINS * 300


@pytest.mark.parametrize("device", DEVICES)
def test_categorical_twin_picks_the_reference_index(device):
    rng = _rng(17)
    logits = rng.normal(size=(2000, 7)) * 3
    logits[:, 2] = -np.inf  # zero-weight categories inside and at the end
    logits[:, 6] = -np.inf
    uniforms = rng.uniform(size=2000)
    expected = reference_categorical.categorical_from_uniforms(uniforms, logits)
    got = categorical.categorical_from_uniforms(
        torch.tensor(uniforms, device=device), torch.tensor(logits, device=device)
    )
    np.testing.assert_array_equal(got.cpu().numpy(), expected)
    shared = categorical.categorical_from_uniforms(
        torch.tensor(uniforms, device=device), torch.tensor(logits[0], device=device)
    )
    np.testing.assert_array_equal(
        shared.cpu().numpy(), reference_categorical.categorical_from_uniforms(uniforms, logits[0])
    )
    # uniforms at the top of (0, 1) never select a trailing zero-weight category
    top = torch.full((3,), 1 - 2**-53, dtype=F64, device=device)
    assert categorical.categorical_from_uniforms(top, torch.tensor(logits[:3], device=device)).tolist() == [5, 5, 5]
    # sample(): chain c draws with the uniform of (seed, c, 0), as the reference for CounterGenerator(seed, c)
    drawn = categorical.sample(
        CounterGenerator(SEED, torch.arange(50, device=device)), torch.tensor(logits[0], device=device)
    )
    for chain in range(50):
        assert int(drawn[chain]) == int(
            reference_categorical.sample(NumpyCounterGenerator(SEED, chain), logits[0], 1)[0]
        )
