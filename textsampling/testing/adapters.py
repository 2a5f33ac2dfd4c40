"""Step functions ``step_fn(rng, state) -> state`` built from the reference kernels, for the black-box checks.

Each adapter draws the uniforms of one step from the NumPy generator the harness passes
(:func:`textsampling.randomness.draw_uniforms`) and calls the reference module's deterministic
``step(uniforms, state, ...)`` — the very code users run — so a black-box check of the adapter is a
check of the reference sampler.
"""

from __future__ import annotations

import numpy as np

from textsampling.randomness import draw_uniforms
from textsampling.reference import annealing, gibbs, metropolis_hastings

__all__ = ["metropolis_hastings_step_fn", "annealing_step_fn", "gibbs_step_fn", "independent_sampler_step_fn"]


def metropolis_hastings_step_fn(log_prob_fn, proposal):
    """One MH step (:func:`textsampling.reference.metropolis_hastings.step`) from a state.

    Parameters
    ----------
    log_prob_fn : callable, ``(N,) + state_shape -> (N,)``
    proposal : MH proposal (``num_uniforms``, ``propose``)
    """
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
    num_uniforms = metropolis_hastings.num_uniforms(proposal)

    def step_fn(rng, x):
        state = metropolis_hastings.init(x, log_prob_fn, proposal)
        new_state, _ = metropolis_hastings.step(draw_uniforms(rng, 0, num_uniforms), state, log_prob_fn, proposal)
        return new_state.x

    return step_fn


def annealing_step_fn(log_prob_fn, proposal, temperature: float):
    """One simulated-annealing step at a fixed ``temperature`` (an MH step on :math:`\\rho^{1/T}`)."""
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
    num_uniforms = annealing.num_uniforms(proposal)

    def step_fn(rng, x):
        state = annealing.init(x, log_prob_fn, proposal)
        uniforms = draw_uniforms(rng, 0, num_uniforms)
        new_state, _ = annealing.step(uniforms, state, log_prob_fn, proposal, temperature=temperature)
        return new_state.x

    return step_fn


def gibbs_step_fn(conditional_log_probs, scan: str = "random"):
    """A random-scan Gibbs step or one systematic sweep (:func:`gibbs.step` with ``scan``)."""
    if scan not in gibbs.SCANS:
        raise ValueError(f"scan must be one of {gibbs.SCANS}, got {scan!r}")

    def step_fn(rng, x):
        x = np.asarray(x)
        uniforms = draw_uniforms(rng, 0, gibbs.num_uniforms(scan, x.shape[0]))
        new_state, _ = gibbs.step(uniforms, gibbs.init(x, conditional_log_probs), conditional_log_probs, scan=scan)
        return new_state.x

    return step_fn


def independent_sampler_step_fn(draw_one):
    """Treat an exact sampler as a kernel that ignores its state: ``P(x, y) = r(y)``.

    ``draw_one(rng) -> state``. One-step invariance then tests the sampler's law directly.
    """
    if not callable(draw_one):
        raise TypeError(f"draw_one must be callable as draw_one(rng), got {type(draw_one).__name__}")

    def step_fn(rng, x):
        return np.asarray(draw_one(rng))

    return step_fn
