r"""The decision half of the torch MH step in one compiled loop on the CPU (numba).

After the proposal and the target have run, :func:`textsampling.torch.metropolis_hastings.step` needs,
per chain :math:`b`, the acceptance function of the reference,

.. math::
    \log \alpha_b = \min\bigl(0,\ (\log \tilde\pi(y_b) - \log \tilde\pi(x_b)) + \log q_b\bigr),
    \qquad \log\alpha_b = 0 \text{ where } \log\tilde\pi(x_b) = -\infty < \log\tilde\pi(y_b) < \infty,

the decision :math:`\log u_b < \log\alpha_b` and the new state and log-density, chosen whole. As torch
operations these are about twenty passes over the batch, each with its own dispatch cost, and the value
checks three more with a reduction each: timed apart at 1e4 chains on one CPU thread, about 130 µs a step
against 46 µs for the uniform proposal and the categorical target together (the minimum of 5 repeats).
Here they are one loop over the chains: per chain the operations of the torch path in its order (a
subtraction, an addition, a comparison with 0 that keeps NaN and -0.0 as ``clamp(max=0)`` does), hence
the same decisions, states and log-densities, bit for bit, and the same log acceptance probabilities.
Only which NaN comes out of a sum of two NaNs may differ in sign: IEEE 754 leaves it open, x86 returns
one operand's, and which one depends on how each compiler emitted the instruction. The states are
copied as integers of their width, so every value, NaN payloads included, is kept; the log-densities
are selected whole (no arithmetic on them).
``log u`` comes in computed by ``torch.log``: numba's logarithm is another implementation, which could
differ in the last bit.

tests/test_twin_mh_numba.py checks it against the torch operations, bit for bit, on the edge cases
(NaN, :math:`\pm\infty`, -0.0, impossible starts, tempered chains, float and integer states).

This module imports numba, an optional dependency (``pip install "textsampling[fast]"``);
:mod:`textsampling.torch.metropolis_hastings` imports it only when it is installed.
"""

import numpy as np

from textsampling.torch._philox_numba import jit_cached

__all__ = ["accept", "accept_rows"]


@jit_cached(nogil=True, boundscheck=False, inline="always")
def _values_outside(uniforms, log_prob_y):
    """Whether some uniform is NaN or outside (0, 1); whether some ``log_prob_y`` is ``+inf``."""
    uniform_outside = False
    for m in range(uniforms.shape[0]):
        value = uniforms[m]
        uniform_outside |= not ((value > 0) & (value < 1))  # NaN compares False: outside (& vectorises)
    proposal_infinite = False
    for b in range(log_prob_y.shape[0]):
        proposal_infinite |= log_prob_y[b] == np.inf
    return uniform_outside, proposal_infinite


@jit_cached(nogil=True, boundscheck=False, inline="always")
def _decide(
    log_u,
    log_prob_x_tempered,
    log_prob_y_tempered,
    log_q_ratio,
    log_prob_x,
    log_prob_y,
    check_impossible_start,
    log_alpha,
    accepted,
    new_log_prob,
):
    """Write the acceptance function, the decision and the kept log-density of each chain (all ``(B,)``)."""
    for b in range(log_u.shape[0]):
        # The torch path's order: (y - x) + log q, then clamp(max=0), which keeps NaN and -0.0.
        difference = (log_prob_y_tempered[b] - log_prob_x_tempered[b]) + log_q_ratio[b]
        log_alpha[b] = difference
        if difference > 0:
            log_alpha[b] = 0
        if check_impossible_start and log_prob_x_tempered[b] == -np.inf and abs(log_prob_y_tempered[b]) < np.inf:
            log_alpha[b] = 0
        accept = log_u[b] < log_alpha[b]  # NaN compares False: an undefined ratio rejects
        accepted[b] = accept
        # A select, not a branch: a branch on MH's coin flips mispredicts about half the time.
        new_log_prob[b] = log_prob_y[b] if accept else log_prob_x[b]


@jit_cached(nogil=True, boundscheck=False)
def accept(
    uniforms,
    log_u,
    log_prob_x_tempered,
    log_prob_y_tempered,
    log_q_ratio,
    log_prob_x,
    log_prob_y,
    x_bits,
    y_bits,
    check_impossible_start,
    validate,
    log_alpha,
    accepted,
    new_x_bits,
    new_log_prob,
):
    """One MH decision per chain whose state is one number (state_shape ``()``).

    Parameters
    ----------
    uniforms : numpy.ndarray, float, shape (M,)
        Every uniform of the step, in any order: read only for the value check.
    log_u : numpy.ndarray, float, shape (B,)
        ``log`` of the deciding uniforms.
    log_prob_x_tempered, log_prob_y_tempered : numpy.ndarray, float, shape (B,)
        The log-densities in the acceptance function (divided by the temperature, or the untempered ones).
    log_q_ratio : numpy.ndarray, float, shape (B,)
        The proposal's Hastings terms.
    log_prob_x, log_prob_y : numpy.ndarray, float, shape (B,)
        The untempered log-densities, of which the new state keeps one.
    x_bits, y_bits : numpy.ndarray, int32 or int64, shape (B,)
        The current and proposed states as integers of their width.
    check_impossible_start : bool
        Apply the impossible-start rule (a proposal without ``finite_log_q_ratio``).
    validate : bool
        Check that every uniform lies in (0, 1) and no ``log_prob_y`` is ``+inf``.
    log_alpha, accepted, new_x_bits, new_log_prob : numpy.ndarray, shape (B,)
        Written: the log acceptance probabilities, the decisions (bool), the new states (as integers of
        their width) and their log-densities. The caller allocates them (with torch's allocator, which
        its profiler counts).

    Returns
    -------
    (bool, bool)
        With ``validate``, whether some uniform is NaN or outside (0, 1) and whether some ``log_prob_y``
        is ``+inf``; otherwise ``(False, False)``.
    """
    uniform_outside, proposal_infinite = _values_outside(uniforms, log_prob_y) if validate else (False, False)
    _decide(
        log_u,
        log_prob_x_tempered,
        log_prob_y_tempered,
        log_q_ratio,
        log_prob_x,
        log_prob_y,
        check_impossible_start,
        log_alpha,
        accepted,
        new_log_prob,
    )
    # The states in a loop of their own, so that the loop of _decide stays one vectorised pass.
    for b in range(x_bits.shape[0]):
        new_x_bits[b] = y_bits[b] if accepted[b] else x_bits[b]
    return uniform_outside, proposal_infinite


@jit_cached(nogil=True, boundscheck=False)
def accept_rows(
    uniforms,
    log_u,
    log_prob_x_tempered,
    log_prob_y_tempered,
    log_q_ratio,
    log_prob_x,
    log_prob_y,
    x_bits,
    y_bits,
    check_impossible_start,
    validate,
    log_alpha,
    accepted,
    new_x_bits,
    new_log_prob,
):
    """:func:`accept` for states of several numbers: ``x_bits``, ``y_bits``, ``new_x_bits`` ``(B, D)``."""
    uniform_outside, proposal_infinite = _values_outside(uniforms, log_prob_y) if validate else (False, False)
    _decide(
        log_u,
        log_prob_x_tempered,
        log_prob_y_tempered,
        log_q_ratio,
        log_prob_x,
        log_prob_y,
        check_impossible_start,
        log_alpha,
        accepted,
        new_log_prob,
    )
    for b in range(x_bits.shape[0]):
        source = y_bits if accepted[b] else x_bits
        for d in range(x_bits.shape[1]):
            new_x_bits[b, d] = source[b, d]
    return uniform_outside, proposal_infinite
