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
# # 13. Many temperatures
#
# Chapters 4 and 5 ended on the same warning: a correct Markov chain on a target with two separated
# modes stays in the mode it started in for a long time, and nothing inside one chain says so.
# Chapter 6 raised the temperature to cross valleys, but simulated annealing is an optimiser: it ends
# on *a* mode and forgets how much mass the others hold. This chapter uses the same ladder of
# temperatures twice more, now to *sample*:
#
# * **annealed importance sampling** (AIS {cite:p}`neal2001annealed`) runs many
#   particles down the ladder from an easy base law $p_0$ to $\rho$ and weights each one, so the
#   weighted particles are a sample from $\pi = \rho / Z$ and the mean weight estimates $Z$. Read as
#   sequential Monte Carlo it is *tempered SMC* without resampling {cite:p}`delmoral2006sequential`;
# * **parallel tempering** (replica exchange
#   {cite:p}`swendsen1986replica,geyer1991markov,hukushima1996exchange`) runs one chain per temperature
#   side by side and lets neighbours swap states, so what a hot chain finds reaches the cold one.
#
# Both are in the package (`annealed_importance`, `parallel_tempering` and, over sentences,
# `sentence_tempering`, each a NumPy reference with a torch twin, each tested exactly on enumerable
# targets); the comparisons with a single chain come from `textsampling.gallery.tempering`. Every
# target here is small enough to enumerate, so every estimate is set against its exact value.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import NullFormatter, ScalarFormatter
from scipy.special import logsumexp

from textsampling import diagnostics, markov
from textsampling.gallery.tempering import mixing_comparison, mixing_setups
from textsampling.lm.oracle import BigramOracle
from textsampling.randomness import CounterGenerator, draw_uniforms
from textsampling.reference import annealed_importance as ais
from textsampling.reference import annealing, cgmh, resampling
from textsampling.reference import metropolis_hastings as mh
from textsampling.reference import parallel_tempering as pt
from textsampling.reference import sentence_tempering as spt
from textsampling.reference.proposals import IndependentCategorical, RingStepProposal
from textsampling.targets import BigramLM, Categorical
from textsampling.torch import annealed_importance as torch_ais
from textsampling.torch import cgmh as torch_cgmh
from textsampling.torch import sentence_tempering as torch_spt
from textsampling.torch.randomness import CounterGenerator as TorchCounterGenerator
from textsampling.torch.twins import twin_of

SEED = 2006
NUM_STEPS = 600 if os.environ.get("CI") else 6_000  # single-chain and PT traces
NUM_RUNS = 24 if os.environ.get("CI") else 400  # independent AIS runs, batched in the torch twin
NUM_PARTICLES = 16 if os.environ.get("CI") else 64  # particles per AIS run
NUM_EVALUATIONS = 600 if os.environ.get("CI") else 20_000  # target evaluations per chain in the comparison
torch.set_num_threads(1)  # small batches, and the book is built on a shared two-core machine

# %% [markdown]
# ## Where single chains get stuck
#
# Three targets from the earlier chapters, as `mixing_setups()` builds them: chapter 4's mixture of
# two Gaussians, chapter 5's Ising chain of ten spins with coupling $J = 2$ (its magnetisation is
# either near $-1$ or near $+1$), and a ring of ten states with two modes, 0 and 5, separated by
# valleys 8 nats deep, visited by a proposal that steps to a neighbour. One Metropolis–Hastings chain
# on each, started in one mode:

# %%
setups = mixing_setups()
mixture = setups["mixture (ch. 4)"].target
grid = np.linspace(-3.0, 2.0, 501)
valley = float(grid[np.argmin(mixture.log_prob(grid[:, None]))])  # the lowest point between the two means
ising_states = setups["Ising J=2 (ch. 5)"].target.states
ring_states = np.arange(10)
# The side of the valley each chain starts on (states -> bool), and its exact mass.
start_side = {
    "mixture (ch. 4)": lambda x: np.asarray(x)[:, 0] < valley,
    "Ising J=2 (ch. 5)": lambda x: np.asarray(x).sum(axis=1) < 5,  # more spins down than up
    "bimodal ring": lambda x: np.abs(((np.asarray(x) + 5) % 10) - 5) <= 2,  # states 8, 9, 0, 1, 2
}
exact_side = {"mixture (ch. 4)": float(mixture.marginal_cdf(valley))}
for name, states in (("Ising J=2 (ch. 5)", ising_states), ("bimodal ring", ring_states)):
    exact_side[name] = float(setups[name].target.probabilities()[start_side[name](states)].sum())
labels = {"mixture (ch. 4)": "x", "Ising J=2 (ch. 5)": "magnetisation", "bimodal ring": "state"}
fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
for ax, (name, setup) in zip(axes, setups.items()):
    trace = mh.sample(CounterGenerator(SEED, 0), setup.starts[0], setup.target.log_prob, setup.proposal, NUM_STEPS)
    on_side = start_side[name](trace.states.x)
    ax.plot(setup.statistic(trace.states.x), lw=0.6)
    ax.set_ylabel(labels[name])
    ax.set_title(name, fontsize=10)
    crossings = int(np.sum(on_side[1:] != on_side[:-1]))
    print(f"{name:>18}: {NUM_STEPS} MH steps; time on the start's side of the valley {on_side.mean():.3f}, "
          f"exact mass there {exact_side[name]:.3f}; crossings {crossings}; "
          f"acceptance rate {diagnostics.acceptance_rate(trace.infos.accepted):.2f}")
