"""Readers' text from WordPiece tokens (:mod:`textsampling.lm.detokenize`) and the keyword check on it.

Exact checks only: each rule on hand-made token lists, agreement with the ``tokenizers`` decoder wherever
no rule applies, other decoders left alone, and the round trip on held-out Shakespeare
(``tests/data/held_out_sentences.txt``, written by ``scripts/extract_held_out_sentences.py``).
The held-out figure prints with::

    python -m pytest -q -s tests/test_lm_detokenize.py -k held_out
"""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

pytest.importorskip("transformers")

from textsampling.lm._hf_common import decode_rows  # noqa: E402
from textsampling.lm.detokenize import detokenize, wordpiece_prefix  # noqa: E402
from textsampling.lm.keywords import missing_keywords  # noqa: E402

HELD_OUT = Path(__file__).resolve().parent / "data" / "held_out_sentences.txt"


def split(text):
    """Tokens of a space-separated string: ``"do ' t"`` -> ``["do", "'", "t"]``."""
    return text.split(" ")


# ------------------------------------------------------------------------------------------ the rules
def test_pieces_join_their_word_and_a_leading_piece_keeps_its_prefix():
    assert detokenize(["the", "usurp", "##er", "wakes"]) == "the usurper wakes"
    assert detokenize(["##s", "king"]) == "##s king"  # as the tokenizers decoder writes it
    assert detokenize(["a", "@@b"], prefix="@@") == "ab"
    assert detokenize([]) == ""


@pytest.mark.parametrize("mark", list(".,;:!?)]}…—"))
def test_closing_marks_take_no_space_before(mark):
    assert detokenize(["word", mark, "next"]) == f"word{mark} next"


@pytest.mark.parametrize("mark", list("([{"))
def test_opening_marks_take_no_space_after(mark):
    assert detokenize(["word", mark, "next"]) == f"word {mark}next"


def test_double_quotes_alternate_opening_and_closing():
    assert detokenize(split('he cried " enough ! " and " ave , caesar " .')) == 'he cried "enough!" and "ave, caesar".'


def test_a_hyphen_between_words_joins_them_and_hyphens_in_a_row_are_a_spaced_dash():
    assert detokenize(split("to - morrow the box - tree")) == "to-morrow the box-tree"
    assert detokenize(split("the moon - - the sealing - day")) == "the moon -- the sealing-day"
    assert detokenize(split("- - no more : - -")) == "-- no more: --"
    assert detokenize(split("not , - -")) == "not, --"
    assert detokenize(split("- word")) == "- word"  # no word on its left: no rule, spaces stay


@pytest.mark.parametrize(
    "tokens, text",
    [
        ("the king ' s crown", "the king's crown"),
        ("do ' t", "do't"),
        ("i ' ll go", "i'll go"),
        ("thou ' rt", "thou'rt"),
        ("by ' r lakin", "by'r lakin"),
        ("o ' clock", "o'clock"),
        ("o ' er the hill", "o'er the hill"),
        ("ne ' er", "ne'er"),
        ("where ' er it walks", "where'er it walks"),
        ("o ' erwhelm", "o'erwhelm"),
    ],
)
def test_an_apostrophe_before_an_enclitic_joins_both_words(tokens, text):
    assert detokenize(split(tokens)) == text


@pytest.mark.parametrize(
    "tokens, text",
    [
        ("but ' tis strange", "but 'tis strange"),
        ("' tis strange", "'tis strange"),
        ("take ' em", "take 'em"),
        ("so , ' twas", "so, 'twas"),
        ("' gainst the wind", "'gainst the wind"),
    ],
)
def test_an_apostrophe_before_a_proclitic_sticks_to_it(tokens, text):
    assert detokenize(split(tokens)) == text


