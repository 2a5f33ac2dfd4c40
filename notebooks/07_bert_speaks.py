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

from textsampling import markov
from textsampling.lm.oracle import BigramOracle
from textsampling.reference import mlm_gibbs
from textsampling.reference import mlm_metropolis_hastings as mlm_mh
from textsampling.targets import BigramLM

SEED = 8119
SMALL = bool(os.environ.get("CI"))
NUM_CHAINS = 4 if SMALL else 8
NUM_GIBBS_STEPS = 30 if SMALL else 400
NUM_MH_STEPS = 10 if SMALL else 100

# %% [markdown]
# ## Proven on the oracle
#
# The bigram oracle is a masked *and* causal language model whose every answer is exact: its masked
# conditional is $p(x_i = v \mid x_{-i}) \propto p(v \mid x_{i-1})\, p(x_{i+1} \mid v)$, the true
# conditional of the bigram joint. We take four tokens and sentences of length three: $4^3 = 64$
# sentences, and build the exact MLM-Gibbs kernel with the same code that steps the chains.

# %%
rng = np.random.default_rng(SEED)
bigram = BigramLM.random(rng, vocab_size=4, max_length=3, concentration=0.7)
oracle = BigramOracle(bigram)
exact = bigram.fixed_length(3)  # p(x | n = 3): the law MLM Gibbs must reach
states = exact.states  # (64, 3)
p = exact.probabilities()

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
from textsampling.torch import mlm_gibbs as mlm_gibbs_twin  # noqa: E402
from textsampling.torch import mlm_metropolis_hastings as mlm_mh_twin  # noqa: E402
from textsampling.torch.randomness import CounterGenerator, draw_uniforms  # noqa: E402

transformers_logging.disable_progress_bar()  # no loading bars on stderr
model = load_masked_lm("tiny-shakespeare")
print(model)
LENGTH = 12
generator = CounterGenerator(SEED, torch.arange(NUM_CHAINS))
state = mlm_gibbs_twin.MLMGibbsState(torch.full((NUM_CHAINS, LENGTH), model.mask_token_id, dtype=torch.long))
energies, checkpoints = [], []
for step in range(NUM_GIBBS_STEPS):
    state, _ = mlm_gibbs_twin.step(draw_uniforms(generator, step, 2), state, model, scan="random")
    if (step + 1) % max(1, NUM_GIBBS_STEPS // 30) == 0 and not (state.x == model.mask_token_id).any():
        energies.append(mlm_mh_twin.energy(model, state.x).numpy())
        checkpoints.append(step + 1)
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
# Continue the same chains with MLM-MH and the PLL energy. The acceptance rate measures how far the
# model's conditionals are from being the conditionals of $e^{-E}$: for exactly consistent conditionals
# every proposal is accepted (chapter 5: Gibbs is MH with acceptance 1); every rejection is a place
# where the masked LM contradicts itself. We also measure directly how much the built-in model's
# conditional at one position depends on the rest of the sentence.

# %%
mh_state = mlm_mh_twin.init(state.x, model)
accepted = []
for step in range(NUM_MH_STEPS):
    mh_state, info = mlm_mh_twin.step(draw_uniforms(generator, NUM_GIBBS_STEPS + step, 3), mh_state, model)
    accepted.append(info.accepted.float().mean().item())
print(f"MLM-MH acceptance rate over {NUM_MH_STEPS} steps x {NUM_CHAINS} chains: {np.mean(accepted):.3f}")
for text in model.decode(mh_state.x.numpy()):
    print("  ", text)

contexts = mh_state.x.numpy()
rows = model.masked_log_probs(contexts, np.full(NUM_CHAINS, LENGTH // 2))  # (B, V): one position, B contexts
finite = np.isfinite(rows).all(axis=0)
spread = np.max(rows[:, finite], axis=0) - np.min(rows[:, finite], axis=0)
print(f"largest change of log q_i(v | x_-i) across the {NUM_CHAINS} contexts: {spread.max():.3f} nats")

# %% [markdown]
# Read the two numbers together. An acceptance rate below 1 measures self-contradiction; a rate of
# exactly 1 *with* a near-zero change of the conditionals across contexts means something else: the
# conditionals ignore the context altogether, so they are trivially consistent (they are the
# conditionals of a product of independent tokens) — and the text the chain writes is a bag of
# frequent tokens rather than sentences. A masked LM must first *use* the context before the question
# of which joint it implies becomes interesting; the exact oracle above is the reference for what
# the samplers do when it does.
#
# ## Try this
#
# 1. Give `LeftContextOnly` the right context too (multiply by $p(x_{i+1} \mid v)$ and renormalise). Do
#    the two scan orders agree now? With which law?
# 2. Run MLM Gibbs on the oracle with `top_k=2` (`mlm_gibbs.transition_matrix(..., top_k=2)`). The
#    module flags it as changing the target: by how much, in TV?
# 3. For the real model, compare the PLL energy of the Gibbs chains with that of the MH chains after the
#    same number of steps. Which one finds lower-energy sentences?
# 4. Start the real-model chains from a line of Shakespeare (`model.encode([...])`) instead of all
#    `[MASK]`. How many steps until nothing of it is left?
