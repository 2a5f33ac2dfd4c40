r"""Metropolis–Hastings with a user proposal, in log space.

From the current state :math:`x`, propose :math:`y \sim q(\cdot \mid x)` and accept it with probability

.. math::
    \alpha(y \leftarrow x) = \min\Bigl(1, \frac{\rho(y)\, q(x \mid y)}{\rho(x)\, q(y \mid x)}\Bigr),
    \qquad \log \alpha = \min\bigl(0,\ \log\rho(y) - \log\rho(x) + \log q(x \mid y) - \log q(y \mid x)\bigr),

otherwise stay at :math:`x`. The kernel :math:`T(y \leftarrow x) = q(y \mid x)\, \alpha(y \leftarrow x)`
(:math:`y \ne x`, the rejected mass stays on :math:`x`) satisfies detailed balance with
:math:`\pi = \rho / Z`; only ratios of :math:`\rho` appear, so :math:`Z` is never needed.
Metropolis et al. (1953), J. Chem. Phys. 21:1087; Hastings (1970), Biometrika 57:97; part 2 of the
series (spaces.ac.cn/archives/8084).

At a temperature :math:`T` (simulated annealing, :mod:`~textsampling.reference.annealing`) the step
targets :math:`\rho^{1/T}`: the same :func:`log_accept_ratio` fed the tempered log-densities
:math:`\log\rho / T`, i.e. :math:`\log\alpha = \min(0, \log\rho(y)/T - \log\rho(x)/T + \log q(x|y) - \log q(y|x))`
(at :math:`T = 1` exactly the plain step).

Conventions: accept iff :math:`\log u < \log \alpha`; a NaN ratio (e.g. both states of log-density
``-inf``) is a rejection; a current state of log-density ``-inf`` accepts any proposal of finite
log-density (the chain leaves an impossible start). Uniforms of a step: ``uniforms[:-1]`` drive the
proposal, ``uniforms[-1]`` is the accept uniform. :func:`sample` is :func:`init` plus the one chain
runner, :func:`textsampling.reference.chain.run`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from textsampling._validation import check_positive, check_uniforms
from textsampling.reference import chain
from textsampling.reference.chain import Trace

__all__ = [
    "MHState",
    "MHInfo",
    "MHTrace",
    "init",
    "num_uniforms",
    "log_accept_ratio",
    "tempered_log_prob",
    "step",
    "sample",
    "transition_matrix",
    "transition_matrix_from_log_probs",
]


class MHState(NamedTuple):
    """Current state ``x`` and its unnormalised log-density ``log_prob`` (cached, never recomputed)."""

    x: np.ndarray
    log_prob: float


class MHInfo(NamedTuple):
    """What one step did: the proposed state, the log acceptance probability and the decision."""

    proposal: np.ndarray
    log_accept_prob: float
    accepted: bool


#: A run of MH steps: :class:`textsampling.reference.chain.Trace` with ``states`` an :class:`MHState`
#: and ``infos`` an :class:`MHInfo`, every field stacked over steps (row ``t`` = after step ``t``).
MHTrace = Trace


def evaluate_log_prob(log_prob_fn, x) -> float:
    """``log_prob_fn`` at the one state ``x``, checked: one value, never ``+inf`` (shared by hill climbing)."""
    # log_prob_fn is batched, (N,) + state_shape -> (N,); evaluate a batch of one.
    value = np.asarray(log_prob_fn(np.asarray(x)[None]), dtype=np.float64).reshape(-1)
    if value.shape != (1,):
        raise ValueError(f"log_prob_fn must return one value per state, shape (N,), got {value.shape}")
    if value[0] == np.inf:
        raise ValueError("log_prob_fn returned +inf; log-densities must be finite, -inf or (rejected) NaN")
    return float(value[0])


def init(x0, log_prob_fn, proposal=None) -> MHState:
    """The state at ``x0``: evaluates ``log_prob_fn`` (batched: ``(N,)+shape -> (N,)``) once.

    ``proposal`` is not needed to start a chain; it is accepted so that ``init`` takes the same
    target as :func:`step` and :func:`sample`.
    """
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
    x = np.asarray(x0)
    log_prob = evaluate_log_prob(log_prob_fn, x)
    if np.isnan(log_prob):
        # A NaN proposal is a rejection, but a NaN *current* state would reject every move forever:
        # the chain would silently never move.
        raise ValueError("log_prob_fn(x0) is NaN: the start x0 needs a log-density that is finite or -inf")
    return MHState(x, log_prob)


def num_uniforms(proposal) -> int:
    """Uniforms per step: the proposal's, then one for the accept decision."""
    return int(proposal.num_uniforms) + 1


