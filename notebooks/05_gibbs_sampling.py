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
# # 5. Gibbs sampling
#
# For a sequence $x = (x_1, \dots, x_L)$, Gibbs sampling {cite:p}`geman1984stochastic` repeatedly picks a
# position $i$ and redraws its token from the exact conditional given all the others,
#
# $$
# x_i \sim \pi(x_i \mid x_{-i}) = \frac{\rho(x_1, \dots, v, \dots, x_L)}{\sum_{v'} \rho(x_1, \dots, v', \dots, x_L)}
# \Big|_{v = x_i} .
# $$
#
# Like MH it needs only ratios of $\rho$ (the normaliser of the conditional is a sum over one position,
# not over all texts). It is the algorithm behind "BERT speaks" (chapter 7) {cite:p}`su2021part3`: a
# masked language model outputs a conditional of this *form* — though BERT's conditionals need not be
# the conditionals of any joint law, so there the chain's stationary law is not known (chapter 7).
# Two orders of positions are standard (textbook material; Su's posts do not discuss them):
#
# * **random scan** — $i$ uniform at each step: $P = \frac1L \sum_i K_i$;
# * **systematic scan** — sweep $i = 1, \dots, L$ in turn: $P = K_1 K_2 \cdots K_L$.
#
# Each site kernel $K_i$ satisfies detailed balance with $\pi$, so both scans leave $\pi$ invariant; but
# only the random scan is reversible in general (a sweep $K_1 \cdots K_L$ is reversible only if it
# equals its reverse $K_L \cdots K_1$, which it does not here). This chapter checks all of it exactly.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from textsampling import diagnostics, markov
from textsampling.reference import gibbs
from textsampling.reference import metropolis_hastings as mh
from textsampling.reference.proposals import SingleSiteProposal
from textsampling.targets import FixedLengthBigram, PairwiseChain

SEED = 1984
NUM_STEPS = 400 if os.environ.get("CI") else 10_000
rng = np.random.default_rng(SEED)

# %% [markdown]
# ## The target: four-token sentences, with the exact conditionals
#
# A bigram model conditioned on length 4 over four words, $4^4 = 256$ sentences,
# $\rho(x) = p(x_1) \prod_{t=2}^{L} p(x_t \mid x_{t-1})\; p(\mathrm{END} \mid x_L)$. Its masked conditional
# has a closed form — only the factors that contain $x_i$ survive the normalisation over $v$:
#
# $$
# \pi(x_i = v \mid x_{-i}) \propto
# \begin{cases}
# p(x_1 = v)\, p(x_2 \mid v) & i = 1, \\
# p(v \mid x_{i-1})\, p(x_{i+1} \mid v) & 1 < i < L, \\
# p(v \mid x_{L-1})\, p(\mathrm{END} \mid v) & i = L,
# \end{cases}
# $$
#
# the "oracle masked LM" that stands in for BERT in the exact tests. The boundary factors matter: the
# start law $p(x_1 = v)$ and the end probability $p(\mathrm{END} \mid v)$ are part of $\rho$, and a
# conditional that dropped them would be the conditional of another law. Below, the closed form that
# `conditional_log_probs` computes is checked against the brute-force ratio of $\rho$ at every position
# of every sentence, and against the same formula with the boundary factors left out.

# %%
WORDS = ["dogs", "bark", "cats", "purr"]
initial_logits = np.array([1.0, -1.0, 1.0, -1.0])
transition_logits = np.array([
    # dogs bark cats purr  END
    [-2.0, 2.0, -1.0, -2.0, -1.0],  # after "dogs"
    [0.5, -2.0, 0.5, -2.0, 1.0],  # after "bark"
    [-1.0, -2.0, -2.0, 2.0, -1.0],  # after "cats"
    [0.5, -2.0, 0.5, -2.0, 1.0],  # after "purr"
])
target = FixedLengthBigram(initial_logits, transition_logits, length=4)
pi = target.probabilities()


def sentence(tokens) -> str:
    return " ".join(WORDS[t] for t in tokens)


x = np.array([0, 1, 2, 3])
print("sentence:", sentence(x))
for position in range(4):
    conditional = np.exp(target.conditional_log_probs(x[None], position)[0])
    print(f"  π(x_{position + 1} = · | rest) =", {word: round(float(p), 3) for word, p in zip(WORDS, conditional)})

# The closed form against the brute-force ratio ρ(x with x_i = v) / Σ_v' ρ(...), everywhere.
worst = max(
    np.abs(target.conditional_log_probs(target.states, i) - target.brute_force_conditional_log_probs(target.states, i)).max()
    for i in range(target.length)
)
print(f"closed form vs brute force, all {target.num_states} sentences × {target.length} positions: "
      f"max |Δ log π| = {worst:.1e}")
