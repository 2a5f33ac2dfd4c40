r"""Decoding baselines for a causal LM: ancestral, temperature, top-k, top-p, greedy and beam search.

The left-to-right samplers the MCMC samplers of parts 3–4 are compared with. A sentence is built token
by token from :math:`p(x_{t+1} \mid x_{\le t})` until END (or ``max_new_tokens``):

* ancestral — draw from :math:`p` itself: sentences follow the LM's law exactly;
* temperature — from :math:`p(\cdot \mid x_{\le t})^{1/\tau}`, renormalised *at each step*; the sentence
  law is the product of these tempered conditionals, which is **not** :math:`p(x)^{1/\tau} / Z` (the
  per-step normalisers depend on the prefix);
* top-k — from :math:`p` restricted to its :math:`k` most probable tokens (Fan et al. 2018);
* top-p (nucleus) — restricted to the smallest set of most probable tokens whose mass reaches
  :math:`p` (Holtzman et al. 2020, arXiv:1904.09751), written as transformers writes it: sort
  ascending, drop the tokens whose cumulative mass is :math:`\le 1 - p`, always keep the most probable;
* greedy — :math:`\arg\max` at each step (lower id first on ties);
* beam search — :func:`beam_search`, written to return what ``transformers``' ``generate(num_beams=k,
  do_sample=False, early_stopping=False)`` returns (checked on a tiny GPT-2 in the tests).

Filters are applied in transformers' order: temperature, then top-k, then top-p. Special ids other than
END are never produced. Truncating the distribution (top-k, top-p, temperature) samples another law
than the LM's, which is why these are *baselines*, not samplers of :math:`p`.

Uniforms: ``uniforms[t]`` draws token ``t`` (inverse CDF); a sentence uses ``max_new_tokens`` uniforms,
those after END unused.

Exact laws: :func:`exact_sequence_law` enumerates every outcome of :func:`decode` (a sentence ended by
END, or its first ``max_new_tokens`` tokens when END was not drawn by then) with its exact probability,

.. math::
    q(x_1..x_n, \mathrm{END}) = \prod_{t=1}^{n} q_t(x_t \mid x_{<t})\; q_{n+1}(\mathrm{END} \mid x_{\le n}),
    \qquad q(x_1..x_L\ \text{cut}) = \prod_{t=1}^{L} q_t(x_t \mid x_{<t}),

with :math:`q_t` the filtered conditional of :func:`next_token_row` (the very code :func:`decode` samples
from, up to the constant of its last renormalisation). Ancestral sampling gives :math:`q = p`; temperature,
top-k and top-p give another law; greedy and beam search give a point mass. Feasible for small models and
short ``max_new_tokens`` only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from textsampling._validation import check_int, check_positive, check_uniforms
from textsampling.lm.tokens import PAD, mask_special_tokens, sequence_length
from textsampling.randomness import as_generator, categorical_from_uniforms, draw_uniforms_for_steps

__all__ = [
    "MODES",
    "DecodeResult",
    "BeamResult",
    "check_decoding",
    "filter_log_probs",
    "next_token_row",
    "decode",
    "sample",
    "beam_search",
    "SequenceLaw",
    "exact_sequence_law",
]

MODES = ("ancestral", "temperature", "top_k", "top_p", "greedy")


class DecodeResult(NamedTuple):
    """A sentence (``(max_new_tokens,)``, PAD-padded, END not included) and whether END was drawn."""

    tokens: np.ndarray
    ended: bool


class BeamResult(NamedTuple):
    """The best finished hypothesis: tokens (PAD-padded, END excluded), its score and whether it ended."""

    tokens: np.ndarray
    score: float
    ended: bool


def check_decoding(temperature=1.0, top_k=None, top_p=None):
    """Validate the filter settings; return them."""
    temperature = check_positive(temperature, "temperature")
    if top_k is not None:
        top_k = check_int(top_k, "top_k", minimum=1)
    if top_p is not None:
        top_p = check_positive(top_p, "top_p")
        if top_p > 1:
            raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    return temperature, top_k, top_p


def filter_log_probs(log_probs, temperature: float = 1.0, top_k=None, top_p=None) -> np.ndarray:
    """Temperature, then top-k, then top-p on one row of log-probabilities ``(V,)``; returns normalised logs.

    Ties in top-k keep the lower id; top-p follows transformers' ``TopPLogitsWarper``.
    """
    row = _filtered_logits(log_probs, temperature, top_k, top_p)
    return row - logsumexp(row)


def _filtered_logits(log_probs, temperature: float = 1.0, top_k=None, top_p=None) -> np.ndarray:
    """:func:`filter_log_probs` without its last renormalisation: the row :func:`decode` draws from.

    The inverse-CDF draw and the argmax do not depend on a constant shift of the row, so the last
    ``row - logsumexp(row)`` (a pass over ``V`` per token) is left out where only the decision is needed;
    each filter still sees normalised logs, as in transformers.
    """
    row = np.asarray(log_probs, dtype=np.float64) / temperature
    if top_k is not None and top_k < row.shape[0]:
        row = row - logsumexp(row)
        order = np.argsort(-row, kind="stable")
        row[order[top_k:]] = -np.inf
    if top_p is not None and top_p < 1.0:
        row = row - logsumexp(row)
        ascending = np.argsort(row, kind="stable")
        cumulative = np.cumsum(np.exp(row[ascending]))  # mass of the least probable tokens first
        remove = cumulative <= 1.0 - top_p
        remove[-1] = False  # the most probable token always stays
        row[ascending[remove]] = -np.inf
    return row


def next_token_row(model, prefix, temperature=1.0, top_k=None, top_p=None) -> np.ndarray:
    """Filtered, normalised :math:`\\log q(x_{t+1} = v \\mid x_{\\le t})` after one PAD-padded prefix, ``(V,)``."""
    return _next_token_logits(model, prefix, temperature, top_k, top_p, normalise=True)


def _next_token_logits(model, prefix, temperature, top_k, top_p, normalise=False) -> np.ndarray:
    row = np.array(model.next_token_log_probs(np.asarray(prefix, dtype=np.int64)[None]), dtype=np.float64)[0]
    row = mask_special_tokens(row, model.special_token_ids, keep=(model.end_token_id,))  # END stays
    row = _filtered_logits(row, temperature, top_k, top_p)
    return row - logsumexp(row) if normalise else row


def decode(uniforms, model, max_new_tokens: int, temperature=1.0, top_k=None, top_p=None, greedy=False) -> DecodeResult:
    """One sentence, deterministic given ``uniforms`` ``(max_new_tokens,)`` (unused when ``greedy``).

    Each token is drawn from (or, ``greedy``, is the argmax of) :func:`next_token_row` up to a constant:
    the filtered row before its last renormalisation, which changes neither the inverse-CDF draw of
    :func:`~textsampling.randomness.categorical_from_uniforms` nor the argmax.
    """
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=1)
    temperature, top_k, top_p = check_decoding(temperature, top_k, top_p)
    uniforms = check_uniforms(uniforms, max_new_tokens)
    tokens = np.full(max_new_tokens, PAD, dtype=np.int64)
    for t in range(max_new_tokens):
        row = _next_token_logits(model, tokens, temperature, top_k, top_p)
        if greedy:
            token = int(np.argmax(row))  # first maximum: lower id on ties
        else:
            token = int(categorical_from_uniforms(uniforms[t : t + 1], row)[0])
        if token == model.end_token_id:
            return DecodeResult(tokens, True)
        tokens[t] = token
    return DecodeResult(tokens, False)


def sample(
    rng, model, num_samples: int, max_new_tokens: int, temperature=1.0, top_k=None, top_p=None, first_step: int = 0
):
    """``num_samples`` sentences; sentence ``i`` uses ``draw_uniforms(rng, first_step + i, max_new_tokens)``.

    Returns
    -------
    (tokens (num_samples, max_new_tokens), ended (num_samples,))
    """
    rng = as_generator(rng)
    num_samples = check_int(num_samples, "num_samples")
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=1)
    all_uniforms = draw_uniforms_for_steps(rng, check_int(first_step, "first_step"), num_samples, max_new_tokens)
    results = [decode(u, model, max_new_tokens, temperature, top_k, top_p) for u in all_uniforms]
    tokens = np.array([r.tokens for r in results]).reshape(num_samples, max_new_tokens)
    return tokens, np.array([r.ended for r in results])


def beam_search(model, num_beams: int, max_new_tokens: int, length_penalty: float = 1.0) -> BeamResult:
    r"""Beam search with transformers' rules (``early_stopping=False``), so both return the same sentence.

    At each step every running beam :math:`b` (score :math:`s_b`, the sum of its log-probabilities) is
    extended by every token; the :math:`2k` best extensions are kept. Among them, those ending (END, or
    the last allowed token) and ranked in the first :math:`k` become finished hypotheses with score
    :math:`s / g^{\text{length\_penalty}}` (:math:`g` = tokens generated, END included); the :math:`k`
    best *non*-ending ones keep running. Search stops when :math:`k` hypotheses are finished and the best
    running beam, normalised at the current length, cannot beat the worst of them — or at
    ``max_new_tokens``. The first of the :math:`k` finished hypotheses is returned.
    """
    num_beams = check_int(num_beams, "num_beams", minimum=1)
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=1)
    end = model.end_token_id
    # Running beams: token lists and scores. transformers starts with k copies of the prompt, all but
    # the first at -1e9, so the first step expands one beam only.
    running = [[] for _ in range(num_beams)]
    running_scores = np.array([0.0] + [-1e9] * (num_beams - 1))
    finished: list[tuple[float, list, bool]] = []  # (score, tokens, ended)
    improvement_possible = True
    for generated in range(max_new_tokens):
        prefixes = np.full((num_beams, max_new_tokens), PAD, dtype=np.int64)
        for b, tokens in enumerate(running):
            prefixes[b, : len(tokens)] = tokens
        rows = np.array(model.next_token_log_probs(prefixes), dtype=np.float64)  # (k, V)
        rows = mask_special_tokens(rows, model.special_token_ids, keep=(end,))  # (k, V); END stays
        vocab_size = rows.shape[1]
        accumulated = (running_scores[:, None] + rows).reshape(-1)  # (k * V,)
        top = np.argsort(-accumulated, kind="stable")[: 2 * num_beams]
        candidates = [(float(accumulated[i]), running[i // vocab_size] + [int(i % vocab_size)]) for i in top]
        last_step = generated + 1 >= max_new_tokens
        hits = [tokens[-1] == end or last_step for _, tokens in candidates]
        # The k best extensions that do not end keep running (ending ones are pushed to -1e9).
        penalised = np.array([score + (-1e9 if hit else 0.0) for (score, _), hit in zip(candidates, hits)])
        keep = np.argsort(-penalised, kind="stable")[:num_beams]
        running = [candidates[i][1] for i in keep]
        running_scores = penalised[keep]
        # Ending extensions among the first k become finished hypotheses (if improvement is still possible).
        if improvement_possible:
            for rank, ((score, tokens), hit) in enumerate(zip(candidates, hits)):
                if hit and rank < num_beams:
                    ended = tokens[-1] == end
                    finished.append((score / (generated + 1) ** length_penalty, tokens, ended))
            finished.sort(key=lambda item: -item[0])
            finished = finished[:num_beams]
        # Stop when k hypotheses are finished and the best running beam cannot beat the worst of them.
        if len(finished) == num_beams:
            best_running = running_scores[0] / (generated + 1) ** length_penalty
            improvement_possible = improvement_possible and best_running > finished[-1][0]
        if not improvement_possible or all(hits):
            break
    score, tokens, ended = finished[0]
    content = [t for t in tokens if t != end]
    out = np.full(max_new_tokens, PAD, dtype=np.int64)
    out[: len(content)] = content
    return BeamResult(out, float(score), bool(ended))


# ----------------------------------------------------------------------------- exact laws
class SequenceLaw(NamedTuple):
    r"""The exact law of a decoder's outcome, over its support (every outcome of positive probability).

    Row ``s`` is the outcome (``tokens[s]``, ``ended[s]``) with probability ``exp(log_probs[s])``; rows are
    sorted by length, then by token ids (an ended sentence is always shorter than ``max_new_tokens``).

    Fields: ``tokens`` ``(S, max_new_tokens)`` int64, the
    sentence PAD-padded with END excluded (as in :class:`DecodeResult`); ``ended`` ``(S,)`` bool, whether END
    was drawn (``False``: the sentence was cut at ``max_new_tokens`` tokens); ``log_probs`` ``(S,)``
    float64, :math:`\log q` of each outcome (they sum to 1 in probability).
    """

    tokens: np.ndarray
    ended: np.ndarray
    log_probs: np.ndarray

    def probabilities(self) -> np.ndarray:
        """``exp(log_probs)``, shape ``(S,)``."""
        return np.exp(self.log_probs)

    def index(self, tokens, ended) -> np.ndarray:
        """Row of each outcome ``(tokens (N, max_new_tokens), ended (N,))`` in this law.

        ``-1`` for an outcome outside its support.
        """
        tokens = np.asarray(tokens, dtype=np.int64)
        ended = np.asarray(ended, dtype=bool)
        if tokens.ndim != 2 or tokens.shape[1] != self.tokens.shape[1] or ended.shape != (tokens.shape[0],):
            raise ValueError(
                f"tokens must have shape (N, {self.tokens.shape[1]}) and ended shape (N,), "
                f"got {tokens.shape} and {ended.shape}"
            )
        rows = {(row.tobytes(), bool(e)): s for s, (row, e) in enumerate(zip(self.tokens, self.ended))}
        return np.array([rows.get((row.tobytes(), bool(e)), -1) for row, e in zip(tokens, ended)], dtype=np.int64)

    def probabilities_of(self, tokens, ended) -> np.ndarray:
        """Probability of each outcome ``(tokens (N, max_new_tokens), ended (N,))``: 0 outside the support."""
        rows = self.index(tokens, ended)
        return np.where(rows >= 0, np.exp(self.log_probs[np.maximum(rows, 0)]), 0.0)

    def tv_distance(self, other: "SequenceLaw") -> float:
        r"""Total variation :math:`\frac12 \sum_x |q(x) - q'(x)|` over the union of both supports."""
        if not isinstance(other, SequenceLaw) or other.tokens.shape[1] != self.tokens.shape[1]:
            raise ValueError("other must be a SequenceLaw over the same max_new_tokens")
        mine = self.probabilities()
        theirs_here = other.probabilities_of(self.tokens, self.ended)  # 0 where other puts no mass
        outside = self.index(other.tokens, other.ended) < 0  # other's outcomes outside this support
        return float(0.5 * (np.abs(mine - theirs_here).sum() + other.probabilities()[outside].sum()))


def _point_mass(tokens: np.ndarray, ended: bool) -> SequenceLaw:
    return SequenceLaw(tokens[None].astype(np.int64), np.array([bool(ended)]), np.zeros(1))


def exact_sequence_law(
    model,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k=None,
    top_p=None,
    greedy: bool = False,
    num_beams=None,
    length_penalty: float = 1.0,
) -> SequenceLaw:
    r"""The exact law of :func:`decode`'s outcome, by enumerating every prefix of positive probability.

    Each prefix :math:`x_{\le t}` is expanded with the same filtered row :func:`decode` samples from
    (:func:`next_token_row`): END closes an outcome, any other token extends the prefix, and a prefix of
    ``max_new_tokens`` tokens is a cut outcome. Log-probabilities add along the path, so

    * ancestral (defaults): :math:`q(x) = p(x)`, the model's own sentence probabilities;
    * ``temperature`` :math:`\tau`: :math:`q(x) = \prod_t p(x_t \mid x_{<t})^{1/\tau} / Z_t(x_{<t})` — one
      normaliser per prefix, hence not :math:`p(x)^{1/\tau}/Z`;
    * ``top_k`` / ``top_p``: the product of the truncated, renormalised conditionals;
    * ``greedy`` or ``num_beams``: the point mass at the single sentence :func:`decode` (greedy) or
      :func:`beam_search` returns — a search, not a sampler.

    Parameters
    ----------
    model : CausalLanguageModel
        ``next_token_log_probs``, ``end_token_id``, ``special_token_ids``.
    max_new_tokens : int
        As in :func:`decode`; the number of outcomes grows like :math:`V^{\text{max\_new\_tokens}}`.
    temperature, top_k, top_p : as in :func:`decode`
    greedy : bool, default False
    num_beams : int, optional
        The law of :func:`beam_search` with ``num_beams`` beams and ``length_penalty``.

    Returns
    -------
    SequenceLaw
    """
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=1)
    temperature, top_k, top_p = check_decoding(temperature, top_k, top_p)
    if num_beams is not None:
        if greedy:
            raise ValueError("greedy and num_beams exclude each other: pass one of them")
        result = beam_search(model, num_beams, max_new_tokens, length_penalty)
        return _point_mass(result.tokens, result.ended)
    if greedy:
        result = decode(np.full(max_new_tokens, 0.5), model, max_new_tokens, temperature, top_k, top_p, greedy=True)
        return _point_mass(result.tokens, result.ended)
    outcomes: list[tuple[np.ndarray, bool, float]] = []
    frontier = [(np.full(max_new_tokens, PAD, dtype=np.int64), 0.0)]  # prefixes of length t, with log q
    for t in range(max_new_tokens):
        extended = []
        for prefix, log_q in frontier:
            row = next_token_row(model, prefix, temperature, top_k, top_p)
            for token in np.flatnonzero(row > -np.inf):  # only outcomes of positive probability
                if token == model.end_token_id:
                    outcomes.append((prefix, True, log_q + row[token]))
                else:
                    longer = prefix.copy()
                    longer[t] = token
                    extended.append((longer, log_q + row[token]))
        frontier = extended
    outcomes.extend((prefix, False, log_q) for prefix, log_q in frontier)  # never reached END: cut
    # Canonical order: length, then token ids (ended and cut outcomes never share a length).
    outcomes.sort(key=lambda o: (sequence_length(o[0]), tuple(int(v) for v in o[0]), not o[1]))
    return SequenceLaw(
        np.array([o[0] for o in outcomes], dtype=np.int64).reshape(len(outcomes), max_new_tokens),
        np.array([o[1] for o in outcomes], dtype=bool),
        np.array([o[2] for o in outcomes], dtype=np.float64),
    )
