"""The twin's in-place draw (``decoding._draw``) is ``categorical_from_uniforms``, index for index.

``decode`` draws each token in place in reused buffers (the package's one rule,
:func:`textsampling.torch.categorical.inverse_cdf`, writing into the logits), and computes the rule's guard
(never a trailing zero-weight token) only for rows that need it. It is compared here with the rule as first
written (``tests/categorical_rule.py``: every operation on every draw) on the same rows and
uniforms, exactly, including the rows where the guard acts: trailing ``-inf`` entries with ``u * C_{K-1}``
equal to the total. In round-to-nearest that takes ``u = 1``: for every ``u < 1`` (down to the largest
float below 1, which is tested too) the product stays below ``C_{K-1}``, so the guard is reached through
``validate=False`` only.
"""

import numpy as np
import pytest
import torch
from categorical_rule import branch_free_rule as categorical_from_uniforms

from textsampling.torch import decoding


def _rows_and_uniforms(dtype):
    rng = np.random.default_rng(7)
    num_rows, size = 400, 50
    rows = rng.normal(scale=4.0, size=(num_rows, size))
    rows[rng.random((num_rows, size)) < 0.3] = -np.inf  # zero weights anywhere
    rows[::3, -7:] = -np.inf  # trailing zero weights: where the guard can act
    rows[::5, :-1] = -np.inf  # one finite entry, the last
    rows[::7, 1:] = -np.inf  # one finite entry, the first
    rows[::11] = np.linspace(-3.0, 3.0, size)  # no zero weight
    rows[:, 0] = np.where(np.isinf(rows).all(axis=1), 0.0, rows[:, 0])  # every row keeps a finite entry
    uniforms = rng.random(num_rows)
    below_one = np.nextafter(np.float64(1.0), 0.0) if dtype == torch.float64 else np.float32(np.nextafter(
        np.float32(1.0), np.float32(0.0)))
    uniforms[::2] = below_one  # the largest uniform below 1: u * C_{K-1} may round up to C_{K-1}
    uniforms[1::4] = np.finfo(np.float64 if dtype == torch.float64 else np.float32).tiny  # the smallest
    uniforms[3::12] = 1.0  # outside (0, 1): threshold = C_{K-1}, nothing found, the guard acts
    return torch.as_tensor(rows, dtype=dtype), torch.as_tensor(uniforms, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_in_place_draw_equals_categorical_from_uniforms(dtype):
    rows, uniforms = _rows_and_uniforms(dtype)
    expected = categorical_from_uniforms(uniforms, rows, validate=False)  # validate=False: the u = 1 rows
    work = rows.clone()
    drawn = decoding._draw(uniforms, work, torch.empty_like(rows))
    np.testing.assert_array_equal(drawn.numpy(), expected.numpy())
    assert bool(torch.isfinite(rows[torch.arange(rows.shape[0]), drawn]).all())  # never a zero-weight token
    np.testing.assert_array_equal(work.numpy(), torch.exp(rows - rows.amax(dim=-1, keepdim=True)).numpy())


def test_the_guard_is_exercised():
    """Test of the test: some rows do reach the guard (nothing found), with a zero weight at the end."""
    rows, uniforms = _rows_and_uniforms(torch.float64)
    cumulative = torch.cumsum(torch.exp(rows - rows.amax(dim=-1, keepdim=True)), dim=-1)
    raw = torch.searchsorted(cumulative, (uniforms * cumulative[:, -1])[:, None], right=True)[:, 0]
    past = raw >= rows.shape[1]
    assert bool(past.any())
    trailing_zero = torch.isinf(rows[:, -1])
    assert bool((past & trailing_zero).any())  # where a plain clamp would land on a zero-weight token


def test_decode_names_bad_uniforms():
    from textsampling.lm.oracle import BigramOracle
    from textsampling.targets.sequences import BigramLM

    rng = np.random.default_rng(5)
    oracle = BigramOracle(BigramLM(rng.normal(size=4), rng.normal(size=(4, 5)), 4))
    with pytest.raises(TypeError, match="uniforms"):
        decoding.decode(torch.zeros((2, 4), dtype=torch.int64), oracle)
    with pytest.raises(ValueError, match="uniforms"):
        decoding.decode(torch.full((4,), 0.5, dtype=torch.float64), oracle)
