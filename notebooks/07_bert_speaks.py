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
# # 7. BERT speaks
#
# A masked language model such as BERT is trained to fill in a blank: given a sentence with position
# $i$ masked, it outputs a distribution $q_i(v \mid x_{-i})$ over the token that belongs there. That is
# exactly what a Gibbs step needs (chapter 5), so Wang & Cho {cite:p}`wang2019bert` made BERT "speak":
# start from a sentence (or from all `[MASK]`), repeatedly pick a position, mask it, and draw a new
# token from the model {cite:p}`su2021part3`.
#
# The catch: Gibbs sampling samples $p$ when its conditionals are **the conditionals of $p$**. A neural
# network's $q_i$ are trained separately for each context; nothing forces them to be the conditionals
# of *any* joint distribution. The chain still has a stationary law, but nobody knows which — it can
# even depend on the order in which positions are visited. Goyal et al.
# {cite:p}`goyal2022exposing` fix this with Metropolis–Hastings: keep $q_i$ as the *proposal*, and
# accept with respect to an explicit energy $E(x)$,
#
# $$
# \log\alpha = \min\bigl(0,\ E(x) - E(y) + \log q_i(x_i \mid x_{-i}) - \log q_i(y_i \mid x_{-i})\bigr),
# $$
#
# so the chain's stationary law is exactly $\pi(x) \propto e^{-E(x)}$ — for instance the
# pseudo-log-likelihood energy $E(x) = -\sum_t \log q_t(x_t \mid x_{-t})$.
#
# This chapter proves both statements exactly on the bigram oracle, then lets the built-in model speak.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.special import logsumexp

from textsampling import diagnostics, markov, randomness
from textsampling.lm.oracle import BigramOracle
from textsampling.reference import mlm_gibbs
from textsampling.reference import mlm_metropolis_hastings as mlm_mh
from textsampling.reference.metropolis_hastings import log_accept_ratio
from textsampling.targets import BigramLM

SEED = 8119
SMALL = bool(os.environ.get("CI"))
NUM_CHAINS = 4 if SMALL else 8
NUM_GIBBS_STEPS = 30 if SMALL else 400
NUM_MH_STEPS = 10 if SMALL else 100
NUM_ORACLE_STEPS = 150 if SMALL else 2_000  # per chain, for the simulated chains on the oracle

# %% [markdown]
# ## Proven on the oracle
#
# The bigram oracle is a masked *and* causal language model whose every answer is exact. For a sentence
# $x_1..x_n$ followed by END, $p(x) = p(x_1) \prod_{t=2}^{n} p(x_t \mid x_{t-1})\, p(\mathrm{END} \mid x_n)$,
# and the factors that hold $x_i$ give its masked conditional
#
# $$
# p(x_i = v \mid x_{-i}) \propto
# \underbrace{p(v \mid x_{i-1})}_{p(x_1 = v) \text{ if } i = 1}\;
# \underbrace{p(x_{i+1} \mid v)}_{p(\mathrm{END} \mid v) \text{ if } i = n},
# $$
#
# the true conditional of the bigram joint: at the first position the left factor is the initial law,
# at the last the right factor is the probability of ending. We take four tokens and sentences of
# length three: $4^3 = 64$ sentences. First the oracle's answers against the conditionals of the
# enumerated joint at every sentence and position (and what dropping the two boundary factors would
# cost), then the exact MLM-Gibbs kernel, built with the same code that steps the chains.

# %%
rng = np.random.default_rng(SEED)
bigram = BigramLM.random(rng, vocab_size=4, max_length=3, concentration=0.7)
oracle = BigramOracle(bigram)
exact = bigram.fixed_length(3)  # p(x | n = 3): the law MLM Gibbs must reach
states = exact.states  # (64, 3)
p = exact.probabilities()

errors, without_boundary = [], []
for position in range(3):
    truth = exact.brute_force_conditional_log_probs(states, position)  # (64, 4) from the enumerated joint
    errors.append(np.abs(oracle.masked_log_probs(states, np.full(64, position))[:, :4] - truth).max())
    # The formula with the interior factors only: p(v | x_{i-1}) p(x_{i+1} | v), and 1 where a neighbour is missing.
    left = bigram.log_transition[states[:, position - 1], :4] if position > 0 else np.zeros((64, 4))
    right = bigram.log_transition[:4, states[:, position + 1]].T if position < 2 else np.zeros((64, 4))
    interior = left + right - logsumexp(left + right, axis=1, keepdims=True)
    without_boundary.append(0.5 * np.abs(np.exp(interior) - np.exp(truth)).sum(axis=1).max())  # worst TV
