r"""Torch twins of :mod:`textsampling.targets.sequences`: bigram LMs and the pairwise chain, batched.

The formulas (the bigram sentence law with END, the pairwise chain's fields and couplings, and the
closed-form masked conditionals of the "oracle MLM" of part 3) and their sources are the reference's;
read them there. The twins use the reference's tables (:class:`~textsampling.torch.targets.base.TorchTarget`)
and add them in its order. The batch contract:

* states are int64 ``(N, L)``, one row per state (``L = max_length`` for :class:`BigramLM`, right-padded
  with ``PAD = -1``; ``L = length`` for the fixed-length targets), on the target's device;
* ``log_prob`` and ``sequence_log_probs`` return ``(N,)`` in the target's dtype (float32 or float64),
  ``-inf`` for a state outside the support;
* ``conditional_log_probs(states, position)``: ``position`` an int or an int64 ``(N,)`` tensor (one per
  row) -> normalised ``(N, V)``;
* ``BigramLM.next_token_log_probs``: PAD-padded prefixes ``(N, W)`` -> ``(N, V + 1)``, column ``V`` END.

Sums run position by position (a loop over ``L``, never over states), the order NumPy uses for these
short rows, so float64 log-densities agree bit for bit.
"""

from __future__ import annotations

import torch

from textsampling.lm.tokens import sequence_lengths_torch
from textsampling.targets.base import PAD
from textsampling.targets.sequences import BigramLM as ReferenceBigramLM
from textsampling.targets.sequences import FixedLengthBigram as ReferenceFixedLengthBigram
from textsampling.targets.sequences import PairwiseChain as ReferencePairwiseChain
from textsampling.targets.sequences import SequenceTarget as ReferenceSequenceTarget
from textsampling.torch._validation import check_tensor, same_device
from textsampling.torch.randomness import may_branch_on_values
from textsampling.torch.targets.base import TorchTarget, normalise_rows

__all__ = ["SequenceTarget", "BigramLM", "FixedLengthBigram", "PairwiseChain", "PAIR_TABLE_MAX_ENTRIES"]

#: :class:`FixedLengthBigram` tabulates its conditional for every neighbour pair when the table,
#: :math:`(V + 1)^2 V` entries, holds at most this many (16 MiB in float32); larger vocabularies compute it.
PAIR_TABLE_MAX_ENTRIES = 1 << 22


def _numpy(value):
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


