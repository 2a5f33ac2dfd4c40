r"""Wrong resamplers and wrong SMC steps, beside the correct ones of :mod:`textsampling.reference`.

Resampling must keep :math:`\mathbb E[O_i] = N W_i` (:mod:`textsampling.reference.resampling`); SMC must
keep :math:`\mathbb E[\hat Z] = Z` (:mod:`textsampling.reference.smc`). Each bug below breaks one of the
two, and the exact tests (``tests/test_reference_resampling.py``, ``tests/test_reference_smc.py``)
catch it:

* :func:`systematic_without_division` — systematic resampling with the comb :math:`n/N + u` instead of
  :math:`(n + u)/N`: the points run past 1 and pile onto the last particle;
* :func:`multinomial_unnormalised` — the uniform compared with the *unnormalised* cumulative weights
  :math:`\sum_{i \le k} \exp(\log w_i - \max \log w)`, not divided by their total: the first particle
  whose cumulative sum passes 1 gets every draw above it;
* :func:`step_without_weight_reset` — an SMC step that resamples but keeps each particle's old weight
  (the ancestor's) instead of resetting every weight to the mean: weights are counted twice, once by
  the resampling and once in the weight, and :math:`\hat Z` is biased;
* :func:`step_guided_without_normaliser` — the guided proposal :math:`q(v \mid x) \propto p(v \mid x)
  G(xv)` used with the *bootstrap* weight :math:`G(xv)/G(x)` instead of its normaliser
  :math:`\sum_v p(v \mid x) G(xv) / G(x)`: the weight ignores how much mass the proposal removed.

The SMC bugs are step functions with the signature of :func:`textsampling.reference.smc.step`, so they
run inside :func:`textsampling.reference.smc.sample` (its ``step_fn`` argument) and the exact
enumeration of the tests. References: Chopin & Papaspiliopoulos (2020), chs. 9–10; Lew et al. (2023),
"Sequential Monte Carlo steering of large language models using probabilistic programs".
"""

from __future__ import annotations

import numpy as np

from textsampling.reference import resampling, smc

__all__ = [
    "systematic_without_division",
    "multinomial_unnormalised",
    "step_without_weight_reset",
    "step_guided_without_normaliser",
    "RESAMPLER_BUGS",
    "STEP_BUGS",
]


def systematic_without_division(uniforms, log_weights, scheme: str = "systematic") -> np.ndarray:
    """BUG: systematic resampling at the points :math:`n/N + u` (the uniform not divided by ``N``)."""
    log_weights = resampling.check_log_weights(log_weights)
    num_particles = log_weights.shape[0]
    wrong_points = np.arange(num_particles) / num_particles + np.asarray(uniforms, dtype=np.float64)[0]
    return resampling.inverse_cdf(np.minimum(wrong_points, 1.0), log_weights)


def multinomial_unnormalised(uniforms, log_weights, scheme: str = "multinomial") -> np.ndarray:
    """BUG: multinomial resampling by the first ``k`` whose *unnormalised* cumulative weight exceeds ``u``."""
    log_weights = resampling.check_log_weights(log_weights)
    cumulative = np.cumsum(np.exp(log_weights - np.max(log_weights)))  # not divided by its total
    indices = np.searchsorted(cumulative, np.asarray(uniforms, dtype=np.float64)[: log_weights.shape[0]], "right")
    return np.minimum(indices, log_weights.shape[0] - 1).astype(np.int64)


#: name -> (wrong ``ancestors`` function, the scheme it pretends to be).
RESAMPLER_BUGS = {
    "systematic-without-division": (systematic_without_division, "systematic"),
    "multinomial-unnormalised": (multinomial_unnormalised, "multinomial"),
}


def _reset_weights(state, info):
    """The weights right after the step's resampling (before the tokens' increments)."""
    if info.resampled:
        return np.full(state.log_weight.shape, smc.log_evidence(state))
    return state.log_weight.copy()


def step_without_weight_reset(uniforms, state, model, log_potential, **params):
    """BUG: resamples, but each particle keeps its ancestor's weight instead of the mean weight."""
    new_state, info = smc.step(uniforms, state, model, log_potential, **params)
    kept = state.log_weight[info.ancestors] + info.log_incremental_weight
    new_state = new_state._replace(log_weight=kept)
    return new_state, info._replace(log_evidence=smc.log_evidence(new_state))


def step_guided_without_normaliser(uniforms, state, model, log_potential, **params):
    """BUG: the guided proposal, weighted as if it were the bootstrap one, :math:`(G\\psi)(xv)/(G\\psi)(x)`."""
    params = dict(params, proposal="guided")
    new_state, info = smc.step(uniforms, state, model, log_potential, **params)
    old = state.log_potential[info.ancestors]
    moved = ~state.finished[info.ancestors]
    with np.errstate(invalid="ignore"):
        wrong = np.where(moved & (old > -np.inf), new_state.log_potential - old, 0.0)
    wrong = np.where(moved & (old == -np.inf), -np.inf, wrong)
    new_state = new_state._replace(log_weight=_reset_weights(state, info) + wrong)
    return new_state, info._replace(log_incremental_weight=wrong, log_evidence=smc.log_evidence(new_state))


#: name -> (wrong SMC step, the proposal it is run with).
STEP_BUGS = {
    "smc-no-weight-reset": (step_without_weight_reset, "bootstrap"),
    "smc-guided-without-normaliser": (step_guided_without_normaliser, "guided"),
}
