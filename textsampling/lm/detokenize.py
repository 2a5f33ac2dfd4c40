r"""WordPiece tokens -> text as a reader writes it: ``'tis``, ``to-morrow``, ``do't``, ``word,`` not ``word ,``.

A WordPiece tokenizer with BERT's pre-tokenisation (the built-in ``tiny-shakespeare`` models, BERT itself)
splits a sentence on spaces *and* around every punctuation mark, so the marks become tokens of their
own. Its decoder, ``tokenizers.decoders.WordPiece``, glues the ``##`` pieces back onto their word and
otherwise puts a space before every token; with ``cleanup=True`` it then drops the space before
``. ? ! ,`` — and nothing else, because that cleanup runs on one token at a time (its ``" ' "`` ->
``"'"`` and ``" n't"`` rules need two tokens and never fire). So today's text reads
``' tis to - morrow, do ' t ; o ' er``. (``transformers``' ``clean_up_tokenization_spaces`` adds
``" 's"``-style rules for modern English and also rewrites ``do not`` as ``don't``, which is not a
detokenisation.) This module does the rest: :func:`detokenize` takes the tokens and decides, for each
gap between two units (a word with its ``##`` pieces, or one punctuation mark), whether the reader
expects a space there. The gluing of pieces is the decoder's own rule, restated in :func:`_units`
because the decoder returns one string and the rules need the units; wherever none of the rules below
applies the result is the decoder's text, character for character (a test checks it). The rules, and why:

1. **Closing marks** ``. , ; : ! ? ) ] } …`` and the em dash ``—`` take no space before them: they
   close the word or clause on their left (``word,``; ``herself— For``).
2. **Opening marks** ``( [ {`` take no space after them.
3. **Double quotes** ``"`` alternate: an odd one opens (space before, none after), an even one closes.
4. **Hyphen** ``-``: a single hyphen between two words joins them (``to-morrow``, ``box-tree``), as
   hyphenated words are written; two or more hyphens in a row are a dash, written ``--`` with a space
   on each side (the plays' ``word -- word``).
5. **Apostrophe** ``'`` is one token whether it marks an elision or a quote, and the spaces that told
   them apart are gone, so the words around it decide:

   * after a word and before an **enclitic** (:data:`ENCLITICS`: ``'s 'd 'll 't 'st 're 've 'm 'rt 'lt
     ...``, and every piece starting with ``er`` after ``o`` or a word ending in ``e``, as in ``o'er``,
     ``ne'er``, ``where'er``, ``o'erwhelm``) the three join: ``king's``, ``do't``, ``thou'rt``, ``o'er``;
   * before a **proclitic** (:data:`PROCLITICS`: ``'tis 'twas 'em 'gainst 'twixt`` ...) it sticks to
     the word on its right only: ``but 'tis``, ``take 'em``;
   * after a word that is itself elided (:data:`ELIDED_BEFORE_APOSTROPHE`: ``i' the``, ``o' the``,
     ``th'``, ``wi'``) it sticks to the word on its left only;
   * after any other word it closes a quote this text opened (``'homo' is``), and else sticks to a
     plural possessive (a word ending in ``s`` but not in :data:`NOT_PLURALS`: ``soldiers' eyes``);
   * otherwise, between two words, it is taken as an opening quote (``say 'good``);
   * first in the text it opens (``'tis``, ``'O``); last, or before a mark, it closes (``dare not.'``);
   * after a closing mark (``,'`` ``.'``) it closes a quote that this text opened, and opens one
     otherwise (``he said, 'good``) — unless a proclitic follows (``so, 'tis``).

The word lists were counted in the training plays of the built-in models (``scripts/train_tiny_models.py``;
the held-out plays were not looked at): each entry occurs there almost only in the position its
rule assumes (e.g. ``'tis`` 1,289 times after a space or first, never glued to a word on its left; ``'d``
4,708 times glued on both sides). Where usage is mixed the majority wins: ``look to 't`` (118 times
``'t`` after a space) is written ``look to't`` because ``'t`` glued on both sides (892) is about eight
times as common; likewise ``in 's`` (55) against ``'s`` (6,776).
Quotes written with apostrophes cannot be told from elisions by their neighbours alone; most of the
remaining errors are there. ``tests/test_lm_detokenize.py`` measures the result on held-out sentences.

Model-agnostic by construction: :func:`wordpiece_prefix` says whether a tokenizer decodes with a WordPiece
decoder; only then does :func:`textsampling.lm._hf_common.decode_rows` call :func:`detokenize`. Every other
tokenizer (GPT-2's byte-level BPE, SentencePiece) keeps its own decoder: ``tokenizer.decode``, unchanged.
The rules compare words in lower case, so a cased WordPiece vocabulary gets them too.
"""

from __future__ import annotations

__all__ = ["detokenize", "wordpiece_prefix", "ENCLITICS", "PROCLITICS", "ELIDED_BEFORE_APOSTROPHE", "NOT_PLURALS"]

#: marks written without a space before them (rule 1)
CLOSING_MARKS = frozenset(".,;:!?)]}…—")
#: marks written without a space after them (rule 2)
OPENING_MARKS = frozenset("([{")
APOSTROPHES = frozenset("'’")

