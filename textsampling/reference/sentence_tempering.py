r"""Parallel tempering over sentences: one CGMH chain per temperature, neighbours swap sentences.

Parallel tempering (:mod:`textsampling.reference.parallel_tempering`) with the CGMH kernel of part 4
of the series (:mod:`textsampling.reference.cgmh`) as the move of each replica. The keyword target
over sentences :math:`x` of length :math:`1..L_{\max}`,

.. math::
    \rho(x) = p(x)^{\gamma}\, \mathrm{sim}(x, c)\, \chi(x, c),

is tempered along a ladder :math:`T_0 < T_1 < \dots < T_{M-1}` (:math:`T_0 = 1` to sample
:math:`\rho\chi/Z` itself; :func:`~textsampling.reference.parallel_tempering.geometric_temperatures`).
Replica :math:`m` holds a sentence :math:`x_m`; the joint chain targets

.. math::
    \Pi(x_0, \dots, x_{M-1}) = \prod_{m=0}^{M-1} \frac{\rho(x_m)^{1/T_m}}{Z_m},
    \qquad Z_m = \sum_x \rho(x)^{1/T_m},

whose first marginal is :math:`\rho^{1/T_0}/Z_0` — :math:`\rho\chi/Z` when :math:`T_0 = 1`. One step:

1. **moves** — replica :math:`m` takes one CGMH step on :math:`\rho^{1/T_m}`
   (:func:`textsampling.reference.sentence_annealing.step` with ``temperature=T_m``: candidate
   weights and acceptance both tempered), which leaves :math:`\rho^{1/T_m}/Z_m`, hence :math:`\Pi`,
   invariant. A hot replica accepts edits through low-probability sentences that the cold one refuses,
   so it crosses between sentences that no chain of single edits at :math:`T = 1` connects easily;
2. **swaps** — :func:`textsampling.reference.parallel_tempering.swap`, unchanged: one uniform picks the
   even pairs :math:`(0,1), (2,3), \dots` or the odd pairs, and pair :math:`(i, i+1)` exchanges its two
   sentences with probability :math:`\min(1, \alpha)`,

   .. math::
       \log\alpha = \Bigl(\frac1{T_i} - \frac1{T_{i+1}}\Bigr)\bigl(\log\rho(x_{i+1}) - \log\rho(x_i)\bigr),

   the ratio :math:`\Pi(\ldots x_{i+1} \ldots x_i \ldots)/\Pi(\ldots x_i \ldots x_{i+1} \ldots)` of the
   symmetric swap proposal. It reads the **untempered** :math:`\log\rho` that every replica caches
   (``state.log_prob``): the temperatures enter only through :math:`1/T_i - 1/T_{i+1}`. A swap costs
   no evaluation of the language model, and the whole replica moves — sentence, score and locked
   keyword pieces (``protected``) together.

A swap never changes which sentences are held, only by whom, so it keeps every :math:`\chi = 1`:
each replica always holds all the keywords. Geyer (1991), "Markov chain Monte Carlo maximum
likelihood", *Computing Science and Statistics* 23:156; Hukushima & Nemoto (1996), *J. Phys. Soc.
Japan* 65:1604; Miao, Zhou, Mou, Yan & Li (2019), "CGMH: Constrained sentence generation by
Metropolis-Hastings sampling", AAAI, arXiv:1811.10996.

Conventions: ``state.x`` ``(M, L_max)`` holds the replicas' PAD-padded sentences in temperature order
(row 0 the coldest), ``state.log_prob`` ``(M,)`` their untempered :math:`\log\rho`, ``state.protected``
``(M, L_max)`` their locked keyword pieces (:class:`~textsampling.reference.cgmh.CGMHState`'s fields,
one row per replica). Uniforms of a step, ``num_uniforms(M) = 4M + M`` of them: replica ``m``'s CGMH
step reads ``uniforms[4m : 4m + 4]`` (move type, position, candidate, accept), then one uniform picks
the parity and one accept uniform per pair ``i`` follows (pairs not proposed ignore theirs), as in
:mod:`textsampling.reference.parallel_tempering`. The exact kernel on enumerated sentences is
:func:`transition_matrix`; the tests check it keeps :math:`\Pi` to 1e-12.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from textsampling._validation import check_int, check_uniforms
from textsampling.reference import cgmh, chain, parallel_tempering, sentence_annealing
from textsampling.reference.cgmh import CGMHConfig, CGMHState
from textsampling.reference.chain import Trace
from textsampling.reference.parallel_tempering import check_temperatures, geometric_temperatures

__all__ = [
    "SentenceTemperingState",
    "SentenceTemperingInfo",
    "SentenceTemperingTrace",
    "check_temperatures",
    "geometric_temperatures",
    "init",
    "num_uniforms",
    "move",
    "swap",
    "step",
    "sample",
    "product_log_probs",
    "transition_matrix",
]


class SentenceTemperingState(NamedTuple):
    """The replicas, coldest first: ``x`` ``(M, L)``, untempered ``log_prob`` ``(M,)``, ``protected`` ``(M, L)``."""

    x: np.ndarray
    log_prob: np.ndarray
    protected: np.ndarray


class SentenceTemperingInfo(NamedTuple):
    """One step: each replica's CGMH move (:class:`~textsampling.reference.cgmh.CGMHInfo`'s fields, ``(M, ...)``:
    ``move`` names, ``position``, ``proposal`` ``(M, L)``, tempered ``log_accept_prob``, ``accepted``), then per
    neighbour pair ``i`` = (i, i+1), ``(M-1,)``: ``swap_proposed``, ``swap_log_accept_prob`` (NaN where not
    proposed) and ``swap_accepted``."""

    move: np.ndarray
    position: np.ndarray
    proposal: np.ndarray
    log_accept_prob: np.ndarray
    accepted: np.ndarray
    swap_proposed: np.ndarray
    swap_log_accept_prob: np.ndarray
    swap_accepted: np.ndarray


#: A run: :class:`textsampling.reference.chain.Trace` of :class:`SentenceTemperingState` and
#: :class:`SentenceTemperingInfo`, fields ``(T, M, ...)``; the chain at ``T_0`` is ``trace.states.x[:, 0]``.
SentenceTemperingTrace = Trace


def init(x0, config: CGMHConfig, *, num_replicas: int | None = None, protected=None) -> SentenceTemperingState:
    """The replicas at their starting sentences (:func:`textsampling.reference.cgmh.init` for each).

    Parameters
    ----------
    x0 : array_like of int
        ``(M, L')``: one PAD-padded sentence per replica, coldest first; or ``(L',)``: one sentence
        that every one of ``num_replicas`` replicas starts from.
    config : CGMHConfig
        The CGMH settings (:func:`textsampling.reference.cgmh.make_config`); its ``temperature`` is not
        read: each replica runs at its own.
    num_replicas : int, optional
        :math:`M`; required with a single sentence, checked against ``x0`` otherwise.
    protected : array_like of bool, optional
        The carried keyword placements (``keyword_rule="position"`` only), shaped like ``x0``.
    """
    x0 = np.asarray(x0)
    if x0.ndim == 1:
        if num_replicas is None:
            raise ValueError("x0 is one sentence: give num_replicas (the number of temperatures) to start all there")
        num_replicas = check_int(num_replicas, "num_replicas", minimum=2)
        x0 = np.repeat(x0[None], num_replicas, axis=0)
        if protected is not None:
            protected = np.repeat(np.asarray(protected, dtype=bool)[None], num_replicas, axis=0)
    elif x0.ndim != 2 or x0.shape[0] < 2:
        raise ValueError(f"x0 must hold one sentence per replica, shape (M, L) with M >= 2, got shape {x0.shape}")
    elif num_replicas is not None and check_int(num_replicas, "num_replicas", minimum=2) != x0.shape[0]:
        raise ValueError(f"x0 holds {x0.shape[0]} replicas but num_replicas = {num_replicas}")
    masks = [None] * x0.shape[0] if protected is None else list(np.asarray(protected, dtype=bool))
    states = [cgmh.init(x, config, protected=mask) for x, mask in zip(x0, masks)]
    return SentenceTemperingState(
        np.stack([s.x for s in states]), np.array([s.log_prob for s in states]), np.stack([s.protected for s in states])
    )


def num_uniforms(num_replicas: int) -> int:
    """Uniforms per step: four per replica's CGMH step, the parity uniform, one accept uniform per pair."""
    num_replicas = check_int(num_replicas, "num_replicas", minimum=2)
    return num_replicas * cgmh.num_uniforms() + 1 + (num_replicas - 1)


