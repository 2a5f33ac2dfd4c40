r"""Does a parallel-tempering swap step keep the product law? The check behind ``textsampling check --kind pt-swap``.

Parallel tempering (:mod:`textsampling.reference.parallel_tempering`) runs :math:`M` replicas at
temperatures :math:`T_0 < \dots < T_{M-1}` and targets the product

.. math::
    \Pi(x_0, \dots, x_{M-1}) = \prod_m \rho(x_m)^{1/T_m} / Z_m .

The moves of each replica are ordinary MH steps (``--kind anneal`` checks one); what is particular to
parallel tempering is the *swap* of neighbouring replicas' states, accepted with
:math:`\min\bigl(1, (\rho(x_{i+1}) / \rho(x_i))^{1/T_i - 1/T_{i+1}}\bigr)`. A swap step with the
signature of :func:`~textsampling.reference.parallel_tempering.swap`,

``swap(uniforms, state, *, temperatures) -> state`` (or ``(state, info)``),

is checked on a small enumerable base target :math:`\rho` (one of :data:`textsampling.targets.named.TARGETS`)
and a ladder of temperatures (default :data:`DEFAULT_TEMPERATURES`): the joint space has
:math:`S^M` states, so :math:`\Pi` is known exactly (:class:`ReplicaProduct`). ``state`` is a
:class:`~textsampling.reference.parallel_tempering.PTState`: ``state.x`` ``(M,) + state_shape`` holds
the replicas, coldest first, ``state.log_prob`` ``(M,)`` their *untempered* :math:`\log\rho`;
``uniforms`` holds ``M`` uniforms in (0, 1) (``parallel_tempering.swap`` reads ``uniforms[0]`` for
the parity of the pairs and ``uniforms[1 + i]`` to decide pair ``(i, i + 1)``; a swap of another
scheme may read fewer). The returned state must hold the same replicas' states rearranged (a swap
exchanges, it never makes a state), with ``log_prob`` moved along with them.

The tests, on the same pairs :math:`(x_0, x_1)` with :math:`x_0 \sim \Pi` drawn exactly and
:math:`x_1` one swap step from it (false-fail rate split evenly, Bonferroni):

``one-step invariance``
    :math:`x_1 \sim \Pi` (chi-square on the joint states): what every correct swap must satisfy,
    whatever its scheme;
``transition law`` (default on where the joint space has at most :data:`MAX_EXACT_KERNEL_STATES`
    states; ``exact_kernel=False`` / ``--no-exact-kernel`` leaves it out)
    the pairs follow :math:`\Pi_a K_{ab}` with :math:`K` the exact kernel of the stochastic even–odd swap
    of :func:`~textsampling.reference.parallel_tempering.swap`
    (:func:`~textsampling.reference.parallel_tempering.swap_transition_matrix`): a move :math:`K` forbids
    (two replicas that are not neighbours exchanged, both parities at once) fails at once. A correct
    swap of another scheme (all pairs in turn, one random pair) keeps :math:`\Pi` but fails this test:
    check it with ``--no-exact-kernel``;
``reversibility`` (opt-in, ``reversible=True``)
    :math:`(x_0, x_1)` and :math:`(x_1, x_0)` have one law: true of the stochastic even–odd swap, not of
    a sweep over the pairs in turn, which is correct all the same.

There is no long-run test: a swap step alone only permutes the replicas' states and never converges.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from textsampling.randomness import draw_uniforms, integer_from_uniform
from textsampling.reference import parallel_tempering
from textsampling.reference.parallel_tempering import PTState
from textsampling.targets.base import DiscreteTarget
from textsampling.targets.named import make_target
from textsampling.testing.black_box import apply_step, goodness_of_fit_test
from textsampling.testing.report import CheckReport, TestOutcome
from textsampling.testing.statistics import chi_square_counts_test, symmetry_test

__all__ = [
    "DEFAULT_TEMPERATURES",
    "DEFAULT_NUM_SAMPLES",
    "MAX_EXACT_KERNEL_STATES",
    "ReplicaProduct",
    "MalformedSwapError",
    "swap_with",
    "swap_kernel",
    "SwapCaller",
    "probability_cells",
    "ProbabilityCells",
    "MIN_EXPECTED_PER_CELL",
    "check_swap",
]

#: The default ladder: three replicas, so both parities of pairs, (0, 1) and (1, 2), are exercised.
DEFAULT_TEMPERATURES = (1.0, 2.0, 4.0)
#: Exact draws of the one-step tests: the one-step test alone has power >= 0.999 against each wrong swap
#: of :mod:`textsampling.testing.faulty` on the default target and ladder (computed exactly in
#: tests/test_check_pt_swap.py from their kernels).
DEFAULT_NUM_SAMPLES = 20_000
#: The transition-law test builds the dense ``(S^M, S^M)`` kernel: at most this many joint states.
MAX_EXACT_KERNEL_STATES = 2_000


class ReplicaProduct(DiscreteTarget):
    r""":math:`\Pi \propto \prod_m \rho(x_m)^{1/T_m}` over the joint states, a replica named by its base state's index.

    A joint state is the ``(M,)`` int vector of the replicas' indices into ``base.states`` (for a
    categorical base, the states themselves); the enumeration is ``itertools.product`` order, replica 0
    the slowest index, the order of :func:`~textsampling.reference.parallel_tempering.swap_transition_matrix`.
    """

    def __init__(self, base: DiscreteTarget, temperatures):
        self.base = base
        self.temperatures = parallel_tempering.check_temperatures(temperatures)
        self.num_replicas = int(self.temperatures.shape[0])
        self.state_shape = (self.num_replicas,)
        self._base_log_rho = base.log_prob_all()  # (S,)

    def __repr__(self) -> str:
        return f"ReplicaProduct({self.base!r}, temperatures={self.temperatures.tolist()})"

    def log_prob(self, states) -> np.ndarray:
        indices = self._as_states(states)  # (N, M)
        if np.any((indices < 0) | (indices >= self.base.num_states)):
            raise ValueError(f"states must hold base-state indices 0..{self.base.num_states - 1}")
        return np.sum(self._base_log_rho[indices] / self.temperatures[None, :], axis=1)  # (N,)

    def enumerate_states(self) -> np.ndarray:
        return np.array(list(itertools.product(range(self.base.num_states), repeat=self.num_replicas)),
                        dtype=np.int64).reshape(-1, self.num_replicas)

    def state_index(self, states) -> np.ndarray:
        """The joint index ``sum_m i_m S^(M-1-m)`` (the enumeration order), without a dictionary lookup."""
        indices = self._as_states(states)  # (N, M)
        if np.any((indices < 0) | (indices >= self.base.num_states)):
            raise ValueError(f"states must hold base-state indices 0..{self.base.num_states - 1}")
        return np.ravel_multi_index(tuple(indices.T), (self.base.num_states,) * self.num_replicas)

    def replicas(self, indices) -> np.ndarray:
        """The base states of joint states: ``(N, M)`` indices -> ``(N, M) + base.state_shape``."""
        return self.base.states[np.asarray(indices, dtype=np.int64)]


# ============================================================================ swaps built from a log-acceptance
def swap_with(log_accept_prob):
    r"""A swap step with :func:`parallel_tempering.swap`'s layout whose pair ``(i, i+1)`` is accepted with
    ``log_accept_prob(log_rho_i, log_rho_j, T_i, T_j)``.

    With :func:`parallel_tempering.swap_log_accept_prob` it is the correct swap; the deliberately wrong
    swaps of :mod:`textsampling.testing.faulty` pass another function. Returns
    ``swap(uniforms, state, *, temperatures) -> (PTState, (proposed, log_alphas, accepted))``.
    """

    def swap(uniforms, state, *, temperatures):
        temperatures = parallel_tempering.check_temperatures(temperatures)
        num_replicas = temperatures.shape[0]
        x, log_prob = np.array(state.x), np.array(state.log_prob, dtype=np.float64)
        proposed = np.zeros(num_replicas - 1, dtype=bool)
        log_alphas = np.full(num_replicas - 1, np.nan)
        accepted = np.zeros(num_replicas - 1, dtype=bool)
        for i in range(int(integer_from_uniform(uniforms[0], 2)), num_replicas - 1, 2):
            proposed[i] = True
            log_alphas[i] = log_accept_prob(log_prob[i], log_prob[i + 1], temperatures[i], temperatures[i + 1])
            with np.errstate(divide="ignore", invalid="ignore"):  # NaN compares False: a rejection
                accepted[i] = bool(np.log(uniforms[1 + i]) < log_alphas[i])
            if accepted[i]:
                x[[i, i + 1]] = x[[i + 1, i]]
                log_prob[[i, i + 1]] = log_prob[[i + 1, i]]
        return PTState(x, log_prob), (proposed, log_alphas, accepted)

    return swap


def swap_kernel(target: DiscreteTarget, temperatures, log_accept_prob=parallel_tempering.swap_log_accept_prob):
    """Exact kernel of :func:`swap_with` ``(log_accept_prob)`` on the joint states of :class:`ReplicaProduct`.

    With the default it equals :func:`parallel_tempering.swap_transition_matrix` (a test checks it).
    ``(S^M, S^M)``.
    """
    product = ReplicaProduct(target, temperatures)
    log_rho = target.log_prob_all()
    temperatures, num_replicas = product.temperatures, product.num_replicas
    joint = product.states
    matrix = np.zeros((joint.shape[0], joint.shape[0]))
    for n, state in enumerate(joint):
        for parity in (0, 1):
            pairs = list(range(parity, num_replicas - 1, 2))
            for pattern in itertools.product((False, True), repeat=len(pairs)):  # the pairs decide independently
                probability, after = 0.5, state.copy()
                for i, accept in zip(pairs, pattern):
                    log_alpha = log_accept_prob(log_rho[state[i]], log_rho[state[i + 1]], temperatures[i],
                                                temperatures[i + 1])
                    alpha = 0.0 if np.isnan(log_alpha) else float(np.exp(min(log_alpha, 0.0)))
                    probability *= alpha if accept else 1.0 - alpha
                    if accept:
                        after[[i, i + 1]] = after[[i + 1, i]]
                matrix[n, product.state_index(after[None])[0]] += probability
    return matrix


# ============================================================================ calling the user's swap
class MalformedSwapError(ValueError):
    """The swap raised, or returned something that is not the replicas rearranged (a failure of the check)."""


def _label(replicas) -> str:
    return str(np.asarray(replicas).tolist())


class SwapCaller:
    """``caller(rng, joint_indices (M,)) -> joint_indices (M,)``: one call of the user's swap, checked.

    Draws ``M`` uniforms from ``rng`` (:func:`textsampling.randomness.draw_uniforms`), hands the swap a
    :class:`PTState` of the replicas' base states and untempered :math:`\\log\\rho`, and raises
    :class:`MalformedSwapError` unless the result holds the same replicas rearranged, with their
    ``log_prob`` (when it has one) moved along.
    """

    def __init__(self, swap_fn, product: ReplicaProduct):
        self.swap_fn = swap_fn
        self.product = product
        self.log_rho = product.base.log_prob_all()  # (S,)

    def __call__(self, rng, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)  # (M,)
        replicas = self.product.replicas(indices)  # (M,) + base shape
        state = PTState(replicas.copy(), self.log_rho[indices].copy())
        uniforms = draw_uniforms(rng, 0, self.product.num_replicas)
        where = f"(at x = {_label(replicas)})"
        try:
            result = self.swap_fn(uniforms, state, temperatures=self.product.temperatures.copy())
        except Exception as error:  # the user's bug, reported with the state that triggered it
            raise MalformedSwapError(f"the swap raised {type(error).__name__}: {error} {where}") from error
        return self._indices_of(result, indices, where)

    def _indices_of(self, result, indices, where) -> np.ndarray:
        if result is None:
            raise MalformedSwapError(f"the swap returned None {where}: return the swapped state (a PTState, or "
                                     "(state, info) as parallel_tempering.swap does)")
        if not hasattr(result, "x") and isinstance(result, tuple) and result and hasattr(result[0], "x"):
            result = result[0]  # (state, info)
        if not hasattr(result, "x"):
            raise MalformedSwapError(f"the swap returned a {type(result).__name__} {where}: return the swapped state, "
                                     "an object with .x and .log_prob (PTState), or (state, info)")
        try:
            x = np.asarray(result.x)
        except Exception:
            raise MalformedSwapError(f"the swap returned state.x = {result.x!r} {where}: not an array") from None
        expected_shape = (self.product.num_replicas,) + tuple(self.product.base.state_shape)
        if x.dtype == np.bool_ or x.dtype.kind not in "iu":
            raise MalformedSwapError(f"the swap returned state.x of dtype {x.dtype} {where}; states hold integers")
        if x.shape != expected_shape:
            raise MalformedSwapError(f"the swap returned state.x of shape {x.shape} {where}; expected "
                                     f"{expected_shape}, one row per replica")
        try:
            new = self.product.base.state_index(x.astype(np.int64))  # (M,)
        except ValueError:
            raise MalformedSwapError(f"the swap returned replicas {_label(x)} {where}: not states of the "
                                     "target") from None
        if not np.array_equal(np.sort(new), np.sort(indices)):
            raise MalformedSwapError(f"the swap returned replicas {_label(x)} {where}: a swap only exchanges the "
                                     "replicas' states, it never makes or copies one")
        if hasattr(result, "log_prob"):
            log_prob = np.asarray(result.log_prob, dtype=np.float64).reshape(-1)
            wanted = self.log_rho[new]
            if log_prob.shape != wanted.shape or not np.allclose(log_prob, wanted, rtol=1e-12, atol=0.0):
                raise MalformedSwapError(
                    f"the swap returned log_prob {log_prob.tolist()} for replicas {_label(x)} {where}, whose log rho "
                    f"is {wanted.tolist()}: the log-densities must move with their states"
                )
        return new


# ============================================================================ the check
#: Smallest expected count of a cell of the one-step test (see :class:`ProbabilityCells`).
MIN_EXPECTED_PER_CELL = 25.0


def probability_cells(probabilities, num_samples: int, min_expected: float = MIN_EXPECTED_PER_CELL) -> np.ndarray:
    """Cells of expected count >= ``min_expected`` for ``num_samples`` draws: the cell of each outcome ``(K,)``.

    Outcomes are taken from the most probable down and a cell is closed once its expected count
    reaches the threshold (the remainder joins the last cell), so the probable outcomes keep a cell each
    and the many improbable ones of a large space (27^3 joint states for three replicas of a 27-state
    target; S^2 pairs for the transition law) share cells of like probability, instead of one pooled
    cell that would hide where the mass moved. Outcomes of probability zero get a cell of their own
    (landing there fails at once). The cells are fixed by the law alone, before any draw, so the
    false-fail rate holds.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-probabilities, kind="stable")
    positive = order[probabilities[order] > 0]
    expected = num_samples * probabilities[positive]
    remaining = expected.sum() - np.cumsum(expected)  # expected count of the outcomes after each one
    cells = np.empty(probabilities.size, dtype=np.int64)
    cell, mass = 0, 0.0
    for position, outcome in enumerate(positive):
        cells[outcome] = cell
        mass += expected[position]
        if mass >= min_expected and remaining[position] >= min_expected:
            cell, mass = cell + 1, 0.0
    cells[probabilities == 0] = cell + 1
    return cells


