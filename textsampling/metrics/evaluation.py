"""Every text metric of a set of samples at once: what ``textsampling evaluate`` prints.

:func:`evaluate` tokenises once and reports, with the convention of each number named: BLEU against
each reference corpus (:func:`~textsampling.metrics.bleu.reference_corpus_bleu`), self-BLEU in the
conventions asked for (:func:`~textsampling.metrics.bleu.self_bleu`), % unique n-grams within the
samples and against each reference corpus (:func:`~textsampling.metrics.tokens.unique_ngrams`),
distinct-n, mean length, and perplexity under a scoring causal LM if one is given.
"""

from __future__ import annotations

import math

from textsampling._validation import check_int
from textsampling.metrics.bleu import (
    REFERENCE_BLEU_CONVENTIONS,
    SELF_BLEU_CONVENTIONS,
    reference_corpus_bleu,
    self_bleu,
)
from textsampling.metrics.language_model import perplexity, scorable_rows
from textsampling.metrics.tokens import order_counts, tokenize_texts, unique_fraction

__all__ = ["evaluate", "UNITS"]

#: what each number of :func:`evaluate` is measured in
UNITS = {
    "bleu": "BLEU in [0, 100]",
    "self_bleu": "BLEU in [0, 100]",
    "unique_ngrams": "fraction in [0, 1] (x 100 = Wang & Cho's %); NaN when there is no n-gram of that order",
    "distinct": "fraction in [0, 1]",
    "mean_length": "tokens per text",
    "perplexity": "per token, END counted, under the scoring model",
}


def evaluate(texts, references=None, *, causal_lm=None, model_name: str | None = None,
             self_bleu_conventions=("wang-cho", "texygen"), bleu_convention: str = "nltk",
             unique_orders=(1, 2, 3, 4), distinct_orders=(1, 2), max_order: int = 4,
             tokenize: str = "whitespace", lowercase: bool = False, batch_size: int = 256) -> dict:
    """Quality and diversity metrics of generated texts, each named with its convention.

    Parameters
    ----------
    texts : sequence of str or of token lists
        The samples (at least two, for self-BLEU).
    references : mapping of str to sequence of texts, optional
        Reference corpora by name, e.g. ``{"wiki103": [...], "tbc": [...]}``: BLEU and % unique n-grams
        are reported against each.
    causal_lm : CausalLanguageModel, optional
        Scoring model for perplexity (needs ``encode(texts)`` and ``sequence_log_probs``); the texts
        are joined by spaces after tokenisation and encoded with its tokenizer. Texts it cannot score
        (longer than its ``max_length``, or holding a special id such as [UNK]) are left out and counted.
    model_name : str, optional
        Named in the result beside the perplexity.
    self_bleu_conventions : sequence of str, default ("wang-cho", "texygen")
        Among ``"wang-cho"``, ``"texygen"``, ``"sacrebleu"``.
    bleu_convention : {"nltk", "sacrebleu"}, default "nltk"
        Of the BLEU against each reference corpus.
    unique_orders, distinct_orders : sequences of int
        The n of % unique n-grams and of distinct-n.
    max_order : int, default 4
        BLEU-N.
    tokenize, lowercase
        As in :func:`~textsampling.metrics.tokens.tokenize_texts`, for every corpus.
    batch_size : int, default 256
        Texts per call of the scoring model.

    Returns
    -------
    dict
        ``num_texts``, ``tokenize``, ``lowercase``, ``mean_length``, ``distinct`` ({"n": value}),
        ``self_bleu`` ({convention: value}), ``bleu_convention``, ``bleu`` ({reference: value}),
        ``unique_ngrams`` ({"self" or reference: {"n": value}}), ``perplexity`` (None, or a dict with
        ``value``, ``model``, ``num_scored``, ``num_skipped``) and ``units`` (:data:`UNITS`).
    """
    token_lists = tokenize_texts(texts, tokenize, lowercase)
    if len(token_lists) < 2:
        raise ValueError(f"texts must hold at least 2 samples (self-BLEU compares each with the others), got "
                         f"{len(token_lists)}")
    if references is None:
        references = {}
    if not hasattr(references, "items"):
        raise TypeError("references must map a name to a list of texts, e.g. {'wiki103': [...]}, got "
                        f"{type(references).__name__}")
    if isinstance(self_bleu_conventions, str):
        self_bleu_conventions = [self_bleu_conventions]
    for convention in self_bleu_conventions:
        if convention not in SELF_BLEU_CONVENTIONS:
            raise ValueError(f"self_bleu_conventions must hold names among {tuple(SELF_BLEU_CONVENTIONS)}, got "
                             f"{convention!r}")
    if bleu_convention not in REFERENCE_BLEU_CONVENTIONS:
        raise ValueError(f"bleu_convention must be one of {tuple(REFERENCE_BLEU_CONVENTIONS)}, got "
                         f"{bleu_convention!r}")
    unique_orders = [check_int(n, "unique_orders", minimum=1) for n in unique_orders]
    distinct_orders = [check_int(n, "distinct_orders", minimum=1) for n in distinct_orders]
    reference_tokens = {}
    if "self" in references:
        raise ValueError("references: 'self' names the unique n-grams within the samples; call the reference "
                         "corpus something else")
    for name, corpus in references.items():
        reference_tokens[str(name)] = tokenize_texts(corpus, tokenize, lowercase, name=f"references[{name!r}]")
        if not reference_tokens[str(name)]:
            raise ValueError(f"references[{name!r}] is empty: give at least one reference text")

    counts = {n: order_counts(token_lists, n) for n in sorted(set(unique_orders) | set(distinct_orders))}
    result = {
        "num_texts": len(token_lists),
        "tokenize": tokenize,
        "lowercase": lowercase,
        "mean_length": sum(map(len, token_lists)) / len(token_lists),
        "distinct": {str(n): (len(counts[n]) / sum(counts[n].values()) if counts[n] else 0.0)
                     for n in distinct_orders},
        "self_bleu": {convention: self_bleu(token_lists, convention, max_order=max_order)
                      for convention in self_bleu_conventions},
        "bleu_convention": bleu_convention,
        "bleu": {name: reference_corpus_bleu(token_lists, corpus, convention=bleu_convention, max_order=max_order)
                 for name, corpus in reference_tokens.items()},
        "unique_ngrams": {"self": {str(n): unique_fraction(counts[n]) for n in unique_orders}},
        "perplexity": None,
        "units": dict(UNITS),
    }
    for name, corpus in reference_tokens.items():
        result["unique_ngrams"][name] = {str(n): unique_fraction(counts[n], order_counts(corpus, n).keys())
                                         for n in unique_orders}
    if causal_lm is not None:
        ids = causal_lm.encode([" ".join(tokens) for tokens in token_lists])
        keep = scorable_rows(causal_lm, ids)
        value = perplexity(causal_lm, ids[keep], batch_size=batch_size) if keep.any() else math.nan
        result["perplexity"] = {"value": value, "model": model_name, "num_scored": int(keep.sum()),
                                "num_skipped": int((~keep).sum())}
    return result
