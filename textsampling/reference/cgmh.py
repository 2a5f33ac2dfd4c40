r"""CGMH: sentences built around keywords by replace / insert / delete Metropolis–Hastings.

Miao, Zhou, Mou, Yan & Li (AAAI 2019, arXiv:1811.10996); part 4 of the series
(spaces.ac.cn/archives/8194). The target over sentences :math:`x` of length :math:`1..L_{\max}` is

.. math::
    \rho(x) = p(x)^{\gamma}\, \mathrm{sim}(x, c)\, \chi(x, c),

with :math:`p` a causal LM (END included), :math:`\gamma \le 1` favouring longer sentences, an optional
log-similarity, and :math:`\chi` the keyword constraint. The state is a sentence *and* the positions of
its keywords (``protected``), which are never edited, so :math:`\chi = 1` along the chain. (A keyword
token may also appear at an unprotected position; the chain's law is on (sentence, keyword placement)
pairs, :math:`\pi(x, \text{placement}) \propto \rho(x)`.) With a temperature :math:`T`, the chain
targets :math:`\rho^{1/T}` (:mod:`textsampling.reference.sentence_annealing` lowers it).

**Moves.** With fixed probabilities :math:`(p_r, p_i, p_d)`, on a sentence of length :math:`n` with
:math:`m` editable (unprotected) tokens:

* replace — position :math:`i` uniform among the :math:`m` editable ones;
* insert — slot :math:`j` uniform among the :math:`n + 1` slots (the new token is editable);
* delete — position uniform among the :math:`m` editable ones.

**Candidates.** The new token of a replace at :math:`i` or an insert at :math:`j` is drawn from a
candidate set :math:`C` = the causal LM's top-:math:`K` next tokens after the prefix :math:`x_{<i}`
(special ids and zero-probability tokens excluded), with probability proportional to the target of the
sentence it makes, :math:`q(v) = \rho_T(x^{(v)}) / \sum_{w \in C} \rho_T(x^{(w)})`. :math:`C` depends
only on the prefix — *not* on the token being replaced — so the reverse of a replace draws from the
same set and the same sentences: its probability is :math:`\rho_T(x) / \sum_{w \in C}\rho_T(x^{(w)})`
if :math:`x_i \in C`, and **0** otherwise (the move is then rejected).

**Hastings ratio** :math:`\log\alpha = \min(0, \log\rho_T(y) - \log\rho_T(x) + \log q(x \mid y) - \log q(y \mid x))`,
each :math:`q` the product of move type, position and token probabilities:

.. math::
    \text{insert } (x \to y,\ |x| = n):\quad
    q(y \mid x) = p_i \tfrac{1}{n + 1}\, q_C(y_j), \qquad q(x \mid y) = p_d \tfrac{1}{m + 1},

    \text{delete } (x \to y,\ |x| = n):\quad
    q(y \mid x) = p_d \tfrac{1}{m}, \qquad q(x \mid y) = p_i \tfrac{1}{n}\, q_{C(y_{<i})}(x_i).

The position counts :math:`n + 1` (slots) and :math:`m + 1` (editable tokens of the longer sentence)
differ as soon as there is a keyword, so they do not cancel.

**Two mistakes of published code, as switches** (for the tests that must catch them):
``position_ratio=False`` drops the position-choice probabilities from insert/delete ratios;
``candidate_set="biased"`` adds the current token to a replace's candidate set (so its reverse always
looks possible) and scores the reverse with the forward set — but the reverse set, built at :math:`y`,
holds :math:`y_i`, not :math:`x_i`. Both break detailed balance (tests/test_lm_samplers_cgmh.py).

Uniforms: ``uniforms[0]`` the move type (inverse CDF of :math:`(p_r, p_i, p_d)`), ``uniforms[1]`` the
position (``floor(u m)`` into the editable positions in order, or ``floor(u (n+1))`` for a slot),
``uniforms[2]`` the candidate (inverse CDF of :math:`q`, candidates in order of decreasing LM
probability, lower id first on ties), ``uniforms[3]`` the accept decision. An impossible move (no
editable token, insert at :math:`L_{\max}`, delete of the last token, empty candidate set) is a rejection.
"""

from __future__ import annotations

import itertools
from typing import Callable, NamedTuple

import numpy as np
from scipy.special import logsumexp

from textsampling._validation import check_int, check_positive, check_uniforms
from textsampling.randomness import as_generator
from textsampling.reference.categorical import categorical_from_uniforms
from textsampling.reference.metropolis_hastings import log_accept_ratio
from textsampling.reference.proposals import draw_uniforms_for_steps, integer_from_uniform
from textsampling.targets.base import PAD

