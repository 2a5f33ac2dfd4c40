r"""Parallel tempering (replica exchange): chains at several temperatures that trade states.

:math:`M` replicas run at temperatures :math:`T_0 < T_1 < \dots < T_{M-1}` (usually :math:`T_0 = 1`),
replica :math:`m` targeting :math:`\pi_m \propto \rho^{1/T_m}`; the joint chain targets the product

.. math::
    \Pi(x_0, \dots, x_{M-1}) = \prod_m \rho(x_m)^{1/T_m} / Z_m,

whose first marginal is :math:`\rho^{1/T_0}/Z_0` — :math:`\pi` itself when :math:`T_0 = 1`. One step:

1. **moves** — each replica takes one Metropolis–Hastings step at its own temperature
   (:func:`textsampling.reference.metropolis_hastings.step` with ``temperature=T_m``), which leaves
   :math:`\pi_m`, hence :math:`\Pi`, invariant;
2. **swaps** — neighbours :math:`(i, i+1)` propose to exchange their states, accepted with

   .. math::
       \log\alpha = \min\Bigl(0,\ \bigl(\tfrac1{T_i} - \tfrac1{T_{i+1}}\bigr)
           \bigl(\log\rho(x_{i+1}) - \log\rho(x_i)\bigr)\Bigr),

   the MH ratio :math:`\Pi(\ldots x_{i+1} \ldots x_i \ldots) / \Pi(\ldots x_i \ldots x_{i+1} \ldots)` of
   the symmetric swap proposal, so each swap satisfies detailed balance with :math:`\Pi`.

Which pairs: *stochastic even–odd* — one uniform picks, with probability 1/2 each, the even pairs
:math:`(0,1), (2,3), \dots` or the odd pairs :math:`(1,2), (3,4), \dots`; the pairs of a set are
disjoint, so their swaps commute and are decided independently. The swap kernel, an equal mixture of
two reversible kernels, is reversible with respect to :math:`\Pi`; the step (moves then swaps) leaves
:math:`\Pi` invariant. (The deterministic alternation of Okabe et al. 2001 is the non-reversible
variant that Syed et al. 2022, JRSS-B 84:321, show to scale better; the stochastic one keeps a step a
function of its uniforms alone, without the step index.) A hot replica crosses the low-density
valleys a cold one cannot, and swaps carry what it finds down the ladder. Swendsen & Wang (1986),
Phys. Rev. Lett. 57:2607; Geyer (1991), "Markov chain Monte Carlo maximum likelihood", Computing
Science and Statistics 23:156; Hukushima & Nemoto (1996), J. Phys. Soc. Japan 65:1604.

Conventions: ``state.x`` ``(M,) + state_shape`` holds the replicas in temperature order (row 0 the
coldest), ``state.log_prob`` ``(M,)`` their *untempered* :math:`\log\rho`. A NaN swap ratio (two
states of log-density ``-inf``) is a rejection; a cold replica at ``-inf`` takes any finite state
offered. Uniforms of a step (``num_uniforms(proposal, M)`` of them): replica ``m``'s MH step uses
``uniforms[m (k+1) : (m+1)(k+1)]`` (proposal, then accept), then one uniform picks the parity
(``floor(2u)``: 0 even, 1 odd), then one accept uniform per pair ``i`` (pairs not proposed ignore theirs).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from textsampling._validation import check_int, check_uniforms
from textsampling.randomness import integer_from_uniform
from textsampling.reference import annealing, chain, metropolis_hastings
from textsampling.reference.chain import Trace
from textsampling.reference.metropolis_hastings import MHState

__all__ = [
    "PTState",
    "PTInfo",
    "PTTrace",
    "check_temperatures",
    "geometric_temperatures",
    "swap_log_accept_prob",
    "init",
    "num_uniforms",
    "move",
    "swap",
    "step",
    "sample",
    "product_log_probs",
    "swap_transition_matrix",
    "transition_matrix",
]


class PTState(NamedTuple):
    """The replicas ``x`` ``(M,) + state_shape``, coldest first, and their untempered ``log_prob`` ``(M,)``."""

    x: np.ndarray
    log_prob: np.ndarray


class PTInfo(NamedTuple):
    """One step: each replica's MH move (``proposal`` ``(M,)+shape``, ``log_accept_prob`` tempered,
    ``accepted``, ``(M,)``), then per neighbour pair ``i`` = (i, i+1), ``(M-1,)``: ``swap_proposed``,
    ``swap_log_accept_prob`` (NaN where not proposed) and ``swap_accepted``."""

    proposal: np.ndarray
    log_accept_prob: np.ndarray
    accepted: np.ndarray
    swap_proposed: np.ndarray
    swap_log_accept_prob: np.ndarray
    swap_accepted: np.ndarray


#: A run: :class:`textsampling.reference.chain.Trace` of :class:`PTState` and :class:`PTInfo`, fields
#: ``(T, M, ...)``; the cold chain is ``trace.states.x[:, 0]``.
PTTrace = Trace


def check_temperatures(temperatures, name: str = "temperatures") -> np.ndarray:
    """At least two finite temperatures ``> 0``, strictly increasing (coldest first)."""
    temperatures = annealing.check_temperatures(temperatures, name)
    if temperatures.shape[0] < 2:
        raise ValueError(f"{name} must hold at least two temperatures (one replica is plain MH), got {temperatures}")
    if np.any(np.diff(temperatures) <= 0):
        raise ValueError(f"{name} must be strictly increasing (coldest replica first), got {temperatures.tolist()}")
    return temperatures


def geometric_temperatures(num_replicas: int, max_temperature: float) -> np.ndarray:
    r""":math:`T_m = T_{\max}^{m/(M-1)}`, :math:`m = 0..M-1`: from 1 up, a constant ratio between neighbours.

    A constant ratio makes the swap acceptance roughly even along the ladder when the heat capacity
    is (Kofke 2002, J. Chem. Phys. 117:6911).
    """
    num_replicas = check_int(num_replicas, "num_replicas", minimum=2)
    return check_temperatures(annealing.geometric_schedule(1.0, max_temperature, num_replicas))


def swap_log_accept_prob(log_prob_i, log_prob_j, temperature_i, temperature_j):
    r""":math:`\min\bigl(0, (1/T_i - 1/T_j)(\log\rho(x_j) - \log\rho(x_i))\bigr)`, elementwise.

    NaN (a rejection) when both log-densities are ``-inf``; 0 when the colder replica (:math:`T_i < T_j`)
    is at ``-inf`` and the other is not.
    """
    log_prob_i = np.asarray(log_prob_i, dtype=np.float64)
    log_prob_j = np.asarray(log_prob_j, dtype=np.float64)
    inverse_difference = 1.0 / np.asarray(temperature_i, dtype=np.float64) - 1.0 / np.asarray(
        temperature_j, dtype=np.float64
    )
    # -inf - (-inf) is NaN on purpose: a rejection, as in the MH step.
    with np.errstate(invalid="ignore"):
        ratio = np.minimum(0.0, inverse_difference * (log_prob_j - log_prob_i))
    return float(ratio) if ratio.ndim == 0 else ratio


def init(x0, log_prob_fn, proposal=None) -> PTState:
    """The replicas at ``x0`` ``(M,) + state_shape`` (row ``m`` starts replica ``m``), ``log_prob_fn`` once each."""
    states = [metropolis_hastings.init(x, log_prob_fn, proposal) for x in np.asarray(x0)]
    if len(states) < 2:
        raise ValueError("x0 must hold one start per replica, shape (M,) + state_shape with M >= 2")
    return PTState(np.stack([s.x for s in states]), np.array([s.log_prob for s in states]))


def num_uniforms(proposal, num_replicas: int) -> int:
    """Uniforms per step: one MH step's per replica, the parity uniform, one accept uniform per pair."""
    num_replicas = check_int(num_replicas, "num_replicas", minimum=2)
    return num_replicas * metropolis_hastings.num_uniforms(proposal) + 1 + (num_replicas - 1)


