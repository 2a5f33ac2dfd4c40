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
# Back to the problem of chapter 1: sentences that contain given keywords, sampled from
#
# $$
# \rho(x) = p(x)^{\gamma}\, \mathrm{sim}(x, c)\, \chi(x, c).
# $$
#
# CGMH {cite:p}`miao2019cgmh,su2021part4` samples it with Metropolis–Hastings over sentences of
# *varying length*. The state is a sentence together with the positions of its keywords, which are
# never edited, so $\chi = 1$ all along. Each step picks one of three moves with fixed probabilities
# $(p_r, p_i, p_d)$:
#
# * **replace** an editable token (position uniform among the $m$ editable tokens);
# * **insert** a token into one of the $n + 1$ slots of an $n$-token sentence;
# * **delete** an editable token (uniform among the $m$).
#
# The new token is drawn from a candidate set $C$ — the causal LM's top-$K$ next tokens after the
# prefix $x_{<i}$ — with probability proportional to the target of the sentence it makes,
# $q_C(v) = \rho(x^{(v)}) / \sum_{w \in C} \rho(x^{(w)})$. Insert and delete are each other's reverse;
# replace is its own. The MH ratio must include *all* of the proposal probability:
#
# $$
# \text{insert: } q(y \mid x) = p_i \cdot \tfrac{1}{n+1} \cdot q_C(y_j), \qquad
# q(x \mid y) = p_d \cdot \tfrac{1}{m+1},
# $$
#
# and the reverse for a delete. The slot count $n + 1$ and the editable count $m + 1$ differ as soon as
# a keyword is present, so they do **not** cancel; and the candidate set must not depend on the token
# being replaced, or the forward and reverse sets differ. Published code got both wrong; the package's
# `cgmh` module has switches that reproduce each mistake, and this chapter shows what they do.

# %%
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import logsumexp

from textsampling import markov
from textsampling.lm.oracle import BigramOracle
from textsampling.reference import cgmh, sentence_annealing
from textsampling.targets import BigramLM

SEED = 8194
SMALL = bool(os.environ.get("CI"))
NUM_STEPS = 4 if SMALL else 100
rng = np.random.default_rng(SEED)

# %% [markdown]
# ## One step, move by move
#
# First on the exact bigram oracle: three tokens `a`, `b`, `c`, sentences of at most four tokens, the
# keyword `b`, and candidate sets of $K = 2$ tokens (so a replaced token may fall outside the set its
# reverse move would draw from). From the sentence `a b c` with `b` protected, `move_outcomes` lists
# every outcome of each move at one position, with the probability of drawing it and its acceptance
# probability — the same function `step` samples from and `transition_matrix` sums over.

# %%
bigram = BigramLM.random(np.random.default_rng(SEED), vocab_size=3, max_length=4, concentration=1.0)
oracle = BigramOracle(bigram)
TOKENS = "abc"
KEYWORD = 1  # "b"


def text(x) -> str:
    return " ".join(TOKENS[t] for t in x if t >= 0) or "(empty)"


config = cgmh.make_config(oracle, num_candidates=2, max_length=4, gamma=1.0)
state = cgmh.init(np.array([0, KEYWORD, 2, -1]), np.array([False, True, False, False]), config)
print(f"current: {text(state.x)!r}  (log ρ = {state.log_prob:.3f})")
for move in cgmh.MOVES:
    outcomes = cgmh.move_outcomes(state, move, 0.9, config)  # position uniform 0.9: the last position/slot
    print(f"\n{move} at position {outcomes.position}:")
    for sentence, log_token, log_alpha in zip(outcomes.states, outcomes.log_token_probs, outcomes.log_accept_ratios):
        print(f"   -> {text(sentence)!r:14} drawn with prob {np.exp(log_token):.3f}, accepted with prob {np.exp(log_alpha):.3f}")

# %% [markdown]
# ## The exact check, and the two published mistakes
#
# Enumerate every (sentence, keyword placement) pair of length 1–4 containing the keyword, and build
# the exact kernel of the correct sampler and of the two flawed variants. With only two candidates
# per slot, some sentences cannot reach each other, so instead of "the" stationary law we ask the
# sharper question: start *exactly* at $\pi \propto \rho$ and apply the kernel — a correct kernel leaves
# $\pi$ where it is, step after step; a flawed one moves it.

# %%
states, protected = cgmh.enumerate_states(num_tokens=3, keywords=[KEYWORD], max_length=4)
log_rho = cgmh.log_target(config, states)
target = np.exp(log_rho - logsumexp(log_rho))
print(f"{states.shape[0]} (sentence, keyword placement) states")

variants = {
    "correct": config,
    "position ratio omitted": config._replace(position_ratio=False),
    "candidate set biased": config._replace(candidate_set="biased"),
}
NUM_KERNEL_STEPS = 50
laws = {}
for name, variant in variants.items():
    kernel = cgmh.transition_matrix(variant, states, protected)
    laws[name] = target @ np.linalg.matrix_power(kernel, NUM_KERNEL_STEPS)  # law after 50 steps from π
    print(
        f"{name:>24}: detailed balance residual {markov.detailed_balance_residual(kernel, target):.1e}, "
        f"TV(π P, π) = {markov.tv_distance(target @ kernel, target):.4f}, "
        f"TV(π P^{NUM_KERNEL_STEPS}, π) = {markov.tv_distance(laws[name], target):.4f}"
    )

