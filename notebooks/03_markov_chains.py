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
# # 3. Markov chains
#
# Chapter 2 ended with proposals that almost never land where $\pi$ lives. Markov chain Monte Carlo
# {cite:p}`su2021part2` changes the question: instead of drawing each sample from scratch, make a
# small random *edit* of the current state, designed so that after many edits the state is distributed
# as $\pi$. This chapter is about the edits: on $S$ states, a kernel is a row-stochastic matrix
#
# $$
# P_{ij} = T(j \leftarrow i) = \Pr(x_{t+1} = j \mid x_t = i), \qquad \sum_j P_{ij} = 1,
# $$
#
# and the law of the chain evolves as $\mu_{t+1} = \mu_t P$. A law with $\pi P = \pi$ is **stationary**;
# it is unique when the chain is irreducible (every state reaches every other), and the chain converges
# to it from anywhere when it is also aperiodic {cite:p}`levin2017markov`. A sufficient condition that
# is easy to build in is **detailed balance**,
#
# $$
# \pi_i P_{ij} = \pi_j P_{ji} \quad \text{for all } i, j
# \qquad\Longrightarrow\qquad (\pi P)_j = \sum_i \pi_j P_{ji} = \pi_j .
# $$
#
# Everything in this chapter is exact linear algebra from `textsampling.markov`, plus simulations
# that agree with it.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from textsampling import markov
from textsampling.randomness import CounterGenerator
from textsampling.reference import metropolis_hastings as mh
from textsampling.reference.proposals import RingStepProposal, UniformCategoricalProposal
from textsampling.targets import Categorical

SEED = 8084
NUM_CHAINS = 200 if os.environ.get("CI") else 4_000
NUM_STEPS = 30

# %% [markdown]
# ## A chain, its stationary law, and forgetting the start
#
# Three kinds of weather. Whatever the first day, the law of day $t$ approaches the same $\pi$.

# %%
WEATHER = ["sunny", "cloudy", "rainy"]
weather = np.array([
    [0.7, 0.2, 0.1],
    [0.3, 0.4, 0.3],
    [0.3, 0.1, 0.6],
])
pi = markov.stationary_distribution(weather)
print("stationary law:", {name: round(float(p), 4) for name, p in zip(WEATHER, pi)})
print("max |pi P - pi| =", markov.stationarity_residual(weather, pi))
print("detailed balance residual =", round(markov.detailed_balance_residual(weather, pi), 4))
flow = pi[:, None] * weather  # flow[i, j] = π_i P_ij, the probability of the move i -> j at stationarity
for i, j in ((0, 1), (1, 2), (2, 0)):
    print(
        f"flow {WEATHER[i]} -> {WEATHER[j]}: {flow[i, j]:.4f}, backwards {WEATHER[j]} -> {WEATHER[i]}: {flow[j, i]:.4f}"
    )

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
law = np.array([0.0, 0.0, 1.0])  # a rainy first day
history = [law]
for _ in range(12):
    law = law @ weather
    history.append(law)
history = np.array(history)
for k, name in enumerate(WEATHER):
    axes[0].plot(history[:, k], marker="o", label=name)
    axes[0].axhline(pi[k], color=f"C{k}", ls=":")
axes[0].set_xlabel("day t")
axes[0].set_ylabel("P(weather on day t)")
axes[0].set_title("law of day t, starting from rain")
axes[0].legend()
for start, name in enumerate(WEATHER):
    axes[1].semilogy(markov.mixing_curve(weather, start, 12), marker="o", label=f"start: {name}")
axes[1].set_xlabel("day t")
axes[1].set_ylabel("TV(law of day t, π)")
axes[1].set_title("mixing curves")
axes[1].legend()
fig.tight_layout()

# %% [markdown]
# The weather chain is stationary but **not** reversible: its detailed-balance residual is far from
# zero (more probability flows sunny → cloudy → rainy → sunny than backwards: the printed flows). Detailed balance is
# sufficient, not necessary — but it is the property MCMC kernels are built to have, because it can be
# checked one pair of states at a time.
#
# ## Chains that never forget
#
# Two ways a chain can fail to converge: it is **periodic** (a deterministic cycle keeps the mass
# rotating), or **reducible** (two closed classes: where you end depends on where you start, and the
# stationary law is not unique).

# %%
cycle = np.roll(np.eye(3), 1, axis=1)  # 0 -> 1 -> 2 -> 0
lazy_cycle = 0.5 * np.eye(3) + 0.5 * cycle  # stay put half the time: aperiodic
two_classes = np.array([[0.5, 0.5, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.1, 0.9], [0.0, 0.0, 0.9, 0.1]])

fig, ax = plt.subplots(figsize=(7, 3.4))
ax.plot(markov.mixing_curve(cycle, 0, 12), marker="o", label="cycle (periodic)")
ax.plot(markov.mixing_curve(lazy_cycle, 0, 12), marker="s", label="lazy cycle")
ax.set_xlabel("step t")
ax.set_ylabel("TV(μ P^t, π)")
ax.legend()
fig.tight_layout()
print("two closed classes: irreducible?", markov.is_irreducible(two_classes))
try:
    markov.stationary_distribution(two_classes)
except ValueError as error:
    print("stationary_distribution refuses:", error)

