"""Torch twin of :mod:`textsampling.reference.gibbs`: random- and systematic-scan Gibbs for a batch of chains.

The kernels, the paper and the use of the uniforms are the reference's; read them there. The batch
contract: sequences ``x`` are ``(B, L)`` int64, one row per chain; ``conditional_log_probs(states (B,
L), positions (B,)) -> (B, V)`` is batched (a torch target's :meth:`conditional_log_probs`, the oracle
masked LM, or a masked LM's head) and returns the uniforms' dtype; the uniforms of a step are ``(B, 2)``
(random scan) or ``(B, L)`` (a sweep); :func:`sample` returns a :class:`~textsampling.torch.chain.Trace`
with ``states.x`` ``(B, T, L)``. No loop over chains; a sweep loops over positions.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling._validation import check_int
from textsampling.reference.gibbs import SCANS, check_scan
from textsampling.torch import chain
from textsampling.torch._validation import check_batch, check_same_device, check_tensor, raise_if
from textsampling.torch.categorical import check_draw_arguments, inverse_cdf_and_totals
from textsampling.torch.chain import Trace
from textsampling.torch.randomness import integer_from_uniform

__all__ = [
    "GibbsState",
    "GibbsInfo",
    "GibbsTrace",
    "SCANS",
    "init",
    "num_uniforms",
    "conditional_rows",
    "update_position",
    "step",
    "sweep",
    "sample",
]


class GibbsState(NamedTuple):
    """The current sequences, ``(B, L)`` int64."""

    x: torch.Tensor


class GibbsInfo(NamedTuple):
    """Position(s) updated and token(s) written, per chain: ``(B,)`` for a random-scan step, ``(B, L)`` for a sweep."""

    position: torch.Tensor
    token: torch.Tensor


#: :class:`textsampling.torch.chain.Trace` of :class:`GibbsState` and :class:`GibbsInfo`, fields ``(B, T, ...)``.
GibbsTrace = Trace


def init(x0: torch.Tensor, conditional_log_probs) -> GibbsState:
    """The states at the sequences ``x0`` ``(B, L)`` (integer, ``L >= 1``); nothing is evaluated."""
    return GibbsState(_check_sequences(x0, "x0"))


def num_uniforms(scan: str = "random", length: int | None = None) -> int:
    """2 for a random-scan step (position, token); ``length`` for a systematic sweep."""
    if check_scan(scan) == "random":
        return 2
    return check_int(length, "length", minimum=1)


def _check_sequences(x, name: str = "state.x") -> torch.Tensor:
    x = check_tensor(x, name, integer=True, ndim=2)
    if x.shape[1] == 0:
        raise ValueError(f"{name} must hold non-empty sequences, shape (B, L) with L >= 1")
    return x


_BAD_ROWS = "conditional_log_probs must be finite or -inf, not all -inf in a row, and never NaN/+inf"
_BAD_UNIFORMS = "uniforms must lie in the open interval (0, 1)"


def _rows_are_bad(rows: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor: some entry NaN or ``+inf`` (``x < inf`` is False for both), or a row all ``-inf``."""
    return ~(rows < torch.inf).all() | (rows == -torch.inf).all(dim=1).any()


