r"""Metropolis–Hastings with masked-LM proposals (Goyal, Dyer & Berg-Kirkpatrick, ICLR 2022).

BERT's conditionals need not belong to any joint distribution, so MLM Gibbs
(:mod:`textsampling.reference.mlm_gibbs`) has *some* stationary law, not a known one. Goyal et al.
(arXiv:2106.02736) keep the masked conditional as a *proposal* and correct it with MH towards an
explicit energy :math:`E`, so the chain targets :math:`\pi(x) \propto \exp(-E(x))` exactly
(part 3 of the series, kexue.fm/archives/8119). For a sequence of length :math:`n`:

.. math::
    i \sim \mathrm{Uniform}\{0..n-1\}, \quad v \sim q_i(\cdot) = p_{\mathrm{MLM}}(x_i = \cdot \mid x_{-i}),
    \quad y = x \text{ with } y_i = v,

    \log\alpha = \min\Bigl(0,\ E(x) - E(y) + \log q_i(x_i) - \log q_i(v)\Bigr).

The Hastings term is exact and simple: the reverse move picks the same position (probability
:math:`1/n` both ways) and conditions on :math:`y_{-i} = x_{-i}`, the *same* context, so the same
:math:`q_i` gives both directions. Energies:

* ``"pll"`` — pseudo-log-likelihood :math:`E(x) = -\sum_t \log p(x_t \mid x_{-t})`;
* ``"raw_logit"`` — :math:`E(x) = -\sum_t \mathrm{logit}_t(x_{-t})[x_t]`, the unnormalised scores
  (needs ``model.masked_logits``);
* a callable ``energy_fn(states (N, L)) -> (N,)``, e.g. ``-causal_lm.sequence_log_probs`` to target
  a causal LM's joint (with the bigram oracle: the exact joint, the invariance test).

The chain's state keeps :math:`\log\pi(x) = -E(x)` up to a constant as ``log_prob`` (the field every
sampler's state names its unnormalised log target), so the acceptance is that of
:func:`textsampling.reference.metropolis_hastings.log_accept_ratio` with :math:`\log\rho = -E`.
Every conditional is asked with ``[MASK]`` put at the position asked about (the caller masks, as in
:mod:`textsampling.reference.mlm_gibbs`), for the proposal and for each term of the PLL.

Uniforms: ``uniforms[0]`` the position (``floor(u n)``), ``uniforms[1]`` the token (inverse CDF),
``uniforms[2]`` the accept decision (accept iff :math:`\log u < \log\alpha`; NaN rejects).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from textsampling._validation import check_uniforms
from textsampling.lm.tokens import check_sequence, sequence_length, with_mask_at
from textsampling.randomness import categorical_from_uniforms, integer_from_uniform
from textsampling.reference import chain
from textsampling.reference.metropolis_hastings import log_accept_ratio
from textsampling.reference.mlm_gibbs import check_masked_model, conditional_log_probs, sampling_log_probs

__all__ = [
    "ENERGIES",
    "NUM_UNIFORMS",
    "num_uniforms",
    "MLMMHState",
    "MLMMHInfo",
    "MLMMHTrace",
    "energy",
    "init",
    "proposal_log_probs",
    "step",
    "sample",
    "transition_matrix",
]

ENERGIES = ("pll", "raw_logit")
#: position, token, accept.
NUM_UNIFORMS = 3

#: The run of a chain: :class:`textsampling.reference.chain.Trace` (``states.x`` ``(T, L)``,
#: ``states.log_prob`` ``(T,)``, ``infos.accepted`` ``(T,)`` ...).
MLMMHTrace = chain.Trace


def num_uniforms() -> int:
    """Uniforms per step: position, token, accept (:data:`NUM_UNIFORMS`)."""
    return NUM_UNIFORMS


class MLMMHState(NamedTuple):
    """Current sequence (PAD-padded) and its log target :math:`\\log\\pi(x) = -E(x)` (cached)."""

    x: np.ndarray
    log_prob: float


class MLMMHInfo(NamedTuple):
    """The ``position`` resampled, the ``proposal`` :math:`y`, :math:`\\log\\alpha` and the decision."""

    position: np.int64
    proposal: np.ndarray
    log_accept_prob: float
    accepted: bool


def check_energy(energy_kind):
    if callable(energy_kind) or energy_kind in ENERGIES:
        return energy_kind
    raise ValueError(
        f"energy_kind must be one of {ENERGIES} or a callable energy_fn(states) -> (N,), got {energy_kind!r}"
    )


def energy(model, x, energy_kind="pll") -> float:
    """:math:`E(x)` of one sequence: PLL, raw-logit, or ``energy_kind(x[None])[0]`` for a callable."""
    energy_kind = check_energy(energy_kind)
    x = np.asarray(x, dtype=np.int64)
    if callable(energy_kind):
        value = np.asarray(energy_kind(x[None]), dtype=np.float64).reshape(-1)
        if value.shape != (1,):
            raise ValueError(f"energy_fn must return one value per state, shape (N,), got {value.shape}")
        return float(value[0])
    length = sequence_length(x)
    positions = np.arange(length)
    rows = with_mask_at(np.repeat(x[None], length, axis=0), positions, model.mask_token_id)  # (n, L): row t masks t
    if energy_kind == "pll":
        scores = model.masked_log_probs(rows, positions)  # (n, V)
    else:
        if not hasattr(model, "masked_logits"):
            raise ValueError("energy_kind='raw_logit' needs model.masked_logits (unnormalised MLM scores)")
        scores = model.masked_logits(rows, positions)
    return float(-np.sum(np.asarray(scores)[positions, x[:length]]))


def init(x0, model, *, energy_kind="pll") -> MLMMHState:
    """The state at ``x0`` with its log target :math:`-E(x_0)`."""
    x = check_sequence(x0, "x0", max_length=check_masked_model(model).max_length)
    return MLMMHState(x, -energy(model, x, energy_kind))


def proposal_log_probs(model, x, position: int) -> np.ndarray:
    """Normalised :math:`\\log q_i(v)`: the masked conditional with special ids removed, ``(V,)``."""
    row = sampling_log_probs(conditional_log_probs(model, x, position), model.special_token_ids)
    return row - logsumexp(row)


def _accept(log_prob, proposal_log_prob, log_q_forward, log_q_reverse):
    # Target exp(-E): log rho = -E; the position choice 1/n cancels (same n both ways).
    return log_accept_ratio(log_prob, proposal_log_prob, log_q_reverse - log_q_forward)


def step(uniforms, state: MLMMHState, model, *, energy_kind="pll"):
    """One MH step, deterministic given ``uniforms`` (shape (3,)).

    Parameters
    ----------
    uniforms : array_like, shape (3,)
    state : MLMMHState
    model : MaskedLanguageModel
    energy_kind : {"pll", "raw_logit"} or callable
        The ``log_prob`` of ``state`` must have been computed with the same kind (see :func:`init`).

    Returns
    -------
    (MLMMHState, MLMMHInfo)
    """
    uniforms = check_uniforms(uniforms, NUM_UNIFORMS)
    x = check_sequence(state.x, "state.x", max_length=model.max_length)
    position = int(integer_from_uniform(uniforms[0], sequence_length(x)))
    log_q = proposal_log_probs(model, x, position)
    token = int(categorical_from_uniforms(uniforms[1:2], log_q)[0])
    y = x.copy()
    y[position] = token
    proposal_log_prob = -energy(model, y, energy_kind)
    # Reverse move: same position, same context y_{-i} = x_{-i}, so the same q_i proposes x_i.
    log_alpha = _accept(state.log_prob, proposal_log_prob, log_q[token], log_q[x[position]])
    accepted = bool(np.log(uniforms[2]) < log_alpha)
    new_state = MLMMHState(y, proposal_log_prob) if accepted else state
    return new_state, MLMMHInfo(np.int64(position), y, float(log_alpha), accepted)


def sample(rng, x0, model, num_steps: int, *, first_step: int = 0, energy_kind="pll") -> MLMMHTrace:
    """Run ``num_steps`` steps from ``x0``: :func:`init` + :func:`textsampling.reference.chain.run`.

    Step ``t`` uses the 3 uniforms of step ``first_step + t``.

    Returns
    -------
    MLMMHTrace
        ``states.x`` ``(T, L)``, ``states.log_prob`` ``(T,)`` (:math:`-E`), ``infos`` as :class:`MLMMHInfo`.
    """
    check_energy(energy_kind)
    state = init(x0, model, energy_kind=energy_kind)

    def step_fn(uniforms, state, t):
        return step(uniforms, state, model, energy_kind=energy_kind)

    return chain.run(rng, state, step_fn, num_uniforms(), num_steps, first_step=first_step)


def transition_matrix(model, states, energy_kind="pll") -> np.ndarray:
    """Exact kernel on enumerated ``states`` (closed under single-token changes), same code as :func:`step`."""
    states = np.asarray(states, dtype=np.int64)
    index = {row.tobytes(): s for s, row in enumerate(states)}
    log_probs = np.array([-energy(model, x, energy_kind) for x in states])
    matrix = np.zeros((states.shape[0], states.shape[0]))
    for a, x in enumerate(states):
        length = sequence_length(x)
        for position in range(length):
            log_q = proposal_log_probs(model, x, position)
            for token in np.flatnonzero(log_q > -np.inf):
                y = x.copy()
                y[position] = token
                b = index[y.tobytes()]
                log_alpha = _accept(log_probs[a], log_probs[b], log_q[token], log_q[x[position]])
                if b != a and not np.isnan(log_alpha):
                    matrix[a, b] += np.exp(log_q[token] + log_alpha) / length
        matrix[a, a] = max(0.0, 1.0 - matrix[a].sum())
    return matrix
