"""Load a language model by name: the built-in ``tiny-shakespeare``, a local folder, or a hub name.

Everything that can be wrong with a model choice is reported here, before any sampling starts:

* an empty or non-string name, a local folder that does not exist or holds no ``config.json``;
* a causal checkpoint where a masked LM is needed, and vice versa (read from ``config.json``'s
  ``architectures``, before the weights are loaded);
* a hub name while the hub cannot be reached: with ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``)
  or no network, and the model not in the local Hugging Face cache, :class:`ModelNotAvailableError`
  comes at once — we never wait for the HTTP client's retries and timeouts.

Sequences longer than the model's maximum and keywords the tokenizer cannot represent are refused by
the adapters (``max_length``) and :func:`encode_keywords`.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

__all__ = [
    "BUILTIN_MODELS",
    "ModelNotAvailableError",
    "builtin_model_path",
    "hub_is_offline",
    "load_masked_lm",
    "load_causal_lm",
    "encode_keywords",
    "bert_style_tokenizer",
]

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
#: name -> folder under textsampling/models holding ``mlm/`` and ``clm/``
BUILTIN_MODELS = {"tiny-shakespeare": "tiny-shakespeare"}
_KIND_FOLDER = {"masked": "mlm", "causal": "clm"}
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


class ModelNotAvailableError(OSError):
    """The model named cannot be loaded here (hub offline or unreachable, built-in weights missing)."""


def builtin_model_path(name: str, kind: str) -> Path:
    """Folder of a built-in model: ``textsampling/models/<name>/{mlm,clm}``."""
    folder = MODELS_DIR / BUILTIN_MODELS[name] / _KIND_FOLDER[kind]
    if not (folder / "config.json").is_file():
        raise ModelNotAvailableError(
            f"the built-in model {name!r} is missing its {kind} weights at {folder}; "
            "rebuild them with `python scripts/train_tiny_models.py` or reinstall textsampling"
        )
    return folder


def hub_is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_is_reachable(timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to the hub within ``timeout`` seconds (DNS included)?

    The check runs in a daemon thread so that a resolver which hangs cannot hold us longer.
    """
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    result = []

    def connect():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _checkpoint_kind(config) -> str:
    """'masked', 'causal' or 'unknown', from the architectures a checkpoint was saved with."""
    architectures = list(getattr(config, "architectures", None) or [])
    if any("MaskedLM" in name or name.endswith("ForPreTraining") for name in architectures):
        return "masked"
    if any("CausalLM" in name or name.endswith("LMHeadModel") for name in architectures):
        return "causal"
    if getattr(config, "is_decoder", False):
        return "causal"
    return "unknown"


