"""The record of one gallery sampler (:class:`~textsampling.testing.cases.SamplerCase`), and the exact size
of its bug."""

from __future__ import annotations

import weakref

import numpy as np

from textsampling.targets.named import make_target
from textsampling.testing.cases import SamplerCase
from textsampling.testing.statistics import DEFAULT_FALSE_FAIL_RATE

__all__ = [
    "SamplerCase",
    "stationary_target",
    "one_step_tv",
    "law_matrix",
    "accept_matrix",
    "per_target",
    "from_faulty",
    "exact_power",
]


def stationary_target(case: SamplerCase):
    """The law the case is checked against (the tempered target for annealing)."""
    from textsampling.testing.conformance import stationary_target as _stationary

    return _stationary(case.kind, case.target, **case.options)


def one_step_tv(case: SamplerCase) -> float:
    r"""Exact :math:`\mathrm{TV}(\pi P, \pi)`: how far one step of ``case`` moves an exact sample.

    Raises
    ------
    ValueError
        If the case has no exact transition matrix.
    """
    pi = stationary_target(case).probabilities()
    matrix = case.kernel()
    return float(0.5 * np.abs(pi @ matrix - pi).sum())


def law_matrix(target, law) -> np.ndarray:
    """Kernel from ``law(x) -> (next_states (M,)+shape, probabilities (M,))``, one row per enumerated state.

    Equal next states add up; the probabilities of a row must sum to 1.
    """
    matrix = np.zeros((target.num_states, target.num_states))
    for a, x in enumerate(target.states):
        next_states, probabilities = law(x)
        np.add.at(matrix[a], target.state_index(next_states), probabilities)
    return matrix


def accept_matrix(target, proposal, accept_probability, log_probs=None) -> np.ndarray:
    r"""MH-type kernel with a custom acceptance: :math:`P_{xy} = q(y \mid x)\, a(x, y)` for :math:`y \ne x`.

    ``accept_probability(log_prob_x, log_prob_y, log_q_ratio) -> float in [0, 1]`` is the very function
    the buggy step uses; ``log_probs`` defaults to ``target.log_prob_all()``.
    """
    states = target.states
    log_probs = target.log_prob_all() if log_probs is None else np.asarray(log_probs, dtype=np.float64)
    matrix = np.zeros((target.num_states, target.num_states))
    for a in range(target.num_states):
        for b in range(target.num_states):
            if a == b:
                continue
            log_q = proposal.log_prob(states[b], states[a])
            if log_q == -np.inf:
                continue
            accept = accept_probability(log_probs[a], log_probs[b], proposal.log_q_ratio(states[b], states[a]))
            matrix[a, b] = np.exp(log_q) * accept
        matrix[a, a] = max(0.0, 1.0 - matrix[a].sum())
    return matrix


def per_target(build):
    """Memoise ``build(target, *args)`` per target object (proposals, faulty samplers, exact matrices).

    A check calls a step function thousands of times with the same target; building its pieces once
    keeps the gallery as fast as the reference samplers it imitates.
    """
    cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def cached(target, *args):
        per = cache.setdefault(target, {})
        if args not in per:
            per[args] = build(target, *args)
        return per[args]

    return cached


def from_faulty(name, kind, target, build, options=None) -> SamplerCase:
    """A gallery case over a :mod:`textsampling.testing.faulty` sampler.

    ``build(target, *extra)`` returns the faulty sampler's :class:`~textsampling.testing.cases.SamplerCase`,
    with ``extra`` the kind's context after the target (the temperature for ``anneal``); its ``step``
    (``step(rng, x)``) becomes the step of the kind and its ``transition_matrix`` the exact kernel.
    """
    cached = per_target(build)

    def step(rng, x, target, *extra):
        return cached(target, *extra).step(rng, x)

    def matrix(target, **kwargs):
        return cached(target, *kwargs.values()).transition_matrix

    # Describe it with faulty.py's own one-line description (and detection) on the named target.
    options = dict(options or {})
    faulty_case = cached(make_target(target), *options.values())
    step.__name__ = step.__qualname__ = name.replace("-", "_")
    return SamplerCase(name, kind, target, faulty_case.description, step, matrix, options, faulty_case.detected_by)