print(f"(the mixture's valley: x = {valley:.2f})")
axes[-1].set_xlabel("step")
fig.tight_layout()

# %% [markdown]
# Read the crossings in the printout. On the Ising chain and the ring a crossing needs a run of uphill
# moves whose probability is of order $e^{-\Delta}$ for a valley $\Delta$ nats deep, and the time spent
# on the start's side is far from its exact mass. Chapter 4's mixture is the mildest case: its valley is
# shallow, and given enough steps a random walk crosses it on its own.
#
# ## Annealing finds a mode; AIS turns the ladder into a sample
#
# To see the difference between finding a mode and sampling, make the ring lopsided: add
# $1.5 \cos(2\pi k / 10)$ to the log-density, so mode 0 carries far more mass than mode 5 (exact
# numbers below). Simulated annealing (chapter 6) from uniform random starts, cooled from $T = 20$ to
# $T = 0.05$, ends on one of the two modes — which one depends on where the run was when the valleys
# closed, not on the mass each mode holds.

# %%
NUM_RUNGS = 40
ring_logits = 4.0 * np.cos(2.0 * np.pi * 2 * np.arange(10) / 10) + 1.5 * np.cos(2.0 * np.pi * np.arange(10) / 10)
lopsided = Categorical(ring_logits)
ring_proposal = RingStepProposal(10, 0.5)
uniform = IndependentCategorical(np.zeros(10))  # the base law p0
exact = lopsided.probabilities()
in_mode_0 = np.abs(((np.arange(10) + 5) % 10) - 5) <= 2  # states 8, 9, 0, 1, 2: mode 0's side of the valleys
print(f"exact: P(mode 0's side) = {exact[in_mode_0].sum():.3f}, P(mode 5's side) = {exact[~in_mode_0].sum():.3f}; "
      f"log Z = {lopsided.log_normalizer():.4f}")

starts = uniform.sample(np.random.default_rng(SEED).random((NUM_RUNS, 1)))  # explicit generator, one start per run
cooling = annealing.geometric_schedule(20.0, 0.05, NUM_RUNGS)
ends = np.array([
    int(annealing.sample(CounterGenerator(SEED, run), starts[run], lopsided.log_prob, ring_proposal, NUM_RUNGS,
                         temperatures=cooling).states.x[-1])
    for run in range(NUM_RUNS)
])
print(f"annealing to T = 0.05, {NUM_RUNS} runs: ended on mode 0's side in {np.mean(in_mode_0[ends]):.2f} of runs, "
      f"on state 0 or 5 in {np.mean((ends == 0) | (ends == 5)):.2f}")

# %% [markdown]
# AIS walks the same kind of ladder, $0 = \beta_0 < \beta_1 < \dots < \beta_K = 1$, through the
# geometric bridge $\gamma_k = p_0^{1 - \beta_k} \rho^{\beta_k}$: each particle starts as an exact draw
# from $p_0$, takes one MH step at every rung, and collects the weight
#
# $$
# \log w = \sum_{k=1}^{K} (\beta_k - \beta_{k-1}) \bigl(\log\rho(x_{k-1}) - \log p_0(x_{k-1})\bigr),
# \qquad \mathbb{E}[w] = Z, \qquad \mathbb{E}[w\, f(x_K)] = \textstyle\sum_x \rho(x) f(x),
# $$
#
# exactly, however poorly the moves mix. With a uniform $p_0$ the bridge is $\rho^{\beta_k}$ up to a
# constant: the moves are annealing's moves at $T = 1/\beta_k$, stopped at $T = 1$. So the
# *unweighted* final particles are what annealing to $T = 1$ would give; the weights are what AIS
# adds. `NUM_RUNS` independent runs of `NUM_PARTICLES` particles each, all at once in the torch twin
# (run $b$ uses counter stream $b$, the same particles the NumPy reference would draw):

# %%
betas = ais.power_schedule(NUM_RUNGS)
twin_target, twin_base, twin_proposal = (twin_of(o, torch.float64, "cpu") for o in (lopsided, uniform, ring_proposal))


def run_ais(ladder, num_runs, num_particles, target=twin_target, base=twin_base, proposal=twin_proposal):
    """Final particles (B, N), log-weights (B, N) and log Z-hat (B,) of num_runs AIS runs."""
    trace = torch_ais.sample(TorchCounterGenerator(SEED, torch.arange(num_runs)), None, target.log_prob, base,
                             proposal, len(ladder), betas=ladder, num_particles=num_particles)
    final = trace.final_state
    return final.x.numpy(), final.log_weight.numpy(), trace.infos.log_normalizer[:, -1].numpy()


