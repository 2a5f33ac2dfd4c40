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
# # 2. Importance and rejection sampling
#
# We can evaluate $\rho(x)$ but not $Z = \sum_x \rho(x)$. The two oldest ways around that
# {cite:p}`su2021part1` both draw from a distribution $q$ that we *can* sample, and correct for the
# difference between $q$ and $\pi = \rho / Z$.
#
# **Importance sampling** reweights: with $x_1, \dots, x_N \sim q$ and $w_i = \rho(x_i) / q(x_i)$,
#
# $$
# \hat Z = \frac1N \sum_i w_i, \qquad
# \hat{\mathbb E}_\pi[f] = \frac{\sum_i w_i f(x_i)}{\sum_i w_i}, \qquad
# \mathrm{ESS} = \frac{\left(\sum_i w_i\right)^2}{\sum_i w_i^2} \in [1, N].
# $$
#
# **Rejection sampling** filters: with an envelope $M$ such that $\rho(x) \le M q(x)$ everywhere, keep
# $x \sim q$ with probability $\rho(x) / (M q(x))$. The survivors follow $\pi$ *exactly*, and a proposal
# survives with probability $Z / M$.
#
# Both live or die by how close $q$ is to $\pi$; in high dimension no simple $q$ is close. This chapter
# measures that, against exact answers.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from textsampling.markov import tv_distance
from textsampling.reference import importance, rejection
from textsampling.reference.proposals import IndependentCategorical, IndependentUniformSequences
from textsampling.targets import Categorical, PairwiseChain

SEED = 8062
NUM_SAMPLES = 400 if os.environ.get("CI") else 20_000
NUM_PROPOSALS = 2_000 if os.environ.get("CI") else 200_000
rng = np.random.default_rng(SEED)

# %% [markdown]
# ## Importance sampling on a categorical target
#
# Twelve states with logits we choose; we want $\mathbb E_\pi[k]$, the mean state, known exactly.
# The proposal is uniform. The self-normalised estimate converges to the truth at the usual
# $1/\sqrt{N}$ rate; each run is a line, the exact value the dashed line.

# %%
logits = np.array([0.0, 0.5, 1.0, 2.5, 1.0, -1.0, -2.0, 0.0, 1.5, 3.0, 0.5, -0.5])
target = Categorical(logits)
num_categories = logits.size
uniform = IndependentCategorical(np.zeros(num_categories))

fig, ax = plt.subplots(figsize=(8, 3.8))
checkpoints = np.unique(np.geomspace(10, NUM_SAMPLES, 40).astype(int))
for run in range(5):
    result = importance.sample(rng, target.log_prob, uniform, NUM_SAMPLES)
    running = [
        importance.estimate(result.states[:n].astype(float), result.log_weights[:n]) for n in checkpoints
    ]
    ax.plot(checkpoints, running, lw=1)
ax.axhline(target.mean(), color="black", ls="--", label=f"exact E[k] = {target.mean():.3f}")
ax.set_xscale("log")
ax.set_xlabel("number of samples N")
ax.set_ylabel("self-normalised estimate of E[k]")
ax.legend()
fig.tight_layout()
print(f"last run: ESS = {result.effective_sample_size:.0f} of N = {NUM_SAMPLES}; "
      f"log Z estimate {result.log_normalizer_estimate:.4f} vs exact {target.log_normalizer():.4f}")

# %% [markdown]
# ## What the effective sample size measures
#
# A family of proposals $q_\beta = \mathrm{softmax}(\beta \cdot \text{logits})$ slides from uniform
# ($\beta = 0$) through exact ($\beta = 1$) to over-confident ($\beta > 1$). At $\beta = 1$ every weight
# is $Z$ and $\mathrm{ESS} = N$; otherwise fewer samples really count. How many is not a matter of the
# total-variation distance between $q$ and $\pi$: as $N \to \infty$,
#
# $$
# \frac{\mathrm{ESS}}{N} \to \frac{(\mathbb E_q w)^2}{\mathbb E_q w^2}
# = \frac{1}{\sum_x \pi(x)^2 / q(x)} = \frac{1}{1 + \chi^2(\pi \,\|\, q)},
# $$
#
# which we compute exactly (dashed line). The $\chi^2$ divergence punishes a $q$ that is too *narrow*
# (small where $\pi$ is not) much more than TV does.

# %%
betas = np.linspace(-1.0, 3.0, 21)
ess_fraction, distances, ess_limits = [], [], []
for beta in betas:
    proposal = IndependentCategorical(beta * logits)
    result = importance.sample(rng, target.log_prob, proposal, NUM_SAMPLES)
    ess_fraction.append(result.effective_sample_size / NUM_SAMPLES)
    distances.append(tv_distance(target.probabilities(), np.exp(proposal.log_probs)))
    ess_limits.append(1.0 / np.sum(target.probabilities() ** 2 / np.exp(proposal.log_probs)))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].plot(betas, ess_fraction, marker="o", label=f"measured, N = {NUM_SAMPLES}")
