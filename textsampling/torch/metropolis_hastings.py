r"""Torch twin of :mod:`textsampling.reference.metropolis_hastings`: a batch of MH chains, one step per call.

The math, the paper and the conventions (a NaN ratio rejects, an impossible start accepts any possible
proposal, the tempered acceptance) are the reference's, in the same floating operations; read them
there. The batch contract:

* states ``x`` have shape ``(B,) + state_shape``, one row per chain; ``log_prob`` ``(B,)``;
* ``log_prob_fn`` maps ``(B,) + state_shape -> (B,)`` in the chains' dtype (float32 or float64);
* the uniforms of a step are ``(B, num_uniforms(proposal))`` in that dtype: ``uniforms[:, :-1]``
  drive the proposal, ``uniforms[:, -1]`` decides;
* ``temperature`` is a number or a ``(B,)`` tensor (one per chain);
* :func:`sample` returns a :class:`~textsampling.torch.chain.Trace` whose fields are ``(B, T, ...)``.

No loop over chains; :func:`sample` is :func:`init` plus :func:`textsampling.torch.chain.run`. With a
:class:`~textsampling.torch.randomness.CounterGenerator`, chain ``c`` is the reference chain run with
``CounterGenerator(seed, c)``: same states, same decisions (in float64).
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import torch

from textsampling._validation import check_positive
from textsampling.torch import chain
from textsampling.torch._numba_loader import load_once
from textsampling.torch._validation import check_batch, check_same_device, check_tensor, raise_if, same_device
from textsampling.torch.chain import Trace

__all__ = [
    "MHState",
    "MHInfo",
    "MHTrace",
    "init",
    "num_uniforms",
    "log_accept_ratio",
    "tempered_log_prob",
    "select_accepted",
    "step",
    "sample",
    "numba_kernel_available",
    "without_numba",
]


class MHState(NamedTuple):
    """Current states ``x`` ``(B,) + state_shape`` and their log-densities ``log_prob`` ``(B,)``."""

    x: torch.Tensor
    log_prob: torch.Tensor


class MHInfo(NamedTuple):
    """Per chain: proposed state ``(B,) + state_shape``, log acceptance probability ``(B,)``, decision ``(B,)``."""

    proposal: torch.Tensor
    log_accept_prob: torch.Tensor
    accepted: torch.Tensor


#: :class:`textsampling.torch.chain.Trace` of :class:`MHState` and :class:`MHInfo`, fields ``(B, T, ...)``.
MHTrace = Trace


def _log_prob_values(log_prob_fn, x: torch.Tensor, dtype) -> torch.Tensor:
    """``log_prob_fn(x)`` ``(B,)``, its shape and dtype checked (no value check, no synchronisation)."""
    values = log_prob_fn(x)
    if not isinstance(values, torch.Tensor) or values.shape != (x.shape[0],):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(
            f"log_prob_fn must return a tensor with one value per chain, shape ({x.shape[0]},), got {shape}"
        )
    if values.dtype != dtype:
        raise TypeError(f"log_prob_fn returned dtype {values.dtype} but the chains compute in {dtype}")
    return values


def _positive_infinity_message(name: str) -> str:
    return f"log_prob_fn returned +inf at {name}; log-densities must be finite, -inf or NaN"


def evaluate_log_prob(log_prob_fn, x: torch.Tensor, dtype, validate: bool, name: str) -> torch.Tensor:
    """``log_prob_fn(x)`` ``(B,)`` in ``dtype``, checked (never ``+inf`` when ``validate``); ``name`` says where."""
    values = _log_prob_values(log_prob_fn, x, dtype)
    if validate:
        raise_if([(values == torch.inf).any()], [_positive_infinity_message(name)])
    return values


def init(x0: torch.Tensor, log_prob_fn, proposal=None, *, dtype=None) -> MHState:
    """The states ``x0`` ``(B,) + state_shape`` and ``log_prob_fn(x0)`` ``(B,)``, evaluated once.

    ``dtype`` is the dtype ``log_prob_fn`` must return (default: whatever it returns). ``proposal`` is
    unused, as in the reference.
    """
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
    x = check_tensor(x0, "x0")
    if x.ndim == 0:
        raise ValueError("x0 must have a leading chain dimension, shape (B,) + state_shape")
    values = log_prob_fn(x)
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"log_prob_fn must return a tensor of shape ({x.shape[0]},)")
    log_prob = evaluate_log_prob(log_prob_fn, x, dtype or values.dtype, True, "x0")
    if torch.isnan(log_prob).any():
        # As in the reference: a NaN current state would reject every move forever, silently.
        raise ValueError("log_prob_fn(x) is NaN for some chain: every start needs a log-density that is finite or -inf")
    return MHState(x, log_prob)


def num_uniforms(proposal) -> int:
    """Uniforms per step: the proposal's, then one for the accept decision."""
    return int(proposal.num_uniforms) + 1


