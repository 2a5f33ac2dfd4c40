r"""``textsampling generate --sampler smc``: keyword-constrained sentences by sequential Monte Carlo.

The causal language model proposes, the keyword potential weights (:mod:`textsampling.reference.smc`,
run on its torch twin :mod:`textsampling.torch.smc`): ``--num-runs`` :math:`R` independent runs of
``--num-particles`` :math:`N` particles each grow sentences of at most ``--max-length`` :math:`L` tokens,
one token per step, for :math:`L + 1` steps (every particle has then drawn END or run out of room). The
target is :math:`\pi(x) = p(x)\,\chi(x) / Z` with :math:`\chi` "every keyword occurs as a word"
(:class:`~textsampling.reference.smc.KeywordPotential`: zero as soon as the missing keywords cannot fit
in the tokens left), and each run's

.. math::
    \hat Z = \frac1N \sum_i w_i, \qquad \mathbb E[\hat Z] = Z = P_p(\text{the keywords appear}),

is an unbiased estimate of the probability of the constraint under the model (Lew et al. 2023; Chopin &
Papaspiliopoulos 2020, ch. 11). ``--proposal guided`` (the default) draws each token from
:math:`p(v \mid x)\,G(xv)` — never a dead end; ``bootstrap`` draws it from :math:`p` and weights it by
:math:`G`. A run resamples (systematic) before a step whose ESS is below ``--ess-threshold`` :math:`\cdot N`.

Run ``r`` at step ``t`` uses the counter uniforms ``Philox(seed, r, t)``: the same ``--seed`` writes the
same files, and run ``r`` is :func:`textsampling.reference.smc.sample` with ``CounterGenerator(seed, r)``,
decision by decision.

Output, in the run's folder (``run.json`` holds the settings):

``samples.jsonl``
    One record per final particle, run by run: ``run``, ``particle``, ``tokens``, ``text``, ``log_weight``
    (``null`` for a weight of zero), ``weight`` (normalised within its run; ``null`` if every weight of
    the run is zero), ``keywords_present`` (the keywords the decoded text holds as words),
    ``satisfied`` (all of them), ``truncated`` (the particle ran past ``--max-length`` without END:
    its weight is zero). Also ``chain`` :math:`= r N + n` and ``step`` :math:`= L` (the last step), so
    that ``textsampling show`` and ``textsampling evaluate`` read one sentence per particle; they ignore
    the weights (the particles are a *weighted* sample of :math:`\pi`).
``smc.json``
    Per run: ``log_evidence`` (:math:`\log \hat Z`, ``null`` when :math:`\hat Z = 0`), ``ess`` (the ESS
    before each step), ``final_ess``, ``resampled_steps`` and ``num_resampling_steps``, ``evaluations``
    (prefixes the model was run on), ``fraction_satisfied`` (of the particles) and
    ``weighted_fraction_satisfied``. Across runs: ``log_evidence_pooled`` (:math:`\log` of the mean of the
    runs' :math:`\hat Z`, itself unbiased for :math:`Z`), and with :math:`R > 1` the sample variance of
    :math:`\log \hat Z` over the runs (``log_evidence_variance``) and of :math:`\hat Z / \bar Z`
    (``relative_evidence_variance``); distinct-1/2 and the number of distinct sentences among all particles.

The run cannot be resumed (``--resume`` is refused): each step reweights and resamples whole particle
systems, and the particles are written only once every one has finished. Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

__all__ = ["SCHEME", "run_smc", "summarise_runs", "particle_records"]

#: The resampling scheme (:mod:`textsampling.reference.resampling`): systematic, the lowest-variance of the four
#: on most weight vectors (Chopin & Papaspiliopoulos 2020, ch. 9).
SCHEME = "systematic"


def _keywords(args) -> list:
    return [word.strip() for word in (args.keywords or "").split(",") if word.strip()]


def _finite_or_none(value: float):
    """A float for JSON, ``None`` for -inf (a weight or an estimate of zero)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _log_mean_exp(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    top = np.max(values)
    if top == -np.inf:
        return -np.inf
    return float(top + np.log(np.mean(np.exp(values - top))))


def summarise_runs(log_evidence) -> dict:
    r"""The estimates of :math:`Z` across runs, from each run's :math:`\log \hat Z_r` ``(R,)``.

    Returns ``log_evidence_pooled`` (:math:`\log \frac1R \sum_r \hat Z_r`, unbiased for :math:`Z` on
    the natural scale), and for ``R > 1`` ``log_evidence_variance`` (sample variance of the finite
    :math:`\log \hat Z_r`, ``None`` if some run has :math:`\hat Z = 0` or fewer than two are finite) and
    ``relative_evidence_variance`` (sample variance of :math:`\hat Z_r / \bar Z`, ``None`` if
    :math:`\bar Z = 0`); both ``None`` for one run.
    """
    log_evidence = np.asarray(log_evidence, dtype=np.float64)
    pooled = _log_mean_exp(log_evidence)
    summary = {"log_evidence_pooled": _finite_or_none(pooled), "log_evidence_variance": None,
               "relative_evidence_variance": None}
    if log_evidence.size > 1:
        if np.all(np.isfinite(log_evidence)):
            summary["log_evidence_variance"] = float(np.var(log_evidence, ddof=1))
        if np.isfinite(pooled):
            summary["relative_evidence_variance"] = float(np.var(np.exp(log_evidence - pooled), ddof=1))
    return summary


def particle_records(model, tokens, log_weight, truncated, keywords, num_steps: int) -> list:
    """The ``samples.jsonl`` records of the final particles: ``tokens`` ``(R, N, L)`` PAD-padded, ``log_weight``
    and ``truncated`` ``(R, N)``; ``num_steps`` is the number of steps run (``step`` is the last one)."""
    from textsampling.lm.keywords import missing_keywords

    num_runs, num_particles, _ = tokens.shape
    records = []
    for run in range(num_runs):
        run_log_weights = log_weight[run]
        top = np.max(run_log_weights)
        if top > -np.inf:  # normalised weights, in log space first: exp of the differences never overflows
            shifted = np.exp(run_log_weights - top)
            weights = shifted / shifted.sum()
        else:
            weights = None
        for particle in range(num_particles):
            row = [int(t) for t in tokens[run, particle] if t >= 0]
            text = model.decode(np.array(row, dtype=np.int64)) if row else ""
            missing = missing_keywords(text, keywords)
            records.append({
                "chain": run * num_particles + particle,
                "step": num_steps - 1,
                "run": run,
                "particle": particle,
                "tokens": row,
                "text": text,
                "log_weight": _finite_or_none(run_log_weights[particle]),
                "weight": None if weights is None else float(weights[particle]),
                "keywords_present": [word for word in keywords if word not in missing],
                "satisfied": not missing,
                "truncated": bool(truncated[run, particle]),
            })
    return records


def _distinct(texts, n: int):
    from textsampling import metrics

    nonempty = [text for text in texts if text.strip()]
    return metrics.distinct_n(nonempty, n) if nonempty else None


def run_smc(args, model, folder, device, interrupt_after_step=None) -> int:
    """Run ``--sampler smc`` with the causal ``model`` and write ``samples.jsonl`` and ``smc.json`` in ``folder``.

    ``args`` has been checked by :mod:`textsampling.cli.generate` (``num_particles``, ``num_runs``,
    ``proposal``, ``ess_threshold``, ``keywords``, ``max_length``, ``seed``). ``interrupt_after_step``
    (tests) raises ``KeyboardInterrupt`` once that step is done. Returns 0, or 130 when interrupted
    (then nothing is kept: ``run.json`` is removed, and the folder if it is left empty).
    """
    import torch
    from tqdm.auto import tqdm

    from textsampling.torch import smc as smc_twin
    from textsampling.torch.randomness import CounterGenerator, draw_uniforms
    from textsampling.torch.resampling import effective_sample_size

    folder = Path(folder)
    keywords = _keywords(args)
    num_runs, num_particles, max_length = args.num_runs, args.num_particles, args.max_length
    num_steps = max_length + 1  # every particle has drawn END, or overflowed, after L + 1 steps
    settings_file = folder / "run.json"
    settings = json.loads(settings_file.read_text())
    settings.update(num_particles=num_particles, num_runs=num_runs, proposal=args.proposal,
                    ess_threshold=args.ess_threshold, scheme=SCHEME, num_steps=num_steps)
    settings_file.write_text(json.dumps(settings, indent=2) + "\n")

    potential = smc_twin.KeywordPotential.for_model(model, keywords, max_length)
    rng = CounterGenerator(args.seed, torch.arange(num_runs, device=device))
    state = smc_twin.init(smc_twin.empty_prefixes_torch(num_runs, num_particles, max_length, device=device), model,
                          potential, dtype=torch.float64)
    count = smc_twin.num_uniforms(num_particles, SCHEME)
    end_token_id = model.end_token_id
    ended = torch.zeros(num_runs, num_particles, dtype=torch.bool, device=device)  # drew END (not: ran out of room)
    ess, resampled = [], []
    evaluations = torch.zeros(num_runs, dtype=torch.int64)
    step = -1
    print(f"SMC: {num_runs} run(s) x {num_particles} particles, {num_steps} steps, proposal {args.proposal}, "
          f"{SCHEME} resampling when ESS < {args.ess_threshold:g} N, keywords {', '.join(keywords)}", flush=True)
    try:
        with tqdm(total=num_steps, disable=args.no_progress, desc="generate --sampler smc", unit="step") as bar:
            for step in range(num_steps):
                before = state.finished
                uniforms = draw_uniforms(rng, step, count, num_runs, torch.float64, device)  # (R, k), as chain.run
                state, info = smc_twin.step(uniforms, state, model, potential, proposal=args.proposal, scheme=SCHEME,
                                            ess_threshold=args.ess_threshold)
                # the model saw the particles unfinished after the resampling: one prefix each
                evaluations += (~torch.gather(before, 1, info.ancestors)).sum(dim=1).cpu()  # (R,)
                ended = torch.gather(ended, 1, info.ancestors) | (info.token == end_token_id)  # (R, N)
                ess.append(info.ess.cpu().numpy())
                resampled.append(info.resampled.cpu().numpy())
                bar.set_postfix_str(f"mean ESS={float(info.ess.mean()):.1f}", refresh=False)
                bar.update(1)
                if interrupt_after_step is not None and step == interrupt_after_step:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        settings_file.unlink(missing_ok=True)
        if not any(folder.iterdir()):
            folder.rmdir()
        print(f"\ninterrupted after step {step + 1} of {num_steps}: an SMC run writes its particles only once all "
              f"have finished, so nothing was kept in {folder}; run the command again", file=sys.stderr)
        return 130

    tokens = state.x.cpu().numpy()  # (R, N, L)
    log_weight = state.log_weight.cpu().numpy()  # (R, N)
    truncated = (state.finished & ~ended).cpu().numpy()  # (R, N): ran out of room, weight 0
    log_evidence = smc_twin.log_evidence(state).cpu().numpy()  # (R,)
    final_ess = effective_sample_size(state.log_weight).cpu().numpy()  # (R,)
    ess = np.stack(ess, axis=1)  # (R, T)
    resampled = np.stack(resampled, axis=1)  # (R, T)

    records = particle_records(model, tokens, log_weight, truncated, keywords, num_steps)
    with (folder / "samples.jsonl").open("w") as output:
        for record in records:
            output.write(json.dumps(record) + "\n")

    runs = []
    for run in range(num_runs):
        mine = records[run * num_particles: (run + 1) * num_particles]
        satisfied = np.array([record["satisfied"] for record in mine])
        weights = np.array([record["weight"] or 0.0 for record in mine])
        runs.append({
            "run": run,
            "log_evidence": _finite_or_none(log_evidence[run]),
            "ess": [float(value) for value in ess[run]],
            "final_ess": float(final_ess[run]),
            "resampled_steps": [int(t) for t in np.flatnonzero(resampled[run])],
            "num_resampling_steps": int(resampled[run].sum()),
            "evaluations": int(evaluations[run]),
            "fraction_satisfied": float(satisfied.mean()),
            "weighted_fraction_satisfied": float(np.sum(weights * satisfied)),
        })
    texts = [record["text"] for record in records]
    summary = {
        "sampler": "smc", "keywords": keywords, "num_runs": num_runs, "num_particles": num_particles,
        "max_length": max_length, "num_steps": num_steps, "proposal": args.proposal, "scheme": SCHEME,
        "ess_threshold": args.ess_threshold, "seed": args.seed,
        **summarise_runs(log_evidence),
        "fraction_satisfied": float(np.mean([record["satisfied"] for record in records])),
        "num_distinct_sentences": len(set(texts)),
        "distinct_1": _distinct(texts, 1),
        "distinct_2": _distinct(texts, 2),
        "runs": runs,
    }
    (folder / "smc.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(summary, records, folder)
    return 0


def _format_log(value) -> str:
    return "-inf (Z-hat = 0: no particle holds the keywords)" if value is None else f"{value:.4f}"


def _print_summary(summary: dict, records: list, folder: Path) -> None:
    num_particles = summary["num_particles"]
    for run in summary["runs"]:
        print(f"run {run['run']}: log Z-hat = {_format_log(run['log_evidence'])}; final ESS "
              f"{run['final_ess']:.1f} of {num_particles}; resampled at {run['num_resampling_steps']} of "
              f"{summary['num_steps']} steps; {run['fraction_satisfied']:.0%} of the particles hold every keyword "
              f"(weighted {run['weighted_fraction_satisfied']:.3f})")
    if summary["num_runs"] > 1:
        variance = summary["log_evidence_variance"]
        print(f"over {summary['num_runs']} runs: log of the mean Z-hat {_format_log(summary['log_evidence_pooled'])}"
              f", variance of log Z-hat {'-' if variance is None else f'{variance:.4f}'}")
    distinct = ", ".join(f"distinct-{n} {summary[f'distinct_{n}']:.3f}" for n in (1, 2)
                         if summary[f"distinct_{n}"] is not None)
    print(f"{summary['num_distinct_sentences']} distinct sentences among {len(records)} particles"
          + (f"; {distinct}" if distinct else ""))
    totals = {}  # (run, sentence) -> its particles' total weight: resampled copies are one sentence
    for record in records:
        if record["weight"]:
            key = (record["run"], record["text"])
            totals[key] = totals.get(key, 0.0) + record["weight"]
    heaviest = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:5]
    if heaviest:
        print("heaviest sentences (total weight of their particles within the run):")
        for (run, text), weight in heaviest:
            print(f"  [run {run}, weight {weight:.3f}] {text}")
    print(f"written to {folder} (samples.jsonl: every particle with its weight; smc.json: the estimates)")
