"""The Hugging Face adapters against direct computations with the same (random-init, tiny) models.

Everything here is deterministic: exact identities up to float32 rounding, no statistics.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
)

from textsampling.lm.base import PAD, CausalLanguageModel, MaskedLanguageModel  # noqa: E402
from textsampling.lm.hf_causal import HFCausalLM  # noqa: E402
from textsampling.lm.hf_masked import HFMaskedLM  # noqa: E402
from textsampling.lm.loading import bert_style_tokenizer  # noqa: E402

WORDS = "the king crown queen sword of a and to my lord is was fair foul night day love death".split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CONTENT_END = len(SPECIALS) + len(WORDS) + 3  # content ids 5..CONTENT_END-1 ([unused0] comes after)


def make_tokenizer():
    """A word-level WordPiece tokenizer over WORDS (ids 5..), built offline."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS + ["##s", ".", ",", "[unused0]"])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    return bert_style_tokenizer(tokenizer, 16)


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def bert(tokenizer):
    torch.manual_seed(0)  # weights only; the library never seeds
    config = BertConfig(
        vocab_size=len(tokenizer) + 3,  # padded past the tokenizer: those ids must get -inf too
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        pad_token_id=tokenizer.pad_token_id,
    )
    return BertForMaskedLM(config).eval()


@pytest.fixture(scope="module")
def gpt2(tokenizer):
    torch.manual_seed(1)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=16,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    return GPT2LMHeadModel(config).eval()


def random_batch(rng, vocab_low, vocab_high, lengths, width=None):
    width = max(lengths) if width is None else width
    batch = np.full((len(lengths), width), PAD, dtype=np.int64)
    for n, length in enumerate(lengths):
        batch[n, :length] = rng.integers(vocab_low, vocab_high, length)
    return batch


def direct_masked(model, tokenizer, row, position, special):
    """Full model on ``[CLS] row [SEP]`` with [MASK] at ``position``, full softmax over allowed ids."""
    ids = [tokenizer.cls_token_id] + [int(t) for t in row if t != PAD] + [tokenizer.sep_token_id]
    ids[position + 1] = tokenizer.mask_token_id
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, position + 1].double()
    logits[list(special)] = -np.inf
    return torch.log_softmax(logits, -1).numpy()


def direct_sequence(model, tokenizer, row, disallowed):
    """Sum of full log_softmax over ``[BOS] row`` predicting ``row [END]``, specials except END removed."""
    content = [int(t) for t in row if t != PAD]
    ids = [tokenizer.cls_token_id] + content
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()  # (n+1, V)
    logits[:, disallowed] = -np.inf
    log_probs = torch.log_softmax(logits, -1)
    targets = content + [tokenizer.sep_token_id]
    return float(sum(log_probs[t, target] for t, target in enumerate(targets))), log_probs[-1].numpy()


def test_adapters_implement_the_protocols(bert, gpt2, tokenizer):
    assert isinstance(HFMaskedLM(bert, tokenizer), MaskedLanguageModel)
    assert isinstance(HFCausalLM(gpt2, tokenizer), CausalLanguageModel)


def test_special_ids_cover_tokenizer_specials_and_padded_vocabulary(bert, tokenizer):
    lm = HFMaskedLM(bert, tokenizer)
    assert lm.vocab_size == len(tokenizer) + 3
    expected = {tokenizer.convert_tokens_to_ids(t) for t in SPECIALS + ["[unused0]"]}  # BERT's placeholders too
    expected |= set(range(len(tokenizer), lm.vocab_size))
    assert lm.special_token_ids == frozenset(expected)
    assert lm.max_length == 16 - 2


def test_masked_conditionals_equal_full_softmax(bert, tokenizer):
    lm = HFMaskedLM(bert, tokenizer)
    rng = np.random.default_rng(0)
    lengths = [1, 3, 7, 14, 5]
    batch = random_batch(rng, 5, CONTENT_END, lengths)
    positions = np.array([0, 2, 3, 13, 4])
    got = lm.masked_log_probs(batch, positions)
    assert got.shape == (5, lm.vocab_size) and got.dtype == np.float64
    for n in range(5):
        want = direct_masked(bert, tokenizer, batch[n], positions[n], lm.special_token_ids)
        np.testing.assert_allclose(got[n], want, atol=2e-5)
    special = sorted(lm.special_token_ids)
    assert np.all(got[:, special] == -np.inf)  # special tokens never get probability
    np.testing.assert_allclose(np.exp(got).sum(axis=1), 1.0, atol=1e-5)