axes[0].plot(betas, ess_limits, "k--", label="exact limit 1 / (1 + χ²(π‖q))")
axes[0].axvline(1.0, color="grey", lw=0.8)
axes[0].set_xlabel("β  (q = softmax(β · logits))")
axes[0].set_ylabel("ESS / N")
axes[0].legend(fontsize=8)
axes[1].scatter(distances, ess_fraction, c=betas, cmap="viridis")
axes[1].set_xlabel("TV(π, q)")
axes[1].set_ylabel("ESS / N")
fig.tight_layout()
for beta in (-0.4, 1.0, 2.4):
    k = int(np.argmin(np.abs(betas - beta)))
    print(f"β = {betas[k]:4.1f}: TV(π, q) = {distances[k]:.3f}, exact ESS/N limit {ess_limits[k]:.3f}, measured {ess_fraction[k]:.3f}")

# %% [markdown]
# The too-wide $q_{-0.4}$ and the too-narrow $q_{2.4}$ have the same limit (the formula is symmetric
# under $\beta \leftrightarrow 2 - \beta$), although the first is about twice as far from $\pi$ in TV.
# The measured ESS of the over-confident proposals ($\beta > 2$) also scatters far from its limit: their
# weights have a heavy tail, so the estimate is least reliable exactly where it matters.

# %% [markdown]
# ## Rejection sampling: exact samples, at a price
#
# The tightest envelope is $M = \max_x \rho(x) / q(x)$ (here computable because we can list every
# state). The accepted states follow $\pi$ exactly — compare the histogram with the exact bars — and
# the acceptance rate is $Z / M$.

# %%
log_envelope = rejection.tightest_log_envelope(target, uniform)
result = rejection.sample(rng, target.log_prob, uniform, log_envelope, NUM_PROPOSALS)
exact_rate = np.exp(target.log_normalizer() - log_envelope)
frequencies = np.bincount(result.samples, minlength=num_categories) / result.num_accepted

fig, ax = plt.subplots(figsize=(8, 3.6))
ax.bar(np.arange(num_categories) - 0.2, target.probabilities(), width=0.4, label="exact π")
ax.bar(np.arange(num_categories) + 0.2, frequencies, width=0.4, label=f"{result.num_accepted} accepted samples")
ax.set_xlabel("state k")
ax.set_ylabel("probability")
ax.legend()
fig.tight_layout()
print(f"acceptance rate {result.acceptance_rate:.4f}  (exact Z/M = {exact_rate:.4f})")
print(f"TV(histogram, π) = {tv_distance(frequencies, target.probabilities()):.4f}")

# %% [markdown]
# ## Rejection with any acceptance probability $\alpha(x)$
#
# Part 1 also states rejection sampling in general: draw $x \sim q$ and keep it with a probability
# $\alpha(x) \in [0, 1]$ of our choice. A proposal is $x$ *and* is kept with probability $q(x)\alpha(x)$,
# so a proposal survives with probability $Z_\alpha = \sum_x q(x)\alpha(x)$ and the survivors follow
#
# $$
# \pi_\alpha(x) = \frac{q(x)\,\alpha(x)}{Z_\alpha} .
# $$
#
# The envelope rule above is the special case $\alpha = \rho / (M q)$: then $q\alpha = \rho / M$, the
# survivors follow $\rho / Z$ and $Z_\alpha = Z / M$. Conversely, any $\alpha$ is the envelope rule for
# $\rho_\alpha = q \cdot \alpha$ with $M = 1$ (the envelope holds because $\alpha \le 1$), so
# `rejection.sample` runs it unchanged. Two choices of $\alpha$ with $q = \pi$ from above as the
# "language model": a hard filter $\alpha = \chi$ (keep the states $k \ge 6$: generate and filter,
# chapter 1) and a soft one, a logistic "classifier" $\alpha(k) = 1 / (1 + e^{-(k - 5.5)})$. The exact
# law of the survivors is computed from `rejection.log_accept_probability`, the function `step` decides
# with, at every state.

