r"""Deliberately wrong samplers, built from the reference pieces: the checks must catch every one.

A test suite that never fails proves nothing. Each function here returns a
:class:`~textsampling.testing.cases.SamplerCase` (the record the gallery uses too) with a step
function ``step(rng, x)`` for the black-box harness *and* the exact transition matrix of the same wrong
kernel, so a test can compute how wrong it is — :math:`\mathrm{TV}(\pi P, \pi)`, or the TV distance
after a number of steps — and choose a sample size whose stated power is at least 0.999 (emcee's
``_test_uniform``, STYLE.md "a test of the test"). The bugs are the ones published code made
(SERIES.md, parts 2–4):

* :func:`mh_without_hastings_correction` — an asymmetric proposal accepted with
  :math:`\min(1, \rho(y)/\rho(x))`, the :math:`q(x|y)/q(y|x)` term forgotten;
* :func:`mh_with_wrong_sign` — annealing / MH on :math:`\exp(-\log\rho/T)`: it seeks the minimum;
* :func:`gibbs_with_tempered_conditional` — Gibbs from :math:`p(x_i | x_{-i})^{1/T}` renormalised
  (e.g. a temperature or top-k left on the masked LM after burn-in);
* :func:`gibbs_with_stale_conditionals` — a sweep that draws every position from the conditional
  of the state at the *start* of the sweep (a parallel update; not a Gibbs sampler);
* :func:`systematic_scan_skipping_last_position` — an off-by-one sweep ``range(L - 1)``: it keeps
  :math:`\pi` invariant but never changes the last token, so only a long-run test from a fixed
  start catches it;
* :func:`mh_that_retries_rejections` — a rejected proposal is retried until the chain moves, so
  the kernel records only moves (target :math:`\propto \pi(x)(1 - P(x, x))`);
* :func:`rejection_with_clipped_envelope` — rejection sampling whose envelope is too small,
  with the acceptance probability clipped at 1 instead of raising;
* parallel-tempering swaps (kind ``pt-swap`` of ``textsampling check``: the signature of
  :func:`textsampling.reference.parallel_tempering.swap`, checked on the product law of a named target;
  the kernel is on the joint states of :class:`~textsampling.testing.replica_exchange.ReplicaProduct`):
  :func:`pt_swap_without_temperatures` (the exchange accepted with :math:`\min(1, \rho(x_{i+1})/\rho(x_i))`,
  the factor :math:`1/T_i - 1/T_{i+1}` left out, as if both replicas were at one temperature),
  :func:`pt_swap_with_tempered_log_probs` (each state scored at its own replica's temperature,
  :math:`\log\rho(x_{i+1})/T_{i+1} - \log\rho(x_i)/T_i`, instead of the ratio of the product before and
  after the exchange) and :func:`pt_swap_with_wrong_sign` (the difference of log-densities reversed:
  swaps push the better state up the ladder).
"""

from __future__ import annotations

import numpy as np

from textsampling._validation import check_positive
from textsampling.randomness import categorical_from_uniforms, draw_uniforms
from textsampling.reference import gibbs, metropolis_hastings
from textsampling.testing import replica_exchange
from textsampling.testing.adapters import gibbs_step_fn, metropolis_hastings_step_fn
from textsampling.testing.cases import DETECTIONS, SamplerCase

__all__ = [
    "DETECTIONS",
    "mh_without_hastings_correction",
    "mh_with_wrong_sign",
    "gibbs_with_tempered_conditional",
    "gibbs_with_stale_conditionals",
    "systematic_scan_skipping_last_position",
    "mh_that_retries_rejections",
    "rejection_with_clipped_envelope",
    "pt_swap_without_temperatures",
    "pt_swap_with_tempered_log_probs",
    "pt_swap_with_wrong_sign",
]


