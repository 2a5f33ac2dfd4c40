r"""One record for a sampler under test — usually a deliberately wrong one: :class:`SamplerCase`.

Both collections of wrong samplers use it: :mod:`textsampling.testing.faulty` (wrong kernels built on
a target the caller gives, for the black-box harness) and :mod:`textsampling.gallery` (wrong and correct
step functions of each ``textsampling check`` kind, on the named built-in targets). Each record carries
its step function, a one-line description, and — where it can be written down — the exact transition
matrix of the *same* code, so a test can compute how wrong the sampler is (:math:`\mathrm{TV}(\pi P,
\pi)`) and choose a sample size whose power is stated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from textsampling.targets.named import make_target

__all__ = ["DETECTIONS", "SamplerCase"]

#: How a wrong sampler is caught: one step from exact draws, or the final states of long runs.
DETECTIONS = ("one_step_invariance", "long_run")


@dataclass(frozen=True)
class SamplerCase:
    r"""A sampler under test: its name, its bug (or what it is) in one line, its step and its exact kernel.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"mh-no-hastings"`` or ``"mh_without_hastings_correction"``.
    kind : str or None
        The :data:`textsampling.testing.conformance.KINDS` entry whose signature :attr:`step` has
        (``step(rng, x, *context)``), or ``None`` for the harness's ``step(rng, x)`` on :attr:`target`.
    target : DiscreteTarget or str
        The target the sampler claims to sample, or the name of a built-in target
        (:data:`textsampling.targets.named.TARGETS`) it is checked on.
    description : str
        One line: what is wrong (or, for a correct sampler, what it is).
    step : callable
        The step function (see :attr:`kind`).
    transition_matrix : numpy.ndarray, callable or None
        The exact kernel of :attr:`step` on the enumerated states of the target: the ``(S, S)`` array,
        or ``transition_matrix(target, **options) -> (S, S)`` built on demand (the gallery's, from the
        same code as the step); ``None`` where it is not written down. :meth:`kernel` gives the array
        either way.
    options : dict
        Extra keyword arguments of the check and of a callable :attr:`transition_matrix` (e.g.
        ``temperature`` for annealing).
    detected_by : str or None
        One of :data:`DETECTIONS`: ``"one_step_invariance"`` (it moves :math:`\pi` in one step) or
        ``"long_run"`` (it keeps :math:`\pi` invariant but does not converge to it); ``None`` where
        not stated (a correct sampler, or a gallery case whose exact power says it).
    """

    name: str
    kind: str | None
    target: object
    description: str
    step: Callable
    transition_matrix: np.ndarray | Callable | None = None
    options: dict = field(default_factory=dict)
    detected_by: str | None = None

    def __post_init__(self):
        if self.detected_by is not None and self.detected_by not in DETECTIONS:
            raise ValueError(f"detected_by must be one of {DETECTIONS} or None, got {self.detected_by!r}")

    @property
    def step_fn(self) -> Callable:
        """:attr:`step` under the name the harness's functions give their argument
        (``one_step_invariance_test(step_fn, ...)``)."""
        return self.step

    def kernel(self) -> np.ndarray:
        """The exact ``(S, S)`` transition matrix of :attr:`step` on the states of :attr:`target`.

        Raises
        ------
        ValueError
            If the case has no exact transition matrix.
        """
        if self.transition_matrix is None:
            raise ValueError(f"sampler case {self.name!r} has no exact transition matrix")
        if not callable(self.transition_matrix):
            return np.asarray(self.transition_matrix)
        target = self.target
        if isinstance(target, str):
            target = make_target(target)
        return self.transition_matrix(target, **self.options)

    def __str__(self) -> str:
        return f"{self.name}: {self.description}"