lengths = (states >= 0).sum(axis=1)
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
for k, (name, law) in enumerate(laws.items()):
    by_length = [law[lengths == n].sum() for n in range(1, 5)]
    axes[0].bar(np.arange(1, 5) + 0.2 * (k - 1), by_length, width=0.2, label=name)
axes[0].plot(np.arange(1, 5), [target[lengths == n].sum() for n in range(1, 5)], "k_", ms=30, mew=2, label="exact π")
axes[0].set_xlabel("sentence length")
axes[0].set_ylabel(f"probability after {NUM_KERNEL_STEPS} steps from π")
axes[0].legend(fontsize=8)
axes[1].bar(list(laws), [markov.tv_distance(law, target) for law in laws.values()], color=["tab:blue", "tab:orange", "tab:green"])
axes[1].set_ylabel(f"TV(π P^{NUM_KERNEL_STEPS}, π)")
axes[1].set_yscale("symlog", linthresh=1e-12)
fig.tight_layout()

# %% [markdown]
# The correct kernel satisfies detailed balance to rounding error. Omitting the position-choice
# probabilities tilts the length distribution (an insertion has $n + 1$ slots to choose from, a
# deletion only $m$ tokens, so the forgotten factor systematically favours one direction); the biased
# candidate set keeps the current token available and over-weights staying put in a way the reverse
# move never pays for.
#
# ## Keywords to sentences on the built-in model
#
# Now the real thing: the built-in causal LM (`tiny-shakespeare`), the keywords *king* and *crown*,
# $\gamma = 0.6$ to leave room for longer sentences, $K = 10$ candidates, sentences of at most 10
# tokens. The chain starts from the keywords alone.

# %%
from tqdm import TqdmWarning  # noqa: E402

# transformers imports tqdm.auto, which warns in a kernel without ipywidgets; no progress bar is shown here.
warnings.filterwarnings("ignore", category=TqdmWarning)
from transformers.utils import logging as transformers_logging  # noqa: E402

from textsampling.lm import encode_keywords, load_causal_lm  # noqa: E402

transformers_logging.disable_progress_bar()
model = load_causal_lm("tiny-shakespeare")
keyword_ids = [token for pieces in encode_keywords(model.tokenizer, ["king", "crown"]) for token in pieces]
lm_config = cgmh.make_config(model, num_candidates=10, max_length=10, gamma=0.6)
start = cgmh.keyword_state(lm_config, keyword_ids)
trace = cgmh.sample(rng, start, lm_config, NUM_STEPS)
print(f"start: {model.decode(start.x[None])[0]!r}, acceptance rate {trace.accepted.mean():.2f}")
for t in np.linspace(0, NUM_STEPS - 1, min(NUM_STEPS, 8)).astype(int):
    print(f"  step {t + 1:4d} [{trace.moves[t]:>7}]  log ρ = {trace.log_probs[t]:8.2f}   {model.decode(trace.states[t][None])[0]}")

# %% [markdown]
# ## Annealing for the best sentence
#
# Sampling gives typical sentences; lowering the temperature (chapter 6) turns the same moves into a
# search for the most probable sentence with the keywords. `sentence_annealing.anneal` runs CGMH on
# $\rho^{1/T}$ with a geometric schedule and keeps the best sentence seen.

# %%
temperatures = sentence_annealing.geometric_schedule(1.0, 0.05, NUM_STEPS)
annealed = sentence_annealing.anneal(rng, trace.final_state, lm_config, temperatures)
print(f"best sentence: {model.decode(annealed.best_state.x[None])[0]!r} (log ρ = {annealed.best_state.log_prob:.2f})")

fig, ax = plt.subplots(figsize=(9, 3.6))
ax.plot(np.arange(1, NUM_STEPS + 1), trace.log_probs, label="CGMH at T = 1")
ax.plot(np.arange(NUM_STEPS + 1, 2 * NUM_STEPS + 1), annealed.log_probs, label="annealing, T: 1 → 0.05")
ax.set_xlabel("step")
ax.set_ylabel("log ρ of the current sentence")
ax.legend()
fig.tight_layout()

# %% [markdown]
# Look at what the search found. The maximum of $\rho$ need not be a good sentence: every extra token
# costs probability under $p$, so for a small model the argmax is often little more than the keywords
# themselves. A search is only as good as what we wrote down (chapter 1): a smaller $\gamma$, a
# relevance term, or a minimum length change the answer — the sampler does not.
#
# ## Try this
#
# 1. In the exact check, set `move_probabilities=(0.8, 0.1, 0.1)` in `make_config`. Is the correct
#    sampler still exact? Does it mix faster or slower (look at `markov.mixing_curve`)?
# 2. Raise `num_candidates` to 3 (all tokens). Does the biased candidate set still break detailed
#    balance? Why?
# 3. On the real model, try $\gamma = 1$ and $\gamma = 0.3$. How does the typical sentence length change?
# 4. Add a third keyword, *queen*. How long does the chain take before the sentences read like
#    anything?
