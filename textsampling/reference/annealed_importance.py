r"""Annealed importance sampling (tempered SMC without resampling), from a normalised base to the target.

Between a normalised base law :math:`p_0` that is easy to sample (the uniform law, a causal LM, any
independent proposal of :mod:`~textsampling.reference.proposals`) and the unnormalised target
:math:`\rho`, a ladder :math:`0 = \beta_0 \le \beta_1 \le \dots \le \beta_K = 1` defines the geometric
bridge

.. math::
    \gamma_k(x) = p_0(x)^{1-\beta_k}\, \rho(x)^{\beta_k}, \qquad
    \log\gamma_k = (1 - \beta_k) \log p_0 + \beta_k \log\rho,

with :math:`\gamma_0 = p_0` (normaliser 1) and :math:`\gamma_K = \rho` (normaliser :math:`Z`). Each
particle starts at :math:`x_0 \sim p_0` with :math:`\log w = 0` and, for :math:`k = 1, \dots, K`,

.. math::
    \log w \mathrel{+}= \log\gamma_k(x_{k-1}) - \log\gamma_{k-1}(x_{k-1})
        = (\beta_k - \beta_{k-1}) \bigl(\log\rho(x_{k-1}) - \log p_0(x_{k-1})\bigr),
    \qquad x_k \sim T_k(x_{k-1}, \cdot),

where :math:`T_k` is any kernel that leaves :math:`\gamma_k / Z_k` invariant. Two of the package's kernels
serve, chosen by the ``proposal`` argument:

* an MH proposal (:mod:`textsampling.reference.proposals`): :math:`T_k` is one Metropolis–Hastings step
  (:func:`textsampling.reference.metropolis_hastings.step` fed :math:`\log\gamma_k`);
* a :class:`GibbsMove` (sequences of ``num_tokens`` tokens): :math:`T_k` is one Gibbs step
  (:func:`textsampling.reference.gibbs.step`, random scan or a systematic sweep) on the conditionals of
  :math:`\gamma_k`. The geometric bridge has them without a normaliser: at position :math:`i`,

  .. math::
      \gamma_k(x_i = v \mid x_{-i}) \propto p_0(x_{i \leftarrow v})^{1-\beta_k}\,\rho(x_{i \leftarrow v})^{\beta_k},

  so :func:`bridge_conditional_log_probs` evaluates both laws at the ``num_tokens`` candidates (the
  tempered conditional: with a uniform base, :math:`\propto \rho(x_{i \leftarrow v})^{\beta_k}`).

The weight uses the state *before* the move. Then (Neal 2001, "Annealed importance sampling",
Statistics and Computing 11:125; Jarzynski 1997 for the physics) for every function :math:`f`

.. math::
    \mathbb{E}[w] = Z, \qquad \mathbb{E}\bigl[w\, f(x_K)\bigr] = \sum_x \rho(x) f(x),

exactly, whatever :math:`K` and however poorly the kernels mix: the measure
:math:`m_k(x) = \mathbb{E}[w_k \mathbf 1\{x_k = x\}]` obeys :math:`m_0 = p_0`,
:math:`m_k = (m_{k-1} \odot \gamma_k / \gamma_{k-1})\, T_k`, and :math:`m_{k-1} = \gamma_{k-1}` gives
:math:`m_k = \gamma_k T_k = \gamma_k`. With :math:`N` independent particles

.. math::
    \hat Z = \frac1N \sum_n w_n, \qquad \log\hat Z = \operatorname{logsumexp}_n \log w_n - \log N,

is unbiased for :math:`Z` (:math:`\log\hat Z` is biased low by Jensen), and the self-normalised
weights :math:`W_n \propto w_n` give :math:`\sum_n W_n f(x_{K,n}) \to \mathbb{E}_\pi f`. The
effective sample size is :math:`(\sum w)^2 / \sum w^2` (Kong 1992). Read as sequential Monte Carlo this
is tempered SMC with the resampling step left out (Del Moral, Doucet & Jasra 2006, JRSS-B 68:411;
Chopin & Papaspiliopoulos 2020, ch. 17); a resampling step fits between two calls of :func:`step` (:func:`resample`),
because the state carries everything a rung needs (particles, their log-densities, their weights and
the current :math:`\beta`): resample ``x``, ``log_prob``, ``log_base_prob`` by ancestor, set every
``log_weight`` to :math:`\log\hat Z_k` (the log of the mean weight, so that the final
:func:`log_normalizer_estimate` is the SMC estimate :math:`\prod_k \overline{w}_k`, still unbiased), keep
``beta``.

**The particle system and the kernel contract.** One :func:`step` is one rung for all ``N``
particles; the state's fields have a leading particle axis. Its uniforms are ``N`` blocks of one
move's uniforms, ``uniforms.reshape(N, k)``: row ``n`` drives particle ``n``'s move (an MH step's
``k`` = proposal uniforms then the accept uniform; a Gibbs step's ``k`` = 2, position then token, or
``L`` for a sweep), so particle ``n`` of ``N`` is the same whatever ``N`` is.
:func:`sample` runs ``K`` rungs with the ladder ``betas`` (read at ``t``, as annealing reads its
temperatures); with ``x0=None`` it first draws ``num_particles`` particles from ``base`` with the
uniforms of step ``first_step`` and runs the rungs on steps ``first_step + 1 .. first_step + K``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from textsampling._validation import check_int, check_uniforms
from textsampling.randomness import draw_uniforms
from textsampling.reference import chain, gibbs, metropolis_hastings
from textsampling.reference.chain import Trace
from textsampling.reference.gibbs import GibbsState
from textsampling.reference.metropolis_hastings import MHState

__all__ = [
    "AISState",
    "AISInfo",
    "AISTrace",
    "GibbsMove",
    "move_num_uniforms",
    "intermediate_log_prob",
    "bridge_conditional_log_probs",
    "log_weight_increment",
    "power_schedule",
    "check_betas",
    "draw_particles",
    "num_base_uniforms",
    "log_normalizer_estimate",
    "log_normalizer_variance",
    "effective_sample_size",
    "normalised_weights",
    "init",
    "num_uniforms",
    "step",
    "resample",
    "sample",
]


class AISState(NamedTuple):
    r"""The particle system after rung :math:`k`: every field has a leading particle axis ``N``.

    ``x`` ``(N,) + state_shape``; ``log_prob`` :math:`\log\rho(x)` and ``log_base_prob``
    :math:`\log p_0(x)` ``(N,)`` (cached, so a rung evaluates each only at the proposals);
    ``log_weight`` :math:`\log w` ``(N,)``; ``beta`` the :math:`\beta_k` the particles were last moved at
    (0 at the start: exact draws from :math:`p_0`).
    """

    x: np.ndarray
    log_prob: np.ndarray
    log_base_prob: np.ndarray
    log_weight: np.ndarray
    beta: float


class AISInfo(NamedTuple):
    r"""One rung: each particle's move (``proposal``, ``log_accept_prob``, ``accepted``, all ``(N, ...)``;
    a Gibbs move is an MH move whose proposal is the conditional draw, accepted with probability 1, so
    there ``proposal`` is the new sequence, ``log_accept_prob`` 0 and ``accepted`` True),
    its ``log_weight_increment`` ``(N,)``, the rung's ``beta``, and the running estimates after the rung:
    ``log_normalizer`` :math:`\log\hat Z_k` (of :math:`Z_k / Z_0`) and ``effective_sample_size``."""

    proposal: np.ndarray
    log_accept_prob: np.ndarray
    accepted: np.ndarray
    log_weight_increment: np.ndarray
    beta: float
    log_normalizer: float
    effective_sample_size: float


#: A run of rungs: :class:`textsampling.reference.chain.Trace` of :class:`AISState` and :class:`AISInfo`,
#: fields ``(K, N, ...)``; ``final_state.log_weight`` are the AIS weights.
AISTrace = Trace


class GibbsMove:
    r"""The move of a rung as a Gibbs step on :math:`\gamma_\beta`, in place of an MH proposal.

    For states that are fixed-length sequences ``(L,)`` of tokens ``0 .. num_tokens - 1``; ``scan`` and
    ``length`` as in :func:`textsampling.reference.gibbs.num_uniforms` (``length`` = ``L``, needed for a
    systematic sweep). Each site update evaluates ``log_prob_fn`` and ``base.log_prob`` at the
    ``num_tokens`` candidates (:func:`bridge_conditional_log_probs`); every candidate must be a valid
    input of both (``-inf`` where impossible).
    """

    def __init__(self, num_tokens: int, scan: str = "random", length: int | None = None):
        self.num_tokens = check_int(num_tokens, "num_tokens", minimum=1)
        self.scan = gibbs.check_scan(scan)
        self.length = None if length is None else check_int(length, "length", minimum=1)
        self.num_uniforms = gibbs.num_uniforms(self.scan, self.length)

    def __repr__(self) -> str:
        return f"GibbsMove(num_tokens={self.num_tokens}, scan={self.scan!r}, length={self.length})"


def move_num_uniforms(proposal) -> int:
    """Uniforms of one particle's move: ``proposal``'s MH step, or a :class:`GibbsMove`'s Gibbs step."""
    if isinstance(proposal, GibbsMove):
        return proposal.num_uniforms
    return metropolis_hastings.num_uniforms(proposal)


