"""The parallel tempering twin against its NumPy reference: same uniforms in, same replicas and decisions out.

Chain ``b`` of one batched torch run (counter generator, chain index ``b``) is compared with the
reference chain for ``CounterGenerator(seed, b)``, in float64, step by step: every replica's proposal
and MH decision, every swap's parity, ratio and decision; log-densities to rounding (1e-12). A decision
could differ only if a uniform fell within an ulp of its threshold: probability of order 1e-16 per
decision. Deterministic (fixed seeds).
"""

import numpy as np
import pytest
import torch
from twin_assertions import assert_close_to_reference

from textsampling import targets
from textsampling.randomness import CounterGenerator as NumpyCounterGenerator
from textsampling.reference import parallel_tempering as reference
from textsampling.reference import proposals
from textsampling.torch import parallel_tempering
from textsampling.torch.randomness import CounterGenerator
from textsampling.torch.twins import twin_of

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
SEED = 19860512
NUM_CHAINS = 6
NUM_STEPS = 80
F64 = torch.float64


def _cases():
    rng = np.random.default_rng(2)
    ising = targets.PairwiseChain.ising(6, coupling=2.0)
    return {
        "categorical-with-impossible-state": (
            targets.Categorical([0.3, -1.0, -np.inf, 2.0, 0.5, 1.2]),
            proposals.UniformCategoricalProposal(6),
            np.array([1.0, 2.0, 4.0, 8.0]),
            np.tile([2, 0, 3, 5], (NUM_CHAINS, 1)),  # the cold replica starts where rho = 0
        ),
        "bimodal-ring": (
            targets.Categorical(4.0 * np.cos(2.0 * np.pi * 2 * np.arange(10) / 10)),
            proposals.RingStepProposal(10, 0.5),
            np.array([1.0, 3.0, 9.0]),
            rng.integers(0, 10, (NUM_CHAINS, 3)),
        ),
        "ising-single-site": (
            ising,
            proposals.SingleSiteProposal(2, 6),
            np.array([1.0, 2.5]),
            rng.integers(0, 2, (NUM_CHAINS, 2, 6)),
        ),
        "mixture-random-walk": (
            targets.GaussianMixture([0.35, 0.65], [-3.0, 2.0], [0.8, 1.2]),
            proposals.GaussianRandomWalkProposal(0.5, 1),
            np.array([1.0, 4.0, 16.0]),
            rng.normal(size=(NUM_CHAINS, 3)),
        ),
    }


CASES = _cases()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_pt_twin_makes_the_reference_decisions(case, device):
    target, proposal, temperatures, initial = CASES[case]
    continuous = isinstance(target, targets.GaussianMixture)
    twin_target, twin_proposal = twin_of(target, F64, device), twin_of(proposal, F64, device)
    trace = parallel_tempering.sample(
        CounterGenerator(SEED, torch.arange(NUM_CHAINS, device=device)),
        torch.tensor(initial, device=device),
        twin_target.log_prob,
        twin_proposal,
        NUM_STEPS,
        temperatures=temperatures,
        dtype=F64,
    )
    for chain in range(NUM_CHAINS):
        expected = reference.sample(
            NumpyCounterGenerator(SEED, chain),
            initial[chain],
            target.log_prob,
            proposal,
            NUM_STEPS,
            temperatures=temperatures,
        )
        for field in ("accepted", "swap_proposed", "swap_accepted"):
            np.testing.assert_array_equal(
                getattr(trace.infos, field)[chain].cpu().numpy(), getattr(expected.infos, field)
            )
        if continuous:
            np.testing.assert_allclose(trace.states.x[chain].cpu().numpy(), expected.states.x, rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_array_equal(trace.states.x[chain].cpu().numpy(), expected.states.x)
            np.testing.assert_array_equal(trace.infos.proposal[chain].cpu().numpy(), expected.infos.proposal)
        assert_close_to_reference(trace.states.log_prob[chain], expected.states.log_prob)
        assert_close_to_reference(trace.infos.log_accept_prob[chain], expected.infos.log_accept_prob)
        assert_close_to_reference(trace.infos.swap_log_accept_prob[chain], expected.infos.swap_log_accept_prob)
    # The test has teeth: swaps are proposed on every pair, and some are accepted, some rejected.
    swaps = trace.infos.swap_accepted[trace.infos.swap_proposed].double().mean()
    assert 0 < swaps < 1 and trace.infos.swap_proposed.any(dim=(0, 1)).all()


def test_pt_twin_refuses_bad_temperatures_and_a_replica_count_mismatch():
    target, proposal, _, initial = CASES["bimodal-ring"]
    twin_target, twin_proposal = twin_of(target, F64), twin_of(proposal, F64)
    rng = CounterGenerator(SEED, torch.arange(NUM_CHAINS))
    with pytest.raises(ValueError, match="strictly increasing"):
        parallel_tempering.sample(
            rng, torch.tensor(initial), twin_target.log_prob, twin_proposal, 2, temperatures=[1.0, 3.0, 2.0]
        )
    with pytest.raises(ValueError, match="replicas"):
        parallel_tempering.sample(
            rng, torch.tensor(initial), twin_target.log_prob, twin_proposal, 2, temperatures=[1.0, 3.0]
        )
