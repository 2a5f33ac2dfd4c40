r"""Black-box statistical checks of a sampler: they need only a step function and a target.

A *step function* moves states one Markov step:

* ``step_fn(rng, state) -> new_state`` for one state (the harness loops over the samples), or
* with ``batched=True``, ``step_fn(rng, states (N, ...)) -> states (N, ...)``.

``rng`` is the :class:`numpy.random.Generator` the harness was given; the step draws all its
randomness from it. A *target* is any object with ``sample_exact(rng, n)``, ``cell_index(states)``
and ``cell_probabilities()`` — every :class:`~textsampling.targets.base.DiscreteTarget` (a cell is a
state), or a continuous target that defines its own cells.

Three checks, each with a stated false-fail rate (default ``1e-4``) and the power it has against a
stated TV distance (derivations in :mod:`textsampling.testing.statistics`):

* :func:`one_step_invariance_test` — draw :math:`x_0 \sim \pi` exactly, set :math:`x_1 = \mathrm{step}(x_0)`:
  if the kernel leaves :math:`\pi` invariant, the :math:`x_1` are again independent draws from
  :math:`\pi` (:math:`\pi P = \pi`), so a chi-square test of their cells against
  ``cell_probabilities()`` has exactly its nominal level; a kernel with
  :math:`\mathrm{TV}(\pi P, \pi) = d` is caught with the stated power. One step from exact draws
  suffices: no burn-in, no autocorrelation.
* :func:`reversibility_test` — under detailed balance :math:`\pi_a P_{ab} = \pi_b P_{ba}` the pair
  :math:`(x_0, x_1)` has the same law as :math:`(x_1, x_0)`; Bowker's symmetry test on the pairs of cells.
  (A stationary but non-reversible kernel, such as systematic-scan Gibbs, fails it on purpose.)
* :func:`goodness_of_fit_test` — for independent samples: an exact sampler's output, or the final
  states of independent chains (:func:`run_independent_chains`); catches kernels that keep
  :math:`\pi` invariant but do not converge to it (e.g. a scan that never updates one position).

SERIES.md, "How each algorithm is verified exactly"; the design follows the goodness-of-fit helpers
of Pyro (pyro/distributions/testing/gof.py) and the "test of the test" of emcee.
"""

from __future__ import annotations

import numpy as np

from textsampling._validation import check_int
from textsampling.testing.statistics import (
    DEFAULT_FALSE_FAIL_RATE,
    DEFAULT_TV_ALTERNATIVE,
    StatisticalTestResult,
    chi_square_counts_test,
    symmetry_test,
)

__all__ = [
    "one_step_invariance_test",
    "reversibility_test",
    "goodness_of_fit_test",
    "run_independent_chains",
    "transition_law_test",
    "apply_step",
]


def _check_target(target) -> None:
    missing = [a for a in ("sample_exact", "cell_index", "cell_probabilities") if not hasattr(target, a)]
    if missing:
        raise TypeError(
            "target must have sample_exact(rng, n), cell_index(states) and cell_probabilities() "
            f"(e.g. a DiscreteTarget); {type(target).__name__} lacks {', '.join(missing)}"
        )


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), got {type(rng).__name__}"
        )
    return rng


def apply_step(step_fn, rng, states, batched: bool = False) -> np.ndarray:
    """Apply one step to every state: ``step_fn(rng, states)`` if batched, else one call per state.

    Raises
    ------
    ValueError
        If the step function changes the number of states or the shape of a state.
    """
    if not callable(step_fn):
        raise TypeError(f"step_fn must be callable as step_fn(rng, state), got {type(step_fn).__name__}")
    states = np.asarray(states)
    if batched:
        new_states = np.asarray(step_fn(rng, states))
    else:
        new_states = np.stack([np.asarray(step_fn(rng, state)) for state in states]) if len(states) else states
    if new_states.shape != states.shape:
        raise ValueError(
            f"step_fn must return states of the shape it was given, {states.shape} "
            f"({'batched' if batched else 'one state per call'}), got {new_states.shape}"
        )
    return new_states


def _cells(target, states) -> np.ndarray:
    cells = np.asarray(target.cell_index(states)).reshape(-1)
    if cells.shape[0] != len(states):
        raise ValueError(f"target.cell_index must return one cell per state, got shape {cells.shape}")
    return cells


