r"""Torch twin of :mod:`textsampling.reference.annealed_importance`: AIS for a batch of independent runs.

The math, the papers and the conventions (the weight from the particles *before* the move, the MH move
on :math:`\gamma_\beta = p_0^{1-\beta}\rho^\beta`, ``-inf`` handling) are the reference's, in the same
floating operations; read them there. The batch contract:

* ``B`` independent runs (the chains of :mod:`textsampling.torch.chain`) of ``N`` particles each:
  ``x`` ``(B, N) + state_shape``, ``log_prob``, ``log_base_prob``, ``log_weight`` ``(B, N)``, ``beta`` ``(B,)``;
* ``log_prob_fn`` and ``base.log_prob`` (a torch independent proposal, e.g.
  :class:`~textsampling.torch.proposals.IndependentCategorical`) map ``(K,) + state_shape -> (K,)``;
  the ``B N`` particles are evaluated as one flat batch;
* the uniforms of a rung are ``(B, N (k+1))``: row ``b`` is the reference's uniforms of run ``b``,
  particle ``n`` reading ``[n (k+1), (n+1)(k+1))``, so with a counter generator run ``b`` is the reference
  run with ``CounterGenerator(seed, b)``, particle by particle and decision by decision (in float64);
* :func:`sample` returns a :class:`~textsampling.torch.chain.Trace` whose fields are ``(B, K, N, ...)``.

No loop over runs or particles: each rung is one batched MH twin step
(:func:`textsampling.torch.metropolis_hastings.step`), or, with a
:class:`~textsampling.reference.annealed_importance.GibbsMove` as ``proposal``, one batched Gibbs twin step
(:func:`textsampling.torch.gibbs.step`) on the conditionals of :math:`\gamma_\beta`, whose ``num_tokens``
candidates per particle and site are evaluated as one flat batch of ``B N V`` sequences.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from textsampling._validation import check_int
from textsampling.reference import annealed_importance as reference
from textsampling.reference.annealed_importance import GibbsMove, move_num_uniforms
from textsampling.torch import chain, gibbs, metropolis_hastings
from textsampling.torch._validation import check_tensor, raise_if
from textsampling.torch.chain import Trace
from textsampling.torch.gibbs import GibbsState
from textsampling.torch.metropolis_hastings import MHState
from textsampling.torch.randomness import draw_uniforms

__all__ = [
    "AISState",
    "AISInfo",
    "AISTrace",
    "GibbsMove",
    "intermediate_log_prob",
    "bridge_conditional_log_probs",
    "log_weight_increment",
    "power_schedule",
    "draw_particles",
    "num_base_uniforms",
    "log_normalizer_estimate",
    "effective_sample_size",
    "init",
    "num_uniforms",
    "step",
    "resample",
    "sample",
]


class AISState(NamedTuple):
    """The reference's :class:`~textsampling.reference.annealed_importance.AISState`, one row per run."""

    x: torch.Tensor  # (B, N) + state_shape
    log_prob: torch.Tensor  # (B, N)
    log_base_prob: torch.Tensor  # (B, N)
    log_weight: torch.Tensor  # (B, N)
    beta: torch.Tensor  # (B,)


class AISInfo(NamedTuple):
    """The reference's :class:`~textsampling.reference.annealed_importance.AISInfo`, one row per run."""

    proposal: torch.Tensor  # (B, N) + state_shape
    log_accept_prob: torch.Tensor  # (B, N)
    accepted: torch.Tensor  # (B, N) bool
    log_weight_increment: torch.Tensor  # (B, N)
    beta: torch.Tensor  # (B,)
    log_normalizer: torch.Tensor  # (B,)
    effective_sample_size: torch.Tensor  # (B,)


#: :class:`textsampling.torch.chain.Trace` of :class:`AISState` and :class:`AISInfo`, fields ``(B, K, ...)``.
AISTrace = Trace

power_schedule = reference.power_schedule
num_base_uniforms = reference.num_base_uniforms


