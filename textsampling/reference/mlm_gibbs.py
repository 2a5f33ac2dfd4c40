r"""Gibbs sampling from a masked language model: "BERT has a Mouth, and It Must Speak".

A masked LM gives, for a sequence :math:`x` of length :math:`n` and a position :math:`i`, the
conditional :math:`p(x_i = v \mid x_{-i})`. Wang & Cho (2019, arXiv:1902.04094) read it as the
conditional of a Gibbs sampler (part 3 of the series, kexue.fm/archives/8119):

.. math::
    i \sim \mathrm{Uniform}\{0, \dots, n-1\} \ \text{(random scan) or } i = 0, 1, \dots, n-1
    \ \text{(systematic scan)}, \qquad x_i \leftarrow v \sim p(\cdot \mid x_{-i}).

When the conditionals are those of a joint :math:`p` (the bigram oracle), each site update is MH with
acceptance 1 and the chain leaves :math:`p(x \mid n)` invariant — the exact test. For BERT they need
not be the conditionals of *any* joint, so the chain has some stationary law, not a known one (Goyal et
al. 2022; :mod:`textsampling.reference.mlm_metropolis_hastings` corrects it).

**Start.** Either a given sentence, or all ``[MASK]`` with a length drawn first (:func:`init_all_mask`):
:math:`n \sim P(n)`, :math:`x = ([\mathrm{MASK}])^n`. The model then conditions on the still-masked
positions (an exact oracle marginalises them), so the first systematic sweep of an exact model draws
:math:`x_0 \sim p(x_0 \mid n)`, :math:`x_1 \sim p(x_1 \mid x_0, n)`, ... — an exact joint sample.

**Temperature and top-k change the target.** Sampling from
:math:`\mathrm{top}_k\bigl(p(\cdot \mid x_{-i})^{1/\tau}\bigr)` is no longer Gibbs for :math:`p`; it is
offered because published BERT samplers use it, and every info/trace says ``changes_target=True``.
Special tokens (``model.special_token_ids``: [MASK], [CLS], END...) are never sampled.

**The caller masks.** The conditional at :math:`i` is asked with ``[MASK]`` put at :math:`i`
(:func:`conditional_log_probs`): a real masked LM shown :math:`x_i` leans toward it, and forgetting the
mask is the commonest MLM-Gibbs bug (:class:`~textsampling.lm.oracle.MaskSensitiveOracle` reveals it;
the exact :class:`~textsampling.lm.oracle.BigramOracle` ignores :math:`x_i`).

Uniforms: a random-scan step uses ``uniforms[0]`` for the position (``floor(u n)``) and ``uniforms[1]``
for the token (inverse CDF); a systematic sweep uses ``uniforms[i]`` for position ``i`` (``max_length``
uniforms, those past the sequence unused); :func:`init_all_mask` uses one uniform for the length.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from textsampling._validation import check_int, check_positive, check_uniforms
from textsampling.lm.tokens import PAD, check_sequence, mask_special_tokens, sequence_length, with_mask_at
from textsampling.randomness import as_generator, categorical_from_uniforms, draw_uniforms, integer_from_uniform
from textsampling.reference import chain

__all__ = [
    "SCANS",
    "INIT_STEP",
    "MLMGibbsState",
    "MLMGibbsInfo",
    "MLMGibbsTrace",
    "init",
    "num_uniforms",
    "changes_target",
    "sampling_log_probs",
    "conditional_log_probs",
    "init_all_mask",
    "draw_all_mask_start",
    "step",
    "sample",
    "site_matrix",
    "transition_matrix",
]

SCANS = ("random", "systematic")
#: Step index whose uniforms draw the initial length (kept apart from the steps 0, 1, ... of the chain).
INIT_STEP = 2**32 - 1

#: The run of a chain: :class:`textsampling.reference.chain.Trace` (``states.x`` ``(T, L)``,
#: ``infos.position`` / ``infos.token`` ``(T,)`` for the random scan, ``(T, L)`` for sweeps).
MLMGibbsTrace = chain.Trace


class MLMGibbsState(NamedTuple):
    """The current sequence, shape ``(max_length,)``, PAD-padded; may hold [MASK] before a first visit."""

    x: np.ndarray


class MLMGibbsInfo(NamedTuple):
    """What a step did.

    A random-scan step: the ``position`` updated and the ``token`` written (scalars). A systematic
    sweep: ``position`` ``(L,)`` = ``0..n-1`` then -1 past the sequence, ``token`` ``(L,)`` the sequence
    after the sweep. ``changes_target``: temperature or top-k made the chain leave the model's joint.
    """

    position: np.ndarray
    token: np.ndarray
    changes_target: bool


# ----------------------------------------------------------------------------- checks and helpers
def check_scan(scan) -> str:
    if scan not in SCANS:
        raise ValueError(f"scan must be one of {SCANS}, got {scan!r}")
    return scan


def check_top_k(top_k):
    """``None`` (no truncation) or an int >= 1."""
    return None if top_k is None else check_int(top_k, "top_k", minimum=1)


#: What a masked LM must provide (:class:`textsampling.lm.base.MaskedLanguageModel`).
MASKED_MODEL_ATTRIBUTES = ("masked_log_probs", "vocab_size", "special_token_ids", "max_length", "mask_token_id")


def check_masked_model(model):
    """A masked LM (``masked_log_probs``, ``vocab_size``, ``special_token_ids``, ``max_length``,
    ``mask_token_id``), else TypeError."""
    missing = [name for name in MASKED_MODEL_ATTRIBUTES if getattr(model, name, None) is None]
    if missing:
        raise TypeError(
            f"model must be a masked language model (textsampling.lm.base.MaskedLanguageModel, e.g. "
            f"load_masked_lm('tiny-shakespeare')); {type(model).__name__} lacks {', '.join(missing)}"
        )
    return model


def changes_target(temperature: float, top_k) -> bool:
    """True when temperature != 1 or top-k truncation is on: the chain no longer targets the model's joint."""
    return bool(temperature != 1.0 or top_k is not None)


