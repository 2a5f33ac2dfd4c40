r"""Distributions over short token sequences, small enough to enumerate: the oracle language models.

A sequence target is a :class:`~textsampling.targets.base.DiscreteTarget` whose states are token
sequences :math:`x = (x_1, \dots, x_L)` over a vocabulary :math:`\{0, \dots, V-1\}`. With
:math:`V \le 6` and :math:`L \le 4` the whole space has at most a few thousand states, so the
normaliser, marginals, argmax and exact samples are all known, and every sampler of the series can be
checked against them (SERIES.md, "How each algorithm is verified exactly").

Three targets live here.

:class:`BigramLM` — a bigram language model with an end token (the "causal LM" of part 4),

.. math::
    \log p(x_1, \dots, x_n) = \log p(x_1) + \sum_{t=2}^{n} \log p(x_t \mid x_{t-1})
    + \log p(\mathrm{END} \mid x_n),

where :math:`p(x_1)` is a softmax over the :math:`V` tokens and each :math:`p(\cdot \mid v)` a
softmax over :math:`V + 1` outcomes (column :math:`V` is END). Lengths vary between ``min_length``
and ``max_length``; a state is an ``(max_length,)`` int array right-padded with ``PAD = -1``.

:class:`FixedLengthBigram` — the same model conditioned on length :math:`n`. Its masked conditional
has a closed form, the "oracle MLM" on which BERT-style Gibbs samplers are tested exactly (part 3):

.. math::
    p(x_i = v \mid x_{-i}) \propto p(v \mid x_{i-1})\; p(x_{i+1} \mid v),

with :math:`p(v \mid x_0) := p(x_1 = v)` at the first position and
:math:`p(x_{n+1} \mid v) := p(\mathrm{END} \mid v)` at the last.

:class:`PairwiseChain` — an Ising-like chain (a Markov random field on a path),

.. math::
    \log \rho(x) = \sum_{i=1}^{L} h_i(x_i) + \sum_{i=1}^{L-1} J_i(x_i, x_{i+1}),
    \qquad p(x_i = v \mid x_{-i}) \propto \exp\big(h_i(v) + J_{i-1}(x_{i-1}, v) + J_i(v, x_{i+1})\big).

Every sequence target has :meth:`SequenceTarget.conditional_log_probs`; the base class computes it
by its definition (substitute every token at the position, call :meth:`log_prob`, normalise), and
subclasses with a closed form override it — the tests check that both agree wherever the conditional
exists, i.e. wherever :math:`\rho(x_{-i}) = \sum_v \rho(x_{-i}, v) > 0`. Where it does not (a zero
factor far from position :math:`i`), the definition gives ``-inf`` everywhere while the closed forms
give the local formula above, which depends on the neighbours only (the Markov property): that is
what a masked LM would answer, and it lets a Gibbs chain started in a zero-probability state leave it.

References: Su Jianlin, 【搜出来的文本】 parts 3–4 (kexue.fm/archives/8119, spaces.ac.cn/archives/8194);
Wang & Cho (2019), "BERT has a Mouth, and It Must Speak", arXiv:1902.04094.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.special import logsumexp

from textsampling._validation import check_int, check_logits, check_positive
from textsampling.targets.base import PAD, DiscreteTarget, sequence_lengths

__all__ = ["SequenceTarget", "BigramLM", "FixedLengthBigram", "PairwiseChain", "MAX_ENUMERATION"]

#: Largest space :meth:`SequenceTarget.enumerate_states` agrees to list (these are *toy* targets).
MAX_ENUMERATION = 1_000_000


def _normalise_rows(log_weights: np.ndarray) -> np.ndarray:
    """Subtract each row's logsumexp; a row that is ``-inf`` everywhere stays ``-inf`` (no NaN)."""
    log_total = logsumexp(log_weights, axis=-1, keepdims=True)
    finite = np.isfinite(log_total)
    # -inf - (-inf) would be NaN: an all-zero row has no conditional, so it stays -inf on purpose.
    return np.where(finite, log_weights - np.where(finite, log_total, 0.0), -np.inf)


