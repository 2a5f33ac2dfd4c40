"""The torch hill climber against its NumPy reference: same uniforms in, same starts, states and decisions out.

Chain ``c`` of one batched torch run is compared with the reference run for ``CounterGenerator(seed, c)``,
in float64. The decision f(y) >= f(x) compares two log-densities computed by NumPy and by torch; they
agree to a few ulps, so a decision could differ only on a near-tie between *different* states, which the
targets below do not have (their distinct log-densities differ by far more than rounding; exact ties,
as on the plateau target, are computed from the same table entries and are equal in both).
Deterministic (fixed seeds), so a failure is a real difference.
"""

import numpy as np
import pytest
import torch

from textsampling import targets
from textsampling.randomness import CounterGenerator as NumpyCounterGenerator
from textsampling.reference import hill_climbing as reference
from textsampling.reference import proposals
from textsampling.torch import hill_climbing
from textsampling.torch import proposals as torch_proposals
from textsampling.torch.metropolis_hastings import MHState
from textsampling.torch.randomness import CounterGenerator
from textsampling.torch.twins import twin_of

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
SEED = 1988
NUM_CHAINS = 8
F64 = torch.float64


def _cases():
    rng = np.random.default_rng(12)
    rugged = targets.Categorical(3.0 * np.sin(np.arange(30) * 0.9) + np.random.default_rng(2).normal(size=30))
    plateau = targets.Categorical([0.0, 1.0, 1.0, 1.0, 0.5, -np.inf, 2.0, -1.0])
    pairwise = targets.PairwiseChain(rng.normal(size=(4, 3)), rng.normal(size=(3, 3)) * 2.0)
    return {
        "rugged-ring": (rugged, proposals.RingStepProposal(30, 0.3), proposals.IndependentCategorical(np.zeros(30))),
        "plateau-ring": (plateau, proposals.RingStepProposal(8, 0.5), proposals.IndependentCategorical(np.zeros(8))),
        "pairwise-single-site": (
            pairwise,
            proposals.SingleSiteProposal(3, 4, token_logits=[0.5, 0.0, -1.0]),
            proposals.IndependentUniformSequences(3, 4),
        ),
    }


CASES = _cases()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_restarts_follow_the_reference_decision_by_decision(case, device):
    target, proposal, start_distribution = CASES[case]
    num_steps, num_restarts = 30, 4
    result = hill_climbing.restarts(
        CounterGenerator(SEED, torch.arange(NUM_CHAINS, device=device)),
        twin_of(start_distribution, F64, device),
        twin_of(target, F64, device).log_prob,
        twin_of(proposal, F64, device),
        num_steps,
        num_restarts,
    )
    assert not result.interrupted and result.final_log_probs.shape == (NUM_CHAINS, num_restarts)
    for chain in range(NUM_CHAINS):
        expected = reference.restarts(
            NumpyCounterGenerator(SEED, chain), start_distribution, target.log_prob, proposal, num_steps, num_restarts
        )
        np.testing.assert_array_equal(result.starts[chain].cpu().numpy(), expected.starts)
        np.testing.assert_array_equal(result.final_states[chain].cpu().numpy(), expected.final_states)
        np.testing.assert_allclose(result.final_log_probs[chain].cpu().numpy(), expected.final_log_probs, rtol=1e-13)
        np.testing.assert_array_equal(result.best_state[chain].cpu().numpy(), expected.best_state)
        assert int(result.best_restart[chain]) == expected.best_restart


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_climb_follows_the_reference_step_by_step(case, device):
    target, proposal, start_distribution = CASES[case]
    num_steps = 120
    initial = start_distribution.sample(np.random.default_rng(3).random((NUM_CHAINS, start_distribution.num_uniforms)))
    trace = hill_climbing.sample(
        CounterGenerator(SEED, torch.arange(NUM_CHAINS, device=device)),
        torch.tensor(initial, device=device),
        twin_of(target, F64, device).log_prob,
        twin_of(proposal, F64, device),
        num_steps,
        first_step=5,
    )
    for chain in range(NUM_CHAINS):
        expected = reference.sample(
            NumpyCounterGenerator(SEED, chain), initial[chain], target.log_prob, proposal, num_steps, first_step=5
        )
        np.testing.assert_array_equal(trace.states.x[chain].cpu().numpy(), expected.states.x)
        np.testing.assert_array_equal(trace.infos.accepted[chain].cpu().numpy(), expected.infos.accepted)
        np.testing.assert_allclose(trace.states.log_prob[chain].cpu().numpy(), expected.states.log_prob, rtol=1e-13)
    # Not a test that cannot fail: the climbs moved, and never downhill.
    assert trace.infos.accepted.any()
    assert (torch.diff(trace.states.log_prob[:, :], dim=1) >= 0).all()


