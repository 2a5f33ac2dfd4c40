"""Solution of exercise 1: a Metropolis–Hastings step with an uneven single-site proposal."""

import numpy as np

TOKEN_PROBABILITIES = np.array([0.6, 0.3, 0.1])


def mh_step(rng, x, target):
    """One MH step: change one uniform position to a token from TOKEN_PROBABILITIES, accept with MH."""
    x = np.array(x)
    log_r = np.log(TOKEN_PROBABILITIES[: target.vocab_size] / TOKEN_PROBABILITIES[: target.vocab_size].sum())
    position = rng.integers(target.length)
    token = rng.choice(target.vocab_size, p=np.exp(log_r))
    y = x.copy()
    y[position] = token
    # q(y | x) = r(b) / L and q(x | y) = r(a) / L: the Hastings term is log r(a) - log r(b).
    log_q_ratio = log_r[x[position]] - log_r[token]
    log_prob_x, log_prob_y = target.log_prob(np.stack([x, y]))
    if np.log(rng.random()) < log_prob_y - log_prob_x + log_q_ratio:
        return y
    return x