__all__ = [
    "MOVES",
    "CANDIDATE_SETS",
    "NUM_UNIFORMS",
    "CGMHConfig",
    "CGMHState",
    "CGMHInfo",
    "CGMHTrace",
    "MoveOutcomes",
    "make_config",
    "log_target",
    "candidate_tokens",
    "init",
    "keyword_state",
    "move_outcomes",
    "step",
    "sample",
    "enumerate_states",
    "transition_matrix",
]

MOVES = ("replace", "insert", "delete")
CANDIDATE_SETS = ("prefix", "biased")
#: move type, position, candidate, accept.
NUM_UNIFORMS = 4


class CGMHConfig(NamedTuple):
    """Everything a step needs besides the state (build it with :func:`make_config`, which checks it)."""

    model: object
    num_candidates: int
    max_length: int
    gamma: float
    log_similarity_fn: Callable | None
    log_move_probabilities: np.ndarray  # (3,) log (p_replace, p_insert, p_delete)
    temperature: float
    candidate_set: str
    position_ratio: bool


class CGMHState(NamedTuple):
    """Sentence ``x`` (``(max_length,)``, PAD-padded), keyword positions ``protected`` and :math:`\\log\\rho(x)`."""

    x: np.ndarray
    protected: np.ndarray
    log_prob: float


class CGMHInfo(NamedTuple):
    move: str
    position: int
    proposal: np.ndarray
    log_accept_ratio: float
    accepted: bool


class CGMHTrace(NamedTuple):
    states: np.ndarray
    protected: np.ndarray
    log_probs: np.ndarray
    accepted: np.ndarray
    moves: np.ndarray
    final_state: CGMHState
    interrupted: bool


class MoveOutcomes(NamedTuple):
    """Every outcome of one (move, position) choice: the candidates and their exact probabilities."""

    states: np.ndarray  # (C, L)
    protected: np.ndarray  # (C, L)
    log_probs: np.ndarray  # (C,) untempered log rho
    log_token_probs: np.ndarray  # (C,) probability of drawing each candidate (sums to 1)
    log_accept_ratios: np.ndarray  # (C,)
    position: int


def make_config(
    model,
    num_candidates: int = 50,
    max_length: int | None = None,
    gamma: float = 1.0,
    log_similarity_fn=None,
    move_probabilities=(1 / 3, 1 / 3, 1 / 3),
    temperature: float = 1.0,
    candidate_set: str = "prefix",
    position_ratio: bool = True,
) -> CGMHConfig:
    """Check the settings and bundle them.

    Parameters
    ----------
    model : CausalLanguageModel (see :mod:`textsampling.lm.base`)
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
        ``False`` reproduces the other published mistake.
    """
    for name in ("sequence_log_probs", "next_token_log_probs"):
        if not callable(getattr(model, name, None)):
            raise TypeError(f"model must be a causal language model with {name}(); got {type(model).__name__}")
    num_candidates = check_int(num_candidates, "num_candidates", minimum=1)
    max_length = model.max_length if max_length is None else check_int(max_length, "max_length", minimum=1)
    if max_length > model.max_length:
        raise ValueError(f"max_length = {max_length} is over the model's max_length = {model.max_length}")
    gamma = check_positive(gamma, "gamma")
    if log_similarity_fn is not None and not callable(log_similarity_fn):
        raise TypeError("log_similarity_fn must be callable, states (N, L) -> (N,), or None")
    move_probabilities = np.asarray(move_probabilities, dtype=np.float64)
    if move_probabilities.shape != (3,) or np.any(~(move_probabilities > 0)) or abs(move_probabilities.sum() - 1) > 1e-9:
        raise ValueError(
            "move_probabilities must be three numbers > 0 summing to 1 (replace, insert, delete), "
            f"got {move_probabilities.tolist()}"
        )
    temperature = check_positive(temperature, "temperature")
    if candidate_set not in CANDIDATE_SETS:
        raise ValueError(f"candidate_set must be one of {CANDIDATE_SETS}, got {candidate_set!r}")
    return CGMHConfig(
        model, num_candidates, max_length, gamma, log_similarity_fn, np.log(move_probabilities),
        temperature, candidate_set, bool(position_ratio),
    )


# ----------------------------------------------------------------------------- helpers
def _length(x) -> int:
    is_pad = np.asarray(x) == PAD
    return int(np.argmax(is_pad)) if is_pad.any() else int(is_pad.shape[-1])


def _padded(tokens, width: int) -> np.ndarray:
    out = np.full(width, PAD, dtype=np.int64)
    out[: len(tokens)] = tokens
    return out


