r"""Torch twin of :mod:`textsampling.reference.gibbs`: random- and systematic-scan Gibbs for a batch of chains.

A site update at position :math:`i` redraws :math:`x_i \sim \pi(x_i \mid x_{-i})` (Geman & Geman 1984;
part 2 of the series, spaces.ac.cn/archives/8084). Random scan: a uniform position per chain, then its
token; systematic scan: positions ``0..L-1`` in turn, each update conditioning on those already
rewritten. ``conditional_log_probs(states (B, L), positions (B,)) -> (B, V)`` is batched — a torch
target's :meth:`conditional_log_probs` (the oracle masked LM) or a masked LM's head.

Uniforms, as in the reference: a random-scan step uses ``uniforms[:, 0]`` for the position
(``floor(u L)``) and ``uniforms[:, 1]`` for the token (inverse CDF of the conditional row); a sweep uses
``uniforms[:, i]`` for the token at position ``i``. No loop over chains; a sweep loops over positions.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling._validation import check_int
from textsampling.reference.gibbs import SCANS, _check_scan
from textsampling.torch._validation import check_batch, check_same_device, check_tensor, raise_if
from textsampling.torch.randomness import as_generator, categorical_from_uniforms, draw_uniforms, integer_from_uniform

__all__ = [
    "GibbsState",
    "GibbsInfo",
    "GibbsTrace",
    "SCANS",
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
    """Position(s) updated and token(s) written, per chain."""

    position: torch.Tensor
    token: torch.Tensor


class GibbsTrace(NamedTuple):
    """``states`` ``(B, num_steps, L)``; ``positions`` ``(B, num_steps)`` (-1 for sweeps)."""

    states: torch.Tensor
    positions: torch.Tensor
    final_state: GibbsState
    interrupted: bool


def num_uniforms(scan: str = "random", length: int | None = None) -> int:
    """2 for a random-scan step (position, token); ``length`` for a systematic sweep."""
    if _check_scan(scan) == "random":
        return 2
    return check_int(length, "length", minimum=1)


def _check_sequences(x, name: str = "state.x") -> torch.Tensor:
    x = check_tensor(x, name, integer=True, ndim=2)
    if x.shape[1] == 0:
        raise ValueError(f"{name} must hold non-empty sequences, shape (B, L) with L >= 1")
    return x


def conditional_rows(conditional_log_probs, x: torch.Tensor, positions: torch.Tensor, dtype, validate: bool = True):
    """:math:`\\log\\pi(x_i = v \\mid x_{-i})` at every chain's position, ``(B, V)``, checked as in the reference."""
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
    if validate:
        raise_if(
            [torch.isnan(rows).any() | (rows == torch.inf).any() | (rows == -torch.inf).all(dim=1).any()],
            ["conditional_log_probs must be finite or -inf, not all -inf in a row, and never NaN/+inf"],
        )
    return rows


def update_position(
    uniform: torch.Tensor, x: torch.Tensor, positions: torch.Tensor, conditional_log_probs, validate: bool = True
):
    """Redraw ``x[b, positions[b]]`` for every chain from its conditional by inverse CDF of ``uniform[b]``."""
    rows = conditional_rows(conditional_log_probs, x, positions, uniform.dtype, validate)  # (B, V)
    tokens = categorical_from_uniforms(uniform, rows, validate=False)  # (B,), rows checked above
    new_x = x.clone()
    new_x[torch.arange(x.shape[0], device=x.device), positions] = tokens
    return new_x, tokens


def _check_inputs(uniforms, state, width: int, name: str):
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    if not isinstance(state, GibbsState):
        raise TypeError(f"state must be a GibbsState, got {type(state).__name__}")
    x = _check_sequences(state.x)
    check_same_device(uniforms=uniforms, **{"state.x": x})
    check_batch(uniforms.shape[0], **{"state.x": x})
    if uniforms.shape[1] != width:
        raise ValueError(f"uniforms must have shape (B, {width}) for {name}, got {tuple(uniforms.shape)}")
    return uniforms, x


def step(uniforms: torch.Tensor, state: GibbsState, conditional_log_probs, validate: bool = True):
    """One random-scan step for every chain: a uniform position, then its token.

    Parameters
    ----------
    uniforms : torch.Tensor, shape (B, 2)
    state : GibbsState
    conditional_log_probs : callable, ``(states (B, L), positions (B,)) -> (B, V)``
    validate : bool
        Check uniforms and conditional rows (one synchronisation each).

    Returns
    -------
    (GibbsState, GibbsInfo)
    """
    uniforms, x = _check_inputs(uniforms, state, 2, "a random-scan step")
    if validate:
        raise_if([~((uniforms > 0) & (uniforms < 1)).all()], ["uniforms must lie in the open interval (0, 1)"])
    positions = integer_from_uniform(uniforms[:, 0], x.shape[1])  # (B,)
    new_x, tokens = update_position(uniforms[:, 1], x, positions, conditional_log_probs, validate)
    return GibbsState(new_x), GibbsInfo(positions, tokens)


def sweep(uniforms: torch.Tensor, state: GibbsState, conditional_log_probs, validate: bool = True):
    """One systematic sweep for every chain: positions ``0..L-1`` in turn, ``uniforms[:, i]`` at position ``i``."""
    length = _check_sequences(state.x).shape[1]
    uniforms, x = _check_inputs(uniforms, state, length, "a sweep (one uniform per position)")
    if validate:
        raise_if([~((uniforms > 0) & (uniforms < 1)).all()], ["uniforms must lie in the open interval (0, 1)"])
    for position in range(length):
        positions = torch.full((x.shape[0],), position, dtype=torch.int64, device=x.device)
        # Each update conditions on the tokens already rewritten earlier in this sweep.
        x, _ = update_position(uniforms[:, position], x, positions, conditional_log_probs, validate)
    all_positions = torch.arange(length, device=x.device).expand(x.shape[0], -1)
    return GibbsState(x), GibbsInfo(all_positions, x.clone())


def sample(
    rng, x0: torch.Tensor, conditional_log_probs, num_steps: int, scan: str = "random", first_step: int = 0, dtype=None
):
    """Run ``num_steps`` random-scan steps (or sweeps) for every chain of ``x0`` ``(B, L)``, keeping every state.

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, num_uniforms(scan, L), B)``.

    Parameters
    ----------
    dtype : torch.float32 (default) or torch.float64
        Of the uniforms; must match the conditional's output.

    Returns
    -------
    GibbsTrace
    """
    rng = as_generator(rng)
    _check_scan(scan)
    num_steps = check_int(num_steps, "num_steps")
    first_step = check_int(first_step, "first_step")
    x = _check_sequences(x0, "x0")
    state = GibbsState(x)
    num_chains, length = x.shape
    width = num_uniforms(scan, length)
    states = torch.empty((num_chains, num_steps, length), dtype=x.dtype, device=x.device)
    positions = torch.full((num_chains, num_steps), -1, dtype=torch.int64, device=x.device)
    done = 0
    try:
        for t in range(num_steps):
            uniforms = draw_uniforms(rng, first_step + t, width, num_chains, dtype, x.device)
            if scan == "random":
                state, info = step(uniforms, state, conditional_log_probs)
                positions[:, t] = info.position
            else:
                state, _ = sweep(uniforms, state, conditional_log_probs)
            states[:, t] = state.x
            done = t + 1
    except KeyboardInterrupt:
        return GibbsTrace(states[:, :done], positions[:, :done], state, True)
    return GibbsTrace(states, positions, state, False)