def intermediate_log_prob(log_base_prob, log_prob, beta: float):
    r""":math:`\log\gamma_\beta = (1 - \beta)\log p_0 + \beta\log\rho`, elementwise.

    At :math:`\beta = 0` exactly :math:`\log p_0` and at :math:`\beta = 1` exactly :math:`\log\rho`, so a
    ``-inf`` of the other law never meets a zero factor (:math:`0 \cdot (-\infty)` is NaN).
    """
    log_base_prob = np.asarray(log_base_prob, dtype=np.float64)
    log_prob = np.asarray(log_prob, dtype=np.float64)
    if beta == 0.0:
        return log_base_prob
    if beta == 1.0:
        return log_prob
    return (1.0 - beta) * log_base_prob + beta * log_prob


def log_weight_increment(log_base_prob, log_prob, previous_beta: float, beta: float):
    r""":math:`\log\gamma_\beta(x) - \log\gamma_{\beta'}(x) = (\beta - \beta')(\log\rho(x) - \log p_0(x))`.

    Zero when :math:`\beta = \beta'` (a repeated rung only moves), ``-inf`` where :math:`\rho(x) = 0`.
    """
    log_base_prob = np.asarray(log_base_prob, dtype=np.float64)
    log_prob = np.asarray(log_prob, dtype=np.float64)
    if beta == previous_beta:
        return np.zeros_like(log_prob)
    return (beta - previous_beta) * (log_prob - log_base_prob)


