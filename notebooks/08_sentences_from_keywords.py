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
# # 8. Sentences from keywords
#
# Back to the problem of chapter 1: sentences that contain given keywords. Part 1 of the series writes
# it as $\rho(x) = p(x)\,\chi(x, c)$, with $p$ a language model and $\chi(x, c) = 1$ when every keyword
# of $c$ occurs in $x$ (in any order), else 0. The package's CGMH target has two optional additions,
#
# $$
# \rho(x) = p(x)^{\gamma}\, \mathrm{sim}(x, c)\, \chi(x, c),
# $$
#
# which are *not* part 1's keyword problem: the exponent $\gamma$ is Su's suggestion in part 4
# ($\gamma$ slightly below 1; bojone's code uses 0.8, the CGMH code has no $\gamma$), and a soft
# similarity $\mathrm{sim}$ is what CGMH uses for paraphrase (part 1 uses it for summarisation, with a
# length constraint). With $\gamma = 1$ and no $\mathrm{sim}$ — as in this chapter — the target is
# part 1's $p \cdot \chi$.
#
# CGMH {cite:p}`miao2019cgmh,su2021part4` samples $\rho\chi/Z$ with Metropolis–Hastings over sentences
# of *varying length*. The state is the sentence $x$ alone. A keyword piece is **locked** when it is
# the only remaining occurrence of its keyword (deleting or replacing it would make $\chi = 0$); every
# other token is free, so the keywords may move and change order. Each step picks one of three moves
# with fixed probabilities $(p_r, p_i, p_d)$:
#
# * **replace** a token, its position uniform among the $m(x)$ unlocked tokens;
# * **insert** a token into one of the $s(x)$ slots of the sentence (all $n + 1$ slots of an $n$-token
#   sentence, except those inside a locked keyword of several word pieces, which is never split);
# * **delete** a token, uniform among the $m(x)$ unlocked tokens.
#
# The new token is drawn from a candidate set $C$ — the causal LM's top-$K$ next tokens after the
# prefix $x_{<i}$ — with probability proportional to the target of the sentence it makes,
# $q_C(v) = \rho(x^{(v)}) / \sum_{w \in C} \rho(x^{(w)})$. This forward-only candidate set is the
# simplification Su allows; CGMH's own code pre-selects the candidates with a forward *and* a backward
# language model. Insert and delete are each other's reverse; replace is its own. The MH ratio must
# include *all* of the proposal probability, each count taken on the sentence it belongs to:
#
# $$
# \text{insert at slot } j\text{: } q(y \mid x) = p_i \cdot \tfrac{1}{s(x)} \cdot q_C(y_j), \qquad
# q(x \mid y) = p_d \cdot \tfrac{1}{m(y)},
# $$
#
# and the reverse for a delete. The slot count $s(x)$ and the unlocked count $m(y)$ of the longer
# sentence differ as soon as a keyword is locked, so they do **not** cancel; and the candidate set must
# not depend on the token being replaced, or the forward and reverse sets differ. Published code got
# both wrong; and Su's rule "never pick a keyword position" — this package's own rule before — protects
# keyword *positions* rather than keyword occurrences. The `cgmh` module has switches that reproduce
# each of the three mistakes, and this chapter shows what they do.

# %%
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.special import logsumexp

from textsampling import diagnostics, markov
from textsampling.lm.oracle import BigramOracle
from textsampling.reference import cgmh, sentence_annealing
from textsampling.targets import PAD, BigramLM
from textsampling.torch import cgmh as cgmh_twin
from textsampling.torch.randomness import CounterGenerator

SEED = 8194
SMALL = bool(os.environ.get("CI"))
NUM_STEPS = 4 if SMALL else 100  # CGMH steps with the real model (each scores K sentences)
NUM_CHAINS = 8 if SMALL else 16  # simulated chains on the toy
NUM_CHAIN_STEPS = 400 if SMALL else 6_000
rng = np.random.default_rng(SEED)

