r"""Torch twin of :mod:`textsampling.reference.sentence_annealing`: batched CGMH steps on :math:`\rho^{1/T}`.

Each step is :func:`textsampling.torch.cgmh.step` at the step's temperature (Kirkpatrick et al. 1983;
parts 2 and 4 of the series); :func:`update_best` keeps, per chain, the best state seen so far.
"""

from __future__ import annotations

import torch

from textsampling.reference.cgmh import CGMHConfig
from textsampling.reference.sentence_annealing import at_temperature
from textsampling.torch import cgmh
from textsampling.torch.cgmh import NUM_UNIFORMS, CGMHState

__all__ = ["NUM_UNIFORMS", "at_temperature", "step", "update_best"]


def step(uniforms: torch.Tensor, state: CGMHState, config: CGMHConfig, temperature: float):
    """One CGMH step for every chain at ``temperature``; ``state.log_prob`` stays untempered."""
    return cgmh.step(uniforms, state, at_temperature(config, temperature))


def update_best(best: CGMHState, state: CGMHState) -> CGMHState:
    """Per chain, ``state`` where its :math:`\\log\\rho` is strictly higher than ``best``'s, else ``best``."""
    better = state.log_prob > best.log_prob  # (B,)
    return CGMHState(
        torch.where(better[:, None], state.x, best.x),
        torch.where(better[:, None], state.protected, best.protected),
        torch.where(better, state.log_prob, best.log_prob),
    )