def power_schedule(num_steps: int, power: float = 1.0) -> np.ndarray:
    r"""The ladder :math:`\beta_k = (k / K)^{p}`, :math:`k = 1..K` (so :math:`\beta_K = 1`).

    ``power > 1`` puts more rungs near :math:`\beta = 0`, where the bridge changes fastest when
    :math:`\rho` is much sharper than :math:`p_0` (Neal 2001, section 6, uses such ladders).
    """
    num_steps = check_int(num_steps, "num_steps", minimum=1)
    power = float(power)
    if not (np.isfinite(power) and power > 0):
        raise ValueError(f"power must be a finite number > 0, got {power!r}")
    return (np.arange(1, num_steps + 1) / num_steps) ** power


def check_betas(betas, num_steps: int, start: float = 0.0) -> np.ndarray:
    """A ``(num_steps,)`` non-decreasing ladder in ``[start, 1]`` (``start``: the particles' current beta)."""
    betas = np.asarray(betas, dtype=np.float64)
    if betas.shape != (num_steps,):
        raise ValueError(f"betas must hold one beta per step, shape ({num_steps},), got {betas.shape}")
    bad = ~(np.isfinite(betas) & (betas >= 0.0) & (betas <= 1.0))
    if np.any(bad):
        raise ValueError(f"betas must lie in [0, 1], got {betas[bad][0]!r} at index {np.argmax(bad)}")
    ladder = np.concatenate([[start], betas])
    if np.any(np.diff(ladder) < 0):
        raise ValueError(f"betas must be non-decreasing and start at or above the particles' beta {start}")
    return betas


