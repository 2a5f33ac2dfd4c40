"""Text metrics against independent implementations: sacrebleu and NLTK number for number, Texygen's loop,
bert-gen's notebook definitions of % unique n-grams, distinct-n and perplexity from their definitions.

No statistics here: every check is deterministic (fixed-seed random corpora, exact or float-rounding
comparisons). NLTK is a test-only dependency (the dev extra); the package never imports it.
"""

import json
import math
import warnings
from collections import Counter

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


# ============================================================================ NLTK, Texygen, the notebook
nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")

EXACT = {"rel": 1e-12, "abs": 0.0}  # NLTK's own float formula, reproduced: equal up to the x100


def nltk_corpus_bleu(list_of_references, hypotheses, max_order=4, smoothing_function=None):
    """NLTK's corpus_bleu in [0, 100], its warnings (zero-count orders) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weights = (1.0 / max_order,) * max_order
        return 100 * nltk_bleu.corpus_bleu(list_of_references, hypotheses, weights, smoothing_function)


def random_corpus(rng, count, vocabulary=6, max_length=9):
    """Token lists over a tiny vocabulary (matches of every order and misses), lengths 0..max_length-1
    (so shorter than 4 often), a few duplicated sentences and one with words found nowhere else."""
    words = WORDS[:vocabulary]
    corpus = [list(rng.choice(words, rng.integers(0, max_length))) for _ in range(count)]
    for _ in range(rng.integers(0, 3)):
        corpus[rng.integers(count)] = list(corpus[rng.integers(count)])  # a duplicate
    if rng.random() < 0.5:
        corpus[rng.integers(count)] = ["zzz", "yyy", "xxx"][: rng.integers(1, 4)]  # no unigram match
    return corpus


def leave_one_out(texts):
    return [[s for j, s in enumerate(texts) if j != i] for i in range(len(texts))]


@pytest.mark.parametrize("max_order", [4, 2, 3])
def test_wang_cho_self_bleu_equals_nltk_corpus_bleu(max_order):
    rng = np.random.default_rng(100 + max_order)
    for _ in range(150):
        texts = random_corpus(rng, int(rng.integers(2, 9)))
        if not any(texts):
            continue
        # bert-gen's notebook: corpus_bleu([[s for j, s in enumerate(sents) if j != i] ...], sents)
        want = nltk_corpus_bleu(leave_one_out(texts), texts, max_order)
        assert metrics.self_bleu(texts, "wang-cho", max_order=max_order) == pytest.approx(want, **EXACT)


def test_wang_cho_corner_cases_against_nltk():
    cases = [
        [["a"], ["a"]],  # duplicates only: BLEU 100 * BP
        [["a", "b"], ["c"], ["d", "e", "f"]],  # no unigram matches at all: 0
        [["a", "b", "c", "d", "e"], ["a", "b", "c", "d"], ["a", "b", "c", "d", "e", "f"]],  # length ties 4 / 6
        [["a", "b", "c"], ["a", "b", "c"], ["a", "x"]],  # shorter than 4: NLTK's denominator of 1 per order
        [[], ["a", "b"], ["a", "b"]],  # an empty text
        [["a", "b", "a", "b", "a"], ["a", "b", "a"], ["b", "a", "b", "a", "b", "a"]],  # clipping by the top-2
    ]
    for texts in cases:
        want = nltk_corpus_bleu(leave_one_out(texts), texts)
        assert metrics.self_bleu(texts, "wang-cho") == pytest.approx(want, **EXACT), texts
    assert metrics.self_bleu(cases[1], "wang-cho") == 0.0
    assert 0 < metrics.self_bleu(cases[3], "wang-cho") < 1e-70  # NLTK's sys.float_info.min, not 0


@pytest.mark.parametrize("max_order", [4, 1, 3])
def test_reference_corpus_bleu_equals_nltk_corpus_bleu(max_order):
    rng = np.random.default_rng(200 + max_order)
    for _ in range(150):
        hypotheses = random_corpus(rng, int(rng.integers(1, 7)))
        references = random_corpus(rng, int(rng.integers(1, 7)))
        # Yu et al. / Wang & Cho: every hypothesis against all the references
        want = nltk_corpus_bleu([references] * len(hypotheses), hypotheses, max_order)
        got = metrics.reference_corpus_bleu(hypotheses, references, max_order=max_order)
        assert got == pytest.approx(want, **EXACT)


def test_reference_corpus_bleu_length_ties_go_to_the_shorter():
    references = [["a", "b", "c", "d"], ["a", "b", "c", "d", "e", "f"]]
    hypothesis = [["a", "b", "c", "d", "e"]]  # 4 and 6 equally close: 4 (no brevity penalty)
    want = nltk_corpus_bleu([references], hypothesis)
    assert metrics.reference_corpus_bleu(hypothesis, references) == pytest.approx(want, **EXACT)
    assert metrics.reference_corpus_bleu(hypothesis, references[::-1]) == pytest.approx(want, **EXACT)


@pytest.mark.parametrize("max_order", [4, 3])
def test_texygen_self_bleu_equals_texygens_loop(max_order):
    rng = np.random.default_rng(300 + max_order)
    smoothing = nltk_bleu.SmoothingFunction().method1
    weight = tuple(1.0 / max_order for _ in range(max_order))
    for _ in range(80):
        reference = random_corpus(rng, int(rng.integers(2, 9)))
        # Texygen utils/metrics/SelfBleu.py, get_bleu_parallel (without the Pool): each against the others
        score, count = 0.0, 0
        for index in range(len(reference)):
            hypothesis = reference[index]
            other = reference[:index] + reference[index + 1 :]
            score += nltk_bleu.sentence_bleu(other, hypothesis, weight, smoothing_function=smoothing)
            count += 1
        got = metrics.self_bleu(reference, "texygen", max_order=max_order)
        assert got == pytest.approx(100 * score / count, rel=1e-12, abs=1e-13)


def test_sacrebleu_self_bleu_equals_mean_sacrebleu_sentence_bleu_with_duplicates():
    rng = np.random.default_rng(6)
    for _ in range(30):
        texts = [" ".join(t) for t in random_corpus(rng, int(rng.integers(2, 8)))]
        want = np.mean([sacrebleu.sentence_bleu(t, texts[:i] + texts[i + 1 :], tokenize="none").score
                        for i, t in enumerate(texts)])
        assert metrics.self_bleu(texts, "sacrebleu") == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("tokenize", ["none", "13a"])
def test_reference_corpus_bleu_sacrebleu_convention_equals_sacrebleu_streams(tokenize):
    rng = np.random.default_rng(7)
    punctuation = WORDS[:6] + [",", ".", "king's", "(lord)"]
    for _ in range(40):
        hypotheses = [" ".join(rng.choice(punctuation, rng.integers(1, 9))) for _ in range(rng.integers(1, 5))]
        references = [" ".join(rng.choice(punctuation, rng.integers(1, 9))) for _ in range(rng.integers(1, 5))]
        # the corpus as that many reference streams, each repeating one reference for every hypothesis
        streams = [[reference] * len(hypotheses) for reference in references]
        want = sacrebleu.corpus_bleu(hypotheses, streams, tokenize=tokenize).score
        ours = "whitespace" if tokenize == "none" else "13a"
        got = metrics.reference_corpus_bleu(hypotheses, references, convention="sacrebleu", tokenize=ours)
        assert got == pytest.approx(want, abs=1e-9)


def test_lowercase_applies_to_strings_and_token_lists():
    texts = ["The King", "the king", ["THE", "KING"]]
    assert metrics.tokenize_texts(texts, lowercase=True) == [["the", "king"]] * 3
    assert metrics.self_bleu(texts, "wang-cho", max_order=2, lowercase=True) == pytest.approx(100.0)


# bert-gen's notebook (bert-babble.ipynb), as written there
def notebook_ref_unique_ngrams(preds, refs, n):
    pred_ngrams = Counter(tuple(s[i : i + n]) for s in preds for i in range(len(s) - n + 1))
    ref_ngrams = Counter(tuple(s[i : i + n]) for s in refs for i in range(len(s) - n + 1))
    return len(set(pred_ngrams.keys()).difference(set(ref_ngrams.keys()))) / sum(pred_ngrams.values())


def notebook_self_unique_ngrams(preds, n):
    pred_ngrams = Counter(tuple(s[i : i + n]) for s in preds for i in range(len(s) - n + 1))
    return len([k for k, v in pred_ngrams.items() if v == 1]) / sum(pred_ngrams.values())


def test_unique_ngrams_follow_the_notebook():
    rng = np.random.default_rng(8)
    for _ in range(60):
        preds = random_corpus(rng, int(rng.integers(1, 8)), vocabulary=8)
        refs = random_corpus(rng, int(rng.integers(1, 8)), vocabulary=8)
        for n in range(1, 5):
            if sum(max(len(s) - n + 1, 0) for s in preds) == 0:
                assert math.isnan(metrics.unique_ngrams(preds, n))  # 0 / 0: said, not guessed
                continue
            assert metrics.unique_ngrams(preds, n) == notebook_self_unique_ngrams(preds, n)
            assert metrics.unique_ngrams(preds, n, refs) == notebook_ref_unique_ngrams(preds, refs, n)


def test_mean_length_and_distinct_with_tokenize():
    assert metrics.mean_length(["a b c", "d", ""]) == pytest.approx(4 / 3)
    assert metrics.distinct_n(["king, queen"], 1, tokenize="13a") == 1.0  # king , queen
    assert metrics.tokenize_texts(["king, queen."], tokenize="13a") == [["king", ",", "queen", "."]]


class _UniformEncodingLM(_UniformLM):
    """The uniform LM with a toy tokenizer: one id per word, id 0 special ([UNK]), at most 3 tokens."""

    special_token_ids = frozenset({0})
    max_length = 3

    def encode(self, texts):
        rows = [[0 if w == "unk" else 1 + len(w) for w in text.split()] for text in texts]
        ids = np.full((len(rows), max(map(len, rows))), PAD)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        return ids


def test_evaluate_reports_each_metric_as_the_functions_compute_it():
    rng = np.random.default_rng(9)
    texts = [" ".join(t) for t in random_corpus(rng, 12)] + ["unk a", "a b c d e", "a b"]
    references = {"one": [" ".join(t) for t in random_corpus(rng, 9)], "two": ["a b c", "b c d"]}
    result = metrics.evaluate(texts, references, causal_lm=_UniformEncodingLM(5), model_name="uniform",
                              self_bleu_conventions=("wang-cho", "texygen", "sacrebleu"))
    assert result["num_texts"] == len(texts) and result["mean_length"] == metrics.mean_length(texts)
    assert result["distinct"] == {"1": metrics.distinct_n(texts, 1), "2": metrics.distinct_n(texts, 2)}
    for convention in ("wang-cho", "texygen", "sacrebleu"):
        assert result["self_bleu"][convention] == metrics.self_bleu(texts, convention)
    for name, corpus in references.items():
        assert result["bleu"][name] == metrics.reference_corpus_bleu(texts, corpus)
        for n in "1234":
            assert result["unique_ngrams"][name][n] == metrics.unique_ngrams(texts, int(n), corpus)
    for n in "1234":
        assert result["unique_ngrams"]["self"][n] == metrics.unique_ngrams(texts, int(n))
    # perplexity of the scorable texts only: not "unk a" (a special id), none longer than 3 tokens
    lengths = [len(t.split()) for t in texts]
    scored = [n for t, n in zip(texts, lengths) if 0 < n <= 3 and "unk" not in t.split()]
    assert result["perplexity"] == {"value": pytest.approx(5.0), "model": "uniform", "num_scored": len(scored),
                                    "num_skipped": len(texts) - len(scored)}
    assert json.loads(json.dumps(result))["bleu_convention"] == "nltk"


def test_perplexity_scores_rows_in_batches_of_batch_size():
    batch = np.array([[1, 2, 3, PAD], [4, PAD, PAD, PAD], [5, 6, PAD, PAD]])

    class Varied:
        def sequence_log_probs(self, token_ids):
            return -np.arange(1, 1 + len(token_ids)) * (np.asarray(token_ids) != PAD).sum(axis=1)

    all_at_once = metrics.perplexity(Varied(), batch)
    # rows 1..3 scored alone give -1 * length each
    assert metrics.perplexity(Varied(), batch, batch_size=1) == pytest.approx(math.exp(6 / 9))
    assert all_at_once != metrics.perplexity(Varied(), batch, batch_size=1)  # the fake depends on the batch


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: metrics.reference_corpus_bleu(["a b"], []), ValueError, "reference_corpus is empty"),
        (lambda: metrics.reference_corpus_bleu([], ["a"]), ValueError, "hypotheses is empty"),
        (lambda: metrics.reference_corpus_bleu(["a"], ["a"], convention="texygen"), ValueError,
         "convention must be one of"),
        (lambda: metrics.reference_corpus_bleu("a b", ["a"]), TypeError, "hypotheses must be a list of texts"),
        (lambda: metrics.self_bleu(["a", "b"], "wang"), ValueError, "convention must be one of"),
        (lambda: metrics.self_bleu(["a", "b"], "wang-cho", smooth="exp"), ValueError, "convention='sacrebleu'"),
        (lambda: metrics.self_bleu(["a", "b"], "texygen", max_order=0), ValueError, "max_order"),
        (lambda: metrics.self_bleu(["a"], "wang-cho"), ValueError, "at least 2"),
        (lambda: metrics.self_bleu(["a", 3], "texygen"), TypeError, "texts must hold strings"),
        (lambda: metrics.self_bleu(["a", "b"], tokenize="spaces"), ValueError, "tokenize must be one of"),
        (lambda: metrics.unique_ngrams(["a b"], 0), ValueError, "n must be an int"),
        (lambda: metrics.unique_ngrams(["a b"], 2, []), ValueError, "reference_corpus is empty"),
        (lambda: metrics.evaluate(["a b"]), ValueError, "at least 2"),
        (lambda: metrics.evaluate(["a", "b"], ["a"]), TypeError, "references must map a name"),
        (lambda: metrics.evaluate(["a", "b"], {"r": []}), ValueError, r"references\['r'\] is empty"),
        (lambda: metrics.evaluate(["a", "b"], {"self": ["a"]}), ValueError, "'self' names the unique n-grams"),
        (lambda: metrics.evaluate(["a", "b"], self_bleu_conventions=("nltk",)), ValueError, "self_bleu_conventions"),
        (lambda: metrics.evaluate(["a", "b"], bleu_convention="texygen"), ValueError, "bleu_convention"),
        (lambda: metrics.perplexity(_UniformLM(3), np.zeros((1, 2), dtype=int), batch_size=0), ValueError,
         "batch_size"),
    ],
)
def test_bad_input_of_the_new_metrics(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_package_does_not_import_nltk():
    import subprocess
    import sys

    code = "import sys, textsampling.metrics, textsampling.cli.evaluate; print('nltk' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() \
        == "False"
