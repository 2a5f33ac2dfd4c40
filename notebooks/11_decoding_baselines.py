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
# # 11. Decoding baselines: which of them sample the language model?
#
# A causal language model writes a sentence left to right: it draws $x_1$ from $p(x_1)$, then $x_2$
# from $p(x_2 \mid x_1)$, and so on until it draws END. When the target is the language model itself,
# $p(x) = \prod_t p(x_t \mid x_{<t})\, p(\mathrm{END} \mid x)$, this *ancestral sampling* is exact and
# needs no Markov chain at all. The chains of chapters 4–8 are for targets a left-to-right decoder
# cannot reach: a constraint $\chi$ (chapter 1), a masked LM's energy (chapter 7), keywords (chapter 8).
# An autoregressive LM cannot sample $p(x)\chi(x)/Z$ by itself, because whether $\chi$ will hold depends
# on tokens not yet written {cite:p}`su2021part1`.
#
# In practice nobody decodes with plain ancestral sampling. Text generators change the next-token law
# before drawing from it — a temperature $\tau$, top-$k$ (Fan, Lewis & Dauphin 2018, arXiv:1805.04833),
# top-$p$ or nucleus sampling (Holtzman et al. 2020, arXiv:1904.09751) — or do not sample at all
# (greedy decoding, beam search). Every one of these, except ancestral sampling, **changes the target**:
# the sentences no longer follow $p$. This chapter computes the exact law of each, on a model small
# enough to enumerate every sentence, and measures how far each is from $p$.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import logsumexp

from textsampling import diagnostics
from textsampling.lm.oracle import BigramOracle
from textsampling.reference import decoding
from textsampling.targets import PAD, BigramLM

SEED = 1904
SMALL = bool(os.environ.get("CI"))
NUM_SENTENCES = 300 if SMALL else 20_000
MAX_NEW_TOKENS = 4

# %% [markdown]
# ## The model and what a decoder returns
#
# The bigram oracle (chapter 7) is a causal LM with exact next-token laws: four tokens `a b c d`, and
# END after each with the bigram's probability. A decoder draws at most `MAX_NEW_TOKENS` = 4 tokens: it
# returns one of $4 + 4^2 + 4^3 = 84$ sentences ended by END, or the first four tokens of a longer
# sentence (END not drawn, $4^4 = 256$ of them): 340 outcomes, few enough to list.
#
# `decoding.exact_sequence_law` enumerates them with their exact probabilities under a decoder: it
# expands every prefix with the same filtered next-token row that `decoding.decode` draws from, and
# multiplies along the path,
#
# $$
# q(x_1..x_n, \mathrm{END}) = \prod_{t=1}^{n} q_t(x_t \mid x_{<t})\; q_{n+1}(\mathrm{END} \mid x_{\le n}).
# $$
#
# With no filter, $q_t = p(\cdot \mid x_{<t})$, so ancestral sampling has $q = p$. We check that against
# the model's own sentence probabilities: $p(x, \mathrm{END})$ from `sequence_log_probs` for an ended
# sentence, and for a cut one $p(x_1..x_4) = p(x_1..x_4, \mathrm{END}) / p(\mathrm{END} \mid x_4)$
# (the mass of every sentence that starts with these four tokens).

# %%
rng = np.random.default_rng(SEED)
bigram = BigramLM.random(rng, vocab_size=4, max_length=MAX_NEW_TOKENS, concentration=0.8)
oracle = BigramOracle(bigram)


def text(tokens, ended):
    words = "".join("abcd"[t] for t in tokens if t != PAD)
    return words + ("." if ended else "…")  # "." = END drawn, "…" = cut at MAX_NEW_TOKENS


ancestral = decoding.exact_sequence_law(oracle, MAX_NEW_TOKENS)
model_log_p = oracle.sequence_log_probs(ancestral.tokens)  # log p(x, END)
last = ancestral.tokens[np.arange(len(ancestral.tokens)), (ancestral.tokens != PAD).sum(axis=1) - 1]
model_log_p = np.where(ancestral.ended, model_log_p, model_log_p - bigram.log_transition[last, bigram.end_token])
p = np.exp(model_log_p)
print(f"{len(p)} outcomes; sum of p = {p.sum():.15f}")
print(f"ancestral sampling: max |q(x) - p(x)| = {np.max(np.abs(ancestral.probabilities() - p)):.1e}")
print(f"P(END drawn within {MAX_NEW_TOKENS} tokens) = {p[ancestral.ended].sum():.3f}")