def _fits_in_place(result: torch.Tensor, other) -> bool:
    """Whether ``result += other`` gives exactly ``result + other`` (same shape and dtype, or a number)."""
    if isinstance(other, torch.Tensor):
        return other.dtype == result.dtype and other.shape == result.shape and other.device == result.device
    return isinstance(other, float) and result.dtype.is_floating_point


def log_accept_ratio(
    log_prob_current, log_prob_proposal, log_q_ratio, *, finite_log_q_ratio: bool = False
) -> torch.Tensor:
    r""":func:`textsampling.reference.metropolis_hastings.log_accept_ratio` per chain, all ``(B,)``.

    ``finite_log_q_ratio=True`` promises that every entry of ``log_q_ratio`` is finite (a proposal's
    static property, e.g. a symmetric proposal's zeros), and skips the impossible-start mask: with a
    finite Hastings term, a current ``-inf`` and a finite proposal already give
    :math:`+\infty + \log q = +\infty`, clamped to 0, the mask's value; every other entry is the mask's
    "no". The same numbers, without the mask's five passes over the batch.
    """
    # -inf - (-inf) is NaN on purpose: a rejection. clamp propagates NaN, as np.minimum does, and
    # min(d, 0) is the same number either way; the in-place ops reuse the one fresh temporary (fewer
    # allocations, hence fewer page faults for large batches), in the reference's order of operations.
    difference = log_prob_proposal - log_prob_current  # (B,), a fresh tensor
    if _fits_in_place(difference, log_q_ratio):
        difference.add_(log_q_ratio)  # (B,)
    else:  # a broadcast or a promotion: the out-of-place sum, as in the reference
        difference = difference + log_q_ratio  # (B,)
    ratio = difference.clamp_(max=0.0)  # (B,)
    if finite_log_q_ratio:
        return ratio
    # Leaving an impossible state for a possible one is always accepted. isneginf and |y| < inf are
    # the reference's (x == -inf) and isfinite(y) (NaN compares False), in two single-pass kernels
    # where torch.isfinite makes four.
    current, proposal = torch.as_tensor(log_prob_current), torch.as_tensor(log_prob_proposal)
    impossible_start = torch.isneginf(current) & (proposal.abs() < torch.inf)  # (B,)
    if impossible_start.shape == ratio.shape:
        return ratio.masked_fill_(impossible_start, 0.0)  # (B,)
    return torch.where(impossible_start, 0.0, ratio)  # (B,), broadcast


#: Bit patterns of the same width, for the branch-free select of :func:`select_accepted`.
_SAME_WIDTH_INTEGER = {
    torch.float32: torch.int32,
    torch.float64: torch.int64,
    torch.int32: torch.int32,
    torch.int64: torch.int64,
}
#: From this many entries on, :func:`select_accepted` picks bit patterns (five cheap passes) instead of
#: ``torch.where`` (one branchy pass); below it the launches cost more than the branches.
BRANCH_FREE_MIN_ENTRIES = 4096


def _accepted_mask(accepted: torch.Tensor, bits: torch.dtype, masks: dict) -> torch.Tensor:
    """``accepted`` ``(B,)`` as integers of dtype ``bits``: 0, or all ones (-1) where accepted; cached in ``masks``."""
    mask = masks.get(bits)
    if mask is None:
        # One contiguous mask per width: a strided 32-bit view of the 64-bit mask would save its pass but
        # slow the select that reads it more (measured at 1e5 chains).
        if accepted.dtype is torch.bool and not torch.compiler.is_compiling():
            # A bool is one byte, 0 or 1: negated as int8 it is 0 or -1 (all ones), and widening keeps the
            # sign, so the masks of both widths come from one pass over bytes and one conversion each.
            # Eager only: traced by torch.compile, the dtype view stopped Inductor from fusing the step
            # (a fused MH step twice as slow at 1e4-1e5 chains).
            negated = masks.get(torch.int8)
            if negated is None:
                negated = masks[torch.int8] = accepted.view(torch.int8).neg()  # (B,)
            mask = masks[bits] = negated.to(bits)  # (B,)
        else:
            mask = masks[bits] = accepted.to(bits).neg_()  # (B,)
    return mask


