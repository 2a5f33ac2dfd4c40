"""CGMH's candidate set without a full sort: ``_top_k_stable`` is the first K columns of the stable sort.

The candidates are the K most probable ids after the prefix, the lower id first among equal
log-probabilities (the reference's order); the twin takes them from ``torch.topk`` and the ties at the
K-th value instead of sorting the whole vocabulary. Equal values are the case to check: small integer
values make ties everywhere, ``-inf`` (special ids, fewer than K allowed ids) and NaN rows included.
"""

import pytest
import torch

from textsampling.torch.cgmh import _top_k_stable


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_top_k_stable_equals_the_first_columns_of_a_stable_descending_sort(dtype):
    generator = torch.Generator().manual_seed(15)
    for trial in range(400):
        num_rows = int(torch.randint(1, 6, (1,), generator=generator))
        width = int(torch.randint(1, 40, (1,), generator=generator))
        k = int(torch.randint(1, width + 1, (1,), generator=generator))
        values = torch.randint(-3, 3, (num_rows, width), generator=generator).to(dtype)  # (B, V): many ties
        values[torch.rand(num_rows, width, generator=generator) < 0.3] = -torch.inf
        if trial % 9 == 0:
            values[0] = -torch.inf  # no allowed id at all
        if trial % 13 == 0:
            values[-1, 0] = torch.nan  # sorted in full, as torch.sort orders NaN
        if trial % 5 == 0:
            values = values + 0.25 * torch.rand(num_rows, width, generator=generator, dtype=dtype)  # fewer ties
        top_values, top_indices = _top_k_stable(values, k)
        ranked = torch.sort(values, dim=1, descending=True, stable=True)
        assert torch.equal(top_indices, ranked.indices[:, :k]), (values, k)
        assert torch.equal(top_values.isnan(), ranked.values[:, :k].isnan())
        same = ~top_values.isnan()
        assert torch.equal(top_values[same], ranked.values[:, :k][same])


def test_top_k_stable_takes_the_lower_ids_among_ties_at_the_kth_value():
    values = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0, 2.0]])
    assert _top_k_stable(values, 4)[1].tolist() == [[5, 1, 3, 0]]
    assert _top_k_stable(values, 2)[1].tolist() == [[5, 1]]
