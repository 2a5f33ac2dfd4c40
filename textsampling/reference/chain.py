"""The one chain runner of the NumPy reference: draw the uniforms of step t, step, record, repeat.

Every Markov-chain sampler's ``sample`` is this loop around its own ``step``::

    state = init(x0, <target>, **params)
    for t in range(num_steps):
        uniforms = draw_uniforms(rng, first_step + t, num_uniforms(**params))
        state, info = step(uniforms, state, <target>, **params)
        record state and info as row t

Step ``first_step + t`` always reads the same uniforms (a
:class:`~textsampling.randomness.CounterGenerator` makes them a pure function of the step index; a
NumPy ``Generator`` reads its stream in order), so a chain continued with ``first_step`` equals the
chain run in one go, and the torch twin (:mod:`textsampling.torch.chain`) reproduces it chain by chain.

A :class:`Trace` has one layout for every sampler: ``states`` is the sampler's state NamedTuple with
each field stacked over steps (row ``t`` is the state *after* step ``first_step + t``), ``infos`` its
info NamedTuple stacked the same way, ``final_state`` the last state, and ``interrupted`` says whether a
``KeyboardInterrupt`` stopped the run. Nothing drawn is lost: an interrupted run returns the completed
steps.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from textsampling._validation import check_int
from textsampling.randomness import as_generator, iterate_step_uniforms

__all__ = ["Trace", "run", "run_steps", "stack_rows", "best"]


class Trace(NamedTuple):
    """A run of completed steps, the same layout for every sampler (the twin adds a leading chain axis)."""

    # The fields are documented by #: comments, not an "Attributes" section: autodoc documents a
    # NamedTuple's fields itself, and a section would describe each a second time (a Sphinx warning).

    #: The sampler's state type (a NamedTuple), each field an array with a leading step axis:
    #: ``states.x[t]`` is the state after step ``first_step + t``.
    states: Any
    #: The sampler's info type (a NamedTuple), each field stacked the same way (``infos.accepted[t]`` …);
    #: ``None`` when no step was completed.
    infos: Any
    #: The state after the last completed step (the start when none was), a NamedTuple.
    final_state: Any
    #: True when a ``KeyboardInterrupt`` stopped the run; the arrays then hold the completed steps.
    interrupted: bool


def _column(values: list):
    """Stack one field's per-step values; strings stay Python objects so none is truncated."""
    if values and isinstance(values[0], str):
        return np.array(values, dtype=object)
    return np.stack([np.asarray(value) for value in values]) if values else np.empty((0,))


def stack_rows(rows: list, row_type, template=None):
    """A NamedTuple of ``row_type`` whose fields are the per-step values of ``rows`` stacked.

    With no rows, each field is an empty array shaped like ``template``'s field (when given), so an
    empty trace still has the right trailing shapes.
    """
    if rows:
        return row_type(*(_column([row[i] for row in rows]) for i in range(len(row_type._fields))))
    if template is None:
        return None
    return row_type(*(np.empty((0,) + np.shape(value), dtype=np.asarray(value).dtype) for value in template))


def run_steps(step_uniforms, state, step_fn: Callable, record: Callable | None = None):
    """The loop itself, shared by both runners: step on each row of ``step_uniforms``, keep the rows.

    Returns ``(rows, final_state, interrupted)`` with ``rows`` the ``(state_row, info_row)`` of each
    completed step; a ``KeyboardInterrupt`` ends the loop and keeps what was drawn.
    """
    rows = []
    try:
        for t, uniforms in enumerate(step_uniforms):
            new_state, info = step_fn(uniforms, state, t)
            # One append per step, so an interrupt never leaves states and infos out of step.
            rows.append(record(new_state, info) if record is not None else (new_state, info))
            state = new_state
    except KeyboardInterrupt:
        return rows, state, True
    return rows, state, False


def run(
    rng,
    state,
    step_fn: Callable,
    num_uniforms: int,
    num_steps: int,
    *,
    first_step: int = 0,
    record: Callable | None = None,
) -> Trace:
    """Run ``num_steps`` steps of ``step_fn`` from ``state`` and keep every state and info.

    Parameters
    ----------
    rng : numpy.random.Generator or CounterGenerator (one chain)
    state : NamedTuple
        The state to start from (``init``'s result).
    step_fn : callable
        ``step_fn(uniforms, state, t) -> (state, info)``, where ``t`` counts the steps of this run from
        0 (an annealing schedule reads its temperature at ``t``); usually a closure over the sampler's
        ``step`` and its target.
    num_uniforms : int
        Uniforms per step.
    num_steps : int
    first_step : int
        Step index of the first step: uniforms of step ``first_step + t`` are used at ``t``.
    record : callable, optional
        ``record(state, info) -> (state_row, info_row)``: what to keep of a step, when the state itself
        cannot be stacked (a sentence of varying length is padded to a fixed width, say).

    Returns
    -------
    Trace
    """
    rng = as_generator(rng)
    num_steps = check_int(num_steps, "num_steps")
    first_step = check_int(first_step, "first_step")
    num_uniforms = check_int(num_uniforms, "num_uniforms")
    step_uniforms = iterate_step_uniforms(rng, first_step, num_steps, num_uniforms)
    rows, state, interrupted = run_steps(step_uniforms, state, step_fn, record)
    template = record(state, None)[0] if record is not None else state
    states = stack_rows([row[0] for row in rows], type(template), template)
    infos = stack_rows([row[1] for row in rows], type(rows[0][1])) if rows else None
    return Trace(states, infos, state, interrupted)


def best(trace: Trace, initial_state=None):
    """The state of highest ``log_prob`` visited by ``trace``, the first one on ties.

    The search helper of every annealing sampler (and of any chain whose state has ``log_prob``).

    Parameters
    ----------
    trace : Trace
        A run whose states have a ``log_prob`` field.
    initial_state : NamedTuple, optional
        The start (``init``'s result); when given it counts as visited before step 0, so a run that
        never improves on its start returns the start.

    Returns
    -------
    NamedTuple
        A state of the trace's state type.
    """
    log_probs = np.asarray(trace.states.log_prob, dtype=np.float64)  # (T,)
    if log_probs.shape[0] == 0:
        if initial_state is None:
            raise ValueError("trace has no steps; pass initial_state to get the start back")
        return initial_state
    index = int(np.argmax(log_probs))  # argmax returns the first maximum
    if initial_state is not None and not log_probs[index] > initial_state.log_prob:
        return initial_state
    row = type(trace.states)(*(np.array(field[index]) for field in trace.states))
    return row._replace(log_prob=float(log_probs[index]))
