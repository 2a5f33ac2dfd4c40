"""The torch MH step's compiled decision loop (numba) gives the torch operations' bits.

On the CPU with numba installed, :func:`textsampling.torch.metropolis_hastings.step` makes its value
checks, acceptance function, decisions and selects in one loop
(:mod:`textsampling.torch._metropolis_hastings_numba`). These tests run every step twice, once through
that loop and once through the torch operations (the loop switched off), and compare the results bit for
bit on grids of special values: NaN, +-inf, -0.0, impossible starts, tempered chains, float states with
NaN payloads, states of several numbers, three layouts of the uniforms. The states, log-densities and
decisions are the same bits; the log acceptance probabilities the same numbers (which NaN a sum of two
NaNs gives is not fixed by IEEE 754). Exact, no statistics, no timing.
"""

import contextlib
import itertools
import sys

import numpy as np
import pytest
import torch

from textsampling.torch import metropolis_hastings
from textsampling.torch.randomness import CounterGenerator

pytest.importorskip("numba", reason="numba is the optional extra textsampling[fast]")

SEED = 20261202
CURRENT = [-2.5, 0.0, -0.0, 3.0, -1e30, -np.inf]  # no NaN, no +inf: init refuses them
PROPOSED = [-2.5, 0.0, -0.0, 3.0, -1e30, -np.inf, np.inf, np.nan]
RATIOS = [-2.5, 0.0, -0.0, 3.0, 1e30, -np.inf, np.inf, np.nan]
FINITE_RATIOS = [-2.5, 0.0, -0.0, 3.0, 1e30, -1e30]
BITS = {torch.float32: torch.int32, torch.float64: torch.int64}


class FixedProposal:
    """Proposes the given states and Hastings terms whatever the uniforms (one uniform, unused)."""

    num_uniforms = 1

    def __init__(self, y, log_q_ratio, finite):
        self.y, self.log_q_ratio = y, log_q_ratio
        if finite:
            self.finite_log_q_ratio = True

    def propose(self, uniforms, x):
        return self.y, self.log_q_ratio


def as_bits(tensor):
    return tensor.view(BITS[tensor.dtype]) if tensor.dtype in BITS else tensor


def assert_same_bits(got, expected):
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert torch.equal(as_bits(got.contiguous()), as_bits(expected.contiguous()))


def assert_same_numbers(got, expected):
    """The same bits, except which NaN: where both operands of a sum are NaN, IEEE 754 leaves open whose
    sign and payload the result carries (x86 returns one operand's; which one depends on how each path's
    compiler emitted the addition)."""
    assert got.dtype == expected.dtype and got.shape == expected.shape
    nan = torch.isnan(got)
    assert torch.equal(nan, torch.isnan(expected))
    assert torch.equal(as_bits(got[~nan]), as_bits(expected[~nan]))


#: The MH step with the torch operations (numba's loop switched off), as without numba.
torch_operations = metropolis_hastings.without_numba


def spy_on_the_loop(monkeypatch):
    """Count the calls of numba's loops (a list of their names), which still compute."""
    assert metropolis_hastings.numba_kernel_available(), metropolis_hastings._numba["failed"]
    from textsampling.torch import _metropolis_hastings_numba as module

    calls = []

    class Spy:
        def __getattr__(self, name):
            kernel = getattr(module, name)

            def counted(*args):
                calls.append(name)
                return kernel(*args)

            return counted

    monkeypatch.setitem(metropolis_hastings._numba, "module", Spy())
    return calls


def states_of(kind, num_chains, generator):
    """Current and proposed states of one kind, with NaN payloads and signed zeros for the float kinds."""
    dtype, shape = kind
    if dtype.is_floating_point:
        x = torch.randn((num_chains,) + shape, generator=generator, dtype=dtype)
        y = torch.randn((num_chains,) + shape, generator=generator, dtype=dtype)
        flat_x, flat_y = x.view(-1), y.view(-1)
        flat_x[::7], flat_y[1::5] = -0.0, -0.0
        # A quiet NaN with a payload, and a negative one: bits that a float select could change.
        width = 32 if dtype == torch.float32 else 64
        payloads = [0x7FC00123, 0xFFC00123 - 2**32] if width == 32 else [0x7FF8000000000123, 0xFFF8000000000123 - 2**64]
        flat_x[2::11] = torch.tensor(payloads[0], dtype=BITS[dtype]).view(dtype)
        flat_y[3::13] = torch.tensor(payloads[1], dtype=BITS[dtype]).view(dtype)
        return x, y
    low, high = torch.iinfo(dtype).min, torch.iinfo(dtype).max
    x = torch.randint(low, high, (num_chains,) + shape, generator=generator, dtype=dtype)
    y = torch.randint(low, high, (num_chains,) + shape, generator=generator, dtype=dtype)
    return x, y