class _ForgetsHastings:
    """A discrete proposal that reports a Hastings term of 0 whatever its real asymmetry (the bug)."""

    def __init__(self, proposal):
        self.proposal = proposal
        self.num_uniforms = proposal.num_uniforms

    def propose(self, uniforms, x):
        y, _ = self.proposal.propose(uniforms, x)
        return y, 0.0  # bug: log q(x|y) - log q(y|x) dropped

    def log_prob(self, y, x):
        return self.proposal.log_prob(y, x)

    def log_q_ratio(self, y, x):
        return 0.0


def mh_without_hastings_correction(target, proposal) -> SamplerCase:
    """MH with an asymmetric discrete ``proposal`` whose :math:`q(x|y)/q(y|x)` is left out."""
    wrong = _ForgetsHastings(proposal)
    return SamplerCase(
        name="mh_without_hastings_correction",
        kind=None,
        target=target,
        description=(
            "accepts an asymmetric proposal with min(1, rho(y)/rho(x)): the Hastings ratio q(x|y)/q(y|x) is missing"
        ),
        step=metropolis_hastings_step_fn(target.log_prob, wrong),
        transition_matrix=metropolis_hastings.transition_matrix(target, wrong),
        detected_by="one_step_invariance",
    )


def mh_with_wrong_sign(target, proposal, temperature: float = 1.0) -> SamplerCase:
    r"""Annealing/MH on :math:`\exp(-\log\rho / T)`: a sign error that samples (and seeks) the minimum.

    ``target`` must give every state positive probability (else :math:`-\log\rho = +\infty`).
    """
    temperature = check_positive(temperature, "temperature")
    log_rho = target.log_prob_all()
    if not np.all(np.isfinite(log_rho)):
        raise ValueError("target must give every state positive probability for mh_with_wrong_sign")

    def negated_log_prob(states):
        return -np.asarray(target.log_prob(states), dtype=np.float64) / temperature  # bug: minus sign

    return SamplerCase(
        name="mh_with_wrong_sign",
        kind=None,
        target=target,
        description=f"runs MH on exp(-log rho / T) at T = {temperature:g}: the sign of the energy is flipped",
        step=metropolis_hastings_step_fn(negated_log_prob, proposal),
        transition_matrix=metropolis_hastings.transition_matrix_from_log_probs(
            target.states, -log_rho / temperature, proposal
        ),
        detected_by="one_step_invariance",
    )


def _tempered(conditional_log_probs, temperature):
    def tempered(states, position):
        rows = np.asarray(conditional_log_probs(states, position), dtype=np.float64) / temperature
        # Renormalise: a proper distribution, just the wrong one (bug: the 1/T power).
        top = np.max(rows, axis=-1, keepdims=True)
        return rows - top - np.log(np.sum(np.exp(rows - top), axis=-1, keepdims=True))

    return tempered


def gibbs_with_tempered_conditional(target, temperature: float = 2.0, scan: str = "random") -> SamplerCase:
    r"""Gibbs from :math:`p(x_i \mid x_{-i})^{1/T}` renormalised, on a sequence ``target``."""
    temperature = check_positive(temperature, "temperature")
    conditional = _tempered(target.conditional_log_probs, temperature)
    return SamplerCase(
        name="gibbs_with_tempered_conditional",
        kind=None,
        target=target,
        description=f"draws x_i from p(x_i | x_-i)^(1/T) renormalised (T = {temperature:g}), not from p(x_i | x_-i)",
        step=gibbs_step_fn(conditional, scan),
        transition_matrix=gibbs.transition_matrix(target, scan, conditional_log_probs=conditional),
        detected_by="one_step_invariance",
    )


