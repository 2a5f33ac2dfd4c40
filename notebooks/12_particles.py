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
# # 12. Particles: importance sampling that learns as it goes
#
# Chapter 2 drew whole sentences from a proposal $q$ and corrected them with weights; chapters 4–8 moved
# one sentence at a time with a Markov chain. Sequential Monte Carlo (SMC) joins the two: it grows $N$
# *particles* one token at a time, weights each extension (importance sampling), and every now and then
# copies the heavy particles and drops the light ones (resampling), so that the computation follows the
# prefixes that can still become good sentences. The target is part 1's keyword problem on a causal
# language model $p$,
#
# $$
# \pi(x) = \frac{p(x)\,\chi(x)}{Z}, \qquad Z = \sum_x p(x)\,\chi(x) = P_p(\text{the keywords appear}),
# $$
#
# over sentences of at most $L$ tokens. Rejection sampling from $p$ accepts with probability $Z$. SMC
# works on prefixes: with a potential $G(x_{1:t}) \in \{0, 1\}$ that says "the missing keywords still fit
# in the remaining length" (`smc.KeywordPotential`) it targets $\gamma_t(x_{1:t}) = p(x_{1:t})\,G(x_{1:t})$
# at step $t$ and $p(x)\chi(x)$ once a particle has drawn END. Its weights estimate $Z$ *without bias*,
#
# $$
# \hat Z = \frac1N \sum_{i=1}^N w_i, \qquad \mathbb E[\hat Z] = Z,
# $$
#
# which is the feature that chapter 2's importance sampling had and MCMC does not: SMC says how likely the
# constraint is, not only what satisfying sentences look like. The references are Chopin &
# Papaspiliopoulos' textbook {cite:p}`chopin2020introduction` (chs. 9–11: resampling, particle filters,
# the unbiased $\hat Z$), Naesseth, Lindsten & Schön's tutorial {cite:p}`naesseth2019elements`, Lew et
# al.'s SMC steering {cite:p}`lew2023smc` (a language model as proposal, constraints as potentials) and
# Zhao et al.'s twisted SMC {cite:p}`zhao2024twisted` (the twist $\psi$ below); the particle filter
# itself goes back to {cite:p}`gordon1993novel,kitagawa1996monte`. The code is `textsampling.reference.smc`
# and `textsampling.reference.resampling`, with torch twins that run many independent SMC runs at once.

# %%
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.special import logsumexp

from textsampling.lm.oracle import BigramOracle
from textsampling.randomness import CounterGenerator
from textsampling.reference import resampling, smc
from textsampling.targets import BigramLM
from textsampling.torch import resampling as resampling_twin
from textsampling.torch import smc as smc_twin
from textsampling.torch.randomness import CounterGenerator as TorchCounterGenerator

SEED = 1212
SMALL = bool(os.environ.get("CI"))
NUM_RUNS = 200 if SMALL else 2_000  # independent SMC runs on the oracle (one batch of the twin)
NUM_PARTICLES = 16  # particles per run on the oracle
NUM_RESAMPLES = 2_000 if SMALL else 50_000  # resamplings of one weight vector, per scheme
LM_RUNS = 2 if SMALL else 4  # SMC runs on the tiny GPT-2
LM_PARTICLES = 32 if SMALL else 256  # particles per run on the tiny GPT-2
CGMH_CHAINS = 4 if SMALL else 16
rng = np.random.default_rng(SEED)
# The tiny models here are far faster on one thread than on two threads fighting over a busy CPU.
torch.set_num_threads(1)

# %% [markdown]
# ## An exact playground: the bigram oracle
#
# `BigramOracle` is a causal language model we can enumerate: five tokens `t0`…`t4`, sentences of at
# most $L = 8$ tokens ending with END, next-token probabilities from a random bigram table. The
# constraint: all three of `t0`, `t2` and `t4` appear. $Z = P(\chi = 1)$ is a finite sum over every
# sentence (their number is printed below).

# %%
VOCAB, MAX_LENGTH = 5, 8
KEYWORDS = ["t0", "t2", "t4"]
oracle = BigramOracle(BigramLM.random(rng, VOCAB, MAX_LENGTH, concentration=0.2))
potential = smc.KeywordPotential(oracle.encode_keywords(KEYWORDS), MAX_LENGTH)
sentences = oracle.bigram.enumerate_states()
log_z = float(logsumexp(oracle.bigram.log_prob(sentences) + potential(sentences, np.ones(len(sentences), dtype=bool))))
print(f"{len(sentences)} sentences of 1-{MAX_LENGTH} tokens; "
      f"exact Z = P(all keywords) = {np.exp(log_z):.4f}, log Z = {log_z:.4f}")