def run_step(x, y, log_prob_x, log_prob_y, log_q_ratio, uniforms, finite, temperature, validate):
    values = {id(x): log_prob_x, id(y): log_prob_y}

    def log_prob_fn(states):
        return values[id(states)]

    state = metropolis_hastings.MHState(x, log_prob_x)
    proposal = FixedProposal(y, log_q_ratio, finite)
    return metropolis_hastings.step(uniforms, state, log_prob_fn, proposal, temperature=temperature, validate=validate)


def grid(dtype, finite):
    ratios = FINITE_RATIOS if finite else RATIOS
    rows = list(itertools.product(CURRENT, PROPOSED, ratios))
    current, proposed, ratio = (torch.tensor(column, dtype=dtype) for column in zip(*rows, strict=True))
    return current, proposed, ratio


def uniforms_of(num_chains, dtype, layout):
    uniforms = CounterGenerator(SEED, torch.arange(num_chains)).uniforms(3, 2, dtype=dtype)  # uniform-major
    if layout == "row-major":
        uniforms = uniforms.contiguous()
    elif layout == "strided":
        uniforms = torch.cat([uniforms, uniforms], dim=1)[:, ::2]
    return uniforms


KINDS = [
    (torch.int64, ()),
    (torch.int32, ()),
    (torch.float32, ()),
    (torch.float64, ()),
    (torch.int64, (3,)),
    (torch.float32, (2, 2)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: f"{kind[0]}{list(kind[1])}")
@pytest.mark.parametrize("finite", [False, True])
def test_the_loop_gives_the_torch_operations_bits(monkeypatch, dtype, kind, finite):
    generator = torch.Generator().manual_seed(SEED)
    log_prob_x, log_prob_y, log_q_ratio = grid(dtype, finite)
    num_chains = log_prob_x.shape[0]
    x, y = states_of(kind, num_chains, generator)
    cases = itertools.product(
        ["uniform-major", "row-major", "strided"],
        [1.0, 0.37, torch.rand(num_chains, generator=generator, dtype=dtype) + 0.1],
    )
    for layout, temperature in cases:
        uniforms = uniforms_of(num_chains, dtype, layout)
        # u close to 1 as well, so that log u is close to log alpha = 0 for some chains
        uniforms[::3, -1] = 1 - torch.finfo(dtype).eps
        arguments = (x, y, log_prob_x, log_prob_y, log_q_ratio, uniforms, finite, temperature, False)
        calls = spy_on_the_loop(monkeypatch)
        (new_state, info) = run_step(*arguments)
        assert calls == ["accept" if x.ndim == 1 else "accept_rows"]
        with torch_operations():
            (expected_state, expected_info) = run_step(*arguments)
        assert_same_bits(new_state.x, expected_state.x)
        assert_same_bits(new_state.log_prob, expected_state.log_prob)
        assert_same_numbers(info.log_accept_prob, expected_info.log_accept_prob)
        assert torch.equal(info.accepted, expected_info.accepted)
        assert info.proposal is expected_info.proposal is y
        # Not a grid that says nothing: both decisions and the special values occur.
        assert 0 < int(info.accepted.sum()) < num_chains
        assert torch.isnan(info.log_accept_prob).any() and torch.isneginf(info.log_accept_prob).any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_value_checks_are_the_torch_operations(monkeypatch, dtype):
    num_chains = 40
    generator = torch.Generator().manual_seed(SEED)
    x, y = states_of((torch.int64, ()), num_chains, generator)
    log_prob_x = torch.randn(num_chains, generator=generator, dtype=dtype)
    log_prob_y = torch.randn(num_chains, generator=generator, dtype=dtype)
    zeros = torch.zeros(num_chains, dtype=dtype)
    for layout in ["uniform-major", "row-major", "strided"]:
        good = uniforms_of(num_chains, dtype, layout)
        calls = spy_on_the_loop(monkeypatch)
        run_step(x, y, log_prob_x, log_prob_y, zeros, good, True, 1.0, True)  # passes
        assert calls == ["accept"]
        for column, bad in itertools.product([0, 1], [0.0, 1.0, -0.5, 1.5, np.nan, np.inf]):
            uniforms = good.clone() if layout != "uniform-major" else good.movedim(-1, 0).clone().movedim(0, -1)
            uniforms[17, column] = bad
            for context, path in ((contextlib.nullcontext, ["accept"]), (torch_operations, [])):
                calls.clear()
                with context(), pytest.raises(ValueError, match=r"uniforms must lie in the open interval \(0, 1\)"):
                    run_step(x, y, log_prob_x, log_prob_y, zeros, uniforms, True, 1.0, True)
                assert calls == path  # the loop raised, then the torch operations
    infinite = log_prob_y.clone()
    infinite[5] = np.inf
    good = uniforms_of(num_chains, dtype, "uniform-major")
    calls.clear()
    with pytest.raises(ValueError, match=r"\+inf at a proposed state"):
        run_step(x, y, log_prob_x, infinite, zeros, good, True, 1.0, True)
    assert calls == ["accept"]
    with torch_operations(), pytest.raises(ValueError, match=r"\+inf at a proposed state"):
        run_step(x, y, log_prob_x, infinite, zeros, good, True, 1.0, True)
    assert calls == ["accept"]
    # Unchecked (validate=False), +inf and out-of-range uniforms go through the same arithmetic on both paths.
    bad = good.clone()
    bad[3, 1] = 1.0
    new, info = run_step(x, y, log_prob_x, infinite, zeros, bad, True, 1.0, False)
    with torch_operations():
        expected, expected_info = run_step(x, y, log_prob_x, infinite, zeros, bad, True, 1.0, False)
    assert torch.equal(new.x, expected.x) and torch.equal(info.accepted, expected_info.accepted)


def test_no_chains_and_one_chain(monkeypatch):
    for num_chains in (0, 1):
        generator = torch.Generator().manual_seed(SEED)
        x, y = states_of((torch.float64, (2,)), num_chains, generator)
        log_prob_x = torch.zeros(num_chains, dtype=torch.float64)
        log_prob_y = torch.full((num_chains,), -0.5, dtype=torch.float64)
        uniforms = uniforms_of(num_chains, torch.float64, "uniform-major")
        calls = spy_on_the_loop(monkeypatch)
        new, info = run_step(x, y, log_prob_x, log_prob_y, log_prob_x, uniforms, False, 1.0, True)
        assert calls == ["accept_rows"]
        with torch_operations():
            expected, expected_info = run_step(x, y, log_prob_x, log_prob_y, log_prob_x, uniforms, False, 1.0, True)
        assert new.x.shape == (num_chains, 2)
        assert_same_bits(new.x, expected.x)
        assert_same_numbers(info.log_accept_prob, expected_info.log_accept_prob)


def test_what_the_loop_does_not_serve_takes_the_torch_operations(monkeypatch):
    # Autograd, a Hastings term that is a number or of another dtype, bool states, proposals of another
    # dtype than the states: the torch operations, with their usual results.
    num_chains = 12
    generator = torch.Generator().manual_seed(SEED)
    x, y = states_of((torch.int64, ()), num_chains, generator)
    log_prob_x = torch.randn(num_chains, generator=generator, dtype=torch.float64)
    log_prob_y = torch.randn(num_chains, generator=generator, dtype=torch.float64)
    uniforms = uniforms_of(num_chains, torch.float64, "uniform-major")
    zeros = torch.zeros(num_chains, dtype=torch.float64)
    cases = [
        (x, y, log_prob_x.clone().requires_grad_(), log_prob_y, zeros),
        (x, y, log_prob_x, log_prob_y, 0.0),
        (x, y, log_prob_x, log_prob_y, zeros.to(torch.float32)),
        (x > 0, y > 0, log_prob_x, log_prob_y, zeros),
        (x, y.to(torch.int32), log_prob_x, log_prob_y, zeros),
    ]
    for current, proposed, log_prob_current, log_prob_proposed, ratio in cases:
        calls = spy_on_the_loop(monkeypatch)
        new, info = run_step(current, proposed, log_prob_current, log_prob_proposed, ratio, uniforms, False, 1.0, True)
        assert calls == []
        with torch_operations():
            expected, _ = run_step(
                current, proposed, log_prob_current, log_prob_proposed, ratio, uniforms, False, 1.0, True
            )
        assert torch.equal(new.x, expected.x) and torch.equal(new.log_prob, expected.log_prob)


def test_a_loop_that_fails_to_load_falls_back_with_a_warning(monkeypatch):
    import textsampling.torch

    class Broken:
        def find_spec(self, name, path=None, target=None):
            if name == "textsampling.torch._metropolis_hastings_numba":
                raise RuntimeError("cannot cache function 'accept': no locator available")
            return None

    monkeypatch.setitem(metropolis_hastings._numba, "module", None)
    monkeypatch.setitem(metropolis_hastings._numba, "failed", None)
    monkeypatch.delitem(sys.modules, "textsampling.torch._metropolis_hastings_numba", raising=False)
    monkeypatch.delattr(textsampling.torch, "_metropolis_hastings_numba", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken()] + sys.meta_path)
    x = torch.arange(6)
    log_prob = torch.zeros(6, dtype=torch.float64)
    uniforms = uniforms_of(6, torch.float64, "uniform-major")
    with pytest.warns(UserWarning, match="compiled loop could not be loaded .RuntimeError: cannot cache.*torch"):
        new, info = run_step(x, x + 1, log_prob, log_prob - 1.0, log_prob, uniforms, True, 1.0, True)
    assert torch.equal(new.x, torch.where(info.accepted, x + 1, x))
    assert not metropolis_hastings.numba_kernel_available()


