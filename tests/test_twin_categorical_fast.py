"""The cheap paths of the Gibbs twin give the rule's answers bit for bit, edge cases included.

* :func:`textsampling.torch.categorical.categorical_from_uniforms` (count search, lazy guard) against
  the rule as first written, ``tests/categorical_rule.py`` (searchsorted, guard always), and each
  CPU fast branch against the branch-free form it skips (``may_branch_on_values`` forced off);
* :meth:`FixedLengthBigram.conditional_log_probs` (row gathers, lazy masks) against the ``torch.where``
  formula it replaced, and against the NumPy reference;
* the Gibbs step's value check, read off the weights' totals, refuses exactly what ``_rows_are_bad`` does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from categorical_rule import branch_free_rule

from textsampling import randomness as numpy_randomness
from textsampling import targets
from textsampling.torch import categorical, gibbs
from textsampling.torch import randomness as torch_randomness
from textsampling.torch.targets import FixedLengthBigram
from textsampling.torch.targets import sequences as torch_sequences

INF = float("inf")
NAN = float("nan")


def _edge_uniforms(num_draws: int, dtype, generator) -> torch.Tensor:
    """Uniforms in (0, 1) with the extremes of the dtype mixed in: the largest below 1, the smallest above 0."""
    uniforms = torch.rand(num_draws, generator=generator, dtype=torch.float64).to(dtype).clamp_(min=1e-30)
    below_one = torch.nextafter(torch.ones((), dtype=dtype), torch.zeros((), dtype=dtype))
    uniforms[::7] = below_one
    uniforms[3::11] = torch.finfo(dtype).tiny
    return uniforms


def _edge_rows(num_rows: int, num_categories: int, dtype, generator) -> torch.Tensor:
    """Rows with -inf entries (trailing ones too), ties, a tiny weight behind a large one, huge spreads."""
    rows = torch.randn(num_rows, num_categories, generator=generator, dtype=torch.float64).to(dtype) * 3
    mask = torch.rand(num_rows, num_categories, generator=generator) < 0.3
    rows[mask] = -INF
    if num_categories > 1:
        rows[1::5, -1] = -INF  # a trailing zero weight
        rows[2::5, 1:] = rows[2::5, :1]  # ties everywhere
        rows[3::5, -1] = rows[3::5, 0] - 80.0  # a weight lost in the total's rounding, at the end
        rows[4::5, 1:] = -INF  # all weight on the first entry
    rows[:, 0] = torch.where(torch.isinf(rows).all(dim=1), 0.0, rows[:, 0].double()).to(dtype)  # one finite each
    return rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("num_categories", [1, 2, 3, 8, 64, 65, 300])
def test_fast_rule_equals_the_randomness_rule_on_valid_input(dtype, num_categories):
    generator = torch.Generator().manual_seed(num_categories)
    rows = _edge_rows(2000, num_categories, dtype, generator)
    uniforms = _edge_uniforms(2000, dtype, generator)
    expected = branch_free_rule(uniforms, rows)
    assert torch.equal(categorical.categorical_from_uniforms(uniforms, rows), expected)
    if dtype == torch.float64:  # and the NumPy reference's indices, on these rows and uniforms
        reference = numpy_randomness.categorical_from_uniforms(uniforms.numpy(), rows.numpy())
        np.testing.assert_array_equal(expected.numpy(), reference)
    shared = rows[0]  # one row for every draw (searchsorted in both)
    expected_shared = branch_free_rule(uniforms, shared)
    assert torch.equal(categorical.categorical_from_uniforms(uniforms, shared), expected_shared)


def _invalid_cases(dtype):
    """(uniforms (R,), rows (R, K)) that only ``validate=False`` lets through: each kind of bad value."""
    below_one = torch.nextafter(torch.ones((), dtype=dtype), torch.zeros((), dtype=dtype)).item()
    rows = torch.tensor(
        [
            [0.0, 1.0, -INF],
            [NAN, 0.0, 1.0],
            [0.0, INF, 1.0],
            [-INF, -INF, -INF],
            [0.0, NAN, INF],
            [INF, INF, 0.0],
            [0.0, -INF, -INF],
            [-INF, 0.0, -INF],
            [0.0, 0.0, 0.0],
            [0.0, 1.0, 2.0],
            [0.0, 1.0, 2.0],
            [0.0, 1.0, -INF],
            [-INF, 0.0, 0.0],
        ],
        dtype=dtype,
    )
    values = [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 1.5, -0.5, -0.0, NAN, INF, -INF, below_one]
    return torch.tensor(values, dtype=dtype), rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_rule_equals_the_randomness_rule_on_what_validation_refuses(dtype):
    uniforms, rows = _invalid_cases(dtype)
    expected = branch_free_rule(uniforms, rows, validate=False)
    assert torch.equal(categorical.categorical_from_uniforms(uniforms, rows, validate=False), expected)
    for row, uniform in zip(rows, uniforms, strict=True):  # each case alone (the lazy guard is per call)
        alone = branch_free_rule(uniform[None], row[None], validate=False)
        assert torch.equal(categorical.categorical_from_uniforms(uniform[None], row[None], validate=False), alone)


def test_fast_rule_raises_what_the_randomness_rule_raises():
    uniforms, rows = _invalid_cases(torch.float64)
    for row, uniform in zip(rows, uniforms, strict=True):
        messages = []
        for rule in (branch_free_rule, categorical.categorical_from_uniforms):
            try:
                rule(uniform[None], row[None])
                messages.append(None)
            except ValueError as error:
                messages.append(str(error))
        assert messages[0] == messages[1]
    for bad in [(torch.zeros(3), torch.zeros(2, 3)), (torch.zeros(2), torch.zeros(2, 0)), (torch.zeros(2), 1.0)]:
        with pytest.raises((TypeError, ValueError)) as old:
            branch_free_rule(*bad)
        with pytest.raises(old.type, match="logits|uniforms") as new:
            categorical.categorical_from_uniforms(*bad)
        assert str(new.value) == str(old.value)


@pytest.mark.parametrize("num_categories", [3, 8, 100])
def test_cpu_fast_branches_equal_the_branch_free_forms(monkeypatch, num_categories):
    generator = torch.Generator().manual_seed(7)
    uniforms, rows = _invalid_cases(torch.float32)
    wide_rows = _edge_rows(500, num_categories, torch.float32, generator)
    wide_uniforms = _edge_uniforms(500, torch.float32, generator)
    wide_uniforms[::13] = 1.0  # the guard's case: nothing found
    fast = [
        categorical.inverse_cdf(uniforms, rows),
        categorical.inverse_cdf(wide_uniforms, wide_rows),
        categorical.inverse_cdf_and_totals(wide_uniforms, wide_rows)[1],
    ]
    monkeypatch.setattr(torch_randomness, "may_branch_on_values", lambda tensor: False)
    monkeypatch.setattr(torch_randomness, "COUNT_SEARCH_MAX_CATEGORIES", 0)
    branch_free = [
        categorical.inverse_cdf(uniforms, rows),
        categorical.inverse_cdf(wide_uniforms, wide_rows),
        categorical.inverse_cdf_and_totals(wide_uniforms, wide_rows)[1],
    ]
    for a, b in zip(fast, branch_free, strict=True):
        assert torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(), b.nan_to_num())


def test_inverse_cdf_in_place_equals_the_fresh_form():
    generator = torch.Generator().manual_seed(3)
    rows = _edge_rows(300, 50, torch.float64, generator)
    uniforms = _edge_uniforms(300, torch.float64, generator)
    expected = categorical.inverse_cdf(uniforms, rows)
    buffer, cumulative = rows.clone(), torch.empty_like(rows)
    in_place = categorical.inverse_cdf(uniforms, buffer, overwrite_logits=True, cumulative=cumulative)
    assert torch.equal(in_place, expected)
    assert torch.equal(cumulative, torch.cumsum(torch.exp(rows - rows.amax(dim=1, keepdim=True)), dim=1))


def test_totals_are_nan_exactly_where_the_rows_check_fires():
    uniforms, rows = _invalid_cases(torch.float64)
    _, totals = categorical.inverse_cdf_and_totals(uniforms.clamp(0.25, 0.75).nan_to_num(0.5), rows)
    flagged = torch.stack([gibbs._rows_are_bad(row[None]) for row in rows])
    assert torch.equal(torch.isnan(totals), flagged) and flagged.any() and not flagged.all()


# ----------------------------------------------------------------------------- the bigram's conditional
def _bigram(length: int, vocab_size: int, seed: int, zeros: bool, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    initial = rng.normal(size=vocab_size) * 2
    transition = rng.normal(size=(vocab_size, vocab_size + 1)) * 2
    if zeros:  # probability-zero moves, so some conditionals are -inf everywhere
        transition[rng.random(transition.shape) < 0.5] = -np.inf
        transition[:, 0] = np.where(np.isinf(transition).all(axis=1), 0.0, transition[:, 0])
        initial[rng.random(vocab_size) < 0.5] = -np.inf
        initial[0] = 0.0
    reference = targets.FixedLengthBigram(initial, transition, length)
    return reference, FixedLengthBigram.from_reference(reference, dtype=dtype)


def _all_positions_states(vocab_size: int, length: int, num_rows: int, seed: int, outside: bool):
    rng = np.random.default_rng(seed)
    low, high = (-2, vocab_size + 2) if outside else (0, vocab_size)
    states = rng.integers(low, high, size=(num_rows, length))
    positions = rng.integers(0, length, size=num_rows)
    return states, positions


@pytest.mark.parametrize("length", [1, 2, 5])
@pytest.mark.parametrize("zeros", [False, True])
@pytest.mark.parametrize("outside", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("table", [True, False])
def test_bigram_conditional_equals_the_where_formula_bit_for_bit(monkeypatch, length, zeros, outside, dtype, table):
    reference, twin = _bigram(length, 6, seed=length, zeros=zeros, dtype=dtype)
    if not table:  # the path of vocabularies too large for the pair table
        twin._pair_rows = None
    for num_rows in (1, 7, 401):  # remainders to every vector width, and one row alone
        states, positions = _all_positions_states(6, length, num_rows, seed=length + num_rows, outside=outside)
        states_t, positions_t = torch.as_tensor(states), torch.as_tensor(positions)
        expected = twin._conditional_log_probs_by_where(states_t, positions_t)
        assert torch.equal(twin.conditional_log_probs(states_t, positions_t), expected)
        for position in range(length):  # an int position too
            by_where = twin._conditional_log_probs_by_where(states_t, position)
            assert torch.equal(twin.conditional_log_probs(states_t, position), by_where)
    if length > 1 and (outside or zeros):  # the all -inf rows this test means to reach are there
        assert torch.isinf(expected).all(dim=1).any()
    with monkeypatch.context() as patch:  # the branch-free form (CUDA, torch.compile)
        patch.setattr(torch_sequences, "may_branch_on_values", lambda tensor: False)
        assert torch.equal(twin.conditional_log_probs(states_t, positions_t), expected)
    if dtype == torch.float64:  # the reference's values (float64 tables, the same additions)
        np.testing.assert_allclose(
            twin.conditional_log_probs(states_t, positions_t).numpy(),
            reference.conditional_log_probs(states, positions),
            rtol=1e-12,
            atol=0,
        )


def test_pair_table_is_used_up_to_its_size_limit(monkeypatch):
    assert _bigram(3, 6, seed=0, zeros=False)[1]._pair_rows.shape == (7 * 7 + 1, 6)
    monkeypatch.setattr(torch_sequences, "PAIR_TABLE_MAX_ENTRIES", 7 * 7 * 6 - 1)
    assert _bigram(3, 6, seed=0, zeros=False)[1]._pair_rows is None


def test_gibbs_step_refuses_bad_rows_with_and_without_the_fast_draw():
    _, twin = _bigram(3, 4, seed=0, zeros=False)
    state = gibbs.GibbsState(torch.zeros(4, 3, dtype=torch.int64))
    uniforms = torch.full((4, 2), 0.5, dtype=torch.float64)
    for bad in (NAN, INF, -INF):

        def conditional(x, positions, bad=bad):
            rows = twin.conditional_log_probs(x, positions)
            rows[2] = bad if bad != INF else rows[2].masked_fill(torch.arange(4) == 1, INF)
            return rows

        with pytest.raises(ValueError, match="conditional_log_probs must be finite"):
            gibbs.step(uniforms, state, conditional)
        with pytest.raises(ValueError, match="conditional_log_probs must be finite"):
            gibbs.step(uniforms[:, :1].expand(4, 3).contiguous(), state, conditional, scan="systematic")
    with pytest.raises(ValueError, match="open interval"):
        gibbs.step(uniforms.clone().fill_(1.0), state, twin.conditional_log_probs)


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
@pytest.mark.parametrize("scan", ["random", "systematic"])
def test_gibbs_sample_defers_the_same_row_check(bad, scan):
    """``sample`` reads its deferred check off the weight totals: each kind of bad row still raises."""
    from textsampling.torch.randomness import CounterGenerator

    _, twin = _bigram(4, 5, seed=2, zeros=False)

    def conditional(x, positions):
        rows = twin.conditional_log_probs(x, positions)
        if bad == INF:
            return torch.where((positions[:, None] == 2) & (torch.arange(5) == 3), INF, rows)
        return torch.where(positions[:, None] == 2, bad, rows)

    x0 = torch.zeros((6, 4), dtype=torch.int64)
    with pytest.raises(ValueError, match="conditional_log_probs must be finite"):
        gibbs.sample(CounterGenerator(1, torch.arange(6)), x0, conditional, 20, scan=scan, dtype=torch.float64)
    trace = gibbs.sample(
        CounterGenerator(1, torch.arange(6)), x0, twin.conditional_log_probs, 20, scan=scan, dtype=torch.float64
    )  # a good conditional passes
    assert trace.states.x.shape[:2] == (6, 20)


@pytest.mark.parametrize("scan", ["random", "systematic"])
def test_gibbs_step_errors_on_empty_rows_are_unchanged(scan):
    """An empty conditional row: the rows' check with ``validate`` (vacuously all ``-inf``), else the draw's."""
    state = gibbs.GibbsState(torch.zeros(3, 4, dtype=torch.int64))
    uniforms = torch.full((3, gibbs.num_uniforms(scan, 4)), 0.5, dtype=torch.float64)

    def empty(x, positions):
        return torch.zeros(x.shape[0], 0, dtype=torch.float64)

    with pytest.raises(ValueError, match="conditional_log_probs must be finite"):
        gibbs.step(uniforms, state, empty, scan=scan)
    with pytest.raises(ValueError, match="K >= 1"):
        gibbs.step(uniforms, state, empty, scan=scan, validate=False)


@pytest.mark.parametrize("table", [True, False])
def test_bigram_conditional_takes_an_empty_batch_and_refuses_positions_outside_the_sentence(monkeypatch, table):
    rng = np.random.default_rng(3)
    if not table:
        monkeypatch.setattr(torch_sequences, "PAIR_TABLE_MAX_ENTRIES", 0)
    target = FixedLengthBigram(rng.normal(size=5), rng.normal(size=(5, 6)), 4, dtype=torch.float64)
    assert (target._pair_rows is not None) == table
    assert target.conditional_log_probs(torch.zeros((0, 4), dtype=torch.int64), 0).shape == (0, 5)
    empty = torch.zeros((0, 4), dtype=torch.int64)
    assert target.conditional_log_probs(empty, torch.zeros(0, dtype=torch.int64)).shape == (0, 5)
    for bad in (4, -1):  # the neighbours are gathered with clamped indices: an error, not some row
        with pytest.raises(ValueError, match=r"position must lie in 0\.\.3"):
            target.conditional_log_probs(torch.zeros((3, 4), dtype=torch.int64), torch.tensor([0, bad, 1]))
