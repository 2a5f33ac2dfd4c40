r"""CGMH replace / insert / delete moves — exact, and with the three mistakes of published code.

CGMH (Miao et al. 2019, arXiv:1811.10996; part 4 of the series, spaces.ac.cn/archives/8194) edits a
sentence :math:`x` of :math:`n` tokens that must keep its keywords. One step chooses a move type
(replace, insert, delete, each with probability 1/3), a position, and — for replace and insert — a
token from a candidate list, then accepts with the full Metropolis–Hastings ratio

.. math::
    \log\alpha = \min\Bigl(0,\ \log\rho(y) - \log\rho(x)
        + \log q(x \leftarrow y) - \log q(y \leftarrow x)\Bigr),

where each :math:`q` is move type :math:`\times` position :math:`\times` token:

* positions: a replace or delete chooses among the :math:`m(x)` *editable* positions (those whose
  token is not the only occurrence of a keyword), an insertion among the :math:`n + 1` slots — so an
  insertion and its reverse deletion have position factors :math:`1/(n+1)` and :math:`1/m(y)`, which
  do not cancel;
* tokens: the candidate list of a slot is the top-:data:`NUM_CANDIDATES` next tokens of the language
  model after the slot's prefix — it does not depend on the token being replaced, so the forward and
  reverse lists are the same list — weighted by the target score of the resulting sentence. A reverse
  token outside that list has probability 0 (the move is rejected).

A move that is impossible (insert at the maximum length, delete at the minimum, nothing editable) leaves
``x`` where it is. Since the positions, candidates and weights all come from the current sentence, this
module *enumerates* every path :math:`x \to y` (move, position, token) with its probability and its
acceptance (:func:`paths`); :func:`cgmh_step` draws a path by inverse CDF and accepts it, and
:func:`transition_matrix` sums the very same paths — the exact kernel. Each path has one reverse path,
so path-wise detailed balance gives detailed balance of the kernel.

A short candidate list costs irreducibility: on ``bigram-keywords`` with top-2 lists, the sentence
``2 2 2 2`` (probability 4.5e-4) can never be built, since token 2 is never among the two likeliest
next tokens after a 2. The kernel is still reversible with respect to :math:`\pi` (exactly, see the
tests), and the mass it cannot reach is far below what the long-run test can see.

The mistakes (SERIES.md part 4), as flags of :func:`paths`:

``omit_position_ratio``
    the acceptance leaves out the position-choice probabilities :math:`1/m` and :math:`1/(n+1)`;
``biased_candidates``
    a replace's candidate list always contains the current token, so the forward list (with
    :math:`x_i`) and the reverse list (with :math:`y_i`) differ, while the reverse probability is
    computed from the forward list;
``threshold_acceptance``
    a move is accepted iff :math:`\alpha > 1/2`, a fixed threshold instead of a uniform draw.
"""

from __future__ import annotations

import weakref

import numpy as np
from scipy.special import logsumexp

from textsampling.gallery._case import GalleryCase, law_matrix
from textsampling.randomness import draw_uniforms
from textsampling.reference.categorical import categorical_from_uniforms
from textsampling.reference.metropolis_hastings import log_accept_ratio
from textsampling.targets.base import PAD

__all__ = ["NUM_CANDIDATES", "MOVE_PROBABILITY", "paths", "cgmh_step", "transition_matrix", "CASES", "CORRECT"]

#: Size of the candidate list (top-K next tokens of the language model).
NUM_CANDIDATES = 2
#: Probability of each move type (replace, insert, delete).
MOVE_PROBABILITY = 1.0 / 3.0
_LOG_MOVE = np.log(MOVE_PROBABILITY)


def _tokens(x) -> list:
    x = np.asarray(x)
    return [int(t) for t in x if t != PAD]


def _editable(tokens, keywords) -> list:
    """Positions whose token may be replaced or deleted without losing a keyword."""
    return [i for i, t in enumerate(tokens) if t not in keywords or tokens.count(t) >= 2]


def _candidates(target, prefix) -> list:
    """Top-K next tokens of the LM after ``prefix`` (ties: lower id first); independent of the slot's token."""
    row = np.full((1, target.length), PAD, dtype=np.int64)
    row[0, : len(prefix)] = prefix
    log_next = target.base.next_token_log_probs(row)[0, : target.vocab_size]  # END excluded
    order = np.argsort(-log_next, kind="stable")
    return [int(v) for v in order[:NUM_CANDIDATES] if log_next[v] > -np.inf]


def _pad(tokens, width) -> np.ndarray:
    out = np.full(width, PAD, dtype=np.int64)
    out[: len(tokens)] = tokens
    return out


