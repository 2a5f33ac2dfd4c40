r"""Tokens and n-gram counts: the tokenisation every text metric shares, distinct-n, % unique n-grams, length.

Tokenisation (:func:`tokenize_texts`): a string is split on whitespace (``tokenize="whitespace"``, what
sacrebleu calls ``"none"``: the right choice for text that is already tokenised, such as bert-gen's
released samples) or by sacrebleu's ``"13a"`` tokenizer (mteval-v13a: punctuation split off; needs the
``lm`` extra). ``lowercase=True`` lower-cases first (as sacrebleu does). A text given as a list of
tokens is used as it is (lower-cased if asked).

Distinct-n (Li et al. 2016, "A diversity-promoting objective function for neural conversation
models"): distinct n-grams / n-gram occurrences over all texts.

% unique n-grams (Wang & Cho 2019, arXiv:1902.04094, Table 2; the definitions of their notebook
``bert-babble.ipynb``, ``ref_unique_ngrams`` and ``self_unique_ngrams``), with :math:`c(g)` the count
of n-gram :math:`g` over all generated texts (n-grams never cross a sentence boundary):

.. math::
    \text{unique vs } R = \frac{|\{g : c(g) > 0,\ g \notin R\}|}{\sum_g c(g)}, \qquad
    \text{unique within} = \frac{|\{g : c(g) = 1\}|}{\sum_g c(g)},

:math:`R` the set of n-grams of a reference corpus. Note the mixed units of the first: *distinct*
novel n-grams over *all* n-gram occurrences (so it is at most distinct-n).
"""

from __future__ import annotations

import math
from collections import Counter

from textsampling._validation import check_int

__all__ = [
    "TOKENIZERS", "tokenize_texts", "ngram_counts", "order_counts", "distinct_n", "unique_ngrams", "unique_fraction",
    "mean_length",
]

#: the tokenisations a metric accepts
TOKENIZERS = ("whitespace", "13a")


def _check_tokenize(tokenize, lowercase):
    if tokenize not in TOKENIZERS:
        raise ValueError(f"tokenize must be one of {TOKENIZERS}, got {tokenize!r}")
    if not isinstance(lowercase, bool):
        raise TypeError(f"lowercase must be True or False, got {lowercase!r}")
    if tokenize == "13a":
        try:
            from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
        except ImportError:
            raise ValueError("tokenize='13a' needs sacrebleu (pip install 'textsampling[lm]'); "
                             "or use tokenize='whitespace'") from None
        return Tokenizer13a()
    return str.split


def tokenize_texts(texts, tokenize: str = "whitespace", lowercase: bool = False, name: str = "texts") -> list:
    """Texts -> token lists, every metric's first step.

    Parameters
    ----------
    texts : sequence of str or of token lists
        Not a single string (that would be read as a list of characters).
    tokenize : {"whitespace", "13a"}, default "whitespace"
        How a string is split: on whitespace, or by sacrebleu's 13a tokenizer then on whitespace.
    lowercase : bool, default False
        Lower-case each string (before 13a, as sacrebleu does) or each given token.
    name : str
        The argument's name, for the error messages.

    Returns
    -------
    list of list of str

    Raises
    ------
    TypeError
        ``texts`` is a string or holds something other than strings and token lists.
    ValueError
        An unknown ``tokenize``.
    """
    splitter = _check_tokenize(tokenize, lowercase)
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a list of texts (strings or token lists), got {type(texts).__name__}: "
                        f"{str(texts)[:60]!r}")
    result = []
    for text in texts:
        if isinstance(text, str):
            text = text.lower() if lowercase else text
            result.append(splitter(text).split() if tokenize == "13a" else text.split())
        elif isinstance(text, (list, tuple)) and all(isinstance(token, str) for token in text):
            result.append([token.lower() for token in text] if lowercase else list(text))
        else:
            raise TypeError(f"{name} must hold strings (split by tokenize) or lists of string tokens, got {text!r}")
    return result


def ngram_counts(tokens, max_order: int) -> Counter:
    """Counts of every n-gram of ``tokens`` for n = 1..max_order, keyed by tuple (its length is its order)."""
    counts = Counter()
    for n in range(1, max_order + 1):
        for start in range(len(tokens) - n + 1):
            counts[tuple(tokens[start : start + n])] += 1
    return counts


def order_counts(token_lists, n: int) -> Counter:
    """Counts of the n-grams of order ``n`` over all token lists (none crosses from one text to the next)."""
    counts = Counter()
    for tokens in token_lists:
        counts.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return counts


def distinct_n(texts, n: int, *, tokenize: str = "whitespace", lowercase: bool = False) -> float:
    """Distinct n-grams / total n-grams over all texts (Li et al. 2016), in [0, 1]; 0 if no n-gram.

    Parameters
    ----------
    texts : sequence of str or of token lists
    n : int
        The order, >= 1.
    tokenize, lowercase
        As in :func:`tokenize_texts`.
    """
    n = check_int(n, "n", minimum=1)
    grams = order_counts(tokenize_texts(texts, tokenize, lowercase), n)
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def unique_ngrams(texts, n: int, reference_corpus=None, *, tokenize: str = "whitespace",
                  lowercase: bool = False) -> float:
    """Fraction of unique n-grams, within the texts or against a reference corpus (Wang & Cho 2019).

    Wang & Cho's "% unique n-grams" is 100 times this. The definitions are those of their notebook
    (``bert-babble.ipynb``, github.com/nyu-dl/bert-gen), word for word; see the module docstring.

    Parameters
    ----------
    texts : sequence of str or of token lists
        The generated texts.
    n : int
        The order, >= 1.
    reference_corpus : sequence of str or of token lists, optional
        Without it: (number of n-grams that occur exactly once in ``texts``) / (n-gram occurrences).
        With it: (number of *distinct* n-grams of ``texts`` that never occur in ``reference_corpus``) /
        (n-gram occurrences in ``texts``).
    tokenize, lowercase
        As in :func:`tokenize_texts`, applied to both corpora.

    Returns
    -------
    float
        In [0, 1]; NaN when ``texts`` hold no n-gram of order ``n`` (0 / 0, undefined).
    """
    n = check_int(n, "n", minimum=1)
    counts = order_counts(tokenize_texts(texts, tokenize, lowercase), n)
    if reference_corpus is None:
        return unique_fraction(counts)
    references = tokenize_texts(reference_corpus, tokenize, lowercase, name="reference_corpus")
    if not references:
        raise ValueError("reference_corpus is empty: give at least one reference text (or None for unique "
                         "n-grams within the texts)")
    return unique_fraction(counts, order_counts(references, n).keys())


def unique_fraction(counts: Counter, reference_ngrams=None) -> float:
    """:func:`unique_ngrams` from n-gram counts (and the reference corpus's n-grams, a set or dict view)."""
    total = sum(counts.values())
    if total == 0:
        return math.nan
    if reference_ngrams is None:
        return sum(1 for count in counts.values() if count == 1) / total
    return sum(1 for gram in counts if gram not in reference_ngrams) / total


def mean_length(texts, *, tokenize: str = "whitespace", lowercase: bool = False) -> float:
    """Mean number of tokens per text (NaN for no text)."""
    token_lists = tokenize_texts(texts, tokenize, lowercase)
    return sum(map(len, token_lists)) / len(token_lists) if token_lists else math.nan
