r"""Exact tools for finite Markov chains: stationary law, detailed balance, TV distance, mixing.

A kernel on ``S`` enumerated states is a row-stochastic matrix :math:`P`, with
:math:`P_{ij} = T(j \leftarrow i)` the probability of moving from state ``i`` to state ``j``
(``P[i].sum() == 1``). The exact checks of every reference sampler rest on four facts
(part 2 of the series, spaces.ac.cn/archives/8084):

.. math::
    \pi P = \pi \ \text{(stationarity)}, \qquad
    \pi_i P_{ij} = \pi_j P_{ji} \ \text{(detailed balance, which implies stationarity)},

    \mathrm{TV}(p, q) = \tfrac12 \sum_i |p_i - q_i|, \qquad
    d(t) = \mathrm{TV}(\mu P^t, \pi) \ \text{(the mixing curve from an initial law } \mu).

The stationary law is unique when the chain is irreducible (every state reaches every other),
checked here on the graph of positive entries. Reference: Levin, Peres & Wilmer, *Markov Chains and
Mixing Times* (2nd ed., 2017), ch. 1 and 4.
"""

from __future__ import annotations

import numpy as np

from textsampling._validation import check_int

__all__ = [
    "check_transition_matrix",
    "check_distribution",
    "stationary_distribution",
    "stationarity_residual",
    "detailed_balance_residual",
    "tv_distance",
    "mixing_curve",
    "is_irreducible",
]

#: Rows of a transition matrix must sum to 1 within this (float64 rounding of a sum of S terms).
ROW_SUM_TOLERANCE = 1e-9


