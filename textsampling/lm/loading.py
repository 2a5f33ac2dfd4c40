"""Load a language model by name: the built-in ``tiny-shakespeare``, a local folder, or a hub name.

Everything that can be wrong with a model choice is reported here, before any sampling starts:

* an empty or non-string name, a local folder that does not exist or holds no ``config.json``;
* a causal checkpoint where a masked LM is needed, and vice versa (read from ``config.json``'s
  ``architectures``, before the weights are loaded);
* a hub name while the hub cannot be reached: with ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``)
  or no network, and the model not in the local Hugging Face cache, :class:`ModelNotAvailableError`
  comes at once — we never wait for the HTTP client's retries and timeouts.

Sequences longer than the model's maximum and keywords the tokenizer cannot represent are refused by
the adapters (``max_length``) and :func:`encode_keywords`; :func:`inspect_model` reads a checkpoint's
config and tokenizer without its weights, so those can be refused before a model loads.

Loading runs no code from a model folder:

* weights are read from safetensors files only (``use_safetensors=True``): a folder that holds only
  pickle weights (``pytorch_model.bin``, ``*.pt``, ``*.ckpt``...) is refused with
  :class:`PickleWeightsError`, because unpickling can execute arbitrary code, unless the caller opts in
  with ``allow_pickle=True`` (``textsampling generate --allow-pickle``);
* ``trust_remote_code=False`` is passed to every ``from_pretrained``: Python files shipped with a
  checkpoint (``auto_map`` in its config) are never imported.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

__all__ = [
    "BUILTIN_MODELS",
    "ModelNotAvailableError",
    "PickleWeightsError",
    "ModelInfo",
    "inspect_model",
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


#: weight files that are Python pickles (loading one may execute code written into it)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
#: options every ``from_pretrained`` call gets: never import code shipped with a checkpoint
_NO_REMOTE_CODE = {"trust_remote_code": False}


class ModelNotAvailableError(OSError):
    """The model named cannot be loaded here (hub offline or unreachable, built-in weights missing)."""


class PickleWeightsError(ValueError):
    """A checkpoint whose weights exist only as pickle files, refused unless ``allow_pickle=True``."""


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
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


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
            f"name_or_path {text!r} is neither a local folder nor a hub name like 'gpt2' or "
            "'google-bert/bert-base-uncased'"
        )
    return text, False


def _load_config(source: str, local: bool):
    from transformers import AutoConfig

    if local:
        try:
            return AutoConfig.from_pretrained(source, local_files_only=True, **_NO_REMOTE_CODE)
        except ValueError:
            if "auto_map" in (Path(source) / "config.json").read_text():
                raise ValueError(
                    f"name_or_path {source!r} needs Python code shipped in the folder (auto_map in config.json) "
                    "to build its model; textsampling never runs code from a model folder (trust_remote_code=False). "
                    "Use a checkpoint of an architecture that transformers itself provides."
                ) from None
            raise
    try:  # already in the Hugging Face cache: works offline
        return AutoConfig.from_pretrained(source, local_files_only=True, **_NO_REMOTE_CODE)
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
    return AutoConfig.from_pretrained(source, **_NO_REMOTE_CODE)


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


def _pickle_refusal(name: str, found: str) -> PickleWeightsError:
    return PickleWeightsError(
        f"name_or_path {name!r} has no safetensors weights, only pickle files ({found}); unpickling a file can "
        "run any code written into it, so it is refused. Convert the checkpoint to safetensors where you trust it "
        "(load it and call model.save_pretrained(folder)), or, if you trust this folder, opt in with "
        "--allow-pickle (allow_pickle=True in Python)."
    )


def _use_safetensors(name: str, source: str, local: bool, allow_pickle: bool):
    """The ``use_safetensors`` value to load with; refuses a local folder holding only pickle weights.

    A local folder is judged by its files: safetensors present -> True; only pickle files -> refused
    (or False with ``allow_pickle``); neither -> :class:`FileNotFoundError`. A hub checkpoint: True, or
    None with ``allow_pickle`` (transformers then prefers safetensors and falls back to the pickle).
    """
    if not local:
        return None if allow_pickle else True
    folder = Path(source)
    names = sorted(path.name for path in folder.iterdir() if path.is_file())
    if any(name_.endswith(".safetensors") or name_.endswith(".safetensors.index.json") for name_ in names):
        return True
    pickles = [name_ for name_ in names if name_.endswith(PICKLE_SUFFIXES) or name_.endswith(".bin.index.json")]
    if pickles:
        if not allow_pickle:
            raise _pickle_refusal(name, ", ".join(pickles))
        return False
    raise FileNotFoundError(f"name_or_path {name!r} holds no weights: expected model.safetensors in {folder}")


class ModelInfo(NamedTuple):
    """What :func:`inspect_model` reads without loading weights."""

    source: str  #: folder or hub name to load from
    local: bool  #: a local folder (or a built-in model)
    kind: str  #: "masked" or "causal"
    config: object  #: the ``transformers`` config
    tokenizer: object  #: the ``transformers`` tokenizer
    max_length: int  #: longest content sequence, as the adapter's ``max_length``
    use_safetensors: object  #: True, or False / None where pickle weights were allowed


def _display_name(name_or_path) -> str:
    return os.fspath(name_or_path) if isinstance(name_or_path, (str, os.PathLike)) else repr(name_or_path)


def inspect_model(name_or_path, kind: str, allow_pickle: bool = False) -> ModelInfo:
    """Config, tokenizer and content length of a checkpoint, and its weight format, without its weights.

    Every refusal of :func:`load_masked_lm` / :func:`load_causal_lm` that does not need the weights
    happens here: bad names, missing folders, a checkpoint of the other kind, pickle-only weights.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        As in :func:`load_masked_lm`.
    kind : {"masked", "causal"}
    allow_pickle : bool
        Accept a checkpoint whose weights exist only as pickle files (default False: refused).
    """
    from textsampling.lm._hf_common import content_max_length

    if kind not in _KIND_FOLDER:
        raise ValueError(f"kind must be 'masked' or 'causal', got {kind!r}")
    source, local = _resolve(name_or_path, kind)
    name = _display_name(name_or_path)
    with quiet_transformers():
        config = _load_config(source, local)
        found = _checkpoint_kind(config)
        other = {"masked": "causal", "causal": "masked"}[kind]
        if found == other:
            example = {"masked": "bert-base-uncased", "causal": "gpt2"}[kind]
            raise ValueError(
                f"name_or_path {name!r} is a {other} LM ({', '.join(config.architectures or [])}), "
                f"but a {kind} LM is needed here (e.g. 'tiny-shakespeare' or {example!r}); "
                f"use load_{other}_lm for this model"
            )
        use_safetensors = _use_safetensors(name, source, local, allow_pickle)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, **_local_options(local), **_NO_REMOTE_CODE)
    max_length = content_max_length(config, tokenizer, kind)
    return ModelInfo(source, local, kind, config, tokenizer, max_length, use_safetensors)


def _local_options(local: bool) -> dict:
    return {"local_files_only": True} if local or hub_is_offline() else {}


@contextmanager
def quiet_transformers():
    """Silence ``transformers``' progress bars ("Loading weights") and its info/warning logs meanwhile.

    What matters of its warnings is reported by the loader itself (weights the checkpoint lacks).
    """
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:  # the 'lm' extra is missing: the import error comes where transformers is used
        yield
        return
    verbosity = transformers_logging.get_verbosity()
    bars_were_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars_were_enabled:
            transformers_logging.enable_progress_bar()


def _load(name_or_path, kind: str, device, dtype, allow_pickle: bool = False):
    info = inspect_model(name_or_path, kind, allow_pickle)
    name = _display_name(name_or_path)
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    auto = AutoModelForMaskedLM if kind == "masked" else AutoModelForCausalLM
    options = dict(_local_options(info.local), **_NO_REMOTE_CODE)
    if info.use_safetensors is not None:
        options["use_safetensors"] = info.use_safetensors
    with quiet_transformers():
        try:
            model, loading_info = auto.from_pretrained(
                info.source, config=info.config, dtype=_torch_dtype(dtype), output_loading_info=True, **options
            )
        except ValueError as error:  # the config names no model of this kind
            raise ValueError(f"name_or_path {name!r} cannot be loaded as a {kind} LM: {error}") from None
        except OSError as error:
            # a hub checkpoint without safetensors weights (transformers names the file it did not find)
            if not info.local and info.use_safetensors and "safetensors" in str(error):
                raise _pickle_refusal(name, f"no model.safetensors on the hub: {error}") from None
            raise
    missing = list(loading_info.get("missing_keys") or [])
    if missing:
        import warnings

        warnings.warn(
            f"{name!r}: the checkpoint lacks {len(missing)} weight tensors of the {kind} LM (e.g. {missing[0]}); "
            "they are randomly initialised, so its outputs are noise there",
            stacklevel=3,
        )
    if device is not None:
        model = model.to(device)
    return model, info.tokenizer


def load_masked_lm(name_or_path="tiny-shakespeare", device=None, dtype=None, allow_pickle=False):
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
    allow_pickle : bool, optional
        Load pickle weights (``pytorch_model.bin``) when a checkpoint has no safetensors. Default False:
        such a checkpoint is refused with :class:`PickleWeightsError`, because unpickling can run code.
        Code shipped with a checkpoint (``trust_remote_code``) is never run, whatever this says.
    """
    from textsampling.lm.hf_masked import HFMaskedLM

    return HFMaskedLM(*_load(name_or_path, "masked", device, dtype, allow_pickle))


def load_causal_lm(name_or_path="tiny-shakespeare", device=None, dtype=None, allow_pickle=False):
    """A :class:`~textsampling.lm.hf_causal.HFCausalLM` for CGMH, annealing and decoding.

    Parameters are those of :func:`load_masked_lm`.
    """
    from textsampling.lm.hf_causal import HFCausalLM

    return HFCausalLM(*_load(name_or_path, "causal", device, dtype, allow_pickle))


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
        if ids[: len(prefix)] == prefix:
            ids = ids[len(prefix) :]
        else:
            ids = tokenizer.encode(word.strip(), add_special_tokens=False)
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
