r"""Common machinery of the torch target twins: a NumPy reference target plus its tables on a device.

The batch contract of every twin: states are a tensor ``(N,) + state_shape`` on the target's device
(int64 for discrete targets; the target's dtype for continuous ones), ``log_prob`` returns ``(N,)`` in
the target's dtype, float32 (default) or float64, with ``-inf`` outside the support. The math of each
target is its reference's (:mod:`textsampling.targets`); read it there.

A twin is built from the *same* arguments as its reference (or from a reference target with
:meth:`TorchTarget.from_reference`); the reference validates them and computes every table
(normalised logs, ``logsumexp`` shifts) once in NumPy float64, and the twin only moves those tables to
its device and dtype. So the numbers a twin gathers are the reference's numbers, and its
``log_prob`` of a batch of states ``(B,) + state_shape`` adds them in the reference's order: in
float64 the two agree bit for bit (a sum of a few table entries) or to an ulp (where a ``logsumexp``
or an ``exp`` of the two libraries enters).

Exact quantities (normaliser, cells, exact draws) stay NumPy: :meth:`sample_exact`, :meth:`cell_index`
and :meth:`cell_probabilities` delegate to the reference, so a twin can be handed to
:mod:`textsampling.testing` as it is.
"""

from __future__ import annotations

import numpy as np
import torch

from textsampling.torch._validation import check_float_dtype, check_tensor, resolve_device, same_device

__all__ = ["TorchTarget", "normalise_rows"]


def normalise_rows(log_weights: torch.Tensor) -> torch.Tensor:
    """Subtract each row's logsumexp; an all ``-inf`` row stays ``-inf`` (no NaN), as the reference does."""
    log_total = torch.logsumexp(log_weights, dim=-1, keepdim=True)  # (N, 1)
    finite = torch.isfinite(log_total)  # (N, 1)
    shift = torch.where(finite, log_total, 0.0)  # (N, 1): 0 for an all -inf row, so no -inf - -inf
    return torch.where(finite, log_weights - shift, -torch.inf)  # (N, V)


class TorchTarget:
    """Base of the twins: holds :attr:`reference`, :attr:`dtype`, :attr:`device`.

    Subclasses define ``_reference_class`` and ``_build()`` (move the reference's tables).
    """

    _reference_class: type = object
    state_shape: tuple = ()

    def _setup(self, reference, dtype, device) -> None:
        self.reference = reference
        self.dtype = check_float_dtype(dtype)
        self.device = resolve_device(device)
        self.state_shape = tuple(getattr(reference, "state_shape", ()))
        self._build()

    def _build(self) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    @classmethod
    def from_reference(cls, reference, dtype=None, device=None):
        """The twin of an existing NumPy target (same tables, moved to ``device`` in ``dtype``)."""
        if not isinstance(reference, cls._reference_class):
            raise TypeError(f"reference must be a {cls._reference_class.__name__}, got {type(reference).__name__}")
        twin = cls.__new__(cls)
        twin._setup(reference, dtype, device)
        return twin

    def to(self, dtype=None, device=None):
        """This target in another dtype and/or on another device."""
        return type(self).from_reference(self.reference, dtype or self.dtype, device or self.device)

    # ----------------------------------------------------------------- helpers
    def _table(self, values, dtype=None) -> torch.Tensor:
        """A reference table (NumPy float64) as a tensor in this twin's dtype on its device, same shape."""
        return torch.as_tensor(np.asarray(values), dtype=dtype or self.dtype, device=self.device)

    def _check_states(self, states, name: str = "states", floating: bool = False) -> torch.Tensor:
        states = check_tensor(states, name, integer=None if floating else True)
        if not same_device(states.device, self.device):
            raise ValueError(f"{name} is on {states.device} but the target lives on {self.device}; use .to()")
        if floating and states.dtype != self.dtype:
            raise TypeError(f"{name} must have the target's dtype {self.dtype}, got {states.dtype}")
        if states.ndim != len(self.state_shape) + 1 or tuple(states.shape[1:]) != self.state_shape:
            raise ValueError(f"{name} must have shape (N,) + {self.state_shape}, got {tuple(states.shape)}")
        return states

    # ----------------------------------------------------------------- exact answers, from the reference
    def sample_exact(self, rng, num_samples: int) -> np.ndarray:
        """Exact NumPy draws of the reference (for the black-box checks)."""
        return self.reference.sample_exact(rng, num_samples)

    def cell_index(self, states) -> np.ndarray:
        """Goodness-of-fit cells of NumPy (or CPU tensor) states, from the reference."""
        if isinstance(states, torch.Tensor):
            states = states.cpu().numpy()
        return self.reference.cell_index(states)

    def cell_probabilities(self) -> np.ndarray:
        """Exact probability of each goodness-of-fit cell, from the reference."""
        return self.reference.cell_probabilities()

    def __getattr__(self, name):
        # Exact, enumeration-based quantities (states, probabilities, log_normalizer, ...) are NumPy.
        if name in ("reference", "dtype", "device"):
            raise AttributeError(name)
        return getattr(self.reference, name)

    def __repr__(self) -> str:
        return f"torch twin of {self.reference!r} ({self.dtype}, {self.device})"
