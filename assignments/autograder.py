r"""Autograder of the three exercises: is your step the requested algorithm, and does it sample its target?

Run it on your file (a ``.py`` or ``.ipynb``), or call :func:`grade` from the notebook's last cell::

    python autograder.py 01_metropolis_hastings.py            # exercise read from the name
    python autograder.py my_work.ipynb --exercise 3 --json result.json

Exit status: 0 passed, 1 not yet, 2 usage error (no such file, unknown exercise).

What it checks, in order (a failure in stages 1-3 stops the check; stage 5 also runs after a failed
stage 4, since whether your step still keeps the target tells you more):

1. **Your file loads** and defines the exercise's function with the right arguments.
2. **Valid states.** Your step is called a few thousand times from states drawn uniformly from the
   target's support; every result must be a state of the target (right shape, integer tokens in the
   vocabulary, PAD only at the end, every keyword kept, probability > 0).
3. **The requested algorithm.** Exercise 1: each call returns ``x`` or changes exactly one position
   (a single-site proposal). Exercise 3: each call returns ``x``, inserts one token or deletes one token.
   Exercise 2: your sweep must ask ``lm.masked_log_probs`` for its conditionals. A step that ignores its
   input and returns an exact draw from the target fails here or in stage 4.
4. **Transition probabilities.** On these tiny targets the exact kernel of the requested algorithm is
   known: :math:`P(x \to y)` for every pair of states. A chi-square test compares the pairs
   :math:`(x, \mathrm{step}(x))` with it. When it fails, the autograder looks for the usual mistake
   whose exact kernel fits your pairs (a missing or inverted Hastings factor, a wrong comparison, a
   wrong scan order, ...) and shows the moves that are most off, with each factor of the exact ratio.
5. **The target is kept and reached**: :func:`textsampling.testing.conformance.check_step` (one-step invariance,
   reversibility where it applies, a long run from one start). See ``book/conformance.md``.

A correct step fails the whole check with probability at most 1e-4 (fixed seed, so the verdict is
reproducible): 5e-5 for stage 4, 5e-5 for stage 5; stages 1-3 never fail a correct step.
"""

from __future__ import annotations

import argparse
import builtins
import inspect
import json
import re
import sys
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.special import logsumexp

from textsampling.targets import PAD, make_target
from textsampling.testing.conformance import check_step
from textsampling.testing.statistics import chi_square_counts_test, pool_cells

#: Probability that a correct step fails the transition test, and the conformance check (stage 5).
TRANSITION_FALSE_FAIL_RATE = 5e-5
CONFORMANCE_FALSE_FAIL_RATE = 5e-5
#: No time budget by default: the conformance check (stage 5) runs its fixed sizes, so the verdict
#: depends on the seed alone, never on the machine's load (``--budget SECONDS`` opts in).
DEFAULT_BUDGET = None
#: The token law of exercise 1's proposal.
TOKEN_PROBABILITIES = np.array([0.6, 0.3, 0.1])


# ============================================================================ the exercises
@dataclass(frozen=True)
class Exercise:
    number: int
    title: str
    notebook: str
    function: str
    arguments: tuple
    kind: str
    target: str
    num_calls: int  # calls of the transition test (stage 4)


EXERCISES = {
    1: Exercise(1, "Metropolis-Hastings with an uneven single-site proposal", "01_metropolis_hastings.py",
                "mh_step", ("rng", "x", "target"), "mh", "bigram-small", 4000),
    2: Exercise(2, "a systematic Gibbs sweep from a masked language model", "02_mlm_gibbs_sweep.py",
                "mlm_gibbs_sweep", ("rng", "x", "lm"), "mlm-gibbs", "bigram-small", 4000),
    3: Exercise(3, "the CGMH insert/delete pair", "03_cgmh_insert_delete.py",
                "insert_delete_step", ("rng", "x", "target"), "cgmh", "bigram-keywords", 24000),
}


def exercise_of(path) -> int | None:
    """The exercise a file name points to (``01_...``, ``alice_02_mlm.ipynb``), or None."""
    match = re.search(r"(?<![0-9])0([1-3])(?![0-9])", Path(path).name)
    return int(match.group(1)) if match else None


# ============================================================================ results
@dataclass
class Stage:
    name: str
    passed: bool
    summary: str
    details: list = field(default_factory=list)


