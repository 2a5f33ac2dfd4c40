r"""The correct samplers, as step functions of each :mod:`textsampling.testing.conformance` kind.

Thin adapters over :mod:`textsampling.reference` (through :mod:`textsampling.testing.adapters` where
it has one): each draws the uniforms of one step from ``rng`` and calls the reference ``step`` (the
CGMH one lives in :mod:`textsampling.gallery.cgmh`). They are what
the gallery's wrong samplers imitate, and what must pass the check at its stated false-fail rate.

Proposals (:func:`mh_proposal`): a single-site proposal with *uneven* token probabilities
:math:`r = (0.6, 0.3, 0.1)` on sequences and an uneven ring step on categoricals, so that the Hastings
term :math:`\log q(x \mid y) - \log q(y \mid x)` is not zero and forgetting it matters.
"""

from __future__ import annotations

import numpy as np

from textsampling.gallery._case import per_target
from textsampling.gallery.gibbs import mask_sensitive_oracle
from textsampling.randomness import draw_uniforms
from textsampling.reference import annealing, gibbs, metropolis_hastings, mlm_gibbs
from textsampling.reference.proposals import RingStepProposal, SingleSiteProposal
from textsampling.testing.adapters import annealing_step_fn, gibbs_step_fn, metropolis_hastings_step_fn
from textsampling.testing.cases import SamplerCase

__all__ = [
    "mh_proposal",
    "mh_step",
    "anneal_step",
    "gibbs_random_scan_step",
    "gibbs_systematic_sweep",
    "mlm_gibbs_random_scan_step",
    "mlm_gibbs_systematic_sweep",
    "CORRECT",
]

#: Token probabilities of the single-site proposal: uneven on purpose (see the module docstring).
TOKEN_PROBABILITIES = (0.6, 0.3, 0.1)
#: Forward probability of the ring proposal on categoricals.
RING_FORWARD_PROBABILITY = 0.7


@per_target
def mh_proposal(target):
    """The MH proposal the gallery uses on ``target``: an uneven ring (categorical) or single site (sequences)."""
    if tuple(target.state_shape) == ():
        return RingStepProposal(target.num_states, RING_FORWARD_PROBABILITY)
    token_logits = np.log(np.resize(np.asarray(TOKEN_PROBABILITIES), target.vocab_size))
    return SingleSiteProposal(target.vocab_size, target.length, token_logits)


_mh_step_fn = per_target(lambda target: metropolis_hastings_step_fn(target.log_prob, mh_proposal(target)))
_anneal_step_fn = per_target(
    lambda target, temperature: annealing_step_fn(target.log_prob, mh_proposal(target), temperature)
)
_gibbs_step_fn = per_target(lambda target, scan: gibbs_step_fn(target.conditional_log_probs, scan))


def mh_step(rng, x, target):
    """One MH step (:mod:`textsampling.reference.metropolis_hastings`) with :func:`mh_proposal`."""
    return _mh_step_fn(target)(rng, x)


def anneal_step(rng, x, target, temperature):
    """One annealing step at ``temperature`` (:mod:`textsampling.reference.annealing`)."""
    return _anneal_step_fn(target, temperature)(rng, x)


def gibbs_random_scan_step(rng, x, target):
    """One random-scan Gibbs update (:func:`textsampling.reference.gibbs.step`)."""
    return _gibbs_step_fn(target, "random")(rng, x)


def gibbs_systematic_sweep(rng, x, target):
    """One systematic sweep (:func:`textsampling.reference.gibbs.step` with ``scan="systematic"``)."""
    return _gibbs_step_fn(target, "systematic")(rng, x)


def mlm_gibbs_random_scan_step(rng, x, lm):
    """One random-scan MLM Gibbs update (:func:`textsampling.reference.mlm_gibbs.step`, [MASK] put at i)."""
    uniforms = draw_uniforms(rng, 0, mlm_gibbs.num_uniforms("random"))
    return mlm_gibbs.step(uniforms, mlm_gibbs.init(x, lm), lm, scan="random")[0].x


def mlm_gibbs_systematic_sweep(rng, x, lm):
    """One systematic MLM Gibbs sweep."""
    state = mlm_gibbs.init(x, lm)
    uniforms = draw_uniforms(rng, 0, mlm_gibbs.num_uniforms("systematic", state.x.shape[0]))
    return mlm_gibbs.step(uniforms, state, lm, scan="systematic")[0].x


CORRECT = (
    SamplerCase(
        "mh-reference", "mh", "bigram-small",
        "Metropolis-Hastings, single-site proposal r = (0.6, 0.3, 0.1), with the Hastings term",
        mh_step, lambda target: metropolis_hastings.transition_matrix(target, mh_proposal(target)),
    ),
    SamplerCase(
        "mh-reference-categorical", "mh", "categorical-small",
        "Metropolis-Hastings, uneven ring proposal (forward 0.7), with the Hastings term",
        mh_step, lambda target: metropolis_hastings.transition_matrix(target, mh_proposal(target)),
    ),
    SamplerCase(
        "anneal-reference", "anneal", "bigram-small",
        "simulated-annealing step at T = 2: MH on rho^(1/T)",
        anneal_step,
        lambda target, temperature: annealing.transition_matrix(target, mh_proposal(target), temperature),
        {"temperature": 2.0},
    ),
    SamplerCase(
        "gibbs-random-scan", "gibbs", "pairwise-small",
        "random-scan Gibbs from the exact conditionals",
        gibbs_random_scan_step, lambda target: gibbs.transition_matrix(target, "random"),
    ),
    SamplerCase(
        "gibbs-systematic-scan", "gibbs", "pairwise-small",
        "systematic-scan Gibbs sweep (stationary, not reversible)",
        gibbs_systematic_sweep, lambda target: gibbs.transition_matrix(target, "systematic"),
    ),
    SamplerCase(
        "mlm-gibbs-random-scan", "mlm-gibbs", "bigram-small",
        "random-scan MLM Gibbs from the bigram oracle's masked conditionals",
        mlm_gibbs_random_scan_step,
        lambda target: mlm_gibbs.transition_matrix(mask_sensitive_oracle(target), target.states, "random"),
    ),
    SamplerCase(
        "mlm-gibbs-systematic-scan", "mlm-gibbs", "bigram-small",
        "systematic MLM Gibbs sweep from the bigram oracle",
        mlm_gibbs_systematic_sweep,
        lambda target: mlm_gibbs.transition_matrix(mask_sensitive_oracle(target), target.states, "systematic"),
    ),
)