# %%
language_model = IndependentCategorical(logits)  # q = π of the sections above
all_states = np.arange(num_categories)
acceptances = {
    "hard filter α = χ(k ≥ 6)": lambda states: np.where(states >= 6, 0.0, -np.inf),
    "soft α(k) = σ(k - 5.5)": lambda states: -np.logaddexp(0.0, -(states - 5.5)),
    "α = ρ / (M q), q uniform": None,  # part 1's envelope rule, for comparison
}
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4), sharey=True)
for ax, (name, log_alpha) in zip(axes, acceptances.items()):
    if log_alpha is None:
        proposal, log_rho, log_envelope = uniform, target.log_prob, rejection.tightest_log_envelope(target, uniform)
    else:
        proposal, log_envelope = language_model, 0.0

        def log_rho(states, log_alpha=log_alpha):
            return language_model.log_prob(states) + log_alpha(states)  # ρ_α = q · α, envelope M = 1

    log_q = proposal.log_prob(all_states)
    # P(propose k and keep it) = q(k) α(k), with α from the function step uses.
    keep = np.exp(log_q + rejection.log_accept_probability(log_rho(all_states), log_q, log_envelope))
    survivor_law = keep / keep.sum()
    result = rejection.sample(rng, log_rho, proposal, log_envelope, NUM_PROPOSALS)
    histogram = np.bincount(result.samples, minlength=num_categories) / result.num_accepted
    ax.bar(all_states - 0.2, survivor_law, width=0.4, label="exact q α / Z_α")
    ax.bar(all_states + 0.2, histogram, width=0.4, label=f"{result.num_accepted} survivors")
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("state k")
    print(
        f"{name:>26}: acceptance rate {result.acceptance_rate:.4f} (exact Z_α = {keep.sum():.4f}), "
        f"TV(histogram, q α / Z_α) = {tv_distance(histogram, survivor_law):.4f}, "
        f"max |q α / Z_α - π| = {np.max(np.abs(survivor_law - target.probabilities())):.1e}"
    )
axes[0].set_ylabel("probability")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# With $\alpha = \rho / (Mq)$ the survivors' law *is* $\pi$ (the last column printed is rounding error);
# with any other $\alpha$ it is $q\alpha / Z_\alpha$, a different law — the hard filter keeps $\pi$
# restricted to $k \ge 6$, the soft one tilts $\pi$ towards large $k$. Choosing $\alpha$ *is* choosing
# the target: generate-and-filter samples $p \cdot \chi$ exactly, at the price of a rate
# $P_p(\chi = 1)$.

# %% [markdown]
# ## The curse of dimension
#
# Now the state is a whole sequence: an Ising chain of $L$ spins,
# $\log\rho(s) = J \sum_i s_i s_{i+1} + h \sum_i s_i$, and the proposal draws every spin uniformly.
# Each extra spin multiplies the acceptance rate $Z/M$ by roughly a constant below one, so it decays
# **exponentially** in $L$ — and so does the ESS of importance sampling with the same proposal. For a
# sentence of 20 tokens from a 30,000-word vocabulary, "propose uniformly and filter" would never accept
# anything: this is why the next chapters edit one token at a time.

# %%
lengths = np.arange(1, 15)
exact_rates, measured_rates, ess_fractions = [], [], []
for length in lengths:
    chain = PairwiseChain.ising(int(length), coupling=1.0, field=0.5)
    proposal = IndependentUniformSequences(vocab_size=2, length=int(length))
    log_envelope = rejection.tightest_log_envelope(chain, proposal)
    exact_rates.append(np.exp(chain.log_normalizer() - log_envelope))
    measured_rates.append(rejection.sample(rng, chain.log_prob, proposal, log_envelope, NUM_PROPOSALS).acceptance_rate)
    result = importance.sample(rng, chain.log_prob, proposal, NUM_SAMPLES)
    ess_fractions.append(result.effective_sample_size / NUM_SAMPLES)

fig, ax = plt.subplots(figsize=(8, 4))
ax.semilogy(lengths, exact_rates, "k--", label="exact acceptance rate Z / M")
ax.semilogy(lengths, np.maximum(measured_rates, 1.0 / NUM_PROPOSALS), "o", label=f"measured ({NUM_PROPOSALS} proposals)")
ax.semilogy(lengths, ess_fractions, "s-", label="importance sampling ESS / N")
ax.set_xlabel("number of spins L")
ax.set_ylabel("fraction")
ax.legend()
fig.tight_layout()
for length, rate in zip(lengths[::4], exact_rates[::4]):
    print(f"L = {length:2d}: Z/M = {rate:.2e}")
factors = np.array(exact_rates[1:]) / np.array(exact_rates[:-1])
print(f"each extra spin multiplies Z/M by a factor between {factors.min():.3f} and {factors.max():.3f}")

# %% [markdown]
# ## Try this
#
# 1. Use a proposal *wider* than the target (β = 0.5) and one *narrower* (β = 2) for rejection sampling.
#    Why does the narrow one need a much larger envelope?
# 2. Pass `rejection.sample` an envelope that is too small, `log_envelope - 1.0`. What happens, and why is
#    raising an error better than silently clipping the acceptance probability at 1?
# 3. In the Ising experiment set `field=0.0` and `coupling=0.0`: what is the acceptance rate now, and
#    why?
# 4. The estimate of $\log Z$ from importance sampling is biased even though $\hat Z$ is not. Run it
#    many times with `NUM_SAMPLES = 20` and compare the mean of $\log \hat Z$ with $\log Z$.
# 5. Keep the soft acceptance $\alpha(k) = \sigma(k - 5.5)$ but propose from the uniform `uniform`. Which
#    law do the survivors follow now? Which $\alpha$ would make them follow $\pi$ with this $q$?
