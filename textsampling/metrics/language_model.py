r"""Perplexity of texts under a scoring causal language model.

.. math::
    \mathrm{PPL} = \exp\Big(-\frac{\sum_s \log q(s, \mathrm{END})}{\sum_s (|s| + 1)}\Big),

END counted as a token, as in the held-out perplexity of the tiny-shakespeare model card. (An HF
adapter renormalises each conditional without the special ids, so its perplexity can be slightly
lower than that of the raw softmax the training script reports.) The scoring model should not be the
one that sampled; its number is comparable only with other numbers under the same model and tokenizer.
"""

from __future__ import annotations

import numpy as np

from textsampling._validation import check_int

__all__ = ["perplexity", "scorable_rows"]

PAD = -1  # the padding id of every token array (textsampling.targets.base.PAD; this layer sits below it)


def perplexity(causal_lm, token_ids, batch_size: int | None = None) -> float:
    """Perplexity of PAD-padded content ids under a causal LM, END counted as a token.

    Parameters
    ----------
    causal_lm : CausalLanguageModel
        The scoring model (e.g. ``load_causal_lm("tiny-shakespeare")``), not the one that sampled:
        anything with ``sequence_log_probs(token_ids (N, L)) -> (N,)``.
    token_ids : array_like, shape (N, L)
        In the scoring model's vocabulary (``causal_lm.encode(texts)`` for texts); ``PAD = -1``.
    batch_size : int, optional
        Rows scored per call (default: all at once).
    """
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 2 or token_ids.shape[0] == 0:
        raise ValueError(f"token_ids must be a non-empty (N, L) array, got shape {token_ids.shape}")
    size = token_ids.shape[0] if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
    # Rows in order of length, so that each batch is padded only to its own longest row: with sentences
    # of 5 to 60 tokens, batches in the given order would run the model on ~4x more padding than text.
    order = np.argsort((token_ids != PAD).sum(axis=1), kind="stable")
    log_probs = np.concatenate([
        np.asarray(causal_lm.sequence_log_probs(token_ids[order[start : start + size]]), dtype=np.float64)
        for start in range(0, token_ids.shape[0], size)
    ])
    num_tokens = int((token_ids != PAD).sum()) + token_ids.shape[0]  # + END per sentence
    return float(np.exp(-log_probs.sum() / num_tokens))


def scorable_rows(causal_lm, token_ids) -> np.ndarray:
    """``(N,)`` bool: rows the model can score — non-empty, within ``max_length``, no special id ([UNK]...).

    A special id has probability 0 under an adapter that masks them (log 0 = -inf), and a row longer
    than the model's context cannot be scored at all; :func:`perplexity` should get the others.
    """
    token_ids = np.asarray(token_ids)
    lengths = (token_ids != PAD).sum(axis=1)
    keep = lengths > 0
    max_length = getattr(causal_lm, "max_length", None)
    if max_length is not None:
        keep &= lengths <= max_length
    special = np.array(sorted(getattr(causal_lm, "special_token_ids", ())), dtype=token_ids.dtype)
    if special.size:
        keep &= ~np.isin(token_ids, special).any(axis=1)
    return keep