class _Scorer:
    """``log rho`` of token lists, memoised (the same sentences recur across paths)."""

    def __init__(self, target):
        self.target = target
        self.cache = {}

    def __call__(self, sentences) -> np.ndarray:
        missing = [s for s in sentences if tuple(s) not in self.cache]
        if missing:
            values = self.target.log_prob(np.stack([_pad(s, self.target.length) for s in missing]))
            self.cache.update(zip((tuple(s) for s in missing), values))
        return np.array([self.cache[tuple(s)] for s in sentences])


def _token_log_probs(scorer, sentences) -> np.ndarray:
    """Candidate weights proportional to the target score of each resulting sentence, normalised."""
    log_weights = scorer(sentences)
    total = logsumexp(log_weights)
    if total == -np.inf:
        return np.full(len(sentences), -np.inf)
    return log_weights - total


def paths(target, x, omit_position_ratio=False, biased_candidates=False, threshold_acceptance=False, scorer=None):
    """Every move out of ``x``: next states ``(M, L)``, proposal log-probabilities ``(M,)``, log acceptance ``(M,)``.

    The proposal probabilities sum to at most 1; the rest (impossible moves, self-replacements) stays
    on ``x``. Flags switch on the published mistakes (see the module docstring).
    """
    scorer = _Scorer(target) if scorer is None else scorer
    keywords = set(getattr(target, "keywords", ()))
    tokens = _tokens(x)
    n = len(tokens)
    log_rho_x = scorer([tokens])[0]
    editable = _editable(tokens, keywords)
    out_states, out_log_q, out_log_alpha = [], [], []

    def add(y, log_q_forward, log_q_reverse, position_forward, position_reverse):
        # The move is proposed with its true probability: move type x position x token.
        out_log_q.append(_LOG_MOVE + position_forward + log_q_forward)
        if omit_position_ratio:  # BUG: the position-choice factors are left out of the ratio
            position_forward = position_reverse = 0.0
        # The move-type factors are equal (1/3 each way) and cancel.
        log_q_ratio = (log_q_reverse + position_reverse) - (log_q_forward + position_forward)
        log_alpha = log_accept_ratio(log_rho_x, scorer([y])[0], log_q_ratio)
        if threshold_acceptance:  # BUG: a fixed threshold instead of a uniform draw
            log_alpha = 0.0 if log_alpha > np.log(0.5) else -np.inf
        out_states.append(_pad(y, target.length))
        out_log_alpha.append(log_alpha)

    # ---- replace: an editable position, a token from the candidate list of its prefix
    for i in editable:
        position_choice_forward = -np.log(len(editable))
        candidates = _candidates(target, tokens[:i])
        if biased_candidates and tokens[i] not in candidates:
            candidates = candidates + [tokens[i]]  # BUG: the current token is always a candidate
        sentences = [tokens[:i] + [v] + tokens[i + 1 :] for v in candidates]
        token_log_probs = _token_log_probs(scorer, sentences)
        for v, y, log_q in zip(candidates, sentences, token_log_probs):
            if v == tokens[i] or log_q == -np.inf:
                continue  # a self-replacement stays on x
            editable_y = _editable(y, keywords)
            if i not in editable_y:
                reverse = -np.inf
                position_reverse = 0.0
            else:
                position_reverse = -np.log(len(editable_y))
                if biased_candidates:
                    # BUG: the reverse probability read from the forward list (which holds x_i)
                    reverse = token_log_probs[candidates.index(tokens[i])]
                else:
                    # Same prefix, same list, same sentences: x_i's weight if it is a candidate.
                    reverse = token_log_probs[candidates.index(tokens[i])] if tokens[i] in candidates else -np.inf
            add(y, log_q, reverse, position_choice_forward, position_reverse)

    # ---- insert: one of n + 1 slots, a token from the slot's candidate list
    if n < target.length:
        position_choice_forward = -np.log(n + 1)
        for j in range(n + 1):
            candidates = _candidates(target, tokens[:j])
            sentences = [tokens[:j] + [v] + tokens[j:] for v in candidates]
            token_log_probs = _token_log_probs(scorer, sentences)
            for y, log_q in zip(sentences, token_log_probs):
                if log_q == -np.inf:
                    continue
                editable_y = _editable(y, keywords)
                # Reverse: delete position j of y (a deletion needs no token choice).
                if j in editable_y:
                    add(y, log_q, 0.0, position_choice_forward, -np.log(len(editable_y)))
                else:
                    add(y, log_q, -np.inf, position_choice_forward, 0.0)

    # ---- delete: an editable position
    min_length = getattr(target.base, "min_length", 1)
    if n > min_length and editable:
        position_choice_forward = -np.log(len(editable))
        for i in editable:
            y = tokens[:i] + tokens[i + 1 :]
            # Reverse: insert tokens[i] into slot i of y, from the slot's candidate list.
            candidates = _candidates(target, y[:i])
            if tokens[i] in candidates:
                reverse_sentences = [y[:i] + [v] + y[i:] for v in candidates]
                reverse = _token_log_probs(scorer, reverse_sentences)[candidates.index(tokens[i])]
            else:
                reverse = -np.inf
            add(y, 0.0, reverse, position_choice_forward, -np.log(len(y) + 1))

    if not out_states:
        return np.empty((0, target.length), dtype=np.int64), np.empty(0), np.empty(0)
    return np.stack(out_states), np.array(out_log_q), np.array(out_log_alpha)


