r"""Wrong Metropolis–Hastings and annealing steps.

Correct MH (part 2; Metropolis et al. 1953, Hastings 1970) accepts :math:`y \sim q(\cdot \mid x)` with

.. math::
    \log\alpha = \min\bigl(0,\ \log\rho(y) - \log\rho(x) + \log q(x \mid y) - \log q(y \mid x)\bigr).

Each case below gets one piece of this wrong. Those already in :mod:`textsampling.testing.faulty`
(Hastings term forgotten, rejections retried, wrong sign) are reused on the gallery's proposal
(:func:`textsampling.gallery.correct.mh_proposal`, uneven so that the Hastings term matters). The
inverted ratio wraps the proposal so that the *reference* MH code (step and exact kernel alike) runs
with the wrong term; the other two carry their own acceptance function, used by both the step and
:func:`~textsampling.gallery._case.accept_matrix`.
"""

from __future__ import annotations

import numpy as np

from textsampling.gallery._case import accept_matrix, from_faulty
from textsampling.gallery.correct import mh_proposal
from textsampling.randomness import draw_uniforms
from textsampling.reference import metropolis_hastings
from textsampling.reference.proposals import DiscreteProposal, UniformCategoricalProposal
from textsampling.testing import faulty
from textsampling.testing.cases import SamplerCase

__all__ = ["CASES", "InvertedHastings", "raw_probability_accept"]


class InvertedHastings(DiscreteProposal):
    """BUG: uses :math:`\\log q(y \\mid x) - \\log q(x \\mid y)`, the Hastings term upside down."""

    def __init__(self, proposal):
        self.proposal = proposal
        self.num_uniforms = proposal.num_uniforms

    def propose(self, uniforms, x):
        y, log_q_ratio = self.proposal.propose(uniforms, x)
        return y, -log_q_ratio

    def log_prob(self, y, x):
        return self.proposal.log_prob(y, x)  # the moves themselves are the true ones

    def log_q_ratio(self, y, x):
        return -self.proposal.log_q_ratio(y, x)


def _mh_with(proposal_wrapper):
    def step(rng, x, target):
        proposal = proposal_wrapper(mh_proposal(target))
        uniforms = draw_uniforms(rng, 0, metropolis_hastings.num_uniforms(proposal))
        state = metropolis_hastings.init(x, target.log_prob)
        return metropolis_hastings.step(uniforms, state, target.log_prob, proposal)[0].x

    def matrix(target):
        return metropolis_hastings.transition_matrix(target, proposal_wrapper(mh_proposal(target)))

    return step, matrix


def raw_probability_accept(log_prob_x, log_prob_y, log_q_ratio) -> float:
    """BUG: the acceptance probability on raw probabilities, ``exp(log rho(y)) / exp(log rho(x))``.

    Near log-density -1000 both exponentials underflow to 0.0 and the ratio is 0/0 = NaN; the step
    rejects iff ``u >= ratio``, which is False for NaN, so every such move is accepted.
    """
    # The underflow is the bug being demonstrated; silence NumPy's report of it.
    with np.errstate(under="ignore", divide="ignore", invalid="ignore"):
        ratio = np.exp(log_prob_y) * np.exp(log_q_ratio) / np.exp(log_prob_x)
    return 1.0 if np.isnan(ratio) else float(min(1.0, ratio))


def _underflow_proposal(target):
    return UniformCategoricalProposal(target.num_states)  # symmetric: only the rho ratio matters


def underflow_step(rng, x, target):
    """MH on raw probabilities with a uniform proposal (categorical targets)."""
    proposal = _underflow_proposal(target)
    uniforms = draw_uniforms(rng, 0, 2)
    y, log_q_ratio = proposal.propose(uniforms[:1], x)
    log_prob_x, log_prob_y = target.log_prob(np.array([x, y]))
    with np.errstate(under="ignore", divide="ignore", invalid="ignore"):
        ratio = np.exp(log_prob_y) * np.exp(log_q_ratio) / np.exp(log_prob_x)
    if uniforms[1] >= ratio:  # NaN >= u is False: 0/0 accepts
        return x
    return y


def _underflow_matrix(target):
    return accept_matrix(target, _underflow_proposal(target), raw_probability_accept)


def reject_keeps_proposal_step(rng, x, target):
    """BUG: on rejection the chain still moves to the proposal (the 'reject' branch returns ``y``)."""
    proposal = mh_proposal(target)
    uniforms = draw_uniforms(rng, 0, metropolis_hastings.num_uniforms(proposal))
    state = metropolis_hastings.init(x, target.log_prob)
    _, info = metropolis_hastings.step(uniforms, state, target.log_prob, proposal)
    return info.proposal


def _reject_keeps_proposal_matrix(target):
    proposal = mh_proposal(target)
    # Every proposal is taken: the kernel is q itself.
    return accept_matrix(target, proposal, lambda log_prob_x, log_prob_y, log_q_ratio: 1.0)


_inverted_step, _inverted_matrix = _mh_with(InvertedHastings)


def _without_hastings(target):
    return faulty.mh_without_hastings_correction(target, mh_proposal(target))


CASES = (
    from_faulty("mh-no-hastings", "mh", "bigram-small", _without_hastings),
    SamplerCase(
        "mh-inverted-ratio", "mh", "bigram-small",
        "MH with the proposal ratio inverted: log q(y|x) - log q(x|y) instead of log q(x|y) - log q(y|x)",
        _inverted_step, _inverted_matrix,
    ),
    from_faulty("mh-no-hastings-ring", "mh", "categorical-small", _without_hastings),
    SamplerCase(
        "mh-underflow", "mh", "categorical-far",
        "acceptance from raw probabilities exp(log rho): near -1000 both underflow, 0/0 = NaN, and NaN accepts",
        underflow_step, _underflow_matrix,
    ),
    SamplerCase(
        "mh-reject-moves", "mh", "bigram-small",
        "a rejected proposal is returned anyway: the chain follows the proposal, never the target",
        reject_keeps_proposal_step, _reject_keeps_proposal_matrix,
    ),
    from_faulty(
        "mh-retries-rejections", "mh", "bigram-small",
        lambda target: faulty.mh_that_retries_rejections(target, mh_proposal(target)),
    ),
    from_faulty(
        "anneal-wrong-sign", "anneal", "bigram-small",
        lambda target, temperature: faulty.mh_with_wrong_sign(target, mh_proposal(target), temperature),
        {"temperature": 2.0},
    ),
)
