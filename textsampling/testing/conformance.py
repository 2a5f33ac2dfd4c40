r"""Does a step function really sample its target? The conformance kit behind ``textsampling check``.

A user writes one step of a sampler as a plain Python function and asks whether it leaves the target
distribution :math:`\pi` invariant (and reaches it). On small enumerable targets the answer is a
statistical test with a stated false-fail rate, built on the harness of :mod:`textsampling.testing`;
the report is :class:`~textsampling.testing.report.CheckReport`, the named targets are those of
:mod:`textsampling.targets.named`.
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
    (N, lm.vocab_size)``, asked with ``lm.mask_token_id`` put at each row's position; ids in
    ``lm.special_token_ids`` (END, [MASK]) have log-probability ``-inf`` and must never be written. The
    lm is the bigram's exact masked LM (the target is the bigram's joint) where the position holds
    [MASK], and leans toward the visible token where it does not (:func:`bigram_oracle`).
``cgmh``  ``step(rng, x, target) -> x_new``
    A CGMH move (replace / insert / delete) on a variable-length sentence: ``x`` is ``(L,)``
    right-padded with ``PAD = -1``; ``target.log_prob`` is :math:`\gamma \log p + \log \mathrm{sim} +
    \log\chi`, ``target.keywords`` the tokens every sentence must keep, ``target.base`` the bigram
    language model (``next_token_log_probs``, ``min_length``, ``max_length``).

``pt-swap``  ``swap(uniforms, state, *, temperatures) -> state`` (or ``(state, info)``)
    The swap step of parallel tempering, with the signature of
    :func:`textsampling.reference.parallel_tempering.swap`: ``state.x`` holds ``M`` replicas (coldest
    first), ``state.log_prob`` their untempered :math:`\log\rho`, ``uniforms`` ``M`` uniforms in (0, 1).
    It must keep the product law of the replicas (replica ``m`` at :math:`\rho^{1/T_m}`, independently):
    the one-step test runs on the joint states (``--temperatures``, default 1,2,4), and where the joint
    space is small the pairs are also tested against the exact kernel of the stochastic even–odd swap
    (``--no-exact-kernel`` for a correct swap of another scheme). No long-run test: a swap alone never converges. See
    :mod:`textsampling.testing.replica_exchange`.

A function with the wrong signature is a usage error (exit code 2). A function that raises, or returns
something malformed — the wrong shape, a non-integer, a token outside the vocabulary, a dropped keyword,
a state of probability zero — fails the check at once (exit code 1), with the state it was given.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass

import numpy as np

from textsampling._validation import check_int, check_positive
from textsampling.lm.tokens import sequence_length
from textsampling.reference.parallel_tempering import check_temperatures
from textsampling.targets import PAD, BigramLM, DiscreteTarget, FixedLengthBigram, KeywordTarget
from textsampling.targets.named import TemperedTarget, make_target
from textsampling.testing import replica_exchange
from textsampling.testing.black_box import apply_step, goodness_of_fit_test, run_independent_chains
from textsampling.testing.report import CheckReport, TestOutcome

# DEFAULT_FALSE_FAIL_RATE and DEFAULT_TV_ALTERNATIVE are defined once, with the tests they
# parametrise; re-exported here for the check's callers.
from textsampling.testing.statistics import (
    DEFAULT_FALSE_FAIL_RATE,
    DEFAULT_TV_ALTERNATIVE,
    check_false_fail_rate,
    symmetry_test,
)

__all__ = [
    "KINDS",
    "DEFAULT_FALSE_FAIL_RATE",
    "DEFAULT_TV_ALTERNATIVE",
    "DEFAULT_BUDGET",
    "DEFAULT_NUM_CHAINS",
    "DEFAULT_TEMPERATURE",
    "Kind",
    "MalformedStepError",
    "StepSignatureError",
    "stationary_target",
    "start_state",
    "long_run_cells",
    "bigram_oracle",
    "check_signature",
    "check_step",
]

#: No time budget by default: the check runs the kind's fixed sample sizes from its seed, so its
#: verdict depends on the seed alone, never on the machine's speed or load. ``budget=SECONDS``
#: (``--budget``) opts in to shrinking the sizes to fit, and the report then says by how much.
DEFAULT_BUDGET = None


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
    arguments : tuple of str
        The positional arguments before the context: ``("rng", "x")``, or ``("uniforms", "state")`` for
        ``pt-swap``.
    keyword_context : bool
        The context is passed by keyword (``temperatures=`` of ``pt-swap``), not positionally.
    """

    name: str
    signature: str
    context_names: tuple
    targets: tuple
    reversible: bool
    num_steps: int
    description: str
    num_samples: int = 10_000
    arguments: tuple = ("rng", "x")
    keyword_context: bool = False


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
        Kind(
            "pt-swap",
            "swap(uniforms, state, *, temperatures) -> state",
            ("temperatures",),
            ("categorical-small", "categorical-far", "pairwise-small", "bigram-small"),
            False,  # a sweep over the pairs in turn is correct and not reversible: --reversible opts in
            1,  # no long-run test: a swap alone never converges
            "the swap step of parallel tempering (as parallel_tempering.swap); keeps prod_m rho^(1/T_m)",
            replica_exchange.DEFAULT_NUM_SAMPLES,
            ("uniforms", "state"),
            True,
        ),
    )
}


