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
# down** how good a sentence $x$ is for the keywords $c$,
#
# $$
# \rho(x, c) = p(x) \cdot \chi(x, c), \qquad
# \chi(x, c) = \begin{cases} 1 & \text{if every keyword of } c \text{ occurs in } x,\\ 0 & \text{otherwise,}\end{cases}
# $$
#
# where $p$ is a language model (fluency) and $\chi$ a hard constraint. The sentences we want are then
# samples from — or the maximum of — the distribution
#
# $$
# p(x \mid c) = \frac{\rho(x, c)}{Z(c)}, \qquad Z(c) = \sum_{x} \rho(x, c).
# $$
#
# The same part writes a second example, summarisation, with a third factor: a soft similarity
# $\mathrm{sim}(x, c)$ between the summary $x$ and the text $c$, and a $\chi$ that constrains the
# *length* of $x$ (a section below). Part 4 {cite:p}`su2021part4` adds an exponent, $p(x)^{\gamma}$ with
# $\gamma$ slightly below 1, to counter the language model's taste for short sentences. The package's
# `KeywordTarget` composes all of them,
#
# $$
# \log\rho(x, c) = \gamma \log p(x) + \log \mathrm{sim}(x, c) + \log \chi(x, c),
# \qquad \log \chi \in \{0, -\infty\},
# $$
#
# and part 1's keyword target is the case $\gamma = 1$, $\mathrm{sim} \equiv 1$.
#
# For real text $Z(c)$ is a sum over every sentence of every length, which no computer can do: the rest
# of the book is about sampling *without* $Z$. In this chapter the vocabulary has six words and sentences
# at most four tokens, so there are only $6 + 6^2 + 6^3 + 6^4 = 1554$ sentences and **everything is
# exact**: this is the ground truth every later sampler is measured against.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from textsampling.lm.oracle import BigramOracle
from textsampling.markov import tv_distance
from textsampling.reference import decoding
from textsampling.targets import PAD, BigramLM, KeywordTarget, TopicSimilarity

SEED = 2021
NUM_SAMPLES = 2_000 if os.environ.get("CI") else 100_000
NUM_DECODED = 300 if os.environ.get("CI") else 5_000  # left-to-right draws (a Python loop per token)
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
# ## The factors, one at a time
#
# * fluency: the bigram model;
# * the constraint: both keywords must occur — part 1's target is $p \cdot \chi$;
# * relevance: a toy $\log\mathrm{sim}(x) = w \cdot (\text{fraction of tokens about royalty})$, standing
#   in for a semantic similarity (in practice, e.g., a cosine between sentence embeddings). It is not
#   part of part 1's keyword target; we add it to see what a soft factor does.
#
# `KeywordTarget` composes them; each factor can also be looked at alone.

# %%
KEYWORDS = [KING, CROWN]
relevance = TopicSimilarity([KING, QUEEN, CROWN], weight=1.0)
targets = {
    "p(x)": language_model,
    "p(x) · χ": KeywordTarget(language_model, keywords=KEYWORDS),
    "p(x) · sim · χ": KeywordTarget(language_model, keywords=KEYWORDS, log_similarity=relevance),
}
for name, target in targets.items():
    mean_relevance = target.expectation(relevance) / relevance.weight
    print(
        f"{name:>16}: log Z = {target.log_normalizer():8.4f}, best sentence: {sentence(target.argmax())!r}, "
        f"mean fraction of royal tokens {mean_relevance:.3f}"
    )

# %% [markdown]
# The normaliser of the constrained target is the probability mass that $p$ gives to sentences that
# satisfy the constraint: $Z(c) / Z_p = P_p(\chi = 1)$, with $Z_p$ the language model's own normaliser —
# the fraction of the language model's sentences (of at most four tokens) that contain both keywords — the acceptance rate of a naive "generate and filter"
# sampler (chapter 2).

# %%
constraint_only = targets["p(x) · χ"]
probability_keywords = np.exp(constraint_only.log_normalizer() - language_model.log_normalizer())
print(f"P_p(both keywords) = {probability_keywords:.4f}: generate-and-filter keeps about 1 sentence in {1 / probability_keywords:.0f}")

