"""textsampling: text found by search.

Write down what a good text is as an unnormalised probability distribution, then sample from it or
maximise it with Monte Carlo methods — importance and rejection sampling, Metropolis–Hastings, Gibbs,
simulated annealing — up to BERT speaking through Gibbs sampling and sentences built from keywords by
insert/delete/replace MCMC (Su Jianlin's series 【搜出来的文本】 and the papers behind it).

Subpackages: :mod:`textsampling.targets` (exact toy targets), :mod:`textsampling.reference` (NumPy
reference samplers), :mod:`textsampling.torch` (batched torch twins), :mod:`textsampling.testing`
(correctness checks), :mod:`textsampling.markov` and :mod:`textsampling.diagnostics`.
"""

__version__ = "0.1.0"