# %% [markdown]
# ## Temperature: a product of tempered conditionals, not $p^{1/\tau}$
#
# Temperature sampling divides the next-token log-probabilities by $\tau$ and renormalises, *at each
# step*. It is often described as sampling from $p(x)^{1/\tau}$ "sharpened" ($\tau < 1$) or
# "flattened" ($\tau > 1$). It is not: each step has its own normaliser
# $Z_t(x_{<t}) = \sum_v p(v \mid x_{<t})^{1/\tau}$, which depends on the prefix, so
#
# $$
# q_\tau(x) = \prod_t \frac{p(x_t \mid x_{<t})^{1/\tau}}{Z_t(x_{<t})}
# = \frac{p(x)^{1/\tau}}{\prod_t Z_t(x_{<t})} \;\ne\; \frac{p(x)^{1/\tau}}{Z}.
# $$
#
# Below: the exact per-step law, the tempered joint $p^{1/\tau}/Z$ over the same 340 outcomes, and their
# distances to $p$ and to each other. Temperature also acts on END, so it changes the length of the
# sentences — the last column. The two laws do not even move the length the same way: at $\tau = 0.5$
# the per-step law writes *longer* sentences than $p$ (END is never the most probable next outcome in
# this model, as printed first, so sharpening takes mass from it at every step), while $p^{1/\tau}/Z$
# favours the short, probable sentences.

# %%
def mean_length(law):
    return float(np.sum(law.probabilities() * (law.tokens != PAD).sum(axis=1)))


after_one_token = oracle.next_token_log_probs(np.arange(4)[:, None])  # (4, V + 2): after a, b, c, d
print(f"END is the most probable next outcome after {np.sum(after_one_token.argmax(axis=1) == oracle.end_token_id)} of the 4 tokens")
print(f"p: mean length {mean_length(ancestral):.3f}")
tempered = {}
for temperature in (0.5, 0.8, 1.5):
    per_step = decoding.exact_sequence_law(oracle, MAX_NEW_TOKENS, temperature=temperature)
    joint = ancestral._replace(log_probs=ancestral.log_probs / temperature - logsumexp(ancestral.log_probs / temperature))
    tempered[temperature] = (per_step, joint)
    print(f"τ = {temperature}: TV(per-step, p) = {per_step.tv_distance(ancestral):.3f}, "
          f"TV(p^(1/τ)/Z, p) = {joint.tv_distance(ancestral):.3f}, "
          f"TV(per-step, p^(1/τ)/Z) = {per_step.tv_distance(joint):.3f}; "
          f"mean length {mean_length(per_step):.3f} vs {mean_length(joint):.3f}")

# %% [markdown]
# ## Top-k and top-p: truncated, renormalised conditionals
#
# Top-$k$ keeps the $k$ most probable next outcomes (END included) and renormalises; top-$p$ keeps the
# smallest set of most probable outcomes whose mass reaches $p$ (here called `top_p` to avoid a clash
# with the model $p$). The sentence law is again the product of the filtered conditionals. Truncation
# removes whole sentences: every sentence that needs a dropped token at some step gets probability 0,
# so $\mathrm{TV}(q, p)$ is at least the $p$-mass of the removed sentences.

# %%
laws = {"ancestral": ancestral}
for name, settings in {
    "temperature 0.5": {"temperature": 0.5},
    "temperature 1.5": {"temperature": 1.5},
    "top-k, k = 2": {"top_k": 2},
    "top-k, k = 3": {"top_k": 3},
    "top-p, 0.8": {"top_p": 0.8},
    "top-p, 0.95": {"top_p": 0.95},
}.items():
    laws[name] = decoding.exact_sequence_law(oracle, MAX_NEW_TOKENS, **settings)