class SequenceTarget(TorchTarget):
    """Base of the sequence twins: :attr:`vocab_size`, :attr:`length` and masked conditionals."""

    _reference_class = ReferenceSequenceTarget

    def _build(self) -> None:
        self.vocab_size = self.reference.vocab_size
        self.length = self.reference.length

    def _as_positions(self, position, num_rows: int) -> torch.Tensor:
        """``position`` as an ``(N,)`` int64 tensor in ``0..L-1`` (an int is broadcast to every row)."""
        if isinstance(position, bool):
            raise TypeError(f"position must be an int or an (N,) integer tensor, got {position!r}")
        if isinstance(position, int):
            if not 0 <= position < self.length:
                raise ValueError(f"position must lie in 0..{self.length - 1}, got {position}")
            return torch.full((num_rows,), position, dtype=torch.int64, device=self.device)
        position = check_tensor(position, "position", integer=True)
        if not same_device(position.device, self.device):
            raise ValueError(f"position is on {position.device} but the target lives on {self.device}")
        if position.shape != (num_rows,):
            raise ValueError(
                f"position must be an int or have shape ({num_rows},) (one per state), got {tuple(position.shape)}"
            )
        # The conditionals gather the neighbours with clamped indices, so a position outside 0..L-1 would
        # give some row rather than an error. Checked where reading the values waits for no device (the
        # samplers' positions come from integer_from_uniform, in range by construction).
        if may_branch_on_values(position) and position.numel() and not _tokens_in_range(position, self.length):
            raise ValueError(f"position must lie in 0..{self.length - 1}, got values from {int(position.min())} "
                             f"to {int(position.max())}")
        return position.to(torch.int64)

    def brute_force_conditional_log_probs(self, states: torch.Tensor, position) -> torch.Tensor:
        """:math:`\\log p(x_i = v \\mid x_{-i})` by substituting every token and normalising, ``(N, V)``."""
        states = self._check_states(states)
        positions = self._as_positions(position, states.shape[0])
        num_rows, vocab_size = states.shape[0], self.vocab_size
        rows = torch.arange(num_rows, device=self.device)  # (N,)
        # (N, V, L): row n repeated V times, token v written at position[n] in copy v.
        candidates = states[:, None, :].repeat(1, vocab_size, 1)  # (N, V, L)
        candidates[rows[:, None], torch.arange(vocab_size, device=self.device)[None, :], positions[:, None]] = (
            torch.arange(vocab_size, device=self.device)[None, :]
        )  # (N, V) entries set: candidates[n, v, positions[n]] = v
        log_rho = self.log_prob(candidates.reshape(num_rows * vocab_size, self.length))  # (N V,)
        return normalise_rows(log_rho.reshape(num_rows, vocab_size))  # (N, V)

    def conditional_log_probs(self, states: torch.Tensor, position) -> torch.Tensor:
        """Normalised :math:`\\log p(x_i = v \\mid x_{-i})`, shape ``(N, V)``."""
        return self.brute_force_conditional_log_probs(states, position)


class _BigramTables:
    def _build_bigram(self) -> None:
        self.log_initial = self._table(self.reference.log_initial)  # (V,)
        self.log_transition = self._table(self.reference.log_transition)  # (V, V+1), column V = END
        self.end_token = self.reference.end_token