class SequenceTarget(DiscreteTarget):
    """Base class of targets over token sequences of (maximum) length :attr:`length`.

    Subclasses call :meth:`_init_sequence` and implement :meth:`~DiscreteTarget.log_prob`; the
    default :meth:`enumerate_states` lists all :math:`V^L` sequences of full length.

    Attributes
    ----------
    vocab_size : int
        :math:`V`; tokens are ``0..V-1``.
    length : int
        :math:`L`, the (maximum) sequence length; ``state_shape == (L,)``.
    """

    vocab_size: int
    length: int

    def _init_sequence(self, vocab_size: int, length: int) -> None:
        self.vocab_size = check_int(vocab_size, "vocab_size", minimum=1)
        self.length = check_int(length, "length", minimum=1)
        self.state_shape = (self.length,)

    def _check_enumerable(self, size: int) -> None:
        if size > MAX_ENUMERATION:
            raise ValueError(
                f"the space has {size} states (vocab_size={self.vocab_size}, length={self.length}); "
                f"enumeration is limited to {MAX_ENUMERATION}: use a smaller toy target"
            )

    def enumerate_states(self) -> np.ndarray:
        """All :math:`V^L` sequences of length :math:`L`, in lexicographic order, ``(V**L, L)``."""
        self._check_enumerable(self.vocab_size**self.length)
        return np.array(
            list(itertools.product(range(self.vocab_size), repeat=self.length)), dtype=np.int64
        ).reshape(-1, self.length)

    def _as_positions(self, position, num_rows: int) -> np.ndarray:
        """``position`` as an ``(N,)`` int array in ``0..L-1`` (an int is broadcast to every row)."""
        positions = np.asarray(position)
        if positions.dtype.kind not in "iu" or positions.dtype == np.bool_:
            raise TypeError(f"position must be an int or an (N,) array of ints, got {position!r}")
        if positions.ndim == 0:
            positions = np.full(num_rows, int(positions), dtype=np.int64)
        if positions.shape != (num_rows,):
            raise ValueError(
                f"position must be an int or have shape ({num_rows},) (one per state), "
                f"got shape {positions.shape}"
            )
        if np.any((positions < 0) | (positions >= self.length)):
            raise ValueError(f"position must lie in 0..{self.length - 1}, got {positions.tolist()}")
        return positions.astype(np.int64)

    def brute_force_conditional_log_probs(self, states, position) -> np.ndarray:
        """:math:`\\log p(x_i = v \\mid x_{-i})` by the definition: substitute every token and normalise.

        .. math::
            \\log p(x_i = v \\mid x_{-i}) = \\log\\rho(x_{-i}, v) - \\log\\sum_{w=0}^{V-1} \\rho(x_{-i}, w).

        The token currently at the position is ignored (it is the "masked" slot). The conditional is
        over the :math:`V` tokens (for variable-length targets: given that slot holds a token, not PAD).

        Parameters
        ----------
        states : array_like of int, shape (N, L)
        position : int or array_like of int, shape (N,)
            The position :math:`i` of each row, in ``0..L-1``.

        Returns
        -------
        numpy.ndarray of float64, shape (N, V)
            Normalised log-probabilities; a row is ``-inf`` everywhere when no token gives the rest of
            the state positive probability (the conditional does not exist there).
            Closed-form overrides agree with this wherever the conditional exists.
        """
        states = self._as_states(states)
        positions = self._as_positions(position, states.shape[0])
        num_rows, vocab_size = states.shape[0], self.vocab_size
        # (N, V, L): row n repeated V times, with token v written at position[n] in copy v.
        candidates = np.repeat(states[:, None, :], vocab_size, axis=1)
        candidates[np.arange(num_rows), :, positions] = np.arange(vocab_size)
        log_rho = self.log_prob(candidates.reshape(num_rows * vocab_size, self.length))
        return _normalise_rows(np.asarray(log_rho, dtype=np.float64).reshape(num_rows, vocab_size))

    def conditional_log_probs(self, states, position) -> np.ndarray:
        """Normalised :math:`\\log p(x_i = v \\mid x_{-i})`, shape ``(N, V)`` (see the brute-force form)."""
        return self.brute_force_conditional_log_probs(states, position)

    def marginal(self, position: int) -> np.ndarray:
        """Exact marginal :math:`P(x_i = v)` for ``v = 0..V-1``, by enumeration, shape ``(V,)``.

        For a variable-length target the entries sum to :math:`P(\\text{length} > i)`, since the slot
        may be PAD.
        """
        position = int(self._as_positions(position, 1)[0])
        probabilities = self.probabilities()
        tokens = self.states[:, position]
        inside = tokens >= 0
        return np.bincount(tokens[inside], weights=probabilities[inside], minlength=self.vocab_size)