# %% [markdown]
# ## 1. Sequential importance sampling: the weights degenerate
#
# Without resampling ($\tau = 0$: `ess_threshold=0`), SMC is *sequential importance sampling*: each
# particle is an independent draw, its weight a product of per-step factors. Two proposals:
#
# * **bootstrap**: the next token from $p(v \mid x)$; the weight is multiplied by $G(xv)/G(x)$, here 0 or
#   1, so the weight of a particle is 1 until its prefix can no longer hold the keywords, then 0 forever;
# * **guided**: the next token from $p(v \mid x)\,G(xv)$ normalised, so no particle ever enters a dead
#   end; the weight is multiplied by the normaliser $\sum_v p(v \mid x) G(xv) \le 1$, different for each
#   particle.
#
# The effective sample size $\mathrm{ESS} = (\sum_i w_i)^2 / \sum_i w_i^2$ counts how many of the $N$
# particles still matter {cite:p}`kong1994sequential`. Below, its mean over the oracle runs at each step,
# for both proposals without resampling, and for the guided proposal with resampling whenever the ESS
# falls below $N/2$ (the next section). The twin runs all `NUM_RUNS` runs in one batch, run $r$ on the
# counter uniforms of chain $r$.

# %%
def run_on_oracle(proposal, ess_threshold, scheme="systematic", log_twist=None, num_runs=NUM_RUNS, seed=SEED):
    """`num_runs` SMC runs of NUM_PARTICLES particles on the oracle, all the way to END (L + 1 steps)."""
    generator = TorchCounterGenerator(seed, torch.arange(num_runs))
    x0 = smc_twin.empty_prefixes_torch(num_runs, NUM_PARTICLES, MAX_LENGTH)
    return smc_twin.sample(generator, x0, oracle, potential, MAX_LENGTH + 1, proposal=proposal, scheme=scheme,
                           ess_threshold=ess_threshold, log_twist=log_twist, dtype=torch.float64)


def ess_curve(trace):
    """Mean ESS over runs before each step, then after the last: (L + 2,)."""
    final = resampling_twin.effective_sample_size(trace.final_state.log_weight)  # (R,)
    return np.concatenate([trace.infos.ess.numpy().mean(axis=0), [final.numpy().mean()]])


settings = {
    "bootstrap, no resampling (SIS)": ("bootstrap", 0.0),
    "guided, no resampling (SIS)": ("guided", 0.0),
    "guided, resample when ESS < N/2 (SMC)": ("guided", 0.5),
}
traces = {name: run_on_oracle(proposal, tau) for name, (proposal, tau) in settings.items()}

fig, ax = plt.subplots(figsize=(8, 4))
for name, trace in traces.items():
    curve = ess_curve(trace)
    ax.plot(np.arange(curve.size), curve, "o-", label=name)
    print(f"{name:>38}: mean ESS {curve[0]:.1f} at the start, {curve[-1]:.2f} at the end (of N = {NUM_PARTICLES})")
ax.set_xlabel("step (tokens drawn, END included)")
ax.set_ylabel(f"mean ESS over {NUM_RUNS} runs")
ax.set_ylim(0, NUM_PARTICLES + 0.5)
ax.set_title("The effective sample size shrinks step by step")
ax.legend()
fig.tight_layout()