particles, log_weights, log_z_hats = run_ais(betas, NUM_RUNS, NUM_PARTICLES)
log_z = lopsided.log_normalizer()
flat_states, flat_log_weights = particles.reshape(-1), log_weights.reshape(-1)
weights = ais.normalised_weights(flat_log_weights)
unweighted = np.bincount(flat_states, minlength=10) / flat_states.size
weighted = np.bincount(flat_states, weights=weights, minlength=10)
print(f"{NUM_RUNS} runs x {NUM_PARTICLES} particles, {NUM_RUNGS} rungs")
print(f"mode 0's side: unweighted particles {unweighted[in_mode_0].sum():.3f}, "
      f"weighted {weighted[in_mode_0].sum():.3f}, exact {exact[in_mode_0].sum():.3f}")
print(f"TV to the exact law: unweighted {diagnostics.empirical_tv_distance(flat_states, exact):.3f}, "
      f"weighted {0.5 * np.abs(weighted - exact).sum():.3f}")
print(f"log Z-hat over runs: mean {log_z_hats.mean():.4f}, sd {log_z_hats.std(ddof=1):.4f}; exact log Z {log_z:.4f}; "
      f"mean of Z-hat / Z = {np.mean(np.exp(log_z_hats - log_z)):.3f}")
ess_per_run = [ais.effective_sample_size(row) for row in log_weights]
print(f"ESS per run (of {NUM_PARTICLES}): median {np.median(ess_per_run):.1f}")

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
width = 0.28
axes[0].bar(np.arange(10) - width, exact, width, color="black", label="exact ρ/Z")
axes[0].bar(np.arange(10), unweighted, width, label="particles, unweighted")
axes[0].bar(np.arange(10) + width, weighted, width, label="particles, AIS weights")
axes[0].set_xlabel("state of the lopsided ring")
axes[0].set_ylabel("probability")
axes[0].legend(fontsize=8)
axes[1].hist(log_z_hats, bins=20, alpha=0.7)
axes[1].axvline(log_z, color="black", ls="--", label="exact log Z (enumeration)")
axes[1].set_xlabel(f"log Z-hat of one run ({NUM_PARTICLES} particles)")
axes[1].set_ylabel("runs")
axes[1].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# The unweighted particles split between the modes much as annealing did; the weights move the mass
# back to where $\rho$ puts it. $\hat Z$ is unbiased but $\log\hat Z$ is not: by Jensen's inequality
# $\mathbb{E}\log\hat Z \le \log Z$, so the histogram of $\log\hat Z$ sits a little to the left of the
# exact value, by about half its variance when that is small.
#
# ## More rungs, less variance
#
# One rung ($K = 1$) is plain importance sampling from $p_0$; each extra rung replaces one large jump
# in $\beta$ by smaller ones, and the MH moves in between let particles settle into each $\gamma_k$.
# The variance of $\log\hat Z$ across runs, against the number of rungs, for the same particles per run:

# %%
rung_counts = [1, 3, 10, 30, 100]
spreads = []
for num_rungs in rung_counts:
    _, _, estimates = run_ais(ais.power_schedule(num_rungs), NUM_RUNS, NUM_PARTICLES)
    spreads.append(np.var(estimates, ddof=1))
    print(f"K = {num_rungs:>3} rungs: log Z-hat mean {estimates.mean():+.4f} (exact {log_z:+.4f}), "
          f"variance {spreads[-1]:.2e}, over {NUM_RUNS} runs")
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.loglog(rung_counts, spreads, marker="o")
ax.set_xlabel("rungs K (target evaluations per particle)")
ax.set_ylabel("variance of log Z-hat across runs")
ax.grid(True, which="major", alpha=0.3)
fig.tight_layout()

# %% [markdown]
# Each rung costs one target evaluation per particle, so the comparison to make is at equal
# evaluations: $K$ rungs with $N$ particles against one rung with $KN$ particles (try it below).
#
# ## Tempered SMC: a resampling step between rungs
#
# AIS lets every particle walk the whole ladder, however light its weight has become. Sequential Monte
# Carlo adds one step between rungs {cite:p}`delmoral2006sequential`: when the effective sample size
# $(\sum w)^2 / \sum w^2$ falls below $N/2$, draw $N$ ancestors with probabilities proportional to the
# weights (systematic scheme), copy the particles, and give every copy the *mean* weight, so that the
# product of the mean weights over the resampling epochs is still an unbiased $\hat Z$. That step is
# `annealed_importance.resample`, checked exactly — by enumeration of a two-particle system — in
# `test_a_resampling_step_fits_between_rungs`; the loop below only alternates the package's
# `annealed_importance.step` and `annealed_importance.resample`, resampling when the ESS is low.

# %%
NUM_SMC_RUNS = 6 if os.environ.get("CI") else 60  # the NumPy reference, one run at a time


