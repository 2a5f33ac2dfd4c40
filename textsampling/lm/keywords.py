r"""Keywords as a language model's tokens, and the check that a printed sentence really holds them.

CGMH's constraint :math:`\chi(x, c)` is "every keyword occurs in :math:`x`" (part 1 of the series). On
tokens, a keyword is a *unit*: the word pieces it tokenises to (``usurper`` -> ``usurp ##er``), which must
occur contiguously and as a whole word — not followed by a piece that continues the word (``king ##dom``
is not "king"). :func:`keyword_units` gives the units, :func:`continuation_token_ids` the pieces that
continue a word, and :func:`missing_keywords` checks the decoded text, so that a sentence printed without
its keyword is caught rather than written (:mod:`textsampling.cli.generate` calls it on every record).
The decoded text of a WordPiece model is detokenised (:mod:`textsampling.lm.detokenize`: ``king's``,
``to-morrow``, ``o'er``); words are never glued to words there, only to marks, so a whole word stays whole.
"""

from __future__ import annotations

import re

__all__ = ["keyword_units", "continuation_token_ids", "missing_keywords"]


def keyword_units(model, words) -> list:
    """The token ids of each keyword as it appears inside a sentence: one list per word, in order.

    Uses the model's own ``encode_keywords`` when it has one (the bigram oracle names its tokens
    ``t0``, ``t1``, ...), else :func:`textsampling.lm.loading.encode_keywords` on its tokenizer.
    """
    if hasattr(model, "encode_keywords"):
        return [list(map(int, ids)) for ids in model.encode_keywords(words)]
    from textsampling.lm.loading import encode_keywords

    return [list(map(int, ids)) for ids in encode_keywords(model.tokenizer, words)]


def continuation_token_ids(model) -> frozenset:
    """Ids of the word pieces that glue onto the previous token, from the model's tokenizer.

    WordPiece: pieces written ``##…``. Byte-level BPE (GPT-2): pieces that start with a letter or digit
    and not with the space marker ``Ġ``. SentencePiece: likewise without ``▁``. A model without a
    tokenizer (the bigram oracle) has none.
    """
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return frozenset()
    vocabulary = tokenizer.get_vocab()  # piece -> id
    pieces = list(vocabulary)
    if any(piece.startswith("##") for piece in pieces):
        return frozenset(i for piece, i in vocabulary.items() if piece.startswith("##") and len(piece) > 2)
    marker = "Ġ" if any(piece.startswith("Ġ") for piece in pieces) else "▁"
    # "Ġ" and "▁" are letters to str.isalnum, so the marker is excluded explicitly.
    return frozenset(i for piece, i in vocabulary.items() if not piece.startswith(marker) and piece[:1].isalnum())


def _keyword_pattern(word: str) -> str:
    r"""A regular expression for ``word`` as whole words, blind to the spaces around its punctuation.

    The keyword is cut into words and single marks (``o'er`` -> ``o ' er``); words that the keyword
    separates by a space need one or more spaces in the text, and a mark may have spaces around it or
    none. The decoded text puts spaces where a reader expects them
    (:mod:`textsampling.lm.detokenize`: ``o'er``, ``i' the``, ``to-morrow``), which need not be where the
    user typed them, while the token-level check (:func:`keyword_units`) never sees spaces at all: so
    ``o'er``, ``o' er`` and ``o ' er`` are one keyword here as they are one unit there.
    """
    parts = re.findall(r"\w+|[^\w\s]", word.strip().lower())  # words, and each mark on its own
    pattern = re.escape(parts[0]) if parts else ""
    for previous, part in zip(parts, parts[1:]):
        between_words = re.match(r"\w", previous[-1]) and re.match(r"\w", part[0])
        pattern += (r"\s+" if between_words else r"\s*") + re.escape(part)
    # a boundary only where the keyword has a word character at that end: "'s" is in "master's"
    before = r"(?<!\w)" if parts and re.match(r"\w", parts[0]) else ""
    after = r"(?!\w)" if parts and re.match(r"\w", parts[-1]) else ""
    return before + pattern + after


def missing_keywords(text: str, words) -> list:
    """The keywords that do not occur in ``text`` as whole words (case-insensitive), in order.

    "Whole" means no letter, digit or underscore right before or after: ``king`` is in ``king's``,
    ``king,`` and ``"king"``, ``morrow`` in ``to-morrow``, but ``king`` is not in ``kingdom``. Spaces
    around the keyword's own punctuation are not compared (:func:`_keyword_pattern`).
    """
    lowered = text.lower()
    return [word for word in words if re.search(_keyword_pattern(word), lowered) is None]
