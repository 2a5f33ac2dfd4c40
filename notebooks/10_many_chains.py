# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10. Many chains at once
#
# Every sampler in this book exists twice: a NumPy **reference**, written to be read, one chain at a
# time; and a **torch twin** under `textsampling.torch`, with the same module and function names and a
# leading chain dimension, so thousands of chains advance in one call — on the CPU or a GPU. A twin is
# only useful if it is the *same* sampler. Two properties make that checkable:
#
# * each step is split into "draw the uniforms" and "a deterministic transition given the uniforms";
#   fed the same uniforms, the twin must make exactly the reference's decisions, chain by chain;
# * the uniforms of chain $c$ at step $t$ come from a counter-based generator (Philox4x32-10
#   {cite:p}`salmon2011parallel`): a pure function of (seed, $c$, $t$), implemented identically in NumPy
#   and torch. So chain $c$ is the same whatever the batch size, whichever chains run beside it, and on
#   whichever device.
#
# This chapter checks both, then measures what the batching buys.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from textsampling import markov
from textsampling.randomness import CounterGenerator
from textsampling.reference import metropolis_hastings as mh
from textsampling.reference.proposals import SingleSiteProposal, UniformCategoricalProposal
from textsampling.targets import Categorical, FixedLengthBigram
from textsampling.torch import metropolis_hastings as mh_twin
from textsampling.torch.randomness import CounterGenerator as TorchCounterGenerator
from textsampling.torch.twins import twin_of

SEED = 2011
SMALL = bool(os.environ.get("CI"))
NUM_STEPS = 50 if SMALL else 400
CHAIN_COUNTS = [1, 100, 1_000] if SMALL else [1, 100, 1_000, 10_000, 100_000]
LAW_CHAINS = 1_000 if SMALL else 50_000  # chains whose states we histogram at every step
LAW_STEPS = 40
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
print("devices:", DEVICES, "| torch", torch.__version__)

# %% [markdown]
# ## The twin makes the reference's decisions
#
# Ten chains of MH on three-token sentences (a bigram over five words), with a single-site proposal
# whose Hastings term is not zero. The reference runs each chain alone with
# `CounterGenerator(SEED, c)`; the twin runs all ten in one batch, in float64, with the torch
# `CounterGenerator(SEED, arange(10))`. Every state and every accept decision must agree.

# %%
rng = np.random.default_rng(SEED)
target = FixedLengthBigram(rng.normal(size=5), rng.normal(size=(5, 6)), length=3)
proposal = SingleSiteProposal(vocab_size=5, length=3, token_logits=[1.0, 0.0, -0.5, 0.5, 0.0])
x0 = np.zeros(3, dtype=np.int64)
num_chains = 10

reference_runs = [mh.sample(CounterGenerator(SEED, c), x0, target.log_prob, proposal, NUM_STEPS) for c in range(num_chains)]
twin_target = twin_of(target, dtype=torch.float64)
twin_proposal = twin_of(proposal, dtype=torch.float64)
twin_run = mh_twin.sample(
    TorchCounterGenerator(SEED, torch.arange(num_chains)),
    torch.zeros((num_chains, 3), dtype=torch.long),
    twin_target.log_prob,
    twin_proposal,
    NUM_STEPS,
    dtype=torch.float64,
)
same_states = all(np.array_equal(run.states.x, twin_run.states.x[c].numpy()) for c, run in enumerate(reference_runs))
same_decisions = all(np.array_equal(run.infos.accepted, twin_run.infos.accepted[c].numpy()) for c, run in enumerate(reference_runs))
print(f"{num_chains} chains x {NUM_STEPS} steps: identical states: {same_states}, identical accept decisions: {same_decisions}")
print("acceptance rate per chain:", [round(float(run.infos.accepted.mean()), 2) for run in reference_runs])

# %% [markdown]
# ## The same chain whatever the batch
#
# Run the twin with 10 chains and with 2,000 chains: chains 0–9 must be identical. With torch's own
# generator (`torch.Generator`, one stream shared by the batch) they are not: what chain 3 does then
# depends on how many chains ran beside it.

# %%
def run_twin(generator, count):
    return mh_twin.sample(generator, torch.zeros((count, 3), dtype=torch.long), twin_target.log_prob, twin_proposal, NUM_STEPS, dtype=torch.float64)


small = run_twin(TorchCounterGenerator(SEED, torch.arange(10)), 10)
large = run_twin(TorchCounterGenerator(SEED, torch.arange(2_000)), 2_000)
print("counter generator: chains 0-9 alone == chains 0-9 of 2,000:", torch.equal(small.states.x, large.states.x[:10]))
small = run_twin(torch.Generator().manual_seed(SEED), 10)
large = run_twin(torch.Generator().manual_seed(SEED), 2_000)
print("torch.Generator:   chains 0-9 alone == chains 0-9 of 2,000:", torch.equal(small.states.x, large.states.x[:10]))