def tempered_smc(rng, target, base, proposal, ladder, num_particles, ess_fraction=0.5):
    """AIS rungs, resampling (then every weight = the mean weight) whenever the ESS < ess_fraction * N.

    Step 0 of ``rng`` draws the particles; rung k uses step 2k + 1, its resampling step 2k + 2.
    Returns log Z-hat, the final AISState and the number of resampling steps taken.
    """
    x0 = ais.draw_particles(draw_uniforms(rng, 0, ais.num_base_uniforms(base, num_particles)), base, num_particles)
    state = ais.init(x0, target.log_prob, base)
    resampled = 0
    for k, beta in enumerate(ladder):
        uniforms = draw_uniforms(rng, 2 * k + 1, ais.num_uniforms(proposal, num_particles))
        state, info = ais.step(uniforms, state, target.log_prob, base, proposal, beta=beta)
        if k < len(ladder) - 1 and info.effective_sample_size < ess_fraction * num_particles:
            uniforms = draw_uniforms(rng, 2 * k + 2, resampling.num_uniforms(num_particles, "systematic"))
            state = ais.resample(uniforms, state, "systematic")  # by ancestor; every weight the mean weight
            resampled += 1
    return ais.log_normalizer_estimate(state.log_weight), state, resampled


smc_runs = [tempered_smc(CounterGenerator(SEED, run), lopsided, uniform, ring_proposal, betas, NUM_PARTICLES)
            for run in range(NUM_SMC_RUNS)]
smc_log_z = np.array([log_z_hat for log_z_hat, _, _ in smc_runs])
smc_states = np.concatenate([state.x for _, state, _ in smc_runs])
smc_weighted = np.bincount(smc_states, weights=np.concatenate(
    [ais.normalised_weights(state.log_weight) / NUM_SMC_RUNS for _, state, _ in smc_runs]), minlength=10)
print(f"{NUM_RUNGS} rungs, {NUM_PARTICLES} particles per run; resampling steps per run: "
      f"mean {np.mean([count for _, _, count in smc_runs]):.1f}")
print(f"log Z-hat: AIS ({NUM_RUNS} runs) mean {log_z_hats.mean():.4f}, variance {log_z_hats.var(ddof=1):.2e}; "
      f"tempered SMC ({NUM_SMC_RUNS} runs) mean {smc_log_z.mean():.4f}, variance {smc_log_z.var(ddof=1):.2e}; "
      f"exact {log_z:.4f}")
print(f"TV of the weighted particles to the exact law: AIS {0.5 * np.abs(weighted - exact).sum():.3f} "
      f"({NUM_RUNS} runs pooled), tempered SMC {0.5 * np.abs(smc_weighted - exact).sum():.3f} "
      f"({NUM_SMC_RUNS} runs pooled)")

# %% [markdown]
# Resampling spends the particles where the current rung's law puts its mass instead of carrying
# nearly weightless ones to the end; the price is that copies of one ancestor are no longer
# independent. On this small target, with forty gentle rungs, the ESS seldom falls below $N/2$ (the
# printed number of resampling steps per run) and the two variances are of the same order: what sets
# $\hat Z$'s spread here is how many particles are on each side of the valleys when they close, and a
# local move cannot carry a particle across afterwards, resampled or not. Resampling earns its keep
# where weights degenerate along the way, as in SMC over the prefixes of a language model
# (`textsampling.reference.smc`). Mind the numbers of runs behind each variance before reading more
# into it.
#
# ## Parallel tempering
#
# Parallel tempering keeps $M$ chains, replica $m$ at temperature $T_m$ ($T_0 = 1 < T_1 < \dots$),
# targeting the product $\prod_m \rho(x_m)^{1/T_m} / Z_m$. Each step, every replica takes an MH step at
# its temperature, then neighbours $(i, i+1)$ — the even pairs or the odd pairs, by a coin — propose to
# swap states, accepted with probability
#
# $$
# \min\Bigl(1,\ \exp\bigl[(1/T_i - 1/T_{i+1})(\log\rho(x_{i+1}) - \log\rho(x_i))\bigr]\Bigr),
# $$
#
# which keeps the product law invariant; replica 0 is a chain on $\pi$ itself. It costs $M$ target
# evaluations per step (the swaps reuse the cached log-densities), so it must beat $M$ steps of a
# single chain.
#
# ### Exactly: the spectral gap
#
# On the ring (ten states, two replicas: 100 joint states) the kernel of one PT step is an exact
# matrix (`parallel_tempering.transition_matrix`). Its second-largest eigenvalue modulus (SLEM) sets the
# rate at which the chain forgets its start; the relaxation time in *target evaluations* is
# $M / (1 - \mathrm{SLEM})$ for PT and $1 / (1 - \mathrm{SLEM})$ for the single chain.

# %%
ring = setups["bimodal ring"]


def slem(matrix) -> float:
    """Second-largest eigenvalue modulus of a transition matrix."""
    return float(np.sort(np.abs(np.linalg.eigvals(matrix)))[-2])


