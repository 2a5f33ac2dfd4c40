"""Decoding with a KV cache: the cached next-token rows are the full-prefix rows, and greedy equals ``generate``.

The cache changes only the order of float operations inside attention, so rows agree to float32 rounding
(not bit for bit); greedy decoding, whose choices are far from ties on this model, is compared token for
token with ``transformers``' own ``generate`` (which uses a KV cache too) and with the uncached path.
"""

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from textsampling.lm.loading import load_causal_lm  # noqa: E402
from textsampling.lm.tokens import PAD  # noqa: E402
from textsampling.torch import decoding  # noqa: E402
from textsampling.torch.randomness import counter_uniforms  # noqa: E402


@pytest.fixture(scope="module")
def shakespeare_causal():
    return load_causal_lm("tiny-shakespeare")


def _uniforms(lm, seed: int, batch: int):
    return counter_uniforms(seed, torch.arange(batch), 0, lm.max_length, dtype=torch.float64)  # (B, L)


@pytest.mark.parametrize("seed", [0, 1])
def test_cached_rows_equal_the_full_prefix_rows_along_decoded_sentences(shakespeare_causal, seed):
    lm = shakespeare_causal
    result = decoding.decode(_uniforms(lm, seed, 6), lm, use_cache=False, top_k=20)
    tokens = result.tokens  # (6, L), PAD after each row's end
    cache, compared = None, 0
    for t in range(tokens.shape[1]):
        cached, cache = lm.next_token_log_probs_cached_torch(tokens[:, max(t - 1, 0) : t], cache)  # (6, V)
        prefixes = tokens.clone()
        prefixes[:, t:] = PAD
        full = lm.next_token_log_probs_torch(prefixes)  # (6, V)
        live = (tokens[:, :t] != PAD).all(dim=1)  # rows still writing: their rows are read
        if not bool(live.any()):
            break
        np.testing.assert_array_equal(torch.isinf(cached[live]).numpy(), torch.isinf(full[live]).numpy())
        finite = torch.isfinite(full[live])
        # float32 log-probabilities of a few units: rounding-level agreement (measured: below 1e-5)
        np.testing.assert_allclose(cached[live][finite].numpy(), full[live][finite].numpy(), rtol=0, atol=1e-4)
        compared += int(live.sum())
    assert compared > 6  # several positions of several rows were compared


def test_cached_prefixes_refuse_to_grow_past_the_model_maximum(shakespeare_causal):
    lm = shakespeare_causal
    start = torch.full((2, lm.max_length), 7, dtype=torch.int64)  # BOS + max_length tokens: the whole context
    _, cache = lm.next_token_log_probs_cached_torch(start)
    with pytest.raises(ValueError, match="new_tokens.*maximum"):
        lm.next_token_log_probs_cached_torch(torch.full((2, 1), 7, dtype=torch.int64), cache)


@pytest.mark.parametrize("batch", [1, 3])
def test_cached_greedy_decoding_equals_transformers_generate_and_the_uncached_path(shakespeare_causal, batch):
    lm = shakespeare_causal
    uniforms = _uniforms(lm, 0, batch)
    cached = decoding.decode(uniforms, lm, greedy=True, use_cache=True)
    uncached = decoding.decode(uniforms, lm, greedy=True, use_cache=False)
    np.testing.assert_array_equal(cached.tokens.numpy(), uncached.tokens.numpy())
    np.testing.assert_array_equal(cached.ended.numpy(), uncached.ended.numpy())
    suppressed = sorted(set(lm.special_token_ids) - {lm.end_token_id})  # our decoders never produce them
    start = torch.full((batch, 1), lm.bos_token_id, dtype=torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # generate's notes on its own defaults
        generated = lm.model.generate(start, max_new_tokens=lm.max_length, do_sample=False, num_beams=1,
                                      eos_token_id=lm.end_token_id, pad_token_id=lm.end_token_id,
                                      suppress_tokens=suppressed)
    for row, ours in zip(generated[:, 1:].tolist(), cached.tokens.tolist()):
        theirs = row[: row.index(lm.end_token_id)] if lm.end_token_id in row else row
        assert [t for t in ours if t != PAD] == theirs


def test_a_model_without_a_cache_is_decoded_from_full_prefixes_as_before():
    """The oracle has no cached method: ``use_cache`` changes nothing there (same tokens both ways)."""
    from textsampling.lm.oracle import BigramOracle
    from textsampling.targets.sequences import BigramLM

    rng = np.random.default_rng(5)
    oracle = BigramOracle(BigramLM(rng.normal(size=4), rng.normal(size=(4, 5)), 4))
    assert not hasattr(oracle, "next_token_log_probs_cached_torch")
    uniforms = counter_uniforms(3, torch.arange(50), 0, oracle.max_length, dtype=torch.float64)
    with_cache = decoding.decode(uniforms, oracle, use_cache=True)
    without = decoding.decode(uniforms, oracle, use_cache=False)
    np.testing.assert_array_equal(with_cache.tokens.numpy(), without.tokens.numpy())
