"""The one chain runner of the torch twins: :mod:`textsampling.reference.chain`, batched over chains.

Same loop, same :class:`Trace` layout, with a leading chain dimension: ``states.x`` has shape
``(B, num_steps) + state_shape`` and row ``[b, t]`` is chain ``b`` after step ``first_step + t``. The
uniforms of step ``t`` are ``draw_uniforms(rng, first_step + t, num_uniforms, B)``, so with a
:class:`~textsampling.torch.randomness.CounterGenerator` chain ``b`` is the reference chain run with
``CounterGenerator(seed, chain_index[b])``, decision by decision.
"""

from __future__ import annotations

from typing import Callable

import torch

from textsampling._validation import check_int
from textsampling.reference.chain import Trace, run_steps
from textsampling.torch._validation import raise_if
from textsampling.torch.randomness import as_generator, draw_uniforms

__all__ = ["Trace", "run", "stack_rows", "best", "DeferredValueChecks", "CHECK_EVERY"]

#: Steps between two synchronisations of :class:`DeferredValueChecks` in the samplers' ``sample``.
CHECK_EVERY = 64


class DeferredValueChecks:
    """Value checks of a run, gathered as 0-d bool tensors and settled with one synchronisation per ``every`` steps.

    A ``step`` with ``validate=True`` checks its values at once, at the price of one device-to-host
    synchronisation per step (on a GPU the host then waits for every kernel of the step). In ``sample``
    the same conditions are computed on the device each step (:meth:`add`, no synchronisation) and
    raised together every ``every`` steps and at the end of the run (:meth:`after_step`, :meth:`check`):
    a bad value still raises the step's error, at most ``every - 1`` steps later.
    """

    def __init__(self, message: str, every: int = CHECK_EVERY):
        self.message = message
        self.every = check_int(every, "every", minimum=1)
        self.flags: list = []

    def add(self, condition: torch.Tensor) -> None:
        """Record a 0-d bool tensor that is True when the values are bad."""
        self.flags.append(condition)

    def after_step(self, t: int) -> None:
        """Settle the gathered conditions after step ``t`` of the run when ``t + 1`` is a multiple of ``every``."""
        if (t + 1) % self.every == 0:
            self.check()

    def check(self) -> None:
        """Raise ``ValueError(message)`` if any gathered condition holds (one synchronisation)."""
        if self.flags:
            flags, self.flags = self.flags, []
            raise_if([torch.stack(flags).any()], [self.message])


def _as_column_value(value, num_chains: int, device) -> torch.Tensor:
    """One step's value of a field as a ``(B, ...)`` tensor (a value shared by all chains is repeated)."""
    value = torch.as_tensor(value, device=device)
    if value.ndim == 0:
        value = value.expand(num_chains)  # (B,)
    return value


def stack_rows(rows: list, row_type, template=None, num_chains: int | None = None):
    """A NamedTuple of ``row_type`` whose fields stack the per-step ``(B, ...)`` values on dim 1.

    With no rows, each field is an empty ``(B, 0, ...)`` tensor shaped like ``template``'s field.
    """
    if rows:
        device = torch.as_tensor(rows[0][0]).device if torch.is_tensor(rows[0][0]) else None
        columns = []
        for i in range(len(row_type._fields)):
            values = [_as_column_value(row[i], num_chains, device) for row in rows]
            columns.append(torch.stack(values, dim=1))  # (B, T, ...)
        return row_type(*columns)
    if template is None:
        return None
    columns = []
    for value in template:
        value = _as_column_value(value, num_chains, None)
        columns.append(value.new_empty((value.shape[0], 0) + tuple(value.shape[1:])))  # (B, 0, ...)
    return row_type(*columns)


def run(
    rng,
    state,
    step_fn: Callable,
    num_uniforms: int,
    num_steps: int,
    *,
    first_step: int = 0,
    num_chains: int | None = None,
    dtype: torch.dtype | None = None,
    device=None,
    record: Callable | None = None,
) -> Trace:
    """Run ``num_steps`` steps of ``step_fn`` for every chain from ``state``; keep every state and info.

    Parameters
    ----------
    rng : CounterGenerator or torch.Generator, on the chains' device
    state : NamedTuple of ``(B, ...)`` tensors
        The state to start from (``init``'s result).
    step_fn : callable
        ``step_fn(uniforms (B, num_uniforms), state, t) -> (state, info)``; ``t`` counts this run's
        steps from 0.
    num_uniforms, num_steps : int
    first_step : int
        Step index of the first step.
    num_chains : int, optional
        ``B``, checked against a counter generator's chains; default ``state.x.shape[0]``.
    dtype : torch.float32 or torch.float64, optional
        The uniforms' dtype; default the dtype of ``state.log_prob`` when the state has a floating one
        (the uniforms meet the log-densities in the accept test), else float32.
    device : optional
        The chains' device, default ``state.x.device``; the generator must live there.
    record : callable, optional
        ``record(state, info) -> (state_row, info_row)``, as in the reference runner.

    Returns
    -------
    Trace
        Fields of ``states`` and ``infos`` have shape ``(B, T, ...)``.
    """
    rng = as_generator(rng)
    num_chains = state.x.shape[0] if num_chains is None else num_chains
    device = state.x.device if device is None else device
    log_prob = getattr(state, "log_prob", None)
    if dtype is None and torch.is_tensor(log_prob) and log_prob.dtype.is_floating_point:
        dtype = log_prob.dtype
    num_steps = check_int(num_steps, "num_steps")
    first_step = check_int(first_step, "first_step")
    num_uniforms = check_int(num_uniforms, "num_uniforms")
    step_uniforms = (
        draw_uniforms(rng, first_step + t, num_uniforms, num_chains, dtype, device) for t in range(num_steps)
    )  # each (B, k), drawn when the loop reaches step t
    rows, state, interrupted = run_steps(step_uniforms, state, step_fn, record)
    template = record(state, None)[0] if record is not None else state
    states = stack_rows([row[0] for row in rows], type(template), template, num_chains)
    infos = stack_rows([row[1] for row in rows], type(rows[0][1]), None, num_chains) if rows else None
    return Trace(states, infos, state, interrupted)


def best(trace: Trace, initial_state=None):
    """Each chain's state of highest ``log_prob`` visited, the first one on ties (the start first, when given).

    Twin of :func:`textsampling.reference.chain.best`: ``trace`` fields ``(B, T, ...)``, ``initial_state``
    fields ``(B, ...)``; returns a state of the trace's state type with fields ``(B, ...)``.
    """
    states = trace.states
    if initial_state is not None:
        # The start as step -1: each field (B, 1 + T, ...).
        states = type(states)(*(torch.cat([first[:, None], rest], dim=1) for first, rest in zip(initial_state, states)))
    log_probs = states.log_prob  # (B, T')
    if log_probs.shape[1] == 0:
        raise ValueError("trace has no steps; pass initial_state to get the start back")
    # The first maximum of each row, spelled out: the smallest step index where the row reaches its maximum.
    steps = torch.arange(log_probs.shape[1], device=log_probs.device).expand_as(log_probs)  # (B, T')
    at_maximum = log_probs == log_probs.max(dim=1, keepdim=True).values  # (B, T')
    index = torch.where(at_maximum, steps, log_probs.shape[1]).min(dim=1).values  # (B,)
    chains = torch.arange(log_probs.shape[0], device=log_probs.device)  # (B,)
    return type(states)(*(field[chains, index] for field in states))  # each (B, ...)