def _small_case(num_chains=12, dtype=torch.float64):
    generator = torch.Generator().manual_seed(SEED)
    x, y = states_of((torch.int64, ()), num_chains, generator)
    log_prob_x = torch.randn(num_chains, generator=generator, dtype=dtype)
    log_prob_y = torch.randn(num_chains, generator=generator, dtype=dtype)
    uniforms = uniforms_of(num_chains, dtype, "uniform-major")
    return x, y, log_prob_x, log_prob_y, torch.zeros(num_chains, dtype=dtype), uniforms


def test_another_default_device_keeps_the_loop_on_the_cpu(monkeypatch):
    # torch.set_default_device / `with torch.device(...)`: the loop's outputs are still made on the CPU.
    x, y, log_prob_x, log_prob_y, zeros, uniforms = _small_case()
    calls = spy_on_the_loop(monkeypatch)
    with torch.device("meta"):
        new, info = run_step(x, y, log_prob_x, log_prob_y, zeros, uniforms, True, 1.0, True)
    assert calls == ["accept"]
    with torch_operations():
        expected, expected_info = run_step(x, y, log_prob_x, log_prob_y, zeros, uniforms, True, 1.0, True)
    for got, want in zip(new + info[1:], expected + expected_info[1:], strict=True):
        assert got.device.type == "cpu"
        assert_same_bits(got, want)


