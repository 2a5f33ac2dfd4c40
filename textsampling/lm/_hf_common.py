"""Helpers shared by the Hugging Face adapters: special ids, batch checks, padding conversions."""

from __future__ import annotations

import re

import numpy as np
import torch

from textsampling.targets.base import PAD

_PLACEHOLDER = re.compile(r"^(\[unused\d+\]|<unused\d+>)$")

__all__ = ["special_token_ids", "content_max_length", "as_token_tensor", "encode_texts", "decode_rows"]

#: models that offset position ids by ``padding_idx + 1``, so two positions are never usable
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "longformer"}


def display_name(model) -> str:
    """The checkpoint's name for ``repr``: a built-in model as ``tiny-shakespeare/mlm`` (no path of the
    machine it was installed on), any other as it was given to the loader."""
    from pathlib import Path

    name = getattr(model.config, "_name_or_path", "") or type(model).__name__
    models = Path(__file__).resolve().parent.parent / "models"
    try:
        return Path(name).resolve().relative_to(models).as_posix()
    except (ValueError, OSError):
        return name


def special_token_ids(tokenizer, vocab_size: int) -> frozenset:
    """Every id a sampler must never produce.

    The tokenizer's special tokens (``[MASK]``, ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``, BOS/EOS,
    additional specials), added tokens marked special, BERT's placeholder tokens ``[unused0]`` ...
    (never seen in training, so their logits are noise), and ids the model scores but the tokenizer
    cannot decode (embedding matrices are often padded past the vocabulary, e.g. to a multiple of 64).
    """
    ids = set(int(i) for i in tokenizer.all_special_ids if i is not None)
    ids.update(int(i) for token, i in tokenizer.get_vocab().items() if _PLACEHOLDER.match(token))
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    ids.update(range(len(tokenizer), vocab_size))
    return frozenset(i for i in ids if 0 <= i < vocab_size)


def content_max_length(config, tokenizer, kind: str) -> int:
    """Longest content sequence (no [CLS]/[SEP]/BOS) a model of ``kind`` takes, from config and tokenizer.

    The model's positions (``n_positions`` or ``max_position_embeddings``; RoBERTa-like models lose two to
    their offset), capped by the tokenizer's ``model_max_length``, minus the frame: 2 tokens ([CLS], [SEP])
    for ``kind="masked"``, 1 (the BOS) for ``kind="causal"``. Needs no weights, so bad lengths can be
    refused before a model loads.
    """
    if kind == "masked":
        positions = getattr(config, "max_position_embeddings", None) or 512
        if getattr(config, "model_type", "") in _OFFSET_POSITIONS:
            positions -= 2
    elif kind == "causal":
        positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 1024
    else:
        raise ValueError(f"kind must be 'masked' or 'causal', got {kind!r}")
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit and tokenizer_limit < 1_000_000:
        positions = min(positions, int(tokenizer_limit))
    return int(positions) - (2 if kind == "masked" else 1)


def as_token_tensor(token_ids, vocab_size: int, name: str = "token_ids") -> torch.Tensor:
    """Check a PAD-padded ``(N, L)`` batch of content ids and return it as an int64 tensor (same device).

    Valid: integer dtype, 2-D, entries in ``[0, vocab_size)`` or ``PAD = -1``, padding only on the right.
    """
    if isinstance(token_ids, torch.Tensor):
        tensor = token_ids
        if tensor.dtype.is_floating_point or tensor.dtype == torch.bool or tensor.is_complex():
            raise TypeError(f"{name} must hold integer token ids, got dtype {tensor.dtype}")
    else:
        array = np.asarray(token_ids)
        if array.dtype.kind not in "iu":
            if array.size == 0 and array.dtype.kind == "f":
                array = array.astype(np.int64)  # np.asarray([[]]) is float; an empty batch has no bad values
            else:
                raise TypeError(f"{name} must hold integer token ids (PAD = -1 for padding), got dtype {array.dtype}")
        tensor = torch.as_tensor(array.astype(np.int64))
    if tensor.dim() != 2:
        raise ValueError(f"{name} must be a 2-D (num_sequences, length) array, got shape {tuple(tensor.shape)}")
    tensor = tensor.long()
    if tensor.numel() and (bool((tensor < PAD).any()) or bool((tensor >= vocab_size).any())):
        raise ValueError(f"{name} entries must lie in [0, {vocab_size}) or be PAD = {PAD}")
    present = tensor != PAD  # (N, L)
    if tensor.shape[1] > 1 and bool((present[:, 1:] & ~present[:, :-1]).any()):
        raise ValueError(f"{name} must be padded on the right: a token follows a PAD = {PAD}")
    return tensor


def encode_texts(tokenizer, texts) -> np.ndarray:
    """Texts -> PAD-padded ``(N, L)`` int64 array of content ids (no [CLS]/[SEP]/BOS added)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got a single string; wrap it in a list")
    rows = [tokenizer.encode(text, add_special_tokens=False) for text in texts]
    width = max((len(row) for row in rows), default=0)
    batch = np.full((len(rows), width), PAD, dtype=np.int64)
    for index, row in enumerate(rows):
        batch[index, : len(row)] = row
    return batch


def decode_rows(tokenizer, token_ids):
    """One row ``(L,)`` -> str; a batch ``(N, L)`` -> list of N str (PAD dropped in both).

    A tokenizer with a WordPiece decoder (the built-in models, BERT) is detokenised as a reader writes
    (:func:`textsampling.lm.detokenize.detokenize`: ``'tis to-morrow, do't``, not ``' tis to - morrow,
    do ' t``); any other (GPT-2's byte-level BPE, SentencePiece) gives exactly ``tokenizer.decode``.
    """
    from textsampling.lm.detokenize import detokenize, wordpiece_prefix

    array = np.asarray(token_ids.cpu() if isinstance(token_ids, torch.Tensor) else token_ids)
    rows = [[int(t) for t in row if t != PAD] for row in np.atleast_2d(array)]
    prefix = wordpiece_prefix(tokenizer)
    if prefix is None:
        texts = [tokenizer.decode(row) for row in rows]
    else:
        # an id past the vocabulary has no token (None); tokenizer.decode skips it, and so do we
        texts = [detokenize([t for t in tokenizer.convert_ids_to_tokens(row) if t is not None], prefix) for row in rows]
    return texts[0] if array.ndim == 1 else texts
