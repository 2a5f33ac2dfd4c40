r"""Sequential Monte Carlo over the prefixes of a causal language model (SMC steering).

The target is the language model restricted by a hard constraint (part 1 of the series: keywords to
sentence),

.. math::
    \pi(x) = \frac{p(x)\,\chi(x)}{Z}, \qquad Z = \sum_{x} p(x)\,\chi(x) = P_p(\chi = 1),

over sentences :math:`x = (x_1, \dots, x_n, \mathrm{END})` of at most :math:`L` tokens. Rejection
sampling from :math:`p` accepts with probability :math:`Z`, hopeless when the constraint is rare. SMC
(Lew et al. 2023, "Sequential Monte Carlo steering of large language models using probabilistic
programs"; Naesseth, Lindsten & Schön 2019, "Elements of sequential Monte Carlo"; Chopin &
Papaspiliopoulos 2020, chs. 10–11) grows :math:`N` particles one token per step and corrects them with
weights, through intermediate targets on prefixes

.. math::
    \gamma_t(x_{1:t}) = p(x_{1:t})\, G(x_{1:t})\, \psi(x_{1:t}), \qquad
    \gamma(x_{1:n}, \mathrm{END}) = p(x)\,\chi(x),

with a *potential* :math:`G \ge 0` (here :class:`KeywordPotential`: "the keywords not yet used still fit
in the remaining length", zero where the constraint has become impossible; on a finished sentence it
is :math:`\chi`) and an optional *twist* :math:`\psi > 0` (Zhao et al. 2024, "Probabilistic inference in
language models via twisted sequential Monte Carlo"). A finished particle stays as it is (its weight no
longer changes).

One step, for each particle (the generic particle filter of Chopin & Papaspiliopoulos, ch. 10):

1. **Resample** when :math:`\mathrm{ESS} = (\sum w)^2 / \sum w^2 < \tau N` (``ess_threshold`` :math:`\tau`;
   :math:`\tau \ge 1` resamples at every step, :math:`\tau = 0` never), with a scheme of
   :mod:`textsampling.reference.resampling`; afterwards every weight is the *mean* weight
   :math:`\bar w = \frac1N \sum_j w_j`, so :math:`\hat Z = \frac1N \sum_i w_i` is unchanged by resampling.
2. **Propose** the next token :math:`v \sim q(\cdot \mid x)` and multiply the weight by
   :math:`\gamma_{t+1}(xv) / (\gamma_t(x)\, q(v \mid x))`:

   * bootstrap, :math:`q(v \mid x) = p(v \mid x)`: the weight is :math:`(G\psi)(xv) / (G\psi)(x)`;
   * guided, :math:`q(v \mid x) \propto p(v \mid x)\,(G\psi)(xv)` over the whole vocabulary (END
     included): the weight is its normaliser :math:`\sum_{v'} p(v' \mid x)\,(G\psi)(xv') / (G\psi)(x)`,
     the same for every :math:`v` — no proposed token is ever wasted on a dead end.

The weights start at :math:`(G\psi)(x_0)` (the prompt's potential), so that once every particle has
finished

.. math::
    \hat Z = \frac1N \sum_{i=1}^N w_i \quad\text{is unbiased: } \mathbb E[\hat Z] = Z

(Del Moral 2004, *Feynman–Kac formulae*; Chopin & Papaspiliopoulos, ch. 11), and the weighted particles
:math:`\sum_i \bar w_i \delta_{x^i}` converge to :math:`\pi`. With the *exact* twist
:math:`\psi(x_{1:t}) = P(\chi = 1 \mid x_{1:t})` and the guided proposal, every weight is exactly
:math:`Z` at every step: zero variance (the proposal is then :math:`\pi`'s own conditional).
:func:`oracle_log_twist` computes that twist on the bigram oracle.

State and uniforms. The particles are rows of a PAD-padded ``(N, L)`` token array; its width ``L`` is
the longest sentence (a token beyond it has :math:`\gamma = 0`); END is not written, the particle is
marked ``finished``. A run of ``L + 1`` steps finishes every particle. A step consumes
``num_uniforms(N, scheme) = resampling.num_uniforms(N, scheme) + N`` uniforms: first the resampling's
(read even when the ESS is high, so the layout never changes), then one per particle for its token (the
package's inverse-CDF rule, :func:`textsampling.randomness.categorical_from_uniforms`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from textsampling._validation import check_int, check_uniforms
from textsampling.lm.tokens import PAD, sequence_lengths
from textsampling.randomness import categorical_from_uniforms
from textsampling.reference import chain, resampling

__all__ = [
    "SMCState",
    "SMCInfo",
    "SMCTrace",
    "PROPOSALS",
    "KeywordPotential",
    "oracle_log_twist",
    "empty_prefixes",
    "init",
    "num_uniforms",
    "step",
    "sample",
    "log_evidence",
    "ancestral_lines",
    "check_proposal",
    "check_ess_threshold",
    "should_resample",
    "extend_rows",
    "extension_log_potentials",
    "log_twisted_potential",
]

PROPOSALS = ("bootstrap", "guided")

SMCTrace = chain.Trace


class SMCState(NamedTuple):
    """The particle system of one run (``N`` particles)."""

    #: ``(N, L)`` int64: each particle's tokens, PAD-padded (END not written).
    x: np.ndarray
    #: ``(N,)``: the unnormalised log-weights; ``log mean exp`` of them is :math:`\log \hat Z`.
    log_weight: np.ndarray
    #: ``(N,)``: :math:`\log (G\psi)(x)` of each prefix (:math:`\log \chi(x)` once finished).
    log_potential: np.ndarray
    #: ``(N,)``: :math:`\log p` of the tokens drawn after the prompt (END included once finished).
    log_lm: np.ndarray
    #: ``(N,)`` bool: the particle has drawn END (or overflowed the width, with weight zero).
    finished: np.ndarray


class SMCInfo(NamedTuple):
    """What one step did."""

    #: ``(N,)`` int64: ``ancestors[n]`` is the particle (before the step) that particle ``n`` descends from;
    #: ``arange(N)`` when the step did not resample. The genealogy of a run is these rows over steps.
    ancestors: np.ndarray
    #: Whether the step resampled.
    resampled: bool
    #: The ESS of the weights before the step (what the resampling decision saw).
    ess: float
    #: ``(N,)`` int64: the token drawn (END's id for END); PAD for a particle already finished.
    token: np.ndarray
    #: ``(N,)``: the log incremental weight (0 for a finished particle).
    log_incremental_weight: np.ndarray
    #: :math:`\log \hat Z` after the step: ``resampling.log_sum_exp(log_weight) - log N``.
    log_evidence: float


# ============================================================================ potentials and twists
class KeywordPotential:
    r"""The keyword constraint as a potential on prefixes: :math:`G \in \{0, 1\}`, in log space.

    A *unit* is a keyword's token ids (:func:`textsampling.lm.keywords.keyword_units`); it is present
    when it occurs contiguously and is not followed by a piece that continues the word
    (``continuation_ids``). On a finished sentence :math:`\log G = \log \chi`: 0 when every unit is
    present, ``-inf`` otherwise. On an unfinished prefix of length :math:`n`, :math:`G = 1` iff the
    missing units can still fit in the :math:`L - n` remaining tokens, by a bound that never says "no"
    when a completion exists (so :math:`G > 0` wherever :math:`\chi` can still be reached, as SMC's
    unbiasedness needs): the tokens still needed are at least

    * for each missing unit, its length minus the longest suffix of the prefix that starts it; and
    * the number of missing units that are not a suffix of another missing unit (distinct such units
      cannot end at the same position, and a missing unit ends after the prefix).

    For single-token keywords (the bigram oracle's) the bound is exact. A unit at the very end of a
    prefix counts as present (a continuation piece may still follow: the bound stays permissive).

    Parameters
    ----------
    units : list of list of int
        The keywords' token ids, one list per keyword.
    max_length : int
        :math:`L`, the longest sentence (the SMC state's width).
    continuation_ids : iterable of int, optional
        Ids of pieces that glue onto the previous token
        (:func:`textsampling.lm.keywords.continuation_token_ids`).
    """

    def __init__(self, units, max_length: int, continuation_ids=()):
        cleaned = []
        for unit in units:
            unit = tuple(int(token) for token in unit)
            if not unit or any(token < 0 for token in unit):
                raise ValueError(f"units must be non-empty lists of token ids >= 0, got {list(unit)}")
            if unit not in cleaned:
                cleaned.append(unit)
        self.units = cleaned
        self.max_length = check_int(max_length, "max_length", minimum=1)
        self.continuation_ids = np.array(sorted(int(i) for i in continuation_ids), dtype=np.int64)
        # a lookup table (id -> is a continuation piece): np.isin over thousands of ids costs more than the rest
        size = int(self.continuation_ids.max()) + 1 if self.continuation_ids.size else 0
        self._is_continuation = np.zeros(size + 1, dtype=bool)  # the last entry: every id >= size, and PAD
        self._is_continuation[self.continuation_ids] = True

    @classmethod
    def for_model(cls, model, words, max_length: int) -> "KeywordPotential":
        """The potential of ``words`` for ``model`` (its keyword units and its continuation pieces)."""
        from textsampling.lm.keywords import continuation_token_ids, keyword_units

        return cls(keyword_units(model, words), max_length, continuation_token_ids(model))

    def __repr__(self) -> str:
        return f"KeywordPotential(units={self.units}, max_length={self.max_length})"

    def token_classes(self, vocab_size: int, end_token_id: int) -> np.ndarray:
        """``(V,)`` class ids: tokens of one class extend every prefix to the same potential.

        END, and each token of a keyword unit, is its own class; every other token is either a
        continuation piece (it can only break a keyword at the prefix's end) or not (it changes nothing
        but the length), two classes. Used by :func:`extension_log_potentials`.
        """
        class_of = np.zeros(vocab_size, dtype=np.int64)  # 0: an ordinary token
        continuation = self._is_continuation[np.minimum(np.arange(vocab_size), self._is_continuation.size - 1)]
        continuation &= np.arange(vocab_size) < self._is_continuation.size - 1
        class_of[continuation] = 1
        special = sorted({token for unit in self.units for token in unit if token < vocab_size} | {end_token_id})
        class_of[special] = 2 + np.arange(len(special))
        return class_of

    def _present(self, tokens: np.ndarray, lengths: np.ndarray, unit) -> np.ndarray:
        """(M,) bool: ``unit`` occurs as a whole word (an occurrence at the end counts)."""
        num_rows, width = tokens.shape
        size = len(unit)
        found = np.zeros(num_rows, dtype=bool)
        longest = int(lengths.max(initial=0))
        for start in range(0, min(width, longest) - size + 1):
            match = start + size <= lengths
            for offset, token in enumerate(unit):
                match &= tokens[:, start + offset] == token
            after = start + size
            if after < width and self.continuation_ids.size:
                following = tokens[:, after]
                lookup = np.where((following >= 0) & (following < self._is_continuation.size - 1), following, -1)
                continued = (after < lengths) & self._is_continuation[lookup]
                match &= ~continued
            found |= match
        return found

    def _overlap(self, tokens: np.ndarray, lengths: np.ndarray, unit) -> np.ndarray:
        """(M,) int: the longest ``j < len(unit)`` with the prefix's last ``j`` tokens = the unit's first ``j``."""
        rows = np.arange(tokens.shape[0])
        best = np.zeros(tokens.shape[0], dtype=np.int64)
        for size in range(1, len(unit)):
            match = lengths >= size
            for offset in range(size):
                column = np.clip(lengths - size + offset, 0, tokens.shape[1] - 1)
                match &= tokens[rows, column] == unit[offset]
            best = np.where(match, size, best)
        return best

    def __call__(self, token_ids, finished) -> np.ndarray:
        """:math:`\\log G` of each row: ``(M, W)`` PAD-padded tokens, ``(M,)`` finished flags -> ``(M,)``."""
        tokens = np.asarray(token_ids, dtype=np.int64)
        finished = np.asarray(finished, dtype=bool)
        lengths = sequence_lengths(tokens)  # (M,)
        num_rows = tokens.shape[0]
        present = np.stack([self._present(tokens, lengths, unit) for unit in self.units], axis=1) if self.units \
            else np.ones((num_rows, 0), dtype=bool)  # (M, K)
        missing = ~present
        needed_each = np.stack(
            [len(unit) - self._overlap(tokens, lengths, unit) for unit in self.units], axis=1
        ) if self.units else np.zeros((num_rows, 0), dtype=np.int64)  # (M, K)
        needed = np.max(np.where(missing, needed_each, 0), axis=1, initial=0)  # (M,)
        # distinct missing units end at distinct new positions, unless one is a suffix of another missing
        # unit (then both may end at its end): count the missing units not covered that way
        covered = np.zeros_like(missing)  # (M, K)
        for k, unit in enumerate(self.units):
            for j, other in enumerate(self.units):
                if len(other) > len(unit) and other[-len(unit):] == unit:
                    covered[:, k] |= missing[:, j]
        needed = np.maximum(needed, np.sum(missing & ~covered, axis=1))
        feasible = np.where(finished, ~missing.any(axis=1), needed <= self.max_length - lengths)
        feasible &= (lengths <= self.max_length) & ((lengths >= 1) | ~finished)
        return np.where(feasible, 0.0, -np.inf)


def oracle_log_twist(oracle, keywords, max_length: int) -> Callable:
    r"""The exact twist :math:`\log \psi(x_{1:t}) = \log P(\chi = 1,\ n \le L \mid x_{1:t})` on the bigram oracle.

    For single-token keywords (the oracle's ``"t0"``, ``"t1"``...) the probability that a prefix ends as
    a sentence of at most :math:`L` tokens holding every keyword depends only on its length :math:`n`, its
    last token :math:`v` and the set :math:`S` of keywords still missing:

    .. math::
        f(n, v, S) = [S = \varnothing]\, p(\mathrm{END} \mid v)
        + [n < L] \sum_w p(w \mid v)\, f(n + 1, w, S \setminus \{w\}),

    with :math:`f(0, \varnothing, S) = \sum_w p(w)\, f(1, w, S \setminus \{w\})` for the empty prefix,
    computed in log space by dynamic programming. With it (and the guided proposal) SMC's weights have
    zero variance — a test of the weights, and the ideal a learned twist approximates (Zhao et al. 2024).

    Returns
    -------
    callable
        ``log_twist(token_ids (M, W)) -> (M,)`` for unfinished prefixes of at most ``max_length`` tokens.
    """
    units = [list(map(int, unit)) for unit in oracle.encode_keywords(keywords)]
    if any(len(unit) != 1 for unit in units):
        raise ValueError("keywords: the oracle's twist needs single-token keywords")
    keyword_ids = sorted({unit[0] for unit in units})
    max_length = check_int(max_length, "max_length", minimum=1)
    vocab = oracle.num_tokens
    log_initial = oracle.bigram.log_initial  # (V,)
    log_step = oracle.bigram.log_transition[:, :vocab]  # (V, V)
    log_end = oracle.bigram.log_transition[:, vocab]  # (V,)
    num_sets = 1 << len(keyword_ids)
    # bit k of a mask: keyword_ids[k] still missing; removing token w clears its bit
    clear = np.array([[mask & ~(1 << keyword_ids.index(w)) if w in keyword_ids else mask for w in range(vocab)]
                      for mask in range(num_sets)])  # (num_sets, V)
    table = np.full((max_length + 2, vocab, num_sets), -np.inf)  # f(n, v, S), n = 1..L
    for n in range(max_length, 0, -1):
        for mask in range(num_sets):
            finish = log_end if mask == 0 else np.full(vocab, -np.inf)  # (V,)
            if n < max_length:
                following = table[n + 1][np.arange(vocab), clear[mask]]  # (V,): f(n + 1, w, S - {w})
                further = resampling.log_sum_exp(log_step + following[None, :], axis=1)
            else:
                further = np.full(vocab, -np.inf)
            table[n, :, mask] = np.logaddexp(finish, further)
    full_mask = num_sets - 1
    empty_value = resampling.log_sum_exp(log_initial + table[1][np.arange(vocab), clear[full_mask]])

    def log_twist(token_ids) -> np.ndarray:
        tokens = np.asarray(token_ids, dtype=np.int64)
        lengths = sequence_lengths(tokens)
        out = np.full(tokens.shape[0], -np.inf)
        for row in range(tokens.shape[0]):
            n = int(lengths[row])
            if n == 0:
                out[row] = empty_value
                continue
            if n > max_length:
                continue
            mask = full_mask
            for token in tokens[row, :n]:
                mask = clear[mask, token]
            out[row] = table[n, tokens[row, n - 1], mask]
        return out

    return log_twist


# ============================================================================ the sampler
def empty_prefixes(num_particles: int, max_length: int) -> np.ndarray:
    """``(num_particles, max_length)`` of PAD: the usual ``x0``, every particle starting from nothing."""
    num_particles = check_int(num_particles, "num_particles", minimum=1)
    max_length = check_int(max_length, "max_length", minimum=1)
    return np.full((num_particles, max_length), PAD, dtype=np.int64)


def check_proposal(proposal) -> str:
    if proposal not in PROPOSALS:
        raise ValueError(f"proposal must be one of {', '.join(PROPOSALS)}; got {proposal!r}")
    return proposal


def check_ess_threshold(ess_threshold) -> float:
    value = float(ess_threshold)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"ess_threshold must lie in [0, 1] (1 = resample every step, 0 = never), got {ess_threshold}")
    return value


def should_resample(ess, num_particles: int, ess_threshold: float):
    """Resample iff some weight is positive and (``ess_threshold >= 1`` or ``ESS < ess_threshold * N``)."""
    return (ess > 0) & ((ess_threshold >= 1.0) | (ess < ess_threshold * num_particles))


def log_twisted_potential(rows, finished, log_potential, log_twist) -> np.ndarray:
    """:math:`\\log (G\\psi)` of rows; the twist only on unfinished rows (a finished sentence has :math:`\\psi = 1`)."""
    out = np.asarray(log_potential(rows, finished), dtype=np.float64)
    if log_twist is not None and np.any(~finished):
        twist = np.zeros(rows.shape[0])
        twist[~finished] = np.asarray(log_twist(rows[~finished]), dtype=np.float64)
        out = out + twist
    return out


def extend_rows(rows: np.ndarray, lengths: np.ndarray, tokens: np.ndarray, end_token_id: int):
    """Rows ``(M, L + 1)``: ``rows[m]`` with ``tokens[m]`` written at ``lengths[m]`` (nothing for END).

    Returns ``(extended, finished)``: END marks the row finished (END is never written).
    """
    extended = np.concatenate([rows, np.full((rows.shape[0], 1), PAD, dtype=np.int64)], axis=1)  # (M, L+1)
    is_end = tokens == end_token_id
    written = np.flatnonzero(~is_end)
    extended[written, lengths[written]] = tokens[written]
    return extended, is_end


def init(x0, model, log_potential, *, log_twist=None) -> SMCState:
    """The particles at their prompts ``x0`` (``(N, L)`` PAD-padded; :func:`empty_prefixes` for none).

    Each weight starts at :math:`(G\\psi)(x_0)`, so that :math:`\\hat Z` estimates
    :math:`\\sum_x p(x \\mid x_0)\\chi(x)` (the prompt's own probability is not part of the target).
    """
    x = np.asarray(x0)
    if x.dtype.kind not in "iu" or x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x0 must be an (N, L) int array of PAD-padded prompts, N, L >= 1; got {x.shape}")
    x = x.astype(np.int64)
    if np.any(sequence_lengths(x) >= x.shape[1]):
        raise ValueError(f"x0: every prompt must leave room for a token (length < L = {x.shape[1]})")
    if getattr(model, "max_length", x.shape[1]) < x.shape[1]:
        raise ValueError(f"x0 has width {x.shape[1]}, over the model's max_length = {model.max_length}")
    finished = np.zeros(x.shape[0], dtype=bool)
    log_target = log_twisted_potential(x, finished, log_potential, log_twist)
    return SMCState(x, log_target.copy(), log_target, np.zeros(x.shape[0]), finished)


def num_uniforms(num_particles: int, scheme: str = "systematic") -> int:
    """``resampling.num_uniforms(N, scheme) + N``: the resampling's uniforms, then one token uniform per particle."""
    return resampling.num_uniforms(num_particles, scheme) + check_int(num_particles, "num_particles", minimum=1)


def log_evidence(state: SMCState) -> float:
    """:math:`\\log \\hat Z = \\log \\frac1N \\sum_i w_i` of a particle system (``-inf`` if every weight is 0)."""
    return float(resampling.log_sum_exp(state.log_weight) - np.log(state.log_weight.shape[0]))


def ancestral_lines(ancestors) -> np.ndarray:
    """The genealogy of the final particles: ``lines[t, n]`` is the index, in the system before step ``t``,
    of final particle ``n``'s ancestor.

    Parameters
    ----------
    ancestors : array_like of int, shape (T, N)
        ``trace.infos.ancestors`` of one run.

    Returns
    -------
    numpy.ndarray of int64, shape (T + 1, N)
        Row ``T`` is ``arange(N)``; row 0 names the starting particles the survivors descend from. The
        number of distinct entries of a row falls as ``t`` goes back (path degeneracy: Chopin &
        Papaspiliopoulos 2020, ch. 12).
    """
    ancestors = np.asarray(ancestors, dtype=np.int64)
    if ancestors.ndim != 2:
        raise ValueError(f"ancestors must have shape (T, N) (one run's trace.infos.ancestors), got {ancestors.shape}")
    num_steps, num_particles = ancestors.shape
    lines = np.empty((num_steps + 1, num_particles), dtype=np.int64)
    lines[num_steps] = np.arange(num_particles)
    for t in range(num_steps - 1, -1, -1):
        lines[t] = ancestors[t][lines[t + 1]]  # the particle before step t that particle lines[t + 1] came from
    return lines


def step(
    uniforms,
    state: SMCState,
    model,
    log_potential,
    *,
    proposal: str = "bootstrap",
    scheme: str = "systematic",
    ess_threshold: float = 0.5,
    log_twist=None,
) -> tuple[SMCState, SMCInfo]:
    """One SMC step: resample if the ESS is low, then extend every unfinished particle by one token.

    Parameters
    ----------
    uniforms : array_like, shape (num_uniforms(N, scheme),)
        ``uniforms[:k]`` (``k = resampling.num_uniforms(N, scheme)``) drive the resampling;
        ``uniforms[k + n]`` draws particle ``n``'s token.
    state : SMCState
    model : causal language model
        ``next_token_log_probs(token_ids (N, L)) -> (N, V)`` with END (``model.end_token_id``) valid.
    log_potential : callable
        ``log_potential(token_ids (M, W), finished (M,)) -> (M,)``: :math:`\\log G` of prefixes and
        :math:`\\log\\chi` of finished sentences (e.g. :class:`KeywordPotential`).
    proposal : {"bootstrap", "guided"}
    scheme : {"multinomial", "stratified", "systematic", "residual"}
    ess_threshold : float in [0, 1]
        Resample when the ESS is below ``ess_threshold * N`` (1: every step; 0: never).
    log_twist : callable, optional
        ``log_twist(token_ids (M, W)) -> (M,)``: :math:`\\log\\psi` of unfinished prefixes.

    Returns
    -------
    (SMCState, SMCInfo)
    """
    proposal = check_proposal(proposal)
    scheme = resampling.check_scheme(scheme)
    ess_threshold = check_ess_threshold(ess_threshold)
    num_particles = state.x.shape[0]
    k = resampling.num_uniforms(num_particles, scheme)
    uniforms = check_uniforms(uniforms, k + num_particles)

    # 1. resample (weights reset to their mean, so the estimate of Z is unchanged)
    ess = resampling.effective_sample_size(state.log_weight)
    resampled = bool(should_resample(ess, num_particles, ess_threshold))
    if resampled:
        ancestors = resampling.ancestors(uniforms[:k], state.log_weight, scheme)
        mean_log_weight = resampling.log_sum_exp(state.log_weight) - np.log(num_particles)
        log_weight = np.full(num_particles, mean_log_weight)
    else:
        ancestors = np.arange(num_particles)
        log_weight = state.log_weight.copy()
    x = state.x[ancestors].copy()
    log_target = state.log_potential[ancestors].copy()
    log_lm = state.log_lm[ancestors].copy()
    finished = state.finished[ancestors].copy()

    # 2. extend every unfinished particle by one token
    token = np.full(num_particles, PAD, dtype=np.int64)
    log_increment = np.zeros(num_particles)
    active = np.flatnonzero(~finished)
    if active.size:
        rows = x[active]  # (M, L)
        lengths = sequence_lengths(rows)  # (M,)
        log_next = np.asarray(model.next_token_log_probs(rows), dtype=np.float64)  # (M, V)
        old = log_target[active]  # (M,)
        token_uniforms = uniforms[k + active]
        if proposal == "bootstrap":
            drawn = categorical_from_uniforms(token_uniforms, log_next)  # (M,)
            extended, is_end = extend_rows(rows, lengths, drawn, model.end_token_id)
            new = log_twisted_potential(extended, is_end, log_potential, log_twist)  # (M,)
            with np.errstate(invalid="ignore"):  # -inf - -inf: replaced below
                increment = new - old
        else:
            new_all = extension_log_potentials(  # (M, V): (G psi)(xv) for every token v
                rows, lengths, log_next, model.end_token_id, log_potential, log_twist
            )
            logits = log_next + new_all  # (M, V): p(v | x) (G psi)(xv)
            with np.errstate(invalid="ignore"):
                normaliser = resampling.log_sum_exp(logits, axis=1)  # (M,)
            # a dead end (no extension of positive potential): draw from the LM, the weight is 0 anyway
            logits = np.where(np.isfinite(normaliser)[:, None], logits, log_next)
            drawn = categorical_from_uniforms(token_uniforms, logits)
            new = new_all[np.arange(active.size), drawn]
            with np.errstate(invalid="ignore"):
                increment = normaliser - old
        # a particle whose potential was already 0 stays at weight 0 (-inf - -inf would be NaN)
        increment = np.where(old == -np.inf, -np.inf, increment)
        extended, is_end = extend_rows(rows, lengths, drawn, model.end_token_id)
        overflow = ~is_end & (lengths >= x.shape[1])  # a token past the width: gamma = 0
        increment = np.where(overflow, -np.inf, increment)
        x[active] = extended[:, : x.shape[1]]
        token[active] = drawn
        log_increment[active] = increment
        log_weight[active] = log_weight[active] + increment
        log_target[active] = np.where(overflow, -np.inf, new)
        log_lm[active] = log_lm[active] + log_next[np.arange(active.size), drawn]
        finished[active] = is_end | overflow
    new_state = SMCState(x, log_weight, log_target, log_lm, finished)
    info = SMCInfo(ancestors, resampled, float(ess), token, log_increment, log_evidence(new_state))
    return new_state, info


def extension_log_potentials(rows, lengths, log_next, end_token_id, log_potential, log_twist) -> np.ndarray:
    r""":math:`\log (G\psi)(xv)` for every row and every token ``v`` of positive LM probability, ``(M, V)``.

    A potential with ``token_classes(vocab_size, end_token_id) -> class_of (V,)`` (as
    :class:`KeywordPotential`) promises that tokens of one class extend every prefix to the same
    potential; without a twist, each row is then evaluated on one token per class (a few dozen rows
    instead of the vocabulary: what makes the guided proposal affordable on a real LM).
    """
    num_rows, vocab = log_next.shape
    token_classes = getattr(log_potential, "token_classes", None)
    if token_classes is not None and log_twist is None:
        class_of = np.asarray(token_classes(vocab, end_token_id), dtype=np.int64)  # (V,)
        representatives = np.unique(class_of, return_index=True)[1]  # (C,): the first token of each class
        per_class = _evaluate_extensions(rows, lengths, np.broadcast_to(True, (num_rows, representatives.size)),
                                         representatives, end_token_id, log_potential, None)  # (M, C)
        out = per_class[:, np.searchsorted(class_of[representatives], class_of)]  # (M, V)
        return np.where(np.isfinite(log_next), out, -np.inf)
    return _evaluate_extensions(rows, lengths, np.isfinite(log_next), np.arange(vocab), end_token_id,
                                log_potential, log_twist)


def _evaluate_extensions(rows, lengths, wanted, tokens, end_token_id, log_potential, log_twist) -> np.ndarray:
    r"""``(M, len(tokens))``: :math:`\log (G\psi)` of row ``m`` extended by ``tokens[j]`` where ``wanted[m, j]``."""
    row_index, column = np.nonzero(wanted)  # (E,), (E,)
    candidate = tokens[column]
    extended, is_end = extend_rows(rows[row_index], lengths[row_index], candidate, end_token_id)
    out = np.full(wanted.shape, -np.inf)
    values = log_twisted_potential(extended, is_end, log_potential, log_twist)  # (E,)
    overflow = ~is_end & (lengths[row_index] >= rows.shape[1])
    out[row_index, column] = np.where(overflow, -np.inf, values)
    return out


def sample(
    rng,
    x0,
    model,
    log_potential,
    num_steps: int,
    *,
    first_step: int = 0,
    proposal: str = "bootstrap",
    scheme: str = "systematic",
    ess_threshold: float = 0.5,
    log_twist=None,
) -> chain.Trace:
    """Run ``num_steps`` SMC steps from the prompts ``x0`` (``L + 1`` steps finish every particle).

    ``trace.final_state`` holds the weighted sentences, ``trace.infos.log_evidence[-1]`` is
    :math:`\\log \\hat Z`, ``trace.infos.ess`` the ESS per step and ``trace.infos.ancestors`` the genealogy.
    """
    num_particles = np.asarray(x0).shape[0]
    state = init(x0, model, log_potential, log_twist=log_twist)

    def step_fn(uniforms, state, t):
        return step(uniforms, state, model, log_potential, proposal=proposal, scheme=scheme,
                    ess_threshold=ess_threshold, log_twist=log_twist)

    return chain.run(rng, state, step_fn, num_uniforms(num_particles, scheme), num_steps, first_step=first_step)
