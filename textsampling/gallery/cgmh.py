r"""CGMH on the check's keyword target — the reference sampler, and the mistakes of published code.

An adapter over :mod:`textsampling.reference.cgmh` (Miao et al. 2019, arXiv:1811.10996; part 4 of the
series): the built-in target ``bigram-keywords`` (a :class:`~textsampling.targets.composed.KeywordTarget`
over a bigram LM) becomes a :class:`~textsampling.reference.cgmh.CGMHConfig` whose ``log_target`` is the
target's ``log_prob``, with top-:data:`NUM_CANDIDATES` candidate lists and each move type with
probability 1/3. Every path :math:`x \to y` (move, position, token) with its probability and acceptance
comes from :func:`textsampling.reference.cgmh.transition_paths` — the reference's own code, memoised per
sentence; :func:`cgmh_step` draws a path by inverse CDF and accepts it, and :func:`transition_matrix`
sums the very same paths (the exact kernel).

A short candidate list costs irreducibility: with top-2 lists some sentences can never be built (e.g.
``2 2 2 2`` on ``bigram-keywords``, since token 2 is never among the two likeliest next tokens after a 2).
The kernel is still reversible with respect to :math:`\pi` (exactly, see the tests), and the mass it
cannot reach is far below what the long-run test can see.

The mistakes (SERIES.md part 4), as variants:

``no-position-ratio``
    the acceptance leaves out the position-choice probabilities of insert and delete;
``biased-candidates``
    a replace's candidate list always contains the current token, so the forward list (with
    :math:`x_i`) and the reverse list (with :math:`y_i`) differ, while the reverse probability is
    computed from the forward list;
``threshold-acceptance``
    a move is accepted iff :math:`\alpha > 1/2`, a fixed threshold instead of a uniform draw;
``position-protecting``
    the keyword *positions* are protected (Su's "never pick keyword positions", and this package's own
    earlier rule): exact on (sentence, placement) pairs, so over sentences it samples
    :math:`\propto N(x)\rho(x)`, :math:`N(x)` the number of placements of the keywords in :math:`x`. As a
    step on sentences it draws the placement uniformly from those of :math:`x` — the pair chain's
    conditional law at stationarity — then moves the pair and forgets the placement.
"""

from __future__ import annotations

import itertools

import numpy as np

from textsampling.gallery._case import law_matrix, per_target
from textsampling.randomness import categorical_from_uniforms, draw_uniforms
from textsampling.reference import cgmh
from textsampling.testing.cases import SamplerCase

__all__ = ["NUM_CANDIDATES", "VARIANTS", "config_for", "paths", "cgmh_step", "transition_matrix", "CASES", "CORRECT"]

#: Size of the candidate list (top-K next tokens of the language model).
NUM_CANDIDATES = 2
#: Variant name -> settings of :func:`textsampling.reference.cgmh.make_config` (plus the threshold flag).
VARIANTS = {
    "correct": {},
    "no-position-ratio": {"position_ratio": False},
    "biased-candidates": {"candidate_set": "biased"},
    "threshold-acceptance": {},
    "position-protecting": {"keyword_rule": "position"},
}


@per_target
def _config(target, variant: str) -> cgmh.CGMHConfig:
    from textsampling.lm.oracle import BigramOracle

    return cgmh.make_config(
        BigramOracle(target.base), [[k] for k in target.keywords], num_candidates=NUM_CANDIDATES,
        gamma=target.gamma, log_similarity_fn=target.log_similarity, **VARIANTS[variant],
    )