def test_masked_ignores_the_token_at_the_position_and_the_batch_companions(bert, tokenizer):
    lm = HFMaskedLM(bert, tokenizer)
    rng = np.random.default_rng(1)
    batch = random_batch(rng, 5, CONTENT_END, [6, 6, 2])
    changed = batch.copy()
    changed[0, 2] = 7 if batch[0, 2] != 7 else 8
    together = lm.masked_log_probs(batch, np.array([2, 1, 0]))
    np.testing.assert_allclose(lm.masked_log_probs(changed[:1], np.array([2])), together[:1], atol=1e-6)
    # a row's answer does not depend on the padding width or on the other rows
    alone = lm.masked_log_probs(batch[2:, :2], np.array([0]))
    np.testing.assert_allclose(alone[0], together[2], atol=1e-5)


def test_masked_head_only_path_equals_full_model_path(bert, tokenizer):
    lm = HFMaskedLM(bert, tokenizer)
    fallback = HFMaskedLM(bert, tokenizer)
    fallback._head = None  # full model output, then gather
    batch = random_batch(np.random.default_rng(2), 5, CONTENT_END, [4, 9])
    positions = np.array([3, 0])
    np.testing.assert_allclose(lm.masked_logits(batch, positions), fallback.masked_logits(batch, positions), atol=1e-5)


def test_masked_torch_twin_and_bf16(bert, tokenizer):
    lm = HFMaskedLM(bert, tokenizer)
    batch = random_batch(np.random.default_rng(3), 5, CONTENT_END, [5, 3])
    positions = np.array([1, 2])
    torch_out = lm.masked_log_probs_torch(torch.as_tensor(batch), torch.as_tensor(positions))
    assert torch_out.dtype == torch.float32
    np.testing.assert_array_equal(torch_out.double().numpy(), lm.masked_log_probs(batch, positions))
    low = HFMaskedLM(BertForMaskedLM(bert.config).to(torch.bfloat16), tokenizer)
    out = low.masked_log_probs_torch(torch.as_tensor(batch), torch.as_tensor(positions))
    assert out.dtype == torch.float32  # the log-softmax is float32 whatever the model dtype
    np.testing.assert_allclose(out.exp().sum(-1).numpy(), 1.0, atol=1e-5)


def test_distilbert_head_layout(tokenizer):
    torch.manual_seed(2)
    config = DistilBertConfig(
        vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=16
    )
    model = DistilBertForMaskedLM(config).eval()
    lm = HFMaskedLM(model, tokenizer)
    assert lm._head is not None
    batch = random_batch(np.random.default_rng(4), 5, CONTENT_END, [4])
    want = direct_masked(model, tokenizer, batch[0], 2, lm.special_token_ids)
    np.testing.assert_allclose(lm.masked_log_probs(batch, np.array([2]))[0], want, atol=2e-5)


def test_sequence_log_probs_equal_direct_sum(gpt2, tokenizer):
    lm = HFCausalLM(gpt2, tokenizer)
    assert lm.end_token_id == tokenizer.sep_token_id and lm.max_length == 15
    disallowed = sorted(lm.special_token_ids - {lm.end_token_id})
    rng = np.random.default_rng(5)
    lengths = [0, 1, 4, 15, 8]
    batch = random_batch(rng, 5, CONTENT_END, lengths)
    got = lm.sequence_log_probs(batch)
    assert got.shape == (5,) and got.dtype == np.float64
    for n in range(5):
        want, _ = direct_sequence(gpt2, tokenizer, batch[n], disallowed)
        assert got[n] == pytest.approx(want, abs=1e-4)


