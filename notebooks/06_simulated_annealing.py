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
# schedule of the convergence proofs {cite:p}`geman1984stochastic` (sharp form: Hajek 1988, below),
# hopelessly slow in practice; **geometric** $T_t = T_0 (T_{n-1}/T_0)^{t/(n-1)}$; **linear**. The
# package's `annealing.sample` runs one MH step per temperature (`temperatures=` the schedule) and
# returns the whole trace; `annealing.best` picks the best state it saw.
# At the end, plain hill climbing with restarts — the $T = 0$ limit, which Su also describes — gets
# the same number of evaluations of $\log\rho$.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from textsampling import markov
from textsampling.randomness import CounterGenerator
from matplotlib.ticker import FuncFormatter, MultipleLocator

from textsampling.reference import annealing, hill_climbing
from textsampling.reference.proposals import IndependentCategorical, RingStepProposal, SingleSiteProposal
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

fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
axes[0].plot(k, logits, "k.-")
axes[0].axvline(best, color="tab:green", ls="--", label=f"argmax (state {best})")
axes[0].axvline(start, color="tab:red", ls=":", label=f"start (state {start})")
axes[0].set_ylabel("log ρ")
axes[0].set_title(f"a ring: state {num_states - 1} and state 0 are neighbours", fontsize=10)
axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, off the curve
for temperature in (3.0, 1.0, 0.3, 0.1):
    tempered = np.exp(logits / temperature - np.logaddexp.reduce(logits / temperature))
    axes[1].plot(k, tempered, label=f"T = {temperature}")
axes[1].set_xlabel("state")
axes[1].set_ylabel("exact π_T")
axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
fig.tight_layout()

# The kernel of one annealing step at fixed T leaves exactly π_T invariant.
for temperature in (3.0, 0.3):
    kernel = annealing.transition_matrix(target, proposal, temperature)
    tempered = np.exp(logits / temperature - np.logaddexp.reduce(logits / temperature))
    print(f"T = {temperature}: max |π_T P - π_T| = {markov.stationarity_residual(kernel, tempered):.1e}")

# %% [markdown]
# ## What the logarithmic schedule guarantees
#
# Hajek (1988, *Math. Oper. Res.* 13:311) gives the sharp condition. Call the **depth** of a local
# maximum $x$ the least amount by which $\log\rho$ must go *down* along a path of proposal moves from
# $x$ to some state with a higher $\log\rho$, and $d^\star$ the largest depth among local maxima that
# are not global. For $T_k = c / \log(k + 1)$, $k = 1, 2, \dots$ (and an irreducible, weakly reversible
# proposal such as the ring's), $P(x_k \in \arg\max\rho) \to 1$ if and only if $c \ge d^\star$, because
# $\sum_k e^{-d^\star / T_k} = \sum_k (k + 1)^{-d^\star / c}$ must diverge. The package's schedule is
# $T_t = T_0 \log 2 / \log(t + 2)$, $t = 0, 1, \dots$: the same curve with $k = t + 1$ and
# $c = T_0 \log 2$ (checked below on `logarithmic_schedule` itself), so the condition reads
#
# $$
# T_0 \ge d^\star / \log 2 .
# $$
#
# On sixty states $d^\star$ is computed exactly: for each local maximum, lower a level $h$ from
# $\log\rho(x)$ until the states with $\log\rho \ge h$ connect $x$ to a higher state through
# neighbours of the ring (the positive entries of the exact kernel).

# %%
schedule = annealing.logarithmic_schedule(3.0, NUM_STEPS)
print("T_t · log(t + 2) is constant = T_0 log 2:",
      np.allclose(schedule * np.log(np.arange(NUM_STEPS) + 2.0), 3.0 * np.log(2.0), rtol=1e-14, atol=0))
neighbours = annealing.transition_matrix(target, proposal, 1.0) > 0
np.fill_diagonal(neighbours, False)