def _padded_mask(mask, width: int) -> np.ndarray:
    out = np.zeros(width, dtype=bool)
    out[: len(mask)] = mask
    return out


def log_target(config: CGMHConfig, states) -> np.ndarray:
    """Untempered :math:`\\log\\rho = \\gamma \\log p(x) + \\log \\mathrm{sim}(x, c)` of each row, ``(N,)``."""
    states = np.asarray(states, dtype=np.int64)
    out = config.gamma * np.asarray(config.model.sequence_log_probs(states), dtype=np.float64)
    if config.log_similarity_fn is not None:
        out = out + np.asarray(config.log_similarity_fn(states), dtype=np.float64)
    return out


def candidate_tokens(config: CGMHConfig, prefix, current=None) -> np.ndarray:
    """Top-:math:`K` next tokens after ``prefix`` (decreasing probability, lower id first on ties).

    Special ids and tokens of probability zero are never candidates. ``current`` (the token being
    replaced) is used only by the ``"biased"`` variant, which appends it when it is missing.
    """
    model = config.model
    row = np.array(model.next_token_log_probs(_padded(prefix, config.max_length)[None]), dtype=np.float64)[0]
    special = [int(t) for t in model.special_token_ids if 0 <= int(t) < row.shape[0]]
    row[special] = -np.inf
    order = np.argsort(-row, kind="stable")
    tokens = order[np.isfinite(row[order])][: config.num_candidates]
    if config.candidate_set == "biased" and current is not None and current not in tokens:
        tokens = np.append(tokens, current)  # the published bias: the current token always stays
    return tokens.astype(np.int64)


def keyword_state(config: CGMHConfig, keywords) -> CGMHState:
    """The starting sentence of CGMH: the keywords in order, all protected."""
    keywords = np.asarray(keywords).reshape(-1)
    if keywords.size and keywords.dtype.kind not in "iu":
        raise TypeError(f"keywords must be integer token ids, got dtype {keywords.dtype}")
    keywords = keywords.astype(np.int64)
    if np.any(keywords < 0):
        raise ValueError(f"keywords must be token ids >= 0 (PAD = {PAD} is not a keyword), got {keywords.tolist()}")
    if keywords.size == 0:
        raise ValueError("keywords is empty: give at least one keyword token (or use init with a sentence)")
    if keywords.size > config.max_length:
        raise ValueError(f"{keywords.size} keywords do not fit in max_length = {config.max_length}")
    x = _padded(keywords, config.max_length)
    return init(x, np.arange(config.max_length) < keywords.size, config)


def init(x, protected, config: CGMHConfig) -> CGMHState:
    """State at sentence ``x`` with keyword mask ``protected`` (``None``: nothing protected)."""
    x = np.asarray(x)
    if x.dtype.kind not in "iu" or x.shape != (config.max_length,):
        raise ValueError(f"x must be an int array of shape (max_length,) = ({config.max_length},), got {x.shape}")
    length = _length(x)
    if length == 0 or np.any(x[length:] != PAD):
        raise ValueError(f"x must hold at least one token, then only PAD = {PAD}; got {x.tolist()}")
    protected = np.zeros(config.max_length, dtype=bool) if protected is None else np.asarray(protected, dtype=bool)
    if protected.shape != x.shape or np.any(protected[length:]):
        raise ValueError("protected must have x's shape and mark only positions inside the sentence")
    log_prob = float(log_target(config, x[None].astype(np.int64))[0])
    return CGMHState(x.astype(np.int64), protected, log_prob)


def _empty(width: int) -> MoveOutcomes:
    return MoveOutcomes(
        np.empty((0, width), dtype=np.int64), np.empty((0, width), dtype=bool), np.empty(0), np.empty(0), np.empty(0), -1
    )


