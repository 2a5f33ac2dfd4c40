r"""Decoding baselines for a causal LM: ancestral, temperature, top-k, top-p, greedy and beam search.

The left-to-right samplers the MCMC samplers of parts 3–4 are compared with. A sentence is built token
by token from :math:`p(x_{t+1} \mid x_{\le t})` until END (or ``max_new_tokens``):

* ancestral — draw from :math:`p` itself: sentences follow the LM's law exactly;
* temperature — from :math:`p^{1/\tau}` (renormalised);
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
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from textsampling._validation import check_int, check_positive, check_uniforms
from textsampling.randomness import as_generator
from textsampling.reference.categorical import categorical_from_uniforms
from textsampling.reference.proposals import draw_uniforms_for_steps
from textsampling.targets.base import PAD

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
    row = np.asarray(log_probs, dtype=np.float64) / temperature
    row = row - logsumexp(row)
    if top_k is not None and top_k < row.shape[0]:
        order = np.argsort(-row, kind="stable")
        row[order[top_k:]] = -np.inf
        row = row - logsumexp(row)
    if top_p is not None and top_p < 1.0:
        ascending = np.argsort(row, kind="stable")
        cumulative = np.cumsum(np.exp(row[ascending]))  # mass of the least probable tokens first
        remove = cumulative <= 1.0 - top_p
        remove[-1] = False  # the most probable token always stays
        row[ascending[remove]] = -np.inf
        row = row - logsumexp(row)
    return row


def next_token_row(model, prefix, temperature=1.0, top_k=None, top_p=None) -> np.ndarray:
    """Filtered, normalised :math:`\\log q(x_{t+1} = v \\mid x_{\\le t})` after one PAD-padded prefix, ``(V,)``."""
    row = np.array(model.next_token_log_probs(np.asarray(prefix, dtype=np.int64)[None]), dtype=np.float64)[0]
    special = [int(t) for t in model.special_token_ids if int(t) != model.end_token_id and 0 <= int(t) < row.shape[0]]
    row[special] = -np.inf  # never produce [MASK], [PAD], BOS...; END stays
    return filter_log_probs(row, temperature, top_k, top_p)


def decode(uniforms, model, max_new_tokens: int, temperature=1.0, top_k=None, top_p=None, greedy=False) -> DecodeResult:
    """One sentence, deterministic given ``uniforms`` ``(max_new_tokens,)`` (unused when ``greedy``)."""
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=1)
    temperature, top_k, top_p = check_decoding(temperature, top_k, top_p)
    uniforms = check_uniforms(uniforms, max_new_tokens)
    tokens = np.full(max_new_tokens, PAD, dtype=np.int64)
    for t in range(max_new_tokens):
        row = next_token_row(model, tokens, temperature, top_k, top_p)
        if greedy:
            token = int(np.argmax(row))  # first maximum: lower id on ties
        else:
            token = int(categorical_from_uniforms(uniforms[t : t + 1], row)[0])
        if token == model.end_token_id:
            return DecodeResult(tokens, True)
        tokens[t] = token
    return DecodeResult(tokens, False)


def sample(rng, model, num_samples: int, max_new_tokens: int, temperature=1.0, top_k=None, top_p=None, first_step: int = 0):
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
    return np.array([r.tokens for r in results]).reshape(num_samples, max_new_tokens), np.array([r.ended for r in results])


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
        special = [int(t) for t in model.special_token_ids if int(t) != end and 0 <= int(t) < rows.shape[1]]
        rows[:, special] = -np.inf
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
