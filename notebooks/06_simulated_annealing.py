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
# # 6. Simulated annealing
#
# Sampling gives *typical* sentences; often we want the *best* one, $x^\star = \arg\max_x \rho(x)$.
# Simulated annealing {cite:p}`kirkpatrick1983optimization,su2021part2` turns a sampler into an
# optimiser: sample the tempered law
#
# $$
# \pi_T(x) \propto \rho(x)^{1/T} = \exp\bigl(\log\rho(x) / T\bigr)
# $$
#
# while lowering the temperature $T$. At $T = 1$ this is $\pi$; as $T$ grows it flattens (easy to move
# around); as $T \to 0$ it concentrates on the argmax set. One step at temperature $T$ is an ordinary MH
# step on $\pi_T$:
#
# $$
# \log\alpha = \min\Bigl(0,\ \frac{\log\rho(y) - \log\rho(x)}{T} + \log q(x \mid y) - \log q(y \mid x)\Bigr).
# $$
#
# Schedules, for steps $t = 0, \dots, n-1$: **logarithmic** $T_t = T_0 \log 2 / \log(t + 2)$ — the
# schedule of the convergence proof {cite:p}`geman1984stochastic`, hopelessly slow in practice;
# **geometric** $T_t = T_0 (T_{n-1}/T_0)^{t/(n-1)}$; **linear**. The package's `annealing.anneal` runs one
# MH step per temperature and returns the best state it saw.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from textsampling import markov
from textsampling.randomness import CounterGenerator
from textsampling.reference import annealing
from textsampling.reference.proposals import RingStepProposal, SingleSiteProposal
from textsampling.targets import Categorical, FixedLengthBigram, KeywordTarget

SEED = 1983
NUM_STEPS = 300 if os.environ.get("CI") else 4_000
NUM_RUNS = 4 if os.environ.get("CI") else 25

# %% [markdown]
# ## A rugged landscape
#
# Sixty states on a ring, a log-density with seven local maxima, and a proposal that only steps to a
# neighbour. A chain at low temperature climbs the nearest hill and stays there; to find the highest
# peak it has to cross valleys, which only a high temperature allows. The exact tempered laws show
# the trade-off.

# %%
num_states = 60
k = np.arange(num_states)
logits = 2.0 * np.cos(2 * np.pi * 5 * k / num_states) + np.cos(2 * np.pi * 2 * k / num_states + 0.5) + 0.8 * np.cos(
    2 * np.pi * 11 * k / num_states + 1.0
)
target = Categorical(logits)
best = int(target.argmax())
start = 30
proposal = RingStepProposal(num_states, forward_probability=0.5)

fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
axes[0].plot(k, logits, "k.-")
axes[0].axvline(best, color="tab:green", ls="--", label=f"argmax (state {best})")
axes[0].axvline(start, color="tab:red", ls=":", label=f"start (state {start})")
axes[0].set_xlabel("state")
axes[0].set_ylabel("log ρ")
axes[0].legend()
for temperature in (3.0, 1.0, 0.3, 0.1):
    tempered = np.exp(logits / temperature - np.logaddexp.reduce(logits / temperature))
    axes[1].plot(k, tempered, label=f"T = {temperature}")
axes[1].set_xlabel("state")
axes[1].set_ylabel("exact π_T")
axes[1].legend()
fig.tight_layout()

# The kernel of one annealing step at fixed T leaves exactly π_T invariant.
for temperature in (3.0, 0.3):
    kernel = annealing.transition_matrix(target, proposal, temperature)
    tempered = np.exp(logits / temperature - np.logaddexp.reduce(logits / temperature))
    print(f"T = {temperature}: max |π_T P - π_T| = {markov.stationarity_residual(kernel, tempered):.1e}")

# %% [markdown]
# ## Schedules compared
#
# Four schedules with the same budget of steps, from the same bad start, each run `NUM_RUNS` times
# with independent random streams (chain $c$ uses `CounterGenerator(SEED, c)`). "Greedy" is a constant,
# nearly zero temperature: it only accepts uphill moves.

# %%
schedules = {
    "logarithmic": annealing.logarithmic_schedule(3.0, NUM_STEPS),
    "geometric": annealing.geometric_schedule(3.0, 0.05, NUM_STEPS),
    "linear": annealing.linear_schedule(3.0, 0.05, NUM_STEPS),
    "greedy": np.full(NUM_STEPS, 0.02),
}
results = {
    name: [annealing.anneal(CounterGenerator(SEED, chain), start, target.log_prob, proposal, temperatures) for chain in range(NUM_RUNS)]
    for name, temperatures in schedules.items()
}

fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
for name, temperatures in schedules.items():
    axes[0].plot(temperatures, label=name)
    axes[1].plot(results[name][0].states, lw=0.8, label=name)