# %% [markdown]
# ## What many chains show: the law of $x_t$, step by step
#
# With one chain we see a trajectory; with tens of thousands we see the *law* of the state at each
# step, and can put it next to the exact mixing curve of chapter 3 ($\mathrm{TV}(\delta_{x_0} P^t, \pi)$,
# from the reference kernel). The grey band is the TV distance that many exact draws have anyway.

# %%
many = LAW_CHAINS
run = mh_twin.sample(
    TorchCounterGenerator(SEED, torch.arange(many)), torch.zeros((many, 3), dtype=torch.long),
    twin_target.log_prob, twin_proposal, LAW_STEPS, dtype=torch.float64,
)
# Index every visited sentence through the distinct rows (a few hundred), not state by state.
distinct, inverse = np.unique(run.states.x.reshape(-1, 3).numpy(), axis=0, return_inverse=True)
indices = target.state_index(distinct)[inverse.reshape(-1)].reshape(many, LAW_STEPS)
pi = target.probabilities()
empirical = [markov.tv_distance(np.bincount(indices[:, t], minlength=target.num_states) / many, pi) for t in range(LAW_STEPS)]
exact = markov.mixing_curve(mh.transition_matrix(target, proposal), int(target.state_index(x0)[0]), LAW_STEPS, pi)
noise = [markov.tv_distance(np.bincount(target.state_index(target.sample_exact(rng, many)), minlength=target.num_states) / many, pi) for _ in range(50)]

fig, ax = plt.subplots(figsize=(8, 3.8))
ax.semilogy(np.arange(1, LAW_STEPS + 1), empirical, "o", label=f"{many:,} chains (torch twin)")
ax.semilogy(np.arange(LAW_STEPS + 1), exact, "k-", label="exact mixing curve (reference kernel)")
ax.axhspan(min(noise), max(noise), color="grey", alpha=0.3, label=f"TV of {many:,} exact draws")
ax.set_xlabel("step t")
ax.set_ylabel("TV(law of x_t, π)")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## The speed table
#
# Chain-steps per second of MH on a 1,000-state categorical target with the uniform proposal,
# *including* drawing the counter-based random numbers: the NumPy reference (one chain at a time, as
# it is written) against the torch twin (float32) on each device available, by number of chains. The
# package's benchmark script `benchmarks/bench_twins.py` measures the same thing at larger sizes.

# %%
categorical = Categorical(np.random.default_rng(SEED).normal(size=1_000))
uniform_proposal = UniformCategoricalProposal(1_000)
table = {}
start = time.perf_counter()
mh.sample(CounterGenerator(SEED, 0), 0, categorical.log_prob, uniform_proposal, NUM_STEPS)
table["numpy reference"] = {1: NUM_STEPS / (time.perf_counter() - start)}
for device in DEVICES:
    twin_categorical = twin_of(categorical, device=device)
    twin_uniform = twin_of(uniform_proposal, device=device)
    rates = {}
    for count in CHAIN_COUNTS:
        generator = TorchCounterGenerator(SEED, torch.arange(count, device=device))
        x = torch.zeros(count, dtype=torch.long, device=device)
        mh_twin.sample(generator, x, twin_categorical.log_prob, twin_uniform, 2)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        mh_twin.sample(generator, x, twin_categorical.log_prob, twin_uniform, NUM_STEPS)
        if device == "cuda":
            torch.cuda.synchronize()
        rates[count] = count * NUM_STEPS / (time.perf_counter() - start)
    table[f"torch twin, {device}"] = rates

header = f"{'chain-steps/s':>20} | " + " | ".join(f"{count:>10,}" for count in CHAIN_COUNTS)
print(header)
print("-" * len(header))
for name, rates in table.items():
    print(f"{name:>20} | " + " | ".join(f"{rates[count]:>10.3g}" if count in rates else f"{'':>10}" for count in CHAIN_COUNTS))

fig, ax = plt.subplots(figsize=(7, 3.8))
for name, rates in table.items():
    ax.loglog(list(rates), list(rates.values()), "o-", label=name)
ax.set_xlabel("number of chains")
ax.set_ylabel("chain-steps per second")
ax.legend()
fig.tight_layout()

# %% [markdown]
# On the CPU the twin overtakes the reference from about a hundred chains on: the Python
# loop of the reference costs the same per step whatever the step does, the twin pays it once per
# batch. On a GPU the same call runs millions of chains; the figures depend on the machine this page
# was built on, which is printed at the top of this chapter.
#
# ## Try this
#
# 1. Run the equality check in float32 (`dtype=torch.float32` for the twins). Do the decisions still
#    agree? Where could they differ, and why does the package use float64 for its cross-checks?
# 2. Start chain 7 at step 1,000 (`first_step=1000`) in the reference and in a twin batch of 100 chains
#    (also `first_step=1000`): compare.
# 3. Time `mh_twin.step` with `validate=False` and torch's own generator: how much of the twin's time
#    goes to the per-chain counter-based random numbers?
