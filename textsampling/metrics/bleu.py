r"""BLEU in the conventions the papers used: sacrebleu's, NLTK's (Wang & Cho, Yu et al.) and Texygen's.

BLEU (Papineni et al. 2002, "BLEU: a method for automatic evaluation of machine translation"), for
hypotheses :math:`h` each with a set of references:

.. math::
    \mathrm{BLEU} = 100 \cdot \mathrm{BP} \cdot \exp\Big(\sum_{n=1}^{N} w_n \log p_n\Big), \qquad
    p_n = \frac{\sum_h \sum_{g \in h,\ |g| = n} \min(c_h(g), \max_r c_r(g))}{\sum_h d_n(h)}, \qquad
    \mathrm{BP} = \min(1, e^{1 - R / H}),

counts clipped by the largest count in any one reference, :math:`H` the total hypothesis length and
:math:`R` the sum of the closest reference lengths (the shorter on ties), :math:`w_n = 1/N`. Corpus
BLEU pools the counts over the hypotheses before the ratio; sentence BLEU has one hypothesis. The
conventions differ in the details, each matched here number for number (``tests/test_metrics.py``):

``sacrebleu`` (Post 2018)
    :math:`d_n(h) = \max(|h| - n + 1, 0)`; a zero precision makes BLEU 0 unless smoothed (``exp``:
    the k-th order without a match gets :math:`1 / (2^k d_n)`); ``effective_order`` drops orders
    longer than the hypothesis. :func:`corpus_bleu`, :func:`sentence_bleu`.
``nltk`` (``nltk.translate.bleu_score.corpus_bleu``, no smoothing)
    :math:`d_n(h) = \max(1, |h| - n + 1)` (a hypothesis shorter than n still counts 1); BLEU is 0
    when no unigram matches; an order with no match (but some unigram match) gets precision
    ``sys.float_info.min`` (so BLEU is about :math:`10^{-77}`, not 0); the weighted logs are summed
    with ``math.fsum``.
``texygen`` (Zhu et al. 2018): NLTK's sentence BLEU with ``SmoothingFunction().method1``
    (an order with no match gets precision :math:`0.1 / d_n`).

Against a reference corpus (:func:`reference_corpus_bleu`; Yu et al. 2017, SeqGAN; Wang & Cho 2019):
every hypothesis has *all* sentences of the corpus as its references.

Self-BLEU (:func:`self_bleu`): each text against all the others. ``wang-cho``: NLTK corpus BLEU of
every text against the rest (bert-gen's notebook); ``texygen``: the mean of NLTK method1 sentence BLEU
of every text against the rest (Zhu et al. 2018); ``sacrebleu``: the mean of sacrebleu's sentence BLEU
(exp smoothing, effective order) against the rest. High self-BLEU = the texts repeat each other.

Speed: every n-gram is counted once. Against a shared corpus, the clipping counts
:math:`\max_r c_r(g)` are one dictionary; leaving text :math:`i` out, the maximum over the others is
the top count of :math:`g` unless :math:`i` alone holds it, then the second — so each keeps the top
two counts and how many texts hold the top one. The closest reference length comes from the sorted
distinct lengths (and, leaving one out, their multiplicities). Statistics are integers; the float
formula comes once at the end. 1,000 texts x 1,000 references take well under a second
(``benchmarks/bench_metrics.py``).
"""

from __future__ import annotations

import bisect
import math
import sys
from collections import Counter

from textsampling._validation import check_int
from textsampling.metrics.tokens import ngram_counts, tokenize_texts

__all__ = [
    "SELF_BLEU_CONVENTIONS", "REFERENCE_BLEU_CONVENTIONS", "corpus_bleu", "sentence_bleu",
    "reference_corpus_bleu", "self_bleu", "bleu_statistics", "leave_one_out_statistics",
]