def select_accepted(
    accepted: torch.Tensor, proposal: torch.Tensor, current: torch.Tensor, masks: dict | None = None
) -> torch.Tensor:
    """``torch.where(accepted, proposal, current)`` with ``accepted`` ``(B,)`` applied to whole states.

    The same bits as ``torch.where``, without its per-entry branch on large CPU batches: on the CPU
    ``where`` branches per entry and mispredicts on MH's coin flips (3-4 ns an entry at an acceptance rate
    near 1/2, the most expensive kernel of a step at 1e5 chains). For float32/float64/int32/int64 states
    of one shape on the CPU, from :data:`BRANCH_FREE_MIN_ENTRIES` entries on, the entries are picked as bit patterns,
    ``c ^ ((c ^ p) & m)`` with ``m`` all ones where accepted: exact for every value (NaN payloads and
    signed zeros included). ``masks``, a dict, lets the selects of one step share the masks of ``accepted``.
    """
    keep = accepted if proposal.ndim == 1 else accepted.reshape((-1,) + (1,) * (proposal.ndim - 1))  # (B, 1, ...)
    bits = _SAME_WIDTH_INTEGER.get(proposal.dtype)
    if (
        bits is None
        or proposal.device.type != "cpu"  # a GPU's where has no branch to mispredict: one pass beats five
        or current.dtype != proposal.dtype
        or current.shape != proposal.shape
        or proposal.numel() < BRANCH_FREE_MIN_ENTRIES
    ):
        return torch.where(keep, proposal, current)
    mask = _accepted_mask(accepted, bits, {} if masks is None else masks)
    if proposal.ndim > 1:
        mask = mask.reshape(keep.shape)  # (B, 1, ...): broadcast over each state
    if bits == proposal.dtype:  # integer states: their own bits
        return (current ^ proposal).bitwise_and_(mask).bitwise_xor_(current)
    current_bits = current.view(bits)
    # A fresh tensor from the first xor; the and/xor reuse it in place.
    chosen = (current_bits ^ proposal.view(bits)).bitwise_and_(mask).bitwise_xor_(current_bits)
    return chosen.view(proposal.dtype)


def check_step_inputs(uniforms, state: MHState, expected_num_uniforms: int) -> int:
    """Validate a step's ``uniforms`` ``(B, expected_num_uniforms)`` against ``state``; returns ``B``.

    Shared by the MH-type twins (MH, annealing, hill climbing), whose states are :class:`MHState`.
    """
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    if not isinstance(state, MHState):
        raise TypeError(f"state must be an MHState (from init), got {type(state).__name__}")
    if not (uniforms.device == state.x.device == state.log_prob.device):
        # Equal torch.device objects are the common case and cost nothing; only otherwise resolve them
        # ("cuda" vs "cuda:0") and name the culprit.
        check_same_device(uniforms=uniforms, **{"state.x": state.x, "state.log_prob": state.log_prob})
    if state.log_prob.ndim != 1:
        raise ValueError(
            f"state.log_prob must have shape (B,), one log-density per chain, got {tuple(state.log_prob.shape)}"
        )
    if uniforms.dtype != state.log_prob.dtype:
        raise TypeError(
            f"uniforms has dtype {uniforms.dtype} but state.log_prob has {state.log_prob.dtype}; use one dtype"
        )
    if uniforms.shape[1] != expected_num_uniforms:
        raise ValueError(f"uniforms must have shape (B, {expected_num_uniforms}), got {tuple(uniforms.shape)}")
    return check_batch(uniforms.shape[0], **{"state.x": state.x, "state.log_prob": state.log_prob})