# %% [markdown]
# ## One step, move by move
#
# First on the exact bigram oracle: three tokens `a`, `b`, `c`, sentences of at most four tokens, the
# keyword `b`, and candidate sets of $K = 2$ tokens (so a replaced token may fall outside the set its
# reverse move would draw from). In the sentence `a b c` the `b` is the only `b`, so it is locked
# (`state.protected`): no replace or delete may choose it. `move_outcomes` lists every outcome of
# each move at one position, with the probability of drawing it and its acceptance probability — the
# same function `step` samples from and `transition_matrix` sums over.

# %%
bigram = BigramLM.random(np.random.default_rng(SEED), vocab_size=3, max_length=4, concentration=1.0)
oracle = BigramOracle(bigram)
TOKENS = "abc"
KEYWORD = 1  # "b"


def text(x) -> str:
    return " ".join(TOKENS[t] for t in x if t >= 0) or "(empty)"


config = cgmh.make_config(oracle, [KEYWORD], num_candidates=2, max_length=4, gamma=1.0)
state = cgmh.init(np.array([0, KEYWORD, 2, PAD]), config)
print(f"current: {text(state.x)!r}  (log ρ = {state.log_prob:.3f}), locked positions: {np.flatnonzero(state.protected).tolist()}")
for move in cgmh.MOVES:
    outcomes = cgmh.move_outcomes(state, move, 0.9, config)  # position uniform 0.9: the last position/slot
    print(f"\n{move} at position {outcomes.position}:")
    for sentence, log_token, log_alpha in zip(outcomes.states, outcomes.log_token_probs, outcomes.log_accept_probs):
        print(f"   -> {text(sentence)!r:14} drawn with prob {np.exp(log_token):.3f}, accepted with prob {np.exp(log_alpha):.3f}")

# %% [markdown]
# ## The exact check: the stationary law over sentences is $\rho\chi/Z$
#
# Enumerate every sentence of length 1–4 that contains the keyword and build the exact kernel, from
# the same `move_outcomes`. With **full candidate sets** ($K = 3$, every token) the kernel is
# irreducible, so it has exactly one stationary law, and we compare it with $\rho\chi/Z$. With $K = 2$
# some sentences cannot reach each other: the kernel still satisfies detailed balance with respect to
# $\rho\chi/Z$ (so $\rho\chi/Z$ is *a* stationary law), but it is not the only one.

# %%
full = config._replace(num_candidates=3)
sentences = cgmh.enumerate_sentences(full)
log_rho = cgmh.log_target(full, sentences)
target = np.exp(log_rho - logsumexp(log_rho))  # ρχ/Z
lengths = np.sum(sentences != PAD, axis=1)
index_of = {x.tobytes(): s for s, x in enumerate(sentences)}
print(f"{sentences.shape[0]} sentences of 1-4 tokens contain the keyword")

kernel_full = cgmh.transition_matrix(full, sentences)
stationary_full = markov.stationary_distribution(kernel_full)
print(
    f"K = 3: irreducible {markov.is_irreducible(kernel_full)}, "
    f"detailed balance residual {markov.detailed_balance_residual(kernel_full, target):.1e}, "
    f"TV(stationary law, ρχ/Z) = {markov.tv_distance(stationary_full, target):.1e}"
)
kernel_top2 = cgmh.transition_matrix(config, sentences)
print(
    f"K = 2: irreducible {markov.is_irreducible(kernel_top2)}, "
    f"detailed balance residual {markov.detailed_balance_residual(kernel_top2, target):.1e}, "
    f"stationarity residual max |πP - π| {markov.stationarity_residual(kernel_top2, target):.1e}"
)

