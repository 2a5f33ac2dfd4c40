"""The torch MH step's fast branches make the reference's numbers, edge cases included.

Three shortcuts of :func:`textsampling.torch.metropolis_hastings.step` are pinned here on the
reference's answers (exact, no statistics, no timing):

* the impossible-start mask of ``log_accept_ratio`` is skipped for proposals that declare a finite
  Hastings term (``finite_log_q_ratio``): the answers must equal the reference's on every special value,
  and a proposal whose term can be infinite must keep the mask;
* ``select_accepted`` picks states and log-densities as bit patterns from ``BRANCH_FREE_MIN_ENTRIES``
  entries on: the bits of ``torch.where``, NaN payloads and signed zeros included; a batch above the
  threshold makes the reference's decisions chain by chain;
* the categorical target gathers from its logits padded with ``-inf``: the reference's ``log_prob`` for
  every int64 state, outside the support included.

The uniforms come from the counter generator (fixed seeds), in float64; a decision could differ from the
reference's only if a uniform fell within an ulp of its threshold (about 1e-16 per decision).
"""

import itertools

import numpy as np
import pytest
import torch

from textsampling import targets
from textsampling.randomness import counter_uniforms as numpy_counter_uniforms
from textsampling.reference import metropolis_hastings as reference_mh
from textsampling.reference import proposals
from textsampling.torch import metropolis_hastings
from textsampling.torch.randomness import counter_uniforms
from textsampling.torch.twins import twin_of

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
F64 = torch.float64
SEED = 20260115
SPECIAL = [-2.5, 0.0, -0.0, 3.0, -1e308, -np.inf, np.inf, np.nan]
FINITE = [-2.5, 0.0, -0.0, 3.0, -1e308, 1e308]


def _grid(currents, proposals_, ratios):
    rows = np.array(list(itertools.product(currents, proposals_, ratios)), dtype=np.float64)  # (n, 3)
    return rows[:, 0], rows[:, 1], rows[:, 2]


def _reference_ratio(current, proposal, ratio):
    with np.errstate(over="ignore"):  # +-1e308 sums overflow to +-inf on purpose, in both libraries
        return reference_mh.log_accept_ratio(current, proposal, ratio)


def _assert_same_numbers(got: torch.Tensor, expected: np.ndarray):
    got = got.cpu().numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))  # NaN (a rejection) where the reference has it
    np.testing.assert_array_equal(got[~np.isnan(got)], expected[~np.isnan(expected)])


@pytest.mark.parametrize("device", DEVICES)
def test_log_accept_ratio_equals_the_reference_on_every_special_value(device):
    current, proposal, ratio = _grid(SPECIAL, SPECIAL, SPECIAL)
    expected = _reference_ratio(current, proposal, ratio)
    as_tensor = lambda a: torch.tensor(a, dtype=F64, device=device)  # noqa: E731
    got = metropolis_hastings.log_accept_ratio(as_tensor(current), as_tensor(proposal), as_tensor(ratio))
    _assert_same_numbers(got, expected)
    # The shortcut, on the inputs it promises to handle: every finite Hastings term.
    current, proposal, ratio = _grid(SPECIAL, SPECIAL, FINITE)
    expected = _reference_ratio(current, proposal, ratio)
    got = metropolis_hastings.log_accept_ratio(
        as_tensor(current), as_tensor(proposal), as_tensor(ratio), finite_log_q_ratio=True
    )
    _assert_same_numbers(got, expected)


@pytest.mark.parametrize("device", DEVICES)
def test_an_impossible_start_accepts_a_possible_proposal_whatever_the_hastings_term(device):
    # The cases the mask exists for: current -inf, proposal finite, Hastings term -inf, +inf or NaN.
    current = torch.full((3,), -torch.inf, dtype=F64, device=device)
    proposal = torch.full((3,), 0.5, dtype=F64, device=device)
    ratio = torch.tensor([-np.inf, np.inf, np.nan], dtype=F64, device=device)
    expected = reference_mh.log_accept_ratio(current.cpu().numpy(), proposal.cpu().numpy(), ratio.cpu().numpy())
    np.testing.assert_array_equal(expected, [0.0, 0.0, 0.0])
    got = metropolis_hastings.log_accept_ratio(current, proposal, ratio)
    np.testing.assert_array_equal(got.cpu().numpy(), expected)
    # Teeth: without the mask two of them would be NaN (a rejection), so a proposal may declare a
    # finite Hastings term only if it has one.
    unmasked = metropolis_hastings.log_accept_ratio(current, proposal, ratio, finite_log_q_ratio=True)
    assert torch.isnan(unmasked).tolist() == [True, False, True]


