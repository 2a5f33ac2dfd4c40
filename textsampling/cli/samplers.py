r"""The registry of Markov-chain samplers that ``textsampling generate`` runs: name -> how to drive it.

Every sampler follows the kernel contract (``init / num_uniforms / step`` of a torch twin, ARCHITECTURE.md),
so :func:`textsampling.cli.generate` needs from each only what differs: the twin module, its target
(``(model,)`` or ``(config,)``), its keyword parameters (at step ``t``: an annealing schedule), the
fresh starting sentences, and how a state goes to the lines of ``samples.jsonl`` and back (the cached
score of a resumed run is the one on disk, bit for bit, not a rescoring). Adding a sampler to
``generate`` is one :class:`ChainSampler` entry here.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Callable

__all__ = ["ChainSampler", "CHAIN_SAMPLERS", "keyword_start"]


@dataclass(frozen=True)
class ChainSampler:
    """How ``generate`` drives one torch twin (all callables take the parsed command-line ``args``).

    Attributes
    ----------
    algorithm : str
        The twin's module under :mod:`textsampling.torch` (``init``, ``num_uniforms``, ``step``).
    model : str
        ``"masked"`` or ``"causal"``: the language model it needs.
    target : callable
        ``target(args, model, keyword_ids) -> tuple``: the ``<target>`` arguments of ``init`` and ``step``.
    start : callable
        ``start(args, target, uniforms) -> x0`` ``(B, L)``: the sentences a fresh run starts from;
        ``uniforms(step, count)`` gives the counter uniforms of a step, ``(B, count)`` float64.
    init_params, uniform_params : callable
        ``args -> dict``: keyword parameters of ``init`` and of ``num_uniforms``.
    step_params : callable
        ``(args, step) -> dict``: keyword parameters of ``step`` at the global step index.
    to_record : callable
        ``(state, info) -> dict`` of per-chain values written beside the tokens (``(B,)`` each).
    from_records : callable
        ``(state, records) -> state``: the state restored from each chain's last record (its cached score).
    moved : callable
        ``(before, state, info) -> (B,)`` bool: the step's acceptance (``moved`` for Gibbs, which always accepts).
    score : callable or None
        ``state -> (B,)``: what the progress bar averages (``score_name``), or None.
    rate_name, score_name : str
        Names the progress bar and the summary print.
    best_of_run : bool
        A search (annealing): the report shows each chain's best sentence, not its last.
    keywords : bool
        The sentences must hold ``--keywords`` (checked on every record written).
    """

    algorithm: str
    model: str
    target: Callable
    start: Callable
    init_params: Callable
    uniform_params: Callable
    step_params: Callable
    to_record: Callable
    from_records: Callable
    moved: Callable
    score: Callable | None = None
    rate_name: str = "accept"
    score_name: str = "log rho"
    best_of_run: bool = False
    keywords: bool = False

    def module(self):
        """The twin module (imported now: torch only loads when a chain runs)."""
        return importlib.import_module(f"textsampling.torch.{self.algorithm}")


# ----------------------------------------------------------------------------- shared pieces
def _no_params(*_):
    return {}


def _masked_target(args, model, keyword_ids):
    return (model,)


def _length_log_probs(args, device):
    """Log-weights of the sentence lengths 1..max_length of an all-[MASK] start: uniform over the allowed."""
    import torch

    length_log_probs = torch.full((args.max_length,), -torch.inf, dtype=torch.float64, device=device)  # (L,)
    if args.length is not None:
        length_log_probs[args.length - 1] = 0.0
    else:
        length_log_probs[args.min_length - 1 :] = 0.0
    return length_log_probs


def _all_mask_start(args, target, uniforms):
    """All-[MASK] sentences of drawn lengths, from the first uniform of step ``INIT_STEP``."""
    from textsampling.reference.mlm_gibbs import INIT_STEP
    from textsampling.torch import mlm_gibbs

    (model,) = target
    init_uniforms = uniforms(INIT_STEP, 1)  # (B, 1)
    return mlm_gibbs.init_all_mask(init_uniforms, model, args.max_length,
                                   _length_log_probs(args, init_uniforms.device)).x


def _swept_all_mask_start(args, target, uniforms):
    """An all-[MASK] start filled by one systematic Gibbs sweep (MLM-MH needs a sentence to score)."""
    from textsampling.reference.mlm_gibbs import INIT_STEP
    from textsampling.torch import mlm_gibbs

    (model,) = target
    x = _all_mask_start(args, target, uniforms)  # (B, L)
    sweep_uniforms = uniforms(INIT_STEP, 1 + args.max_length)[:, 1:]  # (B, L): uniforms 1..L of that step
    return mlm_gibbs.step(sweep_uniforms, mlm_gibbs.init(x, model), model, scan="systematic")[0].x


def _keyword_target(args, model, keyword_ids):
    from textsampling.lm.keywords import continuation_token_ids
    from textsampling.reference import cgmh

    return (cgmh.make_config(
        model, keyword_ids, num_candidates=args.num_candidates, max_length=args.max_length, gamma=args.gamma,
        continuation_tokens=continuation_token_ids(model),
    ),)


def keyword_start(args, target, uniforms):
    """Every chain starts from the keywords, in the order given."""
    import torch

    (config,) = target
    start = [token for unit in config.keywords for token in unit]
    device = torch.device(args.device)
    x = torch.full((args.num_chains, args.max_length), -1, dtype=torch.int64, device=device)  # (B, L) PAD
    x[:, : len(start)] = torch.tensor(start, dtype=torch.int64, device=device)
    return x


def _saved(records, key, like):
    """Each chain's ``key`` from its last record, ``(B,)`` in ``like``'s dtype: float64 on disk, exact back."""
    import torch

    values = torch.tensor([record[key] for record in records], dtype=torch.float64, device=like.device)  # (B,)
    return values.to(like.dtype)


def _keyword_record(state, info):
    return {"protected": state.protected, "log_prob": state.log_prob.double(), "accepted": info.accepted}


@functools.lru_cache(maxsize=8)
def _geometric_schedule(final_temperature: float, num_steps: int):
    from textsampling.reference.annealing import geometric_schedule

    return geometric_schedule(1.0, final_temperature, num_steps)  # (num_steps,), computed once per run


def _annealing_schedule(args):
    return _geometric_schedule(args.final_temperature, args.num_steps)


# ----------------------------------------------------------------------------- the registry
CHAIN_SAMPLERS = {
    "gibbs": ChainSampler(
        algorithm="mlm_gibbs", model="masked", target=_masked_target, start=_all_mask_start,
        init_params=_no_params,
        uniform_params=lambda args: {"scan": args.scan, "max_length": args.max_length},
        step_params=lambda args, step: {"scan": args.scan, "temperature": args.temperature, "top_k": args.top_k},
        to_record=lambda state, info: {"changes_target": info.changes_target},
        from_records=lambda state, records: state,
        moved=lambda before, state, info: (state.x != before.x).any(dim=1),  # (B,): did the sentence change
        rate_name="moved",
    ),
    "mh": ChainSampler(
        algorithm="mlm_metropolis_hastings", model="masked", target=_masked_target, start=_swept_all_mask_start,
        init_params=lambda args: {"energy_kind": args.energy},
        uniform_params=_no_params,
        step_params=lambda args, step: {"energy_kind": args.energy},
        # The energy E = -log_prob is what the paper and samples.jsonl name.
        to_record=lambda state, info: {"energy": (-state.log_prob).double(), "accepted": info.accepted},
        from_records=lambda state, records: state._replace(log_prob=-_saved(records, "energy", state.log_prob)),
        moved=lambda before, state, info: info.accepted,
        score=lambda state: -state.log_prob,
        score_name="energy",
    ),
    "cgmh": ChainSampler(
        algorithm="cgmh", model="causal", target=_keyword_target, start=keyword_start,
        init_params=_no_params, uniform_params=_no_params, step_params=_no_params,
        to_record=_keyword_record,
        from_records=lambda state, records: state._replace(log_prob=_saved(records, "log_prob", state.log_prob)),
        moved=lambda before, state, info: info.accepted,
        score=lambda state: state.log_prob,
        keywords=True,
    ),
    "anneal": ChainSampler(
        algorithm="sentence_annealing", model="causal", target=_keyword_target, start=keyword_start,
        init_params=_no_params, uniform_params=_no_params,
        step_params=lambda args, step: {"temperature": float(_annealing_schedule(args)[step])},
        to_record=lambda state, info: {**_keyword_record(state, info), "temperature": info.temperature},
        from_records=lambda state, records: state._replace(log_prob=_saved(records, "log_prob", state.log_prob)),
        moved=lambda before, state, info: info.accepted,
        score=lambda state: state.log_prob,
        best_of_run=True,
        keywords=True,
    ),
}
