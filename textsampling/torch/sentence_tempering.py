r"""Torch twin of :mod:`textsampling.reference.sentence_tempering`: parallel tempering over sentences, batched.

The math (the product target :math:`\Pi = \prod_m \rho(x_m)^{1/T_m}/Z_m`, CGMH moves at each
temperature, stochastic even–odd swaps on the untempered :math:`\log\rho`) and the papers (Geyer 1991;
Hukushima & Nemoto 1996; Miao et al. 2019) are the reference's; read them there. The batch contract:

* ``B`` joint chains of ``M`` replicas: ``x`` ``(B, M, L)`` int64 PAD-padded, ``log_prob`` ``(B, M)``
  untempered, ``protected`` ``(B, M, L)`` bool; replica 0 the coldest;
* the moves call :func:`textsampling.torch.cgmh.step` once per replica, on the ``B`` chains at once, at
  that replica's temperature (a loop over the ``M`` rungs of the ladder, a handful, never over chains);
* the swaps are :func:`textsampling.torch.parallel_tempering.swap`, which exchanges whole replicas;
* the uniforms of a step are ``(B, num_uniforms(M))``, row ``b`` laid out as the reference's, so with a
  counter generator chain ``b`` is the reference chain with ``CounterGenerator(seed, b)``, decision by
  decision (in float64);
* :class:`SentenceTemperingInfo` is the reference's with ``move`` as int64 indices into
  :data:`~textsampling.reference.cgmh.MOVES` (as :mod:`textsampling.torch.cgmh` stores it);
* :func:`sample` returns a :class:`~textsampling.torch.chain.Trace` whose fields are ``(B, T, M, ...)``.

The configuration is the reference's :class:`~textsampling.reference.cgmh.CGMHConfig` (its model with
the ``*_torch`` methods), as for :mod:`textsampling.torch.cgmh`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling._validation import check_int
from textsampling.reference.cgmh import CGMHConfig
from textsampling.reference.chain import Trace
from textsampling.reference.sentence_annealing import at_temperature
from textsampling.reference.sentence_tempering import num_uniforms as reference_num_uniforms
from textsampling.torch import cgmh, chain, parallel_tempering
from textsampling.torch._validation import check_tensor
from textsampling.torch.cgmh import CGMHState
from textsampling.torch.parallel_tempering import check_temperatures
from textsampling.torch.randomness import check_num_chains

__all__ = [
    "SentenceTemperingState",
    "SentenceTemperingInfo",
    "SentenceTemperingTrace",
    "init",
    "num_uniforms",
    "move",
    "swap",
    "step",
    "sample",
]


class SentenceTemperingState(NamedTuple):
    """The reference's :class:`~textsampling.reference.sentence_tempering.SentenceTemperingState`, per chain."""

    x: torch.Tensor  # (B, M, L) int64, PAD-padded
    log_prob: torch.Tensor  # (B, M) untempered log rho
    protected: torch.Tensor  # (B, M, L) bool


class SentenceTemperingInfo(NamedTuple):
    """The reference's :class:`~textsampling.reference.sentence_tempering.SentenceTemperingInfo`, per chain."""

    move: torch.Tensor  # (B, M) int64 index into MOVES
    position: torch.Tensor  # (B, M) int64, -1 for an impossible move
    proposal: torch.Tensor  # (B, M, L)
    log_accept_prob: torch.Tensor  # (B, M), tempered
    accepted: torch.Tensor  # (B, M) bool
    swap_proposed: torch.Tensor  # (B, M - 1) bool
    swap_log_accept_prob: torch.Tensor  # (B, M - 1), NaN where not proposed
    swap_accepted: torch.Tensor  # (B, M - 1) bool


#: :class:`textsampling.torch.chain.Trace` of :class:`SentenceTemperingState` and
#: :class:`SentenceTemperingInfo`, fields ``(B, T, M, ...)``; the chains at ``T_0``: ``trace.states.x[:, :, 0]``.
SentenceTemperingTrace = Trace


def init(
    x0: torch.Tensor, config: CGMHConfig, *, num_replicas: int | None = None, protected: torch.Tensor | None = None
) -> SentenceTemperingState:
    """The replicas of every chain at their sentences: :func:`textsampling.torch.cgmh.init` on all rows at once.

    ``x0`` ``(B, M, L')``, one sentence per replica, or ``(B, L')``, one sentence per chain that its
    ``num_replicas`` replicas all start from; ``protected`` (``keyword_rule="position"`` only) shaped
    like ``x0``. Twin of :func:`textsampling.reference.sentence_tempering.init`.
    """
    check_tensor(x0, "x0", integer=True)
    if x0.ndim == 2:
        if num_replicas is None:
            raise ValueError("x0 is one sentence per chain (B, L): give num_replicas to start every replica there")
        num_replicas = check_int(num_replicas, "num_replicas", minimum=2)
        x0 = x0[:, None, :].expand(-1, num_replicas, -1)  # (B, M, L')
        if protected is not None:
            protected = protected[:, None, :].expand(-1, num_replicas, -1)  # (B, M, L')
    elif x0.ndim != 3 or x0.shape[1] < 2:
        raise ValueError(f"x0 must have shape (B, M, L) with M >= 2 replicas (or (B, L)), got {tuple(x0.shape)}")
    elif num_replicas is not None and num_replicas != x0.shape[1]:
        raise ValueError(f"x0 holds {x0.shape[1]} replicas but num_replicas = {num_replicas}")
    num_chains, num_replicas, width = x0.shape
    flat = cgmh.init(
        x0.reshape(num_chains * num_replicas, width),  # (B M, L')
        config,
        protected=None if protected is None else protected.reshape(num_chains * num_replicas, width),
    )
    shape = (num_chains, num_replicas)
    return SentenceTemperingState(
        flat.x.reshape(shape + (-1,)), flat.log_prob.reshape(shape), flat.protected.reshape(shape + (-1,))
    )  # (B, M, L), (B, M), (B, M, L)