# %% [markdown]
# ## Three published mistakes
#
# * **Position ratio omitted** (`position_ratio=False`): the $1/s(x)$ and $1/m(y)$ factors left out of
#   the insert/delete ratio.
# * **Biased candidate set** (`candidate_set="biased"`): a replace adds the current token to its
#   candidate set. With $K = 3$ every token is already a candidate, so this mistake only shows with
#   $K = 2$, where that chain is not irreducible; we start it *exactly* at $\rho\chi/Z$ and apply the
#   kernel 50 times — a correct kernel leaves the law where it is, a flawed one moves it.
# * **Keyword positions protected** (`keyword_rule="position"`, the package's own earlier rule and Su's
#   "never pick keyword positions"): the state is then a (sentence, placement) pair. That chain is exact
#   on *pairs*, $\pi(x, P) \propto \rho(x)$, so its law over sentences — summed over the $N(x)$
#   placements of the keyword in $x$ — is $\propto N(x)\rho(x)$. We compute it from the pair chain's
#   own stationary law.

# %%
NUM_KERNEL_STEPS = 50
BIASED = f"candidate set biased (K = 2, {NUM_KERNEL_STEPS} steps from π)"
laws = {"correct": stationary_full}
no_ratio = full._replace(position_ratio=False)
kernel_no_ratio = cgmh.transition_matrix(no_ratio, sentences)
laws["position ratio omitted"] = markov.stationary_distribution(kernel_no_ratio)
print(
    f"position ratio omitted (K = 3): detailed balance residual "
    f"{markov.detailed_balance_residual(kernel_no_ratio, target):.1e}, "
    f"TV(stationary law, ρχ/Z) = {markov.tv_distance(laws['position ratio omitted'], target):.3f}"
)

biased_full = cgmh.transition_matrix(full._replace(candidate_set="biased"), sentences)
difference = np.abs(biased_full - kernel_full).max()
print(f"candidate set biased, K = 3: max |P_biased - P_correct| = {difference:.1e} ({'no effect' if difference == 0 else 'it differs'})")
kernel_biased = cgmh.transition_matrix(config._replace(candidate_set="biased"), sentences)
laws[BIASED] = target @ np.linalg.matrix_power(kernel_biased, NUM_KERNEL_STEPS)
print(
    f"{BIASED}: detailed balance residual {markov.detailed_balance_residual(kernel_biased, target):.1e}, "
    f"TV(π P^{NUM_KERNEL_STEPS}, π) = {markov.tv_distance(laws[BIASED], target):.3f} "
    f"(correct K = 2 kernel: {markov.tv_distance(target @ np.linalg.matrix_power(kernel_top2, NUM_KERNEL_STEPS), target):.1e})"
)

position_rule = full._replace(keyword_rule="position")
pairs, placements = cgmh.enumerate_placements(position_rule)
kernel_pairs = cgmh.transition_matrix(position_rule, pairs, placements)
stationary_pairs = markov.stationary_distribution(kernel_pairs)
position_law = np.zeros(sentences.shape[0])
np.add.at(position_law, [index_of[x.tobytes()] for x in pairs], stationary_pairs)  # sum over placements
laws["keyword positions protected"] = position_law
num_placements = np.bincount([index_of[x.tobytes()] for x in pairs], minlength=sentences.shape[0])
n_rho = num_placements * target / (num_placements * target).sum()
print(
    f"keyword positions protected (K = 3): {pairs.shape[0]} (sentence, placement) pairs, irreducible "
    f"{markov.is_irreducible(kernel_pairs)}; its sentence law is N(x)ρ(x)/Z' to {np.abs(position_law - n_rho).max():.1e}; "
    f"TV(sentence law, ρχ/Z) = {markov.tv_distance(position_law, target):.3f}"
)

# %% [markdown]
# With more than one keyword the position rule also freezes their **order**: a placement lists the
# keywords in the order given, so with keywords `b`, `c` a sentence such as `c a b` has no placement
# and is never visited, while the correct kernel moves `b c` to `c b` (both keywords kept).