axes[0].set_yscale("log")
axes[0].set_xlabel("step")
axes[0].set_ylabel("temperature T")
axes[0].legend()
axes[1].axhline(best, color="black", ls="--", lw=0.8)
axes[1].set_xlabel("step")
axes[1].set_ylabel("state (run 0)")
found = [np.mean([int(result.best_state) == best for result in results[name]]) for name in schedules]
ended = [np.mean([int(result.states[-1]) == best for result in results[name]]) for name in schedules]
positions = np.arange(len(schedules))
axes[2].bar(positions - 0.2, found, width=0.4, label="best state seen = argmax")
axes[2].bar(positions + 0.2, ended, width=0.4, label="final state = argmax")
axes[2].set_xticks(positions, list(schedules))
axes[2].set_ylabel(f"fraction of {NUM_RUNS} runs")
axes[2].legend(fontsize=8)
fig.tight_layout()
for name, f, e in zip(schedules, found, ended):
    print(f"{name:>12}: found the argmax in {f:.0%} of runs, ended on it in {e:.0%}")

# %% [markdown]
# Greedy climbs the nearest hill and never leaves. The logarithmic schedule falls below $T = 1$ within
# a dozen steps and then barely moves: too cold to cross the valleys for almost the whole budget, too
# warm to settle (its guarantee asks for $T_0$ as large as the deepest valley and an astronomically
# long run). The geometric and linear schedules spend the first part of the budget hot enough to
# explore and the last part climbing; the linear one stays hot longest, which pays here. The best state
# *seen* is always at least as good as the final one, which is why `anneal` keeps it.
#
# ## The best sentence with two keywords
#
# Now a text target: five-token sentences from a bigram model over six words, with the keywords *king*
# and *crown* required ($\log\chi = -\infty$ otherwise): $6^5 = 7776$ sentences, the exact best known by
# enumeration. The proposal rewrites one token; a rewrite that drops a keyword has $\log\rho = -\infty$
# and is always rejected.

# %%
WORDS = ["the", "king", "queen", "wears", "a", "crown"]
THE, KING, QUEEN, WEARS, A, CROWN = range(6)
initial_logits = np.array([2.0, 0.0, 0.0, -1.0, 1.0, -1.0])
transition_logits = np.full((6, 7), -3.0)
for previous, following, logit in [
    (THE, KING, 2.0), (THE, QUEEN, 2.0), (THE, CROWN, 1.0), (KING, WEARS, 2.0), (KING, 6, 1.0),
    (QUEEN, WEARS, 2.0), (QUEEN, 6, 1.0), (WEARS, THE, 1.5), (WEARS, A, 1.5), (WEARS, CROWN, 0.5),
    (A, CROWN, 2.0), (A, KING, 0.5), (A, QUEEN, 0.5), (CROWN, 6, 2.0), (CROWN, WEARS, -1.0),
]:
    transition_logits[previous, following] = logit  # column 6 is END
sentences = KeywordTarget(FixedLengthBigram(initial_logits, transition_logits, length=5), keywords=[KING, CROWN])
exact_best = sentences.argmax()
x0 = np.array([KING, KING, KING, CROWN, CROWN])  # contains both keywords, so log ρ is finite


def sentence(tokens) -> str:
    return " ".join(WORDS[t] for t in tokens)


temperatures = annealing.geometric_schedule(2.0, 0.05, NUM_STEPS)
runs = [
    annealing.anneal(CounterGenerator(SEED, chain), x0, sentences.log_prob, SingleSiteProposal(6, 5), temperatures)
    for chain in range(NUM_RUNS)
]
fig, ax = plt.subplots(figsize=(9, 3.8))
for run in runs[:5]:
    ax.plot(run.log_probs, lw=0.8)
ax.axhline(sentences.log_prob(exact_best[None])[0], color="black", ls="--", label="exact maximum of log ρ")
ax.set_xlabel("step")
ax.set_ylabel("log ρ of the current sentence")
ax.legend()
fig.tight_layout()
print("exact best sentence:  ", repr(sentence(exact_best)))
print("annealing found it in", sum(np.array_equal(run.best_state, exact_best) for run in runs), "of", NUM_RUNS, "runs;")
print("run 0 found:          ", repr(sentence(runs[0].best_state)))

# %% [markdown]
# ## Try this
#
# 1. Give the logarithmic schedule ten times the budget. Does it ever beat the geometric one here?
# 2. Start the geometric schedule colder ($T_0 = 0.5$): how does the success rate change, and why?
# 3. Replace the ring proposal with `UniformCategoricalProposal(60)` (jump anywhere). Is the landscape
#    still rugged for this proposal? What does greedy do now?
# 4. Anneal the sentence target from `x0 = [THE, THE, THE, THE, THE]`, which lacks the keywords. Why does
#    the chain never move? (Hint: look at what a single-token edit can do to $\log\chi$.)
