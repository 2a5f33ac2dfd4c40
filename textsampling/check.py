r"""Does a step function really sample its target? The conformance kit behind ``textsampling check``.

A user writes one step of a sampler as a plain Python function and asks whether it leaves the target
distribution :math:`\pi` invariant (and reaches it). On small enumerable targets the answer is a
statistical test with a stated false-fail rate, built on :mod:`textsampling.testing`.
``textsampling check`` imports the module you name and runs its code, as ``python`` would: its top level
once, then your step function thousands of times — check only code you trust.

``one-step invariance``
    draw :math:`x_0 \sim \pi` exactly, apply one step, test :math:`x_1 \sim \pi` (a kernel that moves
    mass away from :math:`\pi` fails at once);
``reversibility``
    on the same pairs, test that :math:`(x_0, x_1)` and :math:`(x_1, x_0)` have one law (detailed
    balance); only for kinds whose correct kernels are reversible (MH, annealing, CGMH);
``long-run fit``
    run many chains from one fixed start for ``num_steps`` steps and test their final states against
    :math:`\pi` (a kernel that leaves :math:`\pi` invariant but never mixes — e.g. a scan that skips a
    position — passes the first two and fails this one).

The false-fail rate is split evenly between the tests (Bonferroni), so a correct sampler fails the
whole check with probability at most ``false_fail_rate``; the power of each test against a stated TV
distance is reported. See ``book/conformance.md`` for how to read the report.

**Step functions, by kind** (``rng`` is a :class:`numpy.random.Generator` the function must draw all
its randomness from; ``x`` is the current state; the function returns the new state and nothing else):

``mh``  ``step(rng, x, target) -> x_new``
    A Metropolis–Hastings step (any proposal). ``target.log_prob(states)`` maps ``(N,) + shape`` to
    ``(N,)`` unnormalised log-densities; ``target.num_states``, and for sequences ``target.vocab_size``
    and ``target.length``, describe the space. ``x`` is an ``int`` for a categorical target, an
    ``(L,)`` int array for a sequence target.
``anneal``  ``step(rng, x, target, temperature) -> x_new``
    One simulated-annealing step at a fixed temperature :math:`T`: it must leave
    :math:`\pi_T \propto \rho^{1/T}` invariant.
``gibbs``  ``step(rng, x, target) -> x_new``
    A Gibbs update of an ``(L,)`` token sequence: one random-scan site update or a whole sweep, using
    ``target.conditional_log_probs(states (N, L), position) -> (N, V)`` (normalised
    :math:`\log\pi(x_i = v \mid x_{-i})`).
``mlm-gibbs``  ``step(rng, x, lm) -> x_new``
    Gibbs with a masked language model: ``lm.masked_log_probs(token_ids (N, L), positions (N,)) ->
    (N, lm.vocab_size)``; ids in ``lm.special_token_ids`` (END, [MASK]) have log-probability ``-inf``
    and must never be written. The lm is the exact bigram oracle, so the target is the bigram's joint.
``cgmh``  ``step(rng, x, target) -> x_new``
    A CGMH move (replace / insert / delete) on a variable-length sentence: ``x`` is ``(L,)``
    right-padded with ``PAD = -1``; ``target.log_prob`` is :math:`\gamma \log p + \log \mathrm{sim} +
    \log\chi`, ``target.keywords`` the tokens every sentence must keep, ``target.base`` the bigram
    language model (``next_token_log_probs``, ``min_length``, ``max_length``).

A function with the wrong signature is a usage error (exit code 2). A function that raises, or returns
something malformed — the wrong shape, a non-integer, a token outside the vocabulary, a dropped keyword,
a state of probability zero — fails the check at once (exit code 1), with the state it was given.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from textsampling._validation import check_int, check_positive
from textsampling.targets import PAD, BigramLM, Categorical, DiscreteTarget, FixedLengthBigram, KeywordTarget
from textsampling.targets import PairwiseChain, TopicSimilarity
# Defined once, with the tests they parametrise; re-exported here for the check's callers.
from textsampling.testing.statistics import DEFAULT_FALSE_FAIL_RATE, DEFAULT_TV_ALTERNATIVE

__all__ = [
    "KINDS",
    "TARGETS",
    "DEFAULT_FALSE_FAIL_RATE",
    "DEFAULT_TV_ALTERNATIVE",
    "DEFAULT_BUDGET",
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

#: No time budget by default: the check runs the kind's fixed sample sizes from its seed, so its
#: verdict depends on the seed alone, never on the machine's speed or load. ``budget=SECONDS``
#: (``--budget``) opts in to shrinking the sizes to fit, and the report then says by how much.
DEFAULT_BUDGET = None


# ============================================================================ named targets
def _categorical_small() -> Categorical:
    # Six states with distinct probabilities, none tiny: every state is visited in a one-step test.
    return Categorical(np.log([0.04, 0.08, 0.12, 0.16, 0.25, 0.35]))


def _categorical_far() -> Categorical:
    # The same law written 1000 nats below zero, as the log-probability of a long sentence is:
    # exp() of these log-densities underflows to 0.0, so only log-space code survives.
    return Categorical(np.log([0.04, 0.08, 0.12, 0.16, 0.25, 0.35]) - 1000.0)


_BIGRAM_INITIAL = np.log([0.5, 0.3, 0.2])
# Row v: p(next | v) over tokens 0, 1, 2 and END (column 3).
_BIGRAM_TRANSITION = np.log(
    [
        [0.10, 0.50, 0.20, 0.20],
        [0.40, 0.10, 0.30, 0.20],
        [0.30, 0.30, 0.10, 0.30],
    ]
)
_BIGRAM_LENGTH = 3


def _bigram_small() -> FixedLengthBigram:
    return FixedLengthBigram(_BIGRAM_INITIAL, _BIGRAM_TRANSITION, _BIGRAM_LENGTH)


def _pairwise_small() -> PairwiseChain:
    # Strong, uneven couplings: updating sites in parallel (stale conditionals) visibly breaks pi.
    unary = np.array([[0.2, 0.0, -0.3], [0.0, 0.3, 0.0], [-0.2, 0.0, 0.4]])
    coupling = np.array([[1.2, -0.6, 0.0], [-0.6, 1.0, 0.2], [0.0, 0.2, 1.4]])
    return PairwiseChain(unary, coupling)


def _bigram_keywords() -> KeywordTarget:
    # Sentences of 1..4 tokens that contain token 2, scored by p(x)^0.8 times a topic bonus for token 1.
    base = BigramLM(_BIGRAM_INITIAL, _BIGRAM_TRANSITION, max_length=4, min_length=1)
    return KeywordTarget(base, keywords=[2], log_similarity=TopicSimilarity([1], weight=0.5), gamma=0.8)


#: name -> (one-line description, factory). Every target is small enough to enumerate.
TARGETS: dict[str, tuple[str, Callable[[], DiscreteTarget]]] = {
    "categorical-small": ("categorical over 6 states, probabilities 0.04..0.35", _categorical_small),
    "categorical-far": (
        "categorical-small with log-densities near -1000 (exp underflows, as for a long sentence)",
        _categorical_far,
    ),
    "bigram-small": ("bigram LM with END conditioned on length 3, V = 3 (27 sentences)", _bigram_small),
    "pairwise-small": ("pairwise chain (Potts-like MRF), L = 3, V = 3 (27 states)", _pairwise_small),
    "bigram-keywords": (
        "bigram LM, lengths 1..4, V = 3, keyword 2 required, gamma 0.8, topic bonus (90 sentences)",
        _bigram_keywords,
    ),
}


_BUILT = {}


def make_target(name: str) -> DiscreteTarget:
    """The named built-in target (see :data:`TARGETS`).

    Built once and shared (do not modify it): its enumeration, and the memo tables step functions keep
    per target (e.g. the CGMH paths of :mod:`textsampling.gallery.cgmh`), then serve every check.
    """
    if name not in TARGETS:
        raise ValueError(f"target must be one of {sorted(TARGETS)}, got {name!r}")
    if name not in _BUILT:
        _BUILT[name] = TARGETS[name][1]()
    return _BUILT[name]


class _TemperedTarget(DiscreteTarget):
    r""":math:`\pi_T \propto \exp(\log\rho / T)` on the states of ``base`` (what an annealing step keeps)."""

    def __init__(self, base: DiscreteTarget, temperature: float):
        self.base = base
        self.temperature = check_positive(temperature, "temperature")
        self.state_shape = base.state_shape

    def log_prob(self, states):
        return np.asarray(self.base.log_prob(states), dtype=np.float64) / self.temperature

    def enumerate_states(self):
        return self.base.enumerate_states()


def bigram_oracle(target: FixedLengthBigram):
    """The exact masked LM (:class:`~textsampling.lm.oracle.BigramOracle`) whose joint on length-``L``
    sentences is ``target``: what a ``mlm-gibbs`` step receives as ``lm``."""
    from textsampling.lm.oracle import BigramOracle

    if not isinstance(target, FixedLengthBigram):
        raise ValueError(f"an mlm-gibbs check needs a bigram target (e.g. bigram-small), got {target!r}")
    return BigramOracle(BigramLM(target.initial_logits, target.transition_logits, max_length=target.length))


def stationary_target(kind: str, target: str | DiscreteTarget, temperature: float = 2.0) -> DiscreteTarget:
    r"""The law a step of ``kind`` must leave invariant on ``target``: the target itself, or for
    ``anneal`` the tempered :math:`\pi_T \propto \rho^{1/T}`."""
    kind = _check_kind(kind)
    target = make_target(target) if isinstance(target, str) else target
    return _TemperedTarget(target, temperature) if kind.name == "anneal" else target


# ============================================================================ kinds of step function
@dataclass(frozen=True)
class Kind:
    """What a step function of one kind receives and returns, and how it is checked.

    Attributes
    ----------
    name : str
    signature : str
        The call, e.g. ``"step(rng, x, target) -> x_new"``.
    context_names : tuple of str
        Names of the arguments after ``(rng, x)``.
    targets : tuple of str
        Built-in targets this kind can be checked on; the first is the default.
    reversible : bool
        Whether every correct kernel of this kind is reversible (then the reversibility test runs).
    num_steps : int
        Default steps per chain of the long-run test: enough for the reference sampler of the kind
        to come within TV 1e-3 of the target from :func:`start_state` (computed exactly in the tests).
    num_samples : int
        Default number of exact draws of the one-step tests.
    """

    name: str
    signature: str
    context_names: tuple
    targets: tuple
    reversible: bool
    num_steps: int
    description: str
    num_samples: int = 10_000


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "mh",
            "step(rng, x, target) -> x_new",
            ("target",),
            ("bigram-small", "categorical-small", "categorical-far", "pairwise-small"),
            True,
            100,
            "one Metropolis-Hastings step (any proposal) on target.log_prob",
        ),
        Kind(
            "anneal",
            "step(rng, x, target, temperature) -> x_new",
            ("target", "temperature"),
            ("bigram-small", "categorical-small", "pairwise-small"),
            True,
            100,
            "one simulated-annealing step at a fixed temperature T; keeps pi_T ~ rho^(1/T)",
        ),
        Kind(
            "gibbs",
            "step(rng, x, target) -> x_new",
            ("target",),
            ("pairwise-small", "bigram-small"),
            False,
            60,
            "one Gibbs site update or sweep from target.conditional_log_probs(states, position)",
        ),
        Kind(
            "mlm-gibbs",
            "step(rng, x, lm) -> x_new",
            ("lm",),
            ("bigram-small",),
            False,
            60,
            "one Gibbs site update or sweep from lm.masked_log_probs(token_ids, positions)",
        ),
        Kind(
            "cgmh",
            "step(rng, x, target) -> x_new",
            ("target",),
            ("bigram-keywords",),
            True,
            100,
            "one CGMH move (replace/insert/delete) keeping target.keywords; PAD-padded sentences",
            # 40,000 gives power >= 0.999 against the position-protecting CGMH (one-step TV 0.017).
            40_000,
        ),
    )
}


def _check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return KINDS[kind]


# ============================================================================ loading the user's function
class StepSignatureError(TypeError):
    """The step function cannot be called the way its kind requires (a usage error)."""


class MalformedStepError(ValueError):
    """The step function raised or returned something that is not a state of the target (a failure)."""


def load_step_function(spec: str) -> Callable:
    """Import ``module:function`` (a module on ``sys.path``) or ``path/to/file.py:function``.

    Raises
    ------
    ValueError
        If ``spec`` has no ``:``, the module or file cannot be found, or the attribute is missing or not
        callable.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"step function must be given as module:function or path/to/file.py:function, got {spec!r}")
    module_part, _, function_name = spec.rpartition(":")
    if not module_part or not function_name:
        raise ValueError(f"step function must be given as module:function or path/to/file.py:function, got {spec!r}")
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        path = Path(module_part)
        if not path.is_file():
            raise ValueError(f"step function file {module_part!r} does not exist")
        module_name = f"_textsampling_check_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        # Imports next to the file (helpers of the user's code) should resolve.
        sys.path.insert(0, str(path.resolve().parent))
        try:
            module_spec.loader.exec_module(module)
        finally:
            sys.path.pop(0)
    else:
        if "" not in sys.path and "." not in sys.path:
            sys.path.insert(0, "")  # the working directory, as `python -m` would see it
        try:
            module = importlib.import_module(module_part)
        except ModuleNotFoundError as error:
            raise ValueError(f"cannot import module {module_part!r} for the step function: {error}") from None
    function = getattr(module, function_name, None)
    if function is None:
        raise ValueError(f"module {module_part!r} has no attribute {function_name!r}")
    if not callable(function):
        raise ValueError(f"{spec} is a {type(function).__name__}, not a function")
    return function


