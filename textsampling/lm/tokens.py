r"""The token-sequence rules every language-model module follows, each written once.

A sequence of content tokens is an int array right-padded with ``PAD = -1``
(:data:`textsampling.targets.base.PAD`); a batch is ``(N, L)``. Four rules:

* **length** — the number of entries before the first PAD (:func:`sequence_length`,
  :func:`sequence_lengths`);
* **a valid sequence** — at least one token, then only PAD, at most ``max_length`` tokens
  (:func:`check_sequence`);
* **special tokens are never sampled** — a sampling row sets the log-probability of every id in
  ``special_token_ids`` to ``-inf`` (:func:`mask_special_tokens`; decoding keeps END with ``keep``);
* **ask about a masked position** — the conditional :math:`p(x_i = v \mid x_{-i})` is asked of a
  masked LM with ``[MASK]`` put at :math:`i` by the caller (:func:`with_mask_at`): a real BERT that sees
  :math:`x_i` leans toward it (SERIES.md part 3; :class:`~textsampling.lm.oracle.MaskSensitiveOracle`).

Each rule exists for NumPy arrays and, with the suffix ``_torch``, for tensors (the batched twins):
the same rule, side by side, so a twin and its reference cannot drift apart.
"""

from __future__ import annotations

import numpy as np

from textsampling.targets.base import PAD, sequence_length, sequence_lengths

__all__ = [
    "PAD",
    "sequence_length",
    "sequence_lengths",
    "sequence_lengths_torch",
    "check_sequence",
    "check_sequences_torch",
    "special_token_mask",
    "mask_special_tokens",
    "mask_special_tokens_torch",
    "with_mask_at",
    "with_mask_at_torch",
]


# ----------------------------------------------------------------------------- length
# sequence_length and sequence_lengths (NumPy) live beside PAD in textsampling.targets.base, which the
# targets use too (targets sit below lm); they are imported above and re-exported here.
def sequence_lengths_torch(x):
    """Torch rule of :func:`sequence_lengths`: ``(N, L)`` tensor -> int64 ``(N,)`` on its device."""
    import torch

    is_pad = x == PAD  # (N, L)
    return torch.where(is_pad.any(dim=1), torch.argmax(is_pad.to(torch.int64), dim=1), x.shape[1])  # (N,)


# ----------------------------------------------------------------------------- validity
def check_sequence(x, name: str = "x", *, max_length: int | None = None) -> np.ndarray:
    """``x`` as int64 if it is a valid sequence, else ``ValueError`` naming ``name``.

    Valid: a non-empty 1-D integer array of at least one token followed only by PAD, at most
    ``max_length`` tokens long when given. Token ids themselves are the model's to check.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "iu" or x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D integer sequence, got dtype {x.dtype}, shape {x.shape}")
    length = sequence_length(x)
    if length == 0:
        raise ValueError(f"{name} is empty (starts with PAD = {PAD}); give at least one token")
    if np.any(x[length:] != PAD):
        raise ValueError(f"{name} must hold tokens followed only by PAD = {PAD}, got {x.tolist()}")
    if max_length is not None and length > max_length:
        raise ValueError(f"{name} has length {length}, over the model's max_length = {max_length}")
    return x.astype(np.int64)


def check_sequences_torch(x, name: str = "x", *, max_length: int | None = None):
    """Torch rule of :func:`check_sequence` for a batch: every row of ``x`` ``(B, L)`` valid; int64 back.

    ``B, L >= 1`` (a leading chain dimension); a bad row is named by its index.
    """
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers (e.g. torch.int64), got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"{name} must have shape (B, L) with B, L >= 1 (a leading chain dimension), got {tuple(x.shape)}"
        )
    lengths = sequence_lengths_torch(x)  # (B,)
    past_end = torch.arange(x.shape[1], device=x.device)[None, :] >= lengths[:, None]  # (B, L)
    problems = [
        (lengths == 0, f"is empty (starts with PAD = {PAD}); give at least one token"),
        ((past_end & (x != PAD)).any(dim=1), f"must hold tokens followed only by PAD = {PAD}"),  # (B,)
    ]
    if max_length is not None:
        problems.append((lengths > max_length, f"is longer than the model's max_length = {max_length}"))
    for bad, what in problems:
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0, 0])
            raise ValueError(f"{name}[{row}] {what}, got {x[row].tolist()}")
    return x.to(torch.int64)


# ----------------------------------------------------------------------------- special tokens
def _special_columns(special_token_ids, vocab_size: int, keep=()) -> list:
    keep = {int(t) for t in keep}
    return sorted(int(t) for t in special_token_ids if 0 <= int(t) < vocab_size and int(t) not in keep)


def special_token_mask(special_token_ids, vocab_size: int, keep=()) -> np.ndarray:
    """Bool ``(vocab_size,)``: True at the ids :func:`mask_special_tokens` sets to ``-inf`` (to cache)."""
    mask = np.zeros(int(vocab_size), dtype=bool)
    mask[_special_columns(special_token_ids, int(vocab_size), keep)] = True
    return mask


def mask_special_tokens(log_probs, special_token_ids, keep=()) -> np.ndarray:
    """A float64 copy of ``log_probs`` ``(..., V)`` with every special id (but those in ``keep``) ``-inf``.

    The row a sampler draws from: [MASK], [CLS], END... are never produced whatever the model says
    (decoding passes ``keep=(end_token_id,)``: END ends a sentence there). Not renormalised.
    """
    row = np.array(log_probs, dtype=np.float64)
    row[..., _special_columns(special_token_ids, row.shape[-1], keep)] = -np.inf
    return row


def mask_special_tokens_torch(log_probs, special_token_ids, keep=(), copy=True):
    """Torch rule of :func:`mask_special_tokens`: a copy of ``(..., V)`` in ``log_probs``' dtype.

    ``copy=False`` writes into ``log_probs`` itself and returns it (for a caller that owns the tensor).
    """
    row = log_probs.clone() if copy else log_probs
    columns = _special_columns(special_token_ids, row.shape[-1], keep)
    if columns:
        row[..., columns] = -float("inf")
    return row


# ----------------------------------------------------------------------------- the masked position
def with_mask_at(x, positions, mask_token_id: int) -> np.ndarray:
    """A copy of ``x`` with ``[MASK]`` at the position(s) asked about: what a masked LM is shown.

    ``x`` ``(L,)`` with an int ``positions``, or ``(N, L)`` with ``positions`` ``(N,)`` (one per row).
    """
    query = np.array(x, dtype=np.int64)
    if query.ndim == 1:
        query[int(positions)] = int(mask_token_id)
    else:
        query[np.arange(query.shape[0]), np.asarray(positions, dtype=np.int64)] = int(mask_token_id)
    return query


def with_mask_at_torch(x, positions, mask_token_id: int):
    """Torch rule of :func:`with_mask_at` for a batch: ``x`` ``(N, L)``, ``positions`` ``(N,)``; a copy."""
    import torch

    fill = torch.full_like(positions[:, None], int(mask_token_id), dtype=x.dtype)  # (N, 1)
    return x.scatter(1, positions[:, None].to(torch.int64), fill)  # (N, L): x[n, positions[n]] = [MASK]
