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
# # 1. Writing down what you want
#
# Suppose we want sentences that contain the words *king* and *crown*. The usual route trains a model
# on pairs (keywords, sentence). Part 1 of the series {cite:p}`su2021part1` takes another one: **write
# down** how good a sentence $x$ is for the keywords $c$, as a product of three scores,
#
# $$
# \rho(x, c) = p(x)^{\gamma} \cdot \mathrm{sim}(x, c) \cdot \chi(x, c),
# $$
#
# $$
# \chi(x, c) = \begin{cases} 1 & \text{if every keyword of } c \text{ occurs in } x,\\ 0 & \text{otherwise,}\end{cases}
# $$
#
# where $p$ is a language model (fluency), $\mathrm{sim}$ a soft relevance score and $\chi$ a hard
# constraint. The sentences we want are then samples from — or the maximum of — the distribution
#
# $$
# p(x \mid c) = \frac{\rho(x, c)}{Z(c)}, \qquad Z(c) = \sum_{x} \rho(x, c).
# $$
#
# For real text $Z(c)$ is a sum over every sentence of every length, which no computer can do: the rest
# of the book is about sampling *without* $Z$. In this chapter the vocabulary has six words and sentences
# at most four tokens, so there are only $6 + 6^2 + 6^3 + 6^4 = 1554$ sentences and **everything is
# exact**: this is the ground truth every later sampler is measured against.
#
# Everything is in log space: $\log\rho = \gamma \log p + \log \mathrm{sim} + \log\chi$, with
# $\log \chi \in \{0, -\infty\}$.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from textsampling.targets import PAD, BigramLM, KeywordTarget, TopicSimilarity

SEED = 2021
NUM_SAMPLES = 2_000 if os.environ.get("CI") else 100_000
rng = np.random.default_rng(SEED)

# %% [markdown]
# ## A language model small enough to enumerate
#
# A bigram model with an end token,
#
# $$
# \log p(x) = \log p(x_1) + \sum_{t=2}^{n} \log p(x_t \mid x_{t-1}) + \log p(\mathrm{END} \mid x_n).
# $$
#
# We set its logits by hand so that its favourite sentences read like English; every transition keeps
# a small probability, so every sentence is possible.

# %%
WORDS = ["the", "king", "queen", "wears", "a", "crown"]
THE, KING, QUEEN, WEARS, A, CROWN = range(len(WORDS))
END = len(WORDS)  # column of the END outcome in the transition logits

initial_logits = np.array([2.0, 0.0, 0.0, -1.0, 1.0, -1.0])
transition_logits = np.full((len(WORDS), len(WORDS) + 1), -3.0)  # (V, V + 1): a floor for every move
for previous, following, logit in [
    (THE, KING, 2.0), (THE, QUEEN, 2.0), (THE, CROWN, 1.0),
    (KING, WEARS, 2.0), (KING, END, 1.0), (QUEEN, WEARS, 2.0), (QUEEN, END, 1.0),
    (WEARS, THE, 1.5), (WEARS, A, 1.5), (WEARS, CROWN, 0.5),
    (A, CROWN, 2.0), (A, KING, 0.5), (A, QUEEN, 0.5),
    (CROWN, END, 2.0), (CROWN, WEARS, -1.0),
]:
    transition_logits[previous, following] = logit

language_model = BigramLM(initial_logits, transition_logits, max_length=4)


def sentence(tokens) -> str:
    """Token ids (PAD-padded) as words."""
    return " ".join(WORDS[t] for t in tokens if t != PAD)


print(language_model, "with", language_model.num_states, "sentences")
print("most probable sentence:", repr(sentence(language_model.argmax())))

# %% [markdown]
# ## The three factors
#
# * fluency: the bigram model, raised to a power $\gamma$;
# * relevance: a toy $\log\mathrm{sim}(x) = w \cdot (\text{fraction of tokens about royalty})$, standing in
#   for the sentence-embedding cosine of part 4 {cite:p}`su2021part4`;
# * the constraint: both keywords must occur.
#
# `KeywordTarget` composes them; each factor can also be looked at alone.

# %%
KEYWORDS = [KING, CROWN]
relevance = TopicSimilarity([KING, QUEEN, CROWN], weight=1.0)
targets = {
    "p(x)": language_model,
    "p(x) · sim": KeywordTarget(language_model, keywords=[], log_similarity=relevance),
    "p(x) · sim · χ": KeywordTarget(language_model, keywords=KEYWORDS, log_similarity=relevance),
}
for name, target in targets.items():
    print(f"{name:>16}: log Z = {target.log_normalizer():8.4f}, best sentence: {sentence(target.argmax())!r}")

# %% [markdown]
# The normaliser of the constrained target is the probability mass the other two factors give to
# sentences that satisfy the constraint. With $\mathrm{sim} \equiv 1$ it is exactly
# $P_p(\chi = 1)$: the fraction of the language model's sentences that contain both keywords — the
# acceptance rate a naive "generate and filter" sampler would have (chapter 2).

