"""Text metrics: BLEU against sacrebleu number for number, distinct-n and perplexity from their definitions.

No statistics here: every check is deterministic (a fixed-seed random corpus, exact or float-rounding
comparisons).
"""

import math

import numpy as np
import pytest

from textsampling import metrics
from textsampling.targets.base import PAD

sacrebleu = pytest.importorskip("sacrebleu")

WORDS = "the king crown queen sword of a and to my lord is fair foul night".split()


def random_texts(rng, count, low=0, high=12):
    """Short texts over a small vocabulary, so n-gram matches of every order (and misses) occur."""
    return [" ".join(rng.choice(WORDS[:8], rng.integers(low, high))) for _ in range(count)]


@pytest.mark.parametrize("smooth", ["none", "exp"])
@pytest.mark.parametrize("num_references", [1, 3])
def test_corpus_bleu_matches_sacrebleu(smooth, num_references):
    rng = np.random.default_rng(10 + num_references)
    for _ in range(20):
        hypotheses = random_texts(rng, 6, low=1)
        streams = [random_texts(rng, 6, low=1) for _ in range(num_references)]  # sacrebleu: one list per stream
        want = sacrebleu.corpus_bleu(hypotheses, streams, tokenize="none", smooth_method=smooth).score
        per_hypothesis = [list(refs) for refs in zip(*streams)]
        assert metrics.corpus_bleu(hypotheses, per_hypothesis, smooth=smooth) == pytest.approx(want, abs=1e-9)


def test_corpus_bleu_flat_references_and_perfect_match():
    texts = ["the king is fair", "a sword of the lord is foul"]
    assert metrics.corpus_bleu(texts, texts) == pytest.approx(100.0)
    assert metrics.corpus_bleu(["x y z w"], ["a b c d"]) == 0.0


@pytest.mark.parametrize("effective_order", [True, False])
def test_sentence_bleu_matches_sacrebleu(effective_order):
    rng = np.random.default_rng(3)
    bleu = sacrebleu.metrics.BLEU(tokenize="none", smooth_method="exp", effective_order=effective_order)
    for _ in range(60):
        hypothesis = random_texts(rng, 1, low=1, high=7)[0]  # short: orders longer than the text occur
        references = random_texts(rng, 3, low=1, high=9)
        want = bleu.sentence_score(hypothesis, references).score
        got = metrics.sentence_bleu(hypothesis, references, effective_order=effective_order)
        assert got == pytest.approx(want, abs=1e-9)


def test_self_bleu_is_mean_sentence_bleu_against_the_others():
    rng = np.random.default_rng(4)
    texts = random_texts(rng, 8, low=2)
    want = np.mean(
        [sacrebleu.sentence_bleu(t, texts[:i] + texts[i + 1 :], tokenize="none").score for i, t in enumerate(texts)]
    )
    assert metrics.self_bleu(texts) == pytest.approx(want, abs=1e-9)
    assert metrics.self_bleu(["the king is fair"] * 3) == pytest.approx(100.0)  # identical samples


def test_distinct_n_from_the_definition():
    texts = ["the king the king", "the queen"]
    assert metrics.distinct_n(texts, 1) == pytest.approx(3 / 6)  # {the, king, queen} of 6 tokens
    assert metrics.distinct_n(texts, 2) == pytest.approx(3 / 4)  # {the king, king the, the queen} of 4
    assert metrics.distinct_n(texts, 5) == 0.0  # no 5-gram at all
    assert metrics.distinct_n([["a", "b"], ["a", "c"]], 1) == pytest.approx(3 / 4)  # token lists work too


class _UniformLM:
    """A causal LM giving each of V outcomes (content + END) probability 1/V: perplexity is V."""

    def __init__(self, num_outcomes):
        self.num_outcomes = num_outcomes

    def sequence_log_probs(self, token_ids):
        lengths = (np.asarray(token_ids) != PAD).sum(axis=1)
        return -(lengths + 1) * math.log(self.num_outcomes)


def test_perplexity_of_a_uniform_model_is_its_vocabulary_size():
    batch = np.array([[1, 2, 3, PAD], [4, PAD, PAD, PAD], [PAD, PAD, PAD, PAD]])
    assert metrics.perplexity(_UniformLM(37), batch) == pytest.approx(37.0)


def test_perplexity_counts_end_as_a_token():
    class Fixed:
        def sequence_log_probs(self, token_ids):
            return np.array([-6.0])

    # one sentence of 2 tokens + END: exp(6 / 3)
    assert metrics.perplexity(Fixed(), np.array([[5, 7]])) == pytest.approx(math.exp(2.0))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: metrics.corpus_bleu(["a"], ["a", "b"]), ValueError, "one entry per hypothesis"),
        (lambda: metrics.corpus_bleu([], []), ValueError, "hypotheses is empty"),
        (lambda: metrics.corpus_bleu([1], ["a"]), TypeError, "hypotheses must hold strings"),
        (lambda: metrics.corpus_bleu(["a"], ["a"], smooth="floor"), ValueError, "smooth must be one of"),
        (lambda: metrics.corpus_bleu(["a"], ["a"], max_order=0), ValueError, "max_order"),
        (lambda: metrics.self_bleu(["only one"]), ValueError, "at least 2"),
        (lambda: metrics.distinct_n(["a b"], 0), ValueError, "n must be an int >= 1"),
        (lambda: metrics.perplexity(_UniformLM(3), np.zeros(3, dtype=int)), ValueError, r"\(N, L\)"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