def _outside_open_unit_interval(uniforms: torch.Tensor):
    """Whether some entry of ``uniforms`` is NaN or outside (0, 1), without a synchronisation.

    One reduction pass (``aminmax``, which propagates NaN) instead of two comparisons, an ``and`` and an
    ``all``. On the CPU, where reading a number costs no synchronisation, a Python bool (the comparisons
    of two numbers in Python: no tensor operations on 0-d tensors); elsewhere a 0-d bool tensor, for
    :func:`~textsampling.torch._validation.raise_if` to read with the other checks in one go.
    """
    on_cpu = uniforms.device.type == "cpu"
    if uniforms.numel() == 0:  # nothing outside (aminmax has no identity to return)
        return False if on_cpu else torch.zeros((), dtype=torch.bool, device=uniforms.device)
    if not uniforms.is_contiguous() and uniforms.ndim > 1 and uniforms.movedim(-1, 0).is_contiguous():
        # The generators' uniform-major layout (each uniform contiguous over the chains): the same
        # entries in memory order, where aminmax of the (B, k) view would first copy them (most of the
        # check's time at 1e4 chains).
        uniforms = uniforms.movedim(-1, 0)
    smallest, largest = torch.aminmax(uniforms)
    if on_cpu:
        return not (smallest.item() > 0 and largest.item() < 1)  # NaN > 0 is False: NaN is outside
    return ~((smallest > 0) & (largest < 1))


def tempered_log_prob(log_prob: torch.Tensor, temperature) -> torch.Tensor:
    """The reference's :func:`~textsampling.reference.metropolis_hastings.tempered_log_prob` per chain.

    ``log_prob`` ``(B,)``; ``temperature`` a number or a ``(B,)`` tensor.
    """
    return log_prob / temperature


def check_temperature(temperature, state: MHState):
    """A number ``> 0`` or a ``(B,)`` tensor of them in the chains' dtype and device (0-d is broadcast)."""
    if type(temperature) is float and temperature == 1.0:  # the default: nothing to check
        return temperature
    if isinstance(temperature, torch.Tensor):
        if temperature.ndim == 0:
            temperature = temperature.reshape(1).expand(state.log_prob.shape[0])  # (B,)
        check_tensor(temperature, "temperature", integer=False, ndim=1)
        if not same_device(temperature.device, state.log_prob.device) or temperature.dtype != state.log_prob.dtype:
            raise ValueError(
                f"temperature is {temperature.dtype} on {temperature.device} but the chains are "
                f"{state.log_prob.dtype} on {state.log_prob.device}"
            )
        if temperature.shape[0] != state.log_prob.shape[0]:
            raise ValueError(f"temperature must be a number or have shape ({state.log_prob.shape[0]},) (one per chain)")
        raise_if([~(torch.isfinite(temperature) & (temperature > 0)).all()], ["temperature must be finite and > 0"])
        return temperature
    return check_positive(temperature, "temperature")


# textsampling.torch._metropolis_hastings_numba, imported on first use; "failed" holds why it could not be.
_numba = {"module": None, "failed": None}


def numba_kernel_available() -> bool:
    """Whether numba is installed, so that :func:`step` makes its decisions in one compiled loop on the CPU.

    Without it (``pip install "textsampling[fast]"`` adds it) the torch operations make the same ones.
    """
    return _numba["module"] is not None or load_once(  # the dict first: a per-step call
        _numba,
        _import_loop,
        "the MH step's compiled loop",
        "using the torch operations (the same decisions, slower)",
    )


def _import_loop():
    from textsampling.torch import _metropolis_hastings_numba

    return _metropolis_hastings_numba


@contextlib.contextmanager
def without_numba():
    """Within the block, :func:`step` makes its decisions with the torch operations, as where numba is
    not installed: the same decisions, states and log-densities (for benchmarks and for debugging).

    The switch is process-wide: not for use while other threads run steps.
    """
    saved = dict(_numba)
    _numba.update(module=None, failed="switched off by without_numba()")
    try:
        yield
    finally:
        _numba.update(saved)


def _plain(*tensors, contiguous: bool = True) -> bool:
    """Whether numba's loop may read every tensor as a NumPy array sharing its memory: plain dense CPU
    tensors (contiguous unless ``contiguous=False``), outside autograd, without a lazy negation."""
    for t in tensors:  # a loop, not all(generator): a per-step cost
        if not (
            type(t) is torch.Tensor
            and t.is_cpu
            and t.layout is torch.strided
            and (t.is_contiguous() or not contiguous)
            and not t.requires_grad
            and not t.is_neg()
        ):
            return False
    return True