# %%
constraint_only = KeywordTarget(language_model, keywords=KEYWORDS)
probability_keywords = np.exp(constraint_only.log_normalizer() - language_model.log_normalizer())
print(f"P_p(both keywords) = {probability_keywords:.4f}: generate-and-filter keeps about 1 sentence in {1 / probability_keywords:.0f}")

# %% [markdown]
# ## What each factor does to the distribution
#
# The twelve most probable sentences under each target, with their exact probabilities
# $\pi(x) = \rho(x) / Z$. Relevance shifts mass towards sentences about royalty; the constraint removes
# every sentence without both keywords and renormalises the rest.

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
for ax, (name, target) in zip(axes, targets.items()):
    probabilities = target.probabilities()
    top = np.argsort(probabilities)[::-1][:12]
    ax.barh(range(12)[::-1], probabilities[top], color="tab:blue")
    ax.set_yticks(range(12)[::-1], [sentence(target.states[i]) for i in top])
    ax.set_xlabel("exact probability")
    ax.set_title(name)
fig.tight_layout()

# %% [markdown]
# ## The exponent $\gamma$ and the length of sentences
#
# A language model's probability falls with every extra token, so on its own it prefers short
# sentences. CGMH {cite:p}`miao2019cgmh` uses $\gamma < 1$, which flattens $p$ and weakens that length
# penalty. Whether a given $\gamma$ lengthens or shortens the sentences depends on where the mass lies,
# so here is the exact mean length as a function of $\gamma$, with and without the keywords. Without
# them, flattening ($\gamma < 1$) lengthens the sentences as advertised; with them, the best sentences
# are the long ones that fit both keywords into a grammatical frame, and sharpening ($\gamma > 1$)
# lengthens them instead.

# %%
gammas = np.geomspace(0.25, 4.0, 17)
fig, ax = plt.subplots(figsize=(7, 3.8))
for keywords, label in (([], "p^γ · sim"), (KEYWORDS, "p^γ · sim · χ")):
    mean_lengths = [
        KeywordTarget(language_model, keywords=keywords, log_similarity=relevance, gamma=gamma).expectation(
            language_model.lengths
        )
        for gamma in gammas
    ]
    ax.plot(gammas, mean_lengths, marker="o", label=label)
ax.set_xscale("log", base=2)
ax.set_xlabel("γ")
ax.set_ylabel("exact mean sentence length")
ax.axvline(1.0, color="grey", lw=0.8)
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Exact sampling — the thing we cannot do for real text
#
# Because the whole space is listed, `sample_exact` draws sentences by inverse CDF over the
# enumeration: one uniform per sentence. Their frequencies match the exact probabilities up to Monte
# Carlo noise of order $\sqrt{\pi(1-\pi)/N}$ (error bars: two standard errors).

# %%
target = targets["p(x) · sim · χ"]
samples = target.sample_exact(rng, NUM_SAMPLES)
counts = np.bincount(target.state_index(samples), minlength=target.num_states)
probabilities = target.probabilities()
top = np.argsort(probabilities)[::-1][:10]
standard_errors = np.sqrt(probabilities[top] * (1 - probabilities[top]) / NUM_SAMPLES)

fig, ax = plt.subplots(figsize=(8, 4))
positions = np.arange(10)
ax.bar(positions - 0.2, probabilities[top], width=0.4, label="exact π(x)")
ax.bar(positions + 0.2, counts[top] / NUM_SAMPLES, width=0.4, yerr=2 * standard_errors, label=f"{NUM_SAMPLES} exact samples")
ax.set_xticks(positions, [sentence(target.states[i]) for i in top], rotation=35, ha="right")
ax.set_ylabel("probability")
ax.legend()
fig.tight_layout()
print("sentences drawn:", [sentence(x) for x in samples[:5]])

# %% [markdown]
# For a real vocabulary of 30,000 tokens and sentences of 20 tokens there are $30000^{20} \approx 10^{90}$
# sentences: neither $Z$ nor the inverse CDF exists in practice. Chapters 2–6 build samplers that only
# ever evaluate $\log\rho$ at a few sentences, and check them against this exact answer.
#
# ## Try this
#
# 1. Make the relevance weight negative (`TopicSimilarity(..., weight=-2.0)`): which sentences win now,
#    and how does $\log Z$ change?
# 2. Add a third keyword, `QUEEN`. How much probability mass survives the constraint? Why are all
#    surviving sentences at least three tokens long?
# 3. Raise `max_length` to 5 (7,776 more sentences). Does the best sentence change? Does the mean
#    length under $\gamma = 0.5$?
# 4. Change `SEED` and re-run: the samples change, the exact probabilities do not.