print(f"oracle vs conditionals of the joint, all 64 x 3 cases: max |log difference| = {max(errors):.1e}")
print("interior factors only: largest TV to the true conditional at positions 1, 2, 3 = "
      + ", ".join(f"{e:.3f}" for e in without_boundary))

for scan in ("random", "systematic"):
    kernel = mlm_gibbs.transition_matrix(oracle, states, scan=scan)
    print(f"MLM Gibbs ({scan:>10} scan) with the oracle: max |p P - p| = {markov.stationarity_residual(kernel, p):.1e}")

# %% [markdown]
# ## Conditionals that belong to no joint
#
# Now a masked LM that is *almost* the oracle but looks only at the left neighbour,
# $q_i(v \mid x_{-i}) = p(v \mid x_{i-1})$ — as if a causal model were asked to fill blanks. These
# conditionals are perfectly good distributions, but they are not the conditionals of any joint law.
# Gibbs sampling with them still converges to *something*: we compute it exactly, for both scan orders.

# %%
class LeftContextOnly:
    """A masked LM that ignores the right context: q_i(v | x_-i) = p(v | x_{i-1}) (p(x_1 = v) at i = 0)."""

    def __init__(self, oracle):
        self.vocab_size = oracle.vocab_size  # tokens, END, [MASK]
        self.special_token_ids = oracle.special_token_ids
        self.max_length = oracle.max_length
        self.mask_token_id = oracle.mask_token_id  # callers put it at the position they ask about
        num_tokens = oracle.num_tokens
        step = oracle.bigram.log_transition[:, :num_tokens]  # (V, V): END column dropped
        self._initial = oracle.bigram.log_initial
        self._step = step - logsumexp(step, axis=1, keepdims=True)  # renormalised over tokens
        self._num_tokens = num_tokens

    def masked_log_probs(self, token_ids, positions):
        token_ids, positions = np.asarray(token_ids), np.asarray(positions)
        out = np.full((token_ids.shape[0], self.vocab_size), -np.inf)  # (N, V + 2)
        for row, (x, i) in enumerate(zip(token_ids, positions)):
            out[row, : self._num_tokens] = self._initial if i == 0 else self._step[x[i - 1]]
        return out


left_only = LeftContextOnly(oracle)
stationary = {}
for scan in ("random", "systematic"):
    kernel = mlm_gibbs.transition_matrix(left_only, states, scan=scan)
    stationary[scan] = markov.stationary_distribution(kernel)
    print(f"left-context Gibbs ({scan:>10} scan): TV(stationary law, p) = {markov.tv_distance(stationary[scan], p):.4f}")
print(f"the two scan orders disagree with each other by TV {markov.tv_distance(stationary['random'], stationary['systematic']):.4f}")

# %% [markdown]
# If the conditionals belonged to a joint, that joint would be stationary for both scan orders. Here
# the two orders settle on different laws, so "the distribution this masked LM samples" is not even
# well defined.
#
# ## MH with an explicit energy fixes it
#
# Keep the same flawed conditionals as proposals, and accept with an energy. With the causal
# log-likelihood of the oracle, $E(x) = -\log p(x)$, the stationary law is $p$ exactly — whatever the
# proposal. With the pseudo-log-likelihood energy of the flawed model itself, the stationary law is
# $\propto \exp(\sum_t \log q_t(x_t \mid x_{-t}))$ — a *known* law, computed below from the energies.

# %%
def causal_energy(sequences):
    return -oracle.sequence_log_probs(sequences)