def _resolve(name_or_path, kind: str):
    """(where to load from, whether it is local); raises the clear errors of the module docstring."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a str or path (e.g. 'tiny-shakespeare'), got {name_or_path!r}")
    text = os.fspath(name_or_path)
    if not text.strip():
        raise ValueError(
            "name_or_path is empty: give 'tiny-shakespeare' (built in), a local checkpoint folder, "
            "or a Hugging Face hub name"
        )
    if text in BUILTIN_MODELS:
        return str(builtin_model_path(text, kind)), True
    path = Path(text).expanduser()
    if text.startswith((".", "/", "~")) or path.exists():  # a path, not a hub name
        if not path.is_dir():
            raise FileNotFoundError(f"name_or_path {text!r}: no such folder (a local checkpoint is a folder)")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"name_or_path {text!r} holds no config.json: not a Hugging Face checkpoint folder")
        return str(path), True
    if not _HUB_NAME.match(text):
        raise ValueError(
            f"name_or_path {text!r} is neither a local folder nor a hub name like 'gpt2' or 'google-bert/bert-base-uncased'"
        )
    return text, False


def _load_config(source: str, local: bool):
    from transformers import AutoConfig

    if local:
        return AutoConfig.from_pretrained(source, local_files_only=True)
    try:  # already in the Hugging Face cache: works offline
        return AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        pass
    if hub_is_offline():
        raise ModelNotAvailableError(
            f"cannot load {source!r}: it is not a local folder nor in the Hugging Face cache, and the hub is "
            "offline (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set). Use the built-in 'tiny-shakespeare', a local "
            "checkpoint folder, or download the model where the hub is reachable."
        )
    if not hub_is_reachable():
        raise ModelNotAvailableError(
            f"cannot load {source!r}: it is not a local folder nor in the Hugging Face cache, and the hub "
            "(huggingface.co) cannot be reached from here. Use the built-in 'tiny-shakespeare' or a local folder."
        )
    return AutoConfig.from_pretrained(source)


def _torch_dtype(dtype):
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
    if dtype not in names:
        raise ValueError(f"dtype must be a torch dtype or one of {sorted(names)}, got {dtype!r}")
    return names[dtype]


def _load(name_or_path, kind: str, device, dtype):
    source, local = _resolve(name_or_path, kind)
    config = _load_config(source, local)
    found = _checkpoint_kind(config)
    other = {"masked": "causal", "causal": "masked"}[kind]
    if found == other:
        example = {"masked": "bert-base-uncased", "causal": "gpt2"}[kind]
        raise ValueError(
            f"name_or_path {os.fspath(name_or_path)!r} is a {other} LM ({', '.join(config.architectures or [])}), "
            f"but a {kind} LM is needed here (e.g. 'tiny-shakespeare' or {example!r}); "
            f"use load_{other}_lm for this model"
        )
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    auto = AutoModelForMaskedLM if kind == "masked" else AutoModelForCausalLM
    options = {"local_files_only": True} if local or hub_is_offline() else {}
    try:
        model = auto.from_pretrained(source, dtype=_torch_dtype(dtype), **options)
    except ValueError as error:  # the config names no model of this kind
        raise ValueError(f"name_or_path {os.fspath(name_or_path)!r} cannot be loaded as a {kind} LM: {error}") from None
    tokenizer = AutoTokenizer.from_pretrained(source, **options)
    if device is not None:
        model = model.to(device)
    return model, tokenizer


def load_masked_lm(name_or_path="tiny-shakespeare", device=None, dtype=None):
    """A :class:`~textsampling.lm.hf_masked.HFMaskedLM` for MLM Gibbs / MLM-MH.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        ``"tiny-shakespeare"`` (built in, offline), a local checkpoint folder, or a hub name
        (only where the hub is reachable or the model is cached).
    device : str or torch.device, optional
        Where to put the model (default: CPU).
    dtype : torch.dtype or str, optional
        Weights' dtype (default float32); log-softmaxes are float32 in any case.
    """
    from textsampling.lm.hf_masked import HFMaskedLM

    return HFMaskedLM(*_load(name_or_path, "masked", device, dtype))


def load_causal_lm(name_or_path="tiny-shakespeare", device=None, dtype=None):
    """A :class:`~textsampling.lm.hf_causal.HFCausalLM` for CGMH, annealing and decoding.

    Parameters are those of :func:`load_masked_lm`.
    """
    from textsampling.lm.hf_causal import HFCausalLM

    return HFCausalLM(*_load(name_or_path, "causal", device, dtype))


def encode_keywords(tokenizer, words) -> list:
    """Token ids of each keyword as it appears inside a sentence, refusing what cannot be represented.

    A keyword is encoded after a space (``"x " + word`` minus the ids of ``"x"``), so a byte-level BPE
    such as GPT-2's gives the mid-sentence form (``Ġking``), and WordPiece gives the usual pieces.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerBase
    words : sequence of str
        The keywords, e.g. ``["king", "crown"]``.

    Returns
    -------
    list of list of int
        One non-empty id list per keyword (several ids when the word splits into sub-words).

    Raises
    ------
    ValueError
        For an empty list, an empty keyword, or a keyword containing [UNK] or another special token
        after tokenisation (e.g. a character outside the tokenizer's alphabet).
    """
    if isinstance(words, str) or not hasattr(words, "__iter__"):
        raise TypeError(f"words must be a list of strings such as ['king', 'crown'], got {words!r}")
    words = list(words)
    if not words:
        raise ValueError("words is empty: give at least one keyword")
    special = set(i for i in tokenizer.all_special_ids if i is not None)
    prefix = tokenizer.encode("x", add_special_tokens=False)
    encoded = []
    for word in words:
        if not isinstance(word, str) or not word.strip():
            raise ValueError(f"words: each keyword must be a non-empty string, got {word!r}")
        ids = tokenizer.encode("x " + word.strip(), add_special_tokens=False)
        ids = ids[len(prefix) :] if ids[: len(prefix)] == prefix else tokenizer.encode(word.strip(), add_special_tokens=False)
        bad = [tokenizer.convert_ids_to_tokens(i) for i in ids if i in special]
        if not ids or bad:
            raise ValueError(
                f"words: the keyword {word!r} cannot be represented by this tokenizer "
                f"(it becomes {tokenizer.convert_ids_to_tokens(ids)}); choose words made of characters it knows"
            )
        encoded.append(ids)
    return encoded


def bert_style_tokenizer(tokenizer, max_length: int):
    """A ``transformers`` fast tokenizer over a ``tokenizers.Tokenizer`` with the five BERT specials.

    The convention of the built-in models: ``[CLS]`` is also the BOS and ``[SEP]`` the EOS (END), so a
    causal LM reads a sentence as ``[CLS] x_1 .. x_n [SEP]`` and a masked LM as BERT does.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        Its vocabulary must hold ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]`` and ``[MASK]``.
    max_length : int
        ``model_max_length`` of the result, in tokens.
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        bos_token="[CLS]",
        eos_token="[SEP]",
        model_max_length=max_length,
    )
