"""NumPy reference samplers: float64, one algorithm per module, written to be read.

Each Markov kernel splits a step into drawing uniforms and a deterministic ``step(uniforms, state, ...)``
(see ARCHITECTURE.md); the torch twins in :mod:`textsampling.torch` reproduce them uniform for uniform.

Modules: :mod:`~textsampling.reference.categorical` (inverse-CDF sampling),
:mod:`~textsampling.reference.proposals`, :mod:`~textsampling.reference.importance`,
:mod:`~textsampling.reference.rejection`, :mod:`~textsampling.reference.metropolis_hastings`,
:mod:`~textsampling.reference.gibbs`, :mod:`~textsampling.reference.annealing`; over language models
(parts 3–4): :mod:`~textsampling.reference.mlm_gibbs`, :mod:`~textsampling.reference.mlm_metropolis_hastings`,
:mod:`~textsampling.reference.cgmh`, :mod:`~textsampling.reference.sentence_annealing`,
:mod:`~textsampling.reference.decoding`.
"""

from textsampling.reference import (
    annealing,
    categorical,
    cgmh,
    decoding,
    gibbs,
    hill_climbing,
    importance,
    metropolis_hastings,
    mlm_gibbs,
    mlm_metropolis_hastings,
    proposals,
    rejection,
    sentence_annealing,
)

__all__ = [
    "annealing",
    "categorical",
    "cgmh",
    "decoding",
    "gibbs",
    "hill_climbing",
    "importance",
    "metropolis_hastings",
    "mlm_gibbs",
    "mlm_metropolis_hastings",
    "proposals",
    "rejection",
    "sentence_annealing",
]
