"""NumPy reference samplers: float64, one algorithm per module, written to be read.

Each Markov kernel splits a step into drawing uniforms and a deterministic ``step(uniforms, state, ...)``
(see ARCHITECTURE.md); the torch twins in :mod:`textsampling.torch` reproduce them uniform for uniform.

Modules: :mod:`~textsampling.reference.categorical` (inverse-CDF sampling),
:mod:`~textsampling.reference.proposals`, :mod:`~textsampling.reference.importance`,
:mod:`~textsampling.reference.rejection`, :mod:`~textsampling.reference.metropolis_hastings`,
:mod:`~textsampling.reference.gibbs`, :mod:`~textsampling.reference.annealing`.
"""

from textsampling.reference import (
    annealing,
    categorical,
    gibbs,
    importance,
    metropolis_hastings,
    proposals,
    rejection,
)

__all__ = [
    "annealing",
    "categorical",
    "gibbs",
    "importance",
    "metropolis_hastings",
    "proposals",
    "rejection",
]