def _state(num_chains=4):
    target = twin_of(CASES["rugged-ring"][0], F64)
    return hill_climbing.init(torch.zeros(num_chains, dtype=torch.int64), target.log_prob), target


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: hill_climbing.restarts(CounterGenerator(0, torch.arange(2)), torch_proposals.IndependentCategorical(
            np.zeros(30), dtype=F64), _state()[1].log_prob, torch_proposals.RingStepProposal(30, 0.5, dtype=F64), 5, 0),
         ValueError, "num_restarts"),
        (lambda: hill_climbing.restarts(CounterGenerator(0, torch.arange(2)), torch_proposals.RingStepProposal(
            30, 0.5, dtype=F64), _state()[1].log_prob, torch_proposals.RingStepProposal(30, 0.5, dtype=F64), 5, 2),
         TypeError, "start_distribution"),
        (lambda: hill_climbing.step(torch.full((4, 2), 0.5, dtype=F64), *_state()[:1], _state()[1].log_prob,
                                    torch_proposals.RingStepProposal(30, 0.5, dtype=F64)), ValueError, "uniforms"),
        (lambda: hill_climbing.step(torch.full((4, 1), 1.0, dtype=F64), *_state()[:1], _state()[1].log_prob,
                                    torch_proposals.RingStepProposal(30, 0.5, dtype=F64)), ValueError, "uniforms"),
        (lambda: hill_climbing.step(torch.full((4, 1), 0.5), *_state()[:1], _state()[1].log_prob,
                                    torch_proposals.RingStepProposal(30, 0.5, dtype=F64)), TypeError, "dtype"),
        (lambda: hill_climbing.step(torch.full((4, 1), 0.5, dtype=F64), (torch.zeros(4), torch.zeros(4)),
                                    _state()[1].log_prob, torch_proposals.RingStepProposal(30, 0.5, dtype=F64)),
         TypeError, "MHState"),
        (lambda: hill_climbing.sample(torch.Generator(), torch.zeros(4, dtype=torch.int64), _state()[1].log_prob,
                                      torch_proposals.RingStepProposal(30, 0.5, dtype=F64), -1),
         ValueError, "num_steps"),
        (lambda: hill_climbing.sample(3, torch.zeros(4, dtype=torch.int64), _state()[1].log_prob,
                                      torch_proposals.RingStepProposal(30, 0.5, dtype=F64), 5), TypeError, "rng"),
    ],
    ids=["restarts", "start-distribution", "uniform-count", "uniform-value", "dtype", "state", "num-steps", "rng"],
)
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_torch_generator_needs_num_chains():
    target, proposal, start_distribution = CASES["rugged-ring"]
    with pytest.raises(ValueError, match="num_chains"):
        hill_climbing.restarts(torch.Generator().manual_seed(0), twin_of(start_distribution, F64),
                               twin_of(target, F64).log_prob, twin_of(proposal, F64), 5, 2)
    result = hill_climbing.restarts(torch.Generator().manual_seed(0), twin_of(start_distribution, F64),
                                    twin_of(target, F64).log_prob, twin_of(proposal, F64), 5, 2, num_chains=3)
    assert result.best_state.shape == (3,) and result.starts.shape == (3, 2)
    assert isinstance(hill_climbing.init(result.best_state, twin_of(target, F64).log_prob), MHState)