def _transformed() -> bool:
    """Whether something is recording or intercepting the step's operations: torch.jit tracing,
    torch.func (vmap, grad), forward-mode autograd, or a dispatch mode (FakeTensorMode, a logging
    TorchDispatchMode; torch.compile is checked first, apart). The loop is invisible to all of them; the
    torch operations are not."""
    forward_level = getattr(getattr(torch.autograd, "forward_ad", None), "_current_level", -1)  # changes
    return torch.jit.is_tracing() or _functorch_active() or _dispatch_modes() > 0 or forward_level >= 0


# torch's private probes of _transformed, looked up once (a per-step cost); absent ones report nothing.
_functorch_active = getattr(torch._C, "_are_functorch_transforms_active", lambda: False)
_dispatch_modes = getattr(torch._C, "_len_torch_dispatch_stack", lambda: 0)


def _accept_kernels(uniforms, state: MHState, y, log_prob_y, log_q_ratio, temperature):
    """numba's decision loops (the module) where they give the torch operations' results, else ``None``.

    They serve contiguous float32/float64 log-densities on the CPU, outside every transform
    (:func:`_transformed`) and autograd; a ``(B,)`` Hastings term in the chains' dtype (the in-place sum of
    :func:`log_accept_ratio`); contiguous states of a 32- or 64-bit dtype whose proposals have their
    shape and dtype. Everything else takes the torch operations (also off the CPU, where numba is never
    imported).
    """
    if torch.compiler.is_compiling():
        # First, a constant to torch.compile: it traces nothing below (the checks would break the graph
        # of a fused step into pieces).
        return None
    x, log_prob_x = state.x, state.log_prob
    if not (
        uniforms.is_cpu  # off the CPU numba is never imported
        and numba_kernel_available()  # a dict lookup once loaded
        and log_prob_x.dtype in _LOOP_DTYPES
        and log_prob_y.dtype == log_prob_x.dtype
        and type(log_q_ratio) is torch.Tensor
        and log_q_ratio.dtype == log_prob_x.dtype
        and log_q_ratio.shape == log_prob_y.shape == log_prob_x.shape
        and y.dtype == x.dtype
        and y.shape == x.shape
        and x.dtype in _SAME_WIDTH_INTEGER
        and _plain(x, log_prob_x, y, log_prob_y, log_q_ratio)
        and _plain(uniforms, contiguous=False)  # read through torch.log and reshape, whatever its strides
        and not (isinstance(temperature, torch.Tensor) and temperature.requires_grad)
        and not _transformed()
    ):
        return None
    return _numba["module"]


#: The log-density dtypes of numba's loop (half precision takes the torch operations).
_LOOP_DTYPES = (torch.float32, torch.float64)