# %% [markdown]
# ## What each factor does to the distribution
#
# The twelve most probable sentences under each target, with their exact probabilities
# $\pi(x) = \rho(x) / Z$. The constraint removes every sentence without both keywords and renormalises
# the rest; relevance then shifts mass towards sentences about royalty (the mean fraction of royal
# tokens printed above rises from $p \cdot \chi$ to $p \cdot \mathrm{sim} \cdot \chi$).

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
# ## Why a left-to-right language model cannot sample $p(x \mid c)$
#
# A causal language model draws a sentence token by token. The obvious way to make it respect $\chi$
# is to **mask** every continuation that can no longer lead to a valid sentence: no END while a keyword
# is missing, and no token that leaves fewer free slots than missing keywords (sentences stop at four
# tokens). Every sentence this draws satisfies $\chi$ — but it does not follow $p(x \mid c)$. Its law is
# the product of the *renormalised* masked next-token probabilities,
#
# $$
# q(x) = \prod_{t=1}^{n+1} \frac{p(x_t \mid x_{<t})\, m(x_t \mid x_{<t})}
#        {\sum_{w} p(w \mid x_{<t})\, m(w \mid x_{<t})}, \qquad x_{n+1} = \mathrm{END},\ m \in \{0, 1\},
# $$
#
# whereas the chain rule for the target needs
# $p(x_t \mid x_{<t}, \chi = 1) \propto p(x_t \mid x_{<t})\, P(\chi = 1 \mid x_{\le t})$: the probability
# that a prefix *can still be completed* into a valid sentence, a sum over all its completions — $Z$
# again. The mask only knows whether that probability is zero. A prefix that makes the keywords
# unlikely (a first word that rarely leads to *king* and *crown*) keeps its full probability under $q$
# and is then forced into whatever completes it.
#
# Below, the causal LM is our bigram model behind the package's `BigramOracle` interface (the exact
# language model of chapters 7–8), with a mask added; the package's decoder (`decoding.next_token_row`,
# `decoding.sample`) does the rest. We compute $q(x)$ exactly for every
# sentence and compare it with the enumerated $p(x \mid c)$.

# %%
class KeywordMaskedLM:
    """The oracle causal LM with every continuation that cannot satisfy χ masked (log-probability -inf)."""

    def __init__(self, oracle, keywords):
        self.oracle, self.keywords = oracle, set(keywords)
        self.end_token_id, self.special_token_ids = oracle.end_token_id, oracle.special_token_ids

    def next_token_log_probs(self, token_ids):
        token_ids = np.asarray(token_ids)
        log_probs = self.oracle.next_token_log_probs(token_ids)  # (N, V + 2), END at column V
        for row, tokens in enumerate(token_ids):
            missing = self.keywords - set(tokens[tokens != PAD].tolist())
            slots_after_next = self.oracle.max_length - np.count_nonzero(tokens != PAD) - 1
            for token in range(self.oracle.num_tokens):
                if len(missing - {token}) > slots_after_next:  # too few slots left for the missing keywords
                    log_probs[row, token] = -np.inf
            if missing:
                log_probs[row, self.end_token_id] = -np.inf  # no END while a keyword is missing
        return log_probs


masked_model = KeywordMaskedLM(BigramOracle(language_model), KEYWORDS)
constrained = targets["p(x) · χ"]
exact = constrained.probabilities()
log_masked_law = np.full(constrained.num_states, -np.inf)
for index in np.flatnonzero(exact > 0):  # every prefix of a valid sentence keeps a valid completion
    tokens = constrained.states[index]
    length = int(language_model.lengths(tokens[None])[0])
    outcomes = list(tokens[:length]) + [masked_model.end_token_id]
    prefixes = [np.where(np.arange(language_model.length) < t, tokens, PAD) for t in range(length + 1)]
    log_masked_law[index] = sum(
        decoding.next_token_row(masked_model, prefix)[outcome] for prefix, outcome in zip(prefixes, outcomes)
    )
masked_law = np.exp(log_masked_law)
print(f"masked decoding: total probability {masked_law.sum():.12f}, every sentence it draws satisfies χ")
print(f"TV(masked decoding, p(x | c)) = {tv_distance(masked_law, exact):.3f}")
first_token_exact = constrained.marginal(0)
first_token_masked = np.exp(decoding.next_token_row(masked_model, np.full(language_model.length, PAD)))[: len(WORDS)]
print("first word:  " + "  ".join(f"{word:>6}" for word in WORDS))
print("p(x1 | c):   " + "  ".join(f"{value:6.3f}" for value in first_token_exact))
print("masked:      " + "  ".join(f"{value:6.3f}" for value in first_token_masked))
ratio = np.where(exact > 0, masked_law / np.where(exact > 0, exact, 1.0), 0.0)
for label, index in (("most over-weighted", np.argmax(ratio)), ("most probable", np.argmax(exact))):
    print(
        f"{label:>18}: {sentence(constrained.states[index])!r}: p(x | c) = {exact[index]:.2e}, "
        f"masked decoding {masked_law[index]:.2e}"
    )