#: self-BLEU conventions: (the paper or tool, what it computes)
SELF_BLEU_CONVENTIONS = {
    "wang-cho": "Wang & Cho 2019 (bert-gen notebook): NLTK corpus BLEU of each text against all the others",
    "texygen": "Zhu et al. 2018 (Texygen SelfBleu): mean NLTK sentence BLEU, SmoothingFunction().method1, "
               "each text against all the others",
    "sacrebleu": "mean sacrebleu sentence BLEU (exp smoothing, effective order) of each text against all the others",
}
#: conventions of BLEU against a reference corpus
REFERENCE_BLEU_CONVENTIONS = {
    "nltk": "NLTK corpus_bleu, every text against the whole reference corpus (Yu et al. 2017; Wang & Cho 2019)",
    "sacrebleu": "sacrebleu corpus_bleu with its defaults (exp smoothing), every text against the whole reference "
                 "corpus",
}
_SMOOTH_METHODS = ("none", "exp")


# ----------------------------------------------------------------------------- statistics (integers)
def _closest_length(sorted_lengths, length: int) -> int:
    """The value of the sorted list nearest to ``length``, the shorter on ties (NLTK and sacrebleu)."""
    index = bisect.bisect_left(sorted_lengths, length)
    candidates = sorted_lengths[max(index - 1, 0) : index + 1]
    return min(candidates, key=lambda value: (abs(value - length), value))


def _sentence_statistics(counts, length, max_reference, max_order, closest):
    matches = [0] * max_order
    for gram, count in counts.items():
        matches[len(gram) - 1] += min(count, max_reference(gram, count))
    totals = [max(length - n + 1, 0) for n in range(1, max_order + 1)]
    return matches, totals, length, closest


def bleu_statistics(hypotheses, reference_corpus, max_order: int = 4) -> list:
    """Per-hypothesis BLEU statistics against a shared reference corpus (token lists in, integers out).

    Returns
    -------
    list of (matches, totals, hypothesis_length, closest_reference_length)
        ``matches[n-1]``: clipped n-gram matches (clipped by the largest count in any one reference);
        ``totals[n-1] = max(length - n + 1, 0)``.
    """
    max_reference = {}
    for reference in reference_corpus:
        for gram, count in ngram_counts(reference, max_order).items():
            if count > max_reference.get(gram, 0):
                max_reference[gram] = count
    lengths = sorted(set(map(len, reference_corpus)))
    return [
        _sentence_statistics(ngram_counts(hypothesis, max_order), len(hypothesis),
                             lambda gram, count: max_reference.get(gram, 0), max_order,
                             _closest_length(lengths, len(hypothesis)))
        for hypothesis in hypotheses
    ]


def leave_one_out_statistics(texts, max_order: int = 4) -> list:
    """Per-text BLEU statistics of each text against all the *other* texts (at least two token lists).

    The largest count of an n-gram among the others is the top count over all texts unless this text
    alone holds the top, then the second count: both kept, and how many texts hold the top.
    """
    counts = [ngram_counts(text, max_order) for text in texts]
    top, holders, second = {}, {}, {}
    for text_counts in counts:
        for gram, count in text_counts.items():
            best = top.get(gram, 0)
            if count > best:
                second[gram], top[gram], holders[gram] = best, count, 1
            elif count == best:
                holders[gram] += 1
            elif count > second.get(gram, 0):
                second[gram] = count

    def others_max(gram, count):
        return second.get(gram, 0) if count == top[gram] and holders[gram] == 1 else top[gram]

    multiplicity = Counter(map(len, texts))
    lengths = sorted(multiplicity)
    statistics = []
    for text, text_counts in zip(texts, counts):
        length = len(text)
        if multiplicity[length] > 1:
            closest = length  # another text has this very length
        else:
            others = lengths[: bisect.bisect_left(lengths, length)] + lengths[bisect.bisect_right(lengths, length):]
            closest = _closest_length(others, length)
        statistics.append(_sentence_statistics(text_counts, length, others_max, max_order, closest))
    return statistics


# ----------------------------------------------------------------------------- scores (one float formula)
def _nltk_score(matches, denominators, hypothesis_length, reference_length, max_order, smoothing) -> float:
    """NLTK's formula on pooled statistics, in [0, 1] (``denominators`` already ``max(1, .)`` per text)."""
    if matches[0] == 0:
        return 0.0  # no unigram match: NLTK returns 0 at once
    weight = 1.0 / max_order
    precisions = []
    for numerator, denominator in zip(matches, denominators):
        if numerator != 0:
            precisions.append(numerator / denominator)  # = float(Fraction): correctly rounded
        elif smoothing == "method1":
            precisions.append((numerator + 0.1) / denominator)  # SmoothingFunction().method1, epsilon 0.1
        else:
            precisions.append(sys.float_info.min)  # SmoothingFunction().method0: log of it ~ -708
    if hypothesis_length > reference_length:
        brevity = 1.0
    elif hypothesis_length == 0:
        brevity = 0.0
    else:
        brevity = math.exp(1 - reference_length / hypothesis_length)
    return brevity * math.exp(math.fsum(weight * math.log(p) for p in precisions if p > 0))


