r"""Torch twin of :mod:`textsampling.reference.parallel_tempering`: replica exchange for a batch of chains.

The math, the papers and the conventions (stochastic even–odd swaps, the swap ratio
:math:`(1/T_i - 1/T_{i+1})(\log\rho(x_{i+1}) - \log\rho(x_i))`, NaN rejects) are the reference's, in
the same floating operations; read them there. The batch contract:

* ``B`` joint chains of ``M`` replicas: ``x`` ``(B, M) + state_shape``, ``log_prob`` ``(B, M)``
  (untempered), replica 0 the coldest;
* ``log_prob_fn`` maps ``(K,) + state_shape -> (K,)``: the moves evaluate the ``B M`` proposals as one
  flat batch (one :func:`textsampling.torch.metropolis_hastings.step` with a ``(B M,)`` temperature);
* the uniforms of a step are ``(B, num_uniforms(proposal, M))``, row ``b`` laid out as the reference's,
  so with a counter generator chain ``b`` is the reference chain with ``CounterGenerator(seed, b)``,
  decision by decision (in float64);
* ``temperatures`` are numbers (array-like or a tensor, checked by the reference), shared by the chains;
* :func:`sample` returns a :class:`~textsampling.torch.chain.Trace` whose fields are ``(B, T, M, ...)``.

The swaps loop over the ``M - 1`` neighbour pairs (a handful), never over chains.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling.reference import parallel_tempering as reference
from textsampling.torch import chain, metropolis_hastings
from textsampling.torch._validation import check_tensor
from textsampling.torch.chain import Trace
from textsampling.torch.metropolis_hastings import MHState
from textsampling.torch.randomness import integer_from_uniform

__all__ = [
    "PTState",
    "PTInfo",
    "PTTrace",
    "check_temperatures",
    "swap_log_accept_prob",
    "init",
    "num_uniforms",
    "move",
    "swap",
    "step",
    "sample",
]


class PTState(NamedTuple):
    """The reference's :class:`~textsampling.reference.parallel_tempering.PTState`, one row per chain."""

    x: torch.Tensor  # (B, M) + state_shape
    log_prob: torch.Tensor  # (B, M)


class PTInfo(NamedTuple):
    """The reference's :class:`~textsampling.reference.parallel_tempering.PTInfo`, one row per chain."""

    proposal: torch.Tensor  # (B, M) + state_shape
    log_accept_prob: torch.Tensor  # (B, M)
    accepted: torch.Tensor  # (B, M) bool
    swap_proposed: torch.Tensor  # (B, M - 1) bool
    swap_log_accept_prob: torch.Tensor  # (B, M - 1), NaN where not proposed
    swap_accepted: torch.Tensor  # (B, M - 1) bool


#: :class:`textsampling.torch.chain.Trace` of :class:`PTState` and :class:`PTInfo`, fields ``(B, T, ...)``.
PTTrace = Trace


def check_temperatures(temperatures) -> list:
    """The reference's checks (strictly increasing, ``> 0``, at least two); returns Python floats."""
    if isinstance(temperatures, torch.Tensor):
        temperatures = temperatures.detach().cpu().numpy()
    return reference.check_temperatures(temperatures).tolist()


def swap_log_accept_prob(
    log_prob_i: torch.Tensor, log_prob_j: torch.Tensor, temperature_i: float, temperature_j: float
):
    """The reference's :func:`~textsampling.reference.parallel_tempering.swap_log_accept_prob` per chain, ``(B,)``."""
    inverse_difference = 1.0 / temperature_i - 1.0 / temperature_j  # a Python float, as the reference's
    ratio = inverse_difference * (log_prob_j - log_prob_i)  # (B,); -inf - (-inf) is NaN: a rejection
    return torch.minimum(ratio, ratio.new_zeros(()))  # (B,), NaN propagates as in np.minimum


