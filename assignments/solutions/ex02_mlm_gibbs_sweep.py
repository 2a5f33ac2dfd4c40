"""Solution of exercise 2: a systematic Gibbs sweep from a masked language model's conditionals."""

import numpy as np


def mlm_gibbs_sweep(rng, x, lm):
    """Redraw x[0], x[1], ... in turn from lm's masked conditional given the current sequence."""
    x = np.array(x)
    for position in range(x.shape[0]):
        query = x.copy()
        query[position] = lm.mask_token_id  # the model reads this slot: ask with [MASK] there
        row = lm.masked_log_probs(query[None], np.array([position]))[0]
        probabilities = np.exp(row - row.max())  # special ids are -inf: probability exactly 0
        cumulative = np.cumsum(probabilities)
        # Inverse CDF: the first token whose cumulative weight exceeds u * total.
        x[position] = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return x