# %% [markdown]
# The first word is drawn from $p(x_1)$ unchanged, because four free slots leave every first word
# possible; the target wants $p(x_1 \mid c)$, which concentrates on *the* and *king*, the words that
# start the likely sentences with both keywords (the table above). A draw with the package's decoder
# confirms that the exact $q$ is what the sampler produces: the frequency of the target's favourite
# sentence sits at $q$, not at $p(x \mid c)$ (± two standard errors).

# %%
decoded, ended = decoding.sample(rng, masked_model, NUM_DECODED, max_new_tokens=language_model.length + 1)
decoded_index = constrained.state_index(decoded[:, : language_model.length])
favourite = int(np.argmax(exact))
frequency = np.mean(decoded_index == favourite)
print(
    f"{NUM_DECODED} masked draws, all ended: {bool(ended.all())}; "
    f"frequency of {sentence(constrained.states[favourite])!r} "
    f"{frequency:.3f} ± {2 * np.sqrt(masked_law[favourite] * (1 - masked_law[favourite]) / NUM_DECODED):.3f}; "
    f"q = {masked_law[favourite]:.3f}, p(x | c) = {exact[favourite]:.3f}"
)

# %% [markdown]
# Samplers that score whole sentences do not have this problem: rejection (chapter 2) filters whole
# sentences, and MCMC (chapters 3–8) edits them while scoring the whole of $\rho$.
#
# ## The exponent $\gamma$ and the length of sentences
#
# A language model's probability falls with every extra token, so on its own it prefers short
# sentences. Su suggests $p(x)^{\gamma}$ with $\gamma$ slightly below 1 (part 4; bojone's code uses
# $\gamma = 0.8$, the CGMH code has no $\gamma$), which flattens $p$ and weakens that length penalty.
# Whether it lengthens the sentences depends on where the mass lies, so here is the exact mean length
# as a function of $\gamma$, for $p^{\gamma}$ alone and for the keyword target $p^{\gamma} \cdot \chi$.

# %%
gammas = np.geomspace(0.25, 4.0, 17)
length_targets = {"p^γ": [], "p^γ · χ": KEYWORDS}


def mean_length(keywords, gamma):
    """Exact mean sentence length under p^γ · χ (χ ≡ 1 without keywords)."""
    return KeywordTarget(language_model, keywords=keywords, gamma=gamma).expectation(language_model.lengths)


fig, ax = plt.subplots(figsize=(7, 3.8))
for label, keywords in length_targets.items():
    curve = [mean_length(keywords, gamma) for gamma in gammas]
    ax.plot(gammas, curve, marker="o", label=label)
    at_08, at_1 = mean_length(keywords, 0.8), mean_length(keywords, 1.0)
    print(
        f"{label:>8}: mean length {at_08:.3f} at γ = 0.8, {at_1:.3f} at γ = 1: "
        f"γ = 0.8 makes the sentences {'longer' if at_08 > at_1 else 'shorter'}; "
        f"shortest at γ = {gammas[int(np.argmin(curve))]:.2f} on this grid"
    )
for gamma in (0.8, 1.0):
    law = KeywordTarget(language_model, keywords=KEYWORDS, gamma=gamma)
    lengths = language_model.lengths(law.states)
    length_law = [law.probabilities()[lengths == n].sum() for n in range(1, language_model.length + 1)]
    print(f"p^γ · χ at γ = {gamma}: P(n) = " + ", ".join(f"{n}: {p:.3f}" for n, p in enumerate(length_law, start=1)))
with_keywords = targets["p(x) · χ"]
valid = with_keywords.satisfies_keywords(with_keywords.states)
uniform_mean = language_model.lengths(with_keywords.states[valid]).mean()
print(f"γ → 0 limit with keywords (uniform over valid sentences): mean length {uniform_mean:.3f}")
ax.set_xscale("log", base=2)
ax.set_xlabel("γ")
ax.set_ylabel("exact mean sentence length")
ax.axvline(1.0, color="grey", lw=0.8)
ax.legend()
fig.tight_layout()