def depth(x: int) -> float:
    """How far log ρ must go down on the way from x to a state higher than x."""
    for level in np.sort(np.unique(logits[logits <= logits[x]]))[::-1]:
        allowed = logits >= level
        seen = np.zeros(num_states, dtype=bool)
        seen[x] = True
        frontier = seen.copy()
        while frontier.any():  # breadth-first search through states at or above the level
            frontier = neighbours[frontier].any(axis=0) & allowed & ~seen
            seen |= frontier
        if np.any(logits[seen] > logits[x]):
            return float(logits[x] - level)
    return float("inf")  # no higher state: x is a global maximum


local_maxima = [x for x in range(num_states) if np.all(logits[neighbours[x]] < logits[x])]
depths = {x: depth(x) for x in local_maxima if x != best}
deepest = max(depths, key=depths.get)
d_star = depths[deepest]
hajek_t0 = d_star / np.log(2.0)
print("local maxima (state: depth):", {x: round(d, 3) for x, d in depths.items()}, f"and the argmax {best}")
print(f"d* = {d_star:.3f} (the trap at state {deepest}) => Hajek's condition T_0 >= d*/log 2 = {hajek_t0:.2f}")

# %% [markdown]
# ## Schedules compared
#
# Five schedules with the same budget of steps, from the same bad start, each run `NUM_RUNS` times
# with independent random streams (chain $c$ uses `CounterGenerator(SEED, c)`): the logarithmic one
# with the chapter's $T_0 = 3$ and with Hajek's $T_0 = d^\star / \log 2$, geometric, linear, and a
# constant cold temperature $T = 0.02$. The cold chain is *not* greedy: it accepts a downhill move of
# size $\Delta$ with probability $e^{-\Delta / 0.02}$, which is far from zero for the small steps of this
# landscape (printed below). Accepting no downhill move at all is hill climbing, the next section.

# %%
schedules = {
    "log, T₀ = 3": annealing.logarithmic_schedule(3.0, NUM_STEPS),
    "log, Hajek's T₀": annealing.logarithmic_schedule(hajek_t0, NUM_STEPS),
    "geometric": annealing.geometric_schedule(3.0, 0.05, NUM_STEPS),
    "linear": annealing.linear_schedule(3.0, 0.05, NUM_STEPS),
    "cold, T = 0.02": np.full(NUM_STEPS, 0.02),
}
ring_steps = np.abs(logits - np.roll(logits, 1))  # |Δ log ρ| between neighbours k - 1 and k
print(f"smallest |Δ log ρ| between neighbours: {ring_steps.min():.4f}; at T = 0.02 that step downhill is "
      f"accepted with probability {np.exp(-ring_steps.min() / 0.02):.2f}; "
      f"{np.mean(np.exp(-ring_steps / 0.02) > 0.01):.0%} of the ring's steps with probability above 0.01")
start_state = annealing.init(start, target.log_prob)  # the start counts as seen
results = {
    name: [
        annealing.sample(CounterGenerator(SEED, chain), start, target.log_prob, proposal, NUM_STEPS, temperatures=temperatures)
        for chain in range(NUM_RUNS)
    ]
    for name, temperatures in schedules.items()
}


