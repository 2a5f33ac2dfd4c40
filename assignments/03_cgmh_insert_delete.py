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
# tokens, right-padded with `PAD = -1`.
#
# The target is the **sentence law** $\pi(x) = \rho(x)\,\chi(x) / Z$: $\rho(x) = p(x)^\gamma\,
# \mathrm{sim}(x)$ scores the sentence, and $\chi(x) = 1$ when **every keyword** of `target.keywords`
# occurs somewhere in $x$ — in any order, at any position, once or more — else $\chi(x) = 0$.
# No position is special: a keyword may move, and a second copy of it is an ordinary token.
#
# * With probability 1/2 propose an **insertion**: a slot uniform among the `n + 1` slots of the
#   `n`-token sentence, a token uniform among the `V = target.vocab_size` tokens. Impossible when
#   `n = L`: then return `x`.
# * Otherwise propose a **deletion**: a position uniform among the `m(x)` *deletable* positions. A token
#   may be deleted unless it is the only remaining occurrence of a keyword (so every sentence keeps
#   $\chi = 1$). Impossible when `n = 1` or `m(x) = 0`: return `x`.
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
# `target.log_prob(states)` returns $\log\rho(x) + \log\chi(x)$ for `(N, L)` padded sentences
# (`-inf` when a keyword is missing).

# %%
import numpy as np

PAD = -1


def deletable_positions(tokens, keywords):
    """Positions of ``tokens`` (a list) that may be deleted: all but the only remaining occurrence of a keyword."""
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
#
# Run this cell (or `python autograder.py 03_cgmh_insert_delete.py` in a terminal; exit status 0 passed, 1
# not yet). The autograder calls your function a few thousand times and checks, in order: that every result
# is a state of the target; that it is one step of **the requested algorithm** (return `x`, insert one token
# or delete one token); that the moves have the exact probabilities of that algorithm — if not, it names the
# usual mistake they fit, or shows the moves that are most off with each factor of the exact ratio; and that
# the target is kept and reached (`textsampling.testing.conformance`, the `textsampling check` command; see
# `book/conformance.md`). A correct step fails with probability at most 1e-4; the seed is fixed, so the
# verdict is reproducible.

# %%
if __name__ == "__main__":
    from autograder import finish, grade

    finish(grade(3, insert_delete_step))