class ProbabilityCells:
    """The joint states of ``product`` seen through :func:`probability_cells` (what the one-step test bins into)."""

    def __init__(self, product: ReplicaProduct, num_samples: int, min_expected: float = MIN_EXPECTED_PER_CELL):
        self.product = product
        probabilities = product.cell_probabilities()  # (S,)
        self.cells = probability_cells(probabilities, num_samples, min_expected)
        self.probabilities = np.bincount(self.cells, weights=probabilities, minlength=self.cells.max() + 1)

    def cell_index(self, states) -> np.ndarray:
        return self.cells[self.product.cell_index(states)]

    def cell_probabilities(self) -> np.ndarray:
        return self.probabilities


def check_swap(
    swap_fn,
    target_name: str,
    *,
    temperatures=None,
    false_fail_rate: float,
    tv_alternative: float,
    budget: float | None = None,
    seed: int = 0,
    num_samples: int | None = None,
    reversible: bool = False,
    exact_kernel: bool | None = None,
    step_name: str | None = None,
) -> CheckReport:
    """Check a swap step on the product law of ``target_name`` at ``temperatures`` (see the module docstring).

    Called by :func:`textsampling.testing.conformance.check_step` (``kind="pt-swap"``), which checks the
    arguments and the signature first. Never raises for the swap's bugs: they fail the report.
    """
    started = time.perf_counter()
    base = make_target(target_name)
    product = ReplicaProduct(base, DEFAULT_TEMPERATURES if temperatures is None else temperatures)
    num_samples = DEFAULT_NUM_SAMPLES if num_samples is None else int(num_samples)
    if exact_kernel is None:
        exact_kernel = product.num_states <= MAX_EXACT_KERNEL_STATES
    elif exact_kernel and product.num_states > MAX_EXACT_KERNEL_STATES:
        raise ValueError(f"exact_kernel: the joint space has {product.num_states} states, over "
                         f"{MAX_EXACT_KERNEL_STATES}: the dense swap kernel is too large (use fewer temperatures "
                         "or a smaller target)")
    step_name = step_name or getattr(swap_fn, "__qualname__", None) or repr(swap_fn)
    caller = SwapCaller(swap_fn, product)
    report = CheckReport(step_name, "pt-swap", target_name, product, false_fail_rate, tv_alternative, budget=budget)
    num_tests = 1 + int(bool(exact_kernel)) + int(bool(reversible))
    share = false_fail_rate / num_tests
    rng = np.random.default_rng(seed)
    ladder = ", ".join(f"{t:g}" for t in product.temperatures)
    try:
        probe = product.sample_exact(rng, 20)  # always drawn, so the draws that follow do not depend on a budget
        apply_step(caller, rng, probe)
        tic = time.perf_counter()
        apply_step(caller, rng, probe)
        per_call = (time.perf_counter() - tic) / len(probe)
        if budget is not None and per_call * num_samples > budget:
            report.scale = budget / (per_call * num_samples)
            num_samples = max(500, int(num_samples * report.scale))

        tic = time.perf_counter()
        initial = product.sample_exact(rng, num_samples)  # (N, M) joint indices
        stepped = apply_step(caller, rng, initial)
        seconds = time.perf_counter() - tic
        cells = ProbabilityCells(product, num_samples)
        detail = (f"{product.num_replicas} replicas at T = {ladder}: {product.num_states} joint states (the "
                  f"replicas' base-state indices) in {cells.probabilities.size} cells of like probability")
        invariance = goodness_of_fit_test(stepped, cells, share, tv_alternative, name="one-step invariance")
        report.outcomes.append(TestOutcome(invariance, seconds, detail))
        report.observed = np.bincount(product.cell_index(stepped), minlength=product.num_states).astype(np.float64)
        report.expected = num_samples * product.cell_probabilities()
        if exact_kernel:
            tic = time.perf_counter()
            kernel = parallel_tempering.swap_transition_matrix(base, product.temperatures)  # (S^M, S^M)
            pi = product.cell_probabilities()
            pairs = product.cell_index(initial) * product.num_states + product.cell_index(stepped)
            joint = (pi[:, None] * kernel).reshape(-1)  # J_ab = Pi_a K_ab, row-major like the pairs
            joint = joint / joint.sum()
            pair_cells = probability_cells(joint, num_samples)  # (S^2,): most pairs are impossible, cell of their own
            law = chi_square_counts_test(pair_cells[pairs], np.bincount(pair_cells, weights=joint), share,
                                         tv_alternative, name="transition law")
            report.outcomes.append(TestOutcome(
                law, time.perf_counter() - tic,
                "(same pairs) against parallel_tempering.swap_transition_matrix, the stochastic even-odd swap; "
                "a correct swap of another scheme fails this one alone: rerun with --no-exact-kernel"))
        if reversible:
            pairs = symmetry_test(product.cell_index(initial), product.cell_index(stepped), share, tv_alternative)
            report.outcomes.append(TestOutcome(pairs, 0.0, "(same pairs as the one-step test)"))
    except MalformedSwapError as error:
        report.error = str(error)
    report.seconds = time.perf_counter() - started
    return report
