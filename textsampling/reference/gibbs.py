r"""Gibbs sampling of token sequences from their exact masked conditionals (random and systematic scan).

For a sequence :math:`x = (x_0, \dots, x_{L-1})` over ``V`` tokens, a site update at position ``i``
redraws :math:`x_i \sim \pi(x_i \mid x_{-i})`. Its kernel

.. math::
    K_i(y \leftarrow x) = \pi(y_i \mid x_{-i})\ \text{if } y_{-i} = x_{-i}, \text{ else } 0

satisfies detailed balance with :math:`\pi` (it is MH with acceptance 1). Two ways to choose sites:

* **random scan** — :math:`i` uniform: :math:`P = \frac1L \sum_i K_i`, reversible;
* **systematic scan** — a sweep :math:`i = 0, 1, \dots, L-1`: :math:`P = K_0 K_1 \cdots K_{L-1}`,
  stationary but in general *not* reversible (its time reversal sweeps the other way).

States are fixed-length sequences (no PAD). The conditional is a function
``conditional_log_probs(states (N, L), position) -> (N, V)`` — for the exact targets,
``target.conditional_log_probs`` (the "oracle masked LM"); for BERT, its MLM head (Wang & Cho 2019,
arXiv 1902.04094). Geman & Geman (1984), IEEE PAMI 6:721; part 2 of the series
(spaces.ac.cn/archives/8084). :func:`transition_matrix` calls the *same* conditional function as
:func:`step`, so a wrong conditional shows in the exact checks.

Uniforms: a random-scan step uses ``uniforms[0]`` for the position (``floor(u L)``) and
``uniforms[1]`` for the token (inverse CDF of the conditional); a systematic sweep uses
``uniforms[i]`` for the token at position ``i``. :func:`step` with ``scan="systematic"`` is one sweep;
:func:`sample` is :func:`init` plus the one chain runner, :func:`textsampling.reference.chain.run`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from textsampling._validation import check_int, check_uniforms
from textsampling.randomness import categorical_from_uniforms, integer_from_uniform
from textsampling.reference import chain
from textsampling.reference.chain import Trace

__all__ = [
    "GibbsState",
    "GibbsInfo",
    "GibbsTrace",
    "SCANS",
    "init",
    "num_uniforms",
    "conditional_row",
    "update_position",
    "site_matrix",
    "step",
    "sweep",
    "sample",
    "transition_matrix",
]

#: The two site-selection orders.
SCANS = ("random", "systematic")


class GibbsState(NamedTuple):
    """The current sequence, shape (L,)."""

    x: np.ndarray


class GibbsInfo(NamedTuple):
    """Position(s) updated and the token(s) written there: scalars for a random-scan step, shape (L,)
    (positions ``0..L-1`` and the new sequence) for a sweep."""

    position: np.ndarray
    token: np.ndarray


#: A run: :class:`textsampling.reference.chain.Trace` of :class:`GibbsState` and :class:`GibbsInfo`;
#: ``states.x`` has shape (num_steps, L), row ``t`` the sequence after step (or sweep) ``t``.
GibbsTrace = Trace


def check_scan(scan):
    """``scan`` itself when it is one of :data:`SCANS`, else a ``ValueError`` naming them."""
    if scan not in SCANS:
        raise ValueError(f"scan must be one of {SCANS}, got {scan!r}")
    return scan


def _check_sequence(x, name="x") -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iu" or x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D integer sequence, got dtype {x.dtype}, shape {x.shape}")
    return x.astype(np.int64)


def init(x0, conditional_log_probs) -> GibbsState:
    """The state at the sequence ``x0`` (a non-empty 1-D integer array); nothing is evaluated.

    ``conditional_log_probs`` is not needed to start; it is accepted so that ``init`` takes the same
    target as :func:`step` and :func:`sample`.
    """
    return GibbsState(_check_sequence(x0, "x0"))


def num_uniforms(scan: str = "random", length: int | None = None) -> int:
    """2 for a random-scan step (position, token); ``length`` for a systematic sweep."""
    if check_scan(scan) == "random":
        return 2
    return check_int(length, "length", minimum=1)


def conditional_row(conditional_log_probs, x, position: int) -> np.ndarray:
    """:math:`\\log \\pi(x_i = v \\mid x_{-i})` for every ``v``, shape (V,), checked."""
    if not callable(conditional_log_probs):
        raise TypeError(f"conditional_log_probs must be callable, got {type(conditional_log_probs).__name__}")
    row = np.asarray(conditional_log_probs(np.asarray(x)[None], position), dtype=np.float64)
    if row.ndim != 2 or row.shape[0] != 1:
        raise ValueError(f"conditional_log_probs must return shape (N, V) for N states, got {row.shape}")
    row = row[0]
    if np.any(np.isnan(row)) or np.any(row == np.inf) or np.all(row == -np.inf):
        raise ValueError(
            f"conditional_log_probs at position {position} must be finite or -inf, not all -inf, and "
            f"never NaN/+inf; got {row.tolist()}"
        )
    return row


def update_position(uniform, x, position: int, conditional_log_probs) -> np.ndarray:
    """Redraw ``x[position]`` from its conditional by inverse CDF of ``uniform``; returns a new array."""
    row = conditional_row(conditional_log_probs, x, position)
    new_x = np.array(x, dtype=np.int64)
    new_x[position] = categorical_from_uniforms(np.atleast_1d(uniform), row)[0]
    return new_x


def step(uniforms, state: GibbsState, conditional_log_probs, *, scan: str = "random"):
    """One random-scan Gibbs step (a uniform position, then its token), or one sweep (``scan="systematic"``).

    Parameters
    ----------
    uniforms : array_like, shape (num_uniforms(scan, L),)
        Random scan: ``uniforms[0]`` picks the position, ``uniforms[1]`` the token. Systematic: see
        :func:`sweep`.
    state : GibbsState
    conditional_log_probs : callable, ``(states (N, L), position) -> (N, V)``
    scan : {"random", "systematic"}

    Returns
    -------
    (GibbsState, GibbsInfo)
    """
    if check_scan(scan) == "systematic":
        return sweep(uniforms, state, conditional_log_probs)
    uniforms = check_uniforms(uniforms, 2)
    x = _check_sequence(state.x, "state.x")
    position = int(integer_from_uniform(uniforms[0], x.shape[0]))
    new_x = update_position(uniforms[1], x, position, conditional_log_probs)
    return GibbsState(new_x), GibbsInfo(np.int64(position), new_x[position])


def sweep(uniforms, state: GibbsState, conditional_log_probs):
    """One systematic-scan sweep: positions ``0, 1, ..., L-1`` in turn, ``uniforms[i]`` for position ``i``."""
    x = _check_sequence(state.x, "state.x")
    uniforms = check_uniforms(uniforms, x.shape[0])
    for position in range(x.shape[0]):
        # Each update conditions on the tokens already rewritten earlier in this sweep.
        x = update_position(uniforms[position], x, position, conditional_log_probs)
    return GibbsState(x), GibbsInfo(np.arange(x.shape[0]), x.copy())


def sample(rng, x0, conditional_log_probs, num_steps: int, *, first_step: int = 0, scan: str = "random") -> GibbsTrace:
    """Run ``num_steps`` random-scan steps, or ``num_steps`` systematic sweeps, keeping every state.

    Step (or sweep) ``t`` uses the uniforms of step ``first_step + t``, ``num_uniforms(scan, L)`` of them.

    Returns
    -------
    GibbsTrace
        ``states.x`` has shape (num_steps, L); ``infos.position`` the position updated at each
        random-scan step, shape (num_steps,) (for sweeps (num_steps, L), every position in turn).
    """
    check_scan(scan)
    state = init(x0, conditional_log_probs)

    def step_fn(uniforms, state, t):
        return step(uniforms, state, conditional_log_probs, scan=scan)

    width = num_uniforms(scan, state.x.shape[0])
    return chain.run(rng, state, step_fn, width, num_steps, first_step=first_step)


def site_matrix(target, position: int, conditional_log_probs=None) -> np.ndarray:
    """Exact kernel :math:`K_i` of one site update on the enumerated states of ``target``."""
    if conditional_log_probs is None:
        conditional_log_probs = target.conditional_log_probs
    states = target.states
    num_states, length = states.shape
    matrix = np.zeros((num_states, num_states))
    for a in range(num_states):
        row = conditional_row(conditional_log_probs, states[a], position)
        # Normalise exactly as the inverse-CDF rule does (softmax of the row).
        probabilities = np.exp(row - np.max(row))
        probabilities /= probabilities.sum()
        for token in np.flatnonzero(probabilities > 0):
            candidate = states[a].copy()
            candidate[position] = token
            b = target.state_index(candidate)[0]
            matrix[a, b] += probabilities[token]
    return matrix


def transition_matrix(target, scan: str = "random", conditional_log_probs=None) -> np.ndarray:
    r"""Exact Gibbs kernel on an enumerable sequence ``target`` (rows/columns in enumeration order).

    Random scan: :math:`\frac1L \sum_i K_i`; systematic scan (one sweep): :math:`K_0 K_1 \cdots K_{L-1}`.
    ``conditional_log_probs`` defaults to ``target.conditional_log_probs``; pass another one to see
    the kernel it induces. Every token of positive conditional probability must give an enumerated
    state.
    """
    check_scan(scan)
    length = target.states.shape[1]
    site_matrices = [site_matrix(target, i, conditional_log_probs) for i in range(length)]
    if scan == "random":
        return sum(site_matrices) / length
    matrix = np.eye(target.num_states)
    for site in site_matrices:
        matrix = matrix @ site  # apply K_0 first, then K_1, ...
    return matrix
