"""Torch twins of the NumPy reference samplers: same module and function names, a leading chain dimension.

Modules: :mod:`~textsampling.torch.randomness` (Philox counter uniforms, bit-identical to NumPy),
:mod:`~textsampling.torch.categorical`, :mod:`~textsampling.torch.proposals`,
:mod:`~textsampling.torch.importance`, :mod:`~textsampling.torch.rejection`,
:mod:`~textsampling.torch.metropolis_hastings`, :mod:`~textsampling.torch.gibbs`,
:mod:`~textsampling.torch.annealing`, the target twins :mod:`~textsampling.torch.targets`, and
:func:`~textsampling.torch.twins.twin_of` (NumPy object -> torch twin). Device- and dtype-agnostic
(float32 by default, float64 for the exact cross-checks); no Python loop over chains.

Speed: made with torch operations, counter uniforms are about 100 elementwise int64 operations per
block of uniforms, each a pass over memory, and dominate a step; ``torch.Generator`` uniforms are
several times faster but depend on the batch. Per-chain reproducibility at speed: on the CPU, numba's
compiled loop (the default where the ``fast`` extra is installed) makes the same uniforms faster than
``torch.rand`` from about 1e4 chains; ``CounterGenerator(seed, chain_index, compiled=True)`` fuses the
ten Philox rounds into one ``torch.compile`` kernel (for CUDA, or a CPU without numba); and
``torch.compile`` of "counter uniforms + step" fuses the step too (``benchmarks/bench_randomness.py``
and ``benchmarks/bench_twins.py`` measure them against torch's own generator and check them against
the reference). On the CPU with numba, the MH step also makes its value checks, decisions and selects
in one compiled loop: the same decisions, states and log-densities as its torch operations, bit for
bit (tests/test_twin_mh_numba.py).
"""