def goodness_of_fit_test(
    samples,
    target,
    false_fail_rate=DEFAULT_FALSE_FAIL_RATE,
    tv_alternative=DEFAULT_TV_ALTERNATIVE,
    min_expected: float = 20.0,
    name: str = "goodness of fit",
) -> StatisticalTestResult:
    r"""Chi-square test that *independent* ``samples`` follow the target.

    Samples are binned by ``target.cell_index`` and compared with ``target.cell_probabilities()``;
    cells of expected count below ``min_expected`` are pooled; a sample in a cell of probability 0
    fails at once. Do not feed it consecutive states of one chain: they are correlated, and the
    stated false-fail rate would not hold.

    Parameters
    ----------
    samples : array_like, shape (N,) + state_shape
    target : DiscreteTarget or any object with ``cell_index`` and ``cell_probabilities``
    false_fail_rate : float
        Probability that exact samples fail (default 1e-4).
    tv_alternative : float
        The TV distance the reported power refers to: the power is a lower bound on the probability
        of failing samples whose (pooled) cell law is at that distance from the target's.
    min_expected : float
        Pooling threshold on expected counts.

    Returns
    -------
    StatisticalTestResult
    """
    if not hasattr(target, "cell_index") or not hasattr(target, "cell_probabilities"):
        raise TypeError(
            f"target must have cell_index(states) and cell_probabilities(), got {type(target).__name__}"
        )
    samples = np.asarray(samples)
    if samples.ndim == 0 or samples.shape[0] == 0:
        raise ValueError("samples must be a non-empty array of states, shape (N,) + state_shape")
    return chi_square_counts_test(
        _cells(target, samples),
        np.asarray(target.cell_probabilities(), dtype=np.float64),
        false_fail_rate,
        tv_alternative,
        min_expected,
        name=name,
    )


def _exact_pairs(step_fn, target, rng, num_samples, batched):
    """Pairs ``(x0, x1)``: ``x0`` drawn exactly from the target, ``x1`` one step of ``step_fn`` from it."""
    _check_target(target)
    rng = _check_rng(rng)
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    initial = target.sample_exact(rng, num_samples)
    return initial, apply_step(step_fn, rng, initial, batched)


def one_step_invariance_test(
    step_fn,
    target,
    rng,
    num_samples: int,
    false_fail_rate=DEFAULT_FALSE_FAIL_RATE,
    tv_alternative=DEFAULT_TV_ALTERNATIVE,
    batched: bool = False,
    min_expected: float = 20.0,
) -> StatisticalTestResult:
    r"""Does one step of the kernel keep exact draws from :math:`\pi` distributed as :math:`\pi`?

    Draws ``num_samples`` states :math:`x_0 \sim \pi` with ``target.sample_exact``, applies one step
    to each, and runs :func:`goodness_of_fit_test` on the results. Under :math:`\pi P = \pi` the
    stepped states are independent exact draws, so the false-fail rate is the stated one (up to the
    chi-square approximation); a kernel with :math:`\mathrm{TV}(\pi P, \pi) = d` on the pooled cells
    fails with probability at least ``result.power_against_tv(d)``.

    Parameters
    ----------
    step_fn : callable
        ``step_fn(rng, state) -> state``, or batched ``step_fn(rng, states) -> states``.
    target : object with ``sample_exact``, ``cell_index``, ``cell_probabilities``
    rng : numpy.random.Generator
        Used for the exact draws and passed to every step.
    num_samples : int
        ``N``; :func:`~textsampling.testing.statistics.required_samples` says how many give a power.
    false_fail_rate, tv_alternative, min_expected :
        As in :func:`goodness_of_fit_test`.
    batched : bool
        Whether ``step_fn`` takes a batch of states.

    Returns
    -------
    StatisticalTestResult
    """
    initial, stepped = _exact_pairs(step_fn, target, rng, num_samples, batched)
    return goodness_of_fit_test(
        stepped, target, false_fail_rate, tv_alternative, min_expected, name="one-step invariance"
    )