laws["greedy"] = decoding.exact_sequence_law(oracle, MAX_NEW_TOKENS, greedy=True)
for num_beams in (2, 4):
    laws[f"beam search, {num_beams} beams"] = decoding.exact_sequence_law(oracle, MAX_NEW_TOKENS, num_beams=num_beams)

print(f"{'decoder':>24} | outcomes | p-mass removed | TV(q, p)")
for name, law in laws.items():
    removed = 1.0 - p[ancestral.index(law.tokens, law.ended)].sum()
    print(f"{name:>24} | {len(law.log_probs):>8} | {removed:>14.3f} | {law.tv_distance(ancestral):.3f}")

# %% [markdown]
# Only ancestral sampling has TV 0: it is the one decoder that samples $p$. Every filter has a positive
# distance. For the truncations the last two columns agree, and they must: every renormalisation
# divides by a kept mass $\le 1$, so $q(x) \ge p(x)$ on every sentence top-$k$ or top-$p$ keeps, and
# then $\mathrm{TV}(q, p) = \sum_{q < p} (p - q)$ is exactly the $p$-mass of the removed sentences.
# Truncation removes most sentences while keeping much of the mass: that is its purpose, and it is
# also exactly how far it moves the target.
#
# ## Greedy and beam search: a point mass, and not always at the most probable sentence
#
# Greedy decoding takes the most probable next outcome at each step; beam search keeps the $k$ best
# prefixes (`decoding.beam_search`, the rules of transformers' `generate`). Neither samples: each
# returns the same sentence every time, a point mass, at TV $1 - p(\text{that sentence})$ from $p$. Both
# *search* for a probable sentence; whether they find the most probable one is checked exactly here.
# Beam search does not even aim at the argmax of $p$ by default: transformers ranks finished sentences
# by $\log p / (\text{length})^{\text{length\_penalty}}$ with `length_penalty = 1`, an average
# log-probability per token that favours long sentences; `length_penalty = 0` ranks by $\log p$.

# %%
mode = int(np.argmax(p))
print(f"most probable outcome under p: {text(ancestral.tokens[mode], ancestral.ended[mode])}  p = {p[mode]:.4f}")
for name in ("greedy", "beam search, 2 beams", "beam search, 4 beams"):
    law = laws[name]
    print(f"{name:>40}: {text(law.tokens[0], law.ended[0])}  p = {ancestral.probabilities_of(law.tokens, law.ended)[0]:.4f}")
for num_beams in (2, 4):
    law = decoding.exact_sequence_law(oracle, MAX_NEW_TOKENS, num_beams=num_beams, length_penalty=0.0)
    name = f"beam search, {num_beams} beams, length_penalty 0"
    print(f"{name:>40}: {text(law.tokens[0], law.ended[0])}  p = {ancestral.probabilities_of(law.tokens, law.ended)[0]:.4f}")

# %%
order = np.argsort(p)[::-1][:20]
shown = ["ancestral", "temperature 0.5", "top-k, k = 2", "top-p, 0.8"]
fig, ax = plt.subplots(figsize=(12, 4))
width = 0.8 / (len(shown) + 1)
for k, name in enumerate(shown):
    probabilities = laws[name].probabilities_of(ancestral.tokens[order], ancestral.ended[order])
    ax.bar(np.arange(20) + (k - 2) * width, probabilities, width, label=f"{name} (TV to p {laws[name].tv_distance(ancestral):.3f})")
joint = tempered[0.5][1]
ax.bar(np.arange(20) + 2 * width, joint.probabilities_of(ancestral.tokens[order], ancestral.ended[order]), width,
       color="grey", label=f"p^(1/0.5)/Z (TV to p {joint.tv_distance(ancestral):.3f})")
greedy = laws["greedy"]
position = np.flatnonzero(ancestral.index(greedy.tokens, greedy.ended)[0] == order)
if position.size:
    ax.axvline(position[0], color="black", ls=":", label="greedy decoding's sentence")
