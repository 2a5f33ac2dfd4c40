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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_pairs_at_once_equal_the_pair_by_pair_swap_bit_for_bit(dtype):
    """The swap takes every pair in one pass: the same ratios (to the bit, float32 included) and the same
    exchanges as applying swap_log_accept_prob pair by pair, in order, as the reference's loop does."""
    generator = torch.Generator().manual_seed(7)
    num_chains, num_replicas = 500, 5
    temperatures = [1.0, 1.7, 3.1, 5.3, 10.0]
    log_prob = torch.randn(num_chains, num_replicas, generator=generator, dtype=dtype) * 3.0
    log_prob[::7, 1] = -torch.inf  # impossible replicas: NaN ratios where both are -inf, rejected
    log_prob[::14, 2] = -torch.inf
    x = torch.arange(num_chains * num_replicas * 2).reshape(num_chains, num_replicas, 2)
    uniforms = torch.rand(num_chains, num_replicas, generator=generator, dtype=dtype).clamp_(min=1e-6)
    new_state, (proposed, log_alpha, accepted) = parallel_tempering.swap(
        uniforms, parallel_tempering.PTState(x, log_prob), temperatures=temperatures
    )
    expected_x, expected_log_prob = x.clone(), log_prob.clone()
    parity = (uniforms[:, 0] * 2).floor().long()
    for i in range(num_replicas - 1):
        is_proposed = parity == i % 2
        assert torch.equal(proposed[:, i], is_proposed)
        ratio = parallel_tempering.swap_log_accept_prob(
            expected_log_prob[:, i], expected_log_prob[:, i + 1], temperatures[i], temperatures[i + 1]
        )
        ratio = torch.where(is_proposed, ratio, torch.nan)
        assert torch.equal(log_alpha[:, i].nan_to_num(nan=7.0), ratio.nan_to_num(nan=7.0))
        is_accepted = is_proposed & (torch.log(uniforms[:, 1 + i]) < ratio)
        assert torch.equal(accepted[:, i], is_accepted)
        for value in (expected_x, expected_log_prob):
            keep = is_accepted.reshape((-1,) + (1,) * (value.ndim - 2))
            a, b = value[:, i].clone(), value[:, i + 1].clone()
            value[:, i], value[:, i + 1] = torch.where(keep, b, a), torch.where(keep, a, b)
    assert torch.equal(new_state.x, expected_x) and torch.equal(new_state.log_prob, expected_log_prob)
    assert 0 < accepted.sum() < proposed.sum()  # some swaps accepted, some rejected


def test_swap_refuses_uniforms_too_narrow_for_its_pairs():
    """(B, 2) uniforms for 4 replicas would broadcast one uniform over every pair: an error naming the shape."""
    state = parallel_tempering.PTState(torch.zeros((3, 4), dtype=torch.int64), torch.zeros((3, 4), dtype=F64))
    with pytest.raises(ValueError, match=r"uniforms must have shape \(3, >= 4\)"):
        parallel_tempering.swap(torch.full((3, 2), 0.5, dtype=F64), state, temperatures=[1.0, 2.0, 4.0, 8.0])
