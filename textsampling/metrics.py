r"""Text metrics for a run of samples: BLEU, self-BLEU, distinct-n, perplexity under a scoring LM.

BLEU (Papineni et al. 2002, "BLEU: a method for automatic evaluation of machine translation"):

.. math::
    \mathrm{BLEU} = 100 \cdot \mathrm{BP} \cdot \exp\Big(\frac{1}{N}\sum_{n=1}^{N} \log p_n\Big), \qquad
    p_n = \frac{\sum_h \sum_{g \in h} \min(c_h(g), \max_r c_r(g))}{\sum_h \sum_{g \in h} c_h(g)}, \qquad
    \mathrm{BP} = \min(1, e^{1 - R / H}),

with :math:`g` the n-grams of a hypothesis, counts clipped by the largest count in any of its
references, :math:`H` the total hypothesis length and :math:`R` the sum over hypotheses of the closest
reference length (the shorter on ties). Corpus BLEU pools the counts over all hypotheses before the
ratio; sentence BLEU is the same with one hypothesis. This is sacrebleu's definition (Post 2018),
which our tests check number for number, including its ``exp`` smoothing (an n-gram order with no
match gets precision :math:`1 / (2^k \cdot \text{total})`, :math:`k` counting such orders) and
``effective_order`` (orders longer than the hypothesis are left out of the mean).

Texts are compared as *tokens*: a string is split on whitespace (sacrebleu's ``tokenize="none"``);
tokenise beforehand for anything else.

Self-BLEU (Zhu et al. 2018, Texygen): each sample scored by sentence BLEU against all the *other*
samples as references, then averaged. High self-BLEU = the samples repeat each other (low diversity).

Distinct-n (Li et al. 2016, "A diversity-promoting objective function for neural conversation
models"): the number of distinct n-grams over the total number of n-grams in all samples, i.e. the
fraction of n-gram occurrences that are unique types.

Perplexity under a scoring causal LM :math:`q`: :math:`\exp(-\sum_s \log q(s, \mathrm{END}) / \sum_s (|s| + 1))`,
END counted as a token, as in the held-out perplexity of the tiny-shakespeare model card. (An HF
adapter renormalises each conditional without the special ids, so its perplexity can be slightly
lower than that of the raw softmax the training script reports.)
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from textsampling._validation import check_int

__all__ = ["corpus_bleu", "sentence_bleu", "self_bleu", "distinct_n", "perplexity", "ngram_counts"]

_SMOOTH_METHODS = ("none", "exp")


def _tokens(text, name: str) -> list:
    if isinstance(text, str):
        return text.split()
    if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
        return list(text)
    raise TypeError(f"{name} must hold strings (split on whitespace) or lists of string tokens, got {text!r}")


def ngram_counts(tokens, max_order: int) -> Counter:
    """Counts of every n-gram of ``tokens`` for n = 1..max_order, keyed by tuple."""
    counts = Counter()
    for n in range(1, max_order + 1):
        for start in range(len(tokens) - n + 1):
            counts[tuple(tokens[start : start + n])] += 1
    return counts


def _statistics(hypothesis, references, max_order: int):
    """(matches per order, totals per order, hypothesis length, closest reference length)."""
    counts = ngram_counts(hypothesis, max_order)
    max_reference = Counter()
    for reference in references:
        for gram, count in ngram_counts(reference, max_order).items():
            max_reference[gram] = max(max_reference[gram], count)
    matches, totals = [0] * max_order, [0] * max_order
    for gram, count in counts.items():
        matches[len(gram) - 1] += min(count, max_reference[gram])  # clipped count
    for n in range(1, max_order + 1):
        totals[n - 1] = max(len(hypothesis) - n + 1, 0)
    # closest reference length; on a tie the shorter one
    closest = min((abs(len(r) - len(hypothesis)), len(r)) for r in references)[1]
    return matches, totals, len(hypothesis), closest


def _score(matches, totals, hypothesis_length, reference_length, max_order, smooth, effective_order) -> float:
    """BLEU in [0, 100] from pooled statistics (sacrebleu's ``compute_bleu``)."""
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
    if len(log_precisions) < order:
        return 0.0  # some order had no n-grams at all and effective_order is off
    if order == 0:
        return 0.0
    brevity = 0.0 if hypothesis_length >= reference_length else 1.0 - reference_length / hypothesis_length
    return 100.0 * math.exp(brevity + sum(log_precisions[:order]) / order)


def _check_options(max_order, smooth):
    max_order = check_int(max_order, "max_order", minimum=1)
    if smooth not in _SMOOTH_METHODS:
        raise ValueError(f"smooth must be one of {_SMOOTH_METHODS}, got {smooth!r}")
    return max_order


def corpus_bleu(
    hypotheses, references, max_order: int = 4, smooth: str = "none", effective_order: bool = False
) -> float:
    """Corpus BLEU in [0, 100], statistics pooled over all hypotheses.

    Parameters
    ----------
    hypotheses : sequence of str or of token lists
        The texts to score, ``H`` of them.
    references : sequence of sequences
        ``references[h]`` is the list of references of hypothesis ``h`` (at least one each). A flat list
        of ``H`` strings means one reference per hypothesis. (sacrebleu takes the transpose: streams.)
    max_order : int, default 4
    smooth : {"none", "exp"}, default "none"
        sacrebleu's ``smooth_method``; corpus BLEU is usually unsmoothed.
    effective_order : bool, default False
        Drop orders longer than every hypothesis.
    """
    max_order = _check_options(max_order, smooth)
    hypotheses = [_tokens(h, "hypotheses") for h in hypotheses]
    if len(references) != len(hypotheses):
        raise ValueError(f"references must hold one entry per hypothesis ({len(hypotheses)}), got {len(references)}")
    if not hypotheses:
        raise ValueError("hypotheses is empty: give at least one text")
    matches, totals, length, reference_length = [0] * max_order, [0] * max_order, 0, 0
    for hypothesis, refs in zip(hypotheses, references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError("references: every hypothesis needs at least one reference")
        m, t, h, r = _statistics(hypothesis, [_tokens(ref, "references") for ref in refs], max_order)
        matches = [a + b for a, b in zip(matches, m)]
        totals = [a + b for a, b in zip(totals, t)]
        length, reference_length = length + h, reference_length + r
    return _score(matches, totals, length, reference_length, max_order, smooth, effective_order)


def sentence_bleu(
    hypothesis, references, max_order: int = 4, smooth: str = "exp", effective_order: bool = True
) -> float:
    """Sentence BLEU in [0, 100] of one hypothesis against its references (sacrebleu's defaults)."""
    max_order = _check_options(max_order, smooth)
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("references must hold at least one text")
    stats = _statistics(_tokens(hypothesis, "hypothesis"), [_tokens(r, "references") for r in refs], max_order)
    return _score(*stats, max_order, smooth, effective_order)


def self_bleu(texts, max_order: int = 4, smooth: str = "exp", effective_order: bool = True) -> float:
    """Mean sentence BLEU of each text against all the others (Zhu et al. 2018), in [0, 100].

    Needs at least two texts. Higher means less diverse samples.
    """
    texts = [_tokens(t, "texts") for t in texts]
    if len(texts) < 2:
        raise ValueError(f"texts must hold at least 2 samples for self-BLEU, got {len(texts)}")
    scores = [
        sentence_bleu(text, texts[:i] + texts[i + 1 :], max_order, smooth, effective_order)
        for i, text in enumerate(texts)
    ]
    return float(np.mean(scores))


def distinct_n(texts, n: int) -> float:
    """Distinct n-grams / total n-grams over all texts (Li et al. 2016), in [0, 1]; 0 if no n-gram."""
    n = check_int(n, "n", minimum=1)
    grams = Counter()
    for text in texts:
        tokens = _tokens(text, "texts")
        grams.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def perplexity(causal_lm, token_ids) -> float:
    """Perplexity of PAD-padded content ids under a causal LM, END counted as a token.

    Parameters
    ----------
    causal_lm : CausalLanguageModel
        The scoring model (e.g. ``load_causal_lm("tiny-shakespeare")``), not the one that sampled.
    token_ids : array_like, shape (N, L)
        In the scoring model's vocabulary (``causal_lm.encode(texts)`` for texts); ``PAD = -1``.
    """
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 2 or token_ids.shape[0] == 0:
        raise ValueError(f"token_ids must be a non-empty (N, L) array, got shape {token_ids.shape}")
    log_probs = np.asarray(causal_lm.sequence_log_probs(token_ids), dtype=np.float64)
    num_tokens = int((token_ids != -1).sum()) + token_ids.shape[0]  # + END per sentence
    return float(np.exp(-log_probs.sum() / num_tokens))
