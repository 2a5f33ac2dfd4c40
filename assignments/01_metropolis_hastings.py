# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 1 — Metropolis–Hastings, checked
#
# **Task.** Write one step of Metropolis–Hastings for a sequence target, `mh_step(rng, x, target)`:
#
# 1. propose `y` from `x` by changing **one position** `i` (uniform over the `L` positions) to a token
#    drawn from the **uneven** law `r = (0.6, 0.3, 0.1)` over the `V = 3` tokens;
# 2. accept `y` with probability
#    $\alpha = \min\bigl(1, \frac{\rho(y)\, q(x \mid y)}{\rho(x)\, q(y \mid x)}\bigr)$, in log space:
#    accept iff $\log u < \log\rho(y) - \log\rho(x) + \log q(x \mid y) - \log q(y \mid x)$;
# 3. return the new state (`y` if accepted, else `x`) — an `(L,)` int array, nothing else.
#
# `target.log_prob(states)` maps an `(N, L)` int array to `N` unnormalised log-densities;
# `target.length` is `L`, `target.vocab_size` is `V`. Draw all randomness from `rng`
# (a `numpy.random.Generator`). Part 2 of the series (spaces.ac.cn/archives/8084);
# Hastings (1970), Biometrika 57:97.
#
# Hint: with an uneven `r`, $q(y \mid x) \ne q(x \mid y)$ — what is $\log q(x \mid y) - \log q(y \mid x)$
# when only position `i` changed, from token `a` to token `b`?

# %%
import os

import numpy as np

from textsampling.check import check_step

TOKEN_PROBABILITIES = np.array([0.6, 0.3, 0.1])


# %%
def mh_step(rng, x, target):
    """One Metropolis-Hastings step with a single-site proposal of token law TOKEN_PROBABILITIES."""
    # TODO: propose y, compute the log acceptance ratio with the Hastings term, accept or reject.
    return np.array(x)


# %% [markdown]
# ## Autograding
#
# The check draws exact samples from the target, applies your step once and tests that they still
# follow the target; tests that pairs $(x_0, x_1)$ are reversible; and runs chains from one start to
# see that they reach the target. `return x` passes the first two — it leaves the target invariant —
# and fails the third: it never moves. Read `book/conformance.md` for how to read the report.

# %%
if __name__ == "__main__":
    BUDGET = 20 if os.environ.get("CI") else 60
    report = check_step(mh_step, kind="mh", target="bigram-small", budget=BUDGET)
    print(report.format())
    print("exercise 1:", "PASSED" if report.passed else "NOT YET")