kernels = {
    "E = -log p (oracle)": (mlm_mh.transition_matrix(left_only, states, energy_kind=causal_energy), p),
}
pll_energies = np.array([mlm_mh.energy(left_only, x, "pll") for x in states])
pll_law = np.exp(-pll_energies - logsumexp(-pll_energies))
kernels["E = pseudo-log-likelihood"] = (mlm_mh.transition_matrix(left_only, states, energy_kind="pll"), pll_law)
for name, (kernel, law) in kernels.items():
    print(f"MLM-MH, {name:>26}: max |π P - π| = {markov.stationarity_residual(kernel, law):.1e}, "
          f"detailed balance residual {markov.detailed_balance_residual(kernel, law):.1e}")

order = np.argsort(p)[::-1][:20]
fig, ax = plt.subplots(figsize=(12, 4))
width = 0.2
ax.bar(np.arange(20) - 1.5 * width, p[order], width, color="black", label="p (the bigram joint)")
ax.bar(np.arange(20) - 0.5 * width, stationary["random"][order], width, label="Gibbs, left context, random scan")
ax.bar(np.arange(20) + 0.5 * width, stationary["systematic"][order], width, label="Gibbs, left context, systematic scan")
mh_law = markov.stationary_distribution(kernels["E = -log p (oracle)"][0])
ax.bar(np.arange(20) + 1.5 * width, mh_law[order], width, label="MLM-MH with E = -log p")
ax.set_xticks(np.arange(20), ["".join("abcd"[t] for t in x) for x in states[order]], fontsize=8)
ax.set_xlabel("sentence (the 20 most probable under p)")
ax.set_ylabel("exact stationary probability")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## What the acceptance rate measures
#
# Chapter 5 showed that Gibbs sampling is MH whose acceptance is always 1. The condition is precise:
# the proposal must be the conditional **of the target**. Here the target is $e^{-E}$, so acceptance 1
# needs $q_i(v \mid x_{-i}) = \pi_E(x_i = v \mid x_{-i})$ — whether the $q_i$ agree with one another is
# not the question. To separate the two, take the oracle itself as the proposal: its conditionals are
# exactly those of $p$, as consistent as conditionals can be. Then
#
# * with $E = -\log p$ the proposal is the target's own conditional, and every proposal is accepted;
# * with the pseudo-log-likelihood $E(x) = -\sum_t \log q_t(x_t \mid x_{-t})$, the target is
#   $e^{-E}(x) = \prod_t q_t(x_t \mid x_{-t})$. Its conditional at $i$ is *not* $q_i$: $x_i$ is the
#   predicted token of factor $i$ but also part of the context of every other factor, so
#   $\pi_{\mathrm{PLL}}(x_i = v \mid x_{-i}) \propto q_i(v \mid x_{-i}) \prod_{t \ne i} q_t(x_t \mid x_{-t})\big|_{x_i = v}$.
#   MH rejects, although nothing contradicts itself, and the chain samples $e^{-\mathrm{PLL}}$, not $p$.
#
# The exact mean acceptance of a stationary chain is
# $\mathbb E_\pi[\alpha] = \sum_x \pi(x) \frac1n \sum_i \sum_v q_i(v \mid x_{-i})\, \alpha(x \to x_{i \leftarrow v})$,
# computed below from the package's proposal, energy and acceptance functions over all 64 sentences.

# %%
def mean_acceptance(model, energy_kind, law):
    """Exact E_law[acceptance probability] of MLM-MH: every state, position and proposed token."""
    energies = np.array([mlm_mh.energy(model, x, energy_kind) for x in states])
    total, largest_log_rejection = 0.0, 0.0
    for a, x in enumerate(states):
        for position in range(3):
            log_q = mlm_mh.proposal_log_probs(model, x, position)
            for token in np.flatnonzero(log_q > -np.inf):
                y = x.copy()
                y[position] = token
                b = exact.state_index(y[None])[0]
                log_alpha = log_accept_ratio(-energies[a], -energies[b], log_q[x[position]] - log_q[token])
                total += law[a] * np.exp(log_q[token] + log_alpha) / 3
                largest_log_rejection = max(largest_log_rejection, -log_alpha)
    return total, largest_log_rejection