def sampling_log_probs(log_probs, special_token_ids, temperature: float = 1.0, top_k=None) -> np.ndarray:
    """The row a token is drawn from: specials removed, then :math:`\\ell / \\tau`, then top-k.

    Parameters
    ----------
    log_probs : array_like, shape (V,)
        The model's :math:`\\log p(x_i = v \\mid x_{-i})`.
    special_token_ids : iterable of int
        Ids never sampled (set to ``-inf`` whatever the model says, :func:`textsampling.lm.tokens.mask_special_tokens`).
    temperature : float
        :math:`\\tau > 0`; 1 keeps the model's conditional.
    top_k : int or None
        Keep the ``k`` largest entries (ties: the lower id first), others ``-inf``.

    Returns
    -------
    numpy.ndarray of float64, shape (V,), unnormalised.
    """
    row = mask_special_tokens(log_probs, special_token_ids)
    if np.any(np.isnan(row)) or np.any(row == np.inf) or np.all(row == -np.inf):
        raise ValueError("the model's conditional must be finite or -inf, never NaN/+inf, not all -inf")
    row = row / temperature
    if top_k is not None and top_k < row.shape[0]:
        order = np.argsort(-row, kind="stable")  # descending, lower id first on ties
        row[order[top_k:]] = -np.inf
    return row


def conditional_log_probs(model, x, position: int) -> np.ndarray:
    """The model's :math:`\\log p(x_i = v \\mid x_{-i})` at ``position``, asked with [MASK] put there, ``(V,)``.

    The caller masks (:func:`textsampling.lm.tokens.with_mask_at`): a masked LM that sees :math:`x_i`
    leans toward it, and forgetting the mask is the commonest MLM-Gibbs bug.
    """
    query = with_mask_at(x, position, model.mask_token_id)  # (L,), x_i replaced by [MASK]
    row = np.asarray(model.masked_log_probs(query[None], np.array([position])), dtype=np.float64)
    if row.shape != (1, model.vocab_size):
        raise ValueError(f"model.masked_log_probs must return shape (1, {model.vocab_size}), got {row.shape}")
    return row[0]


