r"""Text metrics of a run of samples: BLEU (three conventions), self-BLEU, % unique n-grams, distinct-n,
mean length, perplexity under a scoring LM — and :func:`evaluate`, all of them at once.

Modules:

:mod:`textsampling.metrics.tokens`
    Tokenisation shared by every metric (whitespace or sacrebleu's 13a, optional lower-casing),
    n-gram counts, distinct-n (Li et al. 2016), % unique n-grams (Wang & Cho 2019), mean length.
:mod:`textsampling.metrics.bleu`
    BLEU (Papineni et al. 2002) in sacrebleu's convention (:func:`corpus_bleu`, :func:`sentence_bleu`),
    against a reference corpus in NLTK's or sacrebleu's (:func:`reference_corpus_bleu`; Yu et al. 2017,
    Wang & Cho 2019), and self-BLEU in the ``wang-cho``, ``texygen`` (Zhu et al. 2018) and
    ``sacrebleu`` conventions (:func:`self_bleu`), from n-gram counts made once.
:mod:`textsampling.metrics.language_model`
    Perplexity under a scoring causal LM.
:mod:`textsampling.metrics.evaluation`
    :func:`evaluate`: every metric of a set of samples, each named with its convention.

Texts are strings (tokenised by ``tokenize``: whitespace by default, sacrebleu's ``"none"``) or lists of
string tokens. Every name here is importable as ``from textsampling import metrics; metrics.<name>``.
"""

from textsampling.metrics.bleu import (
    REFERENCE_BLEU_CONVENTIONS,
    SELF_BLEU_CONVENTIONS,
    bleu_statistics,
    corpus_bleu,
    leave_one_out_statistics,
    reference_corpus_bleu,
    self_bleu,
    sentence_bleu,
)
from textsampling.metrics.evaluation import UNITS, evaluate
from textsampling.metrics.language_model import perplexity, scorable_rows
from textsampling.metrics.tokens import (
    TOKENIZERS,
    distinct_n,
    mean_length,
    ngram_counts,
    order_counts,
    tokenize_texts,
    unique_fraction,
    unique_ngrams,
)

__all__ = [
    "corpus_bleu", "sentence_bleu", "reference_corpus_bleu", "self_bleu", "SELF_BLEU_CONVENTIONS",
    "REFERENCE_BLEU_CONVENTIONS", "bleu_statistics", "leave_one_out_statistics",
    "distinct_n", "unique_ngrams", "unique_fraction", "mean_length", "ngram_counts", "order_counts",
    "tokenize_texts", "TOKENIZERS", "perplexity", "scorable_rows", "evaluate", "UNITS",
]
