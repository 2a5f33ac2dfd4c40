"""The old home of ``textsampling check``'s code, kept as one namespace for code written against it.

It has moved, and new code imports it from there:

* the conformance check (:func:`~textsampling.testing.conformance.check_step`, :data:`KINDS`, the step
  caller, the long-run cells, the start state) — :mod:`textsampling.testing.conformance`, also as
  ``from textsampling.testing import check_step``;
* its report and plot (:class:`~textsampling.testing.report.CheckReport`) — :mod:`textsampling.testing.report`;
* the named built-in targets (:data:`TARGETS`, :func:`make_target`) — :mod:`textsampling.targets.named`;
* the command line (:func:`add_arguments`, :func:`run`, :func:`load_step_function`) — :mod:`textsampling.cli.check`.

This module only re-exports those names (no code of its own). It sits in the top layer, beside the
command line (ARCHITECTURE.md, "Layers"): nothing in the package may import it.
"""

# `time` is the clock the check reads: tests/test_check.py slows it down through this namespace.
import time  # noqa: F401

from textsampling.cli.check import add_arguments, load_step_function, run
from textsampling.targets.named import TARGETS, make_target
from textsampling.testing.conformance import (
    DEFAULT_BUDGET,
    DEFAULT_FALSE_FAIL_RATE,
    DEFAULT_NUM_CHAINS,
    DEFAULT_TEMPERATURE,
    DEFAULT_TV_ALTERNATIVE,
    KINDS,
    LONG_RUN_MIN_EXPECTED,
    Kind,
    MalformedStepError,
    StepSignatureError,
    bigram_oracle,
    check_signature,
    check_step,
    long_run_cells,
    start_state,
    stationary_target,
)
from textsampling.testing.report import CheckReport, TestOutcome

__all__ = [
    "KINDS",
    "TARGETS",
    "DEFAULT_FALSE_FAIL_RATE",
    "DEFAULT_TV_ALTERNATIVE",
    "DEFAULT_BUDGET",
    "DEFAULT_NUM_CHAINS",
    "DEFAULT_TEMPERATURE",
    "LONG_RUN_MIN_EXPECTED",
    "Kind",
    "MalformedStepError",
    "StepSignatureError",
    "TestOutcome",
    "CheckReport",
    "make_target",
    "stationary_target",
    "start_state",
    "long_run_cells",
    "bigram_oracle",
    "load_step_function",
    "check_signature",
    "check_step",
    "add_arguments",
    "run",
]
