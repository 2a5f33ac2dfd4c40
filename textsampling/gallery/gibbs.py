r"""Wrong Gibbs and MLM-Gibbs steps.

The stale-conditional and skipped-position sweeps are those of :mod:`textsampling.testing.faulty`.
A correct site update redraws :math:`x_i \sim \pi(x_i \mid x_{-i})` from the *current* sequence; a
sweep does so for :math:`i = 0, \dots, L-1` in turn, each update seeing the ones before it (Geman &
Geman 1984; part 3 for the masked-LM version, Wang & Cho 2019). The cases:

* **stale conditionals** — every position of a sweep is drawn from the conditionals of the sweep's
  *starting* state (a parallel update): not invariant when neighbours interact;
* **skipped position** — the sweep stops one short: each update is correct, so :math:`\pi` stays
  invariant, but the last token never changes (caught by the long-run test only);
* **causal conditional** — :math:`p(v \mid x_{i-1})` from a left-to-right LM used as if it were the
  masked conditional :math:`p(v \mid x_{i-1}, x_{i+1})`;
* **forgot the mask** — the conditional at :math:`i` asked for with :math:`x_i` still in view, instead
  of ``[MASK]`` there: a real masked LM then leans toward the token it can see. Only a model that
  looks at :math:`x_i` reveals it (:class:`~textsampling.lm.oracle.MaskSensitiveOracle`; the plain
  :class:`~textsampling.lm.oracle.BigramOracle` ignores :math:`x_i`, so the bug keeps :math:`\pi`
  there) — hence the MLM cases' kernels use :func:`mask_sensitive_oracle`, the model
  ``check --kind mlm-gibbs`` hands a step (:data:`FORGOT_MASK`);
* **top-k / temperature presented as exact** — MLM Gibbs from
  :math:`\mathrm{top}_k(p(\cdot \mid x_{-i})^{1/\tau})`, which samples another law (SERIES.md part 3).
"""

from __future__ import annotations

import numpy as np

from textsampling.gallery._case import from_faulty, law_matrix, per_target
from textsampling.lm.tokens import sequence_length, with_mask_at
from textsampling.randomness import categorical_from_uniforms, draw_uniforms, integer_from_uniform
from textsampling.reference import gibbs, mlm_gibbs
from textsampling.testing import faulty
from textsampling.testing.cases import SamplerCase
from textsampling.testing.conformance import bigram_oracle

__all__ = ["CASES", "FORGOT_MASK", "causal_conditional_log_probs", "mask_sensitive_oracle"]

#: Truncation and temperature of the MLM cases.
TOP_K = 2
TEMPERATURE = 0.7


def causal_conditional_log_probs(target):
    """BUG: the next-token law of the bigram, :math:`p(v \\mid x_{i-1})`, as the 'masked conditional'."""
    vocab = target.vocab_size
    log_next = target.log_transition[:, :vocab]
    log_next = log_next - np.logaddexp.reduce(log_next, axis=1, keepdims=True)  # renormalised without END

    def conditional_log_probs(states, position):
        states = np.asarray(states)
        if position == 0:
            return np.broadcast_to(target.log_initial, (states.shape[0], vocab)).copy()
        return log_next[states[:, position - 1]]

    return conditional_log_probs


def causal_gibbs_step(rng, x, target):
    """Random-scan Gibbs whose conditional ignores the right neighbour."""
    uniforms = draw_uniforms(rng, 0, 2)
    state = gibbs.GibbsState(np.asarray(x))
    return gibbs.step(uniforms, state, causal_conditional_log_probs(target))[0].x


def _causal_matrix(target):
    return gibbs.transition_matrix(target, "random", conditional_log_probs=causal_conditional_log_probs(target))


#: The model ``check --kind mlm-gibbs`` hands an MLM-Gibbs step on ``target``
#: (:func:`textsampling.testing.conformance.bigram_oracle`, built once per target): exact for a step
#: that puts [MASK] at the position it resamples, leaning toward the visible token for one that forgets.
mask_sensitive_oracle = per_target(bigram_oracle)


def mlm_top_k_step(rng, x, lm):
    """MLM Gibbs with top-k truncation of the conditional, used as if it sampled the joint."""
    uniforms = draw_uniforms(rng, 0, 2)
    return mlm_gibbs.step(uniforms, mlm_gibbs.init(x, lm), lm, scan="random", top_k=TOP_K)[0].x


