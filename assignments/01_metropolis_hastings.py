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
import numpy as np

TOKEN_PROBABILITIES = np.array([0.6, 0.3, 0.1])


# %%
def mh_step(rng, x, target):
    """One Metropolis-Hastings step with a single-site proposal of token law TOKEN_PROBABILITIES."""
    # TODO: propose y, compute the log acceptance ratio with the Hastings term, accept or reject.
    return np.array(x)


# %% [markdown]
# ## Autograding
#
# Run this cell (or `python autograder.py 01_metropolis_hastings.py` in a terminal; exit status 0 passed, 1
# not yet). The autograder calls your function a few thousand times and checks, in order: that every result
# is a state of the target; that it is one step of **the requested algorithm** (return `x` or change exactly
# one position); that the moves have the exact probabilities of that algorithm — if not, it names the usual
# mistake they fit, or shows the moves that are most off with each factor of the exact ratio; and that the
# target is kept and reached (`textsampling.testing.conformance`, the `textsampling check` command; see
# `book/conformance.md`). A correct step fails with probability at most 1e-4; the seed is fixed, so the
# verdict is reproducible.

# %%
if __name__ == "__main__":
    from autograder import finish, grade

    finish(grade(1, mh_step))