@pytest.mark.parametrize(
    "tokens, text",
    [
        ("i ' the sun", "i' the sun"),
        ("a pox o ' your throat", "a pox o' your throat"),
        ("th ' other", "th' other"),
        ("the soldiers ' eyes", "the soldiers' eyes"),
        ("for the gods ' sake", "for the gods' sake"),
    ],
)
def test_an_apostrophe_after_an_elided_word_or_a_plural_sticks_to_it(tokens, text):
    assert detokenize(split(tokens)) == text


@pytest.mark.parametrize(
    "tokens, text",
    [
        ("' o no , you dare not . '", "'o no, you dare not.'"),
        ("what is ' that ' but ' that '", "what is 'that' but 'that'"),  # "is" is no plural
        ("and cried ' god save the queen ' ?", "and cried 'god save the queen'?"),
        ("' be thou , ' quoth i", "'be thou,' quoth i"),
        ("he said , ' good morrow", "he said, 'good morrow"),  # no quote open: this one opens
        ("the soldiers '", "the soldiers'"),
    ],
)
def test_an_apostrophe_as_a_quote_opens_and_closes(tokens, text):
    assert detokenize(split(tokens)) == text


def test_special_tokens_stay_words():
    assert detokenize(["[CLS]", "the", "[MASK]", ",", "[UNK]", "'", "s", "[SEP]"]) == "[CLS] the [MASK], [UNK]'s [SEP]"


def test_a_single_string_is_refused():
    with pytest.raises(TypeError, match="tokens must be a sequence"):
        detokenize("' tis")


def test_agrees_with_the_tokenizers_decoder_where_no_rule_applies():
    """Words, ``##`` pieces and the four marks its cleanup handles: the same text, token for token."""
    from tokenizers import decoders

    decoder = decoders.WordPiece(prefix="##", cleanup=True)
    vocabulary = ["king", "crown", "a", "[UNK]", "##s", "##dom", ".", ",", "!", "?"]
    generator = np.random.default_rng(0)
    for _ in range(500):
        tokens = [vocabulary[i] for i in generator.integers(0, len(vocabulary), generator.integers(1, 9))]
        assert detokenize(tokens) == decoder.decode(tokens), tokens