def _uniforms_are_bad(uniforms: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor: some uniform outside the open interval (0, 1) (or NaN)."""
    return ~((uniforms > 0) & (uniforms < 1)).all()


def _evaluate_rows(conditional_log_probs, x: torch.Tensor, positions: torch.Tensor, dtype) -> torch.Tensor:
    """``conditional_log_probs(x, positions)`` ``(B, V)``, shape and dtype checked (no synchronisation)."""
    if not callable(conditional_log_probs):
        raise TypeError(f"conditional_log_probs must be callable, got {type(conditional_log_probs).__name__}")
    rows = conditional_log_probs(x, positions)
    if not isinstance(rows, torch.Tensor) or rows.ndim != 2 or rows.shape[0] != x.shape[0]:
        shape = tuple(rows.shape) if isinstance(rows, torch.Tensor) else type(rows).__name__
        raise ValueError(
            f"conditional_log_probs must return a tensor of shape (B, V) with B = {x.shape[0]}, got {shape}"
        )
    if rows.dtype != dtype:
        raise TypeError(f"conditional_log_probs returned dtype {rows.dtype} but the uniforms are {dtype}")
    return rows


def conditional_rows(conditional_log_probs, x: torch.Tensor, positions: torch.Tensor, dtype, validate: bool = True):
    """The conditional log-probabilities at every chain's position, ``(B, V)``, checked as in the reference."""
    rows = _evaluate_rows(conditional_log_probs, x, positions, dtype)  # (B, V)
    if validate:
        raise_if([_rows_are_bad(rows)], [_BAD_ROWS])
    return rows


def _write_tokens(x: torch.Tensor, positions: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` ``(B, L)`` with ``tokens[b]`` at ``positions[b]`` of row ``b`` (one out-of-place op)."""
    return x.scatter(1, positions[:, None], tokens[:, None])  # (B, L)


def update_position(
    uniform: torch.Tensor, x: torch.Tensor, positions: torch.Tensor, conditional_log_probs, validate: bool = True
):
    """Redraw ``x[b, positions[b]]`` for every chain from its conditional by inverse CDF of ``uniform[b]``."""
    return _update_position(uniform, x, positions, conditional_log_probs, validate)[:2]


def _update_position(uniform, x, positions, conditional_log_probs, validate: bool):
    """:func:`update_position`, also returning the rows' weight totals ``(B,)`` (NaN: a bad row)."""
    rows = _evaluate_rows(conditional_log_probs, x, positions, uniform.dtype)  # (B, V)
    if validate and rows.shape[1] == 0:  # an empty row is "all -inf": the rows' check speaks before the draw's
        raise_if([_rows_are_bad(rows)], [_BAD_ROWS])
    tokens, totals = _draw_tokens(uniform, rows)  # (B,), (B,)
    if validate:  # the rows' check of conditional_rows, read off the totals (one synchronisation)
        raise_if([torch.isnan(totals).any()], [_BAD_ROWS])
    return _write_tokens(x, positions, tokens), tokens, totals


def _check_inputs(uniforms, state, width: int, name: str):
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    if not isinstance(state, GibbsState):
        raise TypeError(f"state must be a GibbsState, got {type(state).__name__}")
    x = _check_sequences(state.x)
    if uniforms.device != x.device:  # equal torch.device objects: the common case, checked for free
        check_same_device(uniforms=uniforms, **{"state.x": x})
    check_batch(uniforms.shape[0], **{"state.x": x})
    if uniforms.shape[1] != width:
        raise ValueError(f"uniforms must have shape (B, {width}) for {name}, got {tuple(uniforms.shape)}")
    return uniforms, x


def step(
    uniforms: torch.Tensor, state: GibbsState, conditional_log_probs, *, scan: str = "random", validate: bool = True
):
    """One random-scan step for every chain (a uniform position, then its token), or one sweep.

    Parameters
    ----------
    uniforms : torch.Tensor, shape (B, num_uniforms(scan, L))
    state : GibbsState
    conditional_log_probs : callable, ``(states (B, L), positions (B,)) -> (B, V)``
    scan : {"random", "systematic"}
    validate : bool
        Check uniforms and conditional rows (one synchronisation each).

    Returns
    -------
    (GibbsState, GibbsInfo)
    """
    return _step(uniforms, state, conditional_log_probs, scan, validate)[:2]


def _step(uniforms, state, conditional_log_probs, scan: str, validate: bool):
    """:func:`step`, also returning the weight totals of every row drawn from, ``(B,)`` or ``(B, L)``.

    A total is NaN exactly where the conditional's row is bad (:func:`_draw_tokens`), so :func:`sample`
    gathers its deferred check from them instead of re-reading every row.
    """
    if check_scan(scan) == "systematic":
        return _sweep(uniforms, state, conditional_log_probs, validate)
    uniforms, x = _check_inputs(uniforms, state, 2, "a random-scan step")
    positions = integer_from_uniform(uniforms[:, 0], x.shape[1])  # (B,)
    rows = _evaluate_rows(conditional_log_probs, x, positions, uniforms.dtype)  # (B, V)
    if validate and rows.shape[1] == 0:  # an empty row is "all -inf": the value checks speak before the draw's
        raise_if([_uniforms_are_bad(uniforms), _rows_are_bad(rows)], [_BAD_UNIFORMS, _BAD_ROWS])
    tokens, totals = _draw_tokens(uniforms[:, 1], rows)  # (B,), (B,)
    if validate:  # both value checks with one synchronisation, before anything is returned
        raise_if([_uniforms_are_bad(uniforms), torch.isnan(totals).any()], [_BAD_UNIFORMS, _BAD_ROWS])
    return GibbsState(_write_tokens(x, positions, tokens)), GibbsInfo(positions, tokens), totals


def _draw_tokens(uniform: torch.Tensor, rows: torch.Tensor):
    """Tokens ``(B,)`` by inverse CDF of ``uniform`` ``(B,)`` in ``rows`` ``(B, V)`` (shapes checked), and the
    rows' weight totals ``(B,)``: NaN exactly where :func:`_rows_are_bad` flags a row (see
    :func:`textsampling.torch.categorical.inverse_cdf_and_totals`), so the value check costs one ``(B,)`` pass."""
    return inverse_cdf_and_totals(*check_draw_arguments(uniform, rows))


def sweep(uniforms: torch.Tensor, state: GibbsState, conditional_log_probs, *, validate: bool = True):
    """One systematic sweep for every chain: positions ``0..L-1`` in turn, ``uniforms[:, i]`` at position ``i``."""
    return _sweep(uniforms, state, conditional_log_probs, validate)[:2]


def _sweep(uniforms, state, conditional_log_probs, validate: bool):
    """:func:`sweep`, also returning the weight totals ``(B, L)`` (column ``i``: the rows at position ``i``)."""
    length = _check_sequences(state.x).shape[1]
    uniforms, x = _check_inputs(uniforms, state, length, "a sweep (one uniform per position)")
    if validate:
        raise_if([_uniforms_are_bad(uniforms)], [_BAD_UNIFORMS])
    totals = []
    for position in range(length):
        positions = torch.full((x.shape[0],), position, dtype=torch.int64, device=x.device)  # (B,)
        # Each update conditions on the tokens already rewritten earlier in this sweep.
        x, _, position_totals = _update_position(uniforms[:, position], x, positions, conditional_log_probs, validate)
        totals.append(position_totals)  # (B,)
    all_positions = torch.arange(length, device=x.device).expand(x.shape[0], -1)  # (B, L)
    return GibbsState(x), GibbsInfo(all_positions, x.clone()), torch.stack(totals, dim=1)  # (B, L) totals


def sample(
    rng,
    x0: torch.Tensor,
    conditional_log_probs,
    num_steps: int,
    *,
    first_step: int = 0,
    scan: str = "random",
    dtype=None,
) -> GibbsTrace:
    """Run ``num_steps`` random-scan steps (or sweeps) for every chain of ``x0`` ``(B, L)``, keeping every state.

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, num_uniforms(scan, L), B)``.

    Parameters
    ----------
    dtype : torch.float32 (default) or torch.float64
        Of the uniforms; must match the conditional's output.

    Returns
    -------
    GibbsTrace
        ``states.x`` ``(B, T, L)``; ``infos.position`` ``(B, T)`` (``(B, T, L)`` for sweeps).
    """
    check_scan(scan)
    state = init(x0, conditional_log_probs)
    length = state.x.shape[1]
    if not callable(conditional_log_probs):
        raise TypeError(f"conditional_log_probs must be callable, got {type(conditional_log_probs).__name__}")
    # The uniforms come from the generator, in (0, 1) by construction; the conditional rows' check (a
    # NaN weight total, see _step) is gathered on the device and settled every chain.CHECK_EVERY steps
    # and at the end (one synchronisation each), not once per step.
    checks = chain.DeferredValueChecks(_BAD_ROWS)

    def step_fn(uniforms, state, t):
        new_state, info, totals = _step(uniforms, state, conditional_log_probs, scan, validate=False)
        checks.add(torch.isnan(totals).any())
        checks.after_step(t)
        return new_state, info

    trace = chain.run(
        rng,
        state,
        step_fn,
        num_uniforms(scan, length),
        num_steps,
        first_step=first_step,
        dtype=dtype,
    )
    checks.check()
    return trace