def _finite_cases():
    return {
        "uniform": (proposals.UniformCategoricalProposal(6), np.arange(6)),
        "ring": (proposals.RingStepProposal(6, 0.7), np.arange(6)),
        "ring-tiny-forward-probability": (proposals.RingStepProposal(6, 1e-300), np.arange(6)),
        "random-walk": (proposals.GaussianRandomWalkProposal(1.5, 2), np.linspace(-3.0, 3.0, 12).reshape(6, 2)),
    }


@pytest.mark.parametrize("name", sorted(_finite_cases()))
def test_proposals_that_declare_a_finite_hastings_term_return_one(name):
    proposal, x = _finite_cases()[name]
    twin = twin_of(proposal, F64, "cpu")
    assert twin.finite_log_q_ratio is True
    uniforms = counter_uniforms(SEED, torch.arange(400), 0, twin.num_uniforms, dtype=F64)  # (400, k)
    x = torch.as_tensor(np.resize(x, (400,) + x.shape[1:]))
    _, log_q_ratio = twin.propose(uniforms, x)
    assert torch.isfinite(log_q_ratio).all()


def test_proposals_whose_hastings_term_can_be_infinite_keep_the_mask():
    single_site = proposals.SingleSiteProposal(3, 2, np.array([[0.0, -np.inf, 1.0], [0.5, 0.5, -np.inf]]))
    independence = proposals.IndependenceProposal(proposals.IndependentCategorical([0.0, -np.inf, 1.0]))
    for proposal in (single_site, independence):
        assert twin_of(proposal, F64, "cpu").finite_log_q_ratio is False


@pytest.mark.parametrize("device", DEVICES)
def test_impossible_start_with_an_infinite_hastings_term_makes_the_reference_decision(device):
    # Target and proposal both give state 1 probability 0: from x = 1 the Hastings term log q(1) - log q(y)
    # is -inf, the current log-density -inf, and the reference accepts every possible proposal.
    target = targets.Categorical(np.array([0.2, -np.inf, 1.0, -0.4]))
    proposal = proposals.IndependenceProposal(proposals.IndependentCategorical([0.0, -np.inf, 1.0, 0.3]))
    twin_target, twin_proposal = twin_of(target, F64, device), twin_of(proposal, F64, device)
    num_chains = 64
    x = np.where(np.arange(num_chains) % 2 == 0, 1, np.arange(num_chains) % 4)  # half start impossible
    uniforms = numpy_counter_uniforms(SEED, np.arange(num_chains), 0, reference_mh.num_uniforms(proposal))
    state = metropolis_hastings.init(torch.tensor(x, device=device), twin_target.log_prob)
    new_state, info = metropolis_hastings.step(
        torch.tensor(uniforms, device=device), state, twin_target.log_prob, twin_proposal
    )
    for chain in range(num_chains):
        ref_state, ref_info = reference_mh.step(
            uniforms[chain], reference_mh.init(x[chain], target.log_prob), target.log_prob, proposal
        )
        assert bool(info.accepted[chain]) == ref_info.accepted
        assert int(new_state.x[chain]) == int(ref_state.x)
        _assert_same_numbers(info.log_accept_prob[chain : chain + 1], np.array([ref_info.log_accept_prob]))
    assert info.accepted[x == 1].all()  # every impossible start left (its proposals are all possible)


