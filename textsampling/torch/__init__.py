"""Torch twins of the NumPy reference samplers: same module and function names, a leading chain dimension.

Modules: :mod:`~textsampling.torch.randomness` (Philox counter uniforms, bit-identical to NumPy),
:mod:`~textsampling.torch.categorical`, :mod:`~textsampling.torch.proposals`,
:mod:`~textsampling.torch.importance`, :mod:`~textsampling.torch.rejection`,
:mod:`~textsampling.torch.metropolis_hastings`, :mod:`~textsampling.torch.gibbs`,
:mod:`~textsampling.torch.annealing`, the target twins :mod:`~textsampling.torch.targets`, and
:func:`~textsampling.torch.twins.twin_of` (NumPy object -> torch twin). Device- and dtype-agnostic
(float32 by default, float64 for the exact cross-checks); no Python loop over chains.

Speed: in eager mode a step with counter uniforms is dominated by Philox (about 180 elementwise int64
operations per block of uniforms, each a pass over memory). ``torch.Generator`` uniforms are several times
faster but depend on the batch; ``torch.compile`` of "counter uniforms + step" fuses the hash and keeps
per-chain reproducibility (``benchmarks/bench_twins.py`` measures all three and checks the fused step
against the eager one).
"""