def move(uniforms, state: PTState, log_prob_fn, proposal, *, temperatures):
    """The moves: replica ``m`` takes one MH step at ``temperatures[m]`` with ``uniforms.reshape(M, k+1)[m]``.

    Returns ``(PTState, (proposal, log_accept_prob, accepted))``, the last three ``(M, ...)``.
    """
    temperatures = check_temperatures(temperatures)
    num_replicas = temperatures.shape[0]
    per_replica = check_uniforms(uniforms, num_replicas * metropolis_hastings.num_uniforms(proposal))
    per_replica = per_replica.reshape(num_replicas, -1)
    rows = [
        metropolis_hastings.step(
            per_replica[m],
            MHState(state.x[m], float(state.log_prob[m])),
            log_prob_fn,
            proposal,
            temperature=temperatures[m],
        )
        for m in range(num_replicas)
    ]
    moved = PTState(np.stack([s.x for s, _ in rows]), np.array([s.log_prob for s, _ in rows]))
    infos = (
        np.stack([i.proposal for _, i in rows]),
        np.array([i.log_accept_prob for _, i in rows]),
        np.array([i.accepted for _, i in rows]),
    )
    return moved, infos


def swap(uniforms, state, *, temperatures):
    """The swaps: ``uniforms[0]`` picks the even or odd pairs, ``uniforms[1 + i]`` decides pair ``(i, i+1)``.

    ``state`` is a :class:`PTState`, or any NamedTuple of per-replica fields with a leading replica
    axis ``(M, ...)`` and a ``log_prob`` ``(M,)`` field (the untempered log-density), such as
    :class:`textsampling.reference.sentence_tempering.SentenceTemperingState`: an accepted swap
    exchanges rows ``i`` and ``i + 1`` of every field, so whatever a replica carries goes with its state.

    Returns ``(state of the same type, (swap_proposed, swap_log_accept_prob, swap_accepted))``, the last
    three ``(M-1,)``.
    """
    temperatures = check_temperatures(temperatures)
    num_replicas = temperatures.shape[0]
    uniforms = check_uniforms(uniforms, num_replicas)
    fields = [np.array(value, copy=True) for value in state]  # each (M, ...)
    log_prob = fields[type(state)._fields.index("log_prob")]  # (M,), swapped in place with the others
    proposed = np.zeros(num_replicas - 1, dtype=bool)
    log_alphas = np.full(num_replicas - 1, np.nan)
    accepted = np.zeros(num_replicas - 1, dtype=bool)
    parity = int(integer_from_uniform(uniforms[0], 2))
    # Pairs parity, parity + 2, ... are disjoint: each swap reads the states the moves left.
    for i in range(parity, num_replicas - 1, 2):
        proposed[i] = True
        log_alphas[i] = swap_log_accept_prob(log_prob[i], log_prob[i + 1], temperatures[i], temperatures[i + 1])
        # Accept iff log u < log alpha; NaN compares False.
        accepted[i] = bool(np.log(uniforms[1 + i]) < log_alphas[i])
        if accepted[i]:
            for value in fields:
                value[[i, i + 1]] = value[[i + 1, i]]
    return type(state)(*fields), (proposed, log_alphas, accepted)


