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
# # 4. Metropolis–Hastings
#
# Chapter 3 built kernels from a proposal $q(y \mid x)$ and an acceptance probability
# $\alpha(y \leftarrow x)$. Metropolis–Hastings {cite:p}`metropolis1953equation,hastings1970monte`
# chooses the acceptance that makes the kernel satisfy detailed balance with $\pi = \rho / Z$:
#
# $$
# \alpha(y \leftarrow x) = \min\left(1,\; \frac{\rho(y)\, q(x \mid y)}{\rho(x)\, q(y \mid x)}\right),
# $$
#
# or in log space, with $u \sim U(0, 1)$: accept iff
#
# $$
# \log u < \log\rho(y) - \log\rho(x) + \underbrace{\log q(x \mid y) - \log q(y \mid x)}_{\text{Hastings correction}} .
# $$
#
# Only the *ratio* $\rho(y) / \rho(x)$ appears, so $Z$ cancels — the whole point {cite:p}`su2021part2`.
# Check detailed balance for $y \ne x$: $\pi(x) q(y \mid x) \alpha(y \leftarrow x) =
# \min\bigl(\pi(x) q(y \mid x),\, \pi(y) q(x \mid y)\bigr)$, which is symmetric in $x$ and $y$.
#
# This chapter runs the package's `metropolis_hastings` module on a continuous target (with several
# chains and $\hat R$ when one chain is not enough), on sentences, and — to see why the Hastings term is
# there — without it; then it rebuilds MH the way Su does, and shows what the rejection-sampling habit
# "draw again" does to a chain.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from textsampling import diagnostics, markov
from textsampling.testing import faulty
from textsampling.randomness import CounterGenerator
from textsampling.reference import metropolis_hastings as mh
from textsampling.reference.proposals import GaussianRandomWalkProposal, RingStepProposal, SingleSiteProposal
from textsampling.targets import Categorical, FixedLengthBigram, GaussianMixture

SEED = 1953
NUM_STEPS = 400 if os.environ.get("CI") else 10_000
NUM_SWEEP_STEPS = NUM_STEPS // 2  # per step size in the sweep
NUM_RING_STEPS = 4_000 if os.environ.get("CI") else 40_000  # eight states: cheap steps, so long chains
rng = np.random.default_rng(SEED)

# %% [markdown]
# ## Random-walk MH on a Gaussian mixture
#
# The target is a two-component mixture on the line. The proposal is a Gaussian step,
# $y = x + \sigma z$; it is symmetric, so the Hastings term is zero. The step size $\sigma$ is the one
# knob, and both extremes fail: tiny steps are almost always accepted but crawl; huge steps jump far
# but are almost always rejected.

# %%
mixture = GaussianMixture(weights=[0.35, 0.65], means=[-3.0, 2.0], scales=[0.8, 1.2])
grid = np.linspace(-7, 7, 400)
density = np.exp(mixture.log_prob(grid[:, None]))
x0 = np.array([0.0])

step_sizes = [0.1, 2.5, 60.0]
traces = {
    scale: mh.sample(rng, x0, mixture.log_prob, GaussianRandomWalkProposal(scale), NUM_STEPS) for scale in step_sizes
}
fig, axes = plt.subplots(len(step_sizes), 2, figsize=(12, 7), gridspec_kw={"width_ratios": [3, 1]}, sharey=True)
for row, (scale, trace) in enumerate(traces.items()):
    axes[row, 0].plot(trace.states.x[:, 0], lw=0.5)
    axes[row, 0].set_ylabel("x")
    axes[row, 0].set_title(f"σ = {scale}: acceptance rate {diagnostics.acceptance_rate(trace.infos.accepted):.2f}", fontsize=10)
    axes[row, 1].hist(trace.states.x[:, 0], bins=60, range=(-7, 7), density=True, orientation="horizontal", alpha=0.6)
    axes[row, 1].plot(density, grid, "k")
axes[-1, 0].set_xlabel("step")
axes[-1, 1].set_xlabel("density (black: exact)")
fig.tight_layout()

