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
* **top-k / temperature presented as exact** — MLM Gibbs from
  :math:`\mathrm{top}_k(p(\cdot \mid x_{-i})^{1/\tau})`, which samples another law (SERIES.md part 3).
"""

from __future__ import annotations

import numpy as np

from textsampling.gallery._case import GalleryCase, from_faulty
from textsampling.randomness import draw_uniforms
from textsampling.reference import gibbs, mlm_gibbs
from textsampling.testing import faulty

__all__ = ["CASES", "causal_conditional_log_probs"]

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


def _oracle(target):
    from textsampling.check import bigram_oracle

    return bigram_oracle(target)


def mlm_top_k_step(rng, x, lm):
    """MLM Gibbs with top-k truncation of the conditional, used as if it sampled the joint."""
    uniforms = draw_uniforms(rng, 0, 2)
    return mlm_gibbs.step(uniforms, mlm_gibbs.MLMGibbsState(np.asarray(x)), lm, "random", top_k=TOP_K)[0].x


def mlm_temperature_step(rng, x, lm):
    """MLM Gibbs at temperature :data:`TEMPERATURE`, used as if it sampled the joint."""
    uniforms = draw_uniforms(rng, 0, 2)
    state = mlm_gibbs.MLMGibbsState(np.asarray(x))
    return mlm_gibbs.step(uniforms, state, lm, "random", temperature=TEMPERATURE)[0].x


CASES = (
    from_faulty("gibbs-stale-conditional", "gibbs", "pairwise-small", faulty.gibbs_with_stale_conditionals),
    from_faulty("gibbs-skip-position", "gibbs", "pairwise-small", faulty.systematic_scan_skipping_last_position),
    GalleryCase(
        "gibbs-causal-conditional", "gibbs", "bigram-small",
        "Gibbs from a causal LM's next-token law p(v | x_{i-1}) instead of the masked conditional",
        causal_gibbs_step, _causal_matrix,
    ),
    GalleryCase(
        "mlm-gibbs-top-k", "mlm-gibbs", "bigram-small",
        f"top-k truncation (k = {TOP_K}) of the MLM conditional presented as exact Gibbs sampling",
        mlm_top_k_step,
        lambda target: mlm_gibbs.transition_matrix(_oracle(target), target.states, "random", top_k=TOP_K),
    ),
    GalleryCase(
        "mlm-gibbs-temperature", "mlm-gibbs", "bigram-small",
        f"MLM conditional at temperature {TEMPERATURE} presented as exact Gibbs sampling",
        mlm_temperature_step,
        lambda target: mlm_gibbs.transition_matrix(
            _oracle(target), target.states, "random", temperature=TEMPERATURE
        ),
    ),
)