def check_transition_matrix(transition_matrix, name: str = "transition_matrix") -> np.ndarray:
    """Return ``transition_matrix`` as float64 after checking it is a row-stochastic square matrix.

    Raises
    ------
    ValueError
        If it is not square 2-D and non-empty, holds NaN/inf or negative entries, or a row does not
        sum to 1 (within ``ROW_SUM_TOLERANCE``).
    """
    matrix = np.asarray(transition_matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square 2-D array, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if np.any(matrix < 0):
        raise ValueError(f"{name} must be non-negative, got minimum {matrix.min()}")
    row_sums = matrix.sum(axis=1)
    worst = int(np.argmax(np.abs(row_sums - 1.0)))
    if abs(row_sums[worst] - 1.0) > ROW_SUM_TOLERANCE:
        raise ValueError(f"every row of {name} must sum to 1; row {worst} sums to {row_sums[worst]!r}")
    return matrix


def check_distribution(distribution, size: int | None = None, name: str = "distribution") -> np.ndarray:
    """Return a probability vector as float64: 1-D, finite, non-negative, summing to 1."""
    distribution = np.asarray(distribution, dtype=np.float64)
    if distribution.ndim != 1 or distribution.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {distribution.shape}")
    if size is not None and distribution.shape[0] != size:
        raise ValueError(f"{name} must have {size} entries (one per state), got {distribution.shape[0]}")
    if not np.all(np.isfinite(distribution)) or np.any(distribution < 0):
        raise ValueError(f"{name} must hold finite, non-negative probabilities")
    if abs(distribution.sum() - 1.0) > ROW_SUM_TOLERANCE:
        raise ValueError(f"{name} must sum to 1, got {distribution.sum()!r}")
    return distribution


def is_irreducible(transition_matrix) -> bool:
    """Whether every state can reach every other state through positive-probability moves.

    Breadth-first search from state 0 on the graph ``i -> j`` iff ``P[i, j] > 0``, and on its
    reverse: the chain is irreducible iff both reach every state.
    """
    matrix = check_transition_matrix(transition_matrix)
    adjacency = matrix > 0

    def reaches_all(graph) -> bool:
        seen = np.zeros(graph.shape[0], dtype=bool)
        seen[0] = True
        frontier = seen.copy()
        while frontier.any():
            # States one move away from the frontier that were not seen yet.
            frontier = graph[frontier].any(axis=0) & ~seen
            seen |= frontier
        return bool(seen.all())

    # 0 reaches everyone and everyone reaches 0  <=>  one communicating class.
    return reaches_all(adjacency) and reaches_all(adjacency.T)


def stationary_distribution(transition_matrix) -> np.ndarray:
    r"""The unique :math:`\pi` with :math:`\pi P = \pi`, :math:`\sum_i \pi_i = 1`.

    Solves the stacked linear system :math:`[P^\top - I;\ \mathbf 1^\top]\, \pi = [0;\ 1]` by least
    squares, then checks the answer: it must be non-negative (up to 1e-12, then clipped) and
    stationary to 1e-10.

    Raises
    ------
    ValueError
        If the stationary law is not unique (the eigenvalue 1 of ``P`` is repeated: several closed
        classes) or the solve fails the check.
    """
    matrix = check_transition_matrix(transition_matrix)
    num_states = matrix.shape[0]
    # Uniqueness: exactly one eigenvalue equal to 1 (several closed classes give several).
    eigenvalues = np.linalg.eigvals(matrix)
    num_unit = int(np.sum(np.abs(eigenvalues - 1.0) < 1e-9))
    if num_unit != 1:
        raise ValueError(
            f"transition_matrix has {num_unit} eigenvalues equal to 1: its stationary distribution "
            "is not unique (the chain has several closed classes)"
        )
    system = np.vstack([matrix.T - np.eye(num_states), np.ones((1, num_states))])
    right_hand_side = np.zeros(num_states + 1)
    right_hand_side[-1] = 1.0
    pi, *_ = np.linalg.lstsq(system, right_hand_side, rcond=None)
    if np.any(pi < -1e-12):
        raise ValueError(f"stationary solve gave a negative probability {pi.min()!r}")
    # Tiny negative rounding noise is clipped; renormalise so the sum is 1 again.
    pi = np.clip(pi, 0.0, None)
    pi = pi / pi.sum()
    residual = stationarity_residual(matrix, pi)
    if residual > 1e-10:
        raise ValueError(f"stationary solve failed its check: max |pi P - pi| = {residual!r}")
    return pi


def stationarity_residual(transition_matrix, distribution) -> float:
    r""":math:`\max_j |(\pi P)_j - \pi_j|`: zero iff ``distribution`` is stationary for ``P``."""
    matrix = check_transition_matrix(transition_matrix)
    pi = check_distribution(distribution, matrix.shape[0])
    return float(np.max(np.abs(pi @ matrix - pi)))


def detailed_balance_residual(transition_matrix, distribution) -> float:
    r""":math:`\max_{i,j} |\pi_i P_{ij} - \pi_j P_{ji}|`: zero iff ``P`` is reversible w.r.t. ``pi``."""
    matrix = check_transition_matrix(transition_matrix)
    pi = check_distribution(distribution, matrix.shape[0])
    flow = pi[:, None] * matrix  # flow[i, j] = pi_i P_ij, the probability flux i -> j
    return float(np.max(np.abs(flow - flow.T)))


def tv_distance(p, q) -> float:
    r"""Total-variation distance :math:`\tfrac12 \sum_i |p_i - q_i|` between two probability vectors."""
    p = check_distribution(p, name="p")
    q = check_distribution(q, name="q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    return float(0.5 * np.sum(np.abs(p - q)))


def mixing_curve(transition_matrix, initial, num_steps: int, distribution=None) -> np.ndarray:
    r"""TV distance to the stationary law after ``0, 1, ..., num_steps`` steps.

    Parameters
    ----------
    transition_matrix : array_like, shape (S, S)
        Row-stochastic kernel ``P``.
    initial : int or array_like, shape (S,)
        Initial law :math:`\mu`: a probability vector, or the index of a starting state.
    num_steps : int
        Last step of the curve.
    distribution : array_like, shape (S,), optional
        The law to compare with; defaults to :func:`stationary_distribution` of ``P``.

    Returns
    -------
    numpy.ndarray, shape (num_steps + 1,)
        :math:`d(t) = \mathrm{TV}(\mu P^t, \pi)`.
    """
    matrix = check_transition_matrix(transition_matrix)
    num_states = matrix.shape[0]
    num_steps = check_int(num_steps, "num_steps")
    if isinstance(initial, (int, np.integer)) and not isinstance(initial, (bool, np.bool_)):
        if not 0 <= initial < num_states:
            raise ValueError(f"initial state index must lie in 0..{num_states - 1}, got {initial}")
        law = np.zeros(num_states)
        law[int(initial)] = 1.0
    else:
        law = check_distribution(initial, num_states, name="initial")
    if distribution is None:
        pi = stationary_distribution(matrix)
    else:
        pi = check_distribution(distribution, num_states)
    curve = np.empty(num_steps + 1)
    for step in range(num_steps + 1):
        curve[step] = 0.5 * np.sum(np.abs(law - pi))
        law = law @ matrix  # mu P^(t+1)
    return curve