def test_sequence_log_probs_chunked_head_equals_unchunked(gpt2, tokenizer, monkeypatch):
    import textsampling.lm.hf_causal as hf_causal

    lm = HFCausalLM(gpt2, tokenizer)
    batch = random_batch(np.random.default_rng(6), 5, CONTENT_END, [3, 9, 6])
    whole = lm.sequence_log_probs(batch)
    # two positions per chunk, whichever device's chunk size applies
    monkeypatch.setattr(hf_causal, "CHUNK_ELEMENTS", lm.vocab_size * 2)
    monkeypatch.setattr(hf_causal, "CPU_CHUNK_ELEMENTS", lm.vocab_size * 2)
    np.testing.assert_allclose(lm.sequence_log_probs(batch), whole, atol=1e-5)


def test_next_token_log_probs_equal_direct_and_chain_rule(gpt2, tokenizer):
    lm = HFCausalLM(gpt2, tokenizer)
    disallowed = sorted(lm.special_token_ids - {lm.end_token_id})
    batch = random_batch(np.random.default_rng(7), 5, CONTENT_END, [0, 2, 5])
    got = lm.next_token_log_probs(batch)
    for n in range(3):
        _, want = direct_sequence(gpt2, tokenizer, batch[n], disallowed)
        np.testing.assert_allclose(got[n], want, atol=2e-5)
    assert np.all(got[:, disallowed] == -np.inf)
    assert np.all(np.isfinite(got[:, lm.end_token_id]))  # END is a valid outcome
    # chain rule: log p(x, END) = sum of next-token log-probs along the prefix
    row = batch[2:3]
    total = sum(lm.next_token_log_probs(np.where(np.arange(5) < t, row, PAD))[0, row[0, t]] for t in range(5))
    total += lm.next_token_log_probs(row)[0, lm.end_token_id]
    assert lm.sequence_log_probs(row)[0] == pytest.approx(total, abs=1e-4)


def test_causal_torch_twin(gpt2, tokenizer):
    lm = HFCausalLM(gpt2, tokenizer)
    batch = random_batch(np.random.default_rng(8), 5, CONTENT_END, [3, 6])
    out = lm.sequence_log_probs_torch(torch.as_tensor(batch))
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.double().numpy(), lm.sequence_log_probs(batch))
    np.testing.assert_array_equal(
        lm.next_token_log_probs_torch(torch.as_tensor(batch)).double().numpy(), lm.next_token_log_probs(batch)
    )


@pytest.mark.parametrize(
    "token_ids, positions, error, match",
    [
        (np.zeros((2, 3)), [0, 0], TypeError, "token_ids must hold integer"),
        (np.zeros(3, dtype=int), [0], ValueError, "2-D"),
        (np.array([[5, PAD, 6]]), [0], ValueError, "padded on the right"),
        (np.array([[5, 999]]), [0], ValueError, r"\[0, "),
        (np.full((1, 15), 5), [0], ValueError, "longer than the model's maximum 14"),
        (np.array([[5, 6, PAD]]), [2], ValueError, "positions must satisfy"),
        (np.array([[5, 6]]), [0, 1], ValueError, "positions must have shape"),
        (np.array([[5, 6]]), [0.0], TypeError, "positions must hold integers"),
    ],
)
def test_masked_bad_input(bert, tokenizer, token_ids, positions, error, match):
    with pytest.raises(error, match=match):
        HFMaskedLM(bert, tokenizer).masked_log_probs(token_ids, np.asarray(positions))


def test_causal_bad_input(gpt2, tokenizer):
    lm = HFCausalLM(gpt2, tokenizer)
    with pytest.raises(ValueError, match="longer than the model's maximum 15"):
        lm.sequence_log_probs(np.full((1, 16), 5))
    with pytest.raises(ValueError, match="padded on the right"):
        lm.next_token_log_probs(np.array([[PAD, 5]]))


def test_encode_decode_round_trip(gpt2, tokenizer):
    lm = HFCausalLM(gpt2, tokenizer)
    ids = lm.encode(["The king", "a fair night of love"])
    assert ids.shape == (2, 5) and ids[0, 2] == PAD
    assert lm.decode(ids) == ["the king", "a fair night of love"]
    assert lm.decode(ids[1]) == "a fair night of love"