single_slem = slem(annealing.transition_matrix(ring.target, ring.proposal, 1.0))
single_relaxation = 1.0 / (1.0 - single_slem)
print(f"single chain: SLEM {single_slem:.6f}, relaxation time {single_relaxation:,.0f} target evaluations")
hot_temperatures = [1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0]
relaxations, swap_rates = [], []
for hot in hot_temperatures:
    temperatures = np.array([1.0, hot])
    joint = pt.transition_matrix(ring.target, ring.proposal, temperatures)
    relaxations.append(2.0 / (1.0 - slem(joint)))
    # The exact mean swap acceptance under the product law: E[alpha] over independent draws of both replicas.
    tempered = [np.exp(ring.target.log_prob_all() / t - np.logaddexp.reduce(ring.target.log_prob_all() / t))
                for t in temperatures]
    log_rho = ring.target.log_prob_all()
    alphas = np.exp(pt.swap_log_accept_prob(log_rho[:, None], log_rho[None, :], 1.0, hot))
    swap_rates.append(float(tempered[0] @ alphas @ tempered[1]))
    print(f"PT T = (1, {hot:>4}): relaxation time {relaxations[-1]:>9,.0f} evaluations "
          f"({single_relaxation / relaxations[-1]:,.0f}x faster); exact swap acceptance {swap_rates[-1]:.3f}")
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.loglog(hot_temperatures, relaxations, marker="o", label="PT, 2 replicas")
ax.axhline(single_relaxation, color="black", ls="--", label="single chain")
ax.xaxis.set_major_formatter(ScalarFormatter())  # plain numbers, no minor-tick labels
ax.xaxis.set_minor_formatter(NullFormatter())
ax.set_xticks([1.5, 2, 4, 8, 20])
ax.set_xlabel("temperature of the hot replica")
ax.set_ylabel("relaxation time\n(target evaluations)")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# A barely warmer replica cannot cross the valleys either, so the pair relaxes only a few times
# faster than one chain. Over this range the hotter the second replica the faster the pair, by the factors printed,
# even though its swaps are accepted less and less often: on ten states a hot replica is close to
# uniform and is in the other mode a good part of the time, so one accepted swap in three is plenty.
# On large targets a hot state is rarely good enough for the cold replica, the acceptance collapses,
# and the gap between $T_0$ and $T_{\max}$ has to be bridged by many rungs. The exact claim behind this
# section, for $T = (1, 6)$, is `test_tempering_mixes_faster_than_the_single_chain_on_a_bimodal_target`.
#
# ### A run on the Ising chain: swaps and replica paths
#
# Four replicas on chapter 5's $J = 2$ Ising chain, temperatures geometric from 1 to 8, every replica
# started with all spins down. The printout gives the swap acceptance of each neighbour pair; the
# plot follows each *replica* (each state, as it is handed up and down) through the temperatures.