def init(x0: torch.Tensor, log_prob_fn, proposal=None, *, dtype=None) -> PTState:
    """The replicas of every chain at ``x0`` ``(B, M) + state_shape``, ``log_prob_fn`` once each."""
    x = check_tensor(x0, "x0")
    if x.ndim < 2 or x.shape[1] < 2:
        raise ValueError("x0 must have shape (B, M) + state_shape with M >= 2 replicas per chain")
    num_chains, num_replicas = x.shape[0], x.shape[1]
    flat = metropolis_hastings.init(
        x.reshape((num_chains * num_replicas,) + tuple(x.shape[2:])), log_prob_fn, proposal, dtype=dtype
    )
    return PTState(x, flat.log_prob.reshape(num_chains, num_replicas))  # (B, M) + state_shape, (B, M)


def num_uniforms(proposal, num_replicas: int) -> int:
    """As the reference: one MH step's per replica, the parity uniform, one accept uniform per pair."""
    return reference.num_uniforms(proposal, num_replicas)


def move(uniforms: torch.Tensor, state: PTState, log_prob_fn, proposal, *, temperatures, validate: bool = True):
    """Every replica of every chain takes one MH twin step at its temperature; ``uniforms`` ``(B, M (k+1))``.

    Returns ``(PTState, (proposal, log_accept_prob, accepted))``, the last three ``(B, M, ...)``.
    """
    temperatures = check_temperatures(temperatures)
    num_chains, num_replicas = state.log_prob.shape
    per_step = metropolis_hastings.num_uniforms(proposal)
    state_shape = tuple(state.x.shape[2:])
    flat = num_chains * num_replicas
    # Row b*M + m is replica m of chain b: its temperature is temperatures[m].
    temperature = torch.tensor(temperatures, dtype=state.log_prob.dtype, device=state.log_prob.device).repeat(
        num_chains
    )  # (B M,)
    moved, info = metropolis_hastings.step(
        uniforms.reshape(flat, per_step),  # (B M, k+1)
        MHState(state.x.reshape((flat,) + state_shape), state.log_prob.reshape(flat)),
        log_prob_fn,
        proposal,
        temperature=temperature,
        validate=validate,
    )
    shape = (num_chains, num_replicas)
    new_state = PTState(moved.x.reshape(shape + state_shape), moved.log_prob.reshape(shape))
    return new_state, (
        info.proposal.reshape(shape + state_shape),
        info.log_accept_prob.reshape(shape),
        info.accepted.reshape(shape),
    )