class BigramLM(_BigramTables, SequenceTarget):
    """Twin of :class:`textsampling.targets.BigramLM`: variable length, END token, PAD-padded states ``(N, L)``.

    Parameters are those of the reference, then ``dtype`` and ``device``.
    """

    _reference_class = ReferenceBigramLM

    def __init__(
        self, initial_logits, transition_logits, max_length: int, min_length: int = 1, dtype=None, device=None
    ):
        reference = ReferenceBigramLM(_numpy(initial_logits), _numpy(transition_logits), max_length, min_length)
        self._setup(reference, dtype, device)

    def _build(self) -> None:
        SequenceTarget._build(self)
        self._build_bigram()
        self.min_length, self.max_length = self.reference.min_length, self.reference.max_length

    def _split(self, states: torch.Tensor):
        """(states, lengths, well_formed): tokens in 0..V-1 before the first PAD, only PAD after."""
        states = self._check_states(states)
        is_pad = states == PAD  # (N, L)
        lengths = sequence_lengths_torch(states)  # (N,)
        before_end = torch.arange(self.length, device=self.device)[None, :] < lengths[:, None]  # (N, L)
        tokens_ok = (states >= 0) & (states < self.vocab_size)  # (N, L)
        well_formed = torch.where(before_end, tokens_ok, is_pad).all(dim=1)  # (N, L) -> (N,)
        return states, lengths, well_formed

    def lengths(self, states: torch.Tensor) -> torch.Tensor:
        """Number of entries before the first PAD, ``(N,)``."""
        return self._split(states)[1]

    def sequence_log_probs(self, states: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(x_1..x_n, \\mathrm{END})`, ignoring the length window; ``-inf`` if malformed."""
        states, lengths, well_formed = self._split(states)
        tokens = states.clamp(0, self.vocab_size - 1)  # (N, L) safe indices; PAD slots masked below
        out = self.log_initial[tokens[:, 0]]  # (N,)
        for t in range(1, self.length):
            step = self.log_transition[tokens[:, t - 1], tokens[:, t]]  # (N,)
            out = out + torch.where(t < lengths, step, 0.0)  # (N,): only transitions inside the sentence
        rows = torch.arange(tokens.shape[0], device=self.device)  # (N,)
        last = tokens[rows, (lengths - 1).clamp(min=0)]  # (N,): each row's last token
        out = out + self.log_transition[last, self.end_token]  # (N,)
        return torch.where(well_formed & (lengths >= 1), out, -torch.inf)  # (N,)

    def log_prob(self, states: torch.Tensor) -> torch.Tensor:
        """:meth:`sequence_log_probs` inside ``min_length..max_length``, else ``-inf``; ``(N,)``."""
        states, lengths, _ = self._split(states)
        inside = (lengths >= self.min_length) & (lengths <= self.max_length)  # (N,)
        return torch.where(inside, self.sequence_log_probs(states), -torch.inf)  # (N,)

    def next_token_log_probs(self, prefix_states: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(x_{n+1} = w \\mid x_1..x_n)` for PAD-padded prefixes ``(N, W)`` -> ``(N, V + 1)``."""
        prefixes = check_tensor(prefix_states, "prefix_states", integer=True, ndim=2)
        if not same_device(prefixes.device, self.device):
            raise ValueError(f"prefix_states is on {prefixes.device} but the target lives on {self.device}")
        num_rows, width = prefixes.shape
        first = torch.cat([self.log_initial, self.log_initial.new_full((1,), -torch.inf)])  # (V+1,), no empty sentence
        if width == 0:
            return first.expand(num_rows, -1).clone()  # (N, V+1)
        is_pad = prefixes == PAD  # (N, W)
        lengths = sequence_lengths_torch(prefixes)  # (N,)
        before_end = torch.arange(width, device=self.device)[None, :] < lengths[:, None]  # (N, W)
        tokens_ok = (prefixes >= 0) & (prefixes < self.vocab_size)  # (N, W)
        if not bool(torch.where(before_end, tokens_ok, is_pad).all()):  # (N, W) -> one bool
            raise ValueError(f"prefix_states must hold tokens in 0..{self.vocab_size - 1} followed only by PAD = {PAD}")
        empty = lengths == 0  # (N,)
        rows = torch.arange(num_rows, device=self.device)  # (N,)
        last = prefixes[rows, (lengths - 1).clamp(min=0)].clamp(0, self.vocab_size - 1)  # (N,)
        return torch.where(empty[:, None], first[None, :], self.log_transition[last])  # (N, V+1)


class FixedLengthBigram(_BigramTables, SequenceTarget):
    """Twin of :class:`textsampling.targets.FixedLengthBigram`, the oracle masked LM; states ``(N, n)``."""

    _reference_class = ReferenceFixedLengthBigram

    def __init__(self, initial_logits, transition_logits, length: int, dtype=None, device=None):
        self._setup(
            ReferenceFixedLengthBigram(_numpy(initial_logits), _numpy(transition_logits), length), dtype, device
        )

    def _build(self) -> None:
        SequenceTarget._build(self)
        self._build_bigram()
        vocab = self.vocab_size
        # Row tables for the masked conditional, so that both factors are one row gather each:
        # left[a] = log p(. | a) over the V tokens, left[V] = the initial law (the first position);
        # right[b] = log p(b | .) over the V tokens, right[V] = log p(END | .) (the last position).
        self._left_rows = torch.cat([self.log_transition[:, :vocab], self.log_initial[None, :]]).contiguous()
        self._right_rows = torch.cat(
            [self.log_transition[:, :vocab].T, self.log_transition[None, :, self.end_token]]
        ).contiguous()  # (V + 1, V) each
        self._pair_rows = self._pair_table() if (vocab + 1) ** 2 * vocab <= PAIR_TABLE_MAX_ENTRIES else None

    def _pair_table(self) -> torch.Tensor:
        """Every conditional the target can return, ``(P, V)``: row ``a (V + 1) + b`` is the normalised
        ``left[a] + right[b]`` (``a``, ``b`` a neighbour's token, or ``V`` at an edge), the last row
        (``P = (V + 1)^2 + 1``) the all ``-inf`` row of a state with a token outside ``0..V-1``.

        The same floating operations as the formula, row by row (one addition, then the normalisation);
        the test holds the gathered rows to the formula's bit for bit, at batch sizes with and without a
        remainder to torch's vector width.
        """
        vocab = self.vocab_size
        num_pairs = (vocab + 1) ** 2
        num_rows = num_pairs + 1
        left = torch.arange(vocab + 1, device=self.device).repeat_interleave(vocab + 1)  # (V+1)^2: a of each pair
        right = torch.arange(vocab + 1, device=self.device).repeat(vocab + 1)  # (V+1)^2: b of each pair
        log_weights = torch.full((num_rows, vocab), -torch.inf, dtype=self.dtype, device=self.device)  # (P, V)
        log_weights[:num_pairs] = self._left_rows[left] + self._right_rows[right]  # ((V+1)^2, V)
        return normalise_rows(log_weights)  # (P, V)

    def log_prob(self, states: torch.Tensor) -> torch.Tensor:
        """Unnormalised :math:`\\log\\rho` of states ``(N,) + state_shape``, shape ``(N,)``; ``-inf`` outside."""
        states = self._check_states(states)
        inside = ((states >= 0) & (states < self.vocab_size)).all(dim=1)  # (N,)
        tokens = states.clamp(0, self.vocab_size - 1)  # (N, L) safe indices; outside rows masked below
        out = self.log_initial[tokens[:, 0]]  # (N,)
        for t in range(1, self.length):
            out = out + self.log_transition[tokens[:, t - 1], tokens[:, t]]  # (N,)
        out = out + self.log_transition[tokens[:, -1], self.end_token]  # (N,)
        return torch.where(inside, out, -torch.inf)  # (N,)

    def conditional_log_probs(self, states: torch.Tensor, position) -> torch.Tensor:
        """The reference's closed-form masked conditional for each row, normalised, ``(N, V)``.

        The conditional depends on the two neighbours only, so it is a row of a table of every
        neighbour pair (:meth:`_pair_table`, built once when it holds at most
        :data:`PAIR_TABLE_MAX_ENTRIES` entries): one row gather per state. Larger vocabularies gather
        the two factors and normalise (:meth:`_conditional_log_probs_by_gathers`). Both give the values of
        the formula written with ``torch.where`` (:meth:`_conditional_log_probs_by_where`), bit for bit
        (``tests/test_twin_categorical_fast.py``); on the CPU the mask of states with a token outside
        ``0..V-1`` is computed only when there is one (one flag read).
        """
        if self._pair_rows is None:
            return self._conditional_log_probs_by_gathers(states, position)
        states = self._check_states(states)
        positions = self._as_positions(position, states.shape[0])  # (N,)
        vocab, length = self.vocab_size, self.length
        previous = states.gather(1, (positions - 1).clamp_(min=0)[:, None])[:, 0]  # (N,): x_{i-1} (x_0 at i = 0)
        following = states.gather(1, (positions + 1).clamp_(max=length - 1)[:, None])[:, 0]  # (N,): x_{i+1}
        if may_branch_on_values(states) and _tokens_in_range(states, vocab):
            pairs = torch.where(positions == 0, vocab, previous) * (vocab + 1)  # (N,): V at the first position
            pairs += torch.where(positions == length - 1, vocab, following)  # (N,): V at the last position
        else:
            pairs = torch.where(positions == 0, vocab, previous.clamp(0, vocab - 1)) * (vocab + 1)  # (N,)
            pairs += torch.where(positions == length - 1, vocab, following.clamp(0, vocab - 1))  # (N,)
            others_ok = (states >= 0) & (states < vocab)  # (N, L)
            others_ok.scatter_(1, positions[:, None], True)  # (N, L): the masked slot is ignored
            pairs = torch.where(others_ok.all(dim=1), pairs, (vocab + 1) ** 2)  # (N,): the all -inf row
        return torch.index_select(self._pair_rows, 0, pairs)  # (N, V)

    def _conditional_log_probs_by_gathers(self, states: torch.Tensor, position) -> torch.Tensor:
        """:meth:`conditional_log_probs` without the pair table: the two factors gathered, then normalised."""
        states = self._check_states(states)
        positions = self._as_positions(position, states.shape[0])  # (N,)
        vocab, length = self.vocab_size, self.length
        previous = states.gather(1, (positions - 1).clamp_(min=0)[:, None])[:, 0]  # (N,): x_{i-1} (x_0 at i = 0)
        following = states.gather(1, (positions + 1).clamp_(max=length - 1)[:, None])[:, 0]  # (N,): x_{i+1}
        # Row V of each table is the edge law: the initial law at the first position, END at the last.
        left_index = torch.where(positions == 0, vocab, previous.clamp(0, vocab - 1))  # (N,)
        right_index = torch.where(positions == length - 1, vocab, following.clamp(0, vocab - 1))  # (N,)
        log_weights = torch.index_select(self._left_rows, 0, left_index)  # (N, V): log p(v | x_{i-1})
        log_weights += torch.index_select(self._right_rows, 0, right_index)  # (N, V): + log p(x_{i+1} | v)
        if not may_branch_on_values(states) or not _tokens_in_range(states, vocab):
            others_ok = (states >= 0) & (states < vocab)  # (N, L)
            others_ok.scatter_(1, positions[:, None], True)  # (N, L): the masked slot is ignored
            log_weights = torch.where(others_ok.all(dim=1)[:, None], log_weights, -torch.inf)  # (N, V)
        return _normalise_rows(log_weights)  # (N, V)

    def _conditional_log_probs_by_where(self, states: torch.Tensor, position) -> torch.Tensor:
        """The formula as the reference writes it (``torch.where`` of the edge cases); the tests' yardstick."""
        states = self._check_states(states)
        positions = self._as_positions(position, states.shape[0])  # (N,)
        rows = torch.arange(states.shape[0], device=self.device)  # (N,)
        vocab = self.vocab_size
        others_ok = (states >= 0) & (states < vocab)  # (N, L)
        others_ok[rows, positions] = True  # (N,) entries: the masked slot is ignored
        tokens = states.clamp(0, vocab - 1)  # (N, L)
        previous = tokens[rows, (positions - 1).clamp(min=0)]  # (N,)
        following = tokens[rows, (positions + 1).clamp(max=self.length - 1)]  # (N,)
        left = torch.where(
            (positions == 0)[:, None], self.log_initial[None, :], self.log_transition[previous, :vocab]
        )  # (N, V): log p(v | x_{i-1}), the initial law at the first position
        right = torch.where(
            (positions == self.length - 1)[:, None],
            self.log_transition[None, :, self.end_token],
            self.log_transition[:, following].T,
        )  # (N, V): log p(x_{i+1} | v), END at the last position
        log_weights = torch.where(others_ok.all(dim=1)[:, None], left + right, -torch.inf)  # (N, V)
        return normalise_rows(log_weights)  # (N, V)


def _tokens_in_range(states: torch.Tensor, vocab_size: int) -> bool:
    """Every entry of ``states`` in ``0..vocab_size - 1`` (one pass, one flag read)."""
    if states.numel() == 0:
        return True  # an empty batch (aminmax refuses one)
    low, high = torch.aminmax(states)  # 0-d each
    return low.item() >= 0 and high.item() < vocab_size


def _normalise_rows(log_weights: torch.Tensor) -> torch.Tensor:
    """:func:`~textsampling.torch.targets.base.normalise_rows`, bit for bit: on the CPU the ``torch.where``
    that keeps an all ``-inf`` row at ``-inf`` runs only when some row's logsumexp is not finite."""
    log_total = torch.logsumexp(log_weights, dim=-1, keepdim=True)  # (N, 1)
    if may_branch_on_values(log_total) and bool(torch.isfinite(log_total).all()):
        return log_weights.sub_(log_total)  # (N, V)
    return normalise_rows(log_weights)  # (N, V)


class PairwiseChain(SequenceTarget):
    """Twin of :class:`textsampling.targets.PairwiseChain` (Ising-like chain), states ``(N, L)``."""

    _reference_class = ReferencePairwiseChain

    def __init__(self, unary, coupling, dtype=None, device=None):
        self._setup(ReferencePairwiseChain(_numpy(unary), _numpy(coupling)), dtype, device)

    @classmethod
    def ising(cls, length: int, coupling: float, field: float = 0.0, dtype=None, device=None) -> "PairwiseChain":
        """Twin of :meth:`textsampling.targets.PairwiseChain.ising`."""
        return cls.from_reference(ReferencePairwiseChain.ising(length, coupling, field), dtype, device)

    def _build(self) -> None:
        SequenceTarget._build(self)
        self.unary = self._table(self.reference.unary)  # (L, V)
        self.coupling = self._table(self.reference.coupling)  # (L-1, V, V)

    def log_prob(self, states: torch.Tensor) -> torch.Tensor:
        """Unnormalised :math:`\\log\\rho` of states ``(N,) + state_shape``, shape ``(N,)``; ``-inf`` outside."""
        states = self._check_states(states)
        inside = ((states >= 0) & (states < self.vocab_size)).all(dim=1)  # (N,)
        tokens = states.clamp(0, self.vocab_size - 1)  # (N, L) safe indices; outside rows masked below
        out = self.unary[0, tokens[:, 0]]  # (N,)
        for i in range(1, self.length):  # left to right, as NumPy sums a short row
            out = out + self.unary[i, tokens[:, i]]  # (N,)
        for i in range(self.length - 1):
            out = out + self.coupling[i, tokens[:, i], tokens[:, i + 1]]  # (N,)
        return torch.where(inside, out, -torch.inf)  # (N,)

    def conditional_log_probs(self, states: torch.Tensor, position) -> torch.Tensor:
        """The reference's closed-form masked conditional for each row, normalised, ``(N, V)``."""
        states = self._check_states(states)
        positions = self._as_positions(position, states.shape[0])  # (N,)
        rows = torch.arange(states.shape[0], device=self.device)  # (N,)
        others_ok = (states >= 0) & (states < self.vocab_size)  # (N, L)
        others_ok[rows, positions] = True  # (N,) entries: the masked slot is ignored
        tokens = states.clamp(0, self.vocab_size - 1)  # (N, L)
        log_weights = self.unary[positions]  # (N, V)
        if self.length > 1:
            left_edge = (positions - 1).clamp(min=0)  # (N,)
            left = tokens[rows, left_edge]  # (N,): x_{i-1} (clamped at the first position, unused there)
            log_weights = torch.where(
                (positions > 0)[:, None], log_weights + self.coupling[left_edge, left, :], log_weights
            )  # (N, V): + J_{i-1}(x_{i-1}, v) where i > 0
            right_edge = positions.clamp(max=self.length - 2)  # (N,)
            right = tokens[rows, right_edge + 1]  # (N,): x_{i+1} (clamped at the last position, unused there)
            log_weights = torch.where(
                (positions < self.length - 1)[:, None], log_weights + self.coupling[right_edge, :, right], log_weights
            )  # (N, V): + J_i(v, x_{i+1}) where i < L - 1
        log_weights = torch.where(others_ok.all(dim=1)[:, None], log_weights, -torch.inf)  # (N, V)
        return normalise_rows(log_weights)  # (N, V)
