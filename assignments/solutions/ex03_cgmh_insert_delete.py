"""Solution of exercise 3: the CGMH insert/delete pair with the full Hastings ratio."""

import numpy as np

PAD = -1


def deletable_positions(tokens, keywords):
    return [i for i, token in enumerate(tokens) if token not in keywords or tokens.count(token) >= 2]


def padded(tokens, length):
    out = np.full(length, PAD, dtype=np.int64)
    out[: len(tokens)] = tokens
    return out


def insert_delete_step(rng, x, target):
    """Insertion (slot uniform in n + 1, token uniform in V) or deletion (uniform deletable position)."""
    x = np.array(x)
    keywords = set(target.keywords)
    tokens = [int(t) for t in x if t != PAD]
    n, vocab = len(tokens), target.vocab_size
    if rng.random() < 0.5:  # insertion
        if n == target.length:
            return x
        slot = int(rng.integers(n + 1))
        token = int(rng.integers(vocab))
        new_tokens = tokens[:slot] + [token] + tokens[slot:]
        # forward: 1/2 * 1/(n+1) * 1/V; reverse: 1/2 * 1/m(y) (the inserted position is deletable,
        # since x already held every keyword).
        log_q_forward = -np.log(n + 1) - np.log(vocab)
        log_q_reverse = -np.log(len(deletable_positions(new_tokens, keywords)))
    else:  # deletion
        positions = deletable_positions(tokens, keywords)
        if n == 1 or not positions:
            return x
        position = positions[int(rng.integers(len(positions)))]
        new_tokens = tokens[:position] + tokens[position + 1 :]
        # forward: 1/2 * 1/m(x); reverse: 1/2 * 1/n (slots of the shorter sentence) * 1/V.
        log_q_forward = -np.log(len(positions))
        log_q_reverse = -np.log(n) - np.log(vocab)
    y = padded(new_tokens, target.length)
    log_prob_x, log_prob_y = target.log_prob(np.stack([x, y]))
    if np.log(rng.random()) < log_prob_y - log_prob_x + log_q_reverse - log_q_forward:
        return y
    return x
