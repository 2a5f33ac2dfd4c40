"""Shared assertion of the particle twin tests: a twin's floats equal the reference's, -inf and NaN included."""

import numpy as np
import torch


def assert_close_to_reference(got, expected):
    """Same NaN and infinity pattern; finite values equal to 1e-12 (float64 twins, another summation order)."""
    got = got.cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-12)