# Without the boundary factors: p(x_2 | v) alone at the start, p(v | x_{L-1}) alone at the end
# (target.log_transition[a, b] = log p(b | a), column V = END), for every sentence at once.
vocab, states = target.vocab_size, target.states
for position, name, unnormalised in (
    (0, "p(x_1 = v)", target.log_transition[:vocab, states[:, 1]].T),  # (N, V): log p(x_2 | v)
    (target.length - 1, "p(END | v)", target.log_transition[states[:, -2], :vocab]),  # (N, V): log p(v | x_{L-1})
):
    without = np.exp(unnormalised - np.logaddexp.reduce(unnormalised, axis=1, keepdims=True))
    exact = np.exp(target.conditional_log_probs(states, position))
    tv = 0.5 * np.abs(without - exact).sum(axis=1)
    print(f"  position {position + 1} without {name}: TV to the exact conditional, largest over the sentences "
          f"= {tv.max():.3f}")

# %% [markdown]
# ## Random scan and systematic scan, exactly
#
# `gibbs.transition_matrix` builds both kernels from the same conditional function that `gibbs.step`
# and `gibbs.sweep` call. Both have $\pi$ as a stationary law to rounding error; the detailed-balance
# residual tells them apart. To compare speeds fairly, one systematic sweep updates $L$ positions, so
# it is compared with $L$ random-scan steps.

# %%
random_scan = gibbs.transition_matrix(target, scan="random")
systematic_scan = gibbs.transition_matrix(target, scan="systematic")
for name, matrix in (("random scan", random_scan), ("systematic scan", systematic_scan)):
    print(
        f"{name:>16}: stationarity residual {markov.stationarity_residual(matrix, pi):.1e}, "
        f"detailed-balance residual {markov.detailed_balance_residual(matrix, pi):.1e}"
    )

start = int(target.state_index(np.array([1, 1, 1, 1]))[0])  # "bark bark bark bark", improbable
num_sweeps = 12
fig, ax = plt.subplots(figsize=(8, 3.8))
ax.semilogy(
    markov.mixing_curve(np.linalg.matrix_power(random_scan, 4), start, num_sweeps, pi), "o-", label="random scan (4 steps)"
)
ax.semilogy(markov.mixing_curve(systematic_scan, start, num_sweeps, pi), "s-", label="systematic scan (1 sweep)")
ax.set_xlabel("sweeps (4 site updates each)")
ax.set_ylabel("TV(law, π), exact")
ax.set_title("start: 'bark bark bark bark'")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## The samplers reach the exact law
#
# Now the sampler itself: `gibbs.sample` with each scan, histogram over the 256 sentences against the
# exact probabilities (the 15 most probable are shown), and the TV distance as the chain grows, next
# to that of independent exact draws.

# %%
traces = {
    scan: gibbs.sample(rng, np.array([1, 1, 1, 1]), target.conditional_log_probs, NUM_STEPS, scan=scan)
    for scan in ("random", "systematic")
}
top = np.argsort(pi)[::-1][:15]
fig, axes = plt.subplots(1, 2, figsize=(14, 4.2))
axes[0].bar(np.arange(15) - 0.27, pi[top], width=0.27, color="black", label="exact")
for k, (scan, trace) in enumerate(traces.items()):
    frequencies = np.bincount(target.state_index(trace.states.x), minlength=target.num_states) / NUM_STEPS
    axes[0].bar(np.arange(15) + 0.27 * k, frequencies[top], width=0.27, label=f"{scan} scan")
axes[0].set_xticks(np.arange(15), [sentence(target.states[i]) for i in top], rotation=60, ha="right", fontsize=8)
axes[0].set_ylabel("probability")
axes[0].legend(loc="upper right")  # the bars fall off to the right: that corner is empty
checkpoints = np.unique(np.geomspace(10, NUM_STEPS, 25).astype(int))
for scan, trace in traces.items():
    indices = target.state_index(trace.states.x)
    axes[1].loglog(checkpoints, [diagnostics.empirical_tv_distance(indices[:n], pi) for n in checkpoints], "o-", label=f"{scan} scan")
exact_draws = target.state_index(target.sample_exact(rng, NUM_STEPS))
axes[1].loglog(checkpoints, [diagnostics.empirical_tv_distance(exact_draws[:n], pi) for n in checkpoints], "k--", label="exact draws")
axes[1].set_xlabel("n (steps, or sweeps for the systematic scan)")
axes[1].set_ylabel("TV(histogram of the first n, π)")
axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, off the curves
fig.tight_layout()