def _accept_in_one_loop(
    kernels, uniforms, state, y, log_prob_y, log_q_ratio, temperature, finite_log_q_ratio, validate
):
    """The rest of :func:`step` (checks, acceptance function, decision, selects) in numba's loop.

    ``kernels`` is :mod:`textsampling.torch._metropolis_hastings_numba`. Its arrays share memory with
    the tensors (``.numpy()``): no copies (except of strided uniforms, which the value check reads
    through ``reshape``), a dozen conversions a step.
    """
    x, log_prob_x = state.x, state.log_prob
    log_prob_x_array, log_prob_y_array = log_prob_x.numpy(), log_prob_y.numpy()
    if isinstance(temperature, torch.Tensor) or temperature != 1.0:
        # (B,) each, as in the torch path
        log_prob_x_tempered_array = tempered_log_prob(log_prob_x, temperature).numpy()
        log_prob_y_tempered_array = tempered_log_prob(log_prob_y, temperature).numpy()
    else:  # untempered: the same arrays (fewer conversions per step)
        log_prob_x_tempered_array, log_prob_y_tempered_array = log_prob_x_array, log_prob_y_array
    log_u = torch.log(uniforms[:, -1]).numpy()  # (B,): torch's logarithm, as in the torch path
    if validate:
        # Every uniform, in memory order where the layout allows (only whether one lies outside matters):
        # the generators' uniform-major (B, k) is a contiguous (k, B) transposed.
        major = uniforms.t()
        all_uniforms = (major.numpy() if major.is_contiguous() else uniforms.reshape(-1).numpy()).reshape(-1)
    else:
        all_uniforms = log_u  # unread
    # The states as integers of their width: integer states are already (no views a step).
    bits = _SAME_WIDTH_INTEGER[x.dtype]
    # The outputs from torch's allocator (new_empty: on the CPU, where the inputs are): what its profiler
    # counts, and huge pages for large batches where THP_MEM_ALLOC_ENABLE=1 asks for them.
    new_x = x.new_empty(x.shape)  # (B,) + state_shape
    log_alpha = log_prob_y.new_empty(log_prob_y.shape)  # (B,)
    accepted = log_prob_y.new_empty(log_prob_y.shape, dtype=torch.bool)  # (B,)
    new_log_prob = log_prob_x.new_empty(log_prob_x.shape)  # (B,)
    if x.ndim == 1:  # one number per chain
        kernel = kernels.accept
        if bits is x.dtype:
            x_bits, y_bits, new_x_bits = x.numpy(), y.numpy(), new_x.numpy()  # (B,) each
        else:
            x_bits, y_bits, new_x_bits = x.view(bits).numpy(), y.view(bits).numpy(), new_x.view(bits).numpy()
    else:  # one row per chain
        kernel = kernels.accept_rows
        rows = (x.shape[0], math.prod(x.shape[1:]))
        x_bits, y_bits, new_x_bits = (t.view(rows).view(bits).numpy() for t in (x, y, new_x))  # (B, D) each
    uniform_outside, proposal_infinite = kernel(
        all_uniforms,
        log_u,
        log_prob_x_tempered_array,
        log_prob_y_tempered_array,
        log_q_ratio.numpy(),
        log_prob_x_array,
        log_prob_y_array,
        x_bits,
        y_bits,
        not finite_log_q_ratio,
        validate,
        log_alpha.numpy(),
        accepted.numpy(),
        new_x_bits,
        new_log_prob.numpy(),
    )
    if uniform_outside or proposal_infinite:  # the loop's two flags, Python bools (False without validate)
        raise_if(
            [uniform_outside, proposal_infinite],
            ["uniforms must lie in the open interval (0, 1)", _positive_infinity_message("a proposed state")],
        )
    return MHState(new_x, new_log_prob), MHInfo(y, log_alpha, accepted)