# %%
two = cgmh.make_config(oracle, [1, 2], num_candidates=3, max_length=4, gamma=1.0)
two_sentences = cgmh.enumerate_sentences(two)
two_target = np.exp(cgmh.log_target(two, two_sentences) - logsumexp(cgmh.log_target(two, two_sentences)))
two_pairs, _ = cgmh.enumerate_placements(two._replace(keyword_rule="position"))
placed = {x.tobytes() for x in two_pairs}
never_visited = np.array([x.tobytes() not in placed for x in two_sentences])
print(
    f"keywords b, c: {never_visited.sum()} of {two_sentences.shape[0]} sentences (e.g. {text(two_sentences[never_visited][0])!r}) "
    f"have no placement in the order b, c: the position rule never visits them, "
    f"though they hold {two_target[never_visited].sum():.3f} of ρχ/Z"
)
two_index = {x.tobytes(): s for s, x in enumerate(two_sentences)}
reach = np.linalg.matrix_power(cgmh.transition_matrix(two, two_sentences), 4)
b_c, c_b = (two_index[np.array(s + [PAD] * (4 - len(s))).tobytes()] for s in ([1, 2], [2, 1]))
print(f"correct kernel: P('b c' -> 'c b' in 4 steps) = {reach[b_c, c_b]:.4f}")

# %%
names = list(laws)
colors = {"ρχ/Z (exact)": "black", "correct": "tab:blue", "position ratio omitted": "tab:orange",
          BIASED: "tab:green", "keyword positions protected": "tab:red"}
fig = plt.figure(figsize=(12, 9.5))
grid = fig.add_gridspec(2, 2, width_ratios=[1.25, 1])
ax_length = fig.add_subplot(grid[0, 0])
width = 0.16
for k, (name, law) in enumerate([("ρχ/Z (exact)", target)] + list(laws.items())):
    by_length = [law[lengths == n].sum() for n in range(1, 5)]
    ax_length.bar(np.arange(1, 5) + width * (k - 2), by_length, width=width, color=colors[name], label=name)
ax_length.set_xticks(range(1, 5))
ax_length.set_xlabel("sentence length")
ax_length.set_ylabel("probability of the length")
ax_length.set_title("Law of the sentence length")
ax_length.legend(loc="upper right")  # lengths 3-4 hold little mass: the legend sits above them

ax_tv = fig.add_subplot(grid[0, 1])
tvs = [markov.tv_distance(laws[name], target) for name in names]
ax_tv.barh(np.arange(len(names)), np.maximum(tvs, 1e-17), left=1e-17, color=[colors[name] for name in names])
ax_tv.set_yticks(np.arange(len(names)), [name.replace(" (", "\n(").replace("protected", "\nprotected") for name in names])
ax_tv.invert_yaxis()
ax_tv.set_xscale("log")
ax_tv.set_xlim(1e-17, 10)
for k, tv in enumerate(tvs):
    ax_tv.text(max(tv, 1e-17) * 1.5, k, f"{tv:.1e}", va="center")
ax_tv.set_xlabel("TV(law, ρχ/Z)")
ax_tv.set_title("Distance to the target")

ax_sentences = fig.add_subplot(grid[1, :])
order = np.argsort(target)[::-1]
floor = 1e-2
ax_sentences.axhline(1.0, color="black", lw=1.5, label="ρχ/Z (ratio 1)")
for k, name in enumerate(names):
    ratio = laws[name][order] / target[order]
    ax_sentences.plot(np.arange(order.size) + 0.15 * (k - 1.5), np.maximum(ratio, floor), "o", ms=4, color=colors[name], label=name)
ax_sentences.set_yscale("log")
ax_sentences.set_ylim(floor / 1.5, 10)
ax_sentences.set_xlabel(f"the {order.size} sentences, most probable under ρχ/Z first")
ax_sentences.set_ylabel("law / (ρχ/Z)")
ax_sentences.set_title(f"Sentence by sentence: each law divided by the target (ratios below {floor} drawn at {floor})")
ax_sentences.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
fig.tight_layout()