oracle_pll = np.array([mlm_mh.energy(oracle, x, "pll") for x in states])
oracle_pll_law = np.exp(-oracle_pll - logsumexp(-oracle_pll))
acceptance = {
    "oracle proposal, E = -log p": mean_acceptance(oracle, causal_energy, p),
    "oracle proposal, E = PLL of the oracle": mean_acceptance(oracle, "pll", oracle_pll_law),
    "left-context proposal, E = -log p": mean_acceptance(left_only, causal_energy, p),
    "left-context proposal, E = PLL of itself": mean_acceptance(left_only, "pll", pll_law),
}
for name, (rate, worst) in acceptance.items():
    print(f"{name:>41}: exact mean acceptance {rate:.6f}, largest -log α = {worst:.1e}")
print(f"TV(e^-PLL, p) with the oracle's exact conditionals = {markov.tv_distance(oracle_pll_law, p):.3f}")
oracle_pll_kernel = mlm_mh.transition_matrix(oracle, states, energy_kind="pll")
print(f"MLM-MH (oracle, PLL): max |π P - π| = {markov.stationarity_residual(oracle_pll_kernel, oracle_pll_law):.1e} for π = e^-PLL, "
      f"{markov.stationarity_residual(oracle_pll_kernel, p):.1e} for π = p")

# %% [markdown]
# So the acceptance rate measures the distance between the proposal and the conditionals of the
# *chosen energy*. With perfectly consistent conditionals and the PLL energy, the exact mean acceptance
# is well below 1 (second line) and the chain's law is $e^{-\mathrm{PLL}}$, at the TV distance from $p$
# printed next — the kernel leaves $e^{-\mathrm{PLL}}$ invariant to rounding, $p$ visibly not. With
# $E = -\log p$ nothing is rejected (first line: the largest $-\log\alpha$ is rounding). With
# conditionals that belong to no joint (the left-context model) the rate is below 1 for *both*
# energies: a rejection can come from either cause, and the rate alone does not say which.
#
# ## Wang & Cho's MRF, and its retraction
#
# The paper that made BERT speak {cite:p}`wang2019bert` is titled "BERT as a Markov Random Field
# Language Model". It defines a log-potential per position, $\log\phi_t(x) = \mathrm{logit}_t(x_{-t})[x_t]$
# (BERT's unnormalised score of the token at $t$ given the rest), the joint
# $\pi_{\mathrm{WC}}(x) \propto \prod_t \phi_t(x) = e^{-E_{\text{raw logit}}(x)}$, and reads BERT's
# softmax $q_t$ as this MRF's conditional at $t$, so that Gibbs with $q_t$ would sample the MRF. The
# step is wrong for the reason of the previous section: $x_t$ is also an input of every other
# potential $\phi_{t'}$, $t' \ne t$. Kyunghyun Cho retracted the claim himself, in a note crediting
# Chandel, Joseph and Ranganath with finding the error — "BERT has a Mouth and must Speak, but it is
# not an MRF" (K. Cho, blog post, 2019,
# [kyunghyuncho.me](http://www.kyunghyuncho.me/home/blog/amistakeinwangchoberthasamouthanditmustspeakbertasamarkovrandomfieldlanguagemodel)):
# the $q_t$ remain conditionals of each token given the others, but there may be no joint
# distribution from which they can be derived. Su's part 3 makes the same caveat
# {cite:p}`su2021part3`, and Goyal et al. {cite:p}`goyal2022exposing` turn the MRF into a target that
# MH can actually reach (the raw-logit energy of `mlm_mh`).
#
# The oracle makes the mistake exact. Its raw logits are $\log p(v \mid x_{i-1}) + \log p(x_{i+1} \mid v)$,
# so $\sum_t \mathrm{logit}_t$ counts every transition factor twice (the two boundary factors once),
# and the MRF is $\pi_{\mathrm{WC}} \propto p(x)^2 / \bigl(p(x_1)\, p(\mathrm{END} \mid x_n)\bigr)$ — not
# $p$, although the conditionals are those of $p$.