def move_outcomes(state: CGMHState, move: str, position_uniform: float, config: CGMHConfig) -> MoveOutcomes:
    """All candidates of one move at the position ``position_uniform`` selects, with exact probabilities.

    Used by :func:`step` (which then draws one candidate and accepts or not) and by
    :func:`transition_matrix` (which sums over all of them), so the exact checks test this code.
    """
    x, protected, width = state.x, state.protected, config.max_length
    temperature = config.temperature
    length = _length(x)
    editable = np.flatnonzero(~protected[:length])
    num_editable = editable.size
    log_replace, log_insert, log_delete = config.log_move_probabilities
    log_x = state.log_prob / temperature  # tempered log rho_T(x)

    if move == "replace":
        if num_editable == 0:
            return _empty(width)
        position = int(editable[integer_from_uniform(position_uniform, num_editable)])
        tokens = candidate_tokens(config, x[:position], current=int(x[position]))
        if tokens.size == 0:
            return _empty(width)
        states = np.repeat(x[None], tokens.size, axis=0)
        states[:, position] = tokens
        new_protected = np.repeat(protected[None], tokens.size, axis=0)
        log_probs = log_target(config, states)
        log_normaliser = logsumexp(log_probs / temperature)
        if log_normaliser == -np.inf:
            return _empty(width)  # every candidate sentence is impossible: nothing to propose, a rejection
        log_token = log_probs / temperature - log_normaliser
        forward = log_replace - np.log(num_editable) + log_token
        # Reverse: same position, same prefix, so (for prefix sets) the same candidates and the same
        # candidate sentences; impossible when x_i is not a candidate.
        in_set = int(x[position]) in tokens
        reverse = log_replace - np.log(num_editable) + (log_x - log_normaliser if in_set else -np.inf)
        reverse = np.full(tokens.size, reverse)

    elif move == "insert":
        if length >= width:
            return _empty(width)
        position = int(integer_from_uniform(position_uniform, length + 1))  # a slot 0..n
        tokens = candidate_tokens(config, x[:position])
        if tokens.size == 0:
            return _empty(width)
        states = np.array([_padded(np.insert(x[:length], position, v), width) for v in tokens])
        inserted_mask = _padded_mask(np.insert(protected[:length], position, False), width)
        new_protected = np.repeat(inserted_mask[None], tokens.size, axis=0)
        log_probs = log_target(config, states)
        log_normaliser = logsumexp(log_probs / temperature)
        if log_normaliser == -np.inf:
            return _empty(width)  # every candidate sentence is impossible: nothing to propose, a rejection
        log_token = log_probs / temperature - log_normaliser
        slot_term = -np.log(length + 1) if config.position_ratio else 0.0
        delete_term = -np.log(num_editable + 1) if config.position_ratio else 0.0
        forward = log_insert + slot_term + log_token
        reverse = np.full(tokens.size, log_delete + delete_term)  # delete the inserted (editable) token

    elif move == "delete":
        if num_editable == 0 or length == 1:
            return _empty(width)
        position = int(editable[integer_from_uniform(position_uniform, num_editable)])
        states = _padded(np.delete(x[:length], position), width)[None]
        new_protected = _padded_mask(np.delete(protected[:length], position), width)[None]
        log_probs = log_target(config, states)
        log_token = np.zeros(1)
        # Reverse insert at slot `position` of y: its candidates follow the prefix y_{<i} = x_{<i}, and the
        # sentences it weighs are y with v inserted there, i.e. x with x_i replaced by v.
        tokens = candidate_tokens(config, x[:position])
        if tokens.size and int(x[position]) in tokens:
            weighed = np.repeat(x[None], tokens.size, axis=0)
            weighed[:, position] = tokens
            log_normaliser = logsumexp(log_target(config, weighed) / temperature)
            # x is among the weighed sentences, so a -inf normaliser means rho(x) = 0 (a row of the exact
            # matrix for an impossible state): the reverse insert cannot propose it.
            reverse_token = log_x - log_normaliser if log_normaliser > -np.inf else -np.inf
        else:
            reverse_token = -np.inf
        slot_term = -np.log(length) if config.position_ratio else 0.0  # n(y) + 1 = n slots in y
        delete_term = -np.log(num_editable) if config.position_ratio else 0.0
        forward = np.array([log_delete + delete_term])
        reverse = np.array([log_insert + slot_term + reverse_token])
    else:
        raise ValueError(f"move must be one of {MOVES}, got {move!r}")

    log_alpha = log_accept_ratio(log_x, log_probs / temperature, reverse - forward)
    return MoveOutcomes(states, new_protected, log_probs, log_token, np.atleast_1d(log_alpha), position)


def step(uniforms, state: CGMHState, config: CGMHConfig):
    """One CGMH step, deterministic given ``uniforms`` (shape (4,)). Returns ``(CGMHState, CGMHInfo)``."""
    uniforms = check_uniforms(uniforms, NUM_UNIFORMS)
    move = MOVES[int(categorical_from_uniforms(uniforms[0:1], config.log_move_probabilities)[0])]
    outcomes = move_outcomes(state, move, uniforms[1], config)
    if outcomes.states.shape[0] == 0:
        return state, CGMHInfo(move, -1, state.x, -np.inf, False)
    chosen = int(categorical_from_uniforms(uniforms[2:3], outcomes.log_token_probs)[0])
    log_alpha = float(outcomes.log_accept_ratios[chosen])
    accepted = bool(np.log(uniforms[3]) < log_alpha)  # NaN rejects
    proposal = outcomes.states[chosen]
    if accepted:
        state = CGMHState(proposal, outcomes.protected[chosen], float(outcomes.log_probs[chosen]))
    return state, CGMHInfo(move, outcomes.position, proposal, log_alpha, accepted)