def move(uniforms, state: SentenceTemperingState, config: CGMHConfig, *, temperatures):
    """The moves: replica ``m`` takes one CGMH step at ``temperatures[m]`` with ``uniforms[4m : 4m + 4]``.

    Returns ``(SentenceTemperingState, (move, position, proposal, log_accept_prob, accepted))``, each ``(M, ...)``.
    """
    temperatures = check_temperatures(temperatures)
    num_replicas = temperatures.shape[0]
    per_replica = check_uniforms(uniforms, num_replicas * cgmh.num_uniforms()).reshape(num_replicas, -1)
    rows = [
        sentence_annealing.step(
            per_replica[m],
            CGMHState(state.x[m], float(state.log_prob[m]), state.protected[m]),
            config,
            temperature=temperatures[m],
        )
        for m in range(num_replicas)
    ]
    moved = SentenceTemperingState(
        np.stack([s.x for s, _ in rows]),  # (M, L)
        np.array([s.log_prob for s, _ in rows]),  # (M,)
        np.stack([s.protected for s, _ in rows]),  # (M, L)
    )
    infos = (
        np.array([i.move for _, i in rows], dtype=object),
        np.array([i.position for _, i in rows]),
        np.stack([i.proposal for _, i in rows]),
        np.array([i.log_accept_prob for _, i in rows]),
        np.array([i.accepted for _, i in rows]),
    )
    return moved, infos