#: what follows an apostrophe glued to the word before it: ``king's``, ``do't``, ``thou'rt``, ``o'clock``
ENCLITICS = frozenset(
    {"s", "d", "ll", "t", "st", "dst", "ldst", "re", "ve", "m", "n", "en", "ld", "rt", "lt", "r", "est",
     "clock", "envoy"}
)
#: elided words that keep the apostrophe in front and a space before it: ``but 'tis``, ``take 'em``
PROCLITICS = frozenset(
    {"tis", "twas", "twere", "twill", "twould", "em", "gainst", "twixt", "tween", "mongst", "mong", "fore",
     "scape", "scaped", "scapes", "sblood", "zounds", "prentice", "larum", "gan"}
)
#: elided words written with the apostrophe last and a space after it: ``i' the``, ``o' the``, ``th'``
ELIDED_BEFORE_APOSTROPHE = frozenset({"i", "o", "a", "th", "wi", "ha"})
#: words ending in ``s`` that are no plural, so an apostrophe after them opens a quote: ``is 'that'``
#: (common English words, not counted: the one list that is not from the training plays)
NOT_PLURALS = frozenset({"is", "was", "his", "this", "as", "us", "has", "does", "says", "thus", "yes", "alas", "its"})


def wordpiece_prefix(tokenizer):
    """The continuing-piece prefix (``"##"``) when ``tokenizer`` decodes with a WordPiece decoder, else None.

    Looks at the ``tokenizers`` decoder behind a ``transformers`` fast tokenizer
    (``tokenizer.backend_tokenizer.decoder``). A tokenizer without one (a slow, pure-Python tokenizer)
    or with another decoder (byte-level BPE, Metaspace, a sequence of decoders) gives None: its text stays
    ``tokenizer.decode``'s.
    """
    from tokenizers import decoders

    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if isinstance(decoder, decoders.WordPiece):
        return decoder.prefix
    return None


def _units(tokens, prefix: str) -> list:
    """Glue each continuing piece onto the unit before it: ``["usurp", "##er", ","]`` -> ``["usurper", ","]``.

    A continuing piece with nothing before it keeps its prefix, as the ``tokenizers`` decoder does.
    """
    units = []
    for token in tokens:
        if prefix and token.startswith(prefix) and units:
            units[-1] += token[len(prefix):]
        else:
            units.append(token)
    return units


def _is_word(unit: str) -> bool:
    # a word has a letter or digit; special tokens ([UNK], [MASK]) count as words
    return any(character.isalnum() for character in unit)


def _apostrophe(left, right, quote_open: bool):
    """Rule 5: ``(glue to the left, glue to the right, quote open afterwards)`` for one apostrophe.

    ``left``/``right`` are the neighbouring units in lower case, None at either end of the text.
    """
    if left is None:  # first in the text: 'tis, or an opening quote
        return False, True, quote_open or right not in PROCLITICS
    if right is None or not _is_word(right):  # last, or before a mark: it closes (a quote, or soldiers')
        return True, False, False
    if not _is_word(left):  # after a mark: ",' " closes an open quote, ", 'tis" / ", 'good" open
        if right in PROCLITICS:
            return False, True, quote_open
        if quote_open:
            return True, False, False
        return False, True, True
    if right in ENCLITICS or (right.startswith("er") and (left == "o" or left.endswith("e"))):
        return True, True, quote_open  # king's, do't, o'er, where'er
    if right in PROCLITICS:
        return False, True, quote_open  # but 'tis
    if left in ELIDED_BEFORE_APOSTROPHE:
        return True, False, quote_open  # i' the, o' the
    if quote_open:
        return True, False, False  # 'homo' is: the quote this text opened closes
    if left.endswith("s") and left not in NOT_PLURALS:
        return True, False, quote_open  # soldiers' eyes
    return False, True, True  # say 'good: an opening quote


def detokenize(tokens, prefix: str = "##") -> str:
    """WordPiece tokens -> the text a reader expects (rules in the module docstring).

    Parameters
    ----------
    tokens : sequence of str
        WordPiece tokens, e.g. ``tokenizer.convert_ids_to_tokens(ids)``; special tokens are kept as words.
    prefix : str
        The prefix of a piece that continues the word before it (``"##"`` for BERT; see
        :func:`wordpiece_prefix`).

    Returns
    -------
    str
        The units joined with a space wherever no rule removes it: ``["'", "tis", "to", "-", "morrow",
        ",", "do", "'", "t"]`` -> ``"'tis to-morrow, do't"``.
    """
    if isinstance(tokens, str):
        raise TypeError("tokens must be a sequence of token strings, got a single string")
    units = _units([str(token) for token in tokens], prefix)
    lowered = [unit.lower() for unit in units]
    count = len(units)
    glue_left, glue_right = [False] * count, [False] * count  # no space before / after unit i
    single_quote_open, double_quotes = False, 0
    for i, unit in enumerate(units):
        left = lowered[i - 1] if i > 0 else None
        right = lowered[i + 1] if i + 1 < count else None
        if unit[:1] in CLOSING_MARKS:  # also a mark a sampled piece continued (".dom"), as the decoder does
            glue_left[i] = True
        elif unit[-1:] in OPENING_MARKS:
            glue_right[i] = True
        elif unit == '"':
            double_quotes += 1
            if double_quotes % 2:
                glue_right[i] = True
            else:
                glue_left[i] = True
        elif unit == "-":
            if left == "-" or right == "-":  # a dash: the hyphens together, spaces outside
                glue_right[i] = right == "-"
            elif left is not None and right is not None and _is_word(left) and _is_word(right):
                glue_left[i] = glue_right[i] = True  # to-morrow
        elif unit in APOSTROPHES:
            glue_left[i], glue_right[i], single_quote_open = _apostrophe(left, right, single_quote_open)
    pieces = units[:1]
    for i in range(1, count):
        pieces.append(units[i] if glue_right[i - 1] or glue_left[i] else " " + units[i])
    return "".join(pieces)