def check_signature(step_fn, kind: str) -> None:
    """Raise :class:`StepSignatureError` unless ``step_fn(rng, x, *context)`` is a valid call for ``kind``."""
    kind = _check_kind(kind)
    if not callable(step_fn):
        raise StepSignatureError(f"step function must be callable, got {type(step_fn).__name__}")
    try:
        signature = inspect.signature(step_fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: the first call will tell
    arguments = ("rng", "x") + kind.context_names
    try:
        signature.bind(*arguments)
    except TypeError:
        name = getattr(step_fn, "__name__", "step function")
        raise StepSignatureError(
            f"{name}{signature} cannot be called as {kind.signature} (kind {kind.name!r} passes "
            f"{len(arguments)} positional arguments: {', '.join(arguments)})"
        ) from None


# ============================================================================ checking what a step returns
def _describe(state) -> str:
    state = np.asarray(state)
    return str(state.tolist())


class _StepCaller:
    """Calls the user's step on one state with the kind's context and checks the result."""

    def __init__(self, step_fn, kind: Kind, target: DiscreteTarget, context: tuple):
        self.step_fn = step_fn
        self.kind = kind
        self.target = target
        self.context = context
        self.state_shape = tuple(target.state_shape)
        self.vocab_size = getattr(target, "vocab_size", None)
        self.num_states = target.num_states
        self.keywords = tuple(getattr(target, "keywords", ()))
        self.variable_length = isinstance(target, KeywordTarget) or isinstance(target, BigramLM)

    def __call__(self, rng, x) -> np.ndarray:
        given = int(x) if self.state_shape == () else np.array(x, dtype=np.int64)
        try:
            result = self.step_fn(rng, given, *self.context)
        except Exception as error:  # the user's bug, reported with the state that triggered it
            raise MalformedStepError(
                f"the step function raised {type(error).__name__}: {error} (at x = {_describe(x)})"
            ) from error
        return self.check_result(result, x)

    def check_result(self, result, x) -> np.ndarray:
        where = f"(at x = {_describe(x)})"
        if result is None:
            raise MalformedStepError(f"the step function returned None {where}: return the new state")
        if isinstance(result, tuple) and len(result) == 2 and np.ndim(result[0]) == len(self.state_shape):
            if not (self.state_shape and len(self.state_shape) == 1 and self.state_shape[0] == 2):
                raise MalformedStepError(
                    f"the step function returned a tuple of 2 {where}; return the new state only, "
                    "not (state, info)"
                )
        try:
            state = np.asarray(result)
        except Exception:  # ragged lists and the like
            raise MalformedStepError(f"the step function returned {result!r} {where}: not an array") from None
        if state.dtype == np.bool_ or state.dtype.kind not in "iu":
            raise MalformedStepError(
                f"the step function returned dtype {state.dtype} {where}; states hold integers "
                f"({'a state index' if self.state_shape == () else 'token ids'})"
            )
        if state.shape != self.state_shape:
            raise MalformedStepError(
                f"the step function returned shape {state.shape} {where}; expected shape {self.state_shape} "
                f"({'one int' if self.state_shape == () else 'the whole sequence'})"
            )
        state = state.astype(np.int64)
        if self.state_shape == ():
            if not 0 <= int(state) < self.num_states:
                raise MalformedStepError(
                    f"the step function returned state {int(state)} {where}; states are 0..{self.num_states - 1}"
                )
            return state
        if self.variable_length:
            is_pad = state == PAD
            length = int(np.argmax(is_pad)) if is_pad.any() else state.shape[0]
            if np.any(state[length:] != PAD):
                raise MalformedStepError(
                    f"the step function returned {state.tolist()} {where}; a sentence is tokens followed "
                    f"only by PAD = {PAD}"
                )
            tokens = state[:length]
        else:
            tokens = state
        outside = tokens[(tokens < 0) | (tokens >= self.vocab_size)]
        if outside.size:
            raise MalformedStepError(
                f"the step function returned {state.tolist()} {where}: token {int(outside[0])} is outside "
                f"the vocabulary 0..{self.vocab_size - 1}"
            )
        missing = [k for k in self.keywords if k not in tokens.tolist()]
        if missing:
            raise MalformedStepError(
                f"the step function returned {state.tolist()} {where}: it dropped keyword(s) {missing}; "
                "keywords must stay in every sentence"
            )
        return state


def _check_support(target: DiscreteTarget, states: np.ndarray, starts: np.ndarray) -> None:
    """Refuse a batch of returned states that holds a state of probability zero."""
    log_probs = np.asarray(target.log_prob(states), dtype=np.float64)
    bad = np.flatnonzero(~(log_probs > -np.inf))
    if bad.size:
        n = bad[0]
        raise MalformedStepError(
            f"the step function moved from x = {_describe(starts[n])} to {_describe(states[n])}, a state of "
            "probability zero under the target"
        )


# ============================================================================ the checks
#: Default number of independent chains of the long-run test.
DEFAULT_NUM_CHAINS = 200
#: Default temperature of an ``anneal`` check (above 1 the tempered chain mixes fast enough to test).
DEFAULT_TEMPERATURE = 2.0


def start_state(target: DiscreteTarget) -> np.ndarray:
    """The fixed start of the long-run test: the keywords alone for a keyword target (as CGMH starts),
    else the least probable state of the support (far from where the mass is)."""
    keywords = tuple(getattr(target, "keywords", ()))
    if keywords:
        candidate = np.full(target.state_shape, PAD, dtype=np.int64)
        candidate[: len(keywords)] = keywords
        if target.log_prob(candidate[None])[0] > -np.inf:
            return candidate
    log_probs = target.log_prob_all()
    support = np.flatnonzero(log_probs > -np.inf)
    return target.states[support[np.argmin(log_probs[support])]].copy()


#: Smallest expected count of a cell of the long-run test (the harness pools below its own threshold).
LONG_RUN_MIN_EXPECTED = 25.0


def long_run_cells(probabilities, num_chains: int) -> np.ndarray:
    """Group states into cells of expected count >= :data:`LONG_RUN_MIN_EXPECTED` for ``num_chains`` finals.

    States are taken from the most probable down and a cell is closed once its expected count
    reaches the threshold (the remainder joins the last cell); zero-probability states get a cell of
    their own, so landing there still fails at once. A few hundred chains then give a valid chi-square
    test on some cells instead of no test at all. Returns the cell of each state, shape ``(S,)``.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    cells = np.empty(probabilities.size, dtype=np.int64)
    order = np.argsort(-probabilities, kind="stable")
    cell, mass = 0, 0.0
    positive = order[probabilities[order] > 0]
    for position, state in enumerate(positive):
        cells[state] = cell
        mass += probabilities[state]
        rest = probabilities[positive[position + 1 :]].sum()
        if num_chains * mass >= LONG_RUN_MIN_EXPECTED and num_chains * rest >= LONG_RUN_MIN_EXPECTED:
            cell, mass = cell + 1, 0.0
    cells[probabilities == 0] = cell + 1
    return cells


class _Cells:
    """A target seen through coarser cells (what the long-run goodness-of-fit test bins into)."""

    def __init__(self, law: DiscreteTarget, cells: np.ndarray):
        self.law = law
        self.cells = cells
        self.probabilities = np.bincount(cells, weights=law.cell_probabilities(), minlength=cells.max() + 1)

    def cell_index(self, states):
        return self.cells[self.law.cell_index(states)]

    def cell_probabilities(self):
        return self.probabilities


@dataclass
class TestOutcome:
    """One test of a check: the harness's result, how long it took, and what it needed."""

    result: object  # textsampling.testing.StatisticalTestResult
    seconds: float
    detail: str


@dataclass
class CheckReport:
    """What :func:`check_step` found. ``print(report.format())``; ``report.passed``; ``report.plot(path)``.

    Attributes
    ----------
    step_name, kind, target_name : str
    target : DiscreteTarget
        The law the step must keep (tempered for ``anneal``).
    false_fail_rate, tv_alternative : float
        Probability that a correct sampler fails the whole check; the TV distance the powers refer to.
    outcomes : list of TestOutcome
    error : str or None
        Why the step function was malformed (then the check fails without statistics).
    observed, expected : numpy.ndarray or None
        Counts per state of the one-step test and their expectations under the target.
    budget : float or None
        The opt-in time budget (``None``: none, the fixed sample sizes).
    scale : float
        The factor by which the budget shrank the sample sizes (1 = none).
    seconds : float
        Wall time of the whole check.
    """

    step_name: str
    kind: str
    target_name: str
    target: DiscreteTarget
    false_fail_rate: float
    tv_alternative: float
    outcomes: list = field(default_factory=list)
    error: str | None = None
    observed: np.ndarray | None = None
    expected: np.ndarray | None = None
    budget: float | None = None
    scale: float = 1.0
    seconds: float = 0.0

    @property
    def tv_distance(self) -> float:
        """Deprecated old name of :attr:`tv_alternative` (one name for the TV alternative, as in
        :mod:`textsampling.testing`)."""
        warnings.warn(
            "CheckReport.tv_distance is deprecated; use CheckReport.tv_alternative", DeprecationWarning, stacklevel=2
        )
        return self.tv_alternative

    @property
    def passed(self) -> bool:
        return self.error is None and all(outcome.result.passed for outcome in self.outcomes)

    @property
    def p_values(self) -> dict:
        return {outcome.result.name: outcome.result.p_value for outcome in self.outcomes}

    def state_label(self, index: int) -> str:
        state = self.target.states[index]
        if np.ndim(state) == 0:
            return str(int(state))
        return " ".join("_" if int(t) == PAD else str(int(t)) for t in state)

    def _pair_label(self, label) -> str:
        """``"a->b"`` in cell indices as ``"[state a] -> [state b]"``."""
        parts = str(label).split("->")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            return " -> ".join(f"[{self.state_label(int(p))}]" for p in parts)
        return str(label)

    def misfit_rows(self, num_rows: int = 5):
        """The most over- and under-sampled states of the one-step test: (label, observed, expected, ratio)."""
        if self.observed is None:
            return [], []
        expected = self.expected
        residuals = (self.observed - expected) / np.sqrt(np.maximum(expected, 1e-12))
        order = np.argsort(residuals)
        rows = lambda indices: [  # noqa: E731
            (self.state_label(i), int(self.observed[i]), float(expected[i]),
             float(self.observed[i] / expected[i]) if expected[i] > 0 else np.inf)
            for i in indices
        ]
        over = [i for i in order[::-1][:num_rows] if residuals[i] > 0]
        under = [i for i in order[:num_rows] if residuals[i] < 0]
        return rows(over), rows(under)

    def format(self) -> str:
        """The report printed by ``textsampling check``."""
        verdict = "PASSES" if self.passed else "FAILS"
        lines = [
            f"textsampling check: {self.step_name} (kind {self.kind}, target {self.target_name}: "
            f"{TARGETS[self.target_name][0]})",
        ]
        if self.error is not None:
            lines += [f"  malformed step function: {self.error}", f"verdict: {verdict}"]
            return "\n".join(lines)
        share = self.false_fail_rate / max(len(self.outcomes), 1)
        for outcome in self.outcomes:
            result = outcome.result
            lines.append(
                f"  {result.name:<20} {'passed' if result.passed else 'FAILED':<7} p-value {result.p_value:<10.3g}"
                f"(fails below {share:.2g})  N = {result.num_samples:<6} power {result.power:.3f} at TV "
                f"{self.tv_alternative:g}  [{outcome.seconds:.1f} s]"
            )
            if outcome.detail:
                lines.append(f"  {'':<20} {outcome.detail}")
        if self.scale < 1.0:
            lines.append(
                f"  budget {self.budget:g} s: sample sizes scaled by {self.scale:.2f}; the powers above are "
                "what remains (raise --budget, or leave it out for the fixed sizes)"
            )
        elif self.budget is not None:
            lines.append(f"  budget {self.budget:g} s: not binding, the fixed sample sizes ran")
        lines.append(
            f"  false-fail rate {self.false_fail_rate:g}: a correct sampler fails this check with probability "
            f"at most {self.false_fail_rate:g} ({len(self.outcomes)} tests at {share:.2g} each)"
        )
        if not self.passed:
            over, under = self.misfit_rows()
            if over or under:
                lines.append("  one step from exact draws, the states most over- and under-sampled:")
                lines.append(f"    {'state':<14}{'observed':>10}{'expected':>11}{'ratio':>8}")
                for label, observed, expected, ratio in over + under:
                    lines.append(f"    {label:<14}{observed:>10}{expected:>11.1f}{ratio:>8.2f}")
            for outcome in self.outcomes:
                result = outcome.result
                if not result.passed and result.test == "reversibility":
                    pairs = ", ".join(
                        f"{self._pair_label(label)}: {obs} vs {exp:.1f}" for label, obs, exp in result.over_sampled[:3]
                    )
                    lines.append(f"  reversibility: moves seen more often than their reverse: {pairs}")
        lines.append(f"verdict: {verdict}  ({self.seconds:.1f} s)")
        return "\n".join(lines)

    def plot(self, path) -> Path:
        """Bar plot of observed vs expected frequencies after one step, with standardised residuals."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 0.25 * self.target.num_states + 2), 6),
                                             sharex=True, gridspec_kw={"height_ratios": [2, 1]})
        if self.observed is None:
            top.text(0.5, 0.5, self.error or "no one-step samples", ha="center", va="center", wrap=True)
        else:
            order = np.argsort(-self.expected, kind="stable")
            positions = np.arange(order.size)
            total = self.observed.sum()
            top.bar(positions - 0.2, self.expected[order] / total, width=0.4, label="target pi")
            top.bar(positions + 0.2, self.observed[order] / total, width=0.4, label="after one step")
            top.set_ylabel("frequency")
            top.legend()
            residuals = (self.observed - self.expected) / np.sqrt(np.maximum(self.expected, 1e-12))
            bottom.bar(positions, residuals[order], color=np.where(residuals[order] > 0, "tab:red", "tab:blue"))
            bottom.axhline(0.0, color="black", linewidth=0.8)
            bottom.set_ylabel("(obs - exp) / sqrt(exp)")
            bottom.set_xticks(positions)
            bottom.set_xticklabels([self.state_label(i) for i in order], rotation=90, fontsize=7)
            bottom.set_xlabel("state (most probable first)")
        top.set_title(f"{self.step_name}: {self.kind} on {self.target_name} — {'passes' if self.passed else 'FAILS'}")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path


def _context(kind: Kind, target: DiscreteTarget, temperature: float) -> tuple:
    if kind.name == "anneal":
        return (target, temperature)
    if kind.name == "mlm-gibbs":
        return (bigram_oracle(target),)
    return (target,)


def check_step(
    step_fn,
    kind: str = "mh",
    target: str | None = None,
    *,
    false_fail_rate: float = DEFAULT_FALSE_FAIL_RATE,
    tv_alternative: float = DEFAULT_TV_ALTERNATIVE,
    budget: float | None = DEFAULT_BUDGET,
    seed: int = 0,
    temperature: float = DEFAULT_TEMPERATURE,
    num_samples: int | None = None,
    num_chains: int = DEFAULT_NUM_CHAINS,
    num_steps: int | None = None,
    reversible: bool | None = None,
    step_name: str | None = None,
) -> CheckReport:
    """Check that ``step_fn`` leaves the target invariant and reaches it; never raises for the step's bugs.

    Parameters
    ----------
    step_fn : callable
        The step, with the signature of ``kind`` (see the module docstring and :data:`KINDS`).
    kind : str
        One of :data:`KINDS`: ``"mh"``, ``"anneal"``, ``"gibbs"``, ``"mlm-gibbs"``, ``"cgmh"``.
    target : str, optional
        One of :data:`TARGETS` allowed for ``kind`` (default: the kind's first).
    false_fail_rate : float
        Probability that a correct sampler fails the check, split evenly between its tests.
    tv_alternative : float
        The TV distance the reported powers refer to.
    budget : float or None
        Opt-in: seconds the step calls may take; the sample sizes shrink to fit (timed on this
        machine, so the sizes, and with them the verdict, then depend on its speed and load), and
        the report says by how much. ``None`` (the default): the fixed sizes, a verdict that
        depends on ``seed`` alone.
    seed : int
        Seed of the :class:`numpy.random.Generator` that draws the exact samples and is passed to the step.
    temperature : float
        The fixed temperature of an ``anneal`` check.
    num_samples : int, optional
        Exact draws of the one-step tests before the budget (default: the kind's).
    num_chains : int
        Chains of the long-run test before the budget; 0 leaves the long-run test out.
    num_steps : int, optional
        Steps per chain of the long-run test (default: the kind's).
    reversible : bool, optional
        Run the reversibility test (default: whether the kind's correct kernels are reversible).

    Returns
    -------
    CheckReport

    Raises
    ------
    StepSignatureError
        If ``step_fn`` cannot take the kind's arguments.
    ValueError, TypeError
        For a bad ``kind``, ``target`` or option.
    """
    from textsampling.testing import apply_step, goodness_of_fit_test, run_independent_chains, symmetry_test
    from textsampling.testing.statistics import check_false_fail_rate

    started = time.perf_counter()
    kind = _check_kind(kind)
    target_name = kind.targets[0] if target is None else target
    if target_name not in kind.targets:
        raise ValueError(f"target for kind {kind.name!r} must be one of {list(kind.targets)}, got {target_name!r}")
    false_fail_rate = check_false_fail_rate(false_fail_rate)
    tv_alternative = check_positive(tv_alternative, "tv_alternative")
    if tv_alternative > 1:
        raise ValueError(f"tv_alternative must lie in (0, 1], got {tv_alternative}")
    if budget is not None:
        budget = check_positive(budget, "budget")
    seed = check_int(seed, "seed")
    temperature = check_positive(temperature, "temperature")
    num_samples = kind.num_samples if num_samples is None else check_int(num_samples, "num_samples", minimum=100)
    num_chains = check_int(num_chains, "num_chains", minimum=0)
    if 0 < num_chains < 20:
        raise ValueError(f"num_chains must be 0 (no long-run test) or >= 20, got {num_chains}")
    num_steps = kind.num_steps if num_steps is None else check_int(num_steps, "num_steps", minimum=1)
    reversible = kind.reversible if reversible is None else bool(reversible)
    check_signature(step_fn, kind.name)
    step_name = step_name or getattr(step_fn, "__qualname__", None) or repr(step_fn)

    base = make_target(target_name)
    law = stationary_target(kind.name, base, temperature)
    caller = _StepCaller(step_fn, kind, base, _context(kind, base, temperature))
    report = CheckReport(step_name, kind.name, target_name, law, false_fail_rate, tv_alternative, budget=budget)
    num_tests = 1 + int(reversible) + int(num_chains > 0)
    share = false_fail_rate / num_tests
    rng = np.random.default_rng(seed)
    try:
        # A few probe calls, always made (so the draws that follow are the same with or without a
        # budget); timed only to fit the sample sizes into an opt-in budget. (The first calls may
        # fill caches or import modules: time a second batch.)
        probe = law.sample_exact(rng, 20)
        apply_step(caller, rng, probe)
        tic = time.perf_counter()
        apply_step(caller, rng, probe)
        per_call = (time.perf_counter() - tic) / len(probe)
        planned_calls = num_samples + num_chains * num_steps
        if budget is not None and per_call * planned_calls > budget:
            report.scale = budget / (per_call * planned_calls)
            # Floors below which the chi-square tests have too few cells to say anything.
            num_samples = max(500, int(num_samples * report.scale))
            num_chains = max(100, int(num_chains * report.scale)) if num_chains else 0

        # One step from exact draws: invariance, and (same pairs) reversibility.
        tic = time.perf_counter()
        initial = law.sample_exact(rng, num_samples)
        stepped = apply_step(caller, rng, initial)
        _check_support(law, stepped, initial)
        seconds = time.perf_counter() - tic
        invariance = goodness_of_fit_test(stepped, law, share, tv_alternative, name="one-step invariance")
        report.outcomes.append(TestOutcome(invariance, seconds, ""))
        report.observed = np.bincount(law.cell_index(stepped), minlength=law.num_states).astype(np.float64)
        report.expected = num_samples * law.cell_probabilities()
        if reversible:
            pairs = symmetry_test(law.cell_index(initial), law.cell_index(stepped), share, tv_alternative)
            report.outcomes.append(TestOutcome(pairs, 0.0, "(same pairs as the one-step test)"))

        # Long run from one fixed start: convergence, not just invariance.
        if num_chains == 0:
            report.seconds = time.perf_counter() - started
            return report
        tic = time.perf_counter()
        start = start_state(law)
        starts = np.repeat(start[None], num_chains, axis=0)
        final = run_independent_chains(caller, starts, rng, num_steps)
        _check_support(law, final, starts)
        cells = _Cells(law, long_run_cells(law.cell_probabilities(), num_chains))
        long_run = goodness_of_fit_test(final, cells, share, tv_alternative, name="long-run fit")
        detail = (
            f"{num_chains} chains x {num_steps} steps from {_describe(start)}, finals in "
            f"{cells.probabilities.size} cells; assumes a correct chain mixes within that many steps "
            "(raise --num-steps if yours is slow)"
        )
        report.outcomes.append(TestOutcome(long_run, time.perf_counter() - tic, detail))
    except MalformedStepError as error:
        report.error = str(error)
    report.seconds = time.perf_counter() - started
    return report


# ============================================================================ the command line
def _kinds_help() -> str:
    lines = ["step function signatures by --kind:"]
    for kind in KINDS.values():
        lines.append(f"  {kind.name:<10} {kind.signature}: {kind.description} (targets: {', '.join(kind.targets)})")
    lines.append("targets:")
    for name, (description, _) in TARGETS.items():
        lines.append(f"  {name:<18} {description}")
    lines.append("exit status: 0 passes, 1 fails (or the step raised / returned something malformed), 2 usage error")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``textsampling check`` (called by :mod:`textsampling.cli`)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _kinds_help()
    parser.add_argument("step", help="the step function: module:function or path/to/file.py:function")
    parser.add_argument("--kind", required=True, choices=sorted(KINDS), help="what the step function is")
    parser.add_argument("--target", default=None, help="built-in target (default: the kind's first)")
    parser.add_argument("--false-fail-rate", type=float, default=DEFAULT_FALSE_FAIL_RATE,
                        help="probability that a correct sampler fails the check (default %(default)g)")
    parser.add_argument("--tv", type=float, default=DEFAULT_TV_ALTERNATIVE, dest="tv_alternative",
                        help="TV distance the reported power refers to (default %(default)g)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                        help="opt-in: seconds the step calls may take; the sample sizes shrink to fit and "
                        "the report says so (default: no budget, fixed sizes, a verdict that depends on "
                        "--seed alone)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator passed to the step (default 0)")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                        help="fixed temperature of an anneal check (default %(default)g)")
    parser.add_argument("--num-samples", type=int, default=None, help="exact draws of the one-step tests")
    parser.add_argument("--num-chains", type=int, default=DEFAULT_NUM_CHAINS, help="chains of the long-run test")
    parser.add_argument("--num-steps", type=int, default=None, help="steps per chain of the long-run test")
    parser.add_argument("--reversible", action=argparse.BooleanOptionalAction, default=None,
                        help="run the reversibility test (default: for mh, anneal, cgmh)")
    parser.add_argument("--plot", default=None, metavar="PATH", help="write observed vs expected frequencies here")


def run(args) -> int:
    """Run ``textsampling check``: print the report; 0 passes, 1 fails, 2 usage error."""
    try:
        step_fn = load_step_function(args.step)
        report = check_step(
            step_fn,
            args.kind,
            args.target,
            false_fail_rate=args.false_fail_rate,
            tv_alternative=args.tv_alternative,
            budget=args.budget,
            seed=args.seed,
            temperature=args.temperature,
            num_samples=args.num_samples,
            num_chains=args.num_chains,
            num_steps=args.num_steps,
            reversible=args.reversible,
            step_name=args.step,
        )
    except (ValueError, TypeError) as error:
        print(f"textsampling check: error: {error}", file=sys.stderr)
        return 2
    print(report.format())
    if args.plot:
        print(f"plot written to {report.plot(args.plot)}")
    return 0 if report.passed else 1
