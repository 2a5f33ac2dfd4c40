r"""Enumerable targets: an unnormalised log-density over a finite state space, and everything exact.

A target is written down as :math:`\log \rho(x)`, known up to the constant :math:`\log Z`. When the
space is small enough to list, every quantity a sampler estimates is known exactly:

.. math::
    Z = \sum_x \rho(x), \qquad \pi(x) = \rho(x) / Z, \qquad
    \mathbb{E}_\pi[f] = \sum_x \pi(x) f(x), \qquad x^\star = \arg\max_x \rho(x).

:class:`DiscreteTarget` derives all of these from two methods a subclass supplies,
:meth:`~DiscreteTarget.log_prob` (vectorised over a leading axis) and
:meth:`~DiscreteTarget.enumerate_states`. States are integer arrays of shape ``state_shape``:
``()`` for a categorical variable, ``(L,)`` for a token sequence (padded with ``PAD = -1`` where
lengths vary). Everything is computed in log space with ``logsumexp``; a state whose log-density is
``-inf`` has probability exactly zero.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from scipy.special import logsumexp

__all__ = ["DiscreteTarget", "PAD", "sequence_length", "sequence_lengths"]

#: Padding value for token sequences of variable length (never a valid token).
PAD = -1


# The length rule of a PAD-padded sequence, beside PAD itself: the targets use it, and
# textsampling.lm.tokens (a layer above) re-exports it with the other token rules.
def sequence_length(x) -> int:
    """Number of entries of the 1-D sequence ``x`` before the first PAD (its width when none is PAD)."""
    is_pad = np.asarray(x) == PAD
    return int(np.argmax(is_pad)) if is_pad.any() else int(is_pad.shape[-1])


def sequence_lengths(x) -> np.ndarray:
    """Entries before the first PAD of each row of ``x`` ``(N, L)``: int64 ``(N,)`` (0 when ``L == 0``)."""
    is_pad = np.asarray(x) == PAD  # (N, L)
    if is_pad.shape[1] == 0:  # np.argmax refuses an empty row: a width-0 row has length 0
        return np.zeros(is_pad.shape[0], dtype=np.int64)
    return np.where(is_pad.any(axis=1), np.argmax(is_pad, axis=1), is_pad.shape[1]).astype(np.int64)


class DiscreteTarget:
    """Base class of targets whose support can be listed.

    Subclasses set :attr:`state_shape` and implement :meth:`log_prob` and
    :meth:`enumerate_states`; sequence targets also implement :meth:`conditional_log_probs`.
    """

    #: Shape of one state: ``()`` for a scalar category, ``(L,)`` for a sequence.
    state_shape: tuple = ()

    # ----------------------------------------------------------------- to implement
    def log_prob(self, states) -> np.ndarray:
        """Unnormalised log-density :math:`\\log \\rho(x)` of each state.

        Parameters
        ----------
        states : array_like of int, shape ``(N,) + state_shape``

        Returns
        -------
        numpy.ndarray of float64, shape ``(N,)``; ``-inf`` outside the support.
        """
        raise NotImplementedError

    def enumerate_states(self) -> np.ndarray:
        """Every state of the space, shape ``(S,) + state_shape``, in a fixed order."""
        raise NotImplementedError

    # ----------------------------------------------------------------- derived, exact
    def _as_states(self, states, name: str = "states") -> np.ndarray:
        states = np.asarray(states)
        if states.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers, got dtype {states.dtype}")
        expected = len(self.state_shape) + 1
        if states.ndim == expected - 1:
            states = states[None]
        if states.ndim != expected or states.shape[1:] != tuple(self.state_shape):
            raise ValueError(
                f"{name} must have shape (N,) + {tuple(self.state_shape)}, got {states.shape}"
            )
        return states.astype(np.int64)

    @cached_property
    def _enumeration(self):
        states = np.asarray(self.enumerate_states(), dtype=np.int64)
        if states.shape[0] == 0:
            raise ValueError("the target's support is empty: enumerate_states() returned no state")
        log_rho = np.asarray(self.log_prob(states), dtype=np.float64)
        if np.any(np.isnan(log_rho)):
            raise ValueError("log_prob returned NaN for some enumerated state")
        if not np.any(np.isfinite(log_rho)):
            raise ValueError("every state has log_prob = -inf: the target has empty support")
        index = {self._key(state): i for i, state in enumerate(states)}
        return states, log_rho, index

    @staticmethod
    def _key(state) -> bytes:
        return np.asarray(state, dtype=np.int64).tobytes()

    @property
    def states(self) -> np.ndarray:
        """All states, in enumeration order (cached)."""
        return self._enumeration[0]

    @property
    def num_states(self) -> int:
        return int(self._enumeration[0].shape[0])

    def log_prob_all(self) -> np.ndarray:
        """Unnormalised log-density of every enumerated state, shape ``(S,)``."""
        return self._enumeration[1].copy()

    def log_normalizer(self) -> float:
        """:math:`\\log Z = \\log \\sum_x \\rho(x)`, exact."""
        return float(logsumexp(self._enumeration[1]))

    def log_probabilities(self) -> np.ndarray:
        """Normalised :math:`\\log \\pi(x)` of every enumerated state, shape ``(S,)``."""
        return self._enumeration[1] - self.log_normalizer()

    def probabilities(self) -> np.ndarray:
        """Normalised :math:`\\pi(x)` of every enumerated state, shape ``(S,)``; sums to 1."""
        return np.exp(self.log_probabilities())

    def state_index(self, states) -> np.ndarray:
        """Position of each state in :meth:`enumerate_states`, shape ``(N,)``.

        Raises
        ------
        ValueError
            If a state is not part of the space.
        """
        states = self._as_states(states)
        index = self._enumeration[2]
        out = np.empty(states.shape[0], dtype=np.int64)
        for n, state in enumerate(states):
            try:
                out[n] = index[self._key(state)]
            except KeyError:
                raise ValueError(f"state {state.tolist()} is not in the target's space") from None
        return out

    def sample_exact(self, rng, num_samples: int) -> np.ndarray:
        """Independent exact draws from :math:`\\pi`, by inverse-CDF over the enumeration.

        Parameters
        ----------
        rng : numpy.random.Generator
        num_samples : int

        Returns
        -------
        numpy.ndarray, shape ``(num_samples,) + state_shape``
        """
        from textsampling.randomness import categorical_from_uniforms

        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
            raise ValueError(f"num_samples must be a non-negative int, got {num_samples!r}")
        uniforms = rng.random(int(num_samples))
        indices = categorical_from_uniforms(uniforms, self.log_probabilities())
        return self.states[indices].copy()

    def argmax(self) -> np.ndarray:
        """The most probable state (the first one in enumeration order on ties)."""
        return self.states[int(np.argmax(self._enumeration[1]))].copy()

    def expectation(self, function) -> float:
        """Exact :math:`\\mathbb{E}_\\pi[f(x)]` for ``function`` mapping ``(S,)+state_shape -> (S,)``."""
        values = np.asarray(function(self.states), dtype=np.float64)
        if values.shape != (self.num_states,):
            raise ValueError(
                f"function must return one value per state, shape ({self.num_states},), "
                f"got {values.shape}"
            )
        probabilities = self.probabilities()
        support = probabilities > 0
        return float(np.sum(probabilities[support] * values[support]))

    # For the black-box tests: the cells a sample is binned into and their exact probabilities.
    # For a discrete target a cell is a state.
    def cell_index(self, states) -> np.ndarray:
        """Cell of each state for goodness-of-fit tests (here: its enumeration index)."""
        return self.state_index(states)

    def cell_probabilities(self) -> np.ndarray:
        """Exact probability of each cell (here: of each state)."""
        return self.probabilities()
