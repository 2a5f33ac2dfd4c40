r"""The registry of Markov-chain samplers that ``textsampling generate`` runs: name -> how to drive it.

Every sampler follows the kernel contract (``init / num_uniforms / step`` of a torch twin, ARCHITECTURE.md),
so :func:`textsampling.cli.generate` needs from each only what differs: the twin module, its target
(``(model,)`` or ``(config,)``), its keyword parameters (at step ``t``: an annealing schedule), the
fresh starting sentences, how a state goes to the lines of ``samples.jsonl`` and back (the cached
score of a resumed run is the one on disk, bit for bit, not a rescoring), and what the mixing report
(:mod:`textsampling.cli.mixing`) reads from those lines. Adding a sampler to ``generate`` is one
:class:`ChainSampler` entry here.

What each sampler writes on a kept step, beside ``chain, step, tokens, text``:

* ``gibbs``: ``changes_target``; ``changed`` (did this step change the sentence: Gibbs always
  accepts); ``energy``, the PLL energy :math:`E(x) = -\sum_i \log p(x_i \mid x_{-i})` under the MLM
  (:func:`textsampling.torch.mlm_metropolis_hastings.energy`, ``energy_kind="pll"``: the energy MLM-MH
  samples), or ``null`` while the sentence still holds a [MASK] (a random scan that has not yet
  visited every position: the MLM's probability of the token "[MASK]" is no energy of a sentence).
  It is the model's energy whatever ``--temperature`` / ``--top-k`` say, and costs ``L`` masked-LM
  rows per chain, so it is computed on kept steps only;
* ``mh``: ``energy`` (of ``--energy``), ``accepted``;
* ``cgmh``: ``protected``, ``log_prob`` (:math:`\log\rho`), ``move`` (``replace``, ``insert`` or
  ``delete``: the move proposed), ``accepted``; ``anneal``: the same and ``temperature``.
* ``pt`` (parallel tempering over sentences, :mod:`textsampling.torch.sentence_tempering`, on the
  geometric ladder from 1 to ``--max-temperature`` of ``--num-replicas`` rungs): the chain's sentence
  is the replica at :math:`T = 1`, with ``cgmh``'s fields for that replica; then ``swap_proposed`` and
  ``swap_accepted`` (one bool per neighbour pair, coldest pair first) and every replica, coldest first,
  so that ``--resume`` restores them all: ``replicas`` (token lists), ``replica_log_probs``,
  ``replica_protected``.
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
        ``(target, before, state, info) -> dict`` of per-chain values written beside the tokens
        (``(B,)`` each, or a list of ``B`` values); ``before`` is the state before the step. Called
        on kept steps only.
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
    acceptance_field : str
        The boolean record field the mixing report counts: ``"accepted"``, or ``"changed"`` (Gibbs).
        Split by the record's ``move`` where the sampler writes one.
    traced : tuple of str
        Record fields whose traces the mixing report draws and diagnoses across chains (split R-hat,
        bulk ESS), beside the sentence length: ``("energy",)`` or ``("log_prob",)``.
    fixed_length : bool
        Each chain keeps the length it starts with (Gibbs, MLM-MH): the report does not diagnose it.
    at_equilibrium : bool
        False for annealing: its target changes with the temperature at every step, so R-hat and ESS
        describe the chains but are no convergence diagnostic (the report says so).
    sentences : callable
        ``state -> (B, L)``: the sentences written as the chains' (``state.x``; parallel tempering: the
        replica at :math:`T = 1`).
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
    acceptance_field: str = "accepted"
    traced: tuple = ()
    fixed_length: bool = False
    at_equilibrium: bool = True
    sentences: Callable = lambda state: state.x

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


def _changed(before, state):
    return (state.x != before.x).any(dim=1)  # (B,): did the step change the sentence


def _gibbs_record(target, before, state, info):
    """Gibbs always accepts: ``changed`` says whether the sentence moved; ``energy``: its PLL energy."""
    import torch

    from textsampling.torch.mlm_metropolis_hastings import energy

    (model,) = target
    x = state.x  # (B, L)
    complete = ~(x == model.mask_token_id).any(dim=1)  # (B,): no [MASK] left
    energies = [None] * x.shape[0]
    if bool(complete.any()):
        # Only the complete sentences are scored (L masked-LM rows each); the others stay null.
        values = energy(model, x[complete], "pll").double().cpu().tolist()  # (B',)
        for chain, value in zip(torch.nonzero(complete)[:, 0].tolist(), values):
            energies[chain] = value
    return {"changes_target": info.changes_target, "changed": _changed(before, state), "energy": energies}


def _keyword_record(target, before, state, info):
    import numpy as np

    from textsampling.reference.cgmh import MOVES

    moves = np.asarray(MOVES)[info.move.cpu().numpy()]  # (B,) names: "replace", "insert", "delete"
    return {"protected": state.protected, "log_prob": state.log_prob.double(), "move": moves,
            "accepted": info.accepted}


@functools.lru_cache(maxsize=8)
def _geometric_schedule(final_temperature: float, num_steps: int):
    from textsampling.reference.annealing import geometric_schedule

    return geometric_schedule(1.0, final_temperature, num_steps)  # (num_steps,), computed once per run


def _annealing_schedule(args):
    return _geometric_schedule(args.final_temperature, args.num_steps)


@functools.lru_cache(maxsize=8)
def _temperature_ladder(num_replicas: int, max_temperature: float):
    from textsampling.reference.sentence_tempering import geometric_temperatures

    return geometric_temperatures(num_replicas, max_temperature)  # (M,) from 1 up, computed once per run


def _tempering_params(args, step=None):
    return {"temperatures": _temperature_ladder(args.num_replicas, args.max_temperature)}


def _tempering_record(target, before, state, info):
    """The replica at T = 1 as the chain's (cgmh's fields), the swaps, and every replica for --resume."""
    import numpy as np

    cold = _keyword_record(target, before, state._replace(protected=state.protected[:, 0],
                                                          log_prob=state.log_prob[:, 0]),
                           info._replace(move=info.move[:, 0], accepted=info.accepted[:, 0]))
    tokens = state.x.cpu().numpy()  # (B, M, L)
    replicas = np.empty(tokens.shape[0], dtype=object)  # (B,) of M token lists each: ragged, so not one array
    for chain, rows in enumerate(tokens):
        replicas[chain] = [[int(t) for t in row if t != -1] for row in rows]
    return {**cold, "swap_proposed": info.swap_proposed, "swap_accepted": info.swap_accepted,
            "replicas": replicas, "replica_log_probs": state.log_prob.double(), "replica_protected": state.protected}


def _tempering_from_records(state, records):
    """Every replica of each chain from its last record: sentences, scores (bit for bit) and locked pieces."""
    import torch

    num_chains, num_replicas, width = state.x.shape
    x = torch.full((num_chains, num_replicas, width), -1, dtype=torch.int64, device=state.x.device)  # (B, M, L) PAD
    for chain, record in enumerate(records):
        for replica, tokens in enumerate(record["replicas"]):
            x[chain, replica, : len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
    log_prob = torch.tensor([record["replica_log_probs"] for record in records], dtype=torch.float64,
                            device=state.x.device).to(state.log_prob.dtype)  # (B, M): float64 on disk, exact back
    protected = torch.tensor([record["replica_protected"] for record in records], dtype=torch.bool,
                             device=state.x.device)  # (B, M, L)
    return state._replace(x=x, log_prob=log_prob, protected=protected)


# ----------------------------------------------------------------------------- the registry
CHAIN_SAMPLERS = {
    "gibbs": ChainSampler(
        algorithm="mlm_gibbs", model="masked", target=_masked_target, start=_all_mask_start,
        init_params=_no_params,
        uniform_params=lambda args: {"scan": args.scan, "max_length": args.max_length},
        step_params=lambda args, step: {"scan": args.scan, "temperature": args.temperature, "top_k": args.top_k},
        to_record=_gibbs_record,
        from_records=lambda state, records: state,
        moved=lambda before, state, info: _changed(before, state),
        rate_name="moved",
        acceptance_field="changed",
        traced=("energy",),
        fixed_length=True,
    ),
    "mh": ChainSampler(
        algorithm="mlm_metropolis_hastings", model="masked", target=_masked_target, start=_swept_all_mask_start,
        init_params=lambda args: {"energy_kind": args.energy},
        uniform_params=_no_params,
        step_params=lambda args, step: {"energy_kind": args.energy},
        # The energy E = -log_prob is what the paper and samples.jsonl name.
        to_record=lambda target, before, state, info: {"energy": (-state.log_prob).double(),
                                                       "accepted": info.accepted},
        from_records=lambda state, records: state._replace(log_prob=-_saved(records, "energy", state.log_prob)),
        moved=lambda before, state, info: info.accepted,
        score=lambda state: -state.log_prob,
        score_name="energy",
        traced=("energy",),
        fixed_length=True,
    ),
    "cgmh": ChainSampler(
        algorithm="cgmh", model="causal", target=_keyword_target, start=keyword_start,
        init_params=_no_params, uniform_params=_no_params, step_params=_no_params,
        to_record=_keyword_record,
        from_records=lambda state, records: state._replace(log_prob=_saved(records, "log_prob", state.log_prob)),
        moved=lambda before, state, info: info.accepted,
        score=lambda state: state.log_prob,
        keywords=True,
        traced=("log_prob",),
    ),
    "anneal": ChainSampler(
        algorithm="sentence_annealing", model="causal", target=_keyword_target, start=keyword_start,
        init_params=_no_params, uniform_params=_no_params,
        step_params=lambda args, step: {"temperature": float(_annealing_schedule(args)[step])},
        to_record=lambda target, before, state, info: {**_keyword_record(target, before, state, info),
                                                       "temperature": info.temperature},
        from_records=lambda state, records: state._replace(log_prob=_saved(records, "log_prob", state.log_prob)),
        moved=lambda before, state, info: info.accepted,
        score=lambda state: state.log_prob,
        best_of_run=True,
        keywords=True,
        traced=("log_prob",),
        at_equilibrium=False,
    ),
    "pt": ChainSampler(
        algorithm="sentence_tempering", model="causal", target=_keyword_target, start=keyword_start,
        init_params=lambda args: {"num_replicas": args.num_replicas},
        uniform_params=lambda args: {"num_replicas": args.num_replicas},
        step_params=_tempering_params,
        to_record=_tempering_record,
        from_records=_tempering_from_records,
        moved=lambda before, state, info: info.accepted[:, 0],  # the replica at T = 1
        score=lambda state: state.log_prob[:, 0],
        keywords=True,
        traced=("log_prob",),
        sentences=lambda state: state.x[:, 0],  # (B, L): the replica at T = 1
    ),
}