def gibbs_with_stale_conditionals(target) -> SamplerCase:
    r"""A sweep drawing every :math:`x_i` from :math:`p(\cdot \mid x_{-i})` of the state *before* the sweep.

    Kernel: :math:`P(x, y) = \prod_i p(y_i \mid x_{-i})` (a parallel "Jacobi" update).
    """
    conditional = target.conditional_log_probs
    length = target.states.shape[1]

    def step_fn(rng, x):
        x = np.asarray(x, dtype=np.int64)
        uniforms = draw_uniforms(rng, 0, length)
        new_x = x.copy()
        for position in range(length):
            # bug: conditions on the old x, not on the tokens already rewritten in this sweep
            row = gibbs.conditional_row(conditional, x, position)
            new_x[position] = categorical_from_uniforms(uniforms[position : position + 1], row)[0]
        return new_x

    states = target.states
    matrix = np.zeros((target.num_states, target.num_states))
    for a, x in enumerate(states):
        rows = np.stack([gibbs.conditional_row(conditional, x, i) for i in range(length)])  # (L, V)
        probabilities = np.exp(rows - rows.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        # P(x, y) = prod_i p(y_i | x_-i), for every enumerated y.
        matrix[a] = np.prod(probabilities[np.arange(length), states], axis=1)
    return SamplerCase(
        name="gibbs_with_stale_conditionals",
        kind=None,
        target=target,
        description=(
            "updates every position from the conditionals of the state at the start of the sweep (parallel update)"
        ),
        step=step_fn,
        transition_matrix=matrix,
        detected_by="one_step_invariance",
    )


def systematic_scan_skipping_last_position(target) -> SamplerCase:
    """A systematic sweep over ``range(L - 1)``: invariant, but the last token never changes."""
    conditional = target.conditional_log_probs
    length = target.states.shape[1]

    def step_fn(rng, x):
        uniforms = draw_uniforms(rng, 0, length)
        x = np.asarray(x, dtype=np.int64)
        for position in range(length - 1):  # bug: off by one, position L - 1 is never updated
            x = gibbs.update_position(uniforms[position], x, position, conditional)
        return x

    matrix = np.eye(target.num_states)
    for position in range(length - 1):
        matrix = matrix @ gibbs.site_matrix(target, position)
    return SamplerCase(
        name="systematic_scan_skipping_last_position",
        kind=None,
        target=target,
        description="sweeps positions 0..L-2 only (off by one): pi stays invariant but the last token is frozen",
        step=step_fn,
        transition_matrix=matrix,
        detected_by="long_run",
    )


def mh_that_retries_rejections(target, proposal, max_tries: int = 100_000) -> SamplerCase:
    r"""MH that, on a rejection, proposes again until the chain moves: only moves are recorded.

    Kernel :math:`P'(x, y) = P(x, y) / (1 - P(x, x))` for :math:`y \ne x`, whose stationary law is
    :math:`\propto \pi(x) (1 - P(x, x))`.
    """
    correct = metropolis_hastings.transition_matrix(target, proposal)
    log_prob_fn = target.log_prob
    num_uniforms = metropolis_hastings.num_uniforms(proposal)

    def step_fn(rng, x):
        state = metropolis_hastings.init(x, log_prob_fn)
        for _ in range(max_tries):  # bug: a rejection should count as a step that stays at x
            new_state, _ = metropolis_hastings.step(draw_uniforms(rng, 0, num_uniforms), state, log_prob_fn, proposal)
            if not np.array_equal(new_state.x, state.x):
                return new_state.x
        return state.x

    off_diagonal = correct - np.diag(np.diag(correct))
    move = off_diagonal.sum(axis=1, keepdims=True)
    # A state that never moves stays put (the step gives up after max_tries).
    matrix = np.where(move > 0, off_diagonal / np.where(move > 0, move, 1.0), np.eye(target.num_states))
    return SamplerCase(
        name="mh_that_retries_rejections",
        kind=None,
        target=target,
        description="on a rejection, proposes again until the chain moves, so rejections are never recorded",
        step=step_fn,
        transition_matrix=matrix,
        detected_by="one_step_invariance",
    )


def rejection_with_clipped_envelope(target, proposal, log_envelope: float) -> SamplerCase:
    r"""Rejection sampling under a too-small envelope, :math:`\min(1, \rho / (M q))` instead of an error.

    The output law is :math:`\propto q(x) \min(1, \rho(x) / (M q(x)))`, not :math:`\pi`. Seen as a
    kernel that ignores its state, :math:`P(x, y) = r(y)`, so one-step invariance tests its law.
    ``proposal`` is an independent proposal (``sample``, ``log_prob``) over ``target``'s states.
    """
    log_envelope = float(log_envelope)
    states = target.states
    log_rho = target.log_prob_all()
    log_q = np.asarray(proposal.log_prob(states), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        log_accept = np.minimum(0.0, log_rho - log_envelope - log_q)  # bug: clipped at 1
    log_accept = np.where(np.isnan(log_accept), -np.inf, log_accept)

    def step_fn(rng, x):
        while True:
            uniforms = draw_uniforms(rng, 0, proposal.num_uniforms + 1)
            y = proposal.sample(uniforms[None, :-1])[0]
            index = target.state_index(np.asarray(y)[None])[0]
            if np.log(uniforms[-1]) < log_accept[index]:
                return np.asarray(y)

    weights = np.exp(log_q + log_accept)
    law = weights / weights.sum()
    return SamplerCase(
        name="rejection_with_clipped_envelope",
        kind=None,
        target=target,
        description="rejection sampling with rho > M q somewhere, acceptance clipped at 1 instead of raising",
        step=step_fn,
        transition_matrix=np.tile(law, (target.num_states, 1)),
        detected_by="one_step_invariance",
    )


def _swap_case(name: str, description: str, log_accept_prob, target: str, temperatures) -> SamplerCase:
    """A wrong swap of kind ``pt-swap`` (the reference's layout, another acceptance) and its exact kernel."""
    return SamplerCase(
        name=name,
        kind="pt-swap",
        target=target,
        description=description,
        step=replica_exchange.swap_with(log_accept_prob),
        transition_matrix=lambda base, temperatures: replica_exchange.swap_kernel(base, temperatures, log_accept_prob),
        options={"temperatures": tuple(float(t) for t in temperatures)},
        detected_by="one_step_invariance",
    )


def _clip(log_ratio: float) -> float:
    return float(min(0.0, log_ratio))


def pt_swap_without_temperatures(target: str = "categorical-small",
                                 temperatures=replica_exchange.DEFAULT_TEMPERATURES) -> SamplerCase:
    """A swap accepted with min(1, rho(x_j)/rho(x_i)): the factor 1/T_i - 1/T_j is missing."""

    def log_accept_prob(log_rho_i, log_rho_j, temperature_i, temperature_j):
        return _clip(log_rho_j - log_rho_i)  # bug: no temperatures at all

    return _swap_case("pt_swap_without_temperatures",
                      "replica exchange accepted with min(1, rho(x_j)/rho(x_i)): the factor 1/T_i - 1/T_j is missing",
                      log_accept_prob, target, temperatures)


def pt_swap_with_tempered_log_probs(target: str = "categorical-small",
                                    temperatures=replica_exchange.DEFAULT_TEMPERATURES) -> SamplerCase:
    """A swap accepted with log rho(x_j)/T_j - log rho(x_i)/T_i: each state at its own replica's temperature."""

    def log_accept_prob(log_rho_i, log_rho_j, temperature_i, temperature_j):
        # bug: the tempered log-densities of the two replicas compared, not the product before and after
        return _clip(log_rho_j / temperature_j - log_rho_i / temperature_i)

    return _swap_case("pt_swap_with_tempered_log_probs",
                      "replica exchange accepted by comparing tempered log-densities "
                      "log rho(x_j)/T_j - log rho(x_i)/T_i",
                      log_accept_prob, target, temperatures)


def pt_swap_with_wrong_sign(target: str = "categorical-small",
                            temperatures=replica_exchange.DEFAULT_TEMPERATURES) -> SamplerCase:
    """A swap accepted with (1/T_i - 1/T_j)(log rho(x_i) - log rho(x_j)): the difference reversed."""

    def log_accept_prob(log_rho_i, log_rho_j, temperature_i, temperature_j):
        return _clip((1.0 / temperature_i - 1.0 / temperature_j) * (log_rho_i - log_rho_j))  # bug: sign

    return _swap_case("pt_swap_with_wrong_sign",
                      "replica exchange with the log-density difference reversed: "
                      "better states move to hotter replicas",
                      log_accept_prob, target, temperatures)