def num_uniforms(num_replicas: int) -> int:
    """As the reference: four per replica's CGMH step, the parity uniform, one accept uniform per pair."""
    return reference_num_uniforms(num_replicas)


def move(uniforms: torch.Tensor, state: SentenceTemperingState, config: CGMHConfig, *, temperatures):
    """Replica ``m`` of every chain takes one CGMH twin step at ``temperatures[m]``; ``uniforms`` ``(B, 4M)``.

    Returns ``(SentenceTemperingState, (move, position, proposal, log_accept_prob, accepted))``, each
    ``(B, M, ...)``.
    """
    temperatures = check_temperatures(temperatures)
    per_step = cgmh.num_uniforms()
    rows = []
    for m, temperature in enumerate(temperatures):
        replica = CGMHState(state.x[:, m], state.log_prob[:, m], state.protected[:, m])  # (B, L), (B,), (B, L)
        replica_uniforms = uniforms[:, m * per_step : (m + 1) * per_step]  # (B, 4)
        rows.append(cgmh.step(replica_uniforms, replica, at_temperature(config, temperature)))
    moved = SentenceTemperingState(*(torch.stack(values, dim=1) for values in zip(*(s for s, _ in rows))))
    infos = tuple(torch.stack(values, dim=1) for values in zip(*(i for _, i in rows)))  # each (B, M, ...)
    return moved, infos


def swap(uniforms: torch.Tensor, state: SentenceTemperingState, *, temperatures):
    """:func:`textsampling.torch.parallel_tempering.swap` on whole replicas; ``uniforms`` ``(B, M)``.

    Returns ``(SentenceTemperingState, (swap_proposed, swap_log_accept_prob, swap_accepted))``, the last
    three ``(B, M - 1)``.
    """
    return parallel_tempering.swap(uniforms, state, temperatures=temperatures)


def step(uniforms: torch.Tensor, state: SentenceTemperingState, config: CGMHConfig, *, temperatures):
    """One step for every chain: :func:`move`, then :func:`swap`; ``uniforms`` ``(B, num_uniforms(M))``.

    Twin of :func:`textsampling.reference.sentence_tempering.step`. Returns
    ``(SentenceTemperingState, SentenceTemperingInfo)``.
    """
    cgmh.check_config(config)
    temperatures = check_temperatures(temperatures)
    if not isinstance(state, SentenceTemperingState):
        raise TypeError(f"state must be a SentenceTemperingState (from init), got {type(state).__name__}")
    num_chains, num_replicas = state.log_prob.shape
    if num_replicas != len(temperatures):
        raise ValueError(f"state holds {num_replicas} replicas but temperatures has {len(temperatures)}")
    check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    expected = (num_chains, num_uniforms(num_replicas))
    if tuple(uniforms.shape) != expected:
        raise ValueError(f"uniforms must have shape {expected}, got {tuple(uniforms.shape)}")
    split = num_replicas * cgmh.num_uniforms()
    moved, move_info = move(uniforms[:, :split], state, config, temperatures=temperatures)
    swapped, swap_info = swap(uniforms[:, split:], moved, temperatures=temperatures)
    return swapped, SentenceTemperingInfo(*move_info, *swap_info)


def sample(
    rng, x0: torch.Tensor, config: CGMHConfig, num_steps: int, *, first_step: int = 0, temperatures, protected=None
) -> Trace:
    """Run ``num_steps`` steps for every chain from ``x0`` ``(B, M, L')`` or ``(B, L')``; fields ``(B, T, M, …)``.

    Twin of :func:`textsampling.reference.sentence_tempering.sample`: step ``t`` uses
    ``draw_uniforms(rng, first_step + t, num_uniforms(M), B)`` in float64; the loop is
    :func:`textsampling.torch.chain.run`.
    """
    cgmh.check_config(config)
    temperatures = check_temperatures(temperatures)
    state = init(x0, config, num_replicas=len(temperatures), protected=protected)
    check_num_chains(rng, state.x.shape[0], "x0")
    return chain.run(
        rng, state, lambda uniforms, current, t: step(uniforms, current, config, temperatures=temperatures),
        num_uniforms(len(temperatures)), num_steps, first_step=first_step, dtype=torch.float64,
    )