def config_for(target, variant: str = "correct") -> cgmh.CGMHConfig:
    """The reference configuration whose ``log_target`` is ``target.log_prob`` (a KeywordTarget over a BigramLM)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    return _config(target, variant)


def _placements(keywords, x) -> list:
    """Every in-order placement of one-token keywords in ``x``, as protected masks."""
    tokens = [int(t) for t in x if t >= 0]
    wanted = [unit[0] for unit in keywords]
    masks = []
    for places in itertools.combinations(range(len(tokens)), len(wanted)):
        if [tokens[i] for i in places] == wanted:
            mask = np.zeros(len(x), dtype=bool)
            mask[list(places)] = True
            masks.append(mask)
    return masks


@per_target
def _paths(target, key: bytes, variant: str):
    config = config_for(target, variant)
    x = np.frombuffer(key, dtype=np.int64)
    if not cgmh.satisfies_keywords(config.keywords, x)[0]:
        # Outside the support (the target enumerates every sentence): no move; such rows never carry mass.
        return np.empty((0, x.size), dtype=np.int64), np.empty(0), np.empty(0)
    if config.keyword_rule == "position":
        masks = _placements(config.keywords, x)
        pieces = [cgmh.transition_paths(config, cgmh.init(x, config, protected=mask)) for mask in masks]
        next_states = np.concatenate([p[0] for p in pieces])
        log_q = np.concatenate([p[2] for p in pieces]) - np.log(len(masks))  # placement drawn uniformly
        log_alpha = np.concatenate([p[3] for p in pieces])
    else:
        next_states, _, log_q, log_alpha = cgmh.transition_paths(config, cgmh.init(x, config))
    if variant == "threshold-acceptance":  # BUG: a fixed threshold instead of a uniform draw
        log_alpha = np.where(log_alpha > np.log(0.5), 0.0, -np.inf)
    return next_states, log_q, log_alpha


def paths(target, x, variant: str = "correct"):
    """Every move out of ``x``: next states ``(M, L)``, path log-probabilities ``(M,)``, log acceptance ``(M,)``.

    The path probabilities sum to at most 1; the rest (impossible moves) stays on ``x``.
    """
    config_for(target, variant)  # checks the variant
    return _paths(target, np.asarray(x, dtype=np.int64).tobytes(), variant)


def cgmh_step(rng, x, target, variant: str = "correct"):
    """One CGMH step: ``uniforms[0]`` picks the path (inverse CDF, the remainder stays), ``uniforms[1]`` accepts."""
    uniforms = draw_uniforms(rng, 0, 2)
    next_states, log_q, log_alpha = paths(target, x, variant)
    stay = 1.0 - float(np.exp(log_q).sum()) if log_q.size else 1.0
    # Mass not used by any move (impossible moves) stays on x; 0 when none is left.
    with np.errstate(divide="ignore"):
        log_stay = np.log(max(stay, 0.0))
    choice = int(categorical_from_uniforms(uniforms[:1], np.append(log_q, log_stay))[0])
    if choice == log_q.size or not np.log(uniforms[1]) < log_alpha[choice]:  # NaN rejects
        return np.array(x, dtype=np.int64)
    return next_states[choice].copy()


def transition_matrix(target, variant: str = "correct"):
    """Exact kernel of :func:`cgmh_step` on the enumerated sentences of ``target``, from :func:`paths`."""

    def law(x):
        next_states, log_q, log_alpha = paths(target, x, variant)
        # A NaN acceptance (both sentences impossible) is a rejection, as in the step.
        accept = np.exp(np.minimum(np.nan_to_num(log_alpha, nan=-np.inf), 0.0))
        moved = np.exp(log_q) * accept
        return np.vstack([next_states, x[None]]), np.append(moved, 1.0 - moved.sum())

    return law_matrix(target, law)


def _case(name: str, variant: str, description: str) -> SamplerCase:
    def step(rng, x, target):
        return cgmh_step(rng, x, target, variant)

    def matrix(target):
        return transition_matrix(target, variant)

    step.__name__ = step.__qualname__ = name.replace("-", "_")
    return SamplerCase(name, "cgmh", "bigram-keywords", description, step, matrix)


CORRECT = (
    _case("cgmh-reference", "correct",
          "CGMH replace/insert/delete with top-2 candidates and the full Hastings ratio (textsampling.reference.cgmh)"),
)

CASES = (
    _case("cgmh-no-position-ratio", "no-position-ratio",
          "CGMH insertion/deletion without the position-choice probabilities 1/(n+1) and 1/m in the ratio"),
    _case("cgmh-biased-candidates", "biased-candidates",
          "CGMH replace whose candidate list always holds the current token (forward and reverse lists differ)"),
    _case("cgmh-threshold-acceptance", "threshold-acceptance",
          "CGMH moves accepted iff alpha > 1/2 (a fixed threshold) instead of with probability alpha"),
    _case("cgmh-position-protecting", "position-protecting",
          "CGMH that protects keyword positions: exact on (sentence, placement) pairs, "
          "so it samples N(x) rho(x) over sentences"),
)
