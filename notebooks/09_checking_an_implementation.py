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
# # 9. Checking an implementation
#
# A sampler that is subtly wrong still produces plausible output: the trace wanders, the acceptance rate
# looks healthy, the sentences read well. Chapter 4 showed an MH chain without its Hastings term
# converging confidently to the wrong law. The only defence is to compare with an exact answer, and
# `textsampling.testing` packages the comparisons:
#
# * **exact checks**, for kernels whose transition matrix $P$ can be built:
#   $\max_j |(\pi P)_j - \pi_j|$ (stationarity) and $\max_{ij} |\pi_i P_{ij} - \pi_j P_{ji}|$
#   (detailed balance);
# * **black-box checks**, which need only a step function `step_fn(rng, state) -> state`:
#   draw $x_0 \sim \pi$ exactly (possible on an enumerable target), apply one step, and test with a
#   chi-square test that $x_1$ still follows $\pi$ (**one-step invariance**); test that the pairs
#   $(x_0, x_1)$ are exchangeable (**reversibility**); or run many independent chains from a fixed
#   start and test their final states (**goodness of fit**, which also tests convergence).
#
# Every statistical check has a stated **false-fail rate** (the probability that a correct sampler
# fails, $10^{-4}$ by default) and reports its **power**: a lower bound on the probability of catching a
# sampler whose law is at a given total-variation distance from $\pi$. Without both numbers a test
# that passes proves nothing.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from textsampling import testing
from textsampling.markov import mixing_curve, tv_distance
from textsampling.reference import gibbs
from textsampling.reference import metropolis_hastings as mh
from textsampling.reference.proposals import SingleSiteProposal
from textsampling.targets import FixedLengthBigram

SEED = 2022
SMALL = bool(os.environ.get("CI"))
rng = np.random.default_rng(SEED)

# %% [markdown]
# ## A correct sampler and a subtly wrong one
#
# The target: three-token sentences over three words a, b, c ($27$ states). The proposal rewrites one token,
# drawn from a fixed non-uniform distribution, so the Hastings term is not zero. The correct sampler
# is the package's MH; the wrong one, from `testing.faulty`, is the same code with the Hastings term
# dropped — the bug published code has made.

# %%
target = FixedLengthBigram(
    initial_logits=[1.0, 0.0, -1.0],
    transition_logits=[[-1.0, 1.0, 0.0, 0.0], [0.5, -1.0, 1.0, 0.0], [1.0, 0.0, -1.0, 0.5]],
    length=3,
)
pi = target.probabilities()
proposal = SingleSiteProposal(vocab_size=3, length=3, token_logits=[1.5, 0.0, -1.0])
correct_step = testing.metropolis_hastings_step_fn(target.log_prob, proposal)
wrong = testing.faulty.mh_without_hastings_correction(target, proposal)
print(wrong)

# %% [markdown]
# ## The exact checks
#
# Both kernels are built by the same code that steps the chains. The correct one passes both checks to
# rounding error; the wrong one is off by a margin no rounding explains. `one_step_tv` says how far
# one step moves $\pi$: $\mathrm{TV}(\pi P, \pi)$.

# %%
correct_matrix = mh.transition_matrix(target, proposal)
for name, matrix in (("correct", correct_matrix), ("no Hastings term", wrong.transition_matrix)):
    stationary = testing.check_stationary(matrix, pi)
    balance = testing.check_detailed_balance(matrix, pi)
    print(f"{name:>17}: stationary {stationary.passed} (residual {stationary.residual:.1e}), "
          f"detailed balance {balance.passed} (residual {balance.residual:.1e}), "
          f"TV(πP, π) = {testing.one_step_tv(matrix, pi):.4f}")

# %% [markdown]
# ## The black-box check, and how many samples it needs
#
# The wrong kernel moves $\pi$ by the TV distance printed above in one step. `required_samples` turns
# that distance into a sample size whose power reaches 0.999 at the default false-fail rate; we run
# the one-step invariance test with that many exact draws on both samplers and print the reports.

# %%
distance = testing.one_step_tv(wrong.transition_matrix, pi)
num_samples = testing.required_samples(distance, power=0.999, num_cells=target.num_states)
print(f"TV(πP, π) = {distance:.4f} -> {num_samples} samples for power 0.999 at false-fail rate {testing.DEFAULT_FALSE_FAIL_RATE}\n")
results = {}
for name, step_fn in (("correct", correct_step), ("no Hastings term", wrong.step_fn)):
    results[name] = testing.one_step_invariance_test(step_fn, target, rng, num_samples, tv_alternative=distance)
    print(f"--- {name}\n{results[name]}\n")

# %% [markdown]
# The report of the failing sampler names the over- and under-sampled cells. A picture of the same:
# the counts after one step, per sentence, against the exact expected counts, as Pearson residuals
# $(O - E)/\sqrt{E}$. A correct sampler's residuals look like standard normal noise; the wrong one's
# have structure (mass drifts towards the tokens the proposal favours).

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), sharey=True)
labels = [" ".join("abc"[t] for t in state) for state in target.states]
for ax, (name, step_fn) in zip(axes, (("correct", correct_step), ("no Hastings term", wrong.step_fn))):
    starts = target.sample_exact(rng, num_samples)
    stepped = testing.apply_step(step_fn, rng, starts)
    observed = np.bincount(target.state_index(stepped), minlength=target.num_states)
    expected = num_samples * pi
    ax.bar(np.arange(target.num_states), (observed - expected) / np.sqrt(expected), color="tab:red" if name != "correct" else "tab:blue")
    ax.axhline(3, color="grey", ls=":")
    ax.axhline(-3, color="grey", ls=":")
    ax.set_xticks(np.arange(target.num_states), labels, rotation=90, fontsize=7)
    ax.set_title(f"{name}: one step from {num_samples} exact draws")