def log_accept_ratio(log_prob_current, log_prob_proposal, log_q_ratio):
    r""":math:`\log\alpha = \min(0, \log\rho(y) - \log\rho(x) + \log q(x|y) - \log q(y|x))`, elementwise.

    Parameters
    ----------
    log_prob_current, log_prob_proposal : float or array_like
        :math:`\log\rho(x)` and :math:`\log\rho(y)` (``-inf`` allowed).
    log_q_ratio : float or array_like
        :math:`\log q(x \mid y) - \log q(y \mid x)` (``-inf`` when the reverse move is impossible).

    Returns
    -------
    float or numpy.ndarray
        The log acceptance probability (what :class:`MHInfo` records as ``log_accept_prob``), in
        ``[-inf, 0]``, or NaN (a rejection) when undefined, e.g. :math:`-\infty - (-\infty)`.
        Exception on purpose: a current state of log-density ``-inf`` and a finite proposal give 0.
    """
    current = np.asarray(log_prob_current, dtype=np.float64)
    proposal = np.asarray(log_prob_proposal, dtype=np.float64)
    q_ratio = np.asarray(log_q_ratio, dtype=np.float64)
    # -inf - (-inf) and inf + (-inf) are NaN on purpose (a rejection); silence only that warning.
    with np.errstate(invalid="ignore"):
        ratio = np.minimum(0.0, proposal - current + q_ratio)
    # Leaving an impossible state for a possible one is always accepted.
    ratio = np.where((current == -np.inf) & np.isfinite(proposal), 0.0, ratio)
    return float(ratio) if ratio.ndim == 0 else ratio


def tempered_log_prob(log_prob, temperature: float):
    r""":math:`\log\rho / T` (``-inf`` stays ``-inf``; at :math:`T = 1` the value itself)."""
    temperature = check_positive(temperature, "temperature")
    return np.asarray(log_prob, dtype=np.float64) / temperature


def step(uniforms, state: MHState, log_prob_fn, proposal, *, temperature: float = 1.0):
    r"""One MH step, deterministic given ``uniforms``.

    Parameters
    ----------
    uniforms : array_like, shape (num_uniforms(proposal),)
        ``uniforms[:-1]`` go to ``proposal.propose``, ``uniforms[-1]`` decides acceptance.
    state : MHState
    log_prob_fn : callable
        Batched unnormalised log-density, ``(N,) + state_shape -> (N,)`` (e.g. ``target.log_prob``).
    proposal : object with ``num_uniforms`` and ``propose(uniforms, x) -> (y, log_q_ratio)``
    temperature : float, > 0
        Target :math:`\rho^{1/T}`; ``state.log_prob`` stays the untempered :math:`\log\rho`.

    Returns
    -------
    (MHState, MHInfo)
        ``info.log_accept_prob`` is the tempered one.
    """
    temperature = check_positive(temperature, "temperature")
    uniforms = check_uniforms(uniforms, num_uniforms(proposal))
    y, log_q_ratio = proposal.propose(uniforms[:-1], state.x)
    log_prob_y = evaluate_log_prob(log_prob_fn, y)
    # The same acceptance function at every temperature, fed the tempered log-densities (at T = 1 the
    # division is exact, so it is skipped: plain MH pays nothing for the temperature).
    log_prob_x_tempered, log_prob_y_tempered = state.log_prob, log_prob_y
    if temperature != 1.0:
        log_prob_x_tempered = tempered_log_prob(state.log_prob, temperature)
        log_prob_y_tempered = tempered_log_prob(log_prob_y, temperature)
    log_alpha = float(log_accept_ratio(log_prob_x_tempered, log_prob_y_tempered, log_q_ratio))
    # Accept iff log u < log alpha; NaN compares False, so an undefined ratio rejects.
    accepted = bool(np.log(uniforms[-1]) < log_alpha)
    new_state = MHState(np.asarray(y), log_prob_y) if accepted else state
    return new_state, MHInfo(np.asarray(y), log_alpha, accepted)