ax.set_xticks(np.arange(20), [text(ancestral.tokens[i], ancestral.ended[i]) for i in order], fontsize=8)
ax.set_xlabel("outcome (the 20 most probable under p; '.' ended, '…' cut)")
ax.set_ylabel("exact probability")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## The sampler follows its exact law
#
# The exact laws above are computed from the same filtered rows `decoding.decode` draws from; that the
# *sampler* follows them is a separate claim. We draw `NUM_SENTENCES` sentences with `decoding.sample`
# for each sampling decoder and compare the histogram with its exact law, next to the TV distance of
# the same number of independent exact draws (a histogram of exact draws is not at TV 0: Monte Carlo
# noise). The package's tests do the same with a chi-square test at a stated false-fail rate.

# %%
rows = []
for k, name in enumerate(["ancestral", "temperature 1.5", "top-k, k = 3", "top-p, 0.95"]):
    settings = {
        "ancestral": {}, "temperature 1.5": {"temperature": 1.5}, "top-k, k = 3": {"top_k": 3}, "top-p, 0.95": {"top_p": 0.95},
    }[name]
    tokens, ended = decoding.sample(rng, oracle, NUM_SENTENCES, MAX_NEW_TOKENS, first_step=k * NUM_SENTENCES, **settings)
    law = laws[name]
    sampled = law.index(tokens, ended)
    exact_draws = rng.choice(len(law.log_probs), size=NUM_SENTENCES, p=law.probabilities())
    rows.append((name, law, sampled))
    print(f"{name:>16}: outside the support {np.sum(sampled < 0)}; "
          f"TV(histogram, exact law) = {diagnostics.empirical_tv_distance(sampled, law.probabilities()):.3f}, "
          f"exact draws: {diagnostics.empirical_tv_distance(exact_draws, law.probabilities()):.3f}; "
          f"TV(histogram, p) = {diagnostics.empirical_tv_distance(ancestral.index(tokens, ended), p):.3f}")

fig, axes = plt.subplots(1, len(rows), figsize=(15, 3.4), sharey=True)
for ax, (name, law, sampled) in zip(axes, rows):
    top = np.argsort(law.log_probs)[::-1][:12]
    frequencies = np.bincount(sampled, minlength=len(law.log_probs)) / NUM_SENTENCES
    ax.bar(np.arange(12) - 0.2, law.probabilities()[top], 0.4, color="black", label="exact law")
    ax.bar(np.arange(12) + 0.2, frequencies[top], 0.4, label=f"{NUM_SENTENCES} decoded")
    ax.set_xticks(np.arange(12), [text(law.tokens[i], law.ended[i]) for i in top], rotation=60, fontsize=7)
    ax.set_title(name, fontsize=10)
axes[0].set_ylabel("probability")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## What to take away
#
# * Ancestral sampling is the only decoder here that samples the language model: its law equals $p$ to
#   rounding, and its histogram is as close to $p$ as exact draws are.
# * Temperature, top-$k$ and top-$p$ sample *another* law, known exactly (the product of the filtered
#   conditionals); calling their output "samples from the model" is wrong by the TV printed above.
#   Temperature is not the tempered joint $p^{1/\tau}/Z$ either (their TV distance is printed above),
#   and moves the length of the sentences in its own direction.
# * Greedy and beam search return a single sentence; as the comparison with the most probable outcome
#   shows, a search that looks only a few steps ahead need not find the argmax, and transformers'
#   default length penalty makes beam search rank by another score than $p$. To *maximise* a score
#   over whole sentences, chapter 6's annealing searches the sentence space itself.
# * The MCMC samplers of chapters 7–8 exist for targets these decoders cannot express. The same caveat
#   applies to them: a top-$k$ proposal inside Gibbs also changes the target (chapter 7, exercise 2).
#
# ## Try this
#
# 1. Lower the temperature to 0.05. Which law does the per-step tempered decoder approach — the
#    greedy sentence or the argmax of $p$? And $p^{1/\tau}/Z$?
# 2. Set `top_p=1.0` and `top_k=4` (the whole vocabulary, END excluded). Is the law still $p$? Why not?
# 3. With `length_penalty=0`, how many beams does beam search need to return the most probable outcome
#    here? With 5 beams, as many as there are next outcomes (4 tokens and END), is the search exhaustive?
#    (Count the prefixes that keep running after two steps.)
# 4. Raise `MAX_NEW_TOKENS` to 6 (5,460 outcomes). How do the TV distances of the filters change as the
#    sentences get longer?