def sample(rng, state: CGMHState, config: CGMHConfig, num_steps: int, first_step: int = 0) -> CGMHTrace:
    """Run ``num_steps`` steps from ``state`` (see :func:`keyword_state`), keeping every state.

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, 4)``.
    """
    rng = as_generator(rng)
    num_steps = check_int(num_steps, "num_steps")
    first_step = check_int(first_step, "first_step")
    all_uniforms = draw_uniforms_for_steps(rng, first_step, num_steps, NUM_UNIFORMS)
    width = config.max_length
    states = np.empty((num_steps, width), dtype=np.int64)
    protected = np.empty((num_steps, width), dtype=bool)
    log_probs = np.empty(num_steps)
    accepted = np.zeros(num_steps, dtype=bool)
    moves = np.empty(num_steps, dtype=object)
    done = 0
    try:
        for t in range(num_steps):
            state, info = step(all_uniforms[t], state, config)
            states[t], protected[t], log_probs[t] = state.x, state.protected, state.log_prob
            accepted[t], moves[t] = info.accepted, info.move
            done = t + 1
    except KeyboardInterrupt:
        return CGMHTrace(states[:done], protected[:done], log_probs[:done], accepted[:done], moves[:done], state, True)
    return CGMHTrace(states, protected, log_probs, accepted, moves, state, False)


# ----------------------------------------------------------------------------- exact kernel
def enumerate_states(num_tokens: int, keywords, max_length: int):
    """Every (sentence, keyword placement) pair: keywords in order at protected positions, other slots any token.

    Returns
    -------
    (states (S, max_length) int64, protected (S, max_length) bool)
    """
    keywords = [int(k) for k in np.asarray(keywords, dtype=np.int64).reshape(-1)]
    states, protected = [], []
    for length in range(max(1, len(keywords)), max_length + 1):
        for places in itertools.combinations(range(length), len(keywords)):
            free = [i for i in range(length) if i not in places]
            for filling in itertools.product(range(num_tokens), repeat=len(free)):
                x = np.full(max_length, PAD, dtype=np.int64)
                x[list(places)] = keywords
                x[free] = filling
                mask = np.zeros(max_length, dtype=bool)
                mask[list(places)] = True
                states.append(x)
                protected.append(mask)
    return np.array(states), np.array(protected)


def _key(x, protected) -> bytes:
    return np.asarray(x, dtype=np.int64).tobytes() + np.asarray(protected, dtype=bool).tobytes()


def transition_matrix(config: CGMHConfig, states, protected) -> np.ndarray:
    """Exact CGMH kernel on enumerated (sentence, placement) pairs, built from :func:`move_outcomes`.

    Every move and position is visited through the uniform that selects it (the midpoint of its cell),
    every candidate with its probability, so ``P[a, b]`` is the exact probability of ``a -> b``.
    """
    states = np.asarray(states, dtype=np.int64)
    protected = np.asarray(protected, dtype=bool)
    index = {_key(x, p): s for s, (x, p) in enumerate(zip(states, protected))}
    move_probabilities = np.exp(config.log_move_probabilities)
    matrix = np.zeros((states.shape[0], states.shape[0]))
    for a, (x, mask) in enumerate(zip(states, protected)):
        state = init(x, mask, config)
        length = _length(x)
        num_editable = int(np.sum(~mask[:length]))
        for move, move_probability in zip(MOVES, move_probabilities):
            num_positions = length + 1 if move == "insert" else num_editable
            for k in range(num_positions):
                outcomes = move_outcomes(state, move, (k + 0.5) / num_positions, config)
                for c in range(outcomes.states.shape[0]):
                    log_alpha = outcomes.log_accept_ratios[c]
                    if np.isnan(outcomes.log_token_probs[c]):
                        raise AssertionError("move_outcomes produced a NaN candidate probability")
                    if np.isnan(log_alpha):
                        continue
                    b = index[_key(outcomes.states[c], outcomes.protected[c])]
                    if b != a:
                        matrix[a, b] += move_probability / num_positions * np.exp(outcomes.log_token_probs[c] + log_alpha)
        matrix[a, a] = max(0.0, 1.0 - matrix[a].sum())
    return matrix