def sample(rng, x0, log_prob_fn, proposal, num_steps: int, *, first_step: int = 0) -> MHTrace:
    """Run ``num_steps`` MH steps from ``x0`` and keep every state and info.

    Step ``t`` uses the uniforms of step ``first_step + t``, so a
    :class:`~textsampling.randomness.CounterGenerator` gives the same chain whatever else runs.

    Parameters
    ----------
    rng : numpy.random.Generator or CounterGenerator (one chain)
    x0 : array_like
        Initial state.
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``
    proposal : MH proposal (see :mod:`textsampling.reference.proposals`)
    num_steps : int
    first_step : int
        Step index of the first step (to continue a chain).

    Returns
    -------
    MHTrace
        ``states.x`` ``(T,) + state_shape``, ``states.log_prob`` ``(T,)``, ``infos.accepted`` ``(T,)`` …
    """
    state = init(x0, log_prob_fn, proposal)

    def step_fn(uniforms, state, t):
        return step(uniforms, state, log_prob_fn, proposal)

    return chain.run(rng, state, step_fn, num_uniforms(proposal), num_steps, first_step=first_step)


def transition_matrix_from_log_probs(states, log_probs, proposal) -> np.ndarray:
    r"""Exact MH kernel on enumerated ``states`` with log-densities ``log_probs``.

    :math:`P_{ij} = q(j \mid i)\, \exp(\log\alpha)` for :math:`j \ne i`, with :math:`\log\alpha` from
    :func:`log_accept_ratio` and the Hastings term from ``proposal.log_q_ratio`` — the same functions
    :func:`step` uses — and :math:`P_{ii} = 1 - \sum_{j \ne i} P_{ij}`. Every proposal must land
    inside ``states`` (checked: :math:`\sum_j q(j \mid i) = 1` over ``states``, else ``ValueError``).
    """
    states = np.asarray(states)
    log_probs = np.asarray(log_probs, dtype=np.float64)
    num_states = states.shape[0]
    if log_probs.shape != (num_states,):
        raise ValueError(f"log_probs must have shape ({num_states},) (one per state), got {log_probs.shape}")
    if not hasattr(proposal, "log_prob") or not hasattr(proposal, "log_q_ratio"):
        raise TypeError("proposal must be discrete, with log_prob(y, x) and log_q_ratio(y, x)")
    matrix = np.zeros((num_states, num_states))
    for i in range(num_states):
        proposal_mass = np.exp(proposal.log_prob(states[i], states[i]))  # q(i | i), a self-proposal
        for j in range(num_states):
            if j == i:
                continue
            log_q = proposal.log_prob(states[j], states[i])
            if log_q == -np.inf:
                continue  # never proposed
            proposal_mass += np.exp(log_q)
            log_alpha = log_accept_ratio(log_probs[i], log_probs[j], proposal.log_q_ratio(states[j], states[i]))
            # NaN alpha is a rejection: no mass moves.
            matrix[i, j] = 0.0 if np.isnan(log_alpha) else np.exp(log_q + log_alpha)
        if abs(proposal_mass - 1.0) > 1e-9:
            raise ValueError(
                f"proposal puts probability {1.0 - proposal_mass!r} outside the enumerated states when "
                f"moving from state {states[i].tolist()}; every proposal must land inside target.states"
            )
        # Mass of every rejected or self-proposal stays on i.
        # (max with 0 absorbs a rounding error of order 1e-17 when nearly all mass moves.)
        matrix[i, i] = max(0.0, 1.0 - matrix[i].sum())
    return matrix


def transition_matrix(target, proposal) -> np.ndarray:
    """Exact MH transition matrix on an enumerable ``target``, rows/columns in enumeration order.

    Parameters
    ----------
    target : textsampling.targets.DiscreteTarget
    proposal : discrete MH proposal (``log_prob(y, x)``, ``log_q_ratio(y, x)``)

    Returns
    -------
    numpy.ndarray, shape (S, S); ``P[i, j]`` = probability of moving from state ``i`` to state ``j``.
    """
    return transition_matrix_from_log_probs(target.states, target.log_prob_all(), proposal)