def step(
    uniforms: torch.Tensor, state: MHState, log_prob_fn, proposal, *, temperature=1.0, validate: bool = True
):
    """One MH step for every chain, deterministic given ``uniforms``.

    Parameters
    ----------
    uniforms : torch.Tensor, shape (B, num_uniforms(proposal))
        ``uniforms[:, :-1]`` go to ``proposal.propose``, ``uniforms[:, -1]`` decides acceptance.
    state : MHState
    log_prob_fn : callable, ``(B,) + state_shape -> (B,)`` (e.g. a torch target's ``log_prob``)
    proposal : torch proposal (``num_uniforms``, ``propose(uniforms (B, k), x) -> (y, log_q_ratio)``)
        A proposal whose attribute ``finite_log_q_ratio`` is ``True`` promises a finite Hastings term
        for every chain, and the step skips the impossible-start mask it makes redundant (see
        :func:`log_accept_ratio`); any other value keeps the mask.
    temperature : float or torch.Tensor of shape (B,), > 0
        As in the reference; ``state.log_prob`` stays untempered.
    validate : bool
        Check the values (uniforms in (0, 1), no ``+inf`` log-density) with one synchronisation.

    Returns
    -------
    (MHState, MHInfo)

    Notes
    -----
    On the CPU with numba installed (the ``fast`` extra), everything after the proposal and the target
    (value checks, acceptance function, decision, selects) runs in one compiled loop
    (:mod:`textsampling.torch._metropolis_hastings_numba`) with the same decisions, states and
    log-densities as the torch operations, which run everywhere else (CUDA, ``torch.compile``, autograd,
    torch.func, dispatch modes, half precision) and inside :func:`without_numba`.
    """
    temperature = check_temperature(temperature, state)
    check_step_inputs(uniforms, state, num_uniforms(proposal))
    y, log_q_ratio = proposal.propose(uniforms[:, :-1], state.x)
    log_prob_y = _log_prob_values(log_prob_fn, y, state.log_prob.dtype)  # (B,)
    finite_log_q_ratio = getattr(proposal, "finite_log_q_ratio", False) is True
    kernels = _accept_kernels(uniforms, state, y, log_prob_y, log_q_ratio, temperature)
    if kernels is not None:  # the CPU with numba: the same decisions in one loop (see _accept_in_one_loop)
        return _accept_in_one_loop(
            kernels, uniforms, state, y, log_prob_y, log_q_ratio, temperature, finite_log_q_ratio, validate
        )
    if validate:
        # Both value checks with one synchronisation (the uniforms were only read by the proposal,
        # which cannot have failed silently on them).
        raise_if(
            [_outside_open_unit_interval(uniforms), torch.isposinf(log_prob_y).any()],
            ["uniforms must lie in the open interval (0, 1)", _positive_infinity_message("a proposed state")],
        )
    # The reference's operations: the acceptance function on tempered log-densities (the exact division
    # by T = 1 skipped, as there).
    log_prob_x_tempered, log_prob_y_tempered = state.log_prob, log_prob_y  # (B,), (B,)
    if isinstance(temperature, torch.Tensor) or temperature != 1.0:
        log_prob_x_tempered = tempered_log_prob(state.log_prob, temperature)  # (B,)
        log_prob_y_tempered = tempered_log_prob(log_prob_y, temperature)  # (B,)
    log_alpha = log_accept_ratio(
        log_prob_x_tempered, log_prob_y_tempered, log_q_ratio, finite_log_q_ratio=finite_log_q_ratio
    )  # (B,)
    # Accept iff log u < log alpha; NaN compares False, so an undefined ratio rejects.
    accepted = torch.log(uniforms[:, -1]) < log_alpha  # (B,)
    masks = {}  # the 0 / all-ones masks of accepted, shared by the two selects
    new_x = select_accepted(accepted, y, state.x, masks)  # (B,) + state_shape: whole states
    new_log_prob = select_accepted(accepted, log_prob_y, state.log_prob, masks)  # (B,)
    return MHState(new_x, new_log_prob), MHInfo(y, log_alpha, accepted)


def sample(rng, x0: torch.Tensor, log_prob_fn, proposal, num_steps: int, *, first_step: int = 0, dtype=None) -> MHTrace:
    """Run ``num_steps`` MH steps for every chain from ``x0`` ``(B,) + state_shape`` and keep every state.

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, num_uniforms(proposal), B)``; with a counter
    generator, chain ``b`` gets the uniforms of ``(seed, rng.chain_index[b], first_step + t)``.

    Parameters
    ----------
    rng : CounterGenerator or torch.Generator, on the chains' device
    x0 : torch.Tensor, shape (B,) + state_shape
    log_prob_fn, proposal : as in :func:`step`
    num_steps : int
    first_step : int
    dtype : torch dtype of the uniforms and log-densities (default: ``log_prob_fn``'s output dtype)

    Returns
    -------
    MHTrace
        ``states.x`` ``(B, T) + state_shape``, ``states.log_prob`` ``(B, T)``, ``infos.accepted`` ``(B, T)`` …

    Notes
    -----
    The steps run with ``validate=False``: the uniforms come from the generator, in (0, 1) by
    construction, and the one value check left (no ``+inf`` log-density at a proposed state) is
    gathered on the device and settled every :data:`~textsampling.torch.chain.CHECK_EVERY` steps and at
    the end (:class:`~textsampling.torch.chain.DeferredValueChecks`), not with a synchronisation per step.
    """
    state = init(x0, log_prob_fn, proposal, dtype=dtype)
    checks = chain.DeferredValueChecks(_positive_infinity_message("a proposed state"))

    def checked_log_prob_fn(x):
        values = log_prob_fn(x)
        if isinstance(values, torch.Tensor):  # step checks the shape and dtype itself
            checks.add((values == torch.inf).any())
        return values

    def step_fn(uniforms, state, t):
        result = step(uniforms, state, checked_log_prob_fn, proposal, validate=False)
        checks.after_step(t)
        return result

    trace = chain.run(
        rng,
        state,
        step_fn,
        num_uniforms(proposal),
        num_steps,
        first_step=first_step,
    )
    checks.check()
    return trace