def num_base_uniforms(base, num_particles: int) -> int:
    """Uniforms to draw ``num_particles`` particles from ``base``: ``base.num_uniforms`` each."""
    return check_int(num_particles, "num_particles", minimum=1) * int(base.num_uniforms)


def draw_particles(uniforms, base, num_particles: int) -> np.ndarray:
    """``num_particles`` independent draws from ``base``, deterministic given ``uniforms``.

    ``uniforms`` ``(num_base_uniforms(base, N),)``; row ``n`` of ``uniforms.reshape(N, k)`` draws particle ``n``.
    """
    uniforms = check_uniforms(uniforms, num_base_uniforms(base, num_particles))
    return np.asarray(base.sample(uniforms.reshape(num_particles, int(base.num_uniforms))))


def log_normalizer_estimate(log_weights) -> float:
    r""":math:`\log\hat Z = \operatorname{logsumexp}(\log w) - \log N` (``-inf`` if every weight is 0)."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    return float(logsumexp(log_weights) - np.log(log_weights.shape[-1]))


def effective_sample_size(log_weights) -> float:
    r"""Kong's :math:`(\sum_n w_n)^2 / \sum_n w_n^2`, in log space (0 when every weight is 0)."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    if np.all(log_weights == -np.inf):
        return 0.0
    return float(np.exp(2.0 * logsumexp(log_weights) - logsumexp(2.0 * log_weights)))


def log_normalizer_variance(log_weights) -> float:
    r"""Delta-method variance of :math:`\log\hat Z`, :math:`\widehat{\mathrm{Var}}(\hat Z)/\hat Z^2`.

    It equals :math:`(N/\mathrm{ESS} - 1)/(N - 1)`.

    This is :math:`s^2 / (N \bar w^2)` with :math:`s^2` the unbiased sample variance of the weights:
    an estimate, as unreliable as the ESS when the weights are heavy-tailed.
    """
    log_weights = np.asarray(log_weights, dtype=np.float64)
    num_particles = log_weights.shape[-1]
    ess = effective_sample_size(log_weights)
    if num_particles < 2 or ess == 0.0:
        return float("nan")
    return float((num_particles / ess - 1.0) / (num_particles - 1))


def normalised_weights(log_weights) -> np.ndarray:
    r"""Self-normalised :math:`W_n = w_n / \sum_m w_m` (summing to 1)."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    return np.exp(log_weights - logsumexp(log_weights))


def _evaluate(function, states, name: str, allow_nan: bool = False) -> np.ndarray:
    """``function(states)`` ``(N,)``, checked: never ``+inf``; NaN only where ``allow_nan`` (a proposal,
    which the MH step then rejects)."""
    values = np.asarray(function(states), dtype=np.float64).reshape(-1)
    if values.shape != (len(states),):
        raise ValueError(f"{name} must return one value per state, shape ({len(states)},), got {values.shape}")
    if np.any(values == np.inf) or (not allow_nan and np.any(np.isnan(values))):
        raise ValueError(f"{name} returned +inf or NaN; log-densities must be finite or -inf")
    return values


def init(x0, log_prob_fn, base, proposal=None) -> AISState:
    r"""The particle system at :math:`\beta_0 = 0`: particles ``x0`` ``(N,) + state_shape``, weights 1.

    ``x0`` must be independent draws from ``base`` (:func:`draw_particles`, or ``sample(..., x0=None)``);
    otherwise :math:`\mathbb{E}[w] = Z` does not hold. Evaluates ``log_prob_fn`` and ``base.log_prob``
    once; every particle needs :math:`p_0(x) > 0`. ``proposal`` is not needed here (the target is).
    """
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
    if not hasattr(base, "log_prob") or not hasattr(base, "sample"):
        raise TypeError("base must be an independent proposal with sample(uniforms) and log_prob(states)")
    x = np.asarray(x0)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError("x0 must hold at least one particle, shape (N,) + state_shape")
    log_prob = _evaluate(log_prob_fn, x, "log_prob_fn")
    log_base_prob = _evaluate(base.log_prob, x, "base.log_prob")
    if np.any(log_base_prob == -np.inf):
        raise ValueError("every particle of x0 needs base.log_prob > -inf: x0 must be draws from base")
    return AISState(x, log_prob, log_base_prob, np.zeros(x.shape[0]), 0.0)


def num_uniforms(proposal, num_particles: int) -> int:
    """Uniforms per rung: one move's for each particle (an MH step's: the proposal's, then the accept
    uniform; a :class:`GibbsMove`'s: 2 for a random-scan step, ``length`` for a sweep)."""
    return check_int(num_particles, "num_particles", minimum=1) * move_num_uniforms(proposal)


