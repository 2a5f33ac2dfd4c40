"""The one chain runner (reference/chain.py and torch/chain.py): uniforms of step t, the Trace layout,
continuation with first_step, and keeping what was drawn when interrupted."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from textsampling.randomness import CounterGenerator, draw_uniforms
from textsampling.reference import chain


class WalkState(NamedTuple):
    x: np.ndarray
    log_prob: float


class WalkInfo(NamedTuple):
    proposal: np.ndarray
    accepted: bool


def walk_step(uniforms, state, t):
    """A deterministic step of a toy walk: x moves by floor(3u) - 1; records what it used."""
    move = int(np.floor(3 * uniforms[0])) - 1
    y = state.x + move
    return WalkState(y, -float(np.sum(y**2))), WalkInfo(y, bool(uniforms[1] < 0.5))


def start():
    return WalkState(np.zeros(2, dtype=np.int64), 0.0)


def test_trace_rows_are_the_states_after_each_step_with_the_uniforms_of_that_step():
    trace = chain.run(CounterGenerator(3, 0), start(), walk_step, 2, 10)
    state = start()
    for t in range(10):
        state, info = walk_step(draw_uniforms(CounterGenerator(3, 0), t, 2), state, t)
        np.testing.assert_array_equal(trace.states.x[t], state.x)
        assert trace.states.log_prob[t] == state.log_prob
        assert trace.infos.accepted[t] == info.accepted
    assert trace.states.x.shape == (10, 2) and trace.infos.proposal.shape == (10, 2)
    np.testing.assert_array_equal(trace.final_state.x, state.x)
    assert trace.interrupted is False


def test_a_chain_continued_with_first_step_equals_the_chain_run_in_one_go():
    whole = chain.run(CounterGenerator(5, 2), start(), walk_step, 2, 12)
    first = chain.run(CounterGenerator(5, 2), start(), walk_step, 2, 7)
    rest = chain.run(CounterGenerator(5, 2), first.final_state, walk_step, 2, 5, first_step=7)
    np.testing.assert_array_equal(np.concatenate([first.states.x, rest.states.x]), whole.states.x)


def test_zero_steps_give_empty_fields_of_the_state_shape():
    trace = chain.run(np.random.default_rng(0), start(), walk_step, 2, 0)
    assert trace.states.x.shape == (0, 2) and trace.states.log_prob.shape == (0,) and trace.infos is None
    np.testing.assert_array_equal(trace.final_state.x, start().x)


def test_an_interrupt_keeps_the_completed_steps_and_says_so():
    def interrupting_step(uniforms, state, t):
        if t == 4:
            raise KeyboardInterrupt
        return walk_step(uniforms, state, t)

    trace = chain.run(CounterGenerator(1, 0), start(), interrupting_step, 2, 10)
    whole = chain.run(CounterGenerator(1, 0), start(), walk_step, 2, 10)
    assert trace.interrupted is True and trace.states.x.shape == (4, 2)
    np.testing.assert_array_equal(trace.states.x, whole.states.x[:4])
    np.testing.assert_array_equal(trace.final_state.x, whole.states.x[3])


def test_string_fields_are_never_truncated():
    class MoveInfo(NamedTuple):
        move: str

    names = ["insert", "replace", "delete"]
    trace = chain.run(
        CounterGenerator(0, 0), start(), lambda u, s, t: (s, MoveInfo(names[t % 3])), 1, 5
    )
    assert list(trace.infos.move) == ["insert", "replace", "delete", "insert", "replace"]


def test_bad_arguments_name_themselves():
    with pytest.raises((TypeError, ValueError), match="num_steps"):
        chain.run(CounterGenerator(0, 0), start(), walk_step, 2, -1)
    with pytest.raises((TypeError, ValueError), match="first_step"):
        chain.run(CounterGenerator(0, 0), start(), walk_step, 2, 3, first_step=-2)


class TestTorchRunner:
    torch = pytest.importorskip("torch")

    def test_chain_b_of_the_twin_runner_is_the_reference_run_with_chain_index_b(self):
        torch = self.torch
        from textsampling.torch import chain as torch_chain
        from textsampling.torch.randomness import CounterGenerator as TorchCounterGenerator

        def batched_step(uniforms, state, t):  # (B, 2) uniforms, (B, 2) x
            move = torch.floor(3 * uniforms[:, :1]).to(torch.int64) - 1  # (B, 1)
            y = state.x + move  # (B, 2)
            return WalkState(y, -(y.double() ** 2).sum(dim=1)), WalkInfo(y, uniforms[:, 1] < 0.5)

        x0 = torch.zeros((3, 2), dtype=torch.int64)
        trace = torch_chain.run(
            TorchCounterGenerator(9, torch.arange(3)), WalkState(x0, torch.zeros(3, dtype=torch.float64)),
            batched_step, 2, 6, num_chains=3, dtype=torch.float64,
        )
        assert tuple(trace.states.x.shape) == (3, 6, 2) and tuple(trace.infos.accepted.shape) == (3, 6)
        for b in range(3):
            expected = chain.run(CounterGenerator(9, b), start(), walk_step, 2, 6)
            np.testing.assert_array_equal(trace.states.x[b].numpy(), expected.states.x)
            np.testing.assert_array_equal(trace.infos.accepted[b].numpy(), expected.infos.accepted)
        empty = torch_chain.run(
            TorchCounterGenerator(9, torch.arange(3)), WalkState(x0, torch.zeros(3)), batched_step, 2, 0,
            num_chains=3,
        )
        assert tuple(empty.states.x.shape) == (3, 0, 2)