def unwrap(states, first) -> np.ndarray:
    """Ring states as a continuous path: each step of ±1 (mod 60) is drawn as ±1, so 59 and 0 are adjacent."""
    steps = np.diff(np.concatenate([[first], states]))
    return first + np.cumsum((steps + num_states // 2) % num_states - num_states // 2)


fig, axes = plt.subplot_mosaic([["temperature", "found"], ["trace", "trace"]], figsize=(13, 8.5),
                               gridspec_kw={"height_ratios": [1, 1.3]})
for name, temperatures in schedules.items():
    axes["temperature"].plot(temperatures, label=name)
    axes["trace"].plot(unwrap(results[name][0].states.x, start), lw=0.8, label=name)
axes["temperature"].set_yscale("log")
axes["temperature"].set_xlabel("step")
axes["temperature"].set_ylabel("temperature T")
axes["temperature"].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
low, high = axes["trace"].get_ylim()
for copy in range(int(np.floor((low - best) / num_states)), int(np.ceil((high - best) / num_states)) + 1):
    axes["trace"].axhline(best + copy * num_states, color="black", ls="--", lw=0.8)
axes["trace"].set_ylim(low, high)
axes["trace"].yaxis.set_major_locator(MultipleLocator(10))
axes["trace"].yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{int(value) % num_states}"))
axes["trace"].set_xlabel("step")
axes["trace"].set_ylabel("state (run 0), unwrapped")
axes["trace"].set_title(
    f"the ring unrolled: a step from {num_states - 1} to 0 is drawn as a step up by 1 (dashed: argmax {best})",
    fontsize=10,
)
axes["trace"].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
found = [np.mean([int(annealing.best(trace, start_state).x) == best for trace in results[name]]) for name in schedules]
ended = [np.mean([int(trace.states.x[-1]) == best for trace in results[name]]) for name in schedules]
positions = np.arange(len(schedules))
axes["found"].bar(positions - 0.2, found, width=0.4, label="best state seen = argmax")
axes["found"].bar(positions + 0.2, ended, width=0.4, label="final state = argmax")
axes["found"].set_xticks(positions, list(schedules), rotation=30, ha="right")
axes["found"].set_ylabel(f"fraction of {NUM_RUNS} runs")
axes["found"].set_ylim(0, 1.35)  # room for the legend above the bars
axes["found"].legend(fontsize=8, loc="upper center", ncol=2)
fig.tight_layout()
for (name, temperatures), f, e in zip(schedules.items(), found, ended):
    final = temperatures[-1]
    tempered = logits / final - np.logaddexp.reduce(logits / final)
    print(f"{name:>16}: found the argmax in {f:.0%} of runs, ended on it in {e:.0%}; "
          f"final T = {final:.3f}, where exact π_T(argmax) = {np.exp(tempered[best]):.3f}")

# %% [markdown]
# Read the printout. The cold chain climbs the nearest hill; its small downhill moves let it jitter
# there, not cross the deep valleys. The logarithmic schedule with $T_0 = 3$ falls below $T = 1$ within
# a dozen steps; its $T_0$ is below Hajek's bound, so not even the asymptotic guarantee applies. With
# Hajek's $T_0$ the guarantee holds, but only in the limit: after this budget the temperature is still
# high, and the exact $\pi_T$ at the final temperature shows how little of its mass sits on the argmax.
# The geometric and linear schedules spend the first part of the budget hot enough to explore and the
# last part climbing. The best state *seen* is always at least as good as the final one, which is why
# `annealing.best` looks for it in the whole trace.
#
# ## Hill climbing with restarts
#
# Su's plain hill climbing {cite:p}`su2021part2` accepts a proposed neighbour iff
# $\log\rho(y) \ge \log\rho(x)$: no temperature, no uniform for the decision, and it stops improving at
# the first local maximum. So it is restarted from fresh random starts (here uniform over the ring) and
# the best end state is kept: `hill_climbing.restarts` (one climb alone is `hill_climbing.sample`). A
# climb of $m$ steps evaluates $\log\rho$ $m + 1$ times, so `NUM_RESTARTS` climbs fit the budget of one
# annealing run ($n + 1$ evaluations). On sixty states the chance that one climb ends on the argmax is
# exact — the start law times the $m$-th power of `hill_climbing.transition_matrix` — and so is the
# chance that some restart does.
# Note the difference in the rules of the game: the climber starts afresh, annealing from the bad start.

# %%
STEPS_PER_CLIMB = 40
NUM_RESTARTS = (NUM_STEPS + 1) // (STEPS_PER_CLIMB + 1)
uniform_start = IndependentCategorical(np.zeros(num_states))
climbs = [
    hill_climbing.restarts(CounterGenerator(SEED, chain), uniform_start, target.log_prob, proposal,
                           STEPS_PER_CLIMB, NUM_RESTARTS)
    for chain in range(NUM_RUNS)
]
climb_kernel = hill_climbing.transition_matrix(target, proposal)
one_climb = (np.full(num_states, 1 / num_states) @ np.linalg.matrix_power(climb_kernel, STEPS_PER_CLIMB))[best]
print(f"evaluations of log ρ: annealing {NUM_STEPS + 1}, hill climbing "
      f"{hill_climbing.num_evaluations(STEPS_PER_CLIMB, NUM_RESTARTS)} "
      f"({NUM_RESTARTS} restarts of {STEPS_PER_CLIMB} steps)")
print(f"one climb ends on the argmax with exact probability {one_climb:.3f}; "
      f"all {NUM_RESTARTS} restarts miss it with exact probability {(1 - one_climb) ** NUM_RESTARTS:.1e}")
print(f"hill climbing with restarts found the argmax in {np.mean([int(c.best_state) == best for c in climbs]):.0%} "
      f"of {NUM_RUNS} runs")
ends = np.concatenate([c.final_states for c in climbs])
print("end states of all climbs (state: count):",
      {int(state): int(count) for state, count in zip(*np.unique(ends, return_counts=True))})
for name, f in zip(schedules, found):
    print(f"{name:>16}: found the argmax in {f:.0%} of runs")

# %% [markdown]
# Every climb ends on a local maximum (the end states above are among the local maxima listed
# earlier), and only climbs that start in the argmax's basin end there; restarts turn that fixed
# per-climb chance into near certainty when the budget allows enough of them. On this small ring, with
# the same number of evaluations, that is a strong baseline — compare its success rate with the
# schedules' above. Annealing can only pay off where the argmax's basin is so small that random
# restarts rarely land in it (a per-climb probability near zero); this chapter does not show such a
# case, so take that as the question to test, not as a result.
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
    annealing.sample(CounterGenerator(SEED, chain), x0, sentences.log_prob, SingleSiteProposal(6, 5), NUM_STEPS,
                     temperatures=temperatures)
    for chain in range(NUM_RUNS)
]
bests = [annealing.best(run, annealing.init(x0, sentences.log_prob)) for run in runs]
fig, ax = plt.subplots(figsize=(9, 3.8))
for run in runs[:5]:
    ax.plot(run.states.log_prob, lw=0.8)
ax.axhline(sentences.log_prob(exact_best[None])[0], color="black", ls="--", label="exact maximum of log ρ")
ax.set_xlabel("step")
ax.set_ylabel("log ρ of the current sentence")
ax.legend()
fig.tight_layout()
print("exact best sentence:  ", repr(sentence(exact_best)))
print("annealing found it in", sum(np.array_equal(run_best.x, exact_best) for run_best in bests), "of", NUM_RUNS, "runs;")
print("run 0 found:          ", repr(sentence(bests[0].x)))

# %% [markdown]
# ## Try this
#
# 1. Give the logarithmic schedule ten times the budget. Does it ever beat the geometric one here?
# 2. Start the geometric schedule colder ($T_0 = 0.5$): how does the success rate change, and why?
# 3. Replace the ring proposal with `UniformCategoricalProposal(60)` (jump anywhere). Is the landscape
#    still rugged for this proposal? What do the cold chain and hill climbing do now?
# 4. Anneal the sentence target from `x0 = [THE, THE, THE, THE, THE]`, which lacks the keywords. Why does
#    the chain never move? (Hint: look at what a single-token edit can do to $\log\chi$.) Hill climbing
#    from the same start does move: why? (Hint: $-\infty \ge -\infty$.)
# 5. Spend the hill-climbing budget differently: 10 steps per climb and more restarts, or 200 steps and
#    fewer. Use the exact per-climb probability to predict which wins before you run it.
# 6. Compute $d^\star$ for the ring with `forward_probability=0.5` replaced by a proposal that can also
#    jump two states. Does Hajek's bound on $T_0$ go up or down?