def test_inputs_the_loop_cannot_read_take_the_torch_operations(monkeypatch):
    # Half precision, a lazily negated Hastings term, non-contiguous states: the torch operations, with
    # the same results (layout included) as with the loop switched off.
    x, y, log_prob_x, log_prob_y, zeros, uniforms = _small_case()
    half = [t.to(torch.float16) for t in (log_prob_x, log_prob_y, zeros, uniforms)]
    wide_x, wide_y = torch.stack([x, x + 1, x - 1], dim=1), torch.stack([y, y - 1, y + 1], dim=1)  # (B, 3)
    cases = [
        (x, y, *half[:3], half[3]),
        (x, y, log_prob_x, log_prob_y, torch._neg_view(-zeros), uniforms),
        (wide_x.T.contiguous().T, wide_y.T.contiguous().T, log_prob_x, log_prob_y, zeros, uniforms),
    ]
    for arguments in cases:
        calls = spy_on_the_loop(monkeypatch)
        new, info = run_step(*arguments, True, 1.0, True)
        assert calls == []
        with torch_operations():
            expected, expected_info = run_step(*arguments, True, 1.0, True)
        assert new.x.stride() == expected.x.stride()
        assert torch.equal(new.x, expected.x) and torch.equal(info.accepted, expected_info.accepted)


def test_transforms_record_the_torch_operations(monkeypatch):
    # Forward-mode autograd keeps the tangent of the kept log-density; vmap batches the step. Both only
    # see the torch operations, so the loop steps aside.
    from torch.autograd import forward_ad

    x, y, log_prob_x, log_prob_y, zeros, uniforms = _small_case()
    calls = spy_on_the_loop(monkeypatch)
    with forward_ad.dual_level():
        dual = forward_ad.make_dual(log_prob_y, torch.ones_like(log_prob_y))
        new, info = run_step(x, y, log_prob_x, dual, zeros, uniforms, True, 1.0, False)
        tangent = forward_ad.unpack_dual(new.log_prob).tangent
    assert calls == []
    assert torch.equal(tangent, info.accepted.to(tangent.dtype))

    def accepted(u):
        return run_step(x, y, log_prob_x, log_prob_y, zeros, u, True, 1.0, False)[1].accepted

    stacked = torch.stack([uniforms, uniforms.flip(0)])  # (2, B, 2)
    batched = torch.func.vmap(accepted)(stacked)
    assert calls == []
    for row in range(2):
        assert torch.equal(batched[row], accepted(stacked[row]))
    assert calls == ["accept", "accept"]  # outside vmap, the loop