def _nltk_corpus(statistics, max_order, smoothing="method0") -> float:
    matches, denominators, hypothesis_length, reference_length = [0] * max_order, [0] * max_order, 0, 0
    for sentence_matches, totals, length, closest in statistics:
        for n in range(max_order):
            matches[n] += sentence_matches[n]
            denominators[n] += max(1, totals[n])  # NLTK: at least 1 per hypothesis and order
        hypothesis_length += length
        reference_length += closest
    return _nltk_score(matches, denominators, hypothesis_length, reference_length, max_order, smoothing)


def _sacrebleu_score(matches, totals, hypothesis_length, reference_length, max_order, smooth, effective_order):
    """sacrebleu's ``compute_bleu`` on pooled statistics, in [0, 100]."""
    if hypothesis_length == 0 or not any(matches):
        return 0.0  # no n-gram matches at all: 0 whatever the smoothing (as sacrebleu)
    log_precisions, smooth_power, order = [], 1.0, max_order
    for n in range(1, max_order + 1):
        if totals[n - 1] == 0:
            if effective_order:
                order = n - 1  # orders longer than the text are left out of the mean
            break
        if matches[n - 1] == 0:
            if smooth == "exp":
                smooth_power *= 2
                log_precisions.append(-math.log(smooth_power * totals[n - 1]))
            else:
                return 0.0  # a zero precision makes the geometric mean zero
        else:
            log_precisions.append(math.log(matches[n - 1] / totals[n - 1]))
    if len(log_precisions) < order or order == 0:
        return 0.0  # some order had no n-grams at all and effective_order is off
    brevity = 0.0 if hypothesis_length >= reference_length else 1.0 - reference_length / hypothesis_length
    return 100.0 * math.exp(brevity + sum(log_precisions[:order]) / order)


def _sacrebleu_corpus(statistics, max_order, smooth, effective_order) -> float:
    matches, totals, hypothesis_length, reference_length = [0] * max_order, [0] * max_order, 0, 0
    for sentence_matches, sentence_totals, length, closest in statistics:
        for n in range(max_order):
            matches[n] += sentence_matches[n]
            totals[n] += sentence_totals[n]
        hypothesis_length += length
        reference_length += closest
    return _sacrebleu_score(matches, totals, hypothesis_length, reference_length, max_order, smooth,
                            effective_order)


# ----------------------------------------------------------------------------- the public functions
def _check_options(max_order, smooth):
    max_order = check_int(max_order, "max_order", minimum=1)
    if smooth not in _SMOOTH_METHODS:
        raise ValueError(f"smooth must be one of {_SMOOTH_METHODS}, got {smooth!r}")
    return max_order


def _statistics(hypothesis, references, max_order: int):
    """Statistics of one hypothesis against its own references (sacrebleu's per-hypothesis layout)."""
    lengths = sorted(set(map(len, references)))
    max_reference = Counter()
    for reference in references:
        max_reference |= ngram_counts(reference, max_order)  # | keeps the larger count
    return _sentence_statistics(ngram_counts(hypothesis, max_order), len(hypothesis),
                                lambda gram, count: max_reference[gram], max_order,
                                _closest_length(lengths, len(hypothesis)))