# %% [markdown]
# ## Acceptance rate against step size
#
# Sweep $\sigma$ over three decades. The acceptance rate falls as $\sigma$ grows (up to Monte Carlo
# noise, which makes the measured curve wiggle); the quality of the
# sample — here the effective sample size of $x$ per step, and the TV distance between the histogram
# over ten equal-probability cells and their exact probabilities — is best in between. (The classic
# rule of thumb, an acceptance rate of a few tens of percent, is an asymptotic result for
# high-dimensional Gaussians; on a bimodal target it is only a hint.)

# %%
scales = np.geomspace(0.05, 200.0, 15)
rates, ess_per_step, tvs = [], [], []
for scale in scales:
    trace = mh.sample(rng, x0, mixture.log_prob, GaussianRandomWalkProposal(scale), NUM_SWEEP_STEPS)
    rates.append(diagnostics.acceptance_rate(trace.infos.accepted))
    ess_per_step.append(diagnostics.effective_sample_size(trace.states.x[:, 0], method="mean") / NUM_SWEEP_STEPS)
    tvs.append(diagnostics.empirical_tv_distance(mixture.cell_index(trace.states.x), mixture.cell_probabilities()))

# One panel per row, sharing the σ axis, so each stays legible at the width of a book page.
fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
axes[0].semilogx(scales, rates, marker="o")
axes[0].set_ylabel("acceptance rate")
axes[1].loglog(scales, ess_per_step, marker="o")
axes[1].set_ylabel("ESS of x per step")
axes[2].loglog(scales, tvs, marker="o")
axes[2].set_ylabel("TV(histogram, exact)\nover 10 cells")
axes[2].set_xlabel("step size σ")
for ax in axes:
    ax.grid(True, which="major", alpha=0.3)
fig.tight_layout()
best = int(np.argmax(ess_per_step))
print(f"best step size here: σ ≈ {scales[best]:.2f} (acceptance rate {rates[best]:.2f}, ESS/step {ess_per_step[best]:.3f})")

# %% [markdown]
# ## A walk in two dimensions
#
# The same sampler on a 2-D mixture of three components: the first few hundred states of a chain on
# top of the exact density. In the long run the chain spends time in each mode in proportion to its
# weight, but it has to *cross* the low-density gap between modes to find out — the reason mixing can
# be slow. The printout compares the chain's mean with the exact mean of the mixture.

# %%
mixture_2d = GaussianMixture(
    weights=[0.5, 0.3, 0.2],
    means=[[-2.0, -1.0], [2.0, 1.5], [1.5, -2.5]],
    scales=[[0.8, 0.6], [0.7, 0.9], [0.5, 0.5]],
)
trace_2d = mh.sample(rng, np.array([0.0, 0.0]), mixture_2d.log_prob, GaussianRandomWalkProposal(1.0, dimension=2), NUM_STEPS)
u, v = np.meshgrid(np.linspace(-5, 5, 200), np.linspace(-5, 5, 200))
log_density = mixture_2d.log_prob(np.stack([u.ravel(), v.ravel()], axis=1)).reshape(u.shape)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
axes[0].contourf(u, v, np.exp(log_density), levels=20, cmap="Blues")
shown = trace_2d.states.x[:300]
axes[0].plot(shown[:, 0], shown[:, 1], "-o", color="tab:red", ms=2, lw=0.5, alpha=0.8)
axes[0].set_title("first 300 states over the exact density")
axes[1].hist2d(trace_2d.states.x[:, 0], trace_2d.states.x[:, 1], bins=50, range=[[-5, 5], [-5, 5]], cmap="Blues")
axes[1].set_title(f"all {NUM_STEPS} states")
for ax in axes:
    ax.set_aspect("equal")
fig.tight_layout()
print("exact mean:", mixture_2d.mean().round(3), " chain mean:", trace_2d.states.x.mean(axis=0).round(3))
# Where the error comes from: the time spent left of x₁ = 0 (the heaviest mode sits at x₁ = -2), against
# its exact probability, one normal CDF per component.
exact_left = float(np.sum(mixture_2d.weights * stats.norm.cdf(0.0, mixture_2d.means[:, 0], mixture_2d.scales[:, 0])))
print(f"fraction of steps with x₁ < 0: chain {np.mean(trace_2d.states.x[:, 0] < 0):.3f}, exact {exact_left:.3f}")
print("split R-hat of this one chain (its two halves compared), per coordinate:",
      [round(diagnostics.split_rhat(trace_2d.states.x[:, d]), 3) for d in range(2)])