def reversibility_test(
    step_fn,
    target,
    rng,
    num_samples: int,
    false_fail_rate=DEFAULT_FALSE_FAIL_RATE,
    tv_alternative=DEFAULT_TV_ALTERNATIVE,
    batched: bool = False,
    min_pair_count: int = 10,
) -> StatisticalTestResult:
    r"""Is the kernel reversible with respect to :math:`\pi` (detailed balance), seen through pairs?

    Draws :math:`x_0 \sim \pi` exactly and :math:`x_1 = \mathrm{step}(x_0)`. Detailed balance makes
    the pair exchangeable, :math:`P(x_0 \in a, x_1 \in b) = P(x_0 \in b, x_1 \in a)` for all cells, so
    conditional on the :math:`n = n_{ab} + n_{ba}` moves between cells ``a`` and ``b``,
    :math:`n_{ab} \sim \mathrm{Binomial}(n, 1/2)`, independently over pairs; Bowker's statistic
    combines them (:func:`~textsampling.testing.statistics.symmetry_test`). Pairs that stay in
    their cell carry no information and are ignored.

    Parameters
    ----------
    step_fn, target, rng, num_samples, false_fail_rate, batched :
        As in :func:`one_step_invariance_test`.
    tv_alternative : float
        The power refers to kernels whose pair law :math:`J` is at distance
        :math:`\mathrm{TV}(J, J^\top)` from its transpose (see
        :func:`textsampling.testing.exact.detailed_balance_tv`).
    min_pair_count : int
        Pairs of cells seen fewer times are pooled into one binomial term.

    Returns
    -------
    StatisticalTestResult
    """
    initial, stepped = _exact_pairs(step_fn, target, rng, num_samples, batched)
    return symmetry_test(
        _cells(target, initial), _cells(target, stepped), false_fail_rate, tv_alternative, min_pair_count
    )


def transition_law_test(
    step_fn,
    target,
    transition_matrix,
    rng,
    num_samples: int,
    false_fail_rate=DEFAULT_FALSE_FAIL_RATE,
    tv_alternative=DEFAULT_TV_ALTERNATIVE,
    batched: bool = False,
    min_expected: float = 20.0,
) -> StatisticalTestResult:
    r"""Does ``step_fn`` move states as ``transition_matrix`` says? (So the exact checks test the real code.)

    Draws :math:`x_0 \sim \pi` exactly, :math:`x_1 = \mathrm{step}(x_0)`, and tests the pairs of
    cells against :math:`J_{ab} = \pi_a P_{ab}` with :func:`goodness_of_fit_test`'s chi-square on
    the :math:`S^2` pair cells. Every row of :math:`P` with :math:`\pi_a > 0` is checked at once.

    Parameters
    ----------
    step_fn, target, rng, num_samples, false_fail_rate, batched, min_expected :
        As in :func:`one_step_invariance_test`; the cells are ``target.cell_index``.
    transition_matrix : array_like, shape (S, S)
        The claimed kernel on the ``S`` cells (for a discrete target, its states).
    tv_alternative : float
        The power refers to a pair law at this TV distance from :math:`J`.

    Returns
    -------
    StatisticalTestResult
        Its cells are pairs ``a * S + b``.
    """
    from textsampling.markov import check_transition_matrix

    _check_target(target)
    rng = _check_rng(rng)
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    matrix = check_transition_matrix(transition_matrix)
    pi = np.asarray(target.cell_probabilities(), dtype=np.float64)
    if matrix.shape[0] != pi.shape[0]:
        raise ValueError(
            f"transition_matrix must be ({pi.shape[0]}, {pi.shape[0]}) (one row per cell), got {matrix.shape}"
        )
    initial = target.sample_exact(rng, num_samples)
    stepped = apply_step(step_fn, rng, initial, batched)
    pair_cells = _cells(target, initial) * pi.shape[0] + _cells(target, stepped)
    joint = (pi[:, None] * matrix).reshape(-1)  # J_ab = pi_a P_ab, row-major like the pair cells
    return chi_square_counts_test(
        pair_cells, joint / joint.sum(), false_fail_rate, tv_alternative, min_expected, name="transition law"
    )


def run_independent_chains(step_fn, initial_states, rng, num_steps: int, batched: bool = False) -> np.ndarray:
    """Run independent chains and return their final states (for :func:`goodness_of_fit_test`).

    Parameters
    ----------
    step_fn : callable
        As in :func:`one_step_invariance_test`.
    initial_states : array_like, shape (num_chains,) + state_shape
        One start per chain (repeat a single state to start every chain at the same place).
    rng : numpy.random.Generator
    num_steps : int
        Steps per chain; the states after the last step are returned.
    batched : bool

    Returns
    -------
    numpy.ndarray, shape (num_chains,) + state_shape
        Independent draws from the law after ``num_steps`` steps, which is :math:`\\pi` only if the
        chain has converged: the goodness-of-fit test on them tests convergence too.
    """
    rng = _check_rng(rng)
    num_steps = check_int(num_steps, "num_steps")
    states = np.asarray(initial_states)
    if states.ndim == 0 or states.shape[0] == 0:
        raise ValueError("initial_states must be a non-empty array, shape (num_chains,) + state_shape")
    for _ in range(num_steps):
        states = apply_step(step_fn, rng, states, batched)
    return states