# %% [markdown]
# The bootstrap ESS is just the number of particles still alive; guided particles never die but their
# weights spread out, and the product of $L$ factors makes a few particles carry most of the weight.
# With resampling the ESS returns to $N$ after each resampling (the curve plots the ESS *before* a
# step), and the particles that were copied carry on from the promising prefixes.
#
# ## 2. Resampling: four unbiased ways to copy particles
#
# Resampling draws ancestors $A_1, \dots, A_N$ so that each particle $i$ gets $O_i$ copies with
# $\mathbb E[O_i] = N W_i$ ($W$ the normalised weights); every copy then carries the mean weight, so
# $\hat Z$ is unchanged on average. The four schemes of `resampling` differ in how much the counts
# *vary* around $N W_i$: **multinomial** ($N$ independent draws), **stratified** (one uniform in each
# of $N$ strata), **systematic** (one uniform shifting an evenly spaced comb) and **residual**
# ($\lfloor N W_i \rfloor$ copies for sure, the rest multinomially); Douc, Cappé & Moulines compare
# them {cite:p}`douc2005comparison`.
#
# Each scheme is a deterministic function of its uniforms (`resampling.ancestors`), and every ancestor
# depends on one uniform only, so by linearity $\mathbb E[O_i] = \int_0^1 O_i(u, u, \dots, u)\,du$: the
# integrand is the package's count with all uniforms equal to $u$, piecewise constant between the
# points where some comb point crosses a cumulative weight. Evaluating it once per piece gives the
# exact expectation, computed by the package's code.

# %%
num_small = 6
log_weights = np.log(rng.dirichlet(np.full(num_small, 0.7)))
weights = resampling.normalized_weights(log_weights)
cumulative = np.cumsum(weights)
residual = num_small * weights - np.floor(num_small * weights)
# every u where an ancestor may change: a comb point (n + u)/N or u itself meets a cumulative weight
breakpoints = np.concatenate([[0.0, 1.0], cumulative, (num_small * cumulative) % 1.0,
                              np.cumsum(residual) / max(residual.sum(), 1e-300)])
breakpoints = np.unique(np.clip(breakpoints, 0.0, 1.0))
midpoints, lengths = (breakpoints[1:] + breakpoints[:-1]) / 2, np.diff(breakpoints)
# pieces of width ~1e-16 next to 0 or 1 have a midpoint that rounds onto the end: they weigh nothing
pieces = (midpoints > 0) & (midpoints < 1) & (lengths > 0)
print("N W_i (the target)       :", np.array2string(num_small * weights, precision=4))
expected_offspring = {}
for scheme in resampling.SCHEMES:
    count = resampling.num_uniforms(num_small, scheme)
    expected_offspring[scheme] = sum(
        length * resampling.offspring_counts(resampling.ancestors(np.full(count, u), log_weights, scheme), num_small)
        for u, length in zip(midpoints[pieces], lengths[pieces])
    )
    print(f"E[O_i], {scheme:<17}:", np.array2string(expected_offspring[scheme], precision=4),
          f" max |E[O] - N W| = {np.abs(expected_offspring[scheme] - num_small * weights).max():.1e}")

# %% [markdown]
# Unbiased all four, to rounding error. Their variances differ; we estimate them from `NUM_RESAMPLES`
# resamplings of the same weights (uniforms of step $t$ from the chapter's generator).

# %%
variances = {}
for scheme in resampling.SCHEMES:
    counts = np.array([resampling.offspring_counts(resampling.resample(rng, log_weights, scheme, step=t), num_small)
                       for t in range(NUM_RESAMPLES)])
    variances[scheme] = counts.var(axis=0)
    heaviest = int(np.argmax(weights))
    print(f"{scheme:>11}: mean of the counts {np.array2string(counts.mean(axis=0), precision=3)}, "
          f"sum over particles of Var(O_i) = {variances[scheme].sum():.3f}, "
          f"copies of particle {heaviest} (N W = {num_small * weights[heaviest]:.2f}) seen: "
          f"{sorted(set(counts[:, heaviest].tolist()))}")

fig, ax = plt.subplots(figsize=(8, 3.8))
width = 0.2
for k, scheme in enumerate(resampling.SCHEMES):
    ax.bar(np.arange(num_small) + width * (k - 1.5), variances[scheme], width=width, label=scheme)
ax.plot(np.arange(num_small), num_small * weights * (1 - weights), "k_", ms=25, mew=2,
        label="N W (1 - W), multinomial's exact variance")