def exact_power(case: SamplerCase, false_fail_rate: float = DEFAULT_FALSE_FAIL_RATE, num_samples=None, num_chains=None,
                num_steps=None):
    r"""Power of :func:`textsampling.testing.conformance.check_step` against ``case``, from its exact kernel.

    Under the kernel :math:`P`, the one-step cells follow :math:`\pi P`, the pairs :math:`J_{ab} =
    \pi_a P_{ab}` and the long-run finals :math:`q_K = e_{x_0} P^K`. Each chi-square statistic is then
    approximately noncentral (Cochran 1952) with

    .. math::
        \lambda_1 = N \sum_y \frac{((\pi P)_y - \pi_y)^2}{\pi_y},\quad
        \lambda_r = N \sum_{a<b} \frac{(J_{ab} - J_{ba})^2}{J_{ab} + J_{ba}},\quad
        \lambda_\infty = M \sum_c \frac{(q_{K,c} - \pi_c)^2}{\pi_c},

    (the last over the cells :math:`c` of :func:`textsampling.testing.conformance.long_run_cells`) on :math:`S - 1`,
    (number of pairs with a move) and (number of cells - 1) degrees of freedom, each test
    at level ``false_fail_rate`` / (number of tests). The check fails if any test does, so its power
    is at least the largest of the three. Pooling of rare cells (the harness's) is ignored: it lowers
    the degrees of freedom, which raises the power, and it lowers lambda a little; with the default
    sizes almost no cell is pooled.

    Returns
    -------
    dict with ``one_step``, ``reversibility`` (None when not run), ``long_run`` and ``check`` (the max),
    and the exact ``tv`` of the one-step law and ``tv_long_run`` of the finals.
    """
    from scipy import stats

    from textsampling.testing.conformance import DEFAULT_NUM_CHAINS, KINDS, long_run_cells, start_state

    kind = KINDS[case.kind]
    num_samples = kind.num_samples if num_samples is None else num_samples
    num_chains = DEFAULT_NUM_CHAINS if num_chains is None else num_chains
    num_steps = kind.num_steps if num_steps is None else num_steps
    law = stationary_target(case)
    pi = law.probabilities()
    matrix = case.kernel()
    support = pi > 0
    num_tests = 1 + int(kind.reversible) + int(num_chains > 0)
    alpha = false_fail_rate / num_tests

    def power(noncentrality, degrees_of_freedom):
        critical = stats.chi2.isf(alpha, degrees_of_freedom)
        return float(stats.ncx2.sf(critical, degrees_of_freedom, noncentrality)) if noncentrality > 0 else alpha

    one_step_law = pi @ matrix
    chi2_one = float(np.sum((one_step_law[support] - pi[support]) ** 2 / pi[support]))
    result = {
        "tv": float(0.5 * np.abs(one_step_law - pi).sum()),
        "one_step": power(num_samples * chi2_one, int(support.sum()) - 1),
        "reversibility": None,
    }
    if kind.reversible:
        joint = pi[:, None] * matrix
        upper = np.triu_indices(pi.size, 1)
        forward, backward = joint[upper], joint.T[upper]
        moved = (forward + backward) > 0
        chi2_pairs = float(np.sum((forward - backward)[moved] ** 2 / (forward + backward)[moved]))
        result["reversibility"] = power(num_samples * chi2_pairs, max(int(moved.sum()), 1))
    if num_chains == 0:  # the check was run without its long-run test
        result["tv_long_run"] = result["long_run"] = None
        result["check"] = max(v for k, v in result.items() if k in ("one_step", "reversibility") and v is not None)
        return result
    final = np.zeros(pi.size)
    final[law.state_index(start_state(law)[None])[0]] = 1.0
    for _ in range(num_steps):
        final = final @ matrix
    result["tv_long_run"] = float(0.5 * np.abs(final - pi).sum())
    # The long-run test bins the finals into the cells of textsampling.testing.conformance.long_run_cells.
    cells = long_run_cells(pi, num_chains)
    cell_pi = np.bincount(cells, weights=pi, minlength=cells.max() + 1)
    cell_final = np.bincount(cells, weights=final, minlength=cells.max() + 1)
    if np.any(cell_final[cell_pi == 0] > 0):  # landing where pi is 0 fails at once
        result["long_run"] = 1.0 - (1.0 - cell_final[cell_pi == 0].sum()) ** num_chains
    else:
        inside = cell_pi > 0
        chi2_final = float(np.sum((cell_final[inside] - cell_pi[inside]) ** 2 / cell_pi[inside]))
        result["long_run"] = power(num_chains * chi2_final, max(int(inside.sum()) - 1, 1))
    result["check"] = max(
        v for k, v in result.items() if k in ("one_step", "reversibility", "long_run") and v is not None
    )
    return result
