r"""Count tests with a stated false-fail rate and a stated power: Pearson chi-square and Bowker symmetry.

Both black-box checks of :mod:`textsampling.testing` reduce to counts in cells.

**Goodness of fit** (Pearson 1900). ``N`` independent samples fall into cells with exact
probabilities :math:`p_k`; with counts :math:`O_k` and expected counts :math:`E_k = N p_k`,

.. math::
    X^2 = \sum_k \frac{(O_k - E_k)^2}{E_k} \ \xrightarrow{H_0}\ \chi^2_{K-1}.

Cells of small expected count are pooled first; a sample in a cell of probability 0 fails the test
outright (p-value 0). Cells of probability exactly 0 are left out of the statistic, and every group it
is computed on has expected count at least ``min_expected`` (:func:`pool_cells`), so no term is ever 0/0
or x/0: a cell of tiny probability (1e-300, say) is pooled like any other small cell, and a sample in it
counts in its group. This does not depend on the order of any float summation: the zero cells are found
by ``p == 0``, never as a difference of sums. The pooling threshold matters at small levels: with the
textbook :math:`E_k \ge 5`, the chi-square tail under-states the real false-fail rate at
:math:`\alpha = 10^{-4}` by up to a factor 2 (skewed :math:`p`, 400,000 simulated multinomials); with
the default :math:`E_k \ge 20` the measured rates were 0.9–1.2 times :math:`\alpha` at
:math:`\alpha = 0.05, 10^{-3}, 10^{-4}` (within the simulation's error of about 0.16).

**Power against a TV distance.** If the samples follow :math:`q` instead, :math:`X^2` is
approximately noncentral :math:`\chi^2_{K-1}(\lambda)` with
:math:`\lambda = N \sum_k (q_k - p_k)^2 / p_k` (exact for local alternatives
:math:`q = p + h / \sqrt N`; Cochran 1952, Ann. Math. Stat. 23:315). By Cauchy–Schwarz,

.. math::
    (2\,\mathrm{TV}(p, q))^2 = \Bigl(\sum_k \frac{|q_k - p_k|}{\sqrt{p_k}} \sqrt{p_k}\Bigr)^2
    \le \sum_k \frac{(q_k - p_k)^2}{p_k} \sum_k p_k, \qquad\text{so}\qquad \lambda \ge 4 N d^2

for every alternative at TV distance :math:`d` (on the pooled cells). The power
:math:`P(\chi^2_{K-1}(\lambda) > c_\alpha)` grows with :math:`\lambda`, so
``ncx2.sf(chi2.isf(alpha, K-1), K-1, 4 N d**2)`` is a lower bound on the power against all of
them (up to the large-sample approximation, which our tests check by simulation).

**Symmetry of pairs** (Bowker 1948, JASA 43:572). For pairs :math:`(a, b)` of cells, with
:math:`n_{ab}` the number of transitions ``a -> b``: if the joint law is symmetric, then conditional on
:math:`n = n_{ab} + n_{ba}`, :math:`n_{ab} \sim \mathrm{Binomial}(n, 1/2)`, independently over pairs, and

.. math::
    B = \sum_{a < b} \frac{(n_{ab} - n_{ba})^2}{n_{ab} + n_{ba}} \ \xrightarrow{H_0}\ \chi^2_{m},

``m`` the number of pairs with a count. Pairs seen fewer than ``min_pair_count`` times are pooled
(a sum of Binomial(:math:`n_i`, 1/2) is Binomial(:math:`\sum n_i`, 1/2), so pooling keeps the null
law exact). With the default ``min_pair_count = 10`` the test is conservative: measured false-fail
rates were 0.4–0.94 times the nominal one at :math:`\alpha = 0.05, 10^{-3}, 10^{-4}`.
With :math:`J_{ab}` the probability of a pair and :math:`\delta = \sum_{a<b} |J_{ab} -
J_{ba}| = \mathrm{TV}(J, J^\top)`, the noncentrality is
:math:`N \sum_{a<b} (J_{ab} - J_{ba})^2 / (J_{ab} + J_{ba}) \ge N \delta^2 / \sum_{a<b}(J_{ab} + J_{ba})
\ge N \delta^2` (Cauchy–Schwarz again, the denominator being the probability of a move, at most 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from textsampling._validation import check_int

__all__ = [
    "StatisticalTestResult",
    "DEFAULT_FALSE_FAIL_RATE",
    "DEFAULT_TV_ALTERNATIVE",
    "check_false_fail_rate",
    "pool_cells",
    "power_lower_bound",
    "required_samples",
    "required_samples_against",
    "chi_square_counts_test",
    "symmetry_test",
]

#: Default probability that a correct sampler fails a check (each check, each call).
DEFAULT_FALSE_FAIL_RATE = 1e-4
#: Default TV distance the reported power refers to.
DEFAULT_TV_ALTERNATIVE = 0.05
#: How many over- and under-sampled cells a report lists.
NUM_REPORTED_CELLS = 5
TESTS = ("goodness_of_fit", "reversibility")


def check_false_fail_rate(false_fail_rate) -> float:
    """A probability strictly between 0 and 1."""
    try:
        value = float(false_fail_rate)
    except (TypeError, ValueError):
        raise TypeError(f"false_fail_rate must be a number in (0, 1), got {false_fail_rate!r}") from None
    if not 0.0 < value < 1.0:
        raise ValueError(f"false_fail_rate must lie in the open interval (0, 1), got {value}")
    return value


def _check_tv(tv, name: str = "tv_alternative") -> float:
    try:
        value = float(tv)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number in (0, 1], got {tv!r}") from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must lie in (0, 1] (a total-variation distance), got {value}")
    return value


def _noncentrality_per_sample(tv: float, test: str) -> float:
    """:math:`\\lambda / N` lower bound at TV distance ``tv``: :math:`4 d^2` (fit) or :math:`d^2` (symmetry)."""
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    return 4.0 * tv**2 if test == "goodness_of_fit" else tv**2


def power_lower_bound(num_samples, tv, false_fail_rate, degrees_of_freedom, test="goodness_of_fit") -> float:
    r"""Power of a level-``false_fail_rate`` chi-square test against any alternative at TV distance ``tv``.

    :math:`P(\chi^2_{\nu}(\lambda) > \chi^2_{\nu, 1-\alpha})` with :math:`\lambda = 4 N d^2` for a
    goodness-of-fit test and :math:`N d^2` for the pair-symmetry test (see the module docstring).
    """
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    tv = _check_tv(tv, "tv")
    alpha = check_false_fail_rate(false_fail_rate)
    degrees_of_freedom = check_int(degrees_of_freedom, "degrees_of_freedom", minimum=1)
    critical = stats.chi2.isf(alpha, degrees_of_freedom)
    noncentrality = num_samples * _noncentrality_per_sample(tv, test)
    return float(stats.ncx2.sf(critical, degrees_of_freedom, noncentrality))


def required_samples(tv, false_fail_rate=DEFAULT_FALSE_FAIL_RATE, power=0.999, num_cells=2, test="goodness_of_fit"):
    """Smallest ``N`` whose :func:`power_lower_bound` reaches ``power`` against TV distance ``tv``.

    Parameters
    ----------
    tv : float
        The TV distance to detect, in (0, 1].
    false_fail_rate : float
        Level of the test, in (0, 1).
    power : float
        Wanted power, in (false_fail_rate, 1).
    num_cells : int
        Number of cells ``K >= 2``. The degrees of freedom are ``K - 1`` for a goodness-of-fit test
        and ``K (K - 1) / 2`` (every pair) for the reversibility test; pooling can only lower them,
        which raises the power, so the answer is conservative.
    test : {"goodness_of_fit", "reversibility"}
        ``"goodness_of_fit"`` also serves the one-step invariance test.

    Returns
    -------
    int
    """
    tv = _check_tv(tv, "tv")
    alpha = check_false_fail_rate(false_fail_rate)
    try:
        power = float(power)
    except (TypeError, ValueError):
        raise TypeError(f"power must be a number in (false_fail_rate, 1), got {power!r}") from None
    if not alpha < power < 1.0:
        raise ValueError(f"power must lie in (false_fail_rate, 1) = ({alpha}, 1), got {power}")
    num_cells = check_int(num_cells, "num_cells", minimum=2)
    per_sample = _noncentrality_per_sample(tv, test)
    degrees_of_freedom = num_cells - 1 if test == "goodness_of_fit" else num_cells * (num_cells - 1) // 2
    critical = stats.chi2.isf(alpha, degrees_of_freedom)
    # The needed noncentrality solves ncx2.sf(critical, df, lam) = power; bisect on lam (monotone).
    low, high = 0.0, 1.0
    while stats.ncx2.sf(critical, degrees_of_freedom, high) < power:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if stats.ncx2.sf(critical, degrees_of_freedom, middle) < power:
            low = middle
        else:
            high = middle
        if high - low < 1e-9 * high:
            break
    return int(np.ceil(high / per_sample))


def required_samples_against(
    alternative, probabilities, false_fail_rate=DEFAULT_FALSE_FAIL_RATE, power=0.999, min_expected: float = 20.0
) -> int:
    r"""A goodness-of-fit sample size whose stated power against a *given* wrong law reaches ``power``.

    Pooling depends on ``N`` (through the expected counts ``N p_k``, not on the data), and it can
    hide part of the distance; so this searches ``N`` upwards from :func:`required_samples` until
    the power against :math:`\mathrm{TV}` on the cells pooled at that ``N`` reaches ``power``.

    Parameters
    ----------
    alternative, probabilities : array_like, shape (K,)
        The wrong law (e.g. :math:`\pi P` of a faulty kernel) and the target's cell probabilities.
    false_fail_rate, power, min_expected :
        As in :func:`required_samples` and :func:`chi_square_counts_test`.

    Returns
    -------
    int
    """
    alternative = np.asarray(alternative, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if alternative.shape != probabilities.shape or alternative.ndim != 1:
        raise ValueError(
            "alternative and probabilities must be 1-D of the same shape, "
            f"got {alternative.shape} and {probabilities.shape}"
        )
    tv = 0.5 * float(np.abs(alternative - probabilities).sum())
    if tv <= 0:
        raise ValueError("alternative equals probabilities: no sample size can tell them apart")
    num_samples = required_samples(min(tv, 1.0), false_fail_rate, power, max(probabilities.size, 2))
    for _ in range(200):
        groups = pool_cells(num_samples * probabilities, min_expected)
        pooled_tv = 0.5 * sum(abs(alternative[g].sum() - probabilities[g].sum()) for g in groups)
        # Mass the alternative puts on zero-probability cells is not in the pooled distance (it is
        # caught outright); the bound below ignores it, so it stays a lower bound.
        if len(groups) >= 2 and pooled_tv > 0:
            needed = required_samples(min(pooled_tv, 1.0), false_fail_rate, power, len(groups))
            if needed <= num_samples:
                return int(num_samples)
        num_samples = int(num_samples * 1.25) + 1  # grow gently: the pooling changes with N
    raise ValueError("no sample size up to the search limit reaches the power: the pooled distance vanishes")


def _check_min_expected(min_expected) -> float:
    try:
        value = float(min_expected)
    except (TypeError, ValueError):
        raise TypeError(f"min_expected must be a positive number, got {min_expected!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"min_expected must be a finite number > 0 (an expected count), got {value}")
    return value


def pool_cells(expected, min_expected: float = 20.0) -> list:
    """Group cells so that every group has expected count ``>= min_expected``.

    Cells of expected count 0 are left out (they are handled as outright failures). Cells below
    ``min_expected`` are pooled into one group, smallest first; if that group is still below the
    threshold, the smallest remaining cells join it until it is not. So when two or more groups come
    back, every one has expected count ``>= min_expected > 0``; a single group means too few samples.

    Parameters
    ----------
    expected : array_like, shape (K,)
        Expected counts ``N p_k``.
    min_expected : float

    Returns
    -------
    list of numpy.ndarray of int
        Cell indices of each group; the pooled group (if any) comes last.
    """
    expected = np.asarray(expected, dtype=np.float64)
    if expected.ndim != 1 or not np.all(np.isfinite(expected)) or np.any(expected < 0):
        raise ValueError("expected must be a 1-D array of finite non-negative expected counts")
    min_expected = _check_min_expected(min_expected)
    positive = np.flatnonzero(expected > 0)
    order = positive[np.argsort(expected[positive], kind="stable")]  # ascending expected count
    small = [int(k) for k in order if expected[k] < min_expected]
    alone = [int(k) for k in order if expected[k] >= min_expected]
    pooled = list(small)
    # Grow the pooled group with the smallest standalone cells until it is large enough.
    while pooled and expected[pooled].sum() < min_expected and alone:
        pooled.append(alone.pop(0))
    groups = [np.array([k]) for k in sorted(alone)]
    if pooled:
        groups.append(np.array(sorted(pooled)))
    return groups


@dataclass
class StatisticalTestResult:
    """Outcome of a black-box check, readable with ``print(result)``.

    Attributes
    ----------
    name : str
        Which check ("one-step invariance", "goodness of fit", "reversibility").
    statistic : float
        Pearson :math:`X^2` or Bowker :math:`B` (``inf`` after a sample in a zero-probability cell).
    degrees_of_freedom : int
    p_value : float
    false_fail_rate : float
        The level: a correct sampler fails with this probability.
    passed : bool
        ``p_value > false_fail_rate``.
    num_samples : int
    tv_alternative : float
        The TV distance the power refers to.
    power : float
        Lower bound on the probability of failing a sampler at TV distance ``tv_alternative``.
    over_sampled, under_sampled : list of (label, observed, expected)
        The cells (or pairs) with the largest positive and negative Pearson residuals.
    cell_groups : list of numpy.ndarray
        The pooled cells the statistic was computed on (goodness of fit), or pairs (reversibility).
    zero_probability_hits : int
        Samples that fell into cells of probability zero.
    test : str
        ``"goodness_of_fit"`` or ``"reversibility"`` (which power formula applies).
    """

    name: str
    statistic: float
    degrees_of_freedom: int
    p_value: float
    false_fail_rate: float
    passed: bool
    num_samples: int
    tv_alternative: float
    power: float
    over_sampled: list = field(default_factory=list)
    under_sampled: list = field(default_factory=list)
    cell_groups: list = field(default_factory=list, repr=False)
    zero_probability_hits: int = 0
    test: str = "goodness_of_fit"

    def power_against_tv(self, tv) -> float:
        """Power lower bound of this test (its N, df and level) against TV distance ``tv``."""
        return power_lower_bound(
            self.num_samples, tv, self.false_fail_rate, max(self.degrees_of_freedom, 1), self.test
        )

    def pool(self, probabilities) -> np.ndarray:
        """Probabilities of the pooled cells (``cell_groups``) under a law over the original cells.

        ``TV(result.pool(q), result.pool(p))`` is the distance the stated power refers to.
        """
        probabilities = np.asarray(probabilities, dtype=np.float64)
        return np.array([probabilities[group].sum() for group in self.cell_groups])

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"{self.name}: {verdict}",
            f"  statistic {self.statistic:.4g} on {self.degrees_of_freedom} degrees of freedom, "
            f"p-value {self.p_value:.3g} (fails below the false-fail rate {self.false_fail_rate:g})",
            f"  {self.num_samples} samples; power >= {self.power:.4f} against any alternative at "
            f"TV distance {self.tv_alternative:g}",
        ]
        if self.zero_probability_hits:
            lines.append(f"  {self.zero_probability_hits} samples fell in cells of probability zero")
        for title, rows in (("over-sampled", self.over_sampled), ("under-sampled", self.under_sampled)):
            if rows:
                cells = ", ".join(f"{label}: {observed} vs {expected:.1f}" for label, observed, expected in rows)
                lines.append(f"  most {title} (observed vs expected): {cells}")
        return "\n".join(lines)

    def assert_passed(self) -> None:
        """Raise ``AssertionError`` with the report when the check failed."""
        if not self.passed:
            raise AssertionError(str(self))


def _extreme_residuals(labels, observed, expected):
    """The NUM_REPORTED_CELLS largest positive and negative Pearson residuals, as report rows."""
    residuals = (observed - expected) / np.sqrt(np.maximum(expected, 1e-300))
    order = np.argsort(residuals)

    def row(i):
        return labels[i], int(observed[i]), float(expected[i])

    over = [row(i) for i in order[::-1][:NUM_REPORTED_CELLS] if residuals[i] > 0]
    under = [row(i) for i in order[:NUM_REPORTED_CELLS] if residuals[i] < 0]
    return over, under


def chi_square_counts_test(
    cell_indices,
    probabilities,
    false_fail_rate=DEFAULT_FALSE_FAIL_RATE,
    tv_alternative=DEFAULT_TV_ALTERNATIVE,
    min_expected: float = 20.0,
    name: str = "goodness of fit",
) -> StatisticalTestResult:
    r"""Pearson chi-square test that independent samples in cells follow ``probabilities``.

    Parameters
    ----------
    cell_indices : array_like of int, shape (N,)
        Cell of each sample, in ``0..K-1``.
    probabilities : array_like, shape (K,)
        Exact cell probabilities (summing to 1 within 1e-9).
    false_fail_rate : float
        Level :math:`\alpha`: the test fails iff the p-value is at most :math:`\alpha`.
    tv_alternative : float
        TV distance the reported power refers to.
    min_expected : float
        Cells of smaller expected count are pooled (see :func:`pool_cells`); finite, > 0.

    Returns
    -------
    StatisticalTestResult
        A sample in a cell of probability exactly 0 gives ``statistic = inf``, ``p_value = 0``
        (failed) and is listed among the over-sampled cells. The statistic is never NaN.

    Raises
    ------
    ValueError
        If after pooling fewer than two cells remain and no sample fell in a zero-probability cell
        (too few samples to test anything), or for probabilities that are negative, not finite or
        do not sum to 1.
    """
    alpha = check_false_fail_rate(false_fail_rate)
    tv_alternative = _check_tv(tv_alternative)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 1 or probabilities.size == 0 or not np.all(np.isfinite(probabilities)):
        raise ValueError(f"probabilities must be a finite non-empty 1-D array, got shape {probabilities.shape}")
    if np.any(probabilities < 0) or abs(probabilities.sum() - 1.0) > 1e-9:
        raise ValueError(f"probabilities must be non-negative and sum to 1, got sum {probabilities.sum()!r}")
    cells = np.asarray(cell_indices).reshape(-1)
    if cells.dtype.kind not in "iu":
        raise TypeError(f"cell_indices must hold integers, got dtype {cells.dtype}")
    num_samples = cells.size
    if num_samples == 0:
        raise ValueError("cell_indices is empty: num_samples must be >= 1")
    if np.any((cells < 0) | (cells >= probabilities.size)):
        raise ValueError(f"cell_indices must lie in 0..{probabilities.size - 1}")
    counts = np.bincount(cells, minlength=probabilities.size)
    expected = num_samples * probabilities
    groups = pool_cells(expected, min_expected)
    zero_hits = int(counts[probabilities == 0].sum())
    if len(groups) < 2 and not zero_hits:
        raise ValueError(
            f"num_samples = {num_samples} is too small: after pooling cells of expected count below "
            f"{min_expected} fewer than two cells remain; use more samples"
        )
    observed_groups = np.array([counts[g].sum() for g in groups])
    expected_groups = np.array([expected[g].sum() for g in groups])
    degrees_of_freedom = len(groups) - 1
    if zero_hits:
        # A sample where the target has no mass: no chi-square needed, the sampler is wrong.
        statistic, p_value = np.inf, 0.0
    else:
        statistic = float(np.sum((observed_groups - expected_groups) ** 2 / expected_groups))
        p_value = float(stats.chi2.sf(statistic, degrees_of_freedom))
    labels = [int(g[0]) if g.size == 1 else f"pooled{g.tolist()}" for g in groups]
    over, under = _extreme_residuals(labels, observed_groups, expected_groups)
    if zero_hits:
        zero_cells = np.flatnonzero((probabilities == 0) & (counts > 0))
        over = [(int(k), int(counts[k]), 0.0) for k in zero_cells[:NUM_REPORTED_CELLS]] + over
    return StatisticalTestResult(
        name=name,
        statistic=statistic,
        degrees_of_freedom=degrees_of_freedom,
        p_value=p_value,
        false_fail_rate=alpha,
        passed=bool(p_value > alpha),
        num_samples=num_samples,
        tv_alternative=tv_alternative,
        power=power_lower_bound(num_samples, tv_alternative, alpha, max(degrees_of_freedom, 1), "goodness_of_fit"),
        over_sampled=over,
        under_sampled=under,
        cell_groups=groups,
        zero_probability_hits=zero_hits,
        test="goodness_of_fit",
    )


def symmetry_test(
    first_cells,
    second_cells,
    false_fail_rate=DEFAULT_FALSE_FAIL_RATE,
    tv_alternative=DEFAULT_TV_ALTERNATIVE,
    min_pair_count: int = 10,
    name: str = "reversibility",
) -> StatisticalTestResult:
    r"""Bowker's test that the pairs ``(first_cells[n], second_cells[n])`` have a symmetric joint law.

    Parameters
    ----------
    first_cells, second_cells : array_like of int, shape (N,)
        Cells of :math:`x_0` and :math:`x_1` for each of ``N`` independent pairs.
    false_fail_rate, tv_alternative : float
        As in :func:`chi_square_counts_test`; the power refers to :math:`\mathrm{TV}(J, J^\top)`.
    min_pair_count : int
        Unordered pairs seen fewer times are pooled into one binomial term (oriented from the lower
        to the higher cell index).

    Returns
    -------
    StatisticalTestResult
        ``degrees_of_freedom`` 0 and ``p_value`` 1 (passed) when no pair ever moved between cells:
        nothing to test, which the report says (its power is then 0).
    """
    alpha = check_false_fail_rate(false_fail_rate)
    tv_alternative = _check_tv(tv_alternative)
    min_pair_count = check_int(min_pair_count, "min_pair_count", minimum=1)
    first = np.asarray(first_cells).reshape(-1)
    second = np.asarray(second_cells).reshape(-1)
    if first.shape != second.shape or first.dtype.kind not in "iu" or second.dtype.kind not in "iu":
        raise ValueError("first_cells and second_cells must be integer arrays of the same length (one per pair)")
    if first.size == 0:
        raise ValueError("no pairs given: num_samples must be >= 1")
    num_samples = first.size
    moved = first != second
    low = np.minimum(first[moved], second[moved])
    high = np.maximum(first[moved], second[moved])
    forward = first[moved] < second[moved]  # the move goes from the lower to the higher cell
    # Count each unordered pair and its lower -> higher direction.
    keys, inverse = np.unique(np.stack([low, high], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    totals = np.bincount(inverse, minlength=len(keys))
    upward = np.bincount(inverse, weights=forward.astype(np.float64), minlength=len(keys))
    large = totals >= min_pair_count
    groups_total = list(totals[large].astype(np.int64))
    groups_up = list(upward[large])
    labels = [f"{int(a)}<->{int(b)}" for a, b in keys[large]]
    if np.any(~large):
        groups_total.append(int(totals[~large].sum()))
        groups_up.append(float(upward[~large].sum()))
        labels.append(f"pooled({int(np.sum(~large))} rare pairs)")
    groups_total = np.array(groups_total, dtype=np.float64)
    groups_up = np.array(groups_up)
    degrees_of_freedom = int(groups_total.size)
    if degrees_of_freedom == 0:
        statistic, p_value = 0.0, 1.0
        power = 0.0
    else:
        # (n_ab - n_ba)^2 / (n_ab + n_ba) with n_ab = up, n_ba = total - up.
        statistic = float(np.sum((2.0 * groups_up - groups_total) ** 2 / groups_total))
        p_value = float(stats.chi2.sf(statistic, degrees_of_freedom))
        power = power_lower_bound(num_samples, tv_alternative, alpha, degrees_of_freedom, "reversibility")
    # Report the pairs by the direction that is over-represented ("a->b" observed vs n / 2 expected).
    down = groups_total - groups_up
    report_labels = [lab.replace("<->", "->") for lab in labels] + [
        "->".join(lab.split("<->")[::-1]) if "<->" in lab else lab + " reversed" for lab in labels
    ]
    over, under = _extreme_residuals(
        report_labels, np.concatenate([groups_up, down]), np.concatenate([groups_total, groups_total]) / 2.0
    )
    return StatisticalTestResult(
        name=name,
        statistic=statistic,
        degrees_of_freedom=degrees_of_freedom,
        p_value=p_value,
        false_fail_rate=alpha,
        passed=bool(p_value > alpha),
        num_samples=num_samples,
        tv_alternative=tv_alternative,
        power=power,
        over_sampled=over,
        under_sampled=under,
        cell_groups=[keys[large][i] for i in range(int(np.sum(large)))],
        zero_probability_hits=0,
        test="reversibility",
    )
