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
# # Exercise 3 — the CGMH insert/delete pair
#
# **Task.** Write one CGMH step made of the two moves that change the length,
# `insert_delete_step(rng, x, target)`. The state `x` is a sentence of at most `L = target.length`
# tokens, right-padded with `PAD = -1`; every sentence must keep the keywords `target.keywords`.
#
# * With probability 1/2 propose an **insertion**: a slot uniform among the `n + 1` slots of the
#   `n`-token sentence, a token uniform among the `V = target.vocab_size` tokens. Impossible when
#   `n = L`: then return `x`.
# * Otherwise propose a **deletion**: a position uniform among the `m(x)` *deletable* positions — those
#   whose token is not the only occurrence of a keyword. Impossible when `n = 1` or `m(x) = 0`: return `x`.
# * Accept with the full Metropolis–Hastings ratio (part 4 of the series, spaces.ac.cn/archives/8194;
#   Miao et al. 2019, arXiv:1811.10996). For an insertion `x -> y` (`y` has `n + 1` tokens) the
#   reverse move is the deletion of the inserted position from `y`:
#
#   $$\log\alpha = \min\Bigl(0,\ \log\rho(y) - \log\rho(x)
#      + \underbrace{\log\tfrac12 - \log m(y)}_{\text{reverse: delete}}
#      - \underbrace{\bigl(\log\tfrac12 - \log(n+1) - \log V\bigr)}_{\text{forward: insert}}\Bigr).$$
#
#   Write the deletion's ratio yourself. The counts $n + 1$ and $m(y)$ differ: published code that
#   left them out sampled the wrong distribution (`textsampling.gallery`, `cgmh-no-position-ratio`).
#
# `target.log_prob(states)` scores `(N, L)` padded sentences (`-inf` without the keywords).

# %%
import os

import numpy as np

from textsampling.check import check_step

PAD = -1


def deletable_positions(tokens, keywords):
    """Positions of ``tokens`` (a list) whose deletion keeps every keyword in the sentence."""
    return [i for i, token in enumerate(tokens) if token not in keywords or tokens.count(token) >= 2]


def padded(tokens, length):
    """The token list as an ``(length,)`` int array, right-padded with PAD."""
    out = np.full(length, PAD, dtype=np.int64)
    out[: len(tokens)] = tokens
    return out


# %%
def insert_delete_step(rng, x, target):
    """One CGMH insertion or deletion, accepted with the full Hastings ratio."""
    # TODO: choose the move, the position (and token), compute log alpha with every factor, accept.
    return np.array(x)


# %% [markdown]
# ## Autograding

# %%
if __name__ == "__main__":
    BUDGET = 20 if os.environ.get("CI") else 60
    report = check_step(insert_delete_step, kind="cgmh", target="bigram-keywords", budget=BUDGET)
    print(report.format())
    print("exercise 3:", "PASSED" if report.passed else "NOT YET")