# %%
ising = setups["Ising J=2 (ch. 5)"]
num_replicas = len(ising.temperatures)
pt_trace = pt.sample(CounterGenerator(SEED, 0), np.stack([ising.starts[0]] * num_replicas), ising.target.log_prob,
                     ising.proposal, NUM_STEPS // num_replicas, temperatures=ising.temperatures)
proposed, accepted = pt_trace.infos.swap_proposed, pt_trace.infos.swap_accepted
for i in range(num_replicas - 1):
    print(f"pair T = ({ising.temperatures[i]:.2f}, {ising.temperatures[i + 1]:.2f}): "
          f"swap accepted in {accepted[:, i].sum() / proposed[:, i].sum():.2f} of {proposed[:, i].sum()} proposals")
# Which replica sits at each temperature: follow the accepted swaps.
position = np.arange(num_replicas)  # position[r] = temperature index of replica r
paths = []
for step_swaps in accepted:
    for i in np.flatnonzero(step_swaps):
        lower, upper = np.flatnonzero(position == i)[0], np.flatnonzero(position == i + 1)[0]
        position[lower], position[upper] = i + 1, i
    paths.append(position.copy())
paths = np.array(paths)
cold = ising.statistic(pt_trace.states.x[:, 0])
single = mh.sample(CounterGenerator(SEED, 0), ising.starts[0], ising.target.log_prob, ising.proposal, NUM_STEPS)
cold_side, single_side = start_side[ising.name](pt_trace.states.x[:, 0]), start_side[ising.name](single.states.x)
print(f"crossings between fewer than 5 spins up and 5 or more: PT cold chain {np.sum(cold_side[1:] != cold_side[:-1])} "
      f"in {NUM_STEPS // num_replicas} PT steps ({NUM_STEPS} evaluations), single chain "
      f"{np.sum(single_side[1:] != single_side[:-1])} in {NUM_STEPS} steps")

shown = min(len(paths), 300)  # a longer stretch is a solid block of colour
fig, axes = plt.subplots(2, 1, figsize=(10, 6))
for replica in range(num_replicas):
    offset = 0.08 * (replica - (num_replicas - 1) / 2)  # so that lines at one temperature do not hide each other
    axes[0].step(np.arange(shown) * num_replicas, paths[:shown, replica] + offset, where="post", lw=0.8,
                 label=f"replica {replica}")
axes[0].set_yticks(range(num_replicas), [f"T = {t:.2f}" for t in ising.temperatures])
axes[0].set_xlabel("target evaluations")
axes[0].set_title(f"where each replica is on the ladder (the first {shown} PT steps)", fontsize=10)
axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
axes[1].plot(np.arange(len(cold)) * num_replicas, cold, lw=0.7, label="PT cold chain")
axes[1].plot(ising.statistic(single.states.x), lw=0.7, alpha=0.7, label="single MH chain")
axes[1].set_xlabel("target evaluations")
axes[1].set_ylabel("magnetisation")
axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
fig.tight_layout()

# %% [markdown]
# ### PT against the single chain at equal evaluations, on the three targets
#
# `mixing_comparison` runs four chains of each kind per target — two started in each mode — with
# `NUM_EVALUATIONS` target evaluations each: that many MH steps for a single chain, that many divided
# by $M$ steps for PT (its cold chain is what is kept). It reports the split $\hat R$ of the four chains
# (above 1.01 is the alarm) and the TV distance between each chain's histogram and the exact law,
# averaged over chains, as the evaluations grow.

# %%
comparisons = {name: mixing_comparison(setup, NUM_EVALUATIONS, seed=SEED) for name, setup in setups.items()}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
for ax, (name, result) in zip(axes, comparisons.items()):
    for key, label in (("single", "single MH chain"), ("tempering", "PT cold chain")):
        ax.semilogx(result["evaluations"], result[key]["tv"], marker="o", label=label)
    ax.set_title(name, fontsize=10)
    ax.set_ylim(0.0, None)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("target evaluations per chain")
    ax.grid(True, which="major", alpha=0.3)
axes[0].set_ylabel("TV to the exact law\n(mean over chains)")
axes[0].legend(fontsize=8)
fig.tight_layout()
for name, result in comparisons.items():
    single_tv, tempered_tv = result["single"]["tv"][-1], result["tempering"]["tv"][-1]
    verdict = "PT better" if tempered_tv < single_tv else "PT NOT better"
    print(f"{name:>18} ({len(setups[name].temperatures)} replicas, {NUM_EVALUATIONS} evaluations): "
          f"split R-hat single {result['single']['rhat']:.3f}, PT {result['tempering']['rhat']:.3f}; "
          f"final TV single {single_tv:.3f}, PT {tempered_tv:.3f} -> {verdict}")

# %% [markdown]
# Read the printout rather than the hope. On the ring, the target with the deepest valleys, PT's cold
# chains approach the exact law far sooner than single chains at the same budget, as the spectral gap
# predicted, and their $\hat R$ is the closest to 1. On the Ising chain the single chains do cross now
# and then when given enough steps, just more slowly. On chapter 4's mixture the valley is shallow: the
# single chain crosses on its own, and PT spends three of its four evaluations on hot replicas that the
# cold chain sees only through swaps. At an equal budget PT need not win there: the verdict line says
# whether it did for this `SEED`, and with another seed the two can come out in the other order (the
# last exercise). Tempering pays where crossing the valley is the bottleneck, and only there.
#
# %% [markdown]
# ## PT over sentences
#
# The same ladder works over sentences, with chapter 8's CGMH kernel (replace / insert / delete around
# the keywords) as the move of each replica: `sentence_tempering` runs one CGMH chain per temperature on
# $\rho^{1/T_m}$ and lets neighbours swap whole sentences, accepted with the ratio above on the cached,
# *untempered* $\log\rho$. Every replica always holds the keywords: a swap only changes who holds which
# sentence. The joint law is $\Pi = \prod_m \rho(x_m)^{1/T_m}/Z_m$, and the replica at $T_0 = 1$ samples
# $\rho\chi/Z$.
#
# A target small enough to enumerate, with two modes: the bigram oracle over three tokens (token 2 is
# the keyword), sentences of at most three tokens, where 0 rarely follows 1 and 1 rarely follows 0, so
# "0 0 2" and "1 1 2" are the two best sentences and every single edit between them passes through an
# unlikely or a shorter sentence. $\rho(x) = p(x)\, e^{c\,|x|}\, \chi(x)$: the similarity term
# $e^{c|x|}$ rewards length by $c$ nats a token (chapter 1's $p \cdot \mathrm{sim} \cdot \chi$), so the
# larger $c$, the deeper the valley through the short sentences.

# %%
NUM_SENTENCE_CHAINS = 100 if os.environ.get("CI") else 1_000  # independent chains of the sampled check
NUM_SENTENCE_EVALUATIONS = 200 if os.environ.get("CI") else 400  # CGMH steps per chain (PT: over M replicas)
sentence_start = np.log([0.45, 0.45, 0.10])
sentence_transitions = np.log([[0.6, 0.01, 0.3, 0.09],  # after 0: 0, 1, 2, END
                               [0.01, 0.6, 0.3, 0.09],  # after 1
                               [0.02, 0.02, 0.02, 0.94]])  # after 2
sentence_oracle = BigramOracle(BigramLM(sentence_start, sentence_transitions, 3))
sentence_ladder = spt.geometric_temperatures(2, 3.0)  # T = (1, 3)


def sentence_config(length_bonus):
    """CGMH settings on the oracle: keyword token 2, full candidate sets, log sim = length_bonus * length."""
    return cgmh.make_config(sentence_oracle, [2], num_candidates=3,
                            log_similarity_fn=lambda states: length_bonus * np.sum(np.asarray(states) >= 0, axis=1))


def exact_sentence_law(config):
    """The enumerated sentences with chi = 1 and rho chi / Z on them."""
    states = cgmh.enumerate_sentences(config)
    log_rho = cgmh.log_target(config, states)
    return states, np.exp(log_rho - logsumexp(log_rho))


config = sentence_config(4.0)
sentences, sentence_law = exact_sentence_law(config)
num_sentences = len(sentences)
joint_kernel = spt.transition_matrix(config, sentences, sentence_ladder)
product_law = np.exp(spt.product_log_probs(config, sentences, sentence_ladder))
cold_marginal = product_law.reshape(num_sentences, num_sentences).sum(axis=1)
print(f"{num_sentences} sentences, {num_sentences ** 2} joint states of two replicas, "
      f"T = {np.round(sentence_ladder, 3).tolist()}")
print(f"exact check: max |(Pi P - Pi)| = {markov.stationarity_residual(joint_kernel, product_law):.1e}, "
      f"irreducible: {markov.is_irreducible(joint_kernel)}, "
      f"max |T=1 marginal - rho chi/Z| = {np.abs(cold_marginal - sentence_law).max():.1e}")
best = np.argsort(-sentence_law)[:3]
print("most probable sentences: " + ", ".join(
    f"{' '.join(str(t) for t in sentences[i] if t >= 0)!r} {sentence_law[i]:.3f}" for i in best))

# %% [markdown]
# The exact check is the one `tests/test_reference_sentence_tempering.py` makes (with a swap kernel
# also enumerated from the swap's own uniforms, and the gallery's wrong swaps — tempered scores in the
# ratio, or no $1/T_i - 1/T_{i+1}$ — failing it). Now the comparison at equal cost. Each CGMH step
# scores a candidate list, so the budget is counted in CGMH steps: $n$ for a single chain, $n/M$
# parallel tempering steps of $M$ replicas. Both chains start on "0 0 2". From the exact kernels, the law
# of the chain after $n$ evaluations, $e_{x_0} P^n$ (for PT, the $T = 1$ marginal of
# $e_{(x_0, x_0)} P_{PT}^{n/2}$), and its TV distance to $\rho\chi/Z$, for a shallow valley ($c = 2$)
# and a deeper one ($c = 4$):

# %%
def exact_tv_curves(config, num_evaluations):
    """TV to rho chi / Z after 2, 4, ... evaluations: (single CGMH, PT cold replica), from the exact kernels."""
    states, law = exact_sentence_law(config)
    size = len(states)
    single_kernel = cgmh.transition_matrix(config, states)
    tempering_kernel = spt.transition_matrix(config, states, sentence_ladder)
    start = next(i for i, x in enumerate(states) if x.tolist() == [0, 0, 2])
    single, tempered = np.eye(size)[start], np.eye(size * size)[start * size + start]
    single_tv, tempered_tv = [], []
    for _ in range(num_evaluations // 2):
        single = single @ single_kernel @ single_kernel  # two evaluations
        tempered = tempered @ tempering_kernel  # two evaluations: one per replica
        single_tv.append(markov.tv_distance(single, law))
        tempered_tv.append(markov.tv_distance(tempered.reshape(size, size).sum(axis=1), law))
    return np.array(single_tv), np.array(tempered_tv)


evaluations = np.arange(2, NUM_SENTENCE_EVALUATIONS + 1, 2)
curves = {bonus: exact_tv_curves(sentence_config(bonus), NUM_SENTENCE_EVALUATIONS) for bonus in (2.0, 4.0)}
for bonus, (single_tv, tempered_tv) in curves.items():
    for n in (50, 100, 200):
        k = n // 2 - 1
        verdict = "PT better" if tempered_tv[k] < single_tv[k] else "PT NOT better"
        print(f"c = {bonus:.0f}, {n:>3} evaluations: exact TV single CGMH {single_tv[k]:.4f}, "
              f"PT cold replica {tempered_tv[k]:.4f} -> {verdict}")

# %% [markdown]
# And the same run sampled: `NUM_SENTENCE_CHAINS` independent chains of each kind from "0 0 2", all at
# once in the torch twins (chain $b$ on counter stream $b$), for $c = 4$. At each budget, the histogram
# of the chains' current sentences (PT: the $T = 1$ replica's) against $\rho\chi/Z$: an empirical TV,
# which sits a little above the exact curve (Monte Carlo error of the histogram of
# `NUM_SENTENCE_CHAINS` draws; the fewer the chains, the more it scatters).

# %%
chain_index = torch.arange(NUM_SENTENCE_CHAINS)
sentence_starts = torch.tensor([[0, 0, 2]] * NUM_SENTENCE_CHAINS)
single_trace = torch_cgmh.sample(TorchCounterGenerator(SEED, chain_index), sentence_starts, config,
                                 NUM_SENTENCE_EVALUATIONS)
tempering_trace = torch_spt.sample(TorchCounterGenerator(SEED, chain_index), sentence_starts, config,
                                   NUM_SENTENCE_EVALUATIONS // 2, temperatures=sentence_ladder)
sentence_index = {tuple(x.tolist()): i for i, x in enumerate(sentences)}


def empirical_tv(states):
    """TV between the histogram of (N, L) sentences and rho chi / Z."""
    cells = np.array([sentence_index[tuple(x.tolist())] for x in states.numpy()])
    return diagnostics.empirical_tv_distance(cells, sentence_law)


checkpoints = [n for n in (10, 20, 50, 100, 200, 400) if n <= NUM_SENTENCE_EVALUATIONS]
sampled_single = [empirical_tv(single_trace.states.x[:, n - 1]) for n in checkpoints]
sampled_tempered = [empirical_tv(tempering_trace.states.x[:, n // 2 - 1, 0]) for n in checkpoints]
swap_rate = tempering_trace.infos.swap_accepted.double().mean().item()  # one pair, proposed every other step
proposed_rate = tempering_trace.infos.swap_proposed.double().mean().item()
print(f"{NUM_SENTENCE_CHAINS} chains; swaps proposed in {proposed_rate:.2f} of the PT steps, "
      f"accepted in {swap_rate / proposed_rate:.2f} of the proposals")
for n, single_tv, tempered_tv in zip(checkpoints, sampled_single, sampled_tempered):
    print(f"{n:>3} evaluations: empirical TV single CGMH {single_tv:.3f}, PT cold replica {tempered_tv:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for ax, (bonus, (single_tv, tempered_tv)) in zip(axes, curves.items()):
    ax.semilogy(evaluations, single_tv, label="single CGMH (exact)")
    ax.semilogy(evaluations, tempered_tv, label="PT, T = 1 replica (exact)")
    if bonus == 4.0:
        ax.semilogy(checkpoints, sampled_single, "o", color="C0", label=f"single, {NUM_SENTENCE_CHAINS} chains")
        ax.semilogy(checkpoints, sampled_tempered, "s", color="C1", label=f"PT, {NUM_SENTENCE_CHAINS} chains")
    ax.set_title(f"length bonus c = {bonus:.0f} nats per token", fontsize=10)
    ax.set_xlabel("CGMH steps (target evaluations) per chain")
    ax.grid(True, which="major", alpha=0.3)
axes[0].set_ylabel("TV to ρχ/Z")
axes[1].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# Read the verdict lines. With the shallow valley ($c = 2$) one CGMH chain crosses between "0 0 2" and
# "1 1 2" on its own, and the evaluations PT spends on the hot replica are mostly lost: at equal cost it
# is behind. With $c = 4$ the short sentences that connect the two modes are $e^{4}$ times less likely
# per missing token, the single chain waits for a rare crossing, while the hot replica, on
# $\rho^{1/3}$, sees every valley three times shallower (in nats) and hands what it finds down through
# the swaps: the cold replica approaches $\rho\chi/Z$ sooner.
# Same lesson as on the ring and the Ising chain, now over sentences: tempering pays for its hot
# replicas only where a valley is the bottleneck. On the built-in model it is
# `textsampling generate --sampler pt --keywords king,crown` (`--num-replicas`, `--max-temperature`),
# which records the $T = 1$ replica as each chain's sentence, with the swaps.
#
# ## Try this
#
# 1. Compare AIS at equal evaluations: $K = 1$ rung with $100 \times$ `NUM_PARTICLES` particles against
#    $K = 100$ rungs with `NUM_PARTICLES`. Which has the smaller variance of $\log\hat Z$ on the lopsided
#    ring, and why does the answer depend on how different $p_0$ and $\pi$ are?
# 2. Make the ring more lopsided (replace 1.5 by 4). What happens to the unweighted particles, the
#    weighted ones, and the ESS per run?
# 3. Add a third replica to the exact spectral-gap computation (1000 joint states, a slower
#    eigendecomposition): does $T = (1, 3, 9)$ beat the best pair above per evaluation?
# 4. Give the Ising ladder of `mixing_setups` a hottest temperature of 2 instead of 8. Which neighbour
#    pair's swap acceptance changes most, and does the cold chain still cross between the modes?
# 5. Rerun `mixing_comparison` on the mixture with five other seeds, then with two replicas instead of
#    four (`dataclasses.replace(setup, temperatures=...)`). How often does PT beat the single chain at
#    equal evaluations, and does the smaller ladder change that?
# 6. Over sentences, find the length bonus $c$ at which PT starts to beat the single CGMH chain at 100
#    evaluations, then try a hotter ladder (`geometric_temperatures(2, 10.0)`) and three replicas
#    (`geometric_temperatures(3, 6.0)`; the exact kernel has $25^3$ states, so use the sampled check).