def test_both_value_errors_in_one_step_name_the_uniforms_first(monkeypatch):
    x, y, log_prob_x, log_prob_y, zeros, uniforms = _small_case()
    uniforms = uniforms.clone()
    uniforms[0, 0] = 0.0
    log_prob_y = log_prob_y.clone()
    log_prob_y[1] = np.inf
    calls = spy_on_the_loop(monkeypatch)
    for context, path in ((contextlib.nullcontext, ["accept"]), (torch_operations, [])):
        calls.clear()
        with context(), pytest.raises(ValueError, match=r"uniforms must lie in the open interval"):
            run_step(x, y, log_prob_x, log_prob_y, zeros, uniforms, True, 1.0, True)
        assert calls == path


def test_a_dispatch_mode_sees_the_torch_operations(monkeypatch):
    # A TorchDispatchMode (FakeTensorMode, a logger) intercepts torch operations, which the loop is not:
    # under one the step takes the torch operations, and the mode sees the decision's arithmetic.
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(func.__name__)
            return func(*args, **(kwargs or {}))

    x, y, log_prob_x, log_prob_y, zeros, uniforms = _small_case()
    calls = spy_on_the_loop(monkeypatch)
    with Recorder() as recorder:
        new, info = run_step(x, y, log_prob_x, log_prob_y, zeros, uniforms, False, 1.0, True)
    assert calls == []
    assert any(name.startswith("sub") for name in recorder.names)
    expected, expected_info = run_step(x, y, log_prob_x, log_prob_y, zeros, uniforms, False, 1.0, True)
    assert calls == ["accept"]
    assert torch.equal(new.x, expected.x) and torch.equal(info.accepted, expected_info.accepted)


def test_a_log_prob_of_more_than_one_dimension_is_refused():
    # It used to broadcast silently on the torch path ((B, 1) log-densities made (B, B) states).
    x, y, log_prob_x, log_prob_y, zeros, uniforms = _small_case()
    for context in (contextlib.nullcontext, torch_operations):
        with context(), pytest.raises(ValueError, match=r"state.log_prob must have shape \(B,\)"):
            run_step(x, y, log_prob_x[:, None], log_prob_y, zeros, uniforms, True, 1.0, True)


def test_torch_compile_traces_the_torch_operations_in_one_graph(monkeypatch):
    # Under torch.compile the loop is skipped before any of its checks (they would split a fused
    # step's graph): one graph (fullgraph=True raises on a break), the torch operations' results.
    from textsampling.torch.proposals import UniformCategoricalProposal

    x, _, log_prob_x, _, _, uniforms = _small_case()
    table = torch.randn(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def log_prob_fn(states):
        return table[states]

    state = metropolis_hastings.MHState(x % 1000, log_prob_fn(x % 1000))
    proposal = UniformCategoricalProposal(1000, dtype=torch.float64)

    def one_step(u, s):
        return metropolis_hastings.step(u, s, log_prob_fn, proposal, validate=False)

    calls = spy_on_the_loop(monkeypatch)
    torch._dynamo.reset()
    compiled = torch.compile(one_step, fullgraph=True, backend="eager")
    new, info = compiled(uniforms, state)
    assert calls == []
    with torch_operations():
        expected, expected_info = one_step(uniforms, state)
    assert torch.equal(new.x, expected.x) and torch.equal(info.accepted, expected_info.accepted)


def test_without_numba_switches_the_loop_off_and_back_on(monkeypatch):
    x, y, log_prob_x, log_prob_y, zeros, uniforms = _small_case()
    calls = spy_on_the_loop(monkeypatch)
    with metropolis_hastings.without_numba():
        run_step(x, y, log_prob_x, log_prob_y, zeros, uniforms, True, 1.0, True)
        assert not metropolis_hastings.numba_kernel_available()
    assert calls == []
    run_step(x, y, log_prob_x, log_prob_y, zeros, uniforms, True, 1.0, True)
    assert calls == ["accept"]