def mlm_temperature_step(rng, x, lm):
    """MLM Gibbs at temperature :data:`TEMPERATURE`, used as if it sampled the joint."""
    uniforms = draw_uniforms(rng, 0, 2)
    return mlm_gibbs.step(uniforms, mlm_gibbs.init(x, lm), lm, scan="random", temperature=TEMPERATURE)[0].x


def site_log_probs(x, position, lm, mask: bool) -> np.ndarray:
    """Sampling row at ``position``: ``[MASK]`` put there first when ``mask`` (correct), else not (the bug)."""
    query = with_mask_at(x, position, lm.mask_token_id) if mask else np.array(x, dtype=np.int64)  # (L,)
    row = np.asarray(lm.masked_log_probs(query[None], np.array([position])), dtype=np.float64)[0]
    return mlm_gibbs.sampling_log_probs(row, lm.special_token_ids)


def _site_step(rng, x, lm, mask: bool):
    uniforms = draw_uniforms(rng, 0, 2)
    x = np.array(x, dtype=np.int64)
    position = int(integer_from_uniform(uniforms[0], sequence_length(x)))
    x[position] = categorical_from_uniforms(uniforms[1:], site_log_probs(x, position, lm, mask))[0]
    return x


def mlm_forgot_mask_step(rng, x, lm):
    """BUG: random-scan MLM Gibbs that asks for the conditional at i without putting [MASK] at i."""
    return _site_step(rng, x, lm, mask=False)


def mlm_mask_first_step(rng, x, lm):
    """Random-scan MLM Gibbs that puts [MASK] at i, then draws x_i from the model's conditional."""
    return _site_step(rng, x, lm, mask=True)


def site_scan_matrix(lm, target, mask: bool) -> np.ndarray:
    """Exact kernel of :func:`mlm_forgot_mask_step` (``mask=False``) or :func:`mlm_mask_first_step`, same code."""

    def law(x):
        length = sequence_length(x)
        next_states, probabilities = [], []
        for position in range(length):
            row = site_log_probs(x, position, lm, mask)
            token_probabilities = np.exp(row - np.max(row))
            token_probabilities /= token_probabilities.sum()
            for token in np.flatnonzero(token_probabilities > 0):
                y = np.array(x, dtype=np.int64)
                y[position] = token
                next_states.append(y)
                probabilities.append(token_probabilities[token] / length)
        return np.array(next_states), np.array(probabilities)

    return law_matrix(target, law)


#: Forgetting the [MASK]; its exact kernel uses the model that can see the bug, the one the check hands
#: (under the plain oracle this step would be exact: see tests/test_gallery_forgot_mask.py).
FORGOT_MASK = SamplerCase(
    "mlm-gibbs-forgot-mask", "mlm-gibbs", "bigram-small",
    "MLM Gibbs that asks for the conditional at i with x_i in view instead of [MASK] there",
    mlm_forgot_mask_step,
    lambda target: site_scan_matrix(mask_sensitive_oracle(target), target, mask=False),
)


CASES = (
    from_faulty("gibbs-stale-conditional", "gibbs", "pairwise-small", faulty.gibbs_with_stale_conditionals),
    from_faulty("gibbs-skip-position", "gibbs", "pairwise-small", faulty.systematic_scan_skipping_last_position),
    SamplerCase(
        "gibbs-causal-conditional", "gibbs", "bigram-small",
        "Gibbs from a causal LM's next-token law p(v | x_{i-1}) instead of the masked conditional",
        causal_gibbs_step, _causal_matrix,
    ),
    SamplerCase(
        "mlm-gibbs-top-k", "mlm-gibbs", "bigram-small",
        f"top-k truncation (k = {TOP_K}) of the MLM conditional presented as exact Gibbs sampling",
        mlm_top_k_step,
        lambda target: mlm_gibbs.transition_matrix(
            mask_sensitive_oracle(target), target.states, "random", top_k=TOP_K
        ),
    ),
    SamplerCase(
        "mlm-gibbs-temperature", "mlm-gibbs", "bigram-small",
        f"MLM conditional at temperature {TEMPERATURE} presented as exact Gibbs sampling",
        mlm_temperature_step,
        lambda target: mlm_gibbs.transition_matrix(
            mask_sensitive_oracle(target), target.states, "random", temperature=TEMPERATURE
        ),
    ),
    FORGOT_MASK,
)