# %%
raw_energies = np.array([mlm_mh.energy(oracle, x, "raw_logit") for x in states])
wang_cho = np.exp(-raw_energies - logsumexp(-raw_energies))
closed_form = 2 * np.log(p) - bigram.log_initial[states[:, 0]] - bigram.log_transition[states[:, -1], bigram.end_token]
gap = np.log(wang_cho) - closed_form
print(f"log π_WC - log[p² / (p(x1) p(END | x3))] is constant: spread {np.ptp(gap):.1e}")
print(f"TV(π_WC, p) = {markov.tv_distance(wang_cho, p):.3f}")
largest = 0.0
for position in range(3):
    q = np.exp(oracle.masked_log_probs(states, np.full(64, position))[:, :4])  # BERT's (here: the oracle's) q_t
    for a, x in enumerate(states):
        neighbours = np.repeat(x[None], 4, axis=0)
        neighbours[:, position] = np.arange(4)
        conditional = wang_cho[exact.state_index(neighbours)]
        largest = max(largest, 0.5 * np.abs(conditional / conditional.sum() - q[a]).sum())
print(f"largest TV between a conditional of π_WC and the MLM's q_t: {largest:.3f}")
print(f"MLM-MH with the raw-logit energy targets π_WC: exact mean acceptance "
      f"{mean_acceptance(oracle, 'raw_logit', wang_cho)[0]:.3f}")

# %% [markdown]
# ## Simulated chains on the oracle
#
# The transition matrices above prove the laws; as in chapters 3–5, we also *run* the samplers and
# compare what they visit with the exact answers. `NUM_CHAINS` chains each of MLM Gibbs and of MLM-MH
# with the PLL energy, both proposing from the oracle, start from the `NUM_CHAINS` least probable
# sentences (over-dispersed starts) and run `NUM_ORACLE_STEPS` steps; the first tenth is discarded.
# Gibbs must reach $p$; MH must reach $e^{-\mathrm{PLL}}$, which is *not* $p$. The pooled histograms
# are compared with both laws, next to the TV distance of as many independent exact draws (a
# histogram is never at TV 0); the traces of $\log p(x)$ and their split $\hat R$ (chapter 10) check
# that the chains agree with one another, and MH's observed acceptance rate is compared with the
# exact rate computed above.

# %%
starts = states[np.argsort(p)[:NUM_CHAINS]]
burn_in = NUM_ORACLE_STEPS // 10
chains = {
    "MLM Gibbs": [mlm_gibbs.sample(randomness.CounterGenerator(SEED, c), starts[c], oracle, NUM_ORACLE_STEPS)
                  for c in range(NUM_CHAINS)],
    "MLM-MH, E = PLL": [mlm_mh.sample(randomness.CounterGenerator(SEED + 1, c), starts[c], oracle, NUM_ORACLE_STEPS,
                                      energy_kind="pll") for c in range(NUM_CHAINS)],
}
targets = {"MLM Gibbs": p, "MLM-MH, E = PLL": oracle_pll_law}
visited = {name: np.array([exact.state_index(trace.states.x) for trace in traces]) for name, traces in chains.items()}  # (C, N)
for name, indices in visited.items():
    kept = indices[:, burn_in:].reshape(-1)
    exact_draws = rng.choice(64, size=kept.size, p=targets[name])
    print(f"{name:>16}: TV(histogram, p) = {diagnostics.empirical_tv_distance(kept, p):.3f}, "
          f"TV(histogram, e^-PLL) = {diagnostics.empirical_tv_distance(kept, oracle_pll_law):.3f}, "
          f"{kept.size} exact draws of its own law: {diagnostics.empirical_tv_distance(exact_draws, targets[name]):.3f}; "
          f"split R-hat of log p(x) = {diagnostics.split_rhat(np.log(p)[indices[:, burn_in:]]):.3f}")
observed = diagnostics.acceptance_rate(np.array([trace.infos.accepted for trace in chains["MLM-MH, E = PLL"]]))
print(f"MLM-MH, E = PLL: observed acceptance {observed:.3f}, exact {acceptance['oracle proposal, E = PLL of the oracle'][0]:.3f}")

fig, axes = plt.subplots(1, 3, figsize=(15, 4), gridspec_kw={"width_ratios": [2, 1, 1]})
top = np.argsort(p)[::-1][:15]
width = 0.2
for k, (label, values) in enumerate({
    "p (exact)": p,
    "MLM Gibbs, histogram": np.bincount(visited["MLM Gibbs"][:, burn_in:].reshape(-1), minlength=64) / visited["MLM Gibbs"][:, burn_in:].size,
    "e^-PLL (exact)": oracle_pll_law,
    "MLM-MH (PLL), histogram": np.bincount(visited["MLM-MH, E = PLL"][:, burn_in:].reshape(-1), minlength=64) / visited["MLM-MH, E = PLL"][:, burn_in:].size,
}.items()):
    axes[0].bar(np.arange(15) + (k - 1.5) * width, values[top], width, label=label, color=["black", "C0", "grey", "C1"][k])