def _special_values(dtype, size, seed):
    generator = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        values = torch.randn(size, generator=generator, dtype=dtype)
        specials = torch.tensor([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=dtype)
        values[: len(specials)] = specials
        bits = values.view(metropolis_hastings._SAME_WIDTH_INTEGER[dtype])
        bits[len(specials)] = bits[4] ^ 1  # a NaN with another payload
        return values
    info = torch.iinfo(dtype)
    values = torch.randint(-1000, 1000, (size,), generator=generator, dtype=dtype)
    values[:3] = torch.tensor([info.min, info.max, -1], dtype=dtype)
    return values


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int32, torch.int64, torch.bool])
@pytest.mark.parametrize("shape", [(10,), (5000,), (2000, 3)])
def test_select_accepted_gives_the_bits_of_torch_where(dtype, shape, traced, monkeypatch):
    # traced: the masks torch.compile traces (no int8 view), run eagerly with is_compiling patched
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: traced)
    size = int(np.prod(shape))
    if dtype == torch.bool:
        proposal, current = torch.rand(shape) < 0.5, torch.rand(shape) < 0.5
    else:
        proposal = _special_values(dtype, size, 1).reshape(shape)
        current = _special_values(dtype, size, 2).reshape(shape)
    accepted = torch.rand(shape[0], generator=torch.Generator().manual_seed(3)) < 0.4
    keep = accepted.reshape((-1,) + (1,) * (len(shape) - 1))
    expected = torch.where(keep, proposal, current)
    masks = {}
    got = metropolis_hastings.select_accepted(accepted, proposal, current, masks)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    bits = metropolis_hastings._SAME_WIDTH_INTEGER.get(dtype, dtype)
    assert torch.equal(got.view(bits), expected.view(bits))
    # The masks are shared between the selects of a step: a second dtype reuses them.
    if size >= metropolis_hastings.BRANCH_FREE_MIN_ENTRIES and dtype != torch.bool:
        assert masks
        other = torch.randn(shape[0], dtype=torch.float32)
        again = metropolis_hastings.select_accepted(accepted, other, other.flip(0), masks)
        assert torch.equal(again.view(torch.int32), torch.where(accepted, other, other.flip(0)).view(torch.int32))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("proposal_name", ["uniform", "ring"])
def test_a_batch_above_the_branch_free_threshold_makes_the_reference_decisions(proposal_name, device, monkeypatch):
    target = targets.Categorical(np.array([0.3, -1.0, -np.inf, 2.0, 0.5, 1.2]))
    proposal = (
        proposals.UniformCategoricalProposal(6) if proposal_name == "uniform" else proposals.RingStepProposal(6, 0.7)
    )
    twin_target, twin_proposal = twin_of(target, F64, device), twin_of(proposal, F64, device)
    num_chains, num_steps = 2 * metropolis_hastings.BRANCH_FREE_MIN_ENTRIES + 3, 3
    chains = np.arange(num_chains)
    x = chains % 6  # a sixth of the chains start at the impossible state 2
    states = [reference_mh.init(x[c], target.log_prob) for c in range(num_chains)]
    state = metropolis_hastings.init(torch.tensor(x, device=device), twin_target.log_prob)
    for t in range(num_steps):
        uniforms = numpy_counter_uniforms(SEED, chains, t, reference_mh.num_uniforms(proposal))  # (B, 2)
        twin_uniforms = torch.tensor(uniforms, device=device)
        new_state, info = metropolis_hastings.step(twin_uniforms, state, twin_target.log_prob, twin_proposal)
        # The same step through torch.where (threshold out of reach): the same bits.
        with monkeypatch.context() as patch:
            patch.setattr(metropolis_hastings, "BRANCH_FREE_MIN_ENTRIES", 10**18)
            where_state, _ = metropolis_hastings.step(twin_uniforms, state, twin_target.log_prob, twin_proposal)
        assert torch.equal(new_state.x, where_state.x)
        assert torch.equal(new_state.log_prob.view(torch.int64), where_state.log_prob.view(torch.int64))
        accepted = np.empty(num_chains, dtype=bool)
        for c in range(num_chains):
            states[c], ref_info = reference_mh.step(uniforms[c], states[c], target.log_prob, proposal)
            accepted[c] = ref_info.accepted
        np.testing.assert_array_equal(info.accepted.cpu().numpy(), accepted)
        np.testing.assert_array_equal(new_state.x.cpu().numpy(), [int(s.x) for s in states])
        np.testing.assert_array_equal(new_state.log_prob.cpu().numpy(), [s.log_prob for s in states])
        state = new_state
        assert 0 < accepted.mean() < 1  # teeth: both branches of the select are taken


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_categorical_log_prob_is_the_reference_for_every_int64_state(dtype, device):
    reference = targets.Categorical(np.array([0.3, -1.0, -np.inf, 2.0, 0.5]))
    twin = twin_of(reference, dtype, device)
    states = np.array([-(2**63), -(2**31), -6, -1, 0, 1, 2, 3, 4, 5, 6, 2**31, 2**63 - 1], dtype=np.int64)
    expected = reference.log_prob(states).astype(np.float32 if dtype == torch.float32 else np.float64)
    got = twin.log_prob(torch.tensor(states, device=device))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.cpu().numpy(), expected)
    # Other integer dtypes take the general path: the same numbers.
    got_int32 = twin.log_prob(torch.tensor(states[1:-1].astype(np.int32), device=device))
    np.testing.assert_array_equal(got_int32.cpu().numpy(), expected[1:-1])


