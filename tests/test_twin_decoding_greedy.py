"""Greedy decoding: the twin's choice is the reference's, row by row, ties included.

The twin's greedy step (``_greedy_tokens``) takes the first maximum (``torch.max`` along the row) of the
decision rows (filtered, not renormalised, as the reference's ``decode``). These tests compare it with the
NumPy reference's ``argmax``, row by row, on rows built to catch a shortcut: exact ties (lower id first;
top-p keeps the *higher* id of a tie), values one float32 step apart, a special token on top, huge logits,
and with every filter; and a whole greedy decode on a model with ties at every step. Exact comparisons
only: each row is decided the same way or the test fails.
"""

import itertools

import numpy as np
import pytest
import torch

from textsampling.reference import decoding as reference
from textsampling.torch import decoding

VOCAB = 9
END = 7  # END may win; id 8 is another special, never chosen
SPECIALS = frozenset({END, 8})
SETTINGS = list(itertools.product([1.0, 0.7, 3.0], [None, 1, 3], [None, 0.3, 0.9]))  # (temperature, top_k, top_p)


class _Rows:
    """A model stand-in: only what the decision rows read (special ids and END)."""

    special_token_ids = SPECIALS
    end_token_id = END


def _crafted_rows() -> torch.Tensor:
    """Float32 log-probability-like rows ``(N, VOCAB)`` with every hard case a shortcut could get wrong."""
    rng = np.random.default_rng(11)
    rows = []
    for _ in range(40):  # ordinary rows: a clear maximum almost surely
        rows.append(rng.normal(scale=3.0, size=VOCAB) - 5.0)
    for scale in (1e-3, 1.0, 30.0, 1e4):
        base = rng.normal(scale=scale, size=VOCAB).astype(np.float32)
        top = base.max()
        tie = base.copy()
        tie[[1, 5]] = top + abs(top) * 0.5 + 1.0  # an exact tie at the top, ids 1 and 5
        rows.append(tie)
        for steps in (1, 2, 64):  # the runner-up 1, 2, 64 float32 steps below the best, on either side
            for low, high in ((2, 6), (6, 2)):
                near = base.copy()
                near[high] = top + abs(top) * 0.5 + 1.0
                value = near[high]
                for _ in range(steps):
                    value = np.nextafter(value, np.float32(-np.inf))
                near[low] = value
                rows.append(near)
    special_on_top = rng.normal(size=VOCAB)
    special_on_top[8] = 50.0  # masked: never chosen
    rows.append(special_on_top)
    end_on_top = rng.normal(size=VOCAB)
    end_on_top[END] = 50.0  # END is kept: chosen
    rows.append(end_on_top)
    one_finite = np.full(VOCAB, -np.inf)
    one_finite[3] = -2.0  # a single finite entry
    rows.append(one_finite)
    return torch.as_tensor(np.array(rows, dtype=np.float32))


@pytest.mark.parametrize("temperature, top_k, top_p", SETTINGS)
def test_greedy_choice_equals_the_reference_row_by_row(temperature, top_k, top_p):
    rows = _crafted_rows()
    chosen = decoding._greedy_tokens(_Rows(), rows, temperature, top_k, top_p, torch.float64)
    for row, token in zip(rows.double().numpy(), chosen.tolist()):
        masked = row.copy()
        masked[8] = -np.inf  # the reference's mask_special_tokens (END kept)
        assert token == int(np.argmax(reference._filtered_logits(masked, temperature, top_k, top_p)))


def test_a_tie_under_top_p_goes_to_the_higher_id_as_in_the_reference():
    """Test of the test: the crafted rows do hold a case where the plain first maximum of the model's row is
    not the greedy choice."""
    rows = _crafted_rows()
    naive = torch.argmax(rows.masked_fill(torch.arange(VOCAB) == 8, -torch.inf), dim=-1)  # (N,)
    chosen = decoding._greedy_tokens(_Rows(), rows, 1.0, None, 0.3, torch.float64)
    assert bool((chosen != naive).any())


class _TieModel:
    """A causal LM whose rows have an exact tie at the top after every prefix (float32, as HFCausalLM)."""

    special_token_ids = frozenset({4})
    end_token_id = 4
    vocab_size = 6
    max_length = 5

    def next_token_log_probs_torch(self, token_ids):
        token_ids = torch.as_tensor(token_ids)
        lengths = (token_ids != -1).sum(dim=1)  # (N,)
        logits = torch.stack([torch.tensor([0.5, 2.0, 0.1, 2.0, 1.9 + 0.1 * float(n), -1.0]) for n in lengths])
        return torch.log_softmax(logits, dim=-1)  # (N, 6) float32, ids 1 and 3 tied, END tied at length 1, ahead after

    def next_token_log_probs(self, token_ids):
        return self.next_token_log_probs_torch(token_ids).double().numpy()


@pytest.mark.parametrize("kwargs", [{}, {"top_p": 0.2}, {"top_k": 1}, {"temperature": 0.5, "top_p": 0.5}])
def test_greedy_decode_with_ties_equals_the_reference(kwargs):
    model = _TieModel()
    twin = decoding.decode(torch.full((3, 5), 0.5, dtype=torch.float64), model, greedy=True, **kwargs)
    ours = reference.decode(np.full(5, 0.5), model, 5, greedy=True, **kwargs)
    for row in range(3):
        np.testing.assert_array_equal(twin.tokens[row].numpy(), ours.tokens)
        assert bool(twin.ended[row]) == ours.ended


def test_float64_rows_decided_in_float32_merge_as_the_decision_rows_do():
    """The shortcut on the model's own rows is exact only when the decision dtype holds their values: float64
    rows two values of which float32 merges are decided on the float32 decision rows (lower id of the tie)."""
    rows = torch.tensor([[0.1, 1.0, 1.0 + 1e-12, -3.0]], dtype=torch.float64)
    model = type("Model", (), {"special_token_ids": frozenset(), "end_token_id": 0})()
    assert decoding._greedy_tokens(model, rows, 1.0, None, None, torch.float32).tolist() == [1]  # merged: first
    assert decoding._greedy_tokens(model, rows, 1.0, None, None, torch.float64).tolist() == [2]  # kept apart
