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
# # Exercise 2 — a Gibbs sweep for a masked language model
#
# **Task.** Write one *systematic-scan* Gibbs sweep, `mlm_gibbs_sweep(rng, x, lm)`: for
# `i = 0, 1, ..., L-1` in turn, redraw `x[i]` from the masked LM's conditional
# $p(x_i = v \mid x_{-i})$, **given the tokens already rewritten earlier in this sweep**, and return
# the new `(L,)` int array.
#
# `lm.masked_log_probs(token_ids, positions)` takes an `(N, L)` int array and an `(N,)` int array of
# positions and returns `(N, lm.vocab_size)` normalised log-probabilities of the token at each position.
# **Put `lm.mask_token_id` at that position of the row you pass first**: the model reads the slot, and
# shown the current token it leans toward it (as BERT does). Special ids (END, [MASK]) come back as
# `-inf`: they must never be written.
# The `lm` here is the exact bigram oracle, so a correct sweep samples the bigram's joint exactly
# (part 3 of the series, kexue.fm/archives/8119; Wang & Cho 2019, arXiv:1902.04094).
#
# Hint: draw a token from log-probabilities `row` by the inverse CDF of one uniform `u`:
# the first `v` whose cumulative probability exceeds `u`.

# %%
import numpy as np


# %%
def mlm_gibbs_sweep(rng, x, lm):
    """One systematic Gibbs sweep over the positions of x, from lm's masked conditionals."""
    # TODO: for each position, ask lm for its conditional given the current x (with [MASK] at that
    # position), draw a token, write it.
    return np.array(x)


# %% [markdown]
# ## Autograding
#
# Run this cell (or `python autograder.py 02_mlm_gibbs_sweep.py` in a terminal; exit status 0 passed, 1 not
# yet). The autograder calls your function a few thousand times and checks, in order: that every result is a
# state of the target; that it is one step of **the requested algorithm** (draw the tokens from
# `lm.masked_log_probs`, position 0, 1, ... in turn); that the moves have the exact probabilities of that
# algorithm — if not, it names the usual mistake they fit, or shows the moves that are most off with each
# factor of the exact ratio; and that the target is kept and reached (`textsampling.testing.conformance`,
# the `textsampling check` command; see `book/conformance.md`). A correct step fails with probability at
# most 1e-4; the seed is fixed, so the verdict is reproducible.

# %%
if __name__ == "__main__":
    from autograder import finish, grade

    finish(grade(2, mlm_gibbs_sweep))