def _update(uniform, x, position, model, temperature, top_k) -> np.ndarray:
    """Redraw ``x[position]`` by inverse CDF of ``uniform`` over the sampling row."""
    row = sampling_log_probs(conditional_log_probs(model, x, position), model.special_token_ids, temperature, top_k)
    new_x = np.array(x, dtype=np.int64)
    new_x[position] = categorical_from_uniforms(np.atleast_1d(uniform), row)[0]
    return new_x


def num_uniforms(scan: str = "random", max_length: int | None = None) -> int:
    """2 for a random-scan step (position, token); ``max_length`` for a systematic sweep."""
    if check_scan(scan) == "random":
        return 2
    return check_int(max_length, "max_length", minimum=1)


# ----------------------------------------------------------------------------- the sampler
def init(x0, model) -> MLMGibbsState:
    """The state at ``x0`` (``(L,)``, tokens or [MASK] then PAD, at most ``model.max_length`` tokens)."""
    check_masked_model(model)
    return MLMGibbsState(check_sequence(x0, "x0", max_length=model.max_length))


def init_all_mask(uniform, model, max_length: int, length_log_probs=None) -> MLMGibbsState:
    """All-[MASK] start: draw :math:`n` from ``length_log_probs`` (entry ``k`` is length ``k + 1``).

    Parameters
    ----------
    uniform : float in (0, 1)
        Drives the length (inverse CDF).
    model : masked LM with ``mask_token_id``
    max_length : int
        Width of the state; lengths ``1..max_length``.
    length_log_probs : array_like, shape (max_length,), optional
        Unnormalised log-probabilities of the lengths; uniform by default.
    """
    max_length = check_int(max_length, "max_length", minimum=1)
    if max_length > model.max_length:
        raise ValueError(f"max_length = {max_length} is over the model's max_length = {model.max_length}")
    mask_token_id = getattr(model, "mask_token_id", None)
    if mask_token_id is None:
        raise ValueError("an all-[MASK] start needs a masked LM with a mask_token_id; give x0 instead")
    if length_log_probs is None:
        length_log_probs = np.zeros(max_length)
    length_log_probs = np.asarray(length_log_probs, dtype=np.float64)
    if length_log_probs.shape != (max_length,):
        raise ValueError(
            f"length_log_probs must have shape (max_length,) = ({max_length},) (entry k: length k + 1), "
            f"got {length_log_probs.shape}"
        )
    uniform = check_uniforms(np.atleast_1d(uniform), 1)
    length = int(categorical_from_uniforms(uniform, length_log_probs)[0]) + 1
    x = np.full(max_length, PAD, dtype=np.int64)
    x[:length] = int(mask_token_id)
    return MLMGibbsState(x)


def draw_all_mask_start(rng, model, max_length: int | None = None, length_log_probs=None) -> np.ndarray:
    """An all-[MASK] ``x0`` for :func:`sample`, its length drawn from the uniforms of step :data:`INIT_STEP`.

    ``max_length`` defaults to the model's. The uniform is that of step :data:`INIT_STEP`, apart from
    the chain's steps ``0, 1, ...``, so a chain started this way is still a function of ``rng`` alone.
    """
    check_masked_model(model)
    max_length = model.max_length if max_length is None else max_length
    uniform = draw_uniforms(as_generator(rng), INIT_STEP, 1).reshape(-1)[0]
    return init_all_mask(uniform, model, max_length, length_log_probs).x


def step(uniforms, state: MLMGibbsState, model, *, scan: str = "random", temperature: float = 1.0, top_k=None):
    """One random-scan step, or one systematic sweep, deterministic given ``uniforms``.

    Parameters
    ----------
    uniforms : array_like, shape (num_uniforms(scan, len(state.x)),)
    state : MLMGibbsState
    model : MaskedLanguageModel (see :mod:`textsampling.lm.base`)
        Asked for the conditional at ``i`` with [MASK] put at ``i`` (:func:`conditional_log_probs`).
    scan : {"random", "systematic"}
    temperature : float, default 1.0
        :math:`\\tau`; any value other than 1 changes the target.
    top_k : int or None
        Truncation of the conditional; changes the target.

    Returns
    -------
    (MLMGibbsState, MLMGibbsInfo)
    """
    check_scan(scan)
    temperature = check_positive(temperature, "temperature")
    top_k = check_top_k(top_k)
    x = check_sequence(state.x, "state.x", max_length=model.max_length)
    length = sequence_length(x)
    uniforms = check_uniforms(uniforms, num_uniforms(scan, x.shape[0]))
    flag = changes_target(temperature, top_k)
    if scan == "random":
        position = int(integer_from_uniform(uniforms[0], length))
        new_x = _update(uniforms[1], x, position, model, temperature, top_k)
        return MLMGibbsState(new_x), MLMGibbsInfo(np.int64(position), new_x[position], flag)
    for position in range(length):
        # Each update conditions on the tokens already rewritten earlier in the sweep.
        x = _update(uniforms[position], x, position, model, temperature, top_k)
    swept = np.where(np.arange(x.shape[0]) < length, np.arange(x.shape[0]), -1)  # (L,), -1 past the end
    return MLMGibbsState(x), MLMGibbsInfo(swept, x.copy(), flag)