# %% [markdown]
# ## Gibbs is Metropolis–Hastings whose acceptance is always 1
#
# View a site update as an MH proposal: $y$ equals $x$ except $y_i = v$, proposed with
# $q(y \mid x) = \pi(v \mid x_{-i})$. Since $x_{-i} = y_{-i}$,
#
# $$
# \frac{\rho(y)\, q(x \mid y)}{\rho(x)\, q(y \mid x)}
# = \frac{\rho(y)\, \pi(x_i \mid x_{-i})}{\rho(x)\, \pi(y_i \mid x_{-i})}
# = \frac{\rho(y)\, \rho(x)}{\rho(x)\, \rho(y)} = 1 .
# $$
#
# Below, the package's MH acceptance function evaluated on *every* state, position and token of the
# target, with this proposal: all $256 \times 4 \times 4$ log-acceptances are 0 up to rounding. An MH
# sampler with a blind proposal (a uniform new token) on the same target accepts far less often.

# %%
log_accepts = []
for x in target.states:
    for position in range(target.length):
        log_conditional = target.conditional_log_probs(x[None], position)[0]
        for token in range(target.vocab_size):
            y = x.copy()
            y[position] = token
            log_q_ratio = log_conditional[x[position]] - log_conditional[token]  # log q(x|y) - log q(y|x)
            log_accepts.append(mh.log_accept_ratio(target.log_prob(x[None])[0], target.log_prob(y[None])[0], log_q_ratio))
log_accepts = np.array(log_accepts)
print(f"{log_accepts.size} Gibbs moves: max |log α| = {np.abs(log_accepts).max():.1e}")

blind = mh.sample(rng, np.array([1, 1, 1, 1]), target.log_prob, SingleSiteProposal(4, 4), NUM_STEPS)
print(f"MH with a uniform new token: acceptance rate {diagnostics.acceptance_rate(blind.infos.accepted):.3f}")

# %% [markdown]
# Acceptance 1 is not the same as fast mixing. On a strongly coupled Ising chain
# ($\log\rho(s) = J \sum_i s_i s_{i+1}$, $J = 2$, 10 spins), flipping one spin against both neighbours
# is very unlikely, so the random-scan Gibbs chain sits in "all up" or "all down" for long stretches:
# the magnetisation $\frac1L\sum_i s_i$ switches sign rarely, and its autocorrelation decays slowly.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [2, 1]})
for coupling in (0.3, 2.0):
    ising = PairwiseChain.ising(10, coupling=coupling)
    trace = gibbs.sample(rng, np.zeros(10, dtype=np.int64), ising.conditional_log_probs, NUM_STEPS, scan="random")
    magnetisation = (2 * trace.states.x - 1).mean(axis=1)
    axes[0].plot(magnetisation, lw=0.6, label=f"J = {coupling}")
    axes[1].plot(diagnostics.autocorrelation(magnetisation, max_lag=min(500, NUM_STEPS // 4)), label=f"J = {coupling}")
    ess = diagnostics.effective_sample_size(magnetisation, method="mean")
    # The ESS is undefined (NaN) when the magnetisation never changed during the run.
    shown = f"{ess:.0f}" if np.isfinite(ess) else "undefined (it never changed)"
    print(f"J = {coupling}: ESS of the magnetisation {shown} of {NUM_STEPS} steps")
axes[0].set_xlabel("step")
axes[0].set_ylabel("magnetisation")
axes[0].set_ylim(-1.1, 1.6)  # room above the trace for the legend
axes[0].legend(loc="upper center", ncol=2)
axes[1].set_xlabel("lag")
axes[1].set_ylabel("autocorrelation")
axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
fig.tight_layout()

# %% [markdown]
# ## Try this
#
# 1. Run the systematic scan *backwards* (positions $L, \dots, 1$) by building $K_L \cdots K_1$ from
#    `gibbs.site_matrix`. Show that it is the time reversal of the forward sweep:
#    $\pi_i P^{\text{back}}_{ij} = \pi_j P^{\text{fwd}}_{ji}$.
# 2. Feed `gibbs.transition_matrix` a *wrong* conditional (e.g. ignore the right neighbour:
#    $\propto p(v \mid x_{i-1})$ only) through its `conditional_log_probs` argument. What is the stationary
#    law now, and how far is it from $\pi$?
# 3. For the Ising chain with $J = 2$, how many steps until the magnetisation has changed sign ten
#    times? How does that scale with the length of the chain?