# %% [markdown]
# ## Building a kernel for a target we choose
#
# To sample a given $\pi$ we need a kernel whose stationary law *is* $\pi$. Propose a move
# $y \sim q(\cdot \mid x)$ and accept it with probability $\alpha(y \leftarrow x)$; otherwise stay:
#
# $$
# P(y \leftarrow x) = q(y \mid x)\, \alpha(y \leftarrow x) \quad (y \neq x), \qquad
# P(x \leftarrow x) = 1 - \sum_{y \neq x} P(y \leftarrow x).
# $$
#
# Chapter 4 derives the acceptance that makes this reversible (Metropolis–Hastings). Here we only
# look at the resulting matrices for an 8-state target and two proposals: "jump anywhere" and "step to a
# neighbour on a ring". Both leave $\pi$ exactly invariant, with detailed balance to rounding error.

# %%
target = Categorical([0.0, 1.5, 0.5, -1.0, 2.0, 0.0, -0.5, 1.0])
proposals = {
    "uniform jump": UniformCategoricalProposal(target.num_categories),
    "ring step": RingStepProposal(target.num_categories, forward_probability=0.5),
}
matrices = {name: mh.transition_matrix(target, proposal) for name, proposal in proposals.items()}

fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax, (name, matrix) in zip(axes, matrices.items()):
    image = ax.imshow(matrix, cmap="magma", vmin=0, vmax=1)
    ax.set_title(f"P for '{name}'")
    ax.set_xlabel("to state j")
    ax.set_ylabel("from state i")
    print(
        f"{name:>12}: max |pi P - pi| = {markov.stationarity_residual(matrix, target.probabilities()):.1e}, "
        f"detailed balance residual = {markov.detailed_balance_residual(matrix, target.probabilities()):.1e}"
    )
fig.colorbar(image, ax=axes[:2], shrink=0.8)
for name, matrix in matrices.items():
    axes[2].semilogy(markov.mixing_curve(matrix, 3, NUM_STEPS, target.probabilities()), marker=".", label=name)
axes[2].set_xlabel("step t")
axes[2].set_ylabel("TV(μ P^t, π), start in state 3")
_ = axes[2].legend()

# %% [markdown]
# ## The simulation agrees with the matrix
#
# Run many independent chains from state 3 with the package's MH sampler, each with its own
# counter-based random stream (chain $c$ gets uniforms that depend only on seed, $c$ and the step), and
# histogram the states of all chains at step $t$. Its TV distance to $\pi$ follows the exact mixing
# curve until it hits the Monte Carlo noise floor of a histogram of `NUM_CHAINS` draws (grey: the TV
# distance of `NUM_CHAINS` exact draws from $\pi$, its median as a line and its 95% range as a band).

# %%
rng = np.random.default_rng(SEED)
noise = [
    markov.tv_distance(
        np.bincount(target.sample_exact(rng, NUM_CHAINS), minlength=target.num_categories) / NUM_CHAINS,
        target.probabilities(),
    )
    for _ in range(200)
]
low, median, high = np.percentile(noise, [2.5, 50, 97.5])
fig, ax = plt.subplots(figsize=(8, 4))
for k, (name, proposal) in enumerate(proposals.items()):
    states = np.array([
        mh.sample(CounterGenerator(SEED, chain), 3, target.log_prob, proposal, NUM_STEPS).states.x
        for chain in range(NUM_CHAINS)
    ])  # (num_chains, num_steps): states[:, t] is the state after step t + 1
    empirical = np.array([
        markov.tv_distance(np.bincount(states[:, t], minlength=target.num_categories) / NUM_CHAINS, target.probabilities())
        for t in range(NUM_STEPS)
    ])
    exact_curve = markov.mixing_curve(matrices[name], 3, NUM_STEPS, target.probabilities())  # steps 0..NUM_STEPS
    ax.semilogy(np.arange(1, NUM_STEPS + 1), empirical, "o", color=f"C{k}", label=f"{name}: {NUM_CHAINS} chains")
    ax.semilogy(exact_curve, "-", color=f"C{k}", label=f"{name}: exact")
    last = slice(NUM_STEPS - 10, NUM_STEPS)  # the last ten steps
    in_band = (empirical[last] >= low) & (empirical[last] <= high)
    print(
        f"{name:>12}: after step 1, empirical TV {empirical[0]:.3f} vs exact {exact_curve[1]:.3f}; "
        f"last ten steps: exact TV at most {exact_curve[-10:].max():.3f}, {in_band.sum()} of 10 empirical "
        f"TVs in the noise band [{low:.3f}, {high:.3f}]"
    )
ax.axhspan(low, high, color="grey", alpha=0.3, label="noise floor: 95% range")
ax.axhline(median, color="grey", lw=1.2, label="noise floor: median")
ax.set_xlabel("step t")
ax.set_ylabel("TV to π")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## Try this
#
# 1. Make the ring proposal lazy in one direction, `forward_probability=0.9`. Is the MH kernel still
#    reversible? Is its mixing faster or slower?
# 2. Find the second-largest eigenvalue modulus of each matrix (`np.linalg.eigvals`). How does it relate
#    to the slope of the mixing curves on the log scale?
# 3. Give the weather chain a fourth state "snowy" reachable only from "rainy". Check irreducibility and
#    the new stationary law.
# 4. Replace `CounterGenerator(SEED, chain)` by `np.random.default_rng(SEED)` for every chain. What goes
#    wrong with the simulated curve, and why?