def swap(uniforms: torch.Tensor, state, *, temperatures):
    """The swaps of every chain: ``uniforms[:, 0]`` picks the parity, ``uniforms[:, 1 + i]`` decides pair ``i``.

    ``state`` is a :class:`PTState`, or any NamedTuple of per-replica fields ``(B, M, ...)`` with a
    ``log_prob`` ``(B, M)`` field (as the reference's :func:`~textsampling.reference.parallel_tempering.swap`):
    an accepted swap exchanges replicas ``i`` and ``i + 1`` in every field.

    Returns ``(state of the same type, (swap_proposed, swap_log_accept_prob, swap_accepted))``, the last
    three ``(B, M - 1)``.
    """
    temperatures = check_temperatures(temperatures)
    num_replicas = len(temperatures)
    log_prob = getattr(state, "log_prob")  # (B, M)
    num_chains = log_prob.shape[0]
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    if uniforms.shape[0] != num_chains or uniforms.shape[1] < num_replicas:
        # A narrower tensor would broadcast one uniform over several pairs: refused.
        raise ValueError(f"uniforms must have shape ({num_chains}, >= {num_replicas}) for the swaps of {num_replicas} "
                         f"replicas (the parity, then one per pair), got {tuple(uniforms.shape)}")
    parity = integer_from_uniform(uniforms[:, 0], 2)  # (B,)
    # Every pair at once. Pairs of one parity are disjoint and the other parity's are not proposed, so
    # each proposed pair reads the states the moves left, as the reference's pair-by-pair loop does.
    pair = torch.arange(num_replicas - 1, device=log_prob.device)  # (M-1,)
    swap_proposed = parity[:, None] == pair % 2  # (B, M-1)
    # The reference's Python float 1/T_i - 1/T_j of each pair, in the log-densities' dtype as a scalar
    # factor is (so the products are those of swap_log_accept_prob: the same numbers, a NaN's sign bit
    # aside).
    inverse_difference = torch.tensor(
        [1.0 / temperatures[i] - 1.0 / temperatures[i + 1] for i in range(num_replicas - 1)],
        dtype=log_prob.dtype,
        device=log_prob.device,
    )  # (M-1,)
    ratio = inverse_difference * (log_prob[:, 1:] - log_prob[:, :-1])  # (B, M-1); -inf - (-inf) is NaN: a rejection
    log_alpha = torch.minimum(ratio, ratio.new_zeros(()))  # (B, M-1), NaN propagates as in np.minimum
    log_alpha = torch.where(swap_proposed, log_alpha, torch.nan)  # (B, M-1)
    swap_accepted = swap_proposed & (torch.log(uniforms[:, 1:num_replicas]) < log_alpha)  # (B, M-1)
    # Replica m of the new state is old replica source[b, m]: m + 1 or m - 1 across an accepted pair.
    shift = swap_accepted.to(torch.int64)  # (B, M-1); accepted pairs are disjoint
    source = torch.arange(num_replicas, device=log_prob.device).repeat(num_chains, 1)  # (B, M)
    source[:, :-1] += shift
    source[:, 1:] -= shift
    fields = []
    for value in state:  # each (B, M, ...): whole replicas move
        index = source.reshape(source.shape + (1,) * (value.ndim - 2)).expand(value.shape)
        fields.append(torch.gather(value, 1, index))
    return type(state)(*fields), (swap_proposed, log_alpha, swap_accepted)


def step(uniforms: torch.Tensor, state: PTState, log_prob_fn, proposal, *, temperatures, validate: bool = True):
    """One parallel tempering step for every chain: :func:`move`, then :func:`swap`.

    ``uniforms`` ``(B, num_uniforms(proposal, M))``, the reference's layout per row. Returns ``(PTState, PTInfo)``.
    """
    temperatures = check_temperatures(temperatures)
    if not isinstance(state, PTState):
        raise TypeError(f"state must be a PTState (from init), got {type(state).__name__}")
    num_chains, num_replicas = state.log_prob.shape
    if num_replicas != len(temperatures):
        raise ValueError(f"state holds {num_replicas} replicas but temperatures has {len(temperatures)}")
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    expected = (num_chains, num_uniforms(proposal, num_replicas))
    if tuple(uniforms.shape) != expected:
        raise ValueError(f"uniforms must have shape {expected}, got {tuple(uniforms.shape)}")
    split = num_replicas * metropolis_hastings.num_uniforms(proposal)
    moved, move_info = move(
        uniforms[:, :split], state, log_prob_fn, proposal, temperatures=temperatures, validate=validate
    )
    swapped, swap_info = swap(uniforms[:, split:], moved, temperatures=temperatures)
    return swapped, PTInfo(*move_info, *swap_info)


def sample(
    rng, x0: torch.Tensor, log_prob_fn, proposal, num_steps: int, *, first_step: int = 0, temperatures, dtype=None
) -> PTTrace:
    """Run ``num_steps`` PT steps for every chain from ``x0`` ``(B, M) + state_shape``; fields ``(B, T, M, ...)``."""
    temperatures = check_temperatures(temperatures)
    state = init(x0, log_prob_fn, proposal, dtype=dtype)
    if state.log_prob.shape[1] != len(temperatures):
        raise ValueError(f"x0 holds {state.log_prob.shape[1]} replicas but temperatures has {len(temperatures)}")

    def step_fn(uniforms, state, t):
        return step(uniforms, state, log_prob_fn, proposal, temperatures=temperatures)

    return chain.run(rng, state, step_fn, num_uniforms(proposal, len(temperatures)), num_steps, first_step=first_step)