# Paths depend only on (target, x, flags): memoise them per target so a check costs one enumeration.
_PATH_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _cached_paths(target, x, flags):
    per_target = _PATH_CACHE.setdefault(target, {})
    key = (np.asarray(x, dtype=np.int64).tobytes(), flags)
    if key not in per_target:
        scorer = per_target.setdefault(("scorer",), _Scorer(target))
        per_target[key] = paths(target, x, *flags, scorer=scorer)
    return per_target[key]


def cgmh_step(rng, x, target, omit_position_ratio=False, biased_candidates=False, threshold_acceptance=False):
    """One CGMH step: ``uniforms[0]`` picks the path (inverse CDF, the remainder stays), ``uniforms[1]`` accepts."""
    flags = (bool(omit_position_ratio), bool(biased_candidates), bool(threshold_acceptance))
    uniforms = draw_uniforms(rng, 0, 2)
    next_states, log_q, log_alpha = _cached_paths(target, x, flags)
    stay = 1.0 - float(np.exp(log_q).sum()) if log_q.size else 1.0
    # Mass not used by any move (impossible moves, self-replacements) stays on x; 0 when none is left.
    with np.errstate(divide="ignore"):
        log_stay = np.log(max(stay, 0.0))
    choice = int(categorical_from_uniforms(uniforms[:1], np.append(log_q, log_stay))[0])
    if choice == log_q.size or not np.log(uniforms[1]) < log_alpha[choice]:
        return np.array(x, dtype=np.int64)
    return next_states[choice].copy()


def transition_matrix(target, omit_position_ratio=False, biased_candidates=False, threshold_acceptance=False):
    """Exact CGMH kernel on the enumerated sentences of ``target``, from :func:`paths`."""
    flags = (bool(omit_position_ratio), bool(biased_candidates), bool(threshold_acceptance))

    def law(x):
        next_states, log_q, log_alpha = _cached_paths(target, x, flags)
        # A NaN acceptance (both sentences impossible) is a rejection, as in the step.
        accept = np.where(np.isnan(log_alpha), 0.0, np.exp(np.minimum(np.nan_to_num(log_alpha, nan=-np.inf), 0.0)))
        moved = np.exp(log_q) * accept
        return np.vstack([next_states, x[None]]), np.append(moved, 1.0 - moved.sum())

    return law_matrix(target, law)


def _variant(**flags):
    def step(rng, x, target):
        return cgmh_step(rng, x, target, **flags)

    def matrix(target):
        return transition_matrix(target, **flags)

    return step, matrix


_correct_step, _correct_matrix = _variant()
_no_position_step, _no_position_matrix = _variant(omit_position_ratio=True)
_biased_step, _biased_matrix = _variant(biased_candidates=True)
_threshold_step, _threshold_matrix = _variant(threshold_acceptance=True)

CORRECT = (
    GalleryCase(
        "cgmh-reference", "cgmh", "bigram-keywords",
        "CGMH replace/insert/delete with top-2 candidates and the full Hastings ratio",
        _correct_step, _correct_matrix,
    ),
)

CASES = (
    GalleryCase(
        "cgmh-no-position-ratio", "cgmh", "bigram-keywords",
        "CGMH insertion/deletion without the position-choice probabilities 1/(n+1) and 1/m in the ratio",
        _no_position_step, _no_position_matrix,
    ),
    GalleryCase(
        "cgmh-biased-candidates", "cgmh", "bigram-keywords",
        "CGMH replace whose candidate list always holds the current token (forward and reverse lists differ)",
        _biased_step, _biased_matrix,
    ),
    GalleryCase(
        "cgmh-threshold-acceptance", "cgmh", "bigram-keywords",
        "CGMH moves accepted iff alpha > 1/2 (a fixed threshold) instead of with probability alpha",
        _threshold_step, _threshold_matrix,
    ),
)