# %% [markdown]
# The correct kernel's stationary law is $\rho\chi/Z$ to rounding error, and with $K = 2$ it is still
# reversible. The three mistakes move the law, each its own way. Omitting the position-choice
# probabilities favours **shorter** sentences: an insert into an $n$-token sentence chooses among
# $s(x) = n + 1$ slots, and when the longer sentence $y$ still holds a single `b` its reverse delete
# chooses among only $m(y) = n$ unlocked tokens, so the forgotten factor $s(x)/m(y) > 1$ would have
# *raised* the insert's acceptance. The printout below says by how much. The biased candidate set keeps the current token available and over-weights
# staying put in a way the reverse move never pays for. Protecting keyword positions weighs each
# sentence by its number of placements $N(x)$, so sentences with several `b`s — which are longer —
# gain mass; and with two keywords their order never changes.

# %%
all_laws = {"ρχ/Z (exact)": target, **laws}
mean_length = {name: float((law * lengths).sum()) for name, law in all_laws.items()}
for name, law in all_laws.items():
    print(f"{name:>46}: mean length {mean_length[name]:.3f}, P(length 1) = {law[lengths == 1].sum():.3f}")
omitted = mean_length["position ratio omitted"] - mean_length["ρχ/Z (exact)"]
print(f"position ratio omitted: the mean length changes by {omitted:+.3f} tokens ({100 * omitted / mean_length['ρχ/Z (exact)']:+.1f}%)")

# %% [markdown]
# ## What $\gamma$ does on this toy
#
# Part 4's reason for $\gamma < 1$ is that a language model favours short sentences. That is a
# statement about $p$ alone; with keywords, chapter 1 computed that $\gamma = 0.8$ made its toy's
# sentences *shorter*. On this chapter's toy the exact mean length of $p^\gamma\chi/Z$ is:

# %%
for gamma in (0.6, 0.8, 1.0):
    log_tilted = cgmh.log_target(full._replace(gamma=gamma), sentences)  # γ log p + log χ
    tilted = np.exp(log_tilted - logsumexp(log_tilted))
    print(f"γ = {gamma}: exact mean length {(tilted * lengths).sum():.3f}")

# %% [markdown]
# Here $\gamma < 1$ lengthens the sentences; in chapter 1 it shortened them. Neither toy says what it
# does on a real model, so the real-model section below keeps part 1's target, $\gamma = 1$, and
# leaves $\gamma$ as an exercise to measure.
#
# ## Chains against the exact law
#
# The exact kernel is one check; a simulated chain is another, and the one a user actually runs. Here
# `NUM_CHAINS` chains of the torch twin (`textsampling.torch.cgmh`, all chains in one batch, per-chain
# counter uniforms) run with full candidate sets from different starting sentences drawn uniformly
# among the valid ones. After discarding the first tenth, the histogram of all their states is
# compared with $\rho\chi/Z$, next to the TV distance of as many independent exact draws (the Monte
# Carlo noise floor). The same chains with the position ratio omitted show the length shift in
# simulation.

# %%
generator = CounterGenerator(SEED, torch.arange(NUM_CHAINS))
starts = torch.as_tensor(sentences[rng.choice(sentences.shape[0], size=NUM_CHAINS)])
burn_in = NUM_CHAIN_STEPS // 10
chain_runs = {}
for name, variant in [("correct", full), ("position ratio omitted", no_ratio)]:
    chain_trace = cgmh_twin.sample(generator, starts, variant, NUM_CHAIN_STEPS)
    sentences_visited = chain_trace.states.x.numpy()  # (NUM_CHAINS, NUM_CHAIN_STEPS, L)
    # Sentence index of each chain at each step.
    visited = np.array([[index_of[x.tobytes()] for x in row] for row in sentences_visited])
    chain_runs[name] = (visited, chain_trace.states.log_prob.numpy(), chain_trace.infos.accepted.numpy())

