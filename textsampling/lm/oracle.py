r"""The bigram oracle: a language model whose every answer is exact, for testing the LM samplers.

A :class:`~textsampling.targets.sequences.BigramLM` with END is both a causal LM and a masked LM with
closed-form answers, so :class:`BigramOracle` implements *both* protocols of
:mod:`textsampling.lm.base` exactly, and the samplers of parts 3–4 can be checked against enumerated
targets (SERIES.md, "How each algorithm is verified exactly").

Vocabulary: the bigram's tokens ``0..V-1``, then ``END = V`` and ``[MASK] = V + 1`` (both special,
never sampled), so :attr:`BigramOracle.vocab_size` is ``V + 2``.

Causal LM:

.. math::
    \log p(x_1..x_n, \mathrm{END}) = \log p(x_1) + \sum_{t=2}^{n} \log p(x_t \mid x_{t-1})
    + \log p(\mathrm{END} \mid x_n), \qquad
    \log p(x_{n+1} = v \mid x_{\le n}) = \log p(v \mid x_n).

Masked LM, for a sequence of length :math:`n` (the rows are PAD-padded; the length is given):

.. math::
    p(x_i = v \mid x_{-i}) \propto p(v \mid x_{i-1})\, p(x_{i+1} \mid v)

with :math:`p(v \mid x_0) := p(x_1 = v)` and :math:`p(x_{n+1} \mid v) := p(\mathrm{END} \mid v)`.
Other positions holding ``[MASK]`` are *marginalised* exactly (what an ideal masked LM does): with
:math:`T_{vw} = p(w \mid v)` over tokens, :math:`e_v = p(\mathrm{END} \mid v)`, the nearest observed
token :math:`x_a` left of :math:`i` and :math:`x_b` right of it,

.. math::
    p(x_i = v \mid \text{observed}) \propto (T^{i-a})_{x_a v}\, (T^{b-i})_{v x_b},

with :math:`(p_1^\top T^{i-1})_v` when nothing left is observed and :math:`(T^{n-i} e)_v` when nothing
right is. Matrix powers are taken in log space (``logsumexp`` products), so zeros stay ``-inf``.

The ``*_torch`` methods compute on the CPU in float64 through the NumPy methods and return a tensor on
the input's device: the oracle is a test fixture, exact rather than fast.

References: Wang & Cho (2019), arXiv:1902.04094 (the MLM conditional as a Gibbs conditional);
Miao et al. (2019), arXiv:1811.10996 (a causal LM scoring CGMH proposals); Su Jianlin, parts 3–4.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from textsampling.lm.tokens import PAD, sequence_lengths
from textsampling.targets.sequences import BigramLM

__all__ = ["BigramOracle", "MaskSensitiveOracle"]


def _log_matmul(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``log(exp(left) @ exp(right))`` without leaving log space (``-inf`` = probability 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return logsumexp(left[:, :, None] + right[None, :, :], axis=1)


class BigramOracle:
    """Exact masked *and* causal LM over a :class:`~textsampling.targets.sequences.BigramLM`.

    Parameters
    ----------
    bigram : BigramLM
        The model; its ``max_length`` is the longest sequence the oracle accepts.

    Attributes
    ----------
    vocab_size : int
        ``V + 2``: tokens, END, [MASK].
    end_token_id, mask_token_id : int
        ``V`` and ``V + 1``.
    special_token_ids : frozenset
        ``{END, [MASK]}``; their log-probabilities are ``-inf`` (END is a valid next token).
    max_length : int
        ``bigram.max_length``.
    num_tokens : int
        ``V``, the ordinary tokens ``0..V-1``.
    """

    def __init__(self, bigram: BigramLM):
        if not isinstance(bigram, BigramLM):
            raise TypeError(f"bigram must be a textsampling.targets.BigramLM, got {type(bigram).__name__}")
        self.bigram = bigram
        self.num_tokens = int(bigram.vocab_size)
        self.end_token_id = self.num_tokens
        self.mask_token_id = self.num_tokens + 1
        self.vocab_size = self.num_tokens + 2
        self.special_token_ids = frozenset({self.end_token_id, self.mask_token_id})
        self.max_length = int(bigram.max_length)
        vocab = self.num_tokens
        self._log_initial = bigram.log_initial  # (V,)
        self._log_step = bigram.log_transition[:, :vocab]  # (V, V)  log T
        self._log_end = bigram.log_transition[:, vocab]  # (V,)    log e
        # log T^k for k = 0..max_length (k = 0 is the identity: 0 on the diagonal, -inf elsewhere).
        with np.errstate(divide="ignore"):
            powers = [np.log(np.eye(vocab))]
        for _ in range(self.max_length):
            powers.append(_log_matmul(powers[-1], self._log_step))
        self._log_powers = powers

    @classmethod
    def for_fixed_length(cls, target, **kwargs):
        """The oracle whose joint on sentences of ``target.length`` tokens is ``target``.

        ``target`` is a :class:`~textsampling.targets.sequences.FixedLengthBigram` (``bigram-small`` of
        ``textsampling check``); ``kwargs`` go to the constructor (``visible_token_bonus`` of
        :class:`MaskSensitiveOracle`).
        """
        from textsampling.targets import FixedLengthBigram

        if not isinstance(target, FixedLengthBigram):
            raise ValueError(f"target must be a fixed-length bigram (e.g. bigram-small), got {target!r}")
        return cls(BigramLM(target.initial_logits, target.transition_logits, max_length=target.length), **kwargs)

    def __repr__(self) -> str:
        return f"BigramOracle({self.bigram!r})"

    # ----------------------------------------------------------------- checks
    def _rows(self, token_ids, name: str, allow_mask: bool) -> tuple[np.ndarray, np.ndarray]:
        """(token_ids as int64 (N, W), lengths (N,)): tokens before the first PAD, only PAD after."""
        token_ids = np.asarray(token_ids)
        if token_ids.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer token ids, got dtype {token_ids.dtype}")
        if token_ids.ndim != 2:
            raise ValueError(f"{name} must have shape (N, L) (PAD-padded rows), got {token_ids.shape}")
        token_ids = token_ids.astype(np.int64)
        is_pad = token_ids == PAD
        lengths = sequence_lengths(token_ids)  # (N,)
        width = token_ids.shape[1]
        inside = np.arange(width)[None, :] < lengths[:, None]
        valid = (token_ids >= 0) & (token_ids < self.num_tokens)
        if allow_mask:
            valid |= token_ids == self.mask_token_id
        if not np.all(np.where(inside, valid, is_pad)):
            allowed = f"0..{self.num_tokens - 1}" + (f" or [MASK] = {self.mask_token_id}" if allow_mask else "")
            raise ValueError(f"{name} must hold tokens in {allowed}, followed only by PAD = {PAD}")
        if np.any(lengths > self.max_length):
            raise ValueError(
                f"{name} has a sequence of length {int(lengths.max())}, over the model's "
                f"max_length = {self.max_length}"
            )
        return token_ids, lengths

    def _with_specials(self, log_probs: np.ndarray, end=None) -> np.ndarray:
        """Append the END and [MASK] columns (``-inf`` unless ``end`` is given)."""
        num_rows = log_probs.shape[0]
        end_column = np.full(num_rows, -np.inf) if end is None else end
        return np.concatenate([log_probs, end_column[:, None], np.full((num_rows, 1), -np.inf)], axis=1)

    # ----------------------------------------------------------------- masked LM
    def masked_logits(self, token_ids, positions) -> np.ndarray:
        """Unnormalised ``log p(v | left context) + log p(right context | v)``, shape ``(N, V + 2)``.

        The "raw logits" of the oracle MLM (the raw-logit energy of Goyal et al. 2022 sums them);
        :meth:`masked_log_probs` is their normalised form. Specials are ``-inf``.
        """
        token_ids, lengths = self._rows(token_ids, "token_ids", allow_mask=True)
        positions = np.asarray(positions)
        num_rows = token_ids.shape[0]
        if positions.dtype.kind not in "iu" or positions.shape != (num_rows,):
            raise ValueError(f"positions must be an ({num_rows},) int array (one per row), got {positions!r}")
        if np.any((positions < 0) | (positions >= lengths)):
            raise ValueError("positions must lie inside each row's sequence: 0 <= position < length")
        out = np.empty((num_rows, self.num_tokens))
        for n in range(num_rows):
            row, i, length = token_ids[n], int(positions[n]), int(lengths[n])
            observed = (row[:length] != self.mask_token_id) & (np.arange(length) != i)
            left = np.flatnonzero(observed[:i])
            right = np.flatnonzero(observed[i + 1 :]) + i + 1
            if left.size:
                a = int(left[-1])
                left_term = self._log_powers[i - a][row[a]]  # (T^{i-a})_{x_a, v}
            else:
                left_term = _log_matmul(self._log_initial[None, :], self._log_powers[i])[0]  # (p1 T^i)_v
            if right.size:
                b = int(right[0])
                right_term = self._log_powers[b - i][:, row[b]]  # (T^{b-i})_{v, x_b}
            else:
                right_term = _log_matmul(self._log_powers[length - 1 - i], self._log_end[:, None])[:, 0]
            out[n] = left_term + right_term
        return self._with_specials(out)

    def masked_log_probs(self, token_ids, positions) -> np.ndarray:
        """Exact :math:`\\log p(x_i = v \\mid x_{-i})` (others' [MASK] marginalised), ``(N, V + 2)``.

        A row whose context has probability zero is ``-inf`` everywhere (no conditional exists).
        """
        logits = self.masked_logits(token_ids, positions)
        with np.errstate(invalid="ignore"):
            log_total = logsumexp(logits, axis=1, keepdims=True)
        finite = np.isfinite(log_total)
        return np.where(finite, logits - np.where(finite, log_total, 0.0), -np.inf)

    # ----------------------------------------------------------------- causal LM
    def sequence_log_probs(self, token_ids) -> np.ndarray:
        """:math:`\\log p(x_1..x_n, \\mathrm{END})` of each PAD-padded row, ``(N,)``; ``-inf`` if empty."""
        token_ids, lengths = self._rows(token_ids, "token_ids", allow_mask=False)
        tokens = np.maximum(token_ids, 0)  # PAD slots are masked out below
        num_rows, width = tokens.shape
        if width == 0:
            return np.full(num_rows, -np.inf)
        out = self._log_initial[tokens[:, 0]].copy()
        for t in range(1, width):
            transition = self._log_step[tokens[:, t - 1], tokens[:, t]]
            out += np.where(t < lengths, transition, 0.0)
        last = tokens[np.arange(num_rows), np.maximum(lengths - 1, 0)]
        out += self._log_end[last]
        return np.where(lengths >= 1, out, -np.inf)

    def next_token_log_probs(self, token_ids) -> np.ndarray:
        """:math:`\\log p(x_{n+1} = v \\mid x_{\\le n})`, ``(N, V + 2)``; END valid (not after an empty prefix)."""
        token_ids, lengths = self._rows(token_ids, "token_ids", allow_mask=False)
        num_rows = token_ids.shape[0]
        out = np.empty((num_rows, self.num_tokens))
        end = np.full(num_rows, -np.inf)
        empty = lengths == 0
        out[empty] = self._log_initial
        if np.any(~empty):
            last = token_ids[np.flatnonzero(~empty), lengths[~empty] - 1]
            out[~empty] = self._log_step[last]
            end[~empty] = self._log_end[last]
        return self._with_specials(out, end)

    # ----------------------------------------------------------------- torch twins (exact, via NumPy)
    @staticmethod
    def _to_numpy(tensor):
        return tensor.detach().cpu().numpy()

    @staticmethod
    def _like(array, reference):
        import torch

        return torch.as_tensor(array, dtype=torch.float64, device=reference.device)

    def masked_logits_torch(self, token_ids, positions):
        """Torch twin of :meth:`masked_logits` (float64, on ``token_ids``' device)."""
        return self._like(self.masked_logits(self._to_numpy(token_ids), self._to_numpy(positions)), token_ids)

    def masked_log_probs_torch(self, token_ids, positions):
        """Torch twin of :meth:`masked_log_probs` (float64, on ``token_ids``' device)."""
        return self._like(self.masked_log_probs(self._to_numpy(token_ids), self._to_numpy(positions)), token_ids)

    def sequence_log_probs_torch(self, token_ids):
        """Torch twin of :meth:`sequence_log_probs`."""
        return self._like(self.sequence_log_probs(self._to_numpy(token_ids)), token_ids)

    def next_token_log_probs_torch(self, token_ids):
        """Torch twin of :meth:`next_token_log_probs`."""
        return self._like(self.next_token_log_probs(self._to_numpy(token_ids)), token_ids)

    # ----------------------------------------------------------------- decoding helpers
    def encode_keywords(self, words) -> list:
        """Token ids of keywords written as the oracle's token names ``"t0"``, ``"t1"``...: one list per word.

        Raises ``ValueError`` for a word that names no token (what a tokenizer cannot represent).
        """
        encoded = []
        for word in words:
            name = str(word).strip()
            if not (name.startswith("t") and name[1:].isdigit() and int(name[1:]) < self.num_tokens):
                raise ValueError(
                    f"words: the keyword {word!r} cannot be represented by the bigram oracle "
                    f"(its tokens are t0..t{self.num_tokens - 1})"
                )
            encoded.append([int(name[1:])])
        return encoded

    def decode(self, token_ids) -> str:
        """Readable text of one row: tokens as ``t0 t1 ...``, stopping at PAD."""
        return " ".join(f"t{int(t)}" for t in np.asarray(token_ids).reshape(-1) if t != PAD)


class MaskSensitiveOracle(BigramOracle):
    r"""The bigram oracle, except that it *looks at* the token it is asked about, as a real BERT does.

    A real masked LM predicts position :math:`i` from whatever sits there: with ``[MASK]`` it gives the
    conditional :math:`p(x_i = v \mid x_{-i})`; shown the token itself it raises that token's logit
    (it can see the answer). Code that resamples :math:`x_i` must therefore put ``[MASK]`` at :math:`i`
    first — forgetting to is the commonest MLM-Gibbs bug, and :class:`BigramOracle` cannot reveal it
    because its answer ignores :math:`x_i`. This model's :meth:`masked_log_probs` is

    .. math::
        q(v \mid x) = \begin{cases}
            p(v \mid x_{-i}) & x_i = \texttt{[MASK]} \quad\text{(exact, as } \texttt{BigramOracle}\text{)}\\
            p(v \mid x_{-i})\, e^{\beta [v = x_i]} / Z(x_i) & \text{otherwise,}
        \end{cases}
        \qquad Z(w) = 1 + p(w \mid x_{-i})(e^\beta - 1),

    with ``visible_token_bonus`` :math:`\beta`. A step that masks first sees the exact conditional; one
    that forgets draws :math:`v \ne w` with probability :math:`p(v \mid x_{-i})/Z(w)`, and since
    :math:`Z` depends on the current token this kernel is neither reversible nor :math:`\pi`-invariant.
    (A *mixture* :math:`(1-c)p + c\,\delta_{x_i}` would not do: it is a lazy Gibbs kernel, which keeps
    :math:`\pi`.) Everything else — :meth:`masked_logits` (the raw logits, which still ignore
    :math:`x_i`), the causal LM, the torch twins (which call the NumPy methods) — is the oracle's.

    Parameters
    ----------
    bigram : BigramLM
    visible_token_bonus : float > 0, default 4.0
        :math:`\beta`, added to the log-probability of the visible token when position :math:`i` is
        not masked.

    Notes
    -----
    :class:`~textsampling.lm.base.MaskedLanguageModel` asks callers to put ``[MASK]`` at
    ``positions[n]`` themselves; this model is exact for every caller that does, and only for those —
    the model ``textsampling check --kind mlm-gibbs`` hands a step, so the forgotten mask is caught.
    """

    def __init__(self, bigram: BigramLM, visible_token_bonus: float = 4.0):
        super().__init__(bigram)
        visible_token_bonus = float(visible_token_bonus)
        if not (np.isfinite(visible_token_bonus) and visible_token_bonus > 0):
            raise ValueError(f"visible_token_bonus must be a finite number > 0, got {visible_token_bonus}")
        self.visible_token_bonus = visible_token_bonus

    def __repr__(self) -> str:
        return f"MaskSensitiveOracle({self.bigram!r}, visible_token_bonus={self.visible_token_bonus!r})"

    def masked_log_probs(self, token_ids, positions) -> np.ndarray:
        """Exact conditional where ``token_ids[n, positions[n]]`` is ``[MASK]``; else the visible token boosted.

        ``(N, V + 2)``; a row whose context has probability zero is ``-inf`` everywhere, masked or not.
        """
        exact = super().masked_log_probs(token_ids, positions)  # validates both arguments
        token_ids = np.asarray(token_ids).astype(np.int64)
        rows = np.arange(token_ids.shape[0])
        visible = token_ids[rows, np.asarray(positions).astype(np.int64)]
        peeks = (visible != self.mask_token_id) & np.isfinite(exact).any(axis=1)
        out = exact.copy()
        for n in np.flatnonzero(peeks):
            out[n, visible[n]] += self.visible_token_bonus
            out[n] -= logsumexp(out[n])
        return out