def _check_bigram_logits(initial_logits, transition_logits):
    """Validate the bigram parameters; return them and their normalised logs (float64)."""
    initial_logits = check_logits(initial_logits, name="initial_logits", allow_batch=False)
    vocab_size = initial_logits.shape[0]
    transition_logits = np.asarray(transition_logits, dtype=np.float64)
    if transition_logits.shape != (vocab_size, vocab_size + 1):
        raise ValueError(
            f"transition_logits must have shape (V, V+1) = ({vocab_size}, {vocab_size + 1}) "
            f"(one row per token, column V = END), got {transition_logits.shape}"
        )
    transition_logits = check_logits(transition_logits, name="transition_logits")
    log_initial = initial_logits - logsumexp(initial_logits)
    log_transition = transition_logits - logsumexp(transition_logits, axis=1, keepdims=True)
    return initial_logits, transition_logits, log_initial, log_transition


class _BigramParameters:
    """Shared storage of :math:`\\log p(x_1)` and :math:`\\log p(\\cdot \\mid v)` (END = column V)."""

    def _init_bigram(self, initial_logits, transition_logits) -> int:
        (
            self.initial_logits,
            self.transition_logits,
            self.log_initial,  # (V,)      log p(x_1 = v)
            self.log_transition,  # (V, V+1)  log p(x_t = w | x_{t-1} = v); column V is END
        ) = _check_bigram_logits(initial_logits, transition_logits)
        return int(self.initial_logits.shape[0])

    @property
    def end_token(self) -> int:
        """Index of END in the last axis of :attr:`log_transition` (and of next-token outputs): ``V``."""
        return int(self.initial_logits.shape[0])