visited, log_probs, accepted = chain_runs["correct"]
kept = visited[:, burn_in:]
frequencies = np.bincount(kept.ravel(), minlength=sentences.shape[0]) / kept.size
ess = diagnostics.effective_sample_size(log_probs[:, burn_in:])
exact_draws = rng.choice(sentences.shape[0], size=kept.size, p=target)
print(f"{NUM_CHAINS} chains x {NUM_CHAIN_STEPS} steps, acceptance rate {diagnostics.acceptance_rate(accepted):.3f}")
print(
    f"TV(histogram of {kept.size} chain states, ρχ/Z) = {diagnostics.empirical_tv_distance(kept.ravel(), target):.4f}; "
    f"of {kept.size} exact draws: {diagnostics.empirical_tv_distance(exact_draws, target):.4f}; "
    f"of {ess:.0f} exact draws (the bulk ESS of log ρ): {diagnostics.empirical_tv_distance(exact_draws[: int(ess)], target):.4f}"
)
chain_lengths = lengths[kept]
rhats = {"log ρ": diagnostics.split_rhat(log_probs[:, burn_in:]), "length": diagnostics.split_rhat(chain_lengths)}
print(
    "split R-hat (rank): " + ", ".join(f"{name} {value:.3f}" for name, value in rhats.items())
    + (" — below the 1.01 alarm threshold" if max(rhats.values()) < 1.01 else " — above the 1.01 alarm threshold: run longer")
    + f"; bulk ESS of log ρ {ess:.0f} of {kept.size} states"
)
for name, (run_visited, _, _) in chain_runs.items():
    print(
        f"{name:>24}: mean length over the chains {lengths[run_visited[:, burn_in:]].mean():.3f} "
        f"(exact law of its kernel {mean_length[name]:.3f}, ρχ/Z {mean_length['ρχ/Z (exact)']:.3f})"
    )

# %%
fig, axes = plt.subplots(2, 1, figsize=(12, 8.5))
top = order[:25]
axes[0].bar(np.arange(top.size) - 0.2, target[top], width=0.4, color="black", label="ρχ/Z (exact)")
axes[0].bar(np.arange(top.size) + 0.2, frequencies[top], width=0.4, color="tab:blue", label=f"{NUM_CHAINS} CGMH chains")
axes[0].set_xticks(np.arange(top.size), [text(sentences[s]) for s in top], rotation=60, ha="right")
axes[0].set_ylabel("probability")
axes[0].set_title(f"The {top.size} most probable of the {sentences.shape[0]} sentences")
axes[0].legend(loc="upper right")
shown = min(NUM_CHAIN_STEPS, 200)
for c in range(min(NUM_CHAINS, 4)):
    axes[1].plot(np.arange(1, shown + 1), log_probs[c, :shown], lw=0.8, label=f"chain {c}")
if burn_in <= shown:
    axes[1].axvline(burn_in, color="grey", ls=":", label="end of burn-in (discarded before)")
axes[1].set_xlabel("step")
axes[1].set_ylabel("log ρ of the current sentence")
axes[1].set_title(f"Trace of log ρ, first {shown} steps of 4 chains")
axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
fig.tight_layout()

# %% [markdown]
# The chains' histogram error is larger than that of as many exact draws — correlated states carry
# less information — and of the order of that of as many exact draws as the effective sample size (of
# $\log\rho$: only a rough guide for a histogram of 90 cells), the traces, started far apart,
# overlap after a few steps, and the split $\hat R$ over the chains (printed with its verdict; under
# the CI sizes the chains are short and $\hat R$ may sit just above 1.01) says whether they agree. The
# chains with the position ratio omitted settle near their own kernel's shorter mean length, not near
# that of $\rho\chi/Z$.
#
# ## Keywords to sentences on the built-in model
#
# Now the real thing: the built-in causal LM (`tiny-shakespeare`), the keywords *king* and *crown*,
# part 1's target ($\gamma = 1$), $K = 10$ candidates, sentences of at most 10 tokens. A keyword is a
# *unit* of word pieces (`keyword_units`; a keyword the tokenizer splits is never split by an insert),
# and it counts only as a whole word: the pieces that continue a word (`continuation_token_ids`) are
# passed as `continuation_tokens`, so *king* followed by *dom* is not *king*. The chain starts from
# the keywords alone, and each printed sentence is checked as decoded text.