axes[0].set_xticks(np.arange(15), ["".join("abcd"[t] for t in x) for x in states[top]], fontsize=8)
axes[0].set_xlabel("sentence (the 15 most probable under p)")
axes[0].set_ylabel("probability")
axes[0].legend(fontsize=8)
for ax, (name, indices) in zip(axes[1:], visited.items()):
    ax.plot(np.log(p)[indices].T, lw=0.5)
    ax.axvline(burn_in, color="black", ls=":", lw=1)  # the discarded first tenth ends here
    ax.set_title(f"{name}: trace of log p(x)", fontsize=10)
    ax.set_xlabel("step")
fig.tight_layout()

# %% [markdown]
# ## The built-in model speaks
#
# `textsampling` ships a small BERT-style masked LM trained on Shakespeare (`tiny-shakespeare`, loaded
# offline). We run `NUM_CHAINS` chains at once with the torch twin of MLM Gibbs — one model call per
# step serves every chain — from all-`[MASK]` sentences of 12 tokens, and look at what they write and
# at their pseudo-log-likelihood energy along the way. Each chain has its own counter-based random
# stream, so chain $c$ writes the same text whatever else runs beside it.

# %%
import warnings  # noqa: E402

from tqdm import TqdmWarning  # noqa: E402

# transformers imports tqdm.auto, which warns in a kernel without ipywidgets; no progress bar is shown here.
warnings.filterwarnings("ignore", category=TqdmWarning)
from transformers.utils import logging as transformers_logging  # noqa: E402

from textsampling.lm import load_masked_lm  # noqa: E402
from textsampling.lm.tokens import with_mask_at  # noqa: E402
from textsampling.torch import mlm_gibbs as mlm_gibbs_twin  # noqa: E402
from textsampling.torch import mlm_metropolis_hastings as mlm_mh_twin  # noqa: E402
from textsampling.torch.randomness import CounterGenerator  # noqa: E402