class _Bridge:
    r""":math:`\log\gamma_\beta` as a batched ``log_prob_fn`` for the MH step, remembering the parts.

    The MH step evaluates its ``log_prob_fn`` once, at the proposal; the particle needs both parts,
    :math:`\log\rho(y)` and :math:`\log p_0(y)`, for its next weight, so they are kept rather than
    recomputed.
    """

    def __init__(self, log_prob_fn, base, beta):
        self.log_prob_fn, self.base, self.beta = log_prob_fn, base, beta
        self.parts = None

    def __call__(self, states):
        log_prob = _evaluate(self.log_prob_fn, states, "log_prob_fn", allow_nan=True)
        log_base_prob = _evaluate(self.base.log_prob, states, "base.log_prob", allow_nan=True)
        self.parts = (log_prob, log_base_prob)
        return intermediate_log_prob(log_base_prob, log_prob, self.beta)


class _BridgeConditional:
    r"""The conditionals of :math:`\gamma_\beta` as a Gibbs ``conditional_log_probs``, remembering the parts.

    Called with ``(states (M, L), position)``, it writes each token ``v`` at ``position`` and evaluates
    :math:`\log\gamma_\beta` there: ``(M, V)``, unnormalised (the Gibbs step normalises). The last
    call's :math:`\log\rho` and :math:`\log p_0` of every candidate are kept: the sequence a Gibbs step
    returns is one of them (the last site it updated), so the particle's next weight needs no new
    evaluation.
    """

    def __init__(self, log_prob_fn, base, beta: float, num_tokens: int):
        self.log_prob_fn, self.base, self.beta, self.num_tokens = log_prob_fn, base, beta, num_tokens
        self.position, self.parts = None, None

    def __call__(self, states, position):
        states = np.asarray(states)
        num_states, length = states.shape
        candidates = np.repeat(states[:, None, :], self.num_tokens, axis=1)  # (M, V, L)
        candidates[:, :, position] = np.arange(self.num_tokens)
        flat = candidates.reshape(num_states * self.num_tokens, length)  # (M V, L)
        log_prob = _evaluate(self.log_prob_fn, flat, "log_prob_fn").reshape(num_states, self.num_tokens)
        log_base_prob = _evaluate(self.base.log_prob, flat, "base.log_prob").reshape(num_states, self.num_tokens)
        self.position, self.parts = position, (log_prob, log_base_prob)
        rows = intermediate_log_prob(log_base_prob, log_prob, self.beta)  # (M, V)
        # Every candidate at -inf only happens at a particle gamma_beta gives no mass (its weight is 0
        # from this rung on): it stays where it is, so that the Gibbs step has a distribution to draw from.
        stuck = np.all(rows == -np.inf, axis=1)  # (M,)
        if np.any(stuck):
            rows = rows.copy()
            rows[stuck] = np.where(np.arange(self.num_tokens) == states[stuck, position][:, None], 0.0, -np.inf)
        return rows


def bridge_conditional_log_probs(log_prob_fn, base, beta: float, num_tokens: int):
    r"""The Gibbs conditionals of :math:`\gamma_\beta = p_0^{1-\beta}\rho^\beta` over sequences, unnormalised.

    Returns a callable ``(states (M, L), position) -> (M, num_tokens)`` for
    :func:`textsampling.reference.gibbs.step`: :math:`\log\gamma_\beta` of each state with ``v`` written
    at ``position``, for every token ``v`` (:func:`intermediate_log_prob` of the two laws there). A state
    whose every candidate has :math:`\gamma_\beta = 0` gets the row "stay" (0 at its own token, ``-inf``
    elsewhere): the weight of such a particle is already 0, and the kernel there does not matter.
    """
    return _BridgeConditional(log_prob_fn, base, float(beta), check_int(num_tokens, "num_tokens", minimum=1))


