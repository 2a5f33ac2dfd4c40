"""Exact, enumerable targets in log space (see :mod:`textsampling.targets.base`)."""

from textsampling.targets.base import PAD, DiscreteTarget
from textsampling.targets.categorical import Categorical

__all__ = ["PAD", "DiscreteTarget", "Categorical"]