@pytest.mark.parametrize("layout", ["row-major", "uniform-major", "strided"])
@pytest.mark.parametrize("bad", [np.nan, 0.0, 1.0, -0.5, 1.5])
def test_step_refuses_uniforms_outside_the_open_interval(bad, layout):
    # In every layout: the generators' uniform-major one (each column contiguous, the check reads the
    # memory in its order), row-major, and a view with gaps.
    twin_target = twin_of(targets.Categorical(np.array([0.3, -1.0, 2.0])), F64, "cpu")
    twin_proposal = twin_of(proposals.UniformCategoricalProposal(3), F64, "cpu")
    state = metropolis_hastings.init(torch.arange(5) % 3, twin_target.log_prob)
    storage = {
        "row-major": lambda: torch.full((5, 2), 0.5, dtype=F64),
        "uniform-major": lambda: torch.full((2, 5), 0.5, dtype=F64).T,
        "strided": lambda: torch.full((5, 4), 0.5, dtype=F64)[:, ::2],
    }
    uniforms = storage[layout]()
    assert uniforms.is_contiguous() == (layout == "row-major")
    metropolis_hastings.step(uniforms, state, twin_target.log_prob, twin_proposal)  # all inside: accepted
    uniforms[3, 1] = bad  # the decision column: the proposal never reads it
    with pytest.raises(ValueError, match="open interval"):
        metropolis_hastings.step(uniforms, state, twin_target.log_prob, twin_proposal)


def test_step_refuses_a_positive_infinite_log_density_beside_a_nan():
    twin_proposal = twin_of(proposals.UniformCategoricalProposal(4), F64, "cpu")

    def log_prob(x):  # NaN at state 0 and +inf at state 3: the maximum would be NaN, hiding the +inf
        values = torch.zeros(x.shape[0], dtype=F64)
        return values.masked_fill(x == 0, torch.nan).masked_fill(x == 3, torch.inf)

    state = metropolis_hastings.MHState(torch.tensor([1, 2]), torch.zeros(2, dtype=F64))
    uniforms = torch.tensor([[0.1, 0.5], [0.9, 0.5]], dtype=F64)  # proposals 0 (NaN) and 3 (+inf)
    with pytest.raises(ValueError, match=r"\+inf at a proposed state"):
        metropolis_hastings.step(uniforms, state, log_prob, twin_proposal)


def test_a_step_of_no_chains_passes_the_value_checks():
    # aminmax has no identity: the range check must not reduce an empty batch.
    twin_target = twin_of(targets.Categorical(np.array([0.3, -1.0])), F64, "cpu")
    twin_proposal = twin_of(proposals.UniformCategoricalProposal(2), F64, "cpu")
    state = metropolis_hastings.init(torch.zeros(0, dtype=torch.int64), twin_target.log_prob)
    new_state, info = metropolis_hastings.step(
        torch.zeros((0, 2), dtype=F64), state, twin_target.log_prob, twin_proposal, validate=True
    )
    assert new_state.x.shape == (0,) and info.accepted.shape == (0,)