# %% [markdown]
# The chain's mean is off, and nothing in the chain itself is broken: it is a correct MH chain that
# has not been run long enough. Each mode holds it for a long stretch, so the number of *crossings*
# between modes, not the number of steps, sets how well the weights are estimated; a chain that
# crossed a handful of times has weighted the modes by chance, as the time spent left of $x_1 = 0$
# shows. The split $\hat R$ of the one chain (its two halves compared) may or may not raise the alarm —
# a chain that never left its first mode would look perfectly settled — but several chains started far
# apart cannot all hide it: if they disagree, the run is too short.
# `diagnostics.split_rhat` compares the halves of every chain with each other
# (above 1.01 is the usual alarm), and the effective sample size turns the spread into a Monte Carlo
# standard error of the mean, $\mathrm{sd} / \sqrt{\mathrm{ESS}}$.
#
# The fix: `NUM_CHAINS` chains from the four corners of the plot, each as long as the single chain
# above, pooled only if $\hat R$ says they agree.

# %%
NUM_CHAINS = 4
corners = np.array([[-4.0, -4.0], [4.0, 4.0], [4.0, -4.0], [-4.0, 4.0]])  # over-dispersed starts
chains_2d = np.stack([
    mh.sample(CounterGenerator(SEED, chain), corners[chain], mixture_2d.log_prob,
              GaussianRandomWalkProposal(1.0, dimension=2), NUM_STEPS).states.x
    for chain in range(NUM_CHAINS)
])  # (chain, step, coordinate)
exact_mean = mixture_2d.mean()
for d in range(2):
    draws = chains_2d[:, :, d]
    rhat = diagnostics.split_rhat(draws)
    ess = diagnostics.effective_sample_size(draws, method="mean")
    standard_error = draws.std() / np.sqrt(ess)
    verdict = "chains agree" if rhat < 1.01 else "chains DISAGREE: run longer"
    print(
        f"x{d + 1}: exact {exact_mean[d]:+.3f} | chain means {np.round(draws.mean(axis=1), 2).tolist()} | "
        f"pooled {draws.mean():+.3f} ± {standard_error:.3f} (MC s.e., ESS {ess:.0f} of {draws.size}) | "
        f"split R-hat {rhat:.3f}: {verdict} | error / s.e. = {abs(draws.mean() - exact_mean[d]) / standard_error:.1f}"
    )

fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
for d, ax in enumerate(axes):
    for chain in range(NUM_CHAINS):
        ax.plot(chains_2d[chain, :, d], lw=0.4, color=f"C{chain}")
    ax.axhline(exact_mean[d], color="black", ls="--", lw=1)
    ax.set_ylabel(f"x{d + 1}")
axes[0].set_title(f"{NUM_CHAINS} chains from the four corners (dashed: exact mean)", fontsize=10)
axes[-1].set_xlabel("step")
fig.tight_layout()

# %% [markdown]
# With enough steps the chains agree ($\hat R$ below 1.01) and the pooled mean is within a couple of
# Monte Carlo standard errors of the exact one; with few steps (the shortened run of the book's CI
# build) $\hat R$ is far above 1.01 and says so before anyone trusts the mean. A larger step size
# crosses between modes more often (try it); the exact answer is what tells which run to believe.

# %% [markdown]
# ## MH on sentences
#
# The target is a bigram language model over sentences of exactly three tokens from a five-word
# vocabulary: $5^3 = 125$ sentences, every probability known. The proposal edits one token: pick a
# position uniformly, draw a new token from a fixed distribution $r$ (here deliberately *not* uniform,
# so the Hastings term $\log r(x_i) - \log r(y_i)$ matters). The histogram of a long chain over all 125
# sentences approaches the exact law; the exact kernel (same code) gives the mixing curve.