def step(uniforms, state: PTState, log_prob_fn, proposal, *, temperatures):
    r"""One parallel tempering step: every replica moves (:func:`move`), then neighbours swap (:func:`swap`).

    Parameters
    ----------
    uniforms : array_like, shape (num_uniforms(proposal, M),)
        The first ``M (k+1)`` drive the moves, the last ``M`` the swaps (see the module docstring).
    state : PTState
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``, the untempered :math:`\log\rho`
    proposal : MH proposal
    temperatures : array_like, shape (M,)
        Strictly increasing; replica ``m`` targets :math:`\rho^{1/T_m}`.

    Returns
    -------
    (PTState, PTInfo)
    """
    temperatures = check_temperatures(temperatures)
    num_replicas = temperatures.shape[0]
    if np.asarray(state.x).shape[0] != num_replicas:
        raise ValueError(f"state holds {np.asarray(state.x).shape[0]} replicas but temperatures has {num_replicas}")
    uniforms = check_uniforms(uniforms, num_uniforms(proposal, num_replicas))
    split = num_replicas * metropolis_hastings.num_uniforms(proposal)
    moved, move_info = move(uniforms[:split], state, log_prob_fn, proposal, temperatures=temperatures)
    swapped, swap_info = swap(uniforms[split:], moved, temperatures=temperatures)
    return swapped, PTInfo(*move_info, *swap_info)