def _check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return KINDS[kind]


# ============================================================================ the law a kind keeps
def bigram_oracle(target: FixedLengthBigram):
    """The exact masked LM whose joint on length-``L`` sentences is ``target``: what a ``mlm-gibbs`` step
    receives as ``lm``.

    It is :class:`~textsampling.lm.oracle.MaskSensitiveOracle`: its conditional at ``i`` is exact when
    position ``i`` holds ``lm.mask_token_id`` and changes with the visible token otherwise, so a step
    that forgets to put [MASK] at the position it resamples samples a different law, and fails.
    """
    from textsampling.lm.oracle import MaskSensitiveOracle

    if not isinstance(target, FixedLengthBigram):
        raise ValueError(f"an mlm-gibbs check needs a bigram target (e.g. bigram-small), got {target!r}")
    return MaskSensitiveOracle.for_fixed_length(target)


def stationary_target(kind: str, target: str | DiscreteTarget, temperature: float = 2.0,
                      temperatures=None) -> DiscreteTarget:
    r"""The law a step of ``kind`` must leave invariant on ``target``: the target itself, for
    ``anneal`` the tempered :math:`\pi_T \propto \rho^{1/T}`, for ``pt-swap`` the product
    :math:`\prod_m \rho^{1/T_m}` over ``temperatures`` (default
    :data:`~textsampling.testing.replica_exchange.DEFAULT_TEMPERATURES`)."""
    kind = _check_kind(kind)
    target = make_target(target) if isinstance(target, str) else target
    if kind.name == "pt-swap":
        ladder = replica_exchange.DEFAULT_TEMPERATURES if temperatures is None else temperatures
        return replica_exchange.ReplicaProduct(target, ladder)
    return TemperedTarget(target, temperature) if kind.name == "anneal" else target


# ============================================================================ the step function's errors
class StepSignatureError(TypeError):
    """The step function cannot be called the way its kind requires (a usage error)."""


class MalformedStepError(ValueError):
    """The step function raised or returned something that is not a state of the target (a failure)."""


def check_signature(step_fn, kind: str) -> None:
    """Raise :class:`StepSignatureError` unless ``step_fn(rng, x, *context)`` is a valid call for ``kind``."""
    kind = _check_kind(kind)
    if not callable(step_fn):
        raise StepSignatureError(f"step function must be callable, got {type(step_fn).__name__}")
    try:
        signature = inspect.signature(step_fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: the first call will tell
    arguments = kind.arguments if kind.keyword_context else kind.arguments + kind.context_names
    keywords = {name: None for name in kind.context_names} if kind.keyword_context else {}
    try:
        signature.bind(*arguments, **keywords)
    except TypeError:
        name = getattr(step_fn, "__name__", "step function")
        passed = f"{len(arguments)} positional arguments: {', '.join(arguments)}"
        if keywords:
            passed += f", then {', '.join(keywords)} by keyword"
        raise StepSignatureError(
            f"{name}{signature} cannot be called as {kind.signature} (kind {kind.name!r} passes {passed})"
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
            length = sequence_length(state)
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
    temperatures=None,
    exact_kernel: bool | None = None,
) -> CheckReport:
    """Check that ``step_fn`` leaves the target invariant and reaches it; never raises for the step's bugs.

    Parameters
    ----------
    step_fn : callable
        The step, with the signature of ``kind`` (see the module docstring and :data:`KINDS`).
    kind : str
        One of :data:`KINDS`: ``"mh"``, ``"anneal"``, ``"gibbs"``, ``"mlm-gibbs"``, ``"cgmh"``, ``"pt-swap"``.
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
    step_name : str, optional
        How the report names the step (default: its qualified name).
    temperatures : array_like, optional
        ``pt-swap`` only: the ladder, strictly increasing (default
        :data:`~textsampling.testing.replica_exchange.DEFAULT_TEMPERATURES`).
    exact_kernel : bool, optional
        ``pt-swap`` only: test the pairs against the exact stochastic even–odd swap kernel (default:
        where the joint space has at most
        :data:`~textsampling.testing.replica_exchange.MAX_EXACT_KERNEL_STATES` states).

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
    if kind.name != "pt-swap":
        for name, value in (("temperatures", temperatures), ("exact_kernel", exact_kernel)):
            if value is not None:
                raise ValueError(f"{name} is used by kind 'pt-swap' only, not by kind {kind.name!r}")
    else:
        ladder = check_temperatures(replica_exchange.DEFAULT_TEMPERATURES if temperatures is None else temperatures)
    check_signature(step_fn, kind.name)
    step_name = step_name or getattr(step_fn, "__qualname__", None) or repr(step_fn)
    if kind.name == "pt-swap":  # the replicas' product law: its own one-step tests, no long run
        return replica_exchange.check_swap(
            step_fn, target_name, temperatures=ladder, false_fail_rate=false_fail_rate,
            tv_alternative=tv_alternative, budget=budget, seed=seed, num_samples=num_samples,
            reversible=reversible, exact_kernel=exact_kernel, step_name=step_name,
        )

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