# %%
from tqdm import TqdmWarning  # noqa: E402

# transformers imports tqdm.auto, which warns in a kernel without ipywidgets; no progress bar is shown here.
warnings.filterwarnings("ignore", category=TqdmWarning)
from transformers.utils import logging as transformers_logging  # noqa: E402

from textsampling.lm import load_causal_lm  # noqa: E402
from textsampling.lm.keywords import continuation_token_ids, keyword_units, missing_keywords  # noqa: E402

transformers_logging.disable_progress_bar()
WORDS = ["king", "crown"]
model = load_causal_lm("tiny-shakespeare")
lm_config = cgmh.make_config(
    model, keyword_units(model, WORDS), num_candidates=10, max_length=10, gamma=1.0,
    continuation_tokens=continuation_token_ids(model),
)
start = cgmh.keyword_state(lm_config)
trace = cgmh.sample(rng, start.x, lm_config, NUM_STEPS)
decoded = model.decode(trace.states.x)
print(f"start: {model.decode(start.x[None])[0]!r} (log ρ = {start.log_prob:.2f}), acceptance rate {trace.infos.accepted.mean():.2f}")
print(f"sentences missing a keyword as text: {sum(bool(missing_keywords(s, WORDS)) for s in decoded)} of {NUM_STEPS}")
print(f"mean length (tokens) over the chain: {np.sum(trace.states.x != PAD, axis=1).mean():.2f}")
for t in np.linspace(0, NUM_STEPS - 1, min(NUM_STEPS, 8)).astype(int):
    print(f"  step {t + 1:4d} [{trace.infos.move[t]:>7}]  log ρ = {trace.states.log_prob[t]:8.2f}   {decoded[t]}")

# %% [markdown]
# ## Annealing for the best sentence
#
# Sampling gives typical sentences; lowering the temperature (chapter 6) turns the same moves into a
# search for the most probable sentence with the keywords. `sentence_annealing.sample` runs CGMH on
# $\rho^{1/T}$ with a geometric schedule, and `sentence_annealing.best` picks the best state seen **from
# the run's own start** — so it must start where the search should start. First the exact check on the toy: the argmax of
# $\rho\chi$ is known from the enumeration, and annealing starts from the least probable sentence.

# %%
toy_temperatures = sentence_annealing.geometric_schedule(2.0, 0.02, 40 if SMALL else 400)
worst = cgmh.init(sentences[np.argmin(log_rho)], full)
toy_trace = sentence_annealing.sample(rng, worst.x, full, toy_temperatures.size, temperatures=toy_temperatures)
toy_best = sentence_annealing.best(toy_trace, worst)
argmax = int(np.argmax(log_rho))
print(
    f"exact argmax {text(sentences[argmax])!r} (log ρ = {log_rho[argmax]:.3f}); annealing from {text(worst.x)!r} "
    f"(log ρ = {worst.log_prob:.3f}) in {toy_temperatures.size} steps found {text(toy_best.x)!r} "
    f"(log ρ = {toy_best.log_prob:.3f})"
)

# %% [markdown]
# On the real model nothing is enumerable, so the honest yardstick is the sampling chain itself: the
# best sentence it *visited*. Two annealing runs of `NUM_STEPS` steps each, $T$ from 1 to 0.05: one
# from the chain's last state (what this chapter used to do, and whose "best" can be worse than a
# sentence the chain had already seen), and one from the chain's best sentence (which can only
# improve on it).