# -------------------------------------------------------------------------------- which decoder is used
def byte_level_tokenizer():
    """A GPT-2-style byte-level BPE tokenizer, trained offline (as tests/test_lm_loading.py builds it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["'tis the king's crown , to - morrow", "do ' t , o'er the hill"] * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def test_a_byte_level_tokenizer_decodes_exactly_as_before():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from textsampling.lm.hf_causal import HFCausalLM

    tokenizer = byte_level_tokenizer()
    assert wordpiece_prefix(tokenizer) is None
    texts = ["'tis the king's crown , to - morrow", "do ' t , o'er the hill", " spaced  'as typed' "]
    torch.manual_seed(0)  # weights only
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=1, n_head=2,
                                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    lm = HFCausalLM(model.eval(), tokenizer)
    ids = lm.encode(texts)
    want = [tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) for text in texts]
    assert want == texts  # byte-level BPE is lossless: the decoder's own text, spaces as typed
    assert decode_rows(tokenizer, ids) == want
    assert lm.decode(ids) == want


def test_a_wordpiece_tokenizer_is_detokenised():
    from transformers import AutoTokenizer

    from textsampling.lm.loading import builtin_model_path

    tokenizer = AutoTokenizer.from_pretrained(builtin_model_path("tiny-shakespeare", "masked"))
    assert wordpiece_prefix(tokenizer) == "##"
    ids = np.array(tokenizer.encode("'Tis to-morrow, do't; o'er the hill!", add_special_tokens=False))
    assert tokenizer.decode(ids.tolist()) == "' tis to - morrow, do ' t ; o ' er the hill!"  # the decoder alone
    assert decode_rows(tokenizer, ids) == "'tis to-morrow, do't; o'er the hill!"
    assert decode_rows(tokenizer, np.append(ids, [-1, -1])[None]) == ["'tis to-morrow, do't; o'er the hill!"]
    past_the_vocabulary = len(tokenizer) + 5  # an id without a token is skipped, as tokenizer.decode does
    assert decode_rows(tokenizer, [past_the_vocabulary, int(ids[1])]) == tokenizer.decode([int(ids[1])])


# ----------------------------------------------------------------------------------- held-out round trip
def held_out_sentences():
    lines = HELD_OUT.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_held_out_sentences_round_trip_up_to_case():
    """decode(encode(s)) == s.lower() for at least 95% of the held-out sentences.

    Compared up to case only (the tokenizer lower-cases); nothing else is normalised. The file is ASCII,
    so the tokenizer's accent stripping cannot change a sentence either. A sentence whose encoding holds
    [UNK] counts as a failure.
    """
    from textsampling.lm.loading import load_masked_lm

    sentences = held_out_sentences()
    assert len(sentences) == 500 and all(sentence.isascii() for sentence in sentences)
    model = load_masked_lm("tiny-shakespeare")
    unknown = model.tokenizer.unk_token_id
    passed, failures, old_passed = 0, [], 0
    for sentence in sentences:
        ids = model.encode([sentence])[0]
        text = model.decode(ids)
        if text == sentence.lower() and unknown not in ids:
            passed += 1
        else:
            failures.append((sentence, text))
        old_passed += model.tokenizer.decode(ids.tolist()) == sentence.lower()
    share = passed / len(sentences)
    print(f"\nheld-out round trip: {passed} of {len(sentences)} = {share:.1%} "
          f"(tokenizer.decode alone: {old_passed} of {len(sentences)} = {old_passed / len(sentences):.1%})")
    for sentence, text in failures:
        print(f"  want {sentence.lower()!r}\n  got  {text!r}")
    assert share >= 0.95, failures


# ---------------------------------------------------------------------------------------------- keywords
@pytest.mark.parametrize(
    "text, words, missing",
    [
        ("the king's crown", ["king", "crown"], []),
        ("'tis the king, my lord!", ["king", "tis", "lord"], []),
        ("good morrow, to-morrow", ["morrow", "to-morrow"], []),
        ("o'er the hill i' the sun", ["o'er", "o' er", "o ' er", "i'the", "hill"], []),
        ('he cried "king"', ["king", '"king"'], []),
        ("the kingdom", ["king"], ["king"]),
        ("our master's crown", ["'s", "master's", "master 's"], []),  # a mark at the keyword's end needs no boundary
        ("the good morrow", ["good morrow", "goodmorrow", "morrow good"], ["goodmorrow", "morrow good"]),
        ("to-morrow", ["tomorrow", "to morrow"], ["tomorrow", "to morrow"]),  # the hyphen is no space
        ("The King", ["king", "KING"], []),
    ],
)
def test_missing_keywords_on_detokenised_text(text, words, missing):
    assert missing_keywords(text, words) == missing


def test_keywords_found_in_tokens_are_found_in_the_decoded_text():
    """A keyword whose unit occurs as a whole word in the tokens is never reported missing from the text."""
    from textsampling.lm.keywords import continuation_token_ids, keyword_units
    from textsampling.lm.loading import load_masked_lm

    model = load_masked_lm("tiny-shakespeare")
    continuations = continuation_token_ids(model)
    for sentence in held_out_sentences()[:100]:
        ids = model.encode([sentence])[0]
        text = model.decode(ids)
        words = [w for w in sentence.replace("--", " ").split() if any(c.isalnum() for c in w)]
        words = [w.strip(",.;:!?") for w in words]
        for word, unit in zip(words, keyword_units(model, words)):
            ends = [i + len(unit) for i in range(len(ids) - len(unit) + 1) if list(ids[i: i + len(unit)]) == unit]
            found = any(end == len(ids) or ids[end] not in continuations for end in ends)
            if found:
                assert not missing_keywords(text, [word]), (word, text)