transformers_logging.disable_progress_bar()  # no loading bars on stderr
model = load_masked_lm("tiny-shakespeare")
print(model)
LENGTH = 12
generator = CounterGenerator(SEED, torch.arange(NUM_CHAINS))
all_mask = torch.full((NUM_CHAINS, LENGTH), model.mask_token_id, dtype=torch.long)
gibbs_trace = mlm_gibbs_twin.sample(generator, all_mask, model, NUM_GIBBS_STEPS, scan="random")  # states.x (B, T, L)
energies, checkpoints = [], []
for step in range(max(1, NUM_GIBBS_STEPS // 30), NUM_GIBBS_STEPS + 1, max(1, NUM_GIBBS_STEPS // 30)):
    x = gibbs_trace.states.x[:, step - 1]  # (B, L): the chains after `step` steps
    if not (x == model.mask_token_id).any():  # the PLL energy of a sentence, once every [MASK] is filled
        energies.append(mlm_mh_twin.energy(model, x).numpy())
        checkpoints.append(step)
state = gibbs_trace.final_state
for text in model.decode(state.x.numpy()):
    print("  ", text)

# %%
fig, ax = plt.subplots(figsize=(8, 3.6))
if energies:
    ax.plot(checkpoints, np.array(energies), lw=1)
ax.set_xlabel("Gibbs step")
ax.set_ylabel("PLL energy of each chain")
ax.set_title("MLM Gibbs on tiny-shakespeare")
fig.tight_layout()

# %% [markdown]
# ## MH on the real model, and what its acceptance rate says
#
# Continue the same chains with MLM-MH and the PLL energy. By the oracle section, the acceptance rate
# is *not* a count of the places where the masked LM contradicts itself: even exactly consistent
# conditionals are rejected under the PLL energy, because $q_i$ is not the conditional of
# $e^{-\mathrm{PLL}}$. We print the real model's rate next to the oracle's exact rate under the same
# energy, and measure directly how much the built-in model's conditional at one position depends on
# the rest of the sentence.

# %%
# The same streams, continued: MH's step t reads the uniforms of step NUM_GIBBS_STEPS + t.
mh_trace = mlm_mh_twin.sample(generator, state.x, model, NUM_MH_STEPS, first_step=NUM_GIBBS_STEPS, energy_kind="pll")
mh_state = mh_trace.final_state
accepted = mh_trace.infos.accepted.double().mean(dim=0).numpy()  # (T,): the fraction of chains accepting at t
print(f"MLM-MH acceptance rate over {NUM_MH_STEPS} steps x {NUM_CHAINS} chains: {np.mean(accepted):.3f} "
      f"(the oracle's exact rate under the PLL energy: {acceptance['oracle proposal, E = PLL of the oracle'][0]:.3f})")
for text in model.decode(mh_state.x.numpy()):
    print("  ", text)

position = np.full(NUM_CHAINS, LENGTH // 2)
contexts = with_mask_at(mh_state.x.numpy(), position, model.mask_token_id)  # (B, L): [MASK] at the position asked
rows = model.masked_log_probs(contexts, position)  # (B, V): one position, B contexts
finite = np.isfinite(rows).all(axis=0)
spread = np.max(rows[:, finite], axis=0) - np.min(rows[:, finite], axis=0)
print(f"largest change of log q_i(v | x_-i) across the {NUM_CHAINS} contexts: {spread.max():.3f} nats")

# %% [markdown]
# Read the printed numbers together, from the oracle up.
#
# * On the oracle, whose conditionals are those of $p$, MLM-MH accepts every proposal with $E = -\log p$
#   (mean acceptance 1 to rounding) but not with the PLL energy: its exact mean acceptance is well
#   below 1, and the chain samples $e^{-\mathrm{PLL}}$, at the printed TV distance from $p$. The
#   simulated chains agree: MH's observed acceptance rate is close to the exact one, and its histogram
#   lies nearer $e^{-\mathrm{PLL}}$ than $p$ once the chains are long enough (at CI sizes the Monte
#   Carlo noise, printed beside it, is of the same size as the gap).
# * Wang & Cho's MRF is the raw-logit version of the same mistake: exact conditionals, and still a joint
#   at a positive TV distance from $p$ whose conditionals are not the $q_t$.
# * The built-in model's rate, printed beside the oracle's, mixes two causes of rejection that the
#   rate cannot separate: the mismatch between $q_i$ and the conditionals of $e^{-\mathrm{PLL}}$,
#   present for any model that uses its context (the oracle included), and conditionals that may
#   belong to no joint. It says how often the chain stays put, not how inconsistent the model is. A
#   rate near 1 would not prove consistency either: conditionals that ignore the context are trivially
#   consistent (those of independent tokens) and always accepted. The change of
#   $\log q_i(v \mid x_{-i})$ across contexts, printed last, shows that the built-in model does use
#   its context.
#
# What MLM-MH guarantees is the law $e^{-E}$ of the energy you chose, exactly; which energy describes
# "the text a masked LM likes" is a modelling choice, and the oracle shows that the natural one (the
# PLL) is not the model's own joint even when such a joint exists.
#
# ## Try this
#
# 1. Give `LeftContextOnly` the right context too (multiply by $p(x_{i+1} \mid v)$ and renormalise). Do
#    the two scan orders agree now? With which law?
# 2. Run MLM Gibbs on the oracle with `top_k=2` (`mlm_gibbs.transition_matrix(..., top_k=2)`). The
#    module flags it as changing the target: by how much, in TV?
# 3. For the real model, compare the PLL energy of the Gibbs chains with that of the MH chains after the
#    same number of steps. Which one finds lower-energy sentences?
# 4. Compute `mean_acceptance(left_only, "raw_logit", ...)`: `LeftContextOnly` has no `masked_logits`,
#    so give it one (its log-probabilities are valid logits). What is the Wang & Cho MRF of a model
#    that looks only left, and how far is it from $p$?
# 5. Start the real-model chains from a line of Shakespeare (`model.encode([...])`) instead of all
#    `[MASK]`. How many steps until nothing of it is left?