# %%
words = ["the", "cat", "sat", "on", "mat"]
initial_logits = np.array([2.0, 0.0, -1.0, 0.0, 0.0])
transition_logits = np.array([
    # the  cat  sat   on  mat  END
    [-2.0, 1.5, -1.0, -1.0, 1.5, -3.0],  # after "the"
    [-1.0, -2.0, 2.0, 0.0, -2.0, 0.5],  # after "cat"
    [0.0, -2.0, -2.0, 2.0, -2.0, 0.5],  # after "sat"
    [2.0, -1.0, -2.0, -2.0, 0.0, -3.0],  # after "on"
    [-1.0, -1.0, 0.5, 0.5, -2.0, 2.0],  # after "mat"
])
sentences = FixedLengthBigram(initial_logits, transition_logits, length=3)
token_logits = np.array([1.0, 0.0, 0.0, -0.5, 0.5])  # the fixed proposal r over new tokens
proposal = SingleSiteProposal(vocab_size=5, length=3, token_logits=token_logits)
x0 = np.array([4, 4, 4])  # "mat mat mat"

trace = mh.sample(CounterGenerator(SEED, 0), x0, sentences.log_prob, proposal, NUM_STEPS)
indices = sentences.state_index(trace.states.x)
checkpoints = np.unique(np.geomspace(10, NUM_STEPS, 30).astype(int))
running_tv = [diagnostics.empirical_tv_distance(indices[:n], sentences.probabilities()) for n in checkpoints]
exact_tv = [
    diagnostics.empirical_tv_distance(sentences.state_index(sentences.sample_exact(rng, n)), sentences.probabilities())
    for n in checkpoints
]
matrix = mh.transition_matrix(sentences, proposal)

fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
axes[0].loglog(checkpoints, running_tv, "o-", label="MH chain: histogram of the first n states")
axes[0].loglog(checkpoints, exact_tv, "s--", label="n independent exact draws")
axes[0].set_xlabel("n")
axes[0].set_ylabel("TV to the exact law")
axes[0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18))  # below the axes, off the data
axes[1].semilogy(markov.mixing_curve(matrix, int(sentences.state_index(x0)[0]), 60, sentences.probabilities()))
axes[1].set_xlabel("step t")
axes[1].set_ylabel("TV(law of x_t, π), exact")
fig.tight_layout()
top = np.argsort(sentences.probabilities())[::-1][:5]
for i in top:
    frequency = np.mean(indices == i)
    print(f"{' '.join(words[t] for t in sentences.states[i]):<22} exact {sentences.probabilities()[i]:.4f}   chain {frequency:.4f}")
print("acceptance rate:", round(diagnostics.acceptance_rate(trace.infos.accepted), 3),
      "| stationarity residual of the exact kernel:", f"{markov.stationarity_residual(matrix, sentences.probabilities()):.1e}")

# %% [markdown]
# The chain's histogram error decays like that of independent draws, only shifted: a correlated chain
# is worth fewer samples than its length, but it converges to the same exact law.
#
# ## What goes wrong without the Hastings correction
#
# Now a proposal that is *not* symmetric: on a ring of 8 states, step forward with probability 0.8 and
# backward with 0.2. Forgetting the Hastings term means accepting with
# $\min(1, \rho(y)/\rho(x))$ alone. Below, a proposal object identical to the package's
# `RingStepProposal` except that it reports a Hastings term of zero — the mistake, written down — is
# fed to the very same `metropolis_hastings` code. We compare the exact stationary law of both kernels,
# and a simulated chain of each, with the target.

# %%
class RingStepWithoutHastings(RingStepProposal):
    """The ring proposal with its Hastings term dropped: a deliberate bug, to see what it does."""

    def propose(self, uniforms, x):
        y, _ = super().propose(uniforms, x)
        return y, 0.0

    def log_q_ratio(self, y, x) -> float:
        return 0.0


ring_target = Categorical([0.0, 0.5, 1.0, 0.5, 0.0, 0.5, 1.0, 0.5])
correct = RingStepProposal(8, forward_probability=0.8)
wrong = RingStepWithoutHastings(8, forward_probability=0.8)
laws = {}
for name, ring_proposal in (("with Hastings term", correct), ("without", wrong)):
    kernel = mh.transition_matrix(ring_target, ring_proposal)
    stationary = markov.stationary_distribution(kernel)
    chain = mh.sample(rng, 0, ring_target.log_prob, ring_proposal, NUM_STEPS)
    laws[name] = (stationary, np.bincount(chain.states.x, minlength=8) / NUM_STEPS)
    print(f"{name:>18}: TV(stationary law, π) = {markov.tv_distance(stationary, ring_target.probabilities()):.4f}")