def sample(
    rng, x0, model, num_steps: int, *, first_step: int = 0, scan: str = "random", temperature: float = 1.0, top_k=None
) -> MLMGibbsTrace:
    """Run ``num_steps`` steps (sweeps for the systematic scan) from ``x0`` and keep every state and info.

    :func:`init` + :func:`textsampling.reference.chain.run`: step ``t`` uses the uniforms of step
    ``first_step + t``. For an all-[MASK] start give ``x0 = draw_all_mask_start(rng, model)``.

    Returns
    -------
    MLMGibbsTrace
        ``states.x`` ``(T, L)``; ``infos`` as :class:`MLMGibbsInfo`, stacked over steps.
    """
    state = init(x0, model)

    def step_fn(uniforms, state, t):
        return step(uniforms, state, model, scan=scan, temperature=temperature, top_k=top_k)

    width = state.x.shape[0]
    return chain.run(rng, state, step_fn, num_uniforms(scan, width), num_steps, first_step=first_step)


# ----------------------------------------------------------------------------- exact kernel
def site_matrix(model, states, position: int, temperature: float = 1.0, top_k=None) -> np.ndarray:
    """Exact kernel of one update at ``position`` on the enumerated ``states`` (S, L), same code as :func:`step`."""
    states = np.asarray(states, dtype=np.int64)
    index = {row.tobytes(): s for s, row in enumerate(states)}
    matrix = np.zeros((states.shape[0], states.shape[0]))
    for a, x in enumerate(states):
        if position >= sequence_length(x):
            matrix[a, a] = 1.0  # a shorter sequence has no such position (sweeps skip it)
            continue
        row = sampling_log_probs(conditional_log_probs(model, x, position), model.special_token_ids, temperature, top_k)
        probabilities = np.exp(row - np.max(row))
        probabilities /= probabilities.sum()
        for token in np.flatnonzero(probabilities > 0):
            y = x.copy()
            y[position] = token
            key = y.tobytes()
            if key not in index:
                raise ValueError(f"state {y.tolist()} is reachable but missing from states")
            matrix[a, index[key]] += probabilities[token]
    return matrix


def transition_matrix(model, states, scan: str = "random", temperature: float = 1.0, top_k=None) -> np.ndarray:
    r"""Exact kernel on enumerated ``states`` (all of one length, or PAD-padded of several lengths).

    Random scan: :math:`P = \sum_i \frac{1}{n}K_i` over the positions of each state's length;
    systematic scan: one sweep :math:`K_0 K_1 \cdots`. Rows/columns follow ``states``.
    """
    check_scan(scan)
    check_masked_model(model)
    states = np.asarray(states, dtype=np.int64)
    lengths = np.array([sequence_length(x) for x in states])
    sites = [site_matrix(model, states, i, temperature, check_top_k(top_k)) for i in range(states.shape[1])]
    if scan == "random":
        matrix = np.zeros((states.shape[0], states.shape[0]))
        for i, site in enumerate(sites):
            # Position i is chosen with probability 1/n by a state of length n > i.
            weight = np.where(i < lengths, 1.0 / lengths, 0.0)
            matrix += weight[:, None] * site
        return matrix
    matrix = np.eye(states.shape[0])
    for site in sites:
        matrix = matrix @ site
    return matrix