def _gibbs_moves(per_particle, state: AISState, log_prob_fn, base, move: GibbsMove, beta: float):
    """One Gibbs step on gamma_beta per particle: the new particles and their cached log-densities."""
    num_particles = state.x.shape[0]
    xs, log_probs, log_base_probs = [], np.empty(num_particles), np.empty(num_particles)
    for n in range(num_particles):
        conditional = _BridgeConditional(log_prob_fn, base, beta, move.num_tokens)
        moved, _ = gibbs.step(per_particle[n], GibbsState(state.x[n]), conditional, scan=move.scan)
        xs.append(moved.x)
        # The new sequence is the last call's candidate at the token now written at its position.
        token = moved.x[conditional.position]
        log_probs[n], log_base_probs[n] = conditional.parts[0][0, token], conditional.parts[1][0, token]
    x = np.stack(xs)
    return x, x.copy(), np.zeros(num_particles), np.ones(num_particles, dtype=bool), log_probs, log_base_probs


def _mh_moves(per_particle, state: AISState, log_prob_fn, base, proposal, beta: float):
    """One MH step on gamma_beta per particle: the new particles, the MH decisions, the cached log-densities."""
    num_particles = state.x.shape[0]
    current = intermediate_log_prob(state.log_base_prob, state.log_prob, beta)
    xs, log_probs, log_base_probs = [], state.log_prob.copy(), state.log_base_prob.copy()
    proposals, log_accept_probs, accepted = [], np.empty(num_particles), np.zeros(num_particles, dtype=bool)
    for n in range(num_particles):
        bridge = _Bridge(log_prob_fn, base, beta)
        particle = MHState(state.x[n], float(current[n]))
        moved, info = metropolis_hastings.step(per_particle[n], particle, bridge, proposal)
        xs.append(moved.x)
        proposals.append(info.proposal)
        log_accept_probs[n], accepted[n] = info.log_accept_prob, info.accepted
        if info.accepted:
            log_probs[n], log_base_probs[n] = bridge.parts[0][0], bridge.parts[1][0]
    return np.stack(xs), np.stack(proposals), log_accept_probs, accepted, log_probs, log_base_probs


def step(uniforms, state: AISState, log_prob_fn, base, proposal, *, beta: float):
    r"""One rung for every particle: reweight at the current particles, then one move at ``beta``.

    Parameters
    ----------
    uniforms : array_like, shape (num_uniforms(proposal, N),)
        Row ``n`` of ``uniforms.reshape(N, k)`` drives particle ``n``'s move.
    state : AISState
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``
        The unnormalised target :math:`\log\rho`.
    base : independent proposal (``sample``, ``log_prob``: normalised :math:`\log p_0`)
    proposal : MH proposal (:mod:`textsampling.reference.proposals`) or :class:`GibbsMove`
        The move: an MH step with this proposal, or a Gibbs step on the conditionals of :math:`\gamma_\beta`.
    beta : float in [state.beta, 1]
        :math:`\beta_k`; the weight gains :math:`(\beta_k - \beta_{k-1})(\log\rho - \log p_0)` at the
        particles *before* the move, and the move leaves :math:`\gamma_{\beta_k}` invariant.

    Returns
    -------
    (AISState, AISInfo)
    """
    beta = float(check_betas([beta], 1, start=state.beta)[0])
    num_particles = state.x.shape[0]
    uniforms = check_uniforms(uniforms, num_uniforms(proposal, num_particles))
    per_particle = uniforms.reshape(num_particles, move_num_uniforms(proposal))
    # The weight first, from the particles gamma_{k-1} was approximating (Neal 2001, eq. 4).
    increment = log_weight_increment(state.log_base_prob, state.log_prob, state.beta, beta)
    log_weight = state.log_weight + increment
    # Then the move, one particle at a time: a kernel that leaves gamma_k = p0^(1 - beta) rho^beta invariant.
    moves = _gibbs_moves if isinstance(proposal, GibbsMove) else _mh_moves
    x, proposals, log_accept_probs, accepted, log_probs, log_base_probs = moves(
        per_particle, state, log_prob_fn, base, proposal, beta
    )
    new_state = AISState(x, log_probs, log_base_probs, log_weight, beta)
    info = AISInfo(
        proposals,
        log_accept_probs,
        accepted,
        increment,
        beta,
        log_normalizer_estimate(log_weight),
        effective_sample_size(log_weight),
    )
    return new_state, info