ax.set_xticks(np.arange(num_small), [f"particle {i}\nN W = {num_small * w:.2f}" for i, w in enumerate(weights)])
ax.set_ylabel(f"Var(O_i) over {NUM_RESAMPLES} resamplings")
ax.set_title("Same mean, different noise")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# Multinomial is the noisiest (its counts are binomial, variance $N W_i (1 - W_i)$, the black marks);
# the other three spread each count over fewer values (printed above for the heaviest particle):
# residual fixes $\lfloor N W_i \rfloor$ copies, stratified and systematic place one point per stratum.
# Each scheme is checked exactly in `tests/test_reference_resampling.py`, and against the `particles`
# package. Less resampling noise means a less noisy $\hat Z$.
#
# ## 3. SMC on the oracle: $\hat Z$ against the exact $Z$
#
# Now the full algorithm, on the same oracle and constraint. Each run gives one $\hat Z$; over
# `NUM_RUNS` independent runs the mean of $\hat Z$ should be $Z$ (unbiased: the Feynman–Kac argument of
# {cite:p}`delmoral2004feynman`, chapter 11 of {cite:p}`chopin2020introduction`), while $\log \hat Z$ is
# biased low (Jensen's inequality: $\mathbb E[\log \hat Z] \le \log Z$) and its spread is the
# practical measure of quality. The **exact twist** $\psi(x_{1:t}) = P(\chi = 1 \mid x_{1:t})$
# (`smc.oracle_log_twist`, by dynamic programming on the oracle) makes the guided proposal sample
# $\pi$'s own conditionals: every weight is then exactly $Z$, and the variance is zero. A learned
# approximation of $\psi$ is what twisted SMC {cite:p}`zhao2024twisted` trains.

# %%
log_twist = smc.oracle_log_twist(oracle, KEYWORDS, MAX_LENGTH)
print(f"the exact twist of the empty prefix is log P(χ = 1) = {log_twist(smc.empty_prefixes(1, MAX_LENGTH))[0]:.12f} "
      f"(enumeration: {log_z:.12f})")
runs = {
    "bootstrap": run_on_oracle("bootstrap", 0.5),
    "guided": traces["guided, resample when ESS < N/2 (SMC)"],
    "guided + exact twist": run_on_oracle("guided", 0.5, log_twist=log_twist),
}
log_evidence = {name: trace.infos.log_evidence[:, -1].numpy() for name, trace in runs.items()}
for name, values in log_evidence.items():
    ratio = np.exp(values - log_z)  # Z_hat / Z of each run
    finite = values[np.isfinite(values)]
    print(
        f"{name:>21}: mean Ẑ/Z = {ratio.mean():.4f} ± {2 * ratio.std(ddof=1) / np.sqrt(ratio.size):.4f} (2 s.e.), "
        f"runs with Ẑ = 0: {np.mean(~np.isfinite(values)):.3f}, mean log Ẑ - log Z = {finite.mean() - log_z:+.4f}, "
        f"sd of log Ẑ = {finite.std():.2e}"
    )

fig, ax = plt.subplots(figsize=(9, 4))
finite_all = np.concatenate([v[np.isfinite(v)] for v in log_evidence.values()])
bins = np.linspace(finite_all.min() - 0.05, finite_all.max() + 0.05, 50)
for name in ("bootstrap", "guided"):
    values = log_evidence[name]
    ax.hist(values[np.isfinite(values)], bins=bins, alpha=0.55, label=f"{name} (N = {NUM_PARTICLES})")
ax.axvline(log_z, color="black", lw=2, label="exact log Z (enumeration)")
ax.axvline(log_evidence["guided + exact twist"][0], color="tab:red", ls="--",
           label="guided + exact twist: every run")
ax.set_xlabel("log Ẑ of one run")
ax.set_ylabel(f"runs (of {NUM_RUNS})")
ax.set_title("log Ẑ over independent SMC runs")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# The mean of $\hat Z$ agrees with $Z$ within its standard error for both proposals (the printout says
# by how much); $\log \hat Z$ is spread to the left of $\log Z$, less for the guided proposal, which
# never wastes a particle on a dead end and never returns $\hat Z = 0$. With the exact twist every run
# returns $\log Z$ to rounding error. How much does the resampling scheme matter? Resampling at every
# step (`ess_threshold=1`) makes the difference as large as it gets (every scheme with the same
# seed); compare the spreads with the variances of section 2:

# %%
for scheme in resampling.SCHEMES:
    trace = run_on_oracle("guided", 1.0, scheme=scheme, num_runs=NUM_RUNS // 2, seed=SEED + 1)
    values = trace.infos.log_evidence[:, -1].numpy()
    ratio = np.exp(values - log_z)
    print(f"guided, {scheme:>11}: mean Ẑ/Z = {ratio.mean():.4f}, sd of log Ẑ = {values.std():.4f}")

# %% [markdown]
# ### The genealogy of the particles
#
# Resampling gives each particle an ancestor at every step; following the final particles back
# (`smc.ancestral_lines`) shows how few *distinct* early prefixes survive: path degeneracy
# ({cite:p}`chopin2020introduction`, ch. 12). One reference run, bootstrap proposal, resampling at every step
# (`ess_threshold=1`) to make it visible. Grey: every particle at every step, linked to its ancestor;
# blue: the lines of the final particles.

# %%
genealogy_trace = smc.sample(CounterGenerator(SEED, 0), smc.empty_prefixes(NUM_PARTICLES, MAX_LENGTH), oracle,
                             potential, MAX_LENGTH + 1, proposal="bootstrap", scheme="systematic", ess_threshold=1.0)
ancestors = genealogy_trace.infos.ancestors  # (T, N)
lines = smc.ancestral_lines(ancestors)  # (T + 1, N)
num_steps = ancestors.shape[0]
fig, ax = plt.subplots(figsize=(9, 4.5))
for t in range(num_steps):
    for n in range(NUM_PARTICLES):
        ax.plot([t, t + 1], [ancestors[t, n], n], color="lightgrey", lw=0.8, zorder=1)
for n in range(NUM_PARTICLES):
    ax.plot(np.arange(num_steps + 1), lines[:, n], color="tab:blue", lw=1.5, zorder=2)
ax.set_xlabel("step")
ax.set_ylabel("particle index")
ax.set_title("Genealogy: the final particles traced back to their ancestors")
fig.tight_layout()
distinct = [len(np.unique(row)) for row in lines]
print(f"distinct ancestors of the {NUM_PARTICLES} final particles, step by step: {distinct}")
print(f"this run: log Ẑ = {genealogy_trace.infos.log_evidence[-1]:.4f} (exact {log_z:.4f})")
final = genealogy_trace.final_state
for row, weight in zip(final.x[:4], resampling.normalized_weights(final.log_weight)[:4]):
    print(f"  W = {weight:.3f}  {oracle.decode(row)}")

# %% [markdown]
# ## 4. Keywords on the tiny GPT-2: SMC against rejection sampling and CGMH
#
# Now the built-in causal model `tiny-shakespeare` (a GPT-2 of a few layers trained on Shakespeare), the
# keywords *king* and *crown*, sentences of at most 12 tokens. Three samplers of the same law
# $\pi = p\chi/Z$:
#
# * **SMC**: guided proposal, `KeywordPotential`, resampling (systematic) when the ESS falls below
#   $N/2$; `LM_RUNS` independent runs of `LM_PARTICLES` particles;
# * **rejection**: ancestral sentences from $p$ (`torch.decoding.decode`, no filtering) kept when both
#   keywords appear as words (`missing_keywords`) and the sentence ended within $L$ tokens;
#   $Z$'s estimate is the acceptance rate;
# * **CGMH** (chapter 8, {cite:p}`miao2019cgmh`): `CGMH_CHAINS` chains from the keywords alone, $K = 10$ candidates.
#
# **Counting compute.** The unit is one *evaluation*: the model run on one prefix to get its next-token
# law, or on one sentence to get its log-probability. SMC spends one evaluation per unfinished particle
# per step (the guided proposal's potential over the vocabulary needs no model call); rejection spends
# one per position decoded (the sentence's tokens and its END, or $L + 1$ for a sentence cut off); a
# CGMH step spends $K + 2$ per chain (the prefix's next-token law, $K$ candidate sentences, the
# sentence with a token deleted), plus one per chain to score its start. SMC's spending is measured
# first, and the other two get the same budget. (This ignores that the model's KV cache makes a decoded
# position cheaper than a whole sentence scored by CGMH: in wall time CGMH is the most expensive of the
# three per evaluation.)

# %%
from tqdm import TqdmWarning  # noqa: E402

# transformers imports tqdm.auto, which warns in a kernel without ipywidgets; no progress bar is shown here.
warnings.filterwarnings("ignore", category=TqdmWarning)
from transformers.utils import logging as transformers_logging  # noqa: E402

from textsampling.lm import load_causal_lm  # noqa: E402
from textsampling.lm.keywords import continuation_token_ids, keyword_units, missing_keywords  # noqa: E402
from textsampling.lm.tokens import PAD  # noqa: E402
from textsampling.metrics import distinct_n  # noqa: E402
from textsampling.reference import cgmh  # noqa: E402
from textsampling.torch import cgmh as cgmh_twin  # noqa: E402
from textsampling.torch import decoding  # noqa: E402

transformers_logging.disable_progress_bar()
WORDS = ["king", "crown"]
LM_LENGTH = 12
NUM_CANDIDATES = 10
model = load_causal_lm("tiny-shakespeare")
lm_potential = smc.KeywordPotential.for_model(model, WORDS, LM_LENGTH)

lm_trace = smc_twin.sample(TorchCounterGenerator(SEED, torch.arange(LM_RUNS)),
                           smc_twin.empty_prefixes_torch(LM_RUNS, LM_PARTICLES, LM_LENGTH), model, lm_potential,
                           LM_LENGTH + 1, proposal="guided", scheme="systematic", ess_threshold=0.5)
finished = lm_trace.states.finished  # (R, T, N): after each step
# step 0 extends every particle; step t > 0 the ones not finished after step t - 1
smc_evaluations = LM_RUNS * LM_PARTICLES + int((~finished[:, :-1]).sum())
smc_log_z = lm_trace.infos.log_evidence[:, -1].numpy()  # (R,)
smc_final_ess = resampling_twin.effective_sample_size(lm_trace.final_state.log_weight).numpy()  # (R,)
smc_resamplings = lm_trace.infos.resampled.numpy().sum(axis=1)  # (R,)
print(f"SMC: {LM_RUNS} runs x {LM_PARTICLES} particles, {smc_evaluations} evaluations; resampled "
      f"{smc_resamplings.tolist()} times; final ESS {[round(float(e), 1) for e in smc_final_ess]}; "
      f"log Ẑ per run {[round(float(z), 3) for z in smc_log_z]}")

# %% [markdown]
# Rejection sampling decodes more sentences than the budget allows and keeps the first ones whose
# evaluations add up to at most SMC's count.

# %%
num_decoded = smc_evaluations // 4
uniforms = TorchCounterGenerator(SEED + 1, torch.arange(num_decoded)).uniforms(0, LM_LENGTH + 1, dtype=torch.float64)
decoded = decoding.decode(uniforms, model)
lengths_decoded = (decoded.tokens != PAD).sum(dim=1).numpy()
cost = np.where(decoded.ended.numpy(), lengths_decoded + 1, LM_LENGTH + 1)  # positions evaluated per sentence
within_budget = int(np.searchsorted(np.cumsum(cost), smc_evaluations, side="right"))
decoded_texts = model.decode(decoded.tokens[:within_budget].numpy())
accepted = np.array([bool(ended) and not missing_keywords(text, WORDS)
                     for text, ended in zip(decoded_texts, decoded.ended[:within_budget].numpy())])
rejection_texts = [text for text, keep in zip(decoded_texts, accepted) if keep]
acceptance = accepted.mean()
acceptance_se = np.sqrt(acceptance * (1 - acceptance) / within_budget)
print(f"rejection: {within_budget} sentences for {int(cost[:within_budget].sum())} evaluations, "
      f"{accepted.sum()} accepted: acceptance rate {acceptance:.4f} ± {2 * acceptance_se:.4f} (2 s.e.)")

# %%
config = cgmh.make_config(model, keyword_units(model, WORDS), num_candidates=NUM_CANDIDATES, max_length=LM_LENGTH,
                          gamma=1.0, continuation_tokens=continuation_token_ids(model))
start = cgmh.keyword_state(config)
cgmh_steps = max(1, (smc_evaluations // CGMH_CHAINS - 1) // (NUM_CANDIDATES + 2))
x0 = torch.full((CGMH_CHAINS, LM_LENGTH), PAD, dtype=torch.int64)
x0[:, : start.x.size] = torch.as_tensor(start.x)
cgmh_trace = cgmh_twin.sample(TorchCounterGenerator(SEED + 2, torch.arange(CGMH_CHAINS)), x0, config, cgmh_steps)
cgmh_evaluations = CGMH_CHAINS * (1 + cgmh_steps * (NUM_CANDIDATES + 2))
cgmh_texts = model.decode(cgmh_trace.final_state.x.numpy())
print(f"CGMH: {CGMH_CHAINS} chains x {cgmh_steps} steps = {cgmh_evaluations} evaluations, "
      f"acceptance rate {cgmh_trace.infos.accepted.float().mean():.3f}")

# %% [markdown]
# Each method's sentences: SMC's are its final particles of run 0, resampled once by their weights
# (multinomial) into $N$ unweighted sentences; rejection's are the accepted ones; CGMH's the chains'
# last states. Distinct-$n$ (distinct $n$-grams over all $n$-grams {cite:p}`li2016diversity`) is computed on the
# same number of sentences from each, the size of the smallest set.

# %%
smc_final = lm_trace.final_state
picked = resampling.resample(rng, smc_final.log_weight[0].numpy().astype(np.float64), "multinomial")
smc_texts = model.decode(smc_final.x[0].numpy()[picked])
all_smc_texts = model.decode(smc_final.x.reshape(-1, LM_LENGTH).numpy())
smc_missing = sum(bool(missing_keywords(text, WORDS)) for text in all_smc_texts)
outputs = {"SMC (guided)": smc_texts, "rejection": rejection_texts, "CGMH": cgmh_texts}
common = min(len(texts) for texts in outputs.values() if texts)  # an empty set gets no distinct-n
print(f"SMC particles missing a keyword as text (the potential works on tokens): {smc_missing} of {len(all_smc_texts)}")
print(f"\n{'method':<14}{'evaluations':>12}{'sentences':>11}{'distinct':>10}"
      f"{'distinct-1':>12}{'distinct-2':>12}   estimate of Z")
z_estimates = {
    "SMC (guided)": f"Ẑ = {np.exp(smc_log_z).mean():.2e} "
                    f"(mean of {LM_RUNS} runs; log Ẑ {smc_log_z.min():.2f} to {smc_log_z.max():.2f})",
    "rejection": f"acceptance rate {acceptance:.2e} ± {2 * acceptance_se:.1e}",
    "CGMH": "none (MCMC gives no Z)",
}
evaluations = {"SMC (guided)": smc_evaluations, "rejection": int(cost[:within_budget].sum()), "CGMH": cgmh_evaluations}
for name, texts in outputs.items():
    scores = "".join(f"{distinct_n(texts[:common], n):>12.3f}" if texts else f"{'-':>12}" for n in (1, 2))
    print(f"{name:<14}{evaluations[name]:>12}{len(texts):>11}{len(set(texts)):>10}{scores}   {z_estimates[name]}")
for name, texts in outputs.items():
    print(f"\n{name}:")
    for text in texts[: min(5, len(texts))]:
        print(f"  {text}")

# %% [markdown]
# The guided proposal is myopic: $G$ only says whether the keywords still *fit*, so nothing pulls a
# particle towards a keyword until the room runs out, and then the keywords are forced in at the end.
# How often that happens, and what rejection's zero count does say (with no acceptance in $n$ trials,
# $Z < 3/n$ at 95% confidence, the "rule of three"):

# %%
keyword_ids = [unit[0] for unit in lm_potential.units]  # single-token keywords on this tokenizer
final_rows = smc_final.x.reshape(-1, LM_LENGTH).numpy()
final_lengths = (final_rows != PAD).sum(axis=1)
tails = [set(row[max(0, n - len(keyword_ids)): n].tolist()) for row, n in zip(final_rows, final_lengths)]
at_the_end = np.mean([set(keyword_ids) <= tail for tail in tails])
print(f"SMC particles whose last {len(keyword_ids)} tokens are the keywords: {at_the_end:.2f}")
if accepted.sum() == 0:
    print(f"rejection: 0 accepted of {within_budget}: Z < {3 / within_budget:.1e} (95%)")
print(f"SMC: log Ẑ over its {LM_RUNS} runs spans {smc_log_z.max() - smc_log_z.min():.1f} nats")

# %% [markdown]
# A constraint rejection can measure: the keyword *king* alone. The rejection sentences decoded above
# are checked again for *king* only (no new evaluations), and SMC runs again with the one-keyword
# potential, at the same sizes.

# %%
king_potential = smc.KeywordPotential.for_model(model, WORDS[:1], LM_LENGTH)
king_trace = smc_twin.sample(TorchCounterGenerator(SEED + 3, torch.arange(LM_RUNS)),
                             smc_twin.empty_prefixes_torch(LM_RUNS, LM_PARTICLES, LM_LENGTH), model, king_potential,
                             LM_LENGTH + 1, proposal="guided", scheme="systematic", ess_threshold=0.5)
king_log_z = king_trace.infos.log_evidence[:, -1].numpy()
king_evaluations = LM_RUNS * LM_PARTICLES + int((~king_trace.states.finished[:, :-1]).sum())
king_accepted = np.array([bool(ended) and not missing_keywords(text, WORDS[:1])
                          for text, ended in zip(decoded_texts, decoded.ended[:within_budget].numpy())])
king_rate = king_accepted.mean()
king_se = np.sqrt(king_rate * (1 - king_rate) / within_budget)
print(f"P(king) — rejection: {king_accepted.sum()} of {within_budget} accepted, "
      f"rate {king_rate:.4f} ± {2 * king_se:.4f} (2 s.e.)")
print(f"P(king) — SMC ({king_evaluations} evaluations): Ẑ per run {[f'{np.exp(z):.2e}' for z in king_log_z]}, "
      f"mean {np.exp(king_log_z).mean():.4f}; final ESS "
      f"{[round(float(e), 1) for e in resampling_twin.effective_sample_size(king_trace.final_state.log_weight)]}")

# %%
fig, ax = plt.subplots(figsize=(8, 3.8))
for name, trace in [("king and crown", lm_trace), ("king", king_trace)]:
    ess_steps = np.concatenate([trace.infos.ess.numpy().mean(axis=0),
                                [resampling_twin.effective_sample_size(trace.final_state.log_weight).numpy().mean()]])
    ax.plot(np.arange(ess_steps.size), ess_steps / LM_PARTICLES, "o-", label=name)
ax.set_xlabel("step (tokens drawn)")
ax.set_ylabel(f"mean ESS / N over {LM_RUNS} runs")
ax.set_ylim(0, 1.05)
ax.set_title(f"SMC on the tiny GPT-2, N = {LM_PARTICLES}: the ESS before each step")
ax.legend()
fig.tight_layout()

# %% [markdown]
# Read the table with the counts beside it. Rejection pays for every sentence it throws away: its
# acceptance rate *is* its estimate of $Z$, and for *king* and *crown* together it accepts too few
# sentences (often none) to say more than an upper bound. SMC spends the same budget on prefixes that
# can still succeed, so every final particle holds both keywords, and it returns a $\hat Z$ where
# rejection has nothing — but compare the spread of $\log \hat Z$ over its runs (printed above) with
# the oracle's: a myopic proposal that forces the keywords in at the end, where $p$ gives them little
# probability, makes $\hat Z$ unbiased but heavy-tailed, so that most runs *underestimate* $Z$ and a
# rare run would make up for them; the ESS plot shows where the weights part ways — in the last steps,
# when the room for the keywords runs out. On *king* alone, where rejection accepts enough sentences to be
# measured, the two estimates of $P(	ext{king})$ can be compared directly, each with its own noise.
#
# Diversity is SMC's other weakness: resampling copies particles (the genealogy above), and the column
# of distinct sentences says how many of the $N$ resampled sentences differ. CGMH has no $Z$; its
# chains start from the bare keywords and, as in chapter 8, stay among short, probable sentences
# around them. The three methods sample the same law $\pi$; they differ in what a unit of compute buys.
# A better twist $\psi$ — a learned estimate of $P(\chi = 1 \mid x_{1:t})$, exact on the oracle in
# section 3 — is the way to make SMC's proposal look ahead {cite:p}`zhao2024twisted`.
#
# ## Try this
#
# 1. On the oracle, rerun section 3 with `NUM_PARTICLES = 4` and `64`. How does the standard deviation
#    of $\log \hat Z$ scale with $N$? Does the mean of $\hat Z / Z$ stay at 1?
# 2. Replace the exact twist by a crude one, e.g. `lambda rows: 0.5 * log_twist(rows)`. $\hat Z$ must
#    stay unbiased (why?); does its variance land between the guided and the exact-twist runs?
# 3. In section 1, resample at every step (`ess_threshold=1`) and never (`0`) with the bootstrap
#    proposal: which gives the smaller spread of $\log \hat Z$ on the oracle, and why is "always" not
#    always best?
# 4. On the tiny GPT-2, add a third keyword (*queen*). What happens to rejection's acceptance rate and
#    to SMC's $\hat Z$ at the same budget? How many distinct sentences does SMC keep?
# 5. Give CGMH ten times the budget. Do its sentences move away from the bare keywords, and does its
#    distinct-2 approach SMC's?
