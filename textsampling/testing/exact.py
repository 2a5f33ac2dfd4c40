r"""Exact checks of a kernel that exposes its transition matrix: stationarity and detailed balance.

For a row-stochastic :math:`P` (``P[i, j]`` = probability of ``i -> j``) and a law :math:`\pi` over
the same enumerated states:

.. math::
    \text{stationarity: } \max_j \bigl|(\pi P)_j - \pi_j\bigr| \le \text{atol}, \qquad
    \text{detailed balance: } \max_{i, j} \bigl|\pi_i P_{ij} - \pi_j P_{ji}\bigr| \le \text{atol}.

No randomness is involved, so these checks never fail by chance; ``atol`` only absorbs float64
rounding (a few ``1e-16`` per term, summed over at most a few thousand states). Two distances say
how *wrong* a wrong kernel is, in the units of the black-box tests' power:
:func:`one_step_tv` :math:`= \mathrm{TV}(\pi P, \pi)` and :func:`detailed_balance_tv`
:math:`= \mathrm{TV}(J, J^\top)` with :math:`J_{ij} = \pi_i P_{ij}` the law of a pair
:math:`(x_0, x_1)`. Part 2 of the series (spaces.ac.cn/archives/8084).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from textsampling.markov import check_distribution, check_transition_matrix

__all__ = [
    "ExactCheckResult",
    "DEFAULT_ATOL",
    "check_stationary",
    "check_detailed_balance",
    "assert_stationary",
    "assert_detailed_balance",
    "one_step_tv",
    "detailed_balance_tv",
]

#: Default tolerance: float64 rounding of sums over a few thousand probabilities.
DEFAULT_ATOL = 1e-10


@dataclass(frozen=True)
class ExactCheckResult:
    """Outcome of an exact check.

    Attributes
    ----------
    name : str
    residual : float
        The largest absolute violation.
    atol : float
    passed : bool
        ``residual <= atol``.
    where : tuple
        The state index (stationarity) or pair of indices (detailed balance) of the largest violation.
    lhs, rhs : float
        The two sides compared there.
    """

    name: str
    residual: float
    atol: float
    passed: bool
    where: tuple
    lhs: float
    rhs: float

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return (
            f"{self.name}: {verdict}; largest residual {self.residual:.3g} (atol {self.atol:g}) at {self.where}: "
            f"{self.lhs!r} vs {self.rhs!r}"
        )

    def assert_passed(self) -> None:
        """Raise ``AssertionError`` with the report when the check failed."""
        if not self.passed:
            raise AssertionError(str(self))


def _check_atol(atol) -> float:
    try:
        value = float(atol)
    except (TypeError, ValueError):
        raise TypeError(f"atol must be a non-negative number, got {atol!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"atol must be a finite number >= 0, got {value}")
    return value


def _inputs(transition_matrix, distribution):
    matrix = check_transition_matrix(transition_matrix)
    pi = check_distribution(distribution, matrix.shape[0])
    return matrix, pi


def check_stationary(transition_matrix, distribution, atol=DEFAULT_ATOL) -> ExactCheckResult:
    r"""Is :math:`\pi P = \pi` (within ``atol``, entrywise)?

    Parameters
    ----------
    transition_matrix : array_like, shape (S, S)
        Row-stochastic kernel, ``P[i, j]`` the probability of ``i -> j``.
    distribution : array_like, shape (S,)
        :math:`\pi`, e.g. ``target.probabilities()``.
    atol : float

    Returns
    -------
    ExactCheckResult
    """
    atol = _check_atol(atol)
    matrix, pi = _inputs(transition_matrix, distribution)
    pushed = pi @ matrix  # (pi P)_j
    gap = np.abs(pushed - pi)
    worst = int(np.argmax(gap))
    residual = float(gap[worst])
    return ExactCheckResult(
        "stationarity (pi P = pi)", residual, atol, residual <= atol, (worst,), float(pushed[worst]), float(pi[worst])
    )


def check_detailed_balance(transition_matrix, distribution, atol=DEFAULT_ATOL) -> ExactCheckResult:
    r"""Is :math:`\pi_i P_{ij} = \pi_j P_{ji}` for every pair (within ``atol``)?"""
    atol = _check_atol(atol)
    matrix, pi = _inputs(transition_matrix, distribution)
    flow = pi[:, None] * matrix  # flow[i, j] = pi_i P_ij
    gap = np.abs(flow - flow.T)
    i, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
    residual = float(gap[i, j])
    return ExactCheckResult(
        "detailed balance (pi_i P_ij = pi_j P_ji)",
        residual,
        atol,
        residual <= atol,
        (int(i), int(j)),
        float(flow[i, j]),
        float(flow[j, i]),
    )


def assert_stationary(transition_matrix, distribution, atol=DEFAULT_ATOL) -> ExactCheckResult:
    """:func:`check_stationary`, raising ``AssertionError`` with a readable message on failure."""
    result = check_stationary(transition_matrix, distribution, atol)
    result.assert_passed()
    return result


def assert_detailed_balance(transition_matrix, distribution, atol=DEFAULT_ATOL) -> ExactCheckResult:
    """:func:`check_detailed_balance`, raising ``AssertionError`` with a readable message on failure."""
    result = check_detailed_balance(transition_matrix, distribution, atol)
    result.assert_passed()
    return result


def one_step_tv(transition_matrix, distribution) -> float:
    r""":math:`\mathrm{TV}(\pi P, \pi)`: how far one step from exact draws moves the law (0 iff stationary)."""
    matrix, pi = _inputs(transition_matrix, distribution)
    return float(0.5 * np.sum(np.abs(pi @ matrix - pi)))


def detailed_balance_tv(transition_matrix, distribution) -> float:
    r""":math:`\mathrm{TV}(J, J^\top) = \sum_{i<j} |\pi_i P_{ij} - \pi_j P_{ji}|` (0 iff reversible)."""
    matrix, pi = _inputs(transition_matrix, distribution)
    flow = pi[:, None] * matrix
    return float(0.5 * np.sum(np.abs(flow - flow.T)))