@dataclass
class Result:
    """What the autograder found: ``passed``, a one-line ``headline`` and the ``stages``."""

    exercise: int
    function: str
    source: str
    passed: bool = False
    headline: str = ""
    stages: list = field(default_factory=list)
    seconds: float = 0.0

    def add(self, name, passed, summary, details=()):
        self.stages.append(Stage(name, bool(passed), summary, list(details)))
        if not passed and not self.headline:
            self.headline = summary
        return passed

    @property
    def verdict(self) -> str:
        return "PASSED" if self.passed else "NOT YET"

    def format(self) -> str:
        exercise = EXERCISES[self.exercise]
        lines = [f"Exercise {self.exercise}: {exercise.title} ({self.function} from {self.source})"]
        for stage in self.stages:
            mark = "passed " if stage.passed else "NOT YET"
            lines.append(f"  [{mark}] {stage.name}: {stage.summary}")
            lines += [f"            {line}" for line in stage.details]
        lines.append(f"exercise {self.exercise}: {self.verdict}  ({self.seconds:.1f} s)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["verdict"] = self.verdict
        return out


# ============================================================================ loading a submission
def notebook_source(path) -> str:
    """The code cells of a ``.ipynb`` as one Python source; IPython magics (``%``, ``!``) are commented out."""
    cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    chunks = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        lines = [("# " + line) if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
        chunks.append("\n".join(lines))
    return "\n\n".join(chunks) + "\n"


def load_function(path, name: str):
    """Import ``path`` (``.py`` or ``.ipynb``) as a module — its ``__main__`` cell does not run — and
    return its attribute ``name``. Raises ``LookupError`` with a message for the student."""
    path = Path(path)
    source = notebook_source(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
    module = types.ModuleType(f"submission_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # as an import would (dataclasses and pickle look there)
    sys.path.insert(0, str(path.resolve().parent))  # the student's helpers next to the file
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
    except BaseException as error:  # SystemExit and KeyboardInterrupt of the student's file included
        if isinstance(error, KeyboardInterrupt):
            raise
        raise LookupError(f"running your file raised {type(error).__name__}: {error}") from None
    finally:
        sys.path.pop(0)
    function = getattr(module, name, None)
    if function is None:
        raise LookupError(f"your file defines no function {name!r} (keep the name of the starter)")
    if not callable(function):
        raise LookupError(f"{name} in your file is a {type(function).__name__}, not a function")
    return function


def _signature_problem(function, arguments) -> str | None:
    try:
        inspect.signature(function).bind(*arguments)
    except TypeError:
        name = getattr(function, "__name__", "your function")
        return f"{name}{inspect.signature(function)} cannot be called as {name}({', '.join(arguments)})"
    except ValueError:
        return None
    return None


# ============================================================================ states and moves
def _label(state) -> str:
    state = np.asarray(state)
    return "[" + " ".join("_" if int(t) == PAD else str(int(t)) for t in state) + "]"


def _tokens(state) -> list:
    return [int(t) for t in np.asarray(state) if t != PAD]


def _padded(tokens, length) -> np.ndarray:
    out = np.full(length, PAD, dtype=np.int64)
    out[: len(tokens)] = tokens
    return out


def _deletable(tokens, keywords) -> list:
    """Positions whose token may be deleted: all but the only remaining occurrence of a keyword."""
    return [i for i, t in enumerate(tokens) if t not in keywords or tokens.count(t) >= 2]


class _StateProblem(Exception):
    pass


def _validate(result, x, target, variable_length: bool, from_lm: bool = False) -> np.ndarray:
    """The returned state as an int array, or ``_StateProblem`` saying what is wrong with it."""
    where = f"from x = {_label(x)}"
    if result is None:
        raise _StateProblem(f"your step returned None {where}: return the new state")
    if isinstance(result, tuple):
        raise _StateProblem(f"your step returned a tuple {where}: return the new state only, not (state, info)")
    try:
        state = np.asarray(result)
    except Exception:
        raise _StateProblem(f"your step returned {result!r} {where}: not an array") from None
    if state.dtype == np.bool_ or state.dtype.kind not in "iu":
        raise _StateProblem(f"your step returned dtype {state.dtype} {where}: states hold integer token ids")
    if state.shape != tuple(target.state_shape):
        raise _StateProblem(
            f"your step returned shape {state.shape} {where}: expected {tuple(target.state_shape)}, the whole "
            + ("right-padded sentence" if variable_length else "sequence")
        )
    state = state.astype(np.int64)
    tokens = state
    if variable_length:
        is_pad = state == PAD
        length = int(np.argmax(is_pad)) if is_pad.any() else state.shape[0]
        if np.any(state[length:] != PAD):
            raise _StateProblem(
                f"your step returned {state.tolist()} {where}: a sentence is tokens followed only by PAD = -1"
            )
        tokens = state[:length]
    outside = tokens[(tokens < 0) | (tokens >= target.vocab_size)]
    if outside.size:
        special = " (a special id: END or [MASK], whose log-probability is -inf, must never be written)"
        raise _StateProblem(
            f"your step returned {state.tolist()} {where}: token {int(outside[0])} is outside the vocabulary "
            f"0..{target.vocab_size - 1}" + (special if from_lm and outside[0] >= target.vocab_size else "")
        )
    missing = [k for k in getattr(target, "keywords", ()) if k not in tokens.tolist()]
    if missing:
        raise _StateProblem(
            f"your step returned {_label(state)} {where}, a state outside the support: it lost keyword "
            f"{missing[0]} (a token may be deleted unless it is the only remaining occurrence of a keyword)"
        )
    if not target.log_prob(state[None])[0] > -np.inf:
        raise _StateProblem(f"your step returned {_label(state)} {where}, a state outside the support (probability 0)")
    return state


def _structure_problem(exercise: int, x, y) -> str | None:
    """Why ``x -> y`` cannot be one step of the requested algorithm, or None."""
    if exercise == 1:
        changed = int(np.sum(np.asarray(x) != np.asarray(y)))
        if changed > 1:
            return (
                f"from x = {_label(x)} your step returned {_label(y)}, which changes {changed} positions; one "
                "Metropolis-Hastings step with a single-site proposal returns x or changes exactly one position. "
                "(A step that ignores x and draws a fresh state is not the requested algorithm.)"
            )
    if exercise == 3:
        a, b = _tokens(x), _tokens(y)
        if a == b:
            return None
        shorter, longer = (a, b) if len(a) < len(b) else (b, a)
        if len(longer) != len(shorter) + 1 or not any(
            longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer))
        ):
            return (
                f"from x = {_label(x)} your step returned {_label(y)}; one insert/delete step returns x, x with "
                "one token inserted, or x with one token deleted"
            )
    return None


class _RecordingLM:
    """The language model handed to an exercise-2 step, counting its ``masked_log_probs`` calls."""

    def __init__(self, lm):
        self._lm = lm
        self.calls = 0

    def masked_log_probs(self, token_ids, positions):
        self.calls += 1
        return self._lm.masked_log_probs(token_ids, positions)

    def __getattr__(self, name):
        return getattr(self._lm, name)


# ============================================================================ exact kernels (stage 4)
# A kernel is a dict {"P": (S, S) over the support, "moves": {(a, b): explanation}}; a "mistake" is a
# named kernel with the sentence that tells the student what to fix.
def _mh_kernel(states, log_rho, moves_from, accept="mh", hastings=None):
    """Exact MH kernel from ``moves_from(a) -> [(b, log_q, forward factors, reverse factors, note)]``.

    ``hastings(forward, reverse, note) -> log q(x|y) - log q(y|x)`` (default: the full ratio);
    ``accept``: ``"mh"`` (log u < log ratio), ``"always"``, ``"u-vs-log"`` (u < log ratio).
    """
    size = len(states)
    matrix = np.zeros((size, size))
    for a in range(size):
        for b, log_q, forward, reverse, note in moves_from(a):
            if b == a:
                matrix[a, a] += np.exp(log_q)
                continue
            if hastings is None:
                log_h = sum(reverse.values()) - sum(forward.values())
            else:
                log_h = hastings(forward, reverse, note)
            log_ratio = log_rho[b] - log_rho[a] + log_h
            if accept == "always":
                alpha = 1.0
            elif accept == "u-vs-log":
                alpha = float(np.clip(log_ratio, 0.0, 1.0)) if np.isfinite(log_ratio) else 0.0
            else:
                alpha = float(np.exp(min(0.0, log_ratio))) if not np.isnan(log_ratio) else 0.0
            matrix[a, b] += np.exp(log_q) * alpha
            matrix[a, a] += np.exp(log_q) * (1.0 - alpha)
    return matrix


class _Model:
    """The support of a target, its exact kernel, the usual mistakes' kernels, and move explanations."""

    def __init__(self, exercise: int):
        self.exercise = exercise
        spec = EXERCISES[exercise]
        self.target = make_target(spec.target)
        log_prob = self.target.log_prob_all()
        support = np.flatnonzero(log_prob > -np.inf)
        self.states = self.target.states[support]
        self.log_rho = log_prob[support]
        self.index = {s.tobytes(): i for i, s in enumerate(self.states)}
        self.pi = np.exp(self.log_rho - logsumexp(self.log_rho))
        builder = {1: self._exercise_1, 2: self._exercise_2, 3: self._exercise_3}[exercise]
        self.correct, self.mistakes = builder()

    def state_index(self, state) -> int:
        return self.index[np.asarray(state, dtype=np.int64).tobytes()]

    # ---------------------------------------------------------------- exercise 1
    def _single_site_moves(self, token_probabilities):
        length, vocab = self.target.length, self.target.vocab_size
        log_r = np.log(token_probabilities)

        def moves_from(a):
            x = self.states[a]
            out = []
            for i in range(length):
                for token in range(vocab):
                    y = x.copy()
                    y[i] = token
                    forward = {"position": -np.log(length), "token": log_r[token]}
                    reverse = {"position": -np.log(length), "token": log_r[x[i]]}
                    out.append((self.state_index(y), forward["position"] + forward["token"], forward, reverse,
                                (i, int(x[i]), token)))
            return out

        return moves_from

    def _exercise_1(self):
        r = TOKEN_PROBABILITIES
        moves = self._single_site_moves(r)
        kernel = lambda **kw: _mh_kernel(self.states, self.log_rho, moves, **kw)  # noqa: E731
        no_token = lambda f, r_, note: 0.0  # noqa: E731
        inverted = lambda f, r_, note: sum(f.values()) - sum(r_.values())  # noqa: E731
        uniform = _mh_kernel(self.states, self.log_rho, self._single_site_moves(np.full(3, 1 / 3)))
        mistakes = [
            ("no-hastings", kernel(hastings=no_token),
             "Your moves fit an MH step WITHOUT the Hastings term: add log q(x|y) - log q(y|x) = "
             "log r(a) - log r(b) (position i changed from token a to token b). With the uneven r, a proposal "
             "to a rare token must be accepted less often, a proposal to a common token more often."),
            ("inverted-hastings", kernel(hastings=inverted),
             "Your moves fit an MH step whose Hastings term has the wrong sign: it is log q(x|y) - log q(y|x) = "
             "log r(a) - log r(b) (the REVERSE proposal's probability on top), not log r(b) - log r(a)."),
            ("uniform-proposal", uniform,
             "Your moves fit MH with a UNIFORM token proposal (each token 1/3). The exercise asks for the new "
             "token drawn from r = (0.6, 0.3, 0.1), with the Hastings term that this uneven r needs."),
            ("u-vs-log-ratio", kernel(accept="u-vs-log"),
             "Your moves fit a step that compares u with the LOG ratio (u < log alpha). Compare log u with "
             "the log ratio (np.log(u) < log_ratio), or u with exp(log_ratio)."),
            ("always-accept", kernel(accept="always"),
             "Your step accepts every proposal: the accept/reject decision is missing."),
            ("inverted-target-ratio", _mh_kernel(self.states, -self.log_rho, moves,
                                                 hastings=lambda f, r_, note: sum(r_.values()) - sum(f.values())),
             "Your moves fit an MH step with the target ratio upside down: use log rho(y) - log rho(x)."),
        ]
        return kernel(), mistakes

    def explain_1(self, a, b):
        x, y = self.states[a], self.states[b]
        changed = np.flatnonzero(x != y)
        if changed.size == 0:
            return f"stay at {_label(x)}"
        i = int(changed[0])
        r = TOKEN_PROBABILITIES
        tok_a, tok_b = int(x[i]), int(y[i])
        length = self.target.length
        rho_ratio = float(np.exp(self.log_rho[b] - self.log_rho[a]))
        hastings = r[tok_a] / r[tok_b]
        alpha = min(1.0, rho_ratio * hastings)
        return (
            f"{_label(x)} -> {_label(y)}: propose q(y|x) = 1/{length} * r({tok_b}) = {r[tok_b] / length:.4f}; accept "
            f"min(1, rho(y)/rho(x) * q(x|y)/q(y|x)) = min(1, {rho_ratio:.3f} * {r[tok_a]:.1f}/{r[tok_b]:.1f}) = "
            f"{alpha:.3f}"
        )

    # ---------------------------------------------------------------- exercise 2
    def _exercise_2(self):
        from textsampling.lm.oracle import MaskSensitiveOracle
        from textsampling.lm.tokens import with_mask_at
        from textsampling.reference.mlm_gibbs import site_matrix, transition_matrix

        # The exact oracle, except that it peeks at x_i unless [MASK] is there (as BERT does): a sweep
        # that forgets to mask position i gets another kernel, which stage 4 names.
        lm = MaskSensitiveOracle.for_fixed_length(self.target)
        self.lm = lm
        sites = [site_matrix(lm, self.states, i) for i in range(self.target.length)]
        self.sites = sites
        sweep = np.linalg.multi_dot(sites)
        stale = np.zeros_like(sweep)
        greedy = np.eye(len(self.states))
        vocab = self.target.vocab_size
        unmasked_sites = []
        for i in range(self.target.length):  # a site update that asks with x_i in view
            site = np.zeros_like(sweep)
            for a, x in enumerate(self.states):
                probabilities = np.exp(lm.masked_log_probs(x[None], np.array([i]))[0, :vocab])
                for token in range(vocab):
                    y = x.copy()
                    y[i] = token
                    site[a, self.target.state_index(y[None])[0]] += probabilities[token]
            unmasked_sites.append(site)
        for a, x in enumerate(self.states):
            rows = [lm.masked_log_probs(with_mask_at(x, i, lm.mask_token_id)[None], np.array([i]))[0, :vocab]
                    for i in range(self.target.length)]
            for b, y in enumerate(self.states):
                stale[a, b] = np.exp(sum(rows[i][y[i]] for i in range(self.target.length)))
        for site in sites:  # greedy: each update writes the most likely token
            argmax = np.zeros_like(site)
            argmax[np.arange(len(site)), np.argmax(site, axis=1)] = 1.0
            greedy = greedy @ argmax
        mistakes = [
            ("random-scan", transition_matrix(lm, self.states, scan="random"),
             "Your step fits ONE update at a random position per call (random scan). The exercise asks for a "
             "whole systematic sweep: update positions 0, 1, ..., L-1 in turn in one call."),
            ("stale-conditionals", stale,
             "Your sweep fits conditionals all taken from the STARTING x: position i must be drawn given the "
             "tokens already rewritten earlier in this sweep (write each new token into x before asking for "
             "the next conditional)."),
            ("reverse-order", np.linalg.multi_dot(sites[::-1]),
             "Your sweep fits positions visited from right to left; the exercise asks for 0, 1, ..., L-1."),
            ("skips-last-position", np.linalg.multi_dot(sites[:-1]),
             "Your sweep fits one that never updates the last position (check the range of your loop)."),
            ("independent-draw", np.repeat(self.pi[None], len(self.pi), axis=0),
             "Your step's result does not depend on x: it looks like an independent draw from the target, "
             "not a Gibbs sweep that redraws each position given the others."),
            ("greedy", greedy,
             "Your sweep writes the MOST LIKELY token instead of drawing one from the conditional."),
            ("forgot-mask", np.linalg.multi_dot(unmasked_sites),
             "Your sweep fits one that asks for the conditional at i with x[i] still in view: put "
             "lm.mask_token_id at position i of the row you pass to lm.masked_log_probs (a masked LM shown "
             "the current token leans toward it)."),
        ]
        return sweep, mistakes

    def explain_2(self, a, b):
        x, y = self.states[a], self.states[b]
        current = x.copy()
        factors = []
        for i in range(self.target.length):
            query = np.where(np.arange(len(current)) == i, self.lm.mask_token_id, current)  # [MASK] at i
            row = self.lm.masked_log_probs(query[None], np.array([i]))[0]
            factors.append(f"p(x{i}={y[i]} | {_label(np.where(np.arange(len(current)) == i, -1, current))})"
                           f"={np.exp(row[y[i]]):.3f}")
            current[i] = y[i]
        return f"{_label(x)} -> {_label(y)}: a sweep's probability is " + " * ".join(factors) + " (_ = masked)"

    # ---------------------------------------------------------------- exercise 3
    def _insert_delete_moves(self, a):
        target = self.target
        keywords = set(self.target.keywords)
        length, vocab = target.length, target.vocab_size
        tokens = _tokens(self.states[a])
        n = len(tokens)
        out = []
        half = np.log(0.5)
        if n == length:
            out.append((a, half, {}, {}, "insert-impossible"))
        else:
            for slot in range(n + 1):
                for token in range(vocab):
                    y = tokens[:slot] + [token] + tokens[slot:]
                    forward = {"move": half, "position": -np.log(n + 1), "token": -np.log(vocab)}
                    reverse = {"move": half, "position": -np.log(len(_deletable(y, keywords)))}
                    out.append((self.state_index(_padded(y, length)), sum(forward.values()), forward, reverse,
                                ("insert", n, len(_deletable(y, keywords)), len(_deletable(tokens, keywords)))))
        positions = _deletable(tokens, keywords)
        if n == 1 or not positions:
            out.append((a, half, {}, {}, "delete-impossible"))
        else:
            for position in positions:
                y = tokens[:position] + tokens[position + 1 :]
                forward = {"move": half, "position": -np.log(len(positions))}
                reverse = {"move": half, "position": -np.log(n), "token": -np.log(vocab)}
                out.append((self.state_index(_padded(y, length)), sum(forward.values()), forward, reverse,
                            ("delete", n, len(_deletable(y, keywords)), len(positions))))
        return out

    def _exercise_3(self):
        moves = self._insert_delete_moves
        kernel = lambda **kw: _mh_kernel(self.states, self.log_rho, moves, **kw)  # noqa: E731

        def without(*names):
            def hastings(forward, reverse, note):
                return sum(v for k, v in reverse.items() if k not in names) - sum(
                    v for k, v in forward.items() if k not in names)
            return hastings

        def deletion_reverse_slots_off_by_one(forward, reverse, note):
            full = sum(reverse.values()) - sum(forward.values())
            if note[0] == "delete":  # reverse insertion counted n + 1 slots instead of the n of y
                return full - np.log(note[1] + 1) + np.log(note[1])
            return full

        def insertion_reverse_uses_m_of_x(forward, reverse, note):
            full = sum(reverse.values()) - sum(forward.values())
            if note[0] == "insert":  # m(x) instead of m(y) for the reverse deletion
                return full + np.log(note[2]) - np.log(max(note[3], 1))
            return full

        mistakes = [
            ("no-position-ratio", kernel(hastings=without("position")),
             "Your moves fit a ratio WITHOUT the position factors: an insertion picks one of n + 1 slots, its "
             "reverse deletion one of m(y) deletable positions, and these differ (the published bug "
             "cgmh-no-position-ratio). Put -log m(y) + log(n + 1) into an insertion's ratio, and "
             "-log n + log m(x) into a deletion's."),
            ("no-token-factor", kernel(hastings=without("token")),
             "Your moves fit a ratio WITHOUT the token factor 1/V: an insertion also chooses the new token "
             "(probability 1/V), a deletion's reverse too. Add + log V to an insertion's log ratio and "
             "- log V to a deletion's."),
            ("no-hastings", kernel(hastings=without("move", "position", "token")),
             "Your moves fit an acceptance with rho(y)/rho(x) only: the proposal ratio q(x|y)/q(y|x) is missing."),
            ("inverted-hastings", kernel(hastings=lambda f, r, note: sum(f.values()) - sum(r.values())),
             "Your moves fit a proposal ratio upside down: the log ratio adds log q(x|y) (the REVERSE move) "
             "and subtracts log q(y|x)."),
            ("deletion-slots-off-by-one", kernel(hastings=deletion_reverse_slots_off_by_one),
             "Your deletions fit a reverse insertion into n + 1 slots: y has n - 1 tokens, so n slots."),
            ("insertion-reverse-m-of-x", kernel(hastings=insertion_reverse_uses_m_of_x),
             "Your insertions fit a reverse deletion counted on x (m(x)); count the deletable positions of "
             "the LONGER sentence y, m(y)."),
            ("u-vs-log-ratio", kernel(accept="u-vs-log"),
             "Your moves fit a step that compares u with the LOG ratio (u < log alpha): compare log u."),
            ("always-accept", kernel(accept="always"),
             "Your step accepts every proposal: the accept/reject decision is missing."),
        ]
        return kernel(), mistakes

    def explain_3(self, a, b):
        x, y = self.states[a], self.states[b]
        if a == b:
            return f"stay at {_label(x)}"
        vocab = self.target.vocab_size
        rho_ratio = float(np.exp(self.log_rho[b] - self.log_rho[a]))
        keywords = set(self.target.keywords)
        tx, ty = _tokens(x), _tokens(y)
        n, m_x, m_y = len(tx), len(_deletable(tx, keywords)), len(_deletable(ty, keywords))
        if len(ty) > n:
            hastings = (1 / m_y) / ((1 / (n + 1)) * (1 / vocab))
            text = (f"insertion: q(x|y)/q(y|x) = [1/2 * 1/m(y)] / [1/2 * 1/(n+1) * 1/V] = (1/{m_y}) / "
                    f"(1/{n + 1} * 1/{vocab}) = {hastings:.3f}")
        else:
            hastings = ((1 / n) * (1 / vocab)) / (1 / m_x)
            text = (f"deletion: q(x|y)/q(y|x) = [1/2 * 1/n * 1/V] / [1/2 * 1/m(x)] = (1/{n} * 1/{vocab}) / "
                    f"(1/{m_x}) = {hastings:.3f}")
        return (f"{_label(x)} -> {_label(y)}, {text}; rho(y)/rho(x) = {rho_ratio:.3f}; accept "
                f"min(1, {rho_ratio:.3f} * {hastings:.3f}) = {min(1.0, rho_ratio * hastings):.3f}")

    def explain(self, a, b):
        return {1: self.explain_1, 2: self.explain_2, 3: self.explain_3}[self.exercise](a, b)


_MODELS = {}


def model(exercise: int) -> _Model:
    if exercise not in _MODELS:
        _MODELS[exercise] = _Model(exercise)
    return _MODELS[exercise]


def _joint(matrix):
    """Law of the pair (x, step(x)) with x uniform over the support, flattened row-major."""
    return (matrix / matrix.shape[0]).reshape(-1)


def detection_power(alternative, correct, num_calls, false_fail_rate=TRANSITION_FALSE_FAIL_RATE) -> float:
    """Probability that the transition test fails a step whose kernel is ``alternative`` (exact pair
    laws, the test's pooling; noncentral chi-square, plus pairs impossible under ``correct``)."""
    p, q = _joint(correct), _joint(alternative)
    groups = pool_cells(num_calls * p)
    df = len(groups) - 1
    lam = num_calls * sum((q[g].sum() - p[g].sum()) ** 2 / p[g].sum() for g in groups)
    power = float(stats.ncx2.sf(stats.chi2.isf(false_fail_rate, df), df, lam))
    impossible = float(q[p == 0].sum())
    return max(power, 1.0 - (1.0 - impossible) ** num_calls)


# ============================================================================ grading
def _call(function, rng, x, context):
    try:
        return function(rng, np.array(x), *context)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # SystemExit too: a step that exits is a step that failed
        raise _StateProblem(f"your step raised {type(error).__name__}: {error} (from x = {_label(x)})") from None


def grade(exercise: int, function, *, source: str = "the notebook", seed: int = 0,
          num_calls: int | None = None, budget: float | None = DEFAULT_BUDGET, conformance: bool = True,
          conformance_sizes: dict | None = None) -> Result:
    """Grade ``function`` as the answer to ``exercise`` (1, 2 or 3); never raises for the step's bugs.

    Parameters
    ----------
    exercise : int
    function : callable
        The student's step.
    source : str
        Where it came from (shown in the report).
    seed : int
        Seed of the generator passed to the step (the verdict is reproducible).
    num_calls : int, optional
        Calls of the transition test (default: the exercise's).
    budget : float or None
        Seconds the conformance check may spend calling the step.
    conformance : bool
        Run stage 5 (:func:`textsampling.testing.conformance.check_step`).
    conformance_sizes : dict, optional
        ``num_samples`` / ``num_chains`` / ``num_steps`` of stage 5.
    """
    started = time.perf_counter()
    if exercise not in EXERCISES:
        raise ValueError(f"exercise must be one of {sorted(EXERCISES)}, got {exercise!r}")
    spec = EXERCISES[exercise]
    name = getattr(function, "__name__", spec.function)
    result = Result(exercise, name, source)
    try:
        _grade(result, spec, function, seed, num_calls or spec.num_calls, budget, conformance,
               conformance_sizes or {})
    finally:
        result.passed = bool(result.stages) and all(stage.passed for stage in result.stages)
        if result.passed:
            result.headline = "passed"
        result.seconds = time.perf_counter() - started
    return result


def _grade(result, spec, function, seed, num_calls, budget, conformance, conformance_sizes):
    problem = _signature_problem(function, spec.arguments)
    name = getattr(function, "__name__", spec.function)
    if not result.add("loads", problem is None, problem or f"{name}({', '.join(spec.arguments)}) found"):
        return
    exact = model(spec.number)
    target = exact.target
    rng = np.random.default_rng(seed)
    recorder = _RecordingLM(exact.lm) if spec.number == 2 else None
    context = (recorder,) if recorder is not None else (target,)
    variable_length = spec.number == 3

    # Stages 2-3: valid states and the requested algorithm, call by call.
    starts = rng.integers(len(exact.states), size=num_calls)
    ends = np.empty(num_calls, dtype=np.int64)
    try:
        for n, a in enumerate(starts):
            x = exact.states[a]
            calls_before = recorder.calls if recorder else 0
            y = _validate(_call(function, rng, x, context), x, target, variable_length, recorder is not None)
            structure = _structure_problem(spec.number, x, y)
            asked = recorder is None or recorder.calls > calls_before
            if structure is None and not asked and not np.array_equal(x, y):
                structure = (f"from x = {_label(x)} your sweep returned {_label(y)} without calling "
                             "lm.masked_log_probs: a Gibbs sweep draws each token from the masked LM's conditional")
            if structure is not None:
                result.add("valid states", True, f"the first {n + 1} calls returned states of the target")
                result.add("requested algorithm", False, structure)
                return
            ends[n] = exact.state_index(y)
    except _StateProblem as problem:
        result.add("valid states", False, str(problem))
        return
    result.add("valid states", True, f"{num_calls} calls from states drawn uniformly from the "
               f"{len(exact.states)} states of the support; every result is a state of the target")
    structure = {
        1: "every call returned x or changed exactly one position (a single-site proposal)",
        2: "your sweep asks lm.masked_log_probs for its conditionals",
        3: "every call returned x or inserted or deleted exactly one token",
    }[spec.number]
    result.add("requested algorithm", True, structure)

    # Stage 4: the pairs (x, step(x)) against the exact kernel of the requested algorithm.
    size = len(exact.states)
    pair_cells = starts * size + ends
    joint = _joint(exact.correct)
    test = chi_square_counts_test(pair_cells, joint / joint.sum(), TRANSITION_FALSE_FAIL_RATE, name="transitions")
    powers = {name: detection_power(kernel, exact.correct, num_calls) for name, kernel, _ in exact.mistakes}
    weakest = min(powers, key=powers.get)
    least = powers[weakest]
    power_line = ("this test catches each usual mistake listed in the autograder with probability "
                  + (f">= {least:.3f}" if least < 0.999 else "> 0.999")
                  + f" (computed from their exact kernels; the hardest to see: {weakest})")
    if test.passed:
        result.add("transition probabilities", True,
                   f"your moves match the exact kernel of the requested algorithm (p-value {test.p_value:.3g}; "
                   f"a correct step fails with probability {TRANSITION_FALSE_FAIL_RATE:g})", [power_line])
    else:
        never_moved = bool(np.all(starts == ends))
        details = [] if never_moved else _transition_details(exact, starts, ends)
        result.add("transition probabilities", False, _diagnosis(exact, starts, ends, test), details + [power_line])
        # Go on: whether the target is still kept tells the student more.

    # Stage 5: the conformance check of textsampling.testing.conformance (invariance, reversibility, long run).
    if conformance:
        _conformance(result, spec, function, seed, budget, conformance_sizes)


def _diagnosis(exact, starts, ends, test) -> str:
    if np.all(starts == ends):
        return (f"your chain never moved: in all {len(starts)} calls your step returned the state it was given. "
                f"A correct step moves from a state drawn uniformly from the support with probability "
                f"{1 - np.mean(np.diag(exact.correct)):.2f}.")
    counts = np.bincount(starts * len(exact.states) + ends, minlength=len(exact.states) ** 2)
    best, best_log_likelihood = None, -np.inf
    for name, kernel, advice in exact.mistakes:
        q = _joint(kernel)
        seen = counts > 0
        with np.errstate(divide="ignore"):
            log_likelihood = float(np.sum(counts[seen] * np.log(q[seen])))
        if log_likelihood > best_log_likelihood:
            best, best_log_likelihood = (name, kernel, advice), log_likelihood
    if best is not None:
        q = _joint(best[1])
        try:
            fits = chi_square_counts_test(starts * len(exact.states) + ends, q / q.sum(), 1e-3).passed
        except ValueError:  # too few cells left after pooling: no verdict on the fit
            fits = False
        if fits:
            return best[2]
    return ("your step does not move as the requested algorithm does, and it fits none of the usual "
            f"mistakes (p-value {test.p_value:.3g}); compare the moves below with what your code computes")


def _transition_details(exact, starts, ends, num_rows=4) -> list:
    size = len(exact.states)
    counts = np.zeros((size, size))
    np.add.at(counts, (starts, ends), 1)
    totals = np.bincount(starts, minlength=size)
    expected = totals[:, None] * exact.correct
    impossible = (counts > 0) & (expected == 0)
    lines = []
    if impossible.any():
        a, b = np.argwhere(impossible)[0]
        lines.append(f"from {_label(exact.states[a])} your step returned {_label(exact.states[b])} "
                     f"{int(counts[a, b])} times; the requested algorithm never makes that move")
    with np.errstate(divide="ignore", invalid="ignore"):
        residuals = np.where(expected > 0, (counts - expected) / np.sqrt(expected), 0.0)
    order = np.argsort(-np.abs(residuals), axis=None)[:num_rows]
    lines.append("the moves most off (observed in your calls vs the exact probability):")
    for flat in order:
        a, b = divmod(int(flat), size)
        if expected[a, b] == 0:
            continue
        lines.append(f"  {counts[a, b] / totals[a]:.3f} vs {exact.correct[a, b]:.3f} "
                     f"({int(counts[a, b])} of {totals[a]} calls): {exact.explain(a, b)}")
    return lines


def _conformance(result, spec, function, seed, budget, sizes):
    report = check_step(function, spec.kind, spec.target, false_fail_rate=CONFORMANCE_FALSE_FAIL_RATE,
                        budget=budget, seed=seed, **sizes)
    if report.error is not None:
        result.add("keeps and reaches the target", False, report.error.replace("the step function", "your step"))
        return
    details = []
    for outcome in report.outcomes:
        test = outcome.result
        meaning = {
            "one-step invariance": "exact draws from the target, one step each, still follow the target",
            "reversibility": "the pairs (x, step(x)) are as frequent as (step(x), x): detailed balance",
            "long-run fit": "chains started far from the mass end up following the target",
        }.get(test.name, test.name)
        power = test.power
        if power >= 0.5:
            power_text = (f"it catches a law off by {report.tv_alternative:g} in total variation with probability "
                          f">= {power:.2f}")
        else:
            power_text = (f"with {test.num_samples} samples it catches large errors, not on its own one as small "
                          f"as {report.tv_alternative:g} in total variation "
                          "(the transition test above is the sharp one)")
        details.append(f"{test.name} {'passed' if test.passed else 'FAILED'} (p-value {test.p_value:.3g}): "
                       f"{meaning}; {power_text}")
    # The verdict depends on the seed alone unless the student opted into a budget that shrank the sizes:
    # then say so first, since a smaller sample catches less (the false-fail rate is unchanged).
    shrunk = ""
    if report.scale < 1:
        shrunk = f" (sizes shrunk by --budget {budget:g} s)"
        details.insert(0, f"--budget {budget:g} s shrank the sample sizes (scale {report.scale:.2g}: your step was "
                          "too slow to run them all in that time), so this stage catches less; leave --budget out "
                          "to run the fixed sizes")
    failed = [o.result.name for o in report.outcomes if not o.result.passed]
    if not failed:
        result.add("keeps and reaches the target", True,
                   "one-step invariance" + (", reversibility" if len(report.outcomes) > 2 else "") + " and long run "
                   f"pass (a correct step fails with probability {CONFORMANCE_FALSE_FAIL_RATE:g}){shrunk}", details)
        return
    if "one-step invariance" in failed or "reversibility" in failed:
        summary = ("your step does not keep the target: after one step from exact draws the states are no longer "
                   "distributed as the target")
        over, under = report.misfit_rows(3)
        if over:
            details.append("states most over-sampled after one step (observed vs expected): "
                           + ", ".join(f"[{label}] {o} vs {e:.0f}" for label, o, e, _ in over))
        if under:
            details.append("most under-sampled: " + ", ".join(f"[{label}] {o} vs {e:.0f}" for label, o, e, _ in under))
    else:
        summary = ("your step keeps the target but does not reach it: chains from one start do not end up "
                   "following the target (does every position/length get updated?)")
    result.add("keeps and reaches the target", False, summary + shrunk, details)


# ============================================================================ the command line
def finish(result: Result) -> Result:
    """Print the result; as a script, exit with status 1 when it is "not yet" (in Jupyter, just print)."""
    print(result.format())
    if not result.passed and not getattr(builtins, "__IPYTHON__", False):
        raise SystemExit(1)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Grade one exercise. Exit status: 0 passed, 1 not yet, 2 usage error.")
    parser.add_argument("submission", help="your .py or .ipynb file")
    parser.add_argument("--exercise", type=int, choices=sorted(EXERCISES), default=None,
                        help="1, 2 or 3 (default: read from the file name, e.g. 01_...)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator passed to your step (default 0)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET,
                        help="opt in: seconds the conformance check may spend calling your step, shrinking its sizes "
                             "(default: no limit; the fixed sizes make the verdict depend on the seed alone)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    path = Path(args.submission)
    exercise = args.exercise or exercise_of(path)
    if not path.is_file():
        print(f"autograder: error: submission {str(path)!r} is not a file", file=sys.stderr)
        return 2
    if exercise is None:
        print(f"autograder: error: cannot tell the exercise from the name {path.name!r}; pass --exercise 1, 2 or 3",
              file=sys.stderr)
        return 2
    spec = EXERCISES[exercise]
    try:
        function = load_function(path, spec.function)
    except LookupError as error:
        result = Result(exercise, spec.function, path.name)
        result.add("loads", False, str(error))
    else:
        result = grade(exercise, function, source=path.name, seed=args.seed, budget=args.budget)
    print(result.format())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
