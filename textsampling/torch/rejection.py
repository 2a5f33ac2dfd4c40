r"""Torch twin of :mod:`textsampling.reference.rejection`: rejection sampling, a fixed budget per chain.

The rule and why the kept samples follow :math:`\pi` exactly are the reference's (von Neumann 1951;
part 1 of the series). The batch contract: ``B`` chains of ``N`` proposals each, states
``(B, N) + state_shape``, an ``accepted`` mask ``(B, N)``, in the proposal's dtype. A violated envelope
(:math:`\rho > M q` at a drawn state) raises, as in the reference, instead of biasing the output.
Uniforms of a proposal: ``[..., :-1]`` go to ``proposal.sample``, ``[..., -1]`` decides. Proposal ``n``
of chain ``c`` uses ``(seed, c, first_step + n)``: chain ``c`` is the reference run with
``CounterGenerator(seed, c)``. The numbers kept differ between chains, so the result holds every
proposal with an ``accepted`` mask (:meth:`RejectionResult.samples` gives one chain's kept states).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from textsampling._validation import check_int
from textsampling.reference.rejection import ENVELOPE_TOLERANCE, check_log_envelope
from textsampling.reference.rejection import tightest_log_envelope as _reference_tightest_log_envelope
from textsampling.torch._validation import check_same_device, check_same_dtype, check_tensor, raise_if
from textsampling.torch.importance import flat_log_prob
from textsampling.torch.randomness import as_generator, draw_uniforms_for_steps

__all__ = [
    "RejectionResult",
    "ENVELOPE_TOLERANCE",
    "check_log_envelope",
    "num_uniforms",
    "log_accept_probability",
    "step",
    "sample",
    "tightest_log_envelope",
]


class RejectionResult(NamedTuple):
    """Every proposal ``(B, N) + state_shape``, the decisions ``(B, N)``, and per-chain counts ``(B,)``."""

    states: torch.Tensor
    accepted: torch.Tensor
    num_proposed: int
    num_accepted: torch.Tensor
    acceptance_rate: torch.Tensor

    def samples(self, chain: int) -> torch.Tensor:
        """The accepted states of one chain, in order (the reference's ``samples``)."""
        return self.states[chain][self.accepted[chain]]


def num_uniforms(proposal) -> int:
    """Uniforms per proposal: the proposal's, then the accept uniform."""
    return int(proposal.num_uniforms) + 1


def log_accept_probability(
    log_prob_values: torch.Tensor, proposal_log_probs: torch.Tensor, log_envelope
) -> torch.Tensor:
    r""":math:`\log\rho - \log M - \log q` per proposal; raises where the envelope is violated."""
    log_envelope = check_log_envelope(log_envelope)
    log_rho = check_tensor(log_prob_values, "log_prob_values", integer=False)
    log_q = check_tensor(proposal_log_probs, "proposal_log_probs", integer=False)
    check_same_device(log_prob_values=log_rho, proposal_log_probs=log_q)
    check_same_dtype(log_prob_values=log_rho, proposal_log_probs=log_q)
    if log_rho.shape != log_q.shape:
        raise ValueError(
            f"log_prob_values and proposal_log_probs differ in shape: {tuple(log_rho.shape)} vs {tuple(log_q.shape)}"
        )
    values = log_rho - log_envelope - log_q
    raise_if(
        [
            torch.isnan(log_rho).any() | (log_rho == torch.inf).any(),
            ~torch.isfinite(log_q).all(),
            (values > ENVELOPE_TOLERANCE).any(),
        ],
        [
            "log_prob_values must be finite or -inf, never NaN/+inf",
            "proposal_log_probs must be finite: a drawn x has q(x) > 0",
            f"log_envelope = {log_envelope!r} is too small: at a drawn state rho > M q, so the samples would be "
            "biased; raise log_envelope to at least the maximum of log rho - log q",
        ],
    )
    return values


def step(uniforms: torch.Tensor, log_prob_fn, proposal, log_envelope):
    """Propose and decide for every chain (deterministic given ``uniforms`` ``(B, N, k + 1)``).

    Returns
    -------
    (states (B, N) + state_shape, accepted (B, N), log_accept_probabilities (B, N))
    """
    uniforms = check_tensor(uniforms, "uniforms", integer=False, ndim=3)
    if uniforms.shape[2] != num_uniforms(proposal):
        raise ValueError(f"uniforms must have shape (B, N, {num_uniforms(proposal)}), got {tuple(uniforms.shape)}")
    raise_if([~((uniforms > 0) & (uniforms < 1)).all()], ["uniforms must lie in the open interval (0, 1)"])
    states = proposal.sample(uniforms[..., :-1])
    log_rho = flat_log_prob(log_prob_fn, states, uniforms.shape[:2])
    log_alpha = log_accept_probability(log_rho, proposal.log_prob(states), log_envelope)
    # Keep x iff log u < log rho - log M - log q.
    accepted = torch.log(uniforms[..., -1]) < log_alpha
    return states, accepted, log_alpha


def sample(
    rng, log_prob_fn, proposal, log_envelope, num_proposals: int, first_step: int = 0, num_chains=None
) -> RejectionResult:
    """``num_proposals`` proposals per chain; the count kept is Binomial(``num_proposals``, Z / M) per chain."""
    rng = as_generator(rng)
    log_envelope = check_log_envelope(log_envelope)
    num_proposals = check_int(num_proposals, "num_proposals", minimum=1)
    first_step = check_int(first_step, "first_step")
    uniforms = draw_uniforms_for_steps(
        rng, first_step, num_proposals, num_uniforms(proposal), num_chains, proposal.dtype, proposal.device
    )
    states, accepted, _ = step(uniforms, log_prob_fn, proposal, log_envelope)
    num_accepted = accepted.sum(dim=1)
    return RejectionResult(
        states, accepted, num_proposals, num_accepted, num_accepted.to(uniforms.dtype) / num_proposals
    )


def tightest_log_envelope(target, proposal) -> float:
    r"""The smallest valid :math:`\log M` over an enumerable target: the reference's, on the twins' references."""
    return _reference_tightest_log_envelope(
        getattr(target, "reference", target), getattr(proposal, "reference", proposal)
    )