def swap(uniforms, state: SentenceTemperingState, *, temperatures):
    """The swaps, :func:`textsampling.reference.parallel_tempering.swap` on the whole replicas.

    ``uniforms[0]`` picks the even or odd pairs, ``uniforms[1 + i]`` decides pair ``(i, i+1)`` from the
    untempered ``state.log_prob``. Returns ``(SentenceTemperingState, (swap_proposed,
    swap_log_accept_prob, swap_accepted))``, the last three ``(M-1,)``.
    """
    return parallel_tempering.swap(uniforms, state, temperatures=temperatures)


def step(uniforms, state: SentenceTemperingState, config: CGMHConfig, *, temperatures):
    r"""One step: every replica takes a CGMH step at its temperature (:func:`move`), then neighbours swap.

    Parameters
    ----------
    uniforms : array_like, shape (num_uniforms(M),)
        The first ``4M`` drive the moves, the last ``M`` the swaps (see the module docstring).
    state : SentenceTemperingState
    config : CGMHConfig
        The untempered target :math:`\rho` and the CGMH settings.
    temperatures : array_like, shape (M,)
        Strictly increasing; replica ``m`` targets :math:`\rho^{1/T_m}`.

    Returns
    -------
    (SentenceTemperingState, SentenceTemperingInfo)
    """
    temperatures = check_temperatures(temperatures)
    num_replicas = temperatures.shape[0]
    if np.asarray(state.x).shape[0] != num_replicas:
        raise ValueError(f"state holds {np.asarray(state.x).shape[0]} replicas but temperatures has {num_replicas}")
    uniforms = check_uniforms(uniforms, num_uniforms(num_replicas))
    split = num_replicas * cgmh.num_uniforms()
    moved, move_info = move(uniforms[:split], state, config, temperatures=temperatures)
    swapped, swap_info = swap(uniforms[split:], moved, temperatures=temperatures)
    return swapped, SentenceTemperingInfo(*move_info, *swap_info)


def sample(rng, x0, config: CGMHConfig, num_steps: int, *, first_step: int = 0, temperatures, protected=None) -> Trace:
    r"""Run ``num_steps`` steps from ``x0``: one sentence per replica ``(M, L')``, or one for all ``(L',)``.

    Step ``t`` uses ``draw_uniforms(rng, first_step + t, num_uniforms(M))``; the loop is
    :func:`textsampling.reference.chain.run`. Each step costs ``M`` CGMH steps (the swaps reuse the
    cached :math:`\log\rho`).

    Returns
    -------
    SentenceTemperingTrace
        ``states.x`` ``(T, M, L)``, ``states.log_prob`` ``(T, M)``; ``states.x[:, 0]`` is the chain at
        ``temperatures[0]``; ``infos.swap_accepted`` ``(T, M-1)`` …
    """
    temperatures = check_temperatures(temperatures)
    state = init(x0, config, num_replicas=temperatures.shape[0], protected=protected)
    return chain.run(
        rng, state, lambda uniforms, current, t: step(uniforms, current, config, temperatures=temperatures),
        num_uniforms(temperatures.shape[0]), num_steps, first_step=first_step,
    )


# ----------------------------------------------------------------------------- exact kernels
def product_log_probs(config: CGMHConfig, states, temperatures) -> np.ndarray:
    r""":math:`\log\Pi` on the joint states of enumerated sentences ``states`` (``itertools.product`` order).

    ``states`` ``(S, L)`` (:func:`textsampling.reference.cgmh.enumerate_sentences`); returns ``(S^M,)``,
    replica 0 the slowest index, normalised over the enumerated sentences.
    """
    log_rho = cgmh.log_target(config, states)
    return parallel_tempering.product_log_probs(log_rho, temperatures)


def transition_matrix(config: CGMHConfig, states, temperatures, protected=None) -> np.ndarray:
    r"""Exact kernel of :func:`step` on the joint states: :math:`\bigotimes_m P_{T_m}` then the swaps.

    :math:`P_{T_m}` is :func:`textsampling.reference.sentence_annealing.transition_matrix` (the CGMH
    kernel on :math:`\rho^{1/T_m}`, built from the code :func:`move` runs), the swap kernel
    :func:`textsampling.reference.parallel_tempering.swap_transition_matrix` on the sentences'
    :math:`\log\rho`. ``(S^M, S^M)``, rows in ``itertools.product`` order over ``states``; ``protected``
    as in :func:`textsampling.reference.cgmh.transition_matrix`.
    """
    temperatures = check_temperatures(temperatures)
    moves = np.ones((1, 1))
    for temperature in temperatures:
        moves = np.kron(moves, sentence_annealing.transition_matrix(config, states, temperature, protected))
    log_rho = cgmh.log_target(config, states)
    return moves @ parallel_tempering.swap_transition_matrix(log_rho, temperatures)