def intermediate_log_prob(log_base_prob: torch.Tensor, log_prob: torch.Tensor, beta: float) -> torch.Tensor:
    """The reference's :func:`~textsampling.reference.annealed_importance.intermediate_log_prob` (``beta`` a float)."""
    if beta == 0.0:
        return log_base_prob
    if beta == 1.0:
        return log_prob
    return (1.0 - beta) * log_base_prob + beta * log_prob


def log_weight_increment(log_base_prob, log_prob, previous_beta: torch.Tensor, beta: float) -> torch.Tensor:
    """The reference's increment per run: ``previous_beta`` ``(B,)``, the rest ``(B, N)``; 0 where beta repeats."""
    delta = (beta - previous_beta)[:, None]  # (B, 1)
    # Where delta is 0 the product could be 0 * (-inf) = NaN: the reference returns 0 there.
    return torch.where(delta == 0.0, torch.zeros_like(log_prob), delta * (log_prob - log_base_prob))  # (B, N)


def log_normalizer_estimate(log_weights: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\hat Z` per run: ``logsumexp(log_weights, dim=1) - log N``, ``(B,)``."""
    return torch.logsumexp(log_weights, dim=1) - math.log(log_weights.shape[1])  # (B,)


def effective_sample_size(log_weights: torch.Tensor) -> torch.Tensor:
    r"""Kong's ESS per run, ``(B,)``; 0 for a run whose weights are all 0."""
    ess = torch.exp(2.0 * torch.logsumexp(log_weights, dim=1) - torch.logsumexp(2.0 * log_weights, dim=1))  # (B,)
    return torch.where((log_weights == -torch.inf).all(dim=1), torch.zeros_like(ess), ess)


def draw_particles(uniforms: torch.Tensor, base, num_particles: int) -> torch.Tensor:
    """``num_particles`` draws from ``base`` per run from ``uniforms`` ``(B, N k)``: ``(B, N) + state_shape``."""
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    num_runs = uniforms.shape[0]
    per_particle = uniforms.reshape(num_runs * num_particles, int(base.num_uniforms))  # (B N, k)
    particles = base.sample(per_particle)  # (B N,) + state_shape
    return particles.reshape((num_runs, num_particles) + tuple(particles.shape[1:]))  # (B, N) + state_shape


def _evaluate(function, flat_states: torch.Tensor, name: str, dtype, allow_nan: bool) -> torch.Tensor:
    values = function(flat_states)
    if not isinstance(values, torch.Tensor) or values.shape != (flat_states.shape[0],):
        raise ValueError(f"{name} must return a tensor with one value per state, shape ({flat_states.shape[0]},)")
    if dtype is not None and values.dtype != dtype:
        raise TypeError(f"{name} returned dtype {values.dtype} but the particles compute in {dtype}")
    bad = (values == torch.inf) if allow_nan else ((values == torch.inf) | torch.isnan(values))
    raise_if([bad.any()], [f"{name} returned +inf or NaN; log-densities must be finite or -inf"])
    return values


def init(x0: torch.Tensor, log_prob_fn, base, proposal=None, *, dtype=None) -> AISState:
    """The particle systems at beta 0: ``x0`` ``(B, N) + state_shape`` (draws from ``base``), weights 1."""
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
    x = check_tensor(x0, "x0")
    if x.ndim < 2 or x.shape[1] == 0:
        raise ValueError("x0 must have shape (B, N) + state_shape (runs, particles), N >= 1")
    num_runs, num_particles = x.shape[0], x.shape[1]
    flat = x.reshape((num_runs * num_particles,) + tuple(x.shape[2:]))  # (B N,) + state_shape
    log_prob = _evaluate(log_prob_fn, flat, "log_prob_fn", dtype, False)
    log_base_prob = _evaluate(base.log_prob, flat, "base.log_prob", log_prob.dtype, False)
    raise_if(
        [(log_base_prob == -torch.inf).any()],
        ["every particle of x0 needs base.log_prob > -inf: x0 must be draws from base"],
    )
    shape = (num_runs, num_particles)
    zeros = log_prob.new_zeros(shape)  # (B, N)
    return AISState(x, log_prob.reshape(shape), log_base_prob.reshape(shape), zeros, log_prob.new_zeros(num_runs))


def num_uniforms(proposal, num_particles: int) -> int:
    """Uniforms per rung and run: one move's for each particle (an MH step's, or a ``GibbsMove``'s)."""
    return check_int(num_particles, "num_particles", minimum=1) * move_num_uniforms(proposal)


class _Bridge:
    """:math:`\\log\\gamma_\\beta` as a flat batched ``log_prob_fn``, remembering the parts (see the reference)."""

    def __init__(self, log_prob_fn, base, beta: float, dtype):
        self.log_prob_fn, self.base, self.beta, self.dtype = log_prob_fn, base, beta, dtype
        self.parts = None

    def __call__(self, states):
        log_prob = _evaluate(self.log_prob_fn, states, "log_prob_fn", self.dtype, True)
        log_base_prob = _evaluate(self.base.log_prob, states, "base.log_prob", self.dtype, True)
        self.parts = (log_prob, log_base_prob)
        return intermediate_log_prob(log_base_prob, log_prob, self.beta)


class _BridgeConditional:
    r"""The reference's conditionals of :math:`\gamma_\beta` for the Gibbs twin: ``(states (M, L), positions
    (M,)) -> (M, V)``, the ``M V`` candidates evaluated as one flat batch; the last call's parts are kept."""

    def __init__(self, log_prob_fn, base, beta: float, num_tokens: int, dtype):
        self.log_prob_fn, self.base, self.beta, self.num_tokens, self.dtype = log_prob_fn, base, beta, num_tokens, dtype
        self.positions, self.parts = None, None

    def __call__(self, states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        num_states, length = states.shape
        tokens = torch.arange(self.num_tokens, device=states.device)  # (V,)
        candidates = states[:, None, :].repeat(1, self.num_tokens, 1)  # (M, V, L)
        at = positions[:, None, None].expand(num_states, self.num_tokens, 1)  # (M, V, 1)
        candidates.scatter_(2, at, tokens[None, :, None].expand(num_states, self.num_tokens, 1))  # (M, V, L)
        flat = candidates.reshape(num_states * self.num_tokens, length)  # (M V, L)
        shape = (num_states, self.num_tokens)
        log_prob = _evaluate(self.log_prob_fn, flat, "log_prob_fn", self.dtype, False).reshape(shape)  # (M, V)
        log_base_prob = _evaluate(self.base.log_prob, flat, "base.log_prob", self.dtype, False).reshape(shape)
        self.positions, self.parts = positions, (log_prob, log_base_prob)
        rows = intermediate_log_prob(log_base_prob, log_prob, self.beta)  # (M, V)
        # As the reference: a state whose every candidate is at -inf (weight already 0) stays where it is.
        stuck = (rows == -torch.inf).all(dim=1, keepdim=True)  # (M, 1)
        own = tokens[None, :] == torch.gather(states, 1, positions[:, None])  # (M, V)
        stay = torch.where(own, torch.zeros_like(rows), torch.full_like(rows, -torch.inf))  # (M, V)
        return torch.where(stuck, stay, rows)


def bridge_conditional_log_probs(log_prob_fn, base, beta: float, num_tokens: int, dtype=None):
    """The reference's :func:`~textsampling.reference.annealed_importance.bridge_conditional_log_probs`, batched:
    ``(states (M, L), positions (M,)) -> (M, num_tokens)`` for :func:`textsampling.torch.gibbs.step`."""
    return _BridgeConditional(log_prob_fn, base, float(beta), check_int(num_tokens, "num_tokens", minimum=1), dtype)


def _gibbs_moves(flat_uniforms, flat_x, log_prob_fn, base, move: GibbsMove, beta: float, dtype, validate: bool):
    """One Gibbs twin step on gamma_beta for the ``B N`` flat particles: ``(x, proposal, log_accept_prob,
    accepted, log_prob, log_base_prob)``, each ``(B N, ...)``, as the reference's per-particle loop."""
    conditional = _BridgeConditional(log_prob_fn, base, beta, move.num_tokens, dtype)
    moved, _ = gibbs.step(flat_uniforms, GibbsState(flat_x), conditional, scan=move.scan, validate=validate)
    # The new sequence is the last call's candidate at the token now written at its position.
    token = torch.gather(moved.x, 1, conditional.positions[:, None])  # (B N, 1)
    log_prob = torch.gather(conditional.parts[0], 1, token)[:, 0]  # (B N,)
    log_base_prob = torch.gather(conditional.parts[1], 1, token)[:, 0]  # (B N,)
    accepted = torch.ones(flat_x.shape[0], dtype=torch.bool, device=flat_x.device)  # (B N,)
    return moved.x, moved.x.clone(), torch.zeros_like(log_prob), accepted, log_prob, log_base_prob


def _mh_moves(flat_uniforms, flat_x, state: AISState, log_prob_fn, base, proposal, beta: float, validate: bool):
    """One MH twin step on gamma_beta for the ``B N`` flat particles, the same tuple as :func:`_gibbs_moves`."""
    current = intermediate_log_prob(state.log_base_prob, state.log_prob, beta).reshape(-1)  # (B N,)
    bridge = _Bridge(log_prob_fn, base, beta, state.log_prob.dtype)
    moved, info = metropolis_hastings.step(flat_uniforms, MHState(flat_x, current), bridge, proposal,
                                           validate=validate)
    accepted = info.accepted  # (B N,)
    log_prob = torch.where(accepted, bridge.parts[0], state.log_prob.reshape(-1))  # (B N,)
    log_base_prob = torch.where(accepted, bridge.parts[1], state.log_base_prob.reshape(-1))  # (B N,)
    return moved.x, info.proposal, info.log_accept_prob, accepted, log_prob, log_base_prob


def step(uniforms: torch.Tensor, state: AISState, log_prob_fn, base, proposal, *, beta: float, validate: bool = True):
    """One rung for every particle of every run: reweight, then one move at ``beta`` (a float): an MH twin
    step with ``proposal``, or a Gibbs twin step when ``proposal`` is a ``GibbsMove``.

    ``uniforms`` ``(B, N k)`` (``k`` = one move's uniforms); returns ``(AISState, AISInfo)`` as the
    reference, one row per run.
    """
    beta = float(reference.check_betas([beta], 1)[0])
    if not isinstance(state, AISState):
        raise TypeError(f"state must be an AISState (from init), got {type(state).__name__}")
    num_runs, num_particles = state.log_prob.shape
    per_step = move_num_uniforms(proposal)
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=2)
    if uniforms.shape != (num_runs, num_particles * per_step):
        raise ValueError(
            f"uniforms must have shape ({num_runs}, {num_particles * per_step}), got {tuple(uniforms.shape)}"
        )
    if validate:
        raise_if(
            [(state.beta > beta).any()], [f"beta {beta} is below the particles' beta: the ladder must not decrease"]
        )
    # The weight first, from the particles before the move (the reference's order and operations).
    increment = log_weight_increment(state.log_base_prob, state.log_prob, state.beta, beta)  # (B, N)
    log_weight = state.log_weight + increment  # (B, N)
    # Then one move on gamma_beta for the B N particles as one flat batch.
    state_shape = tuple(state.x.shape[2:])
    flat_x = state.x.reshape((num_runs * num_particles,) + state_shape)  # (B N,) + state_shape
    flat_uniforms = uniforms.reshape(num_runs * num_particles, per_step)  # (B N, k)
    if isinstance(proposal, GibbsMove):
        moves = _gibbs_moves(flat_uniforms, flat_x, log_prob_fn, base, proposal, beta, state.log_prob.dtype,
                             validate)
    else:
        moves = _mh_moves(flat_uniforms, flat_x, state, log_prob_fn, base, proposal, beta, validate)
    x, proposals, log_accept_prob, accepted, log_prob, log_base_prob = moves  # each (B N, ...)
    shape = (num_runs, num_particles)
    betas = torch.full_like(state.beta, beta)  # (B,)
    new_state = AISState(
        x.reshape(shape + state_shape), log_prob.reshape(shape), log_base_prob.reshape(shape), log_weight, betas
    )
    new_info = AISInfo(
        proposals.reshape(shape + state_shape),  # (B, N) + state_shape
        log_accept_prob.reshape(shape),  # (B, N)
        accepted.reshape(shape),  # (B, N)
        increment,
        betas,
        log_normalizer_estimate(log_weight),
        effective_sample_size(log_weight),
    )
    return new_state, new_info


def resample(uniforms: torch.Tensor, state: AISState, scheme: str = "systematic", *,
             validate: bool = True) -> AISState:
    """Batched :func:`textsampling.reference.annealed_importance.resample`: run ``b`` resampled with
    ``uniforms[b]`` (``(B, resampling.num_uniforms(N, scheme))``) as the reference does on its own."""
    from textsampling.torch import resampling

    parents = resampling.ancestors(uniforms, state.log_weight, scheme, validate=validate)  # (B, N)
    state_dims = state.x.ndim - 2
    index = parents.reshape(parents.shape + (1,) * state_dims).expand_as(state.x)  # (B, N) + state_shape
    mean_weight = log_normalizer_estimate(state.log_weight)[:, None].expand_as(state.log_weight)  # (B, N)
    return state._replace(x=torch.gather(state.x, 1, index), log_prob=torch.gather(state.log_prob, 1, parents),
                          log_base_prob=torch.gather(state.log_base_prob, 1, parents),
                          log_weight=mean_weight.clone())


def sample(
    rng,
    x0,
    log_prob_fn,
    base,
    proposal,
    num_steps: int,
    *,
    first_step: int = 0,
    betas,
    num_particles=None,
    dtype=None,
    num_chains=None,
) -> AISTrace:
    """Run AIS for every run: ``num_steps`` rungs at ``betas`` (array-like, the reference's checks).

    ``x0`` ``(B, N) + state_shape`` or ``None``: then ``num_particles`` per run are drawn from ``base``
    with the uniforms of step ``first_step`` (``num_chains`` runs with a ``torch.Generator``; a counter
    generator knows its runs) and the rungs use the following steps, as in the reference. ``dtype``:
    the uniforms' and log-densities' dtype (default ``base.dtype``).
    """
    num_steps = check_int(num_steps, "num_steps")
    first_step = check_int(first_step, "first_step")
    if isinstance(betas, torch.Tensor):
        betas = betas.detach().cpu().numpy()
    betas = reference.check_betas(betas, num_steps).tolist()
    dtype = base.dtype if dtype is None else dtype
    if x0 is None:
        if num_particles is None:
            raise ValueError("num_particles is required when x0 is None (the particles are drawn from base)")
        uniforms = draw_uniforms(
            rng, first_step, num_base_uniforms(base, num_particles), num_chains, dtype, base.device
        )
        x0 = draw_particles(uniforms, base, num_particles)
        first_step += 1
    elif num_particles is not None and x0.shape[1] != num_particles:
        raise ValueError(f"x0 holds {x0.shape[1]} particles per run but num_particles={num_particles}")
    state = init(x0, log_prob_fn, base, proposal, dtype=dtype)

    def step_fn(uniforms, state, t):
        return step(uniforms, state, log_prob_fn, base, proposal, beta=betas[t])

    return chain.run(
        rng,
        state,
        step_fn,
        num_uniforms(proposal, state.x.shape[1]),
        num_steps,
        first_step=first_step,
        num_chains=num_chains,
    )
