r"""Torch twin of :class:`textsampling.targets.Categorical`, batched over states.

The target and its exact answers are the reference's (:mod:`textsampling.targets.categorical`); read the
math there. The batch contract: states int64 ``(N,)`` in ``0..K-1`` on the target's device;
``log_prob`` returns ``(N,)`` in the target's dtype (float32 or float64), ``-inf`` outside ``0..K-1``.
"""

from __future__ import annotations

import torch

from textsampling.targets.categorical import Categorical as ReferenceCategorical
from textsampling.torch.targets.base import TorchTarget

__all__ = ["Categorical"]


class Categorical(TorchTarget):
    """Twin of :class:`textsampling.targets.Categorical`: states ``0..K-1`` as int64 tensors.

    Parameters
    ----------
    logits : array_like, shape (K,)
        As for :class:`textsampling.targets.Categorical` (validated there).
    dtype : torch.float32 (default) or torch.float64
    device : torch.device or str, default "cpu"
    """

    _reference_class = ReferenceCategorical

    def __init__(self, logits, dtype=None, device=None):
        if isinstance(logits, torch.Tensor):
            logits = logits.detach().cpu().numpy()
        self._setup(ReferenceCategorical(logits), dtype, device)

    def _build(self) -> None:
        self.num_categories = self.reference.num_categories
        self.logits = self._table(self.reference.logits)  # (K,)
        # The same logits between two -inf: state s reads entry clamp(s, -1, K) + 1, so every state
        # outside 0..K-1 reads a -inf, in one gather (no comparisons, no select).
        minus_infinity = torch.full((1,), -torch.inf, dtype=self.dtype, device=self.device)
        self._padded_logits = torch.cat([minus_infinity, self.logits, minus_infinity])  # (K + 2,)

    def log_prob(self, states: torch.Tensor) -> torch.Tensor:
        """The reference's ``log_prob`` of each state ``(N,)``: ``(N,)``, ``-inf`` outside ``0..K-1``."""
        if not (
            type(states) is torch.Tensor
            and states.dtype is torch.int64
            and states.ndim == 1
            and states.device == self.device
        ):  # the common case skips the checks it would pass (a per-step cost on small batches)
            states = self._check_states(states)
        if states.dtype is torch.int64:
            index = states.clamp(-1, self.num_categories).add_(1)  # (N,) in 0..K+1
            return self._padded_logits.index_select(0, index)  # (N,)
        inside = (states >= 0) & (states < self.num_categories)  # (N,): other integer dtypes
        logits = self.logits[states.clamp(0, self.num_categories - 1)]  # (N,): gathered at safe indices
        return torch.where(inside, logits, -torch.inf)  # (N,)