# %% [markdown]
# Without the keywords, $\gamma = 0.8$ lengthens the sentences, as the argument says. With them it
# **shortens** them on this toy: the constraint has already removed the short sentences (none has one
# token, few have two), the language model's favourite valid sentences are the long grammatical frames,
# and flattening $p$ moves mass from them to three-token sentences. The curve is not even monotone:
# as $\gamma \to 0$, $p^{\gamma}\chi$ becomes uniform over the valid sentences, most of which have four
# tokens. "$\gamma < 1$ favours longer sentences" is a heuristic about $p$ alone, not a property of the
# target; compute it before relying on it.
#
# ## A soft factor and a length constraint: summarisation
#
# Part 1's second example is summarisation: $c$ is a text, $x$ its summary, and
#
# $$
# \rho(x, c) = p(x) \cdot \mathrm{sim}(x, c) \cdot \chi(x), \qquad \chi(x) = 1 \text{ iff } x \text{ is short enough},
# $$
#
# fluency times similarity to the text, with a hard constraint on the *length* of $x$. Our text is
# "the king wears a crown" — five tokens, longer than any sentence of our space. As similarity we take
# how many of its content words (*king*, *wears*, *crown*) the summary covers,
# $\log\mathrm{sim}(x, c) = w \cdot (\text{fraction covered})$, and the length budget is three tokens.
# A `BigramLM` with `max_length=3` is exactly $p \cdot \chi$: its `log_prob` is $-\infty$ outside the
# length window. The exact check: the summary law must be the four-token law of $p \cdot \mathrm{sim}$
# conditioned on $n \le 3$, computed from a different enumeration. The budget bites: $p \cdot
# \mathrm{sim}$ gives sentences of at most three tokens only the printed $P(n \le 3)$.

# %%
CONTENT_WORDS = [KING, WEARS, CROWN]


def coverage(states, weight=4.0):
    """log sim(x, c): weight times the fraction of the text's content words that occur in x."""
    states = np.asarray(states)
    return weight * np.mean([np.any(states == word, axis=1) for word in CONTENT_WORDS], axis=0)


budget = 3
short_model = BigramLM(initial_logits, transition_logits, max_length=budget)  # p · χ, χ = [n <= 3]
summary_target = KeywordTarget(short_model, keywords=[], log_similarity=coverage)
unconstrained = KeywordTarget(language_model, keywords=[], log_similarity=coverage)  # p · sim, n <= 4

within_budget = language_model.lengths(unconstrained.states) <= budget
padded = np.concatenate([summary_target.states, np.full((summary_target.num_states, 1), PAD)], axis=1)
probability_within_budget = unconstrained.probabilities()[within_budget].sum()
conditioned = unconstrained.probabilities()[unconstrained.state_index(padded)] / probability_within_budget
print(f"max |π_summary - π(· | n <= {budget})| = {np.max(np.abs(summary_target.probabilities() - conditioned)):.1e}")
print(f"P(n <= {budget}) under p · sim: {probability_within_budget:.3f}")
for name, target in (("p · sim (n <= 4)", unconstrained), (f"p · sim · χ (n <= {budget})", summary_target)):
    probabilities = target.probabilities()
    top = np.argsort(probabilities)[::-1][:3]
    print(f"{name:>22}: " + ", ".join(f"{sentence(target.states[i])!r} {probabilities[i]:.3f}" for i in top))

# %% [markdown]
# Without the budget the best "summary" is the four-token sentence; with it, the target trades fluency
# against coverage among sentences of at most three tokens: the fluent but incomplete *a crown* competes
# with the complete *king wears crown*. The weight $w$ sets the exchange rate (Try this, 4).
#
# ## Exact sampling — the thing we cannot do for real text
#
# Because the whole space is listed, `sample_exact` draws sentences by inverse CDF over the
# enumeration: one uniform per sentence. Their frequencies match the exact probabilities of part 1's
# keyword target up to Monte Carlo noise of order $\sqrt{\pi(1-\pi)/N}$ (error bars: two standard
# errors).

# %%
target = targets["p(x) · χ"]
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
#    length under $\gamma = 0.5$? Does $\gamma = 0.8$ still shorten the sentences with keywords?
# 4. In the summarisation example, try `coverage` weights 2 and 6. When does *king wears crown* become
#    the best summary?
# 5. Give the masked decoder a lookahead: weight each continuation by the exact probability that its
#    prefix can still be completed (sum `constrained.probabilities()` over the sentences that extend it).
#    Is its law now $p(x \mid c)$? What did that cost?
# 6. Change `SEED` and re-run: the samples change, the exact probabilities do not.