class BigramLM(_BigramParameters, SequenceTarget):
    """A bigram language model with an END token, over sequences of length ``min_length..max_length``.

    .. math::
        \\log \\rho(x) = \\log p(x_1) + \\sum_{t=2}^{n} \\log p(x_t \\mid x_{t-1})
        + \\log p(\\mathrm{END} \\mid x_n), \\qquad \\text{min\\_length} \\le n \\le \\text{max\\_length}.

    Sequences outside the length window are cut off, so the enumerated total
    :math:`Z = P(\\text{min\\_length} \\le n \\le \\text{max\\_length})` is below 1: the target is
    unnormalised, as every target here may be.

    Parameters
    ----------
    initial_logits : array_like of float, shape (V,)
        Logits of the first token (softmax over the :math:`V` tokens; no empty sentence).
    transition_logits : array_like of float, shape (V, V + 1)
        Row ``v``: logits of the next outcome after token ``v``; column ``V`` is END.
        ``-inf`` marks an impossible transition; NaN, ``+inf`` or an all ``-inf`` row raise ``ValueError``.
    max_length : int
        :math:`L \\ge 1`; states have shape ``(L,)``, right-padded with ``PAD = -1``.
    min_length : int, default 1
        Shortest length with positive probability, ``1 <= min_length <= max_length``.

    Notes
    -----
    A state with a token outside ``0..V-1``, a token after a PAD, or a length outside the window
    has ``log_prob = -inf``.
    """

    def __init__(self, initial_logits, transition_logits, max_length: int, min_length: int = 1):
        vocab_size = self._init_bigram(initial_logits, transition_logits)
        max_length = check_int(max_length, "max_length", minimum=1)
        min_length = check_int(min_length, "min_length", minimum=1)
        if min_length > max_length:
            raise ValueError(
                f"min_length must be <= max_length = {max_length}, got min_length = {min_length}"
            )
        self._init_sequence(vocab_size, max_length)
        self.max_length = max_length
        self.min_length = min_length

    @classmethod
    def random(
        cls, rng, vocab_size: int, max_length: int, concentration: float = 1.0, min_length: int = 1
    ) -> "BigramLM":
        """A random bigram: the initial law and every transition row drawn from a symmetric Dirichlet.

        Parameters
        ----------
        rng : numpy.random.Generator
        vocab_size : int
            :math:`V \\ge 1`.
        max_length, min_length : int
            As in the constructor.
        concentration : float, default 1.0
            Dirichlet parameter :math:`\\alpha > 0`: small values give peaked, nearly deterministic
            rows; large values nearly uniform ones.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        vocab_size = check_int(vocab_size, "vocab_size", minimum=1)
        concentration = check_positive(concentration, "concentration")
        initial = rng.dirichlet(np.full(vocab_size, concentration))
        transition = rng.dirichlet(np.full(vocab_size + 1, concentration), size=vocab_size)
        # A tiny concentration can round a probability to exactly 0: its log is -inf on purpose.
        with np.errstate(divide="ignore"):
            return cls(np.log(initial), np.log(transition), max_length, min_length=min_length)

    # ----------------------------------------------------------------- lengths and validity
    def _split(self, states, name: str = "states"):
        """Return (states, lengths, well_formed): tokens in 0..V-1 before the first PAD, only PAD after."""
        states = self._as_states(states, name)
        is_pad = states == PAD
        lengths = sequence_lengths(states)  # (N,)
        positions = np.arange(self.length)
        before_end = positions[None, :] < lengths[:, None]  # (N, L)
        tokens_ok = (states >= 0) & (states < self.vocab_size)
        well_formed = np.all(np.where(before_end, tokens_ok, is_pad), axis=1)
        return states, lengths, well_formed

    def lengths(self, states) -> np.ndarray:
        """Length :math:`n` of each state (number of entries before the first PAD), shape ``(N,)``."""
        return self._split(states)[1]

    # ----------------------------------------------------------------- probabilities
    def sequence_log_probs(self, states) -> np.ndarray:
        """:math:`\\log p(x_1..x_n, \\mathrm{END})` of each PAD-padded state, ignoring the length window.

        The untruncated language model's sentence log-probability (what a causal LM reports). Equal to
        :meth:`log_prob` inside ``min_length..max_length``; ``-inf`` for malformed or empty states.
        """
        states, lengths, well_formed = self._split(states)
        tokens = np.where(states >= 0, states, 0)  # (N, L) safe indices; PAD slots masked below
        tokens = np.minimum(tokens, self.vocab_size - 1)
        out = self.log_initial[tokens[:, 0]]
        for t in range(1, self.length):
            step = self.log_transition[tokens[:, t - 1], tokens[:, t]]
            out = out + np.where(t < lengths, step, 0.0)  # only transitions inside the sentence
        last = tokens[np.arange(tokens.shape[0]), np.maximum(lengths - 1, 0)]
        out = out + self.log_transition[last, self.end_token]
        return np.where(well_formed & (lengths >= 1), out, -np.inf)

    def log_prob(self, states) -> np.ndarray:
        """:math:`\\log \\rho(x)`: :meth:`sequence_log_probs` inside the length window, else ``-inf``."""
        lengths = self.lengths(states)
        inside = (lengths >= self.min_length) & (lengths <= self.max_length)
        return np.where(inside, self.sequence_log_probs(states), -np.inf)

    def next_token_log_probs(self, prefix_states) -> np.ndarray:
        """:math:`\\log p(x_{n+1} = w \\mid x_1..x_n)` for each PAD-padded prefix, shape ``(N, V + 1)``.

        Column ``V`` is END. For the empty prefix this is :math:`\\log p(x_1)` with END at ``-inf``
        (no empty sentence). The length window is not applied: these are the language model's own
        next-token probabilities, and summing them along a sentence gives :meth:`sequence_log_probs`.

        Parameters
        ----------
        prefix_states : array_like of int, shape (N, W)
            Prefixes of any width ``W >= 0``, right-padded with PAD.

        Raises
        ------
        ValueError
            If a prefix holds a token outside ``0..V-1`` or a token after a PAD.
        """
        prefixes = np.asarray(prefix_states)
        if prefixes.dtype.kind not in "iu":
            raise TypeError(f"prefix_states must hold integers, got dtype {prefixes.dtype}")
        if prefixes.ndim != 2:
            raise ValueError(f"prefix_states must have shape (N, W), got {prefixes.shape}")
        prefixes = prefixes.astype(np.int64)
        num_rows, width = prefixes.shape
        is_pad = prefixes == PAD
        lengths = sequence_lengths(prefixes)  # (N,); an empty prefix (width 0) has length 0
        before_end = np.arange(width)[None, :] < lengths[:, None]
        tokens_ok = (prefixes >= 0) & (prefixes < self.vocab_size)
        if not np.all(np.where(before_end, tokens_ok, is_pad)):
            raise ValueError(
                f"prefix_states must hold tokens in 0..{self.vocab_size - 1} followed only by PAD = {PAD}"
            )
        out = np.empty((num_rows, self.vocab_size + 1))
        empty = lengths == 0
        out[empty, : self.vocab_size] = self.log_initial
        out[empty, self.vocab_size] = -np.inf
        if np.any(~empty):
            last = prefixes[np.flatnonzero(~empty), lengths[~empty] - 1]
            out[~empty] = self.log_transition[last]
        return out

    def length_log_probs(self) -> np.ndarray:
        """:math:`\\log P(n)` for :math:`n = 1..\\text{max\\_length}` under the untruncated model, ``(L,)``.

        Forward recursion over the last token, in log space:
        :math:`\\alpha_1(v) = \\log p(x_1 = v)`,
        :math:`\\alpha_{t+1}(w) = \\operatorname{logsumexp}_v[\\alpha_t(v) + \\log p(w \\mid v)]`,
        :math:`\\log P(n) = \\operatorname{logsumexp}_v[\\alpha_n(v) + \\log p(\\mathrm{END} \\mid v)]`.
        Useful to draw a length first (part 3) and to check :meth:`log_normalizer` without enumeration:
        :math:`\\log Z = \\operatorname{logsumexp}_{n = \\text{min\\_length}}^{\\text{max\\_length}} \\log P(n)`.
        """
        alpha = self.log_initial.copy()  # (V,)
        out = np.empty(self.max_length)
        for n in range(self.max_length):
            out[n] = logsumexp(alpha + self.log_transition[:, self.end_token])
            alpha = logsumexp(alpha[:, None] + self.log_transition[:, : self.vocab_size], axis=0)
        return out

    def enumerate_states(self) -> np.ndarray:
        """Every sequence of length ``min_length..max_length``, shortest first, PAD-padded, ``(S, L)``."""
        self._check_enumerable(
            sum(self.vocab_size**n for n in range(self.min_length, self.max_length + 1))
        )
        blocks = []
        for n in range(self.min_length, self.max_length + 1):
            block = np.full((self.vocab_size**n, self.length), PAD, dtype=np.int64)
            block[:, :n] = np.array(
                list(itertools.product(range(self.vocab_size), repeat=n)), dtype=np.int64
            ).reshape(-1, n)
            blocks.append(block)
        return np.concatenate(blocks, axis=0)

    def fixed_length(self, length: int) -> "FixedLengthBigram":
        """This model conditioned on length ``length``: a :class:`FixedLengthBigram` with states ``(length,)``."""
        return FixedLengthBigram(self.initial_logits, self.transition_logits, length)

    def __repr__(self) -> str:
        return (
            f"BigramLM(vocab_size={self.vocab_size}, min_length={self.min_length}, "
            f"max_length={self.max_length})"
        )


class FixedLengthBigram(_BigramParameters, SequenceTarget):
    """The bigram language model conditioned on length :math:`n`: the oracle masked LM.

    .. math::
        \\log \\rho(x) = \\log p(x_1) + \\sum_{t=2}^{n} \\log p(x_t \\mid x_{t-1})
        + \\log p(\\mathrm{END} \\mid x_n), \\qquad x \\in \\{0..V-1\\}^n,

    with the exact masked conditional (closed form, :meth:`conditional_log_probs`)
    :math:`p(x_i = v \\mid x_{-i}) \\propto p(v \\mid x_{i-1})\\, p(x_{i+1} \\mid v)`
    (:math:`p(x_1 = v)` at :math:`i = 1`, :math:`p(\\mathrm{END} \\mid v)` at :math:`i = n`).

    Parameters
    ----------
    initial_logits, transition_logits :
        As in :class:`BigramLM` (column ``V`` of ``transition_logits`` is END).
    length : int
        :math:`n \\ge 1`; states have shape ``(n,)`` and hold no PAD.
    """

    def __init__(self, initial_logits, transition_logits, length: int):
        vocab_size = self._init_bigram(initial_logits, transition_logits)
        self._init_sequence(vocab_size, check_int(length, "length", minimum=1))

    def log_prob(self, states) -> np.ndarray:
        states = self._as_states(states)
        inside = np.all((states >= 0) & (states < self.vocab_size), axis=1)
        tokens = np.clip(states, 0, self.vocab_size - 1)  # out-of-range rows are -inf below
        out = self.log_initial[tokens[:, 0]]
        for t in range(1, self.length):
            out = out + self.log_transition[tokens[:, t - 1], tokens[:, t]]
        out = out + self.log_transition[tokens[:, -1], self.end_token]
        return np.where(inside, out, -np.inf)

    def conditional_log_probs(self, states, position) -> np.ndarray:
        """Closed-form masked conditional, normalised over the :math:`V` tokens.

        :math:`\\log p(x_i = v \\mid x_{-i}) = \\log p(v \\mid x_{i-1}) + \\log p(x_{i+1} \\mid v) - c`.

        Parameters
        ----------
        states : array_like of int, shape (N, n)
            The token at each row's position is ignored (masked); the other tokens must be in
            ``0..V-1``, else the row is ``-inf`` (as the definition gives). Zero-probability factors
            away from the position do not enter (see the module docstring).
        position : int or array_like of int, shape (N,)

        Returns
        -------
        numpy.ndarray of float64, shape (N, V), normalised over the :math:`V` tokens.
        """
        states = self._as_states(states)
        positions = self._as_positions(position, states.shape[0])
        rows = np.arange(states.shape[0])
        vocab = self.vocab_size
        # Markov property: only the neighbours enter. A token outside 0..V-1 anywhere else means the
        # row is not a state of the space, so it gets no conditional (-inf), as the definition says.
        others_ok = (states >= 0) & (states < vocab)
        others_ok[rows, positions] = True
        tokens = np.clip(states, 0, vocab - 1)
        previous = tokens[rows, np.maximum(positions - 1, 0)]  # (N,)
        following = tokens[rows, np.minimum(positions + 1, self.length - 1)]  # (N,)
        # log p(v | x_{i-1}) over v: the initial law at the first position.
        left = np.where(
            (positions == 0)[:, None], self.log_initial[None, :], self.log_transition[previous, :vocab]
        )  # (N, V)
        # log p(x_{i+1} | v) over v: END at the last position.
        right = np.where(
            (positions == self.length - 1)[:, None],
            self.log_transition[None, :, self.end_token],
            self.log_transition[:, following].T,
        )  # (N, V)
        log_weights = np.where(np.all(others_ok, axis=1)[:, None], left + right, -np.inf)
        return _normalise_rows(log_weights)

    def __repr__(self) -> str:
        return f"FixedLengthBigram(vocab_size={self.vocab_size}, length={self.length})"


class PairwiseChain(SequenceTarget):
    """A pairwise Markov random field on a path (an Ising-like chain) over ``V`` states per site.

    .. math::
        \\log \\rho(x) = \\sum_{i=1}^{L} h_i(x_i) + \\sum_{i=1}^{L-1} J_i(x_i, x_{i+1}).

    Parameters
    ----------
    unary : array_like of float, shape (L, V)
        :math:`h_i(v)`; ``-inf`` forbids token ``v`` at site ``i``.
    coupling : array_like of float, shape (V, V) or (L - 1, V, V)
        :math:`J(a, b)` for the pair :math:`(x_i, x_{i+1}) = (a, b)`, shared by every edge or one per
        edge. ``-inf`` forbids a pair; NaN and ``+inf`` raise ``ValueError``.
    """

    def __init__(self, unary, coupling):
        unary = np.asarray(unary, dtype=np.float64)
        if unary.ndim != 2 or unary.shape[0] == 0 or unary.shape[1] == 0:
            raise ValueError(f"unary must have shape (L, V) with L, V >= 1, got {unary.shape}")
        length, vocab_size = unary.shape
        check_logits(unary, name="unary")
        coupling = np.asarray(coupling, dtype=np.float64)
        if coupling.shape == (vocab_size, vocab_size):
            coupling = np.broadcast_to(coupling, (length - 1, vocab_size, vocab_size)).copy()
        if coupling.shape != (length - 1, vocab_size, vocab_size):
            raise ValueError(
                f"coupling must have shape (V, V) = ({vocab_size}, {vocab_size}) or "
                f"(L-1, V, V) = ({length - 1}, {vocab_size}, {vocab_size}), got {coupling.shape}"
            )
        if np.any(np.isnan(coupling)) or np.any(coupling == np.inf):
            raise ValueError("coupling must be finite or -inf (no NaN, no +inf)")
        self._init_sequence(vocab_size, length)
        self.unary = unary  # (L, V)
        self.coupling = coupling  # (L-1, V, V)

    @classmethod
    def ising(cls, length: int, coupling: float, field: float = 0.0) -> "PairwiseChain":
        """The 1-D Ising chain, :math:`s_i = \\pm 1`.

        :math:`\\log\\rho(s) = J \\sum_i s_i s_{i+1} + h \\sum_i s_i`.

        Token 0 is spin :math:`-1`, token 1 is spin :math:`+1`. ``coupling`` is :math:`J`
        (ferromagnetic when positive), ``field`` is :math:`h`; both finite.
        """
        length = check_int(length, "length", minimum=1)
        values = {}
        for name, value in (("coupling", coupling), ("field", field)):
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"{name} must be a finite number, got {value!r}") from None
            if not np.isfinite(values[name]):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        spins = np.array([-1.0, 1.0])
        unary = np.tile(values["field"] * spins, (length, 1))  # (L, 2)
        pair = values["coupling"] * np.outer(spins, spins)  # (2, 2)
        return cls(unary, pair)

    def log_prob(self, states) -> np.ndarray:
        states = self._as_states(states)
        inside = np.all((states >= 0) & (states < self.vocab_size), axis=1)
        tokens = np.clip(states, 0, self.vocab_size - 1)  # out-of-range rows are -inf below
        out = np.sum(self.unary[np.arange(self.length), tokens], axis=1)
        for i in range(self.length - 1):
            out = out + self.coupling[i, tokens[:, i], tokens[:, i + 1]]
        return np.where(inside, out, -np.inf)

    def conditional_log_probs(self, states, position) -> np.ndarray:
        """Closed form :math:`\\log p(x_i = v \\mid x_{-i}) = h_i(v) + J_{i-1}(x_{i-1}, v) + J_i(v, x_{i+1}) - c`.

        Shapes as in :meth:`SequenceTarget.conditional_log_probs`; a row whose other tokens are outside
        ``0..V-1`` is ``-inf``. Only the neighbours enter (Markov property; see the module docstring).
        """
        states = self._as_states(states)
        positions = self._as_positions(position, states.shape[0])
        rows = np.arange(states.shape[0])
        others_ok = (states >= 0) & (states < self.vocab_size)
        others_ok[rows, positions] = True
        tokens = np.clip(states, 0, self.vocab_size - 1)
        log_weights = self.unary[positions].copy()  # (N, V)
        has_left = positions > 0
        if np.any(has_left):
            edge = positions[has_left] - 1
            left = tokens[rows[has_left], edge]
            log_weights[has_left] += self.coupling[edge, left, :]  # J_{i-1}(x_{i-1}, v)
        has_right = positions < self.length - 1
        if np.any(has_right):
            edge = positions[has_right]
            right = tokens[rows[has_right], edge + 1]
            log_weights[has_right] += self.coupling[edge, :, right]  # J_i(v, x_{i+1})
        log_weights = np.where(np.all(others_ok, axis=1)[:, None], log_weights, -np.inf)
        return _normalise_rows(log_weights)

    def __repr__(self) -> str:
        return f"PairwiseChain(vocab_size={self.vocab_size}, length={self.length})"
