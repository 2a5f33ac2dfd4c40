r"""A gallery of deliberately wrong samplers, each beside the correct one it imitates.

Every case is a :class:`~textsampling.testing.cases.SamplerCase` (the record
:mod:`textsampling.testing.faulty` returns too): a step function with the signature of one kind of
:mod:`textsampling.testing.conformance` (``step(rng, x, target)``, ``step(rng, x, lm)``, ...), a one-line
description of its bug, the built-in target it is checked on, and — where the buggy kernel can be written
down — its exact transition matrix, built from the *same* code as the step. With the matrix, the size of
the bug is known exactly: the one-step law from :math:`\pi` is :math:`\pi P`, and

.. math::
    \mathrm{TV}(\pi P, \pi) = \tfrac12 \sum_y \bigl| (\pi P)(y) - \pi(y) \bigr|

is how far one step moves an exact sample — what the one-step invariance test has to detect. A bug
that leaves :math:`\pi` invariant (a scan that skips a position) has TV 0 here and is caught by the
long-run test instead.

The bugs are those of published code and of SERIES.md's pitfalls: MH without the Hastings term or with it
inverted, acceptance on raw probabilities that underflow, annealing at the wrong sign, Gibbs from stale
or causal conditionals, a scan that skips a position, top-k or temperature presented as exact, and the
CGMH mistakes (position-choice ratio omitted, candidate list biased toward the current token, moves
accepted by a threshold, keyword *positions* protected instead of keyword occurrences). :data:`CORRECT`
holds the correct samplers of every kind (thin adapters over :mod:`textsampling.reference`), which must
pass.

Use::

    from textsampling.gallery import CASES
    from textsampling.testing import check_step
    case = CASES["mh-no-hastings"]
    report = check_step(case.step, case.kind, case.target, **case.options)
    print(report.format())            # fails

:data:`SMC_CASES` and :data:`TEMPERING_CASES` hold the wrong resamplers, SMC steps, AIS rungs and tempering
swaps, which the exact tests of those samplers catch (they are not kinds of ``textsampling check``).
"""

from __future__ import annotations

from textsampling.gallery import cgmh, correct, gibbs, metropolis, smc, tempering
from textsampling.gallery._case import exact_power, one_step_tv, stationary_target
from textsampling.testing.cases import SamplerCase

__all__ = [
    "SamplerCase", "CASES", "CORRECT", "SMC_CASES", "TEMPERING_CASES", "exact_power", "one_step_tv",
    "stationary_target",
]

#: name -> the wrong sampler (at least ten).
CASES: dict[str, SamplerCase] = {
    case.name: case for module in (metropolis, gibbs, cgmh) for case in module.CASES
}

#: name -> a correct sampler of some kind, on its default target.
CORRECT: dict[str, SamplerCase] = {case.name: case for module in (correct, cgmh) for case in module.CORRECT}

#: name -> a wrong resampler or SMC step (:mod:`textsampling.gallery.smc`). Not kinds of ``check``: a particle
#: system is not a one-state step; the exact tests of E[offspring] = N w and E[Z-hat] = Z catch them.
SMC_CASES: dict = {**smc.RESAMPLER_BUGS, **smc.STEP_BUGS}

#: name -> a wrong AIS rung or parallel-tempering swap (:mod:`textsampling.gallery.tempering`), caught by
#: the exact tests of those samplers (not kinds of ``check`` either).
TEMPERING_CASES: dict = dict(tempering.CASES)
