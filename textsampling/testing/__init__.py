"""Public correctness checks for samplers: exact checks on transition matrices, black-box statistical
checks on step functions, and deliberately wrong samplers that the checks must catch.

Exact (:mod:`textsampling.testing.exact`)
    :func:`check_stationary`, :func:`check_detailed_balance` (-> :class:`ExactCheckResult` with the
    residual and ``passed``), :func:`assert_stationary`, :func:`assert_detailed_balance`, and how far
    a kernel is from right: :func:`one_step_tv`, :func:`detailed_balance_tv`.
Black box (:mod:`textsampling.testing.black_box`)
    :func:`one_step_invariance_test`, :func:`reversibility_test`, :func:`goodness_of_fit_test`,
    :func:`transition_law_test`, :func:`run_independent_chains` (-> :class:`StatisticalTestResult`:
    statistic, degrees of freedom, p-value, false-fail rate, passed, number of samples, power against
    a TV distance, the most over- and under-sampled cells; ``print(result)``,
    ``result.assert_passed()``), :func:`required_samples` and :func:`required_samples_against`.
Step functions (:mod:`textsampling.testing.adapters`) from the reference kernels, and wrong ones
(:mod:`textsampling.testing.faulty`).
The conformance check of a user's step function (:mod:`textsampling.testing.conformance`, behind
``textsampling check``): :func:`check_step` -> :class:`CheckReport` (:mod:`textsampling.testing.report`);
its ``pt-swap`` kind, a parallel-tempering swap against the replicas' product law, is
:mod:`textsampling.testing.replica_exchange`.

Example
-------
>>> import numpy as np
>>> from textsampling.targets import Categorical
>>> from textsampling.reference.proposals import UniformCategoricalProposal
>>> from textsampling import testing
>>> target = Categorical([0.0, 1.0, 2.0])
>>> step_fn = testing.metropolis_hastings_step_fn(target.log_prob, UniformCategoricalProposal(3))
>>> result = testing.one_step_invariance_test(step_fn, target, np.random.default_rng(0), 2000)
>>> result.passed
True
"""

from textsampling.testing import faulty
from textsampling.testing.adapters import (
    annealing_step_fn,
    gibbs_step_fn,
    independent_sampler_step_fn,
    metropolis_hastings_step_fn,
)
from textsampling.testing.black_box import (
    apply_step,
    goodness_of_fit_test,
    one_step_invariance_test,
    reversibility_test,
    run_independent_chains,
    transition_law_test,
)
from textsampling.testing.conformance import check_step
from textsampling.testing.exact import (
    ExactCheckResult,
    assert_detailed_balance,
    assert_stationary,
    check_detailed_balance,
    check_stationary,
    detailed_balance_tv,
    one_step_tv,
)
from textsampling.testing.report import CheckReport
from textsampling.testing.statistics import (
    DEFAULT_FALSE_FAIL_RATE,
    StatisticalTestResult,
    chi_square_counts_test,
    pool_cells,
    power_lower_bound,
    required_samples,
    required_samples_against,
    symmetry_test,
)

__all__ = [
    "faulty",
    "check_step",
    "CheckReport",
    "annealing_step_fn",
    "gibbs_step_fn",
    "independent_sampler_step_fn",
    "metropolis_hastings_step_fn",
    "apply_step",
    "goodness_of_fit_test",
    "one_step_invariance_test",
    "reversibility_test",
    "run_independent_chains",
    "transition_law_test",
    "ExactCheckResult",
    "assert_detailed_balance",
    "assert_stationary",
    "check_detailed_balance",
    "check_stationary",
    "detailed_balance_tv",
    "one_step_tv",
    "DEFAULT_FALSE_FAIL_RATE",
    "StatisticalTestResult",
    "chi_square_counts_test",
    "pool_cells",
    "power_lower_bound",
    "required_samples",
    "required_samples_against",
    "symmetry_test",
]
