r"""CGMH: sentences built around keywords by replace / insert / delete Metropolis–Hastings.

Miao, Zhou, Mou, Yan & Li (AAAI 2019, arXiv:1811.10996); part 4 of the series
(spaces.ac.cn/archives/8194). The target over sentences :math:`x` of length :math:`1..L_{\max}` is

.. math::
    \rho(x) = p(x)^{\gamma}\, \mathrm{sim}(x, c)\, \chi(x, c),

with :math:`p` a causal LM (END included), :math:`\gamma > 0` (Su suggests :math:`\gamma` slightly below
1 in part 4, against the LM's taste for short sentences — a rule of thumb about :math:`p` alone: with
keywords it can make sentences shorter, as chapter 1 computes; bojone's code uses 0.8, the CGMH code has
no :math:`\gamma`), an optional log-similarity,
and :math:`\chi(x, c) = 1` when every keyword occurs in :math:`x`, in any order, else 0. A keyword is a
*unit*: one token, or several word pieces that must occur contiguously (``usurp ##er``), as a whole
word (not followed by a piece that continues it, ``king ##dom``). A keyword listed
:math:`r` times must occur at least :math:`r` times (occurrences counted at distinct start positions).
The chain's stationary law over **sentences** is exactly :math:`\rho\chi/Z` (the exact tests enumerate
it); with a temperature :math:`T` it is :math:`(\rho\chi)^{1/T}/Z_T`
(:mod:`textsampling.reference.sentence_annealing` lowers :math:`T`).

**Where a move may act** is a function of the sentence alone, so that the reverse move's counts are
those of the proposed sentence. An occurrence of a keyword is *locked* when the keyword occurs no more
often than required (removing any of its pieces would lose it); ``state.protected`` marks the locked
pieces. Then

* replace and delete choose a position uniformly among the :math:`m(x)` unlocked tokens;
* insert chooses a slot uniformly among the :math:`s(x)` slots (of :math:`n + 1`) not strictly inside a
  locked occurrence, so a keyword of several pieces is never split.

A token that is not the only remaining occurrence of its keyword is free to go, so keyword order is
free and the chain moves between placements; where the candidate sets allow, it is irreducible.

**Candidates.** The new token of a replace at :math:`i` or an insert at :math:`j` is drawn from a
candidate set :math:`C` = the causal LM's top-:math:`K` next tokens after the prefix :math:`x_{<i}`
(special ids and zero-probability tokens excluded; Su's forward-only simplification — CGMH's code
pre-selects with a forward and a backward LM), with probability proportional to the target of the
sentence it makes, :math:`q(v) = \rho_T(x^{(v)}) / \sum_{w \in C} \rho_T(x^{(w)})`. :math:`C` depends
only on the prefix — *not* on the token being replaced — so the reverse of a replace draws from the
same set and the same sentences: its probability is :math:`\rho_T(x) / \sum_{w \in C}\rho_T(x^{(w)})`
if :math:`x_i \in C`, and **0** otherwise (the move is then rejected).

**Hastings ratio** :math:`\log\alpha = \min(0, \log\rho_T(y) - \log\rho_T(x) + \log q(x \mid y) - \log q(y \mid x))`,
each :math:`q` the product of move type, position and token probabilities, every count taken on the
sentence it belongs to:

.. math::
    \text{replace at } i:\quad q(y \mid x) = p_r \tfrac{1}{m(x)}\, q_C(y_i), \qquad
    q(x \mid y) = p_r \tfrac{[i \text{ unlocked in } y]}{m(y)}\, q_C(x_i),

    \text{insert at slot } j:\quad q(y \mid x) = p_i \tfrac{1}{s(x)}\, q_C(y_j), \qquad
    q(x \mid y) = p_d \tfrac{[j \text{ unlocked in } y]}{m(y)},

    \text{delete at } i:\quad q(y \mid x) = p_d \tfrac{1}{m(x)}, \qquad
    q(x \mid y) = p_i \tfrac{[\text{slot } i \text{ open in } y]}{s(y)}\, q_{C(y_{<i})}(x_i).

The counts :math:`s(x)` (slots) and :math:`m(y)` (unlocked tokens of the longer sentence) differ as soon
as there is a keyword, so they do not cancel. A move to a sentence without its keywords has
:math:`\rho = 0` and is rejected.

**Three mistakes of published code, as switches** (the tests and the gallery must catch them):
``position_ratio=False`` drops the position-choice probabilities from insert/delete ratios;
``candidate_set="biased"`` adds the current token to a replace's candidate set (so its reverse always
looks possible) and scores the reverse with the forward set — but the reverse set, built at :math:`y`,
holds :math:`y_i`, not :math:`x_i`; ``keyword_rule="position"`` (this module's own earlier rule, and Su's
"never pick keyword positions") protects the keyword *positions* carried in the state: the chain is then
exact on (sentence, placement) pairs, :math:`\pi(x, P) \propto \rho(x)`, so its law over sentences is
:math:`\propto N(x)\rho(x)` (:math:`N` = number of placements) and keyword order never changes.

Uniforms: ``uniforms[0]`` the move type (inverse CDF of :math:`(p_r, p_i, p_d)`), ``uniforms[1]`` the
position (``floor(u m)`` into the unlocked positions in order, or ``floor(u s)`` into the open slots in
order), ``uniforms[2]`` the candidate (inverse CDF of :math:`q`, candidates in order of decreasing LM
probability, lower id first on ties), ``uniforms[3]`` the accept decision. An impossible move (nothing
unlocked, insert at :math:`L_{\max}`, delete of the last token, no candidate of positive target) is a
rejection.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Callable, NamedTuple

import numpy as np
from scipy.special import logsumexp

from textsampling._validation import check_int, check_positive, check_uniforms
from textsampling.lm.tokens import PAD, check_sequence, mask_special_tokens, sequence_length
from textsampling.randomness import categorical_from_uniforms, integer_from_uniform
from textsampling.reference import chain
from textsampling.reference.chain import Trace
from textsampling.reference.metropolis_hastings import log_accept_ratio

__all__ = [
    "MOVES",
    "CANDIDATE_SETS",
    "KEYWORD_RULES",
    "NUM_UNIFORMS",
    "num_uniforms",
    "CGMHConfig",
    "CGMHState",
    "CGMHInfo",
    "CGMHTrace",
    "MoveOutcomes",
    "make_config",
    "normalize_keywords",
    "satisfies_keywords",
    "locked_positions",
    "edit_sites",
    "log_target",
    "candidate_tokens",
    "init",
    "keyword_state",
    "move_outcomes",
    "step",
    "sample",
    "enumerate_sentences",
    "enumerate_placements",
    "transition_paths",
    "transition_matrix",
]

MOVES = ("replace", "insert", "delete")
CANDIDATE_SETS = ("prefix", "biased")
#: "occurrence": the exact rule over sentences; "position": the published mistake (placements carried).
KEYWORD_RULES = ("occurrence", "position")
#: move type, position, candidate, accept.
NUM_UNIFORMS = 4


def num_uniforms() -> int:
    """Uniforms per step: move type, position, candidate, accept (:data:`NUM_UNIFORMS`)."""
    return NUM_UNIFORMS


class CGMHConfig(NamedTuple):
    """Everything a step needs besides the state (build it with :func:`make_config`, which checks it)."""

    model: object
    keywords: tuple  # of keyword units, each a tuple of token ids
    num_candidates: int
    max_length: int
    gamma: float
    log_similarity_fn: Callable | None
    log_move_probabilities: np.ndarray  # (3,) log (p_replace, p_insert, p_delete)
    temperature: float
    candidate_set: str
    position_ratio: bool
    keyword_rule: str
    continuation_tokens: frozenset  # ids of word pieces that glue onto the previous token (##er, BPE "er")


class CGMHState(NamedTuple):
    """Sentence ``x`` (``(max_length,)``, PAD-padded), its untempered :math:`\\log\\rho(x)`, its locked keyword pieces.

    Under ``keyword_rule="occurrence"`` ``protected`` is a function of ``x`` (:func:`locked_positions`),
    kept for display; under ``"position"`` it is the carried placement.
    """

    x: np.ndarray
    log_prob: float
    protected: np.ndarray


class CGMHInfo(NamedTuple):
    """One step: the move type (a name of :data:`MOVES`), its position or slot (-1 for an impossible
    move), the proposed sentence (``x`` itself when nothing was proposed), :math:`\\log\\alpha` and the decision."""

    move: str
    position: int
    proposal: np.ndarray
    log_accept_prob: float
    accepted: bool


#: A CGMH run: :class:`~textsampling.reference.chain.Trace` of :class:`CGMHState` and :class:`CGMHInfo`
#: (``trace.states.x`` ``(T, max_length)``, ``trace.infos.move`` ``(T,)`` names …).
CGMHTrace = Trace


class MoveOutcomes(NamedTuple):
    """Every outcome of one (move, position) choice: the candidates and their exact probabilities."""

    states: np.ndarray  # (C, L)
    protected: np.ndarray  # (C, L)
    log_probs: np.ndarray  # (C,) untempered log rho
    log_token_probs: np.ndarray  # (C,) probability of drawing each candidate (sums to 1)
    log_accept_probs: np.ndarray  # (C,) log alpha = min(0, log Hastings ratio)
    position: int


def normalize_keywords(keywords) -> tuple:
    """Keywords as a tuple of units, each a non-empty tuple of token ids ``>= 0``.

    ``keywords`` is a sequence whose items are token ids (a one-piece keyword) or sequences of token
    ids (the word pieces of one keyword, in order). ``None`` or ``[]``: no keyword.
    """
    if keywords is None:
        return ()
    if isinstance(keywords, np.ndarray) and keywords.ndim == 1:
        keywords = list(keywords)
    units = []
    for item in keywords:
        pieces = np.asarray(item)
        pieces = pieces.reshape(-1) if pieces.ndim <= 1 else pieces
        if pieces.ndim != 1 or pieces.size == 0:
            raise ValueError(f"each keyword must be a token id or a non-empty list of token ids, got {item!r}")
        if pieces.dtype.kind not in "iu":
            raise TypeError(f"keywords must be integer token ids, got {item!r} (dtype {pieces.dtype})")
        if np.any(pieces < 0):
            raise ValueError(f"keywords must be token ids >= 0 (PAD = {PAD} is not a keyword), got {item!r}")
        units.append(tuple(int(t) for t in pieces))
    return tuple(units)


def make_config(
    model,
    keywords=(),
    num_candidates: int = 50,
    max_length: int | None = None,
    gamma: float = 1.0,
    log_similarity_fn=None,
    move_probabilities=(1 / 3, 1 / 3, 1 / 3),
    temperature: float = 1.0,
    candidate_set: str = "prefix",
    position_ratio: bool = True,
    keyword_rule: str = "occurrence",
    continuation_tokens=(),
) -> CGMHConfig:
    """Check the settings and bundle them.

    Parameters
    ----------
    model : CausalLanguageModel (see :mod:`textsampling.lm.base`)
    keywords : sequence
        The keywords of :math:`\\chi`: each a token id or a list of word-piece ids (see
        :func:`normalize_keywords`); repeat a keyword to require it more than once. May be empty.
    num_candidates : int
        :math:`K`, the size of the top-K candidate set.
    max_length : int, optional
        :math:`L_{\\max}`; the model's maximum by default (never more).
    gamma : float
        Exponent of the LM term, :math:`> 0`.
    log_similarity_fn : callable, optional
        ``states (N, L) -> (N,)`` :math:`\\log \\mathrm{sim}(x, c)`.
    move_probabilities : three floats
        :math:`(p_r, p_i, p_d)`, each > 0, summing to 1.
    temperature : float
        :math:`T`; the chain targets :math:`\\rho^{1/T}`.
    candidate_set : {"prefix", "biased"}
        ``"biased"`` reproduces a published mistake (see the module docstring); never use it for sampling.
    position_ratio : bool
        ``False`` reproduces another published mistake.
    keyword_rule : {"occurrence", "position"}
        ``"position"`` reproduces the position-protecting mistake (law over sentences :math:`\\propto N\\rho`).
    continuation_tokens : iterable of int
        Word pieces that continue the previous word (WordPiece ``##er``; see
        :func:`textsampling.lm.keywords.continuation_token_ids`): a keyword followed by one is part of a
        longer word (``king ##dom``) and does not count as an occurrence.
    """
    for name in ("sequence_log_probs", "next_token_log_probs"):
        if not callable(getattr(model, name, None)):
            raise TypeError(f"model must be a causal language model with {name}(); got {type(model).__name__}")
    keywords = normalize_keywords(keywords)
    num_candidates = check_int(num_candidates, "num_candidates", minimum=1)
    max_length = model.max_length if max_length is None else check_int(max_length, "max_length", minimum=1)
    if max_length > model.max_length:
        raise ValueError(f"max_length = {max_length} is over the model's max_length = {model.max_length}")
    num_pieces = sum(len(unit) for unit in keywords)
    if num_pieces > max_length:
        raise ValueError(f"the keywords ({num_pieces} tokens in all) do not fit in max_length = {max_length}")
    gamma = check_positive(gamma, "gamma")
    if log_similarity_fn is not None and not callable(log_similarity_fn):
        raise TypeError("log_similarity_fn must be callable, states (N, L) -> (N,), or None")
    move_probabilities = np.asarray(move_probabilities, dtype=np.float64)
    if (move_probabilities.shape != (3,) or np.any(~(move_probabilities > 0))
            or abs(move_probabilities.sum() - 1) > 1e-9):
        raise ValueError(
            "move_probabilities must be three numbers > 0 summing to 1 (replace, insert, delete), "
            f"got {move_probabilities.tolist()}"
        )
    temperature = check_positive(temperature, "temperature")
    if candidate_set not in CANDIDATE_SETS:
        raise ValueError(f"candidate_set must be one of {CANDIDATE_SETS}, got {candidate_set!r}")
    if keyword_rule not in KEYWORD_RULES:
        raise ValueError(f"keyword_rule must be one of {KEYWORD_RULES}, got {keyword_rule!r}")
    continuation_tokens = frozenset(int(t) for t in continuation_tokens)
    return CGMHConfig(
        model, keywords, num_candidates, max_length, gamma, log_similarity_fn, np.log(move_probabilities),
        temperature, candidate_set, bool(position_ratio), keyword_rule, continuation_tokens,
    )


# ----------------------------------------------------------------------------- keyword rules
def _padded(tokens, width: int) -> np.ndarray:
    out = np.full(width, PAD, dtype=np.int64)
    out[: len(tokens)] = tokens
    return out


def _padded_mask(mask, width: int) -> np.ndarray:
    out = np.zeros(width, dtype=bool)
    out[: len(mask)] = mask
    return out


def _occurrences(tokens, unit, continuation_tokens=frozenset()) -> list:
    """Start positions where ``unit`` occurs as a whole word in ``tokens`` (overlaps allowed).

    The pieces must be contiguous and the next token must not continue the word.
    """
    size, length = len(unit), len(tokens)
    return [
        s for s in range(length - size + 1)
        if tuple(tokens[s : s + size]) == unit and (s + size == length or tokens[s + size] not in continuation_tokens)
    ]


def satisfies_keywords(keywords, states, continuation_tokens=frozenset()) -> np.ndarray:
    """:math:`\\chi(x, c)`: each keyword unit occurs at least as often as it is listed, ``(N,)`` bool."""
    keywords = normalize_keywords(keywords)
    states = np.atleast_2d(np.asarray(states, dtype=np.int64))
    required = Counter(keywords)
    out = np.ones(states.shape[0], dtype=bool)
    for n, x in enumerate(states):
        tokens = [int(t) for t in x[: sequence_length(x)]]
        out[n] = all(len(_occurrences(tokens, unit, continuation_tokens)) >= count for unit, count in required.items())
    return out


def locked_positions(keywords, x, continuation_tokens=frozenset()) -> tuple:
    """The occurrence rule on one sentence: ``(locked (L,) bool, blocked_slots (L + 1,) bool)``.

    A keyword that occurs no more often than required has all its occurrences locked: their pieces may
    be neither replaced nor deleted, and the slots strictly between two of their pieces take no insert.
    """
    x = np.asarray(x, dtype=np.int64)
    tokens = [int(t) for t in x[: sequence_length(x)]]
    locked = np.zeros(x.shape[0], dtype=bool)
    blocked = np.zeros(x.shape[0] + 1, dtype=bool)
    for unit, count in Counter(normalize_keywords(keywords)).items():
        starts = _occurrences(tokens, unit, continuation_tokens)
        if len(starts) <= count:  # the keyword cannot spare any of its occurrences
            for s in starts:
                locked[s : s + len(unit)] = True
                blocked[s + 1 : s + len(unit)] = True
    return locked, blocked


def edit_sites(config: CGMHConfig, x, protected) -> tuple:
    """``(positions a replace/delete may choose, slots an insert may choose)``, both in increasing order.

    ``protected`` is the carried placement, read only under ``keyword_rule="position"``.
    """
    length = sequence_length(x)
    if config.keyword_rule == "position":
        locked, blocked = np.asarray(protected, dtype=bool), np.zeros(len(x) + 1, dtype=bool)
    else:
        locked, blocked = locked_positions(config.keywords, x, config.continuation_tokens)
    positions = np.flatnonzero(~locked[:length])
    slots = np.flatnonzero(~blocked[: length + 1])
    return positions, slots


def _protected_after(config: CGMHConfig, y, carried) -> np.ndarray:
    """The ``protected`` field of a proposed sentence: recomputed, or carried along (position rule)."""
    if config.keyword_rule == "position":
        return carried
    return locked_positions(config.keywords, y, config.continuation_tokens)[0]


def log_target(config: CGMHConfig, states) -> np.ndarray:
    """Untempered :math:`\\log\\rho = \\gamma \\log p(x) + \\log \\mathrm{sim}(x, c) + \\log\\chi(x, c)`, ``(N,)``."""
    states = np.atleast_2d(np.asarray(states, dtype=np.int64))
    out = config.gamma * np.asarray(config.model.sequence_log_probs(states), dtype=np.float64)
    if config.log_similarity_fn is not None:
        out = out + np.asarray(config.log_similarity_fn(states), dtype=np.float64)
    if config.keywords:
        out = np.where(satisfies_keywords(config.keywords, states, config.continuation_tokens), out, -np.inf)
    return out


def candidate_tokens(config: CGMHConfig, prefix, current=None) -> np.ndarray:
    """Top-:math:`K` next tokens after ``prefix`` (decreasing probability, lower id first on ties).

    Special ids and tokens of probability zero are never candidates. ``current`` (the token being
    replaced) is used only by the ``"biased"`` variant, which appends it when it is missing.
    """
    model = config.model
    row = np.array(model.next_token_log_probs(_padded(prefix, config.max_length)[None]), dtype=np.float64)[0]
    row = mask_special_tokens(row, model.special_token_ids)
    order = np.argsort(-row, kind="stable")
    tokens = order[np.isfinite(row[order])][: config.num_candidates]
    if config.candidate_set == "biased" and current is not None and current not in tokens:
        tokens = np.append(tokens, current)  # the published bias: the current token always stays
    return tokens.astype(np.int64)


# ----------------------------------------------------------------------------- states
def init(x0, config: CGMHConfig, *, protected=None) -> CGMHState:
    """The state at sentence ``x0``: its tokens PAD-padded to ``(max_length,)``, :math:`\\log\\rho`, locks.

    Parameters
    ----------
    x0 : sequence of int
        A sentence of 1..``max_length`` token ids, optionally PAD-padded (``-1``) to ``max_length``.
        Under the occurrence rule it must contain every keyword.
    config : CGMHConfig
    protected : sequence of bool, optional
        The carried keyword placement, read only under ``keyword_rule="position"`` (``None``: nothing
        protected); the occurrence rule derives it from ``x0``.
    """
    if isinstance(x0, CGMHState):
        raise TypeError("x0 must be a token sequence, not a CGMHState: give state.x (and protected=state.protected)")
    x = check_sequence(x0, "x0")  # int64: at least one token, then only PAD
    if x.shape[0] > config.max_length:
        raise ValueError(
            f"x0 must have 1..max_length = {config.max_length} entries (PAD included), got {x.shape[0]}"
        )
    x = _padded(x, config.max_length)
    length = sequence_length(x)
    if config.keyword_rule == "position":
        protected = np.zeros(len(x), dtype=bool) if protected is None else np.asarray(protected, dtype=bool)
        if protected.ndim != 1 or protected.shape[0] > len(x) or np.any(protected[length:]):
            raise ValueError(
                "protected must be 1-D, as long as x0 at most, and mark only positions inside the sentence"
            )
        protected = _padded_mask(protected, len(x))
    else:
        if protected is not None:
            raise ValueError(
                'protected is only read under keyword_rule="position"; the occurrence rule derives it from x0'
            )
        if not satisfies_keywords(config.keywords, x, config.continuation_tokens)[0]:
            raise ValueError(f"x0 = {x[:length].tolist()} does not contain every keyword {list(config.keywords)}")
        protected = locked_positions(config.keywords, x, config.continuation_tokens)[0]
    log_prob = float(log_target(config, x[None])[0])
    return CGMHState(x, log_prob, protected)


def keyword_state(config: CGMHConfig) -> CGMHState:
    """The state CGMH starts from: the keywords' pieces in the order given.

    A state, not just the sentence, because under ``keyword_rule="position"`` the keyword placement
    (``protected``) is part of it: ``sample(rng, start.x, config, n, protected=start.protected)``.
    """
    if not config.keywords:
        raise ValueError("the config has no keywords: give at least one keyword (or use init with a sentence)")
    tokens = [t for unit in config.keywords for t in unit]
    placement = np.ones(len(tokens), dtype=bool) if config.keyword_rule == "position" else None
    return init(np.array(tokens, dtype=np.int64), config, protected=placement)


# ----------------------------------------------------------------------------- one move
def _empty(width: int) -> MoveOutcomes:
    return MoveOutcomes(
        np.empty((0, width), dtype=np.int64), np.empty((0, width), dtype=bool),
        np.empty(0), np.empty(0), np.empty(0), -1,
    )


def move_outcomes(state: CGMHState, move: str, position_uniform: float, config: CGMHConfig) -> MoveOutcomes:
    """All candidates of one move at the position ``position_uniform`` selects, with exact probabilities.

    Used by :func:`step` (which then draws one candidate and accepts or not) and by
    :func:`transition_paths` (which lists all of them), so the exact checks test this code.
    """
    x, protected, width = state.x, state.protected, config.max_length
    temperature = config.temperature
    length = sequence_length(x)
    positions, slots = edit_sites(config, x, protected)
    log_replace, log_insert, log_delete = config.log_move_probabilities
    log_x = state.log_prob / temperature  # tempered log rho_T(x)
    # Position-choice terms of the ratio; the published mistake leaves them out.
    use_positions = 1.0 if config.position_ratio else 0.0

    if move == "replace":
        if positions.size == 0:
            return _empty(width)
        position = int(positions[integer_from_uniform(position_uniform, positions.size)])
        tokens = candidate_tokens(config, x[:position], current=int(x[position]))
        if tokens.size == 0:
            return _empty(width)
        states = np.repeat(x[None], tokens.size, axis=0)
        states[:, position] = tokens
        new_protected = np.array([_protected_after(config, y, protected) for y in states])
        log_probs = log_target(config, states)
        log_normaliser = logsumexp(log_probs / temperature)
        if log_normaliser == -np.inf:
            return _empty(width)  # every candidate sentence is impossible: nothing to propose, a rejection
        log_token = log_probs / temperature - log_normaliser
        forward = log_replace - np.log(positions.size) + log_token
        # Reverse: same position, same prefix, so (for prefix sets) the same candidates and the same
        # candidate sentences; impossible when x_i is not a candidate or position i is locked in y.
        reverse_token = log_x - log_normaliser if int(x[position]) in tokens else -np.inf
        reverse = np.empty(tokens.size)
        for c, (y, mask) in enumerate(zip(states, new_protected)):
            reverse_positions, _ = edit_sites(config, y, mask)
            reverse[c] = (
                log_replace - np.log(reverse_positions.size) + reverse_token
                if position in reverse_positions else -np.inf
            )

    elif move == "insert":
        if length >= width:
            return _empty(width)
        position = int(slots[integer_from_uniform(position_uniform, slots.size)])  # a slot in 0..n
        tokens = candidate_tokens(config, x[:position])
        if tokens.size == 0:
            return _empty(width)
        states = np.array([_padded(np.insert(x[:length], position, v), width) for v in tokens])
        carried = _padded_mask(np.insert(protected[:length], position, False), width)  # position rule only
        new_protected = np.array([_protected_after(config, y, carried) for y in states])
        log_probs = log_target(config, states)
        log_normaliser = logsumexp(log_probs / temperature)
        if log_normaliser == -np.inf:
            return _empty(width)  # every candidate sentence is impossible: nothing to propose, a rejection
        log_token = log_probs / temperature - log_normaliser
        forward = log_insert - use_positions * np.log(slots.size) + log_token
        reverse = np.empty(tokens.size)
        for c, (y, mask) in enumerate(zip(states, new_protected)):
            # Reverse: delete the inserted token, if it is not locked in y.
            reverse_positions, _ = edit_sites(config, y, mask)
            reverse[c] = (
                log_delete - use_positions * np.log(reverse_positions.size)
                if position in reverse_positions else -np.inf
            )

    elif move == "delete":
        if positions.size == 0 or length == 1:
            return _empty(width)
        position = int(positions[integer_from_uniform(position_uniform, positions.size)])
        y = _padded(np.delete(x[:length], position), width)
        states = y[None]
        carried = _padded_mask(np.delete(protected[:length], position), width)
        new_protected = _protected_after(config, y, carried)[None]
        log_probs = log_target(config, states)
        log_token = np.zeros(1)
        # Reverse: insert x_i at slot i of y. Its candidates follow the prefix y_{<i} = x_{<i}, and the
        # sentences it weighs are y with v inserted there, i.e. x with x_i replaced by v.
        _, reverse_slots = edit_sites(config, y, new_protected[0])
        tokens = candidate_tokens(config, x[:position])
        if position in reverse_slots and tokens.size and int(x[position]) in tokens:
            weighed = np.repeat(x[None], tokens.size, axis=0)
            weighed[:, position] = tokens
            log_normaliser = logsumexp(log_target(config, weighed) / temperature)
            # x is among the weighed sentences, so a -inf normaliser means rho(x) = 0 (a row of the exact
            # matrix for an impossible state): the reverse insert cannot propose it.
            reverse_token = log_x - log_normaliser if log_normaliser > -np.inf else -np.inf
            reverse = np.array([log_insert - use_positions * np.log(reverse_slots.size) + reverse_token])
        else:
            reverse = np.array([-np.inf])
        forward = np.array([log_delete - use_positions * np.log(positions.size)])
    else:
        raise ValueError(f"move must be one of {MOVES}, got {move!r}")

    # A candidate of probability 0 has forward = reverse = -inf: its NaN ratio is a rejection (never drawn).
    with np.errstate(invalid="ignore"):
        log_q_ratio = reverse - forward
    log_alpha = log_accept_ratio(log_x, log_probs / temperature, log_q_ratio)
    return MoveOutcomes(states, new_protected, log_probs, log_token, np.atleast_1d(log_alpha), position)


def step(uniforms, state: CGMHState, config: CGMHConfig):
    """One CGMH step, deterministic given ``uniforms`` (shape (4,)). Returns ``(CGMHState, CGMHInfo)``."""
    uniforms = check_uniforms(uniforms, NUM_UNIFORMS)
    move = MOVES[int(categorical_from_uniforms(uniforms[0:1], config.log_move_probabilities)[0])]
    outcomes = move_outcomes(state, move, uniforms[1], config)
    if outcomes.states.shape[0] == 0:
        return state, CGMHInfo(move, -1, state.x, -np.inf, False)
    chosen = int(categorical_from_uniforms(uniforms[2:3], outcomes.log_token_probs)[0])
    log_alpha = float(outcomes.log_accept_probs[chosen])
    accepted = bool(np.log(uniforms[3]) < log_alpha)  # NaN rejects
    proposal = outcomes.states[chosen]
    if accepted:
        state = CGMHState(proposal, float(outcomes.log_probs[chosen]), outcomes.protected[chosen])
    return state, CGMHInfo(move, outcomes.position, proposal, log_alpha, accepted)


def sample(rng, x0, config: CGMHConfig, num_steps: int, *, first_step: int = 0, protected=None) -> Trace:
    """Run ``num_steps`` CGMH steps from the sentence ``x0`` (see :func:`init`; :func:`keyword_state`).

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, 4)``; the loop is
    :func:`textsampling.reference.chain.run`.

    Returns
    -------
    CGMHTrace
        ``states.x`` ``(T, max_length)``, ``states.log_prob`` ``(T,)``, ``states.protected``
        ``(T, max_length)``; ``infos.move`` ``(T,)`` names, ``infos.accepted`` ``(T,)`` …
    """
    state = init(x0, config, protected=protected)
    return chain.run(
        rng, state, lambda uniforms, current, t: step(uniforms, current, config), num_uniforms(), num_steps,
        first_step=first_step,
    )


# ----------------------------------------------------------------------------- exact kernel
def _ordinary_tokens(model) -> list:
    special = {int(t) for t in getattr(model, "special_token_ids", ())}
    return [v for v in range(int(model.num_tokens)) if v not in special]


def enumerate_sentences(config: CGMHConfig) -> np.ndarray:
    """Every sentence of length ``1..max_length`` over the model's ordinary tokens with :math:`\\chi = 1`.

    Returns ``(S, L)`` int64, PAD-padded.
    """
    tokens = _ordinary_tokens(config.model)
    width = config.max_length
    rows = [
        _padded(filling, width)
        for length in range(1, width + 1)
        for filling in itertools.product(tokens, repeat=length)
    ]
    states = np.array(rows, dtype=np.int64)
    return states[satisfies_keywords(config.keywords, states, config.continuation_tokens)]


def enumerate_placements(config: CGMHConfig):
    """Every (sentence, keyword placement) pair, the state space of ``keyword_rule="position"``.

    Keyword pieces in the order given at protected positions, every other position any token.

    Returns
    -------
    (states (S, max_length) int64, protected (S, max_length) bool)
    """
    keywords = [t for unit in config.keywords for t in unit]
    tokens = _ordinary_tokens(config.model)
    width = config.max_length
    states, protected = [], []
    for length in range(max(1, len(keywords)), width + 1):
        for places in itertools.combinations(range(length), len(keywords)):
            free = [i for i in range(length) if i not in places]
            for filling in itertools.product(tokens, repeat=len(free)):
                x = np.full(width, PAD, dtype=np.int64)
                x[list(places)] = keywords
                x[free] = filling
                mask = np.zeros(width, dtype=bool)
                mask[list(places)] = True
                states.append(x)
                protected.append(mask)
    return np.array(states), np.array(protected)


def transition_paths(config: CGMHConfig, state: CGMHState):
    """Every way one step can leave ``state``: ``(next states, next protected, log path probability, log alpha)``.

    A path is (move, position, candidate); its probability is move type x position x token. Every move
    and position is visited through the uniform that selects it (the midpoint of its cell), so this lists
    what :func:`step` can do, from the same :func:`move_outcomes`. The rest of the mass (impossible moves)
    stays on ``state``.
    """
    positions, slots = edit_sites(config, state.x, state.protected)
    move_probabilities = np.exp(config.log_move_probabilities)
    next_states, next_protected, log_paths, log_alphas = [], [], [], []
    for move, move_probability in zip(MOVES, move_probabilities):
        num_choices = slots.size if move == "insert" else positions.size
        for k in range(num_choices):
            outcomes = move_outcomes(state, move, (k + 0.5) / num_choices, config)
            if np.any(np.isnan(outcomes.log_token_probs)):
                raise AssertionError("move_outcomes produced a NaN candidate probability")
            next_states.extend(outcomes.states)
            next_protected.extend(outcomes.protected)
            log_paths.extend(np.log(move_probability / num_choices) + outcomes.log_token_probs)
            log_alphas.extend(outcomes.log_accept_probs)
    width = config.max_length
    if not next_states:
        return np.empty((0, width), dtype=np.int64), np.empty((0, width), dtype=bool), np.empty(0), np.empty(0)
    return np.array(next_states), np.array(next_protected), np.array(log_paths), np.array(log_alphas)


def _key(config: CGMHConfig, x, protected) -> bytes:
    key = np.asarray(x, dtype=np.int64).tobytes()
    return key + np.asarray(protected, dtype=bool).tobytes() if config.keyword_rule == "position" else key


def transition_matrix(config: CGMHConfig, states, protected=None) -> np.ndarray:
    """Exact CGMH kernel on enumerated states, built from :func:`transition_paths`.

    ``states`` are sentences (:func:`enumerate_sentences`) under the occurrence rule, and (sentence,
    placement) pairs with their ``protected`` masks (:func:`enumerate_placements`) under the position
    rule. ``P[a, b]`` is the exact probability of ``a -> b``. A NaN acceptance is a rejection.
    """
    states = np.asarray(states, dtype=np.int64)
    if config.keyword_rule == "position":
        if protected is None:
            raise ValueError('keyword_rule="position" needs the protected masks of the states (enumerate_placements)')
        protected = np.asarray(protected, dtype=bool)
    else:
        protected = [None] * states.shape[0]
    index = {_key(config, x, p): s for s, (x, p) in enumerate(zip(states, protected))}
    matrix = np.zeros((states.shape[0], states.shape[0]))
    for a, (x, mask) in enumerate(zip(states, protected)):
        state = init(x, config, protected=mask)
        next_states, next_protected, log_paths, log_alphas = transition_paths(config, state)
        for y, y_mask, log_path, log_alpha in zip(next_states, next_protected, log_paths, log_alphas):
            if np.isnan(log_alpha) or log_alpha == -np.inf:
                continue
            b = index.get(_key(config, y, y_mask))
            if b is None:
                raise ValueError(f"a step from {x.tolist()} reaches {y.tolist()}, which is not among the states")
            if b != a:
                matrix[a, b] += np.exp(log_path + log_alpha)
        matrix[a, a] = max(0.0, 1.0 - matrix[a].sum())
    return matrix