def resample(uniforms, state: AISState, scheme: str = "systematic") -> AISState:
    r"""The resampling step of tempered SMC, between two rungs: AIS plus this is tempered SMC.

    Particles are drawn by ancestor (:func:`textsampling.reference.resampling.ancestors` of ``scheme`` on
    the current weights, fed ``uniforms``, ``resampling.num_uniforms(N, scheme)`` of them) with their
    cached ``log_prob`` and ``log_base_prob``; every weight becomes the mean weight,
    :math:`\log w_n = \log\hat Z_k`, so that :func:`log_normalizer_estimate` after the last rung is
    the SMC estimate :math:`\prod_k \overline{w}_k` and stays unbiased (Del Moral, Doucet & Jasra 2006;
    Chopin & Papaspiliopoulos 2020, ch. 17). ``beta`` is kept: the next rung continues the ladder.
    Resample when the ESS falls below a fraction of ``N`` (:func:`effective_sample_size`), not at
    every rung: each resampling adds noise of its own.
    """
    from textsampling.reference import resampling

    parents = resampling.ancestors(uniforms, state.log_weight, scheme)  # (N,)
    mean_weight = np.full(state.log_weight.shape, log_normalizer_estimate(state.log_weight))  # (N,)
    return state._replace(x=np.asarray(state.x)[parents], log_prob=np.asarray(state.log_prob)[parents],
                          log_base_prob=np.asarray(state.log_base_prob)[parents], log_weight=mean_weight)


def sample(
    rng, x0, log_prob_fn, base, proposal, num_steps: int, *, first_step: int = 0, betas, num_particles=None
) -> AISTrace:
    r"""Run AIS: ``num_steps`` rungs, rung ``t`` at :math:`\beta =` ``betas[t]``.

    Parameters
    ----------
    rng : numpy.random.Generator or CounterGenerator (one run of ``N`` particles)
    x0 : array_like, shape (N,) + state_shape, or None
        Independent draws from ``base``; ``None`` draws ``num_particles`` of them with the uniforms of
        step ``first_step`` (the rungs then use steps ``first_step + 1 ..``).
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``, the unnormalised :math:`\log\rho`
    base : independent proposal, the normalised start :math:`p_0`
    proposal : MH proposal of the moves, or a :class:`GibbsMove` (Gibbs moves on sequences)
    num_steps : int
        :math:`K`, the number of rungs.
    first_step : int
    betas : array_like, shape (num_steps,)
        The ladder :math:`\beta_1..\beta_K`, non-decreasing in ``[0, 1]`` (:func:`power_schedule`);
        :math:`\beta_K = 1` for an estimate of :math:`Z` itself.
    num_particles : int, optional
        ``N`` when ``x0`` is None.

    Returns
    -------
    AISTrace
        ``final_state.log_weight`` are the AIS log-weights; ``infos.log_normalizer[-1]`` is
        :math:`\log\hat Z` (:func:`log_normalizer_estimate`).
    """
    num_steps = check_int(num_steps, "num_steps")
    first_step = check_int(first_step, "first_step")
    betas = check_betas(betas, num_steps)
    if x0 is None:
        if num_particles is None:
            raise ValueError("num_particles is required when x0 is None (the particles are drawn from base)")
        x0 = draw_particles(draw_uniforms(rng, first_step, num_base_uniforms(base, num_particles)), base, num_particles)
        first_step += 1
    elif num_particles is not None and np.asarray(x0).shape[0] != num_particles:
        raise ValueError(f"x0 holds {np.asarray(x0).shape[0]} particles but num_particles={num_particles}")
    state = init(x0, log_prob_fn, base, proposal)

    def step_fn(uniforms, state, t):
        return step(uniforms, state, log_prob_fn, base, proposal, beta=betas[t])

    return chain.run(rng, state, step_fn, num_uniforms(proposal, state.x.shape[0]), num_steps, first_step=first_step)