axes[0].set_ylabel("Pearson residual (O − E)/√E")
fig.tight_layout()

# %% [markdown]
# ## Power: what a passing test rules out
#
# The power lower bound as a function of the number of samples, for alternatives at several TV
# distances ($27$ cells, false-fail rate $10^{-4}$). A test with 2,000 samples that passes says
# nothing about errors of TV 0.01; to rule those out you need about a hundred times more.

# %%
sizes = np.unique(np.geomspace(100, 1_000_000, 60).astype(int))
fig, ax = plt.subplots(figsize=(8, 3.8))
for tv in (0.01, 0.03, 0.1):
    ax.semilogx(sizes, [testing.power_lower_bound(n, tv, testing.DEFAULT_FALSE_FAIL_RATE, target.num_states - 1) for n in sizes], label=f"TV = {tv}")
ax.axhline(0.999, color="grey", ls=":")
ax.set_xlabel("number of samples")
ax.set_ylabel("power (lower bound)")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## A bug one step cannot see
#
# A systematic scan that sweeps `range(L - 1)` — an off-by-one that never updates the last token —
# *keeps $\pi$ invariant*: every site update it makes is a correct Gibbs update. One-step invariance
# passes. But the chain is not irreducible: the last token never changes, so from a fixed start it
# never converges. Running independent chains from one start and testing their final states
# (goodness of fit) catches it.

# %%
skipping = testing.faulty.systematic_scan_skipping_last_position(target)
print(skipping, "\n")
one_step = testing.one_step_invariance_test(skipping.step_fn, target, rng, 1_000 if SMALL else 5_000)
print("one-step invariance:", "PASSED" if one_step.passed else "FAILED", f"(p-value {one_step.p_value:.3g})")
start = np.repeat(target.states[:1], 300 if SMALL else 2_000, axis=0)
for name, step_fn in (("correct sweep", testing.gibbs_step_fn(target.conditional_log_probs, scan="systematic")), ("skips the last", skipping.step_fn)):
    final_states = testing.run_independent_chains(step_fn, start, rng, num_steps=5)
    result = testing.goodness_of_fit_test(final_states, target)
    print(f"long run from {labels[0]!r}, {name:>14}: {'PASSED' if result.passed else 'FAILED'} (p-value {result.p_value:.3g})")
# Why 5 sweeps are enough for the correct scan: its exact law after 5 sweeps is already this close to π.
correct_sweep = gibbs.transition_matrix(target, scan="systematic")
print(f"exact TV to π after 5 correct sweeps from {labels[0]!r}: {mixing_curve(correct_sweep, 0, 5, pi)[-1]:.4f}")

# %% [markdown]
# ## The gallery of wrong samplers, measured exactly
#
# Every faulty sampler in `textsampling.testing.faulty` carries its exact transition matrix, so how
# wrong it is can be computed rather than guessed: the TV distance after one step from $\pi$, and after
# many steps from a fixed start.

# %%
from textsampling.reference.proposals import IndependentUniformSequences  # noqa: E402

gallery = [
    testing.faulty.mh_without_hastings_correction(target, proposal),
    testing.faulty.mh_with_wrong_sign(target, proposal),
    testing.faulty.mh_that_retries_rejections(target, proposal),
    testing.faulty.gibbs_with_tempered_conditional(target, temperature=2.0),
    testing.faulty.gibbs_with_stale_conditionals(target),
    testing.faulty.systematic_scan_skipping_last_position(target),
    testing.faulty.rejection_with_clipped_envelope(target, IndependentUniformSequences(3, 3), log_envelope=0.0),
]
one_step_distances = [testing.one_step_tv(sampler.transition_matrix, pi) for sampler in gallery]
long_run_distances = [mixing_curve(sampler.transition_matrix, 0, 200, pi)[-1] for sampler in gallery]
fig, ax = plt.subplots(figsize=(9, 3.8))
positions = np.arange(len(gallery))
ax.barh(positions + 0.2, one_step_distances, height=0.4, label="TV(πP, π): one step from π")
ax.barh(positions - 0.2, long_run_distances, height=0.4, label="TV(δ P^200, π): 200 steps from a fixed start")
ax.set_yticks(positions, [sampler.name for sampler in gallery], fontsize=8)
ax.set_xscale("symlog", linthresh=1e-3)
ax.set_xlabel("TV distance (exact)")
ax.legend(fontsize=8)
fig.tight_layout()
for sampler in gallery:
    print(f"- {sampler.name}: {sampler.description}")

# %% [markdown]
# ## Your own sampler, from the command line
#
# The same checks run on any step function you write, without a notebook:
#
# ```bash
# textsampling check mymodule:my_step --kind mh --target <name>
# ```
#
# prints the verdict of one-step invariance, reversibility (for reversible kinds) and a long-run fit,
# each with its p-value, the false-fail rate used (split between the tests) and its power; the
# conformance page of this book explains how to read the report, and `textsampling check --help`
# lists the kinds and built-in targets.
#
# ## Try this
#
# 1. Write your own MH step function with the acceptance computed from raw probabilities,
#    `np.exp(log_rho_y) / np.exp(log_rho_x)`, and test it on a target with $\log\rho \approx -800$. What
#    does the check say?
# 2. Run the one-step test of the *correct* sampler 200 times with different seeds. What fraction fails?
#    Is that compatible with the stated false-fail rate?
# 3. `reversibility_test` on the systematic scan (correct!) fails. Why is that not a bug?
# 4. For the stale-conditional sampler, how many samples does `required_samples` ask for? Why is it so
#    much harder to catch than the missing Hastings term?
