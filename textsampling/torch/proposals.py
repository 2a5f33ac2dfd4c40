r"""Torch twins of :mod:`textsampling.reference.proposals`, batched over chains.

Same proposals, same uniform roles, same Hastings terms, with a leading chain dimension:

* MH proposals: ``propose(uniforms (B, k), x (B,) + state_shape) -> (y, log_q_ratio (B,))`` with
  :math:`\log q(x \mid y) - \log q(y \mid x)`;
* independent proposals: ``sample(uniforms (..., k)) -> states (...) + state_shape`` and normalised
  ``log_prob(states) -> (...)``.

Conventions (ARCHITECTURE.md): an integer in ``0..n-1`` is ``floor(u n)`` clamped to ``n - 1``; a
category is the inverse-CDF rule; a standard normal is Box–Muller
:math:`z = \sqrt{-2\log u_1}\cos(2\pi u_2)` (Box & Muller 1958) on uniforms ``2d, 2d + 1``.
Every twin is built from the reference's arguments (or :meth:`from_reference`); the reference
validates them and computes the tables (normalised logs, :math:`\log a`, :math:`\log(1-a)`) in NumPy,
so the twin's Hastings terms are the reference's numbers. Part 2 of the series (spaces.ac.cn/archives/8084).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from textsampling.reference import proposals as reference
from textsampling.torch._validation import (
    check_float_dtype,
    check_same_device,
    check_tensor,
    resolve_device,
    same_device,
)
from textsampling.torch.randomness import (
    categorical_from_uniforms,
    draw_uniforms_for_steps,
    integer_from_uniform,
    normal_from_uniforms,
)

__all__ = [
    "integer_from_uniform",
    "normal_from_uniforms",
    "draw_uniforms_for_steps",
    "UniformCategoricalProposal",
    "RingStepProposal",
    "SingleSiteProposal",
    "IndependenceProposal",
    "GaussianRandomWalkProposal",
    "IndependentCategorical",
    "IndependentUniformSequences",
    "IndependentGaussian",
]


class _Twin:
    """Shared plumbing: the reference object, dtype, device, and checks of a batch."""

    _reference_class: type = object
    #: Whether every Hastings term ``log_q_ratio`` this proposal returns is finite (a static property):
    #: then :func:`textsampling.torch.metropolis_hastings.step` may skip the impossible-start mask,
    #: which a finite term makes redundant (see ``log_accept_ratio``). False unless a subclass knows.
    finite_log_q_ratio: bool = False

    def _setup(self, reference_proposal, dtype, device) -> None:
        self.reference = reference_proposal
        self.dtype = check_float_dtype(dtype)
        self.device = resolve_device(device)
        self.num_uniforms = int(reference_proposal.num_uniforms)
        self._build()

    def _build(self) -> None:
        pass

    @classmethod
    def from_reference(cls, reference_proposal, dtype=None, device=None):
        """The twin of an existing NumPy proposal."""
        if not isinstance(reference_proposal, cls._reference_class):
            raise TypeError(
                f"reference_proposal must be a {cls._reference_class.__name__}, got {type(reference_proposal).__name__}"
            )
        twin = cls.__new__(cls)
        twin._setup(reference_proposal, dtype, device)
        return twin

    def _table(self, values) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values), dtype=self.dtype, device=self.device)

    def _check_uniforms(self, uniforms, leading: int | None = None) -> torch.Tensor:
        if (
            type(uniforms) is torch.Tensor
            and uniforms.dtype is self.dtype
            and uniforms.ndim == (leading or uniforms.ndim)
            and uniforms.ndim > 0
            and uniforms.shape[-1] == self.num_uniforms
            and uniforms.device == self.device
        ):
            return uniforms  # the common case, every check below passed (a per-step cost on small batches)
        uniforms = check_tensor(uniforms, "uniforms", integer=False)
        if not same_device(uniforms.device, self.device):
            raise ValueError(f"uniforms is on {uniforms.device} but the proposal lives on {self.device}")
        if uniforms.dtype != self.dtype:
            raise TypeError(f"uniforms must have the proposal's dtype {self.dtype}, got {uniforms.dtype}")
        if uniforms.ndim == 0 or uniforms.shape[-1] != self.num_uniforms or (leading and uniforms.ndim != leading):
            expected = "(B, k)" if leading == 2 else "(..., k)"
            raise ValueError(
                f"uniforms must have shape {expected} with k = {self.num_uniforms}, got {tuple(uniforms.shape)}"
            )
        return uniforms

    def _check_x(self, x, uniforms, state_ndim: int, integer: bool) -> torch.Tensor:
        if (
            type(x) is torch.Tensor
            and (x.dtype is torch.int64 if integer else x.dtype.is_floating_point)
            and x.ndim == 1 + state_ndim
            and x.shape[0] == uniforms.shape[0]
            and x.device == uniforms.device
        ):
            return x  # the common case, every check below passed
        x = check_tensor(x, "x", integer=integer)
        check_same_device(uniforms=uniforms, x=x)
        if x.ndim != 1 + state_ndim or x.shape[0] != uniforms.shape[0]:
            raise ValueError(
                f"x must have shape (B,) + state_shape with B = {uniforms.shape[0]} (the rows of uniforms) and "
                f"{state_ndim} state dimension(s), got {tuple(x.shape)}"
            )
        return x


# ----------------------------------------------------------------------------- MH proposals
class UniformCategoricalProposal(_Twin):
    """``y = floor(u K)``, uniform over ``0..K-1``; q-ratio 0. ``uniforms[:, 0]`` picks ``y``."""

    _reference_class = reference.UniformCategoricalProposal
    finite_log_q_ratio = True  # zeros

    def __init__(self, num_categories: int, dtype=None, device=None):
        self._setup(reference.UniformCategoricalProposal(num_categories), dtype, device)

    def _build(self) -> None:
        self.num_categories = self.reference.num_categories

    def propose(self, uniforms: torch.Tensor, x: torch.Tensor):
        """``(y, log_q_ratio)`` for uniforms ``(B, k)`` and states ``x`` ``(B,) + state_shape`` (see the class)."""
        uniforms = self._check_uniforms(uniforms, leading=2)
        self._check_x(x, uniforms, 0, integer=True)
        y = integer_from_uniform(uniforms[:, 0], self.num_categories)  # (B,)
        return y, uniforms.new_zeros(uniforms.shape[0])  # (B,): q(y | x) = q(x | y) = 1 / K


class RingStepProposal(_Twin):
    """``y = x + 1 mod K`` with probability ``a`` (iff ``uniforms[:, 0] < a``), else ``x - 1 mod K``."""

    _reference_class = reference.RingStepProposal

    def __init__(self, num_categories: int, forward_probability: float, dtype=None, device=None):
        self._setup(reference.RingStepProposal(num_categories, forward_probability), dtype, device)

    def _build(self) -> None:
        self.num_categories = self.reference.num_categories
        self.forward_probability = self.reference.forward_probability
        # The reference's Hastings terms, log q(x|y) - log q(y|x), for a forward and a backward step.
        self._forward_ratio = float(self.reference._log_backward - self.reference._log_forward)
        self._backward_ratio = float(self.reference._log_forward - self.reference._log_backward)
        # log a and log(1 - a) are finite for a in (0, 1), which the reference checked.
        self.finite_log_q_ratio = math.isfinite(self._forward_ratio) and math.isfinite(self._backward_ratio)

    def propose(self, uniforms: torch.Tensor, x: torch.Tensor):
        """``(y, log_q_ratio)`` for uniforms ``(B, k)`` and states ``x`` ``(B,) + state_shape`` (see the class)."""
        uniforms = self._check_uniforms(uniforms, leading=2)
        x = self._check_x(x, uniforms, 0, integer=True)
        forward = uniforms[:, 0] < self.forward_probability  # (B,)
        y = torch.remainder(x + torch.where(forward, 1, -1), self.num_categories)  # (B,)
        # new_tensor keeps the dtype of the uniforms (a bare Python float would be made float32 first).
        ratio = torch.where(
            forward, uniforms.new_tensor(self._forward_ratio), uniforms.new_tensor(self._backward_ratio)
        )  # (B,)
        return y, ratio


class SingleSiteProposal(_Twin):
    """A uniform position ``floor(u_0 L)``, then a token from ``r_i`` by inverse CDF of ``u_1``.

    Hastings term :math:`\\log r_i(x_i) - \\log r_i(y_i)` (0 when the token is redrawn unchanged).
    """

    _reference_class = reference.SingleSiteProposal

    def __init__(self, vocab_size: int, length: int, token_logits=None, dtype=None, device=None):
        if isinstance(token_logits, torch.Tensor):
            token_logits = token_logits.detach().cpu().numpy()
        self._setup(reference.SingleSiteProposal(vocab_size, length, token_logits), dtype, device)

    def _build(self) -> None:
        self.vocab_size, self.length = self.reference.vocab_size, self.reference.length
        self.token_log_probs = self._table(self.reference.token_log_probs)  # (L, V), normalised

    def propose(self, uniforms: torch.Tensor, x: torch.Tensor):
        """``(y, log_q_ratio)`` for uniforms ``(B, k)`` and states ``x`` ``(B,) + state_shape`` (see the class)."""
        uniforms = self._check_uniforms(uniforms, leading=2)
        x = self._check_x(x, uniforms, 1, integer=True)
        if x.shape[1] != self.length:
            raise ValueError(f"x must have shape (B, {self.length}), got {tuple(x.shape)}")
        rows = torch.arange(x.shape[0], device=x.device)
        position = integer_from_uniform(uniforms[:, 0], self.length)  # (B,)
        row_log_probs = self.token_log_probs[position]  # (B, V)
        token = categorical_from_uniforms(
            uniforms[:, 1], row_log_probs, validate=False
        )  # rows checked by the reference
        y = x.clone()
        y[rows, position] = token
        current = x[rows, position]
        log_q_ratio = row_log_probs[rows, current] - row_log_probs[rows, token]  # (B,)
        return y, log_q_ratio


class IndependenceProposal(_Twin):
    """MH with an independent proposal: Hastings term :math:`\\log q(x) - \\log q(y)`."""

    _reference_class = reference.IndependenceProposal

    def __init__(self, independent):
        if not isinstance(independent, (IndependentCategorical, IndependentUniformSequences, IndependentGaussian)):
            raise TypeError(
                "independent must be a torch independent proposal (e.g. IndependentCategorical), "
                f"got {type(independent).__name__}"
            )
        self.independent = independent
        self._setup(reference.IndependenceProposal(independent.reference), independent.dtype, independent.device)

    @classmethod
    def from_reference(cls, reference_proposal, dtype=None, device=None):
        """The twin of an existing NumPy object (same tables, in ``dtype`` on ``device``)."""
        if not isinstance(reference_proposal, reference.IndependenceProposal):
            raise TypeError(
                f"reference_proposal must be an IndependenceProposal, got {type(reference_proposal).__name__}"
            )
        # The inner proposal's twin is one of this module's independent proposals, picked by its exact
        # reference class (as textsampling.torch.twins.twin_of would, without importing it: twins.py sits
        # above this module and imports it).
        inner = reference_proposal.independent
        for twin_class in (IndependentCategorical, IndependentUniformSequences, IndependentGaussian):
            if type(inner) is twin_class._reference_class:
                return cls(twin_class.from_reference(inner, dtype=dtype, device=device))
        raise TypeError(
            "reference_proposal.independent must be an IndependentCategorical, IndependentUniformSequences or "
            f"IndependentGaussian (a proposal with a torch twin), got {type(inner).__name__}"
        )

    def propose(self, uniforms: torch.Tensor, x: torch.Tensor):
        """``(y, log_q_ratio)`` for uniforms ``(B, k)`` and states ``x`` ``(B,) + state_shape`` (see the class)."""
        uniforms = self._check_uniforms(uniforms, leading=2)
        y = self.independent.sample(uniforms)  # (B,) + state_shape
        x = self._check_x(x, uniforms, y.ndim - 1, integer=not y.dtype.is_floating_point)
        return y, self.independent.log_prob(x) - self.independent.log_prob(y)


class GaussianRandomWalkProposal(_Twin):
    """:math:`y = x + \\sigma z`, Box–Muller on ``uniforms[:, 2j], uniforms[:, 2j+1]``; q-ratio 0.

    States are ``(B,)`` when ``dimension == 1`` or ``(B, d)``.
    """

    _reference_class = reference.GaussianRandomWalkProposal
    finite_log_q_ratio = True  # zeros

    def __init__(self, scale: float, dimension: int = 1, dtype=None, device=None):
        self._setup(reference.GaussianRandomWalkProposal(scale, dimension), dtype, device)

    def _build(self) -> None:
        self.scale, self.dimension = self.reference.scale, self.reference.dimension

    def propose(self, uniforms: torch.Tensor, x: torch.Tensor):
        """``(y, log_q_ratio)`` for uniforms ``(B, k)`` and states ``x`` ``(B,) + state_shape`` (see the class)."""
        uniforms = self._check_uniforms(uniforms, leading=2)
        x = check_tensor(x, "x", integer=False)
        check_same_device(uniforms=uniforms, x=x)
        if x.dtype != self.dtype:
            raise TypeError(f"x must have the proposal's dtype {self.dtype}, got {x.dtype}")
        if x.shape[0] != uniforms.shape[0] or x[0].numel() != self.dimension or x.ndim > 2:
            raise ValueError(
                f"x must have shape (B,) or (B, {self.dimension}) with B = {uniforms.shape[0]}, got {tuple(x.shape)}"
            )
        z = normal_from_uniforms(uniforms[:, 0::2], uniforms[:, 1::2])  # (B, d)
        return x + self.scale * z.reshape(x.shape), uniforms.new_zeros(uniforms.shape[0])  # (B,) or (B, d); (B,)


# ----------------------------------------------------------------------------- independent proposals
class IndependentCategorical(_Twin):
    """Independent draws from ``softmax(logits)`` by inverse CDF (one uniform each)."""

    _reference_class = reference.IndependentCategorical

    def __init__(self, logits, dtype=None, device=None):
        if isinstance(logits, torch.Tensor):
            logits = logits.detach().cpu().numpy()
        self._setup(reference.IndependentCategorical(logits), dtype, device)

    def _build(self) -> None:
        self.num_categories = self.reference.num_categories
        self.log_probs = self._table(self.reference.log_probs)  # (K,), normalised log q

    def sample(self, uniforms: torch.Tensor) -> torch.Tensor:
        """States from uniforms ``(..., k)``: shape ``(...) + state_shape``."""
        uniforms = self._check_uniforms(uniforms)
        return categorical_from_uniforms(uniforms[..., 0], self.log_probs)  # (...)

    def log_prob(self, states: torch.Tensor) -> torch.Tensor:
        """Normalised :math:`\\log q` of each state, shape ``(...)`` (``-inf`` outside the support)."""
        states = check_tensor(states, "states", integer=True)
        inside = (states >= 0) & (states < self.num_categories)
        return torch.where(inside, self.log_probs[states.clamp(0, self.num_categories - 1)], -torch.inf)  # (...)


class IndependentUniformSequences(_Twin):
    """Uniform token sequences: token ``i`` = ``floor(u_i V)``, so :math:`\\log q = -L \\log V`."""

    _reference_class = reference.IndependentUniformSequences

    def __init__(self, vocab_size: int, length: int, dtype=None, device=None):
        self._setup(reference.IndependentUniformSequences(vocab_size, length), dtype, device)

    def _build(self) -> None:
        self.vocab_size, self.length = self.reference.vocab_size, self.reference.length
        # The reference's constant, -L log V, computed once in NumPy.
        self._log_q = float(-self.length * np.log(self.vocab_size))

    def sample(self, uniforms: torch.Tensor) -> torch.Tensor:
        """States from uniforms ``(..., k)``: shape ``(...) + state_shape``."""
        uniforms = self._check_uniforms(uniforms)
        return integer_from_uniform(uniforms, self.vocab_size)  # (..., L)

    def log_prob(self, states: torch.Tensor) -> torch.Tensor:
        """Normalised :math:`\\log q` of each state, shape ``(...)`` (``-inf`` outside the support)."""
        states = check_tensor(states, "states", integer=True)
        if states.ndim == 0 or states.shape[-1] != self.length:
            raise ValueError(f"states must have shape (..., {self.length}), got {tuple(states.shape)}")
        inside = ((states >= 0) & (states < self.vocab_size)).all(dim=-1)
        log_q = torch.tensor(self._log_q, dtype=self.dtype, device=states.device)
        return torch.where(inside, log_q, -torch.inf)  # (...)


class IndependentGaussian(_Twin):
    """Independent :math:`N(\\mu, \\sigma^2 I_d)` by Box–Muller; states ``(...)`` if ``d == 1`` else ``(..., d)``."""

    _reference_class = reference.IndependentGaussian

    def __init__(self, mean, scale: float, dtype=None, device=None):
        self._setup(reference.IndependentGaussian(mean, scale), dtype, device)

    def _build(self) -> None:
        self.dimension, self.scale = self.reference.dimension, self.reference.scale
        self.mean = self._table(self.reference.mean)  # (d,)
        self._log_constant = float(self.dimension * (np.log(self.scale) + 0.5 * np.log(2 * np.pi)))

    def sample(self, uniforms: torch.Tensor) -> torch.Tensor:
        """States from uniforms ``(..., k)``: shape ``(...) + state_shape``."""
        uniforms = self._check_uniforms(uniforms)
        z = normal_from_uniforms(uniforms[..., 0::2], uniforms[..., 1::2])  # (..., d)
        states = self.mean + self.scale * z
        return states[..., 0] if self.dimension == 1 else states

    def log_prob(self, states: torch.Tensor) -> torch.Tensor:
        """Normalised :math:`\\log q` of each state, shape ``(...)`` (``-inf`` outside the support)."""
        states = check_tensor(states, "states", integer=False)
        if self.dimension == 1:
            states = states[..., None]
        if states.shape[-1] != self.dimension:
            raise ValueError(f"states must have last dimension {self.dimension}, got {tuple(states.shape)}")
        squared = ((states - self.mean) ** 2).sum(dim=-1) / self.scale**2
        return -0.5 * squared - self._log_constant