fig, ax = plt.subplots(figsize=(9, 4.6))
positions = np.arange(8)
ax.bar(positions - 0.3, ring_target.probabilities(), width=0.2, color="black", label="target π")
for k, (name, (stationary, histogram)) in enumerate(laws.items()):
    ax.bar(positions - 0.1 + 0.2 * k, stationary, width=0.2, color=f"C{k}", label=f"{name}: exact stationary law")
    ax.plot(positions - 0.1 + 0.2 * k, histogram, "o", color=f"C{k}", mec="black", label=f"{name}: chain histogram")
ax.set_xlabel("state on the ring")
ax.set_ylabel("probability")
ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))  # below the axes, off the bars
fig.tight_layout()

# %% [markdown]
# Without the correction the chain is still a perfectly good Markov chain, with a unique stationary
# law — just not $\pi$: the forward drift pushes mass "downstream" of each peak. Nothing in the
# acceptance rate or the trace plot warns you; only a comparison with an exact answer does (chapter 9
# turns this into a test).
#
# ## Where the acceptance comes from: Su's construction
#
# Su builds MH {cite:p}`su2021part2` without guessing the answer. Start from *any* proposal
# $q(y \leftarrow x)$ and look for an acceptance $\alpha(y \leftarrow x) \in [0, 1]$ such that the
# moves $q(y \leftarrow x)\,\alpha(y \leftarrow x)$, $y \ne x$, satisfy detailed balance,
# $p(x)\, q(y \leftarrow x)\, \alpha(y \leftarrow x) = p(y)\, q(x \leftarrow y)\, \alpha(x \leftarrow y)$.
# The simplest choice makes both sides the same product:
#
# $$
# \alpha(y \leftarrow x) = p(y)\, q(x \leftarrow y)
# \quad\Longrightarrow\quad
# p(x)\, q(y \leftarrow x)\, p(y)\, q(x \leftarrow y) \ \text{on both sides.}
# $$
#
# It is a probability (a product of two numbers in $[0, 1]$), but the moves out of $x$ now sum to less
# than 1. Su puts the missing mass **on the diagonal**: with the remaining probability the chain stays
# at $x$. The diagonal does not enter detailed balance, so $p$ stays stationary. The tempting
# alternative — divide each row by its sum so that it adds up to 1 — multiplies row $x$ by its own
# constant $1/c(x)$, and detailed balance then holds for $p(x)\,c(x)$ instead of $p(x)$: a different law,
# unless $c$ happens to be constant. Both kernels below are built from the ring proposal of the previous
# section (asymmetric) on an eight-state target, and their stationary laws are computed exactly.
# Finally, multiplying $\alpha(y \leftarrow x)$ and $\alpha(x \leftarrow y)$ by the same factor keeps
# detailed balance; the largest factor that keeps both $\le 1$ gives
# $\min\bigl(1, \frac{p(y) q(x \leftarrow y)}{p(x) q(y \leftarrow x)}\bigr)$ — Metropolis–Hastings, which
# moves far more often.

# %%
su_target = Categorical([0.0, 1.5, 3.0, 0.5, -1.0, 2.0, 0.0, 1.0])
p = su_target.probabilities()
# q[x, y] = q(y <- x), from the package's proposal.
q = np.exp([[correct.log_prob(np.int64(y), np.int64(x)) for y in range(8)] for x in range(8)])
moves = q * (p[None, :] * q.T)  # moves[x, y] = q(y <- x) alpha(y <- x), alpha(y <- x) = p(y) q(x <- y)
np.fill_diagonal(moves, 0.0)  # the ring proposal never proposes x itself
kernels = {
    "Su: rest on the diagonal": moves + np.diag(1.0 - moves.sum(axis=1)),
    "rows renormalised": moves / moves.sum(axis=1, keepdims=True),
    "MH: α scaled up": mh.transition_matrix(su_target, correct),
}
row_sums = moves.sum(axis=1)  # c(x): what renormalising divides row x by
predicted = p * row_sums / np.sum(p * row_sums)
print("renormalised rows: stationary law = p·c / Σ p·c up to",
      f"{np.abs(markov.stationary_distribution(kernels['rows renormalised']) - predicted).max():.1e}")