def corpus_bleu(hypotheses, references, max_order: int = 4, smooth: str = "none", effective_order: bool = False,
                *, tokenize: str = "whitespace", lowercase: bool = False) -> float:
    """Corpus BLEU in [0, 100], sacrebleu's convention, each hypothesis with its own references.

    Parameters
    ----------
    hypotheses : sequence of str or of token lists
        The texts to score, ``H`` of them.
    references : sequence of sequences
        ``references[h]`` is the list of references of hypothesis ``h`` (at least one each). A flat list
        of ``H`` strings means one reference per hypothesis. (sacrebleu takes the transpose: streams.)
        For a reference *corpus* shared by every hypothesis use :func:`reference_corpus_bleu`.
    max_order : int, default 4
    smooth : {"none", "exp"}, default "none"
        sacrebleu's ``smooth_method``; corpus BLEU is usually unsmoothed.
    effective_order : bool, default False
        Drop orders longer than every hypothesis.
    tokenize, lowercase
        As in :func:`textsampling.metrics.tokens.tokenize_texts`.
    """
    max_order = _check_options(max_order, smooth)
    hypotheses = tokenize_texts(hypotheses, tokenize, lowercase, name="hypotheses")
    if isinstance(references, str) or len(references) != len(hypotheses):
        raise ValueError(f"references must hold one entry per hypothesis ({len(hypotheses)}), got "
                         f"{1 if isinstance(references, str) else len(references)}")
    if not hypotheses:
        raise ValueError("hypotheses is empty: give at least one text")
    statistics = []
    for hypothesis, refs in zip(hypotheses, references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError("references: every hypothesis needs at least one reference")
        statistics.append(_statistics(hypothesis, tokenize_texts(refs, tokenize, lowercase, "references"), max_order))
    return _sacrebleu_corpus(statistics, max_order, smooth, effective_order)


def sentence_bleu(hypothesis, references, max_order: int = 4, smooth: str = "exp", effective_order: bool = True,
                  *, tokenize: str = "whitespace", lowercase: bool = False) -> float:
    """Sentence BLEU in [0, 100] of one hypothesis against its references (sacrebleu's defaults)."""
    max_order = _check_options(max_order, smooth)
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("references must hold at least one text")
    hypothesis = tokenize_texts([hypothesis], tokenize, lowercase, name="hypothesis")[0]
    stats = _statistics(hypothesis, tokenize_texts(refs, tokenize, lowercase, "references"), max_order)
    return _sacrebleu_score(*stats, max_order, smooth, effective_order)


def reference_corpus_bleu(hypotheses, reference_corpus, *, convention: str = "nltk", max_order: int = 4,
                          tokenize: str = "whitespace", lowercase: bool = False) -> float:
    """Corpus BLEU in [0, 100] of the hypotheses, each against *every* sentence of a reference corpus.

    The quality measure of Yu et al. (2017, SeqGAN) and Wang & Cho (2019, arXiv:1902.04094, Table 2):
    how much of the generated n-grams a corpus of real text contains. Wang & Cho's notebook calls
    ``nltk.translate.bleu_score.corpus_bleu([references] * len(generated), generated)``; this gives the
    same number (times 100) from n-gram counts made once.

    Parameters
    ----------
    hypotheses : sequence of str or of token lists
        The generated texts (at least one).
    reference_corpus : sequence of str or of token lists
        The real texts (at least one); every hypothesis is clipped by the largest count of each n-gram
        in any one of them and takes the closest length among them (the shorter on ties).
    convention : {"nltk", "sacrebleu"}, default "nltk"
        ``"nltk"``: NLTK's ``corpus_bleu`` without smoothing (Wang & Cho's number); ``"sacrebleu"``:
        ``sacrebleu.corpus_bleu`` with its defaults (``smooth_method="exp"``), the corpus given as that
        many reference streams.
        See the module docstring for where they differ.
    max_order : int, default 4
        BLEU-N, uniform weights 1/N.
    tokenize, lowercase
        As in :func:`textsampling.metrics.tokens.tokenize_texts`, applied to both sides.

    Raises
    ------
    ValueError
        Empty ``hypotheses`` or ``reference_corpus``, an unknown ``convention``.
    """
    if convention not in REFERENCE_BLEU_CONVENTIONS:
        raise ValueError(f"convention must be one of {tuple(REFERENCE_BLEU_CONVENTIONS)}, got {convention!r}")
    max_order = check_int(max_order, "max_order", minimum=1)
    hypotheses = tokenize_texts(hypotheses, tokenize, lowercase, name="hypotheses")
    references = tokenize_texts(reference_corpus, tokenize, lowercase, name="reference_corpus")
    if not hypotheses:
        raise ValueError("hypotheses is empty: give at least one text")
    if not references:
        raise ValueError("reference_corpus is empty: give at least one reference text")
    statistics = bleu_statistics(hypotheses, references, max_order)
    if convention == "nltk":
        return 100.0 * _nltk_corpus(statistics, max_order)
    return _sacrebleu_corpus(statistics, max_order, "exp", False)


def self_bleu(texts, convention: str = "sacrebleu", *, max_order: int = 4, smooth: str | None = None,
              effective_order: bool | None = None, tokenize: str = "whitespace", lowercase: bool = False) -> float:
    """Self-BLEU in [0, 100]: each text scored against all the others; higher = less diverse.

    Parameters
    ----------
    texts : sequence of str or of token lists
        At least two.
    convention : {"sacrebleu", "wang-cho", "texygen"}, default "sacrebleu"
        ``"wang-cho"`` — Wang & Cho (2019), bert-gen's ``bert-babble.ipynb``:
        ``corpus_bleu([[s for j, s in enumerate(sents) if j != i] for i in range(len(sents))], sents)``,
        i.e. NLTK corpus BLEU (statistics pooled over all texts, no smoothing) with every text as a
        hypothesis and all the others as its references.

        ``"texygen"`` — Zhu et al. (2018), Texygen's ``utils/metrics/SelfBleu.py`` (github.com/geek-ai/
        Texygen, read at commit 6c676c8): ``get_bleu_parallel`` scores ``reference[index]`` against
        ``reference[:index] + reference[index+1:]`` — the hypothesis is *not* among its own references —
        with ``nltk.translate.bleu_score.sentence_bleu(other, hypothesis, weight,
        smoothing_function=SmoothingFunction().method1)``, ``weight = (1/gram,) * gram``, and returns
        the plain mean (summed in order). Texygen's default ``get_score()`` (``is_fast=True``) keeps only
        the first 500 texts (``sample_size``) and its class default is ``gram=3``; here every text is
        scored (Texygen's ``is_fast=False``) and the order is ``max_order`` (pass ``texts[:500]`` and
        ``max_order=3`` for Texygen's defaults). Texygen tokenises with ``nltk.word_tokenize``; here
        ``tokenize`` decides. (Its unused ``get_bleu`` keeps the hypothesis among the references.)

        ``"sacrebleu"`` — the mean of sacrebleu's sentence BLEU (``smooth``, default ``"exp"``;
        ``effective_order``, default True) of each text against the others: what ``textsampling
        generate`` writes to metrics.json as ``self_bleu``, and the default so that figure keeps its
        meaning. Name the convention whenever you report a self-BLEU: the three differ a lot on short
        texts.
    max_order : int, default 4
        BLEU-N with uniform weights 1/N.
    smooth, effective_order
        For ``convention="sacrebleu"`` only (an error otherwise).
    tokenize, lowercase
        As in :func:`textsampling.metrics.tokens.tokenize_texts`.
    """
    if convention not in SELF_BLEU_CONVENTIONS:
        raise ValueError(f"convention must be one of {tuple(SELF_BLEU_CONVENTIONS)}, got {convention!r}")
    if convention != "sacrebleu" and (smooth is not None or effective_order is not None):
        raise ValueError(f"smooth and effective_order are options of convention='sacrebleu', not of {convention!r}")
    smooth = "exp" if smooth is None else smooth
    effective_order = True if effective_order is None else effective_order
    max_order = _check_options(max_order, smooth)
    texts = tokenize_texts(texts, tokenize, lowercase)
    if len(texts) < 2:
        raise ValueError(f"texts must hold at least 2 samples for self-BLEU, got {len(texts)}")
    statistics = leave_one_out_statistics(texts, max_order)
    if convention == "wang-cho":
        return 100.0 * _nltk_corpus(statistics, max_order)
    if convention == "texygen":
        score = 0.0
        for sentence in statistics:  # Texygen: score += each result, in order, then / count
            score += _nltk_corpus([sentence], max_order, smoothing="method1")
        return 100.0 * (score / len(statistics))
    scores = [_sacrebleu_score(*sentence, max_order, smooth, effective_order) for sentence in statistics]
    return math.fsum(scores) / len(scores)
