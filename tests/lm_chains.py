"""Shared fixtures of the language-model twin tests: the bigram oracle and starting sentences."""

import numpy as np

from textsampling.lm.oracle import BigramOracle
from textsampling.reference import cgmh
from textsampling.targets import PAD, BigramLM


def oracle(seed=2, vocab_size=5, max_length=5):
    """A random bigram oracle with one zero-probability transition (1 -> 3) on purpose."""
    rng = np.random.default_rng(seed)
    transition = rng.normal(size=(vocab_size, vocab_size + 1))
    transition[1, 3] = -np.inf
    return BigramOracle(BigramLM(rng.normal(size=vocab_size), transition, max_length))


def starts(model, num_chains, seed=0):
    """PAD-padded starts of lengths 2..max, ``(num_chains, L)``: chains of different lengths in one batch."""
    rng = np.random.default_rng(seed)
    out = np.full((num_chains, model.max_length), PAD, dtype=np.int64)
    for c in range(num_chains):
        length = 2 + c % (model.max_length - 1)
        out[c, :length] = rng.integers(0, model.num_tokens, size=length)
    return out


def keyword_starts(config, num_chains, seed=0):
    """One start per chain, lengths 2..max, each holding the config's keywords with positive target (by rejection)."""
    rng = np.random.default_rng(seed)
    width, out = config.max_length, []
    while len(out) < num_chains:
        length = 2 + len(out) % (width - 1)
        x = np.full(width, PAD, dtype=np.int64)
        x[:length] = rng.integers(0, config.model.num_tokens, size=length)
        if cgmh.satisfies_keywords(config.keywords, x, config.continuation_tokens)[0] and np.isfinite(
            cgmh.log_target(config, x)[0]
        ):
            out.append(x)
    return np.array(out)