# %%
temperatures = sentence_annealing.geometric_schedule(1.0, 0.05, NUM_STEPS)
best_step = int(np.argmax(trace.states.log_prob))
chain_best = cgmh.init(trace.states.x[best_step], lm_config)
anneal_starts = {"from the chain's last state": trace.final_state, "from the chain's best state": chain_best}
runs = {
    name: sentence_annealing.sample(rng, begin.x, lm_config, NUM_STEPS, temperatures=temperatures)
    for name, begin in anneal_starts.items()
}
print(f"sampling chain: best log ρ visited {chain_best.log_prob:.2f} at step {best_step + 1}: {model.decode(chain_best.x[None])[0]!r}")
for name, result in runs.items():
    best_state = sentence_annealing.best(result, anneal_starts[name])
    gain = best_state.log_prob - chain_best.log_prob
    verdict = (
        f"better than the chain's best by {gain:.2f}" if gain > 0
        else "equal to the chain's best: the search found nothing better" if gain == 0
        else f"WORSE than the chain's best by {-gain:.2f}"
    )
    distinct = len({x.tobytes() for x in result.states.x})
    print(
        f"annealing {name}: start log ρ {anneal_starts[name].log_prob:.2f}, best {best_state.log_prob:.2f}, "
        f"{verdict}: {model.decode(best_state.x[None])[0]!r}\n"
        f"    ({result.infos.accepted.sum()} of {NUM_STEPS} moves accepted, {distinct} distinct sentences visited, "
        f"final log ρ {result.states.log_prob[-1]:.2f})"
    )

fig, ax = plt.subplots(figsize=(11, 5))
ax.plot(np.arange(1, NUM_STEPS + 1), trace.states.log_prob, color="tab:blue", label="CGMH at T = 1")
for (name, result), color in zip(runs.items(), ["tab:orange", "tab:green"]):
    ax.plot(np.arange(NUM_STEPS + 1, 2 * NUM_STEPS + 1), result.states.log_prob, color=color, label=f"annealing {name}, T: 1 → 0.05")
ax.axhline(chain_best.log_prob, color="grey", ls=":", label="best log ρ the chain visited")
ax.set_xlabel("step")
ax.set_ylabel("log ρ of the current sentence")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
fig.tight_layout()

# %% [markdown]
# Read the verdicts above, not the word "best": a search reports the best of *what it visited*, and a
# run started from the chain's last state may never come back to the good sentences the chain passed
# through — its "best" can then be worse than a sentence the sampler had already printed. Started from
# the chain's best, annealing can only match or improve it; when it only matches, the search found
# nothing, and the printout says so. Count what the search did, too: an accepted move is not a new
# sentence (replacing a token by itself is accepted), and with `NUM_STEPS` steps of $K = 10$
# candidates each a run visits only the handful of distinct sentences printed above — a local search
# around its start, not a survey of the sentences with the keywords. The maximum of $\rho$ need not be a good sentence
# either: every extra token costs probability under $p$, so for a small model the argmax is often
# little more than the keywords themselves. A search is only as good as what we wrote down
# (chapter 1): a smaller $\gamma$, a relevance term, or a minimum length change the answer — the
# sampler does not.
#
# ## Try this
#
# 1. In the exact check, set `move_probabilities=(0.8, 0.1, 0.1)` in `make_config`. Is the correct
#    sampler still exact? Does it mix faster or slower (look at `markov.mixing_curve`)?
# 2. Make `b` a required keyword twice (`[KEYWORD, KEYWORD]`). Which tokens are locked in `b a b`, and
#    in `b b b`? Is the stationary law still $\rho\chi/Z$?
# 3. On the real model, run several chains at $\gamma = 1$ and $\gamma = 0.6$ and compare the mean
#    sentence length. Does $\gamma < 1$ lengthen the sentences on this model, as it does on this
#    chapter's toy, or shorten them, as on chapter 1's?
# 4. Add a third keyword, *queen*. How long does the chain take before the sentences read like
#    anything? Start annealing from the chain's best state: does it improve on it?