def sample(rng, x0, log_prob_fn, proposal, num_steps: int, *, first_step: int = 0, temperatures) -> PTTrace:
    r"""Run ``num_steps`` parallel tempering steps from the replicas' starts ``x0`` ``(M,) + state_shape``.

    Parameters
    ----------
    rng : numpy.random.Generator or CounterGenerator (one joint chain)
    x0 : array_like, shape (M,) + state_shape
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``
    proposal : MH proposal
    num_steps : int
    first_step : int
    temperatures : array_like, shape (M,), strictly increasing (:func:`geometric_temperatures`)

    Returns
    -------
    PTTrace
        ``states.x[:, 0]`` is the chain at ``temperatures[0]``; each step costs ``M`` evaluations of
        ``log_prob_fn`` (one per replica's proposal).
    """
    temperatures = check_temperatures(temperatures)
    state = init(x0, log_prob_fn, proposal)
    if state.x.shape[0] != temperatures.shape[0]:
        raise ValueError(f"x0 holds {state.x.shape[0]} replicas but temperatures has {temperatures.shape[0]}")

    def step_fn(uniforms, state, t):
        return step(uniforms, state, log_prob_fn, proposal, temperatures=temperatures)

    return chain.run(
        rng, state, step_fn, num_uniforms(proposal, temperatures.shape[0]), num_steps, first_step=first_step
    )


# ----------------------------------------------------------------------------- exact kernels
def _log_rho_of(target) -> np.ndarray:
    """The ``(S,)`` untempered log-densities of the enumerated states: ``target.log_prob_all()``, or the array."""
    if hasattr(target, "log_prob_all"):
        return np.asarray(target.log_prob_all(), dtype=np.float64)
    log_rho = np.asarray(target, dtype=np.float64)
    if log_rho.ndim != 1 or log_rho.size == 0:
        raise ValueError(
            f"target must be a DiscreteTarget or the (S,) log-densities of its states, got shape {log_rho.shape}"
        )
    return log_rho


def product_log_probs(target, temperatures) -> np.ndarray:
    r""":math:`\log\Pi` on the joint states, ``itertools.product`` order (replica 0 the slowest index).

    Normalised: :math:`\sum_m (\log\rho(x_m)/T_m - \log Z_m)`. ``target`` is a
    :class:`~textsampling.targets.base.DiscreteTarget`, or the ``(S,)`` array of :math:`\log\rho` of
    the enumerated states (sentences, for :mod:`textsampling.reference.sentence_tempering`).
    """
    temperatures = check_temperatures(temperatures)
    log_rho = _log_rho_of(target)
    per_replica = []
    for temperature in temperatures:
        tempered = log_rho / temperature
        per_replica.append(tempered - np.logaddexp.reduce(tempered))
    grids = np.meshgrid(*per_replica, indexing="ij")
    return np.sum(grids, axis=0).reshape(-1)


def swap_transition_matrix(target, temperatures) -> np.ndarray:
    """Exact kernel of :func:`swap` on the joint states (``itertools.product`` order).

    Built from :func:`swap_log_accept_prob`, the function :func:`swap` uses. ``target``: as in
    :func:`product_log_probs` (a target, or the log-densities of the enumerated states).
    """
    temperatures = check_temperatures(temperatures)
    log_rho = _log_rho_of(target)
    num_replicas, num_states = temperatures.shape[0], log_rho.shape[0]
    joint = list(itertools.product(range(num_states), repeat=num_replicas))
    index = {state: n for n, state in enumerate(joint)}
    matrix = np.zeros((len(joint), len(joint)))
    for n, state in enumerate(joint):
        for parity in (0, 1):
            pairs = list(range(parity, num_replicas - 1, 2))
            # Every accept pattern of the (independent) pairs of this parity.
            for pattern in itertools.product((False, True), repeat=len(pairs)):
                probability, after = 0.5, list(state)
                for i, accept in zip(pairs, pattern):
                    log_alpha = swap_log_accept_prob(
                        log_rho[state[i]], log_rho[state[i + 1]], temperatures[i], temperatures[i + 1]
                    )
                    alpha = 0.0 if np.isnan(log_alpha) else np.exp(log_alpha)
                    probability *= alpha if accept else 1.0 - alpha
                    if accept:
                        after[i], after[i + 1] = after[i + 1], after[i]
                matrix[n, index[tuple(after)]] += probability
    return matrix


def transition_matrix(target, proposal, temperatures) -> np.ndarray:
    r"""Exact kernel of :func:`step` on the joint states: the moves' :math:`\bigotimes_m P_{T_m}` then the swaps.

    :math:`P_{T_m}` is :func:`textsampling.reference.annealing.transition_matrix` (MH on
    :math:`\rho^{1/T_m}`); ``(S^M, S^M)``, rows in ``itertools.product`` order.
    """
    temperatures = check_temperatures(temperatures)
    moves = np.ones((1, 1))
    for temperature in temperatures:
        moves = np.kron(moves, annealing.transition_matrix(target, proposal, temperature))
    return moves @ swap_transition_matrix(target, temperatures)