for name, kernel in kernels.items():
    stationary = markov.stationary_distribution(kernel)
    print(
        f"{name:>25}: TV(stationary law, p) = {markov.tv_distance(stationary, p):.2e}, "
        f"detailed-balance residual {markov.detailed_balance_residual(kernel, p):.1e}, "
        f"P(move) at stationarity {p @ (1.0 - np.diag(kernel)):.3f}"
    )

# %% [markdown]
# Renormalising the rows gives a chain that always moves — and samples the wrong law. Su's kernel is
# exact but lazy: it stays put most of the time. MH is exact too and moves far more often (last column).
#
# ## Stay put, don't draw again
#
# A rejection in MCMC means *the chain stays where it is, and that repeated state is a sample*. The habit
# from rejection sampling (chapter 2) is the opposite: a rejected draw is thrown away and one draws
# again until something is accepted. Grafted onto MH — on a rejection, propose again from $x$ until a
# move is accepted, record only moves — it is the row renormalisation above in disguise: from $x$ it
# goes to $y$ with probability $P(x, y) / (1 - P(x, x))$, so its stationary law is
# $\propto p(x)\,(1 - P(x, x))$. States that MH would rather stay in are under-weighted. The package
# keeps this mistake as `testing.faulty.mh_that_retries_rejections`; below, a chain of each on the same
# target with a symmetric ring proposal, against the exact law.

# %%
symmetric_ring = RingStepProposal(8, forward_probability=0.5)
draw_again = faulty.mh_that_retries_rejections(su_target, symmetric_ring)
stay_put_chain = mh.sample(rng, 0, su_target.log_prob, symmetric_ring, NUM_RING_STEPS).states.x
state, draw_again_chain = np.int64(0), np.empty(NUM_RING_STEPS, dtype=np.int64)
for t in range(NUM_RING_STEPS):
    state = draw_again_chain[t] = draw_again.step_fn(rng, state)
histograms = {
    "stay put (MH)": np.bincount(stay_put_chain, minlength=8) / NUM_RING_STEPS,
    "draw again": np.bincount(draw_again_chain, minlength=8) / NUM_RING_STEPS,
}
draw_again_law = markov.stationary_distribution(draw_again.transition_matrix)
print(f"exact stationary law of 'draw again': TV to p = {markov.tv_distance(draw_again_law, p):.3f}")
for name, histogram in histograms.items():
    print(f"{name:>14}: TV(histogram of {NUM_RING_STEPS} steps, p) = {markov.tv_distance(histogram, p):.3f}")

fig, ax = plt.subplots(figsize=(9, 4.6))
ax.bar(positions - 0.2, p, width=0.2, color="black", label="exact p")
for k, (name, histogram) in enumerate(histograms.items()):
    ax.bar(positions + 0.2 * k, histogram, width=0.2, color=f"C{k}", label=f"{name}: chain histogram")
ax.plot(positions + 0.2, draw_again_law, "D", color="C1", mec="black", label="'draw again': exact stationary law")
ax.set_xlabel("state")
ax.set_ylabel("probability")
ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))
fig.tight_layout()

# %% [markdown]
# The "draw again" chain is biased toward states that are easy to leave and away from the peak (state
# 2), where MH rejects most often: repeated states are not waste, they are how MH weights the peak.
#
# ## Try this
#
# 1. Set `forward_probability=0.5` in the ring: why does the missing Hastings term no longer matter?
# 2. Start the 1-D chain at $x_0 = 50$. How many steps does it take to reach the mixture, for each step
#    size? Which early states would you discard as burn-in?
# 3. Use a uniform token proposal (`token_logits=None`) for the sentences. Does the acceptance rate go
#    up or down? And the mixing curve?
# 4. Make the mixture's modes farther apart (means −6 and 6). Which step size is best now, and what
#    does its acceptance rate look like?
# 5. Run the four 2-D chains with step size 2.5 instead of 1.0. How do $\hat R$ and the Monte Carlo
#    standard error change for the same number of steps?
# 6. Build Su's kernels with `UniformCategoricalProposal(8)` instead of the ring. Renormalising the rows
#    is now harmless: compute the row sums $c(x)$ and say why.
