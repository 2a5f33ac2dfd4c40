r"""The mixing report ``textsampling generate`` leaves beside ``samples.jsonl`` after a chain run.

Goyal, Dyer & Berg-Kirkpatrick (2022, arXiv:2106.02736) judge their MLM samplers by the acceptance
rate and the energy traces of the chains; Vehtari et al. (2021, Bayesian Analysis 16:667) give the
cross-chain diagnostics. Computed from ``samples.jsonl`` alone (so a resumed run gets the report of the
whole run, identical to an uninterrupted one), the report holds:

* the **acceptance rate** per move type: cgmh / anneal split by the ``move`` of each record (replace,
  insert, delete); mh: the accept rate of its proposals; gibbs, which always accepts: the fraction of
  steps that changed the sentence. Counted on the kept steps: with ``--keep-every k > 1`` that is a
  subsample, one step in ``k`` (the report says so); for pt, also the **swap acceptance** of each
  neighbour pair of replicas (swaps accepted over swaps proposed, coldest pair first);
* **split R-hat** (rank-normalised, :func:`textsampling.diagnostics.split_rhat`) and **bulk ESS**
  (:func:`textsampling.diagnostics.effective_sample_size`) across chains of sentence-level statistics:
  the length in tokens and the traced score of the sampler (energy for gibbs and mh, :math:`\log\rho`
  for cgmh and anneal). The draws are the second half of the kept steps of every chain (the first half
  is warm-up). With fewer than :data:`MIN_CHAINS` chains or :data:`MIN_DRAWS` draws per chain, a
  missing value (a Gibbs energy while [MASK] remains), or no variation to measure, the report gives
  ``null`` and says why in words: never a silent NaN;
* for annealing, the statement that its target :math:`\rho^{1/T}` changes with the temperature, so
  R-hat is not a convergence diagnostic there.

Files: ``mixing.json`` (the numbers), ``mixing.md`` (the same in words and tables) and ``traces.png``
(the score and length of every chain over the steps, warm-up shaded).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from textsampling import diagnostics
from textsampling.cli.samplers import CHAIN_SAMPLERS
from textsampling.reference.cgmh import MOVES

__all__ = ["MIN_CHAINS", "MIN_DRAWS", "FIELD_NAMES", "kept_draws", "mixing_report", "write_report",
           "summary_lines", "plot_traces"]

#: Split R-hat compares chains: at least two of them.
MIN_CHAINS = 2
#: Draws per chain after warm-up that the split diagnostics need (each chain is cut in two halves).
MIN_DRAWS = 4
#: Record field -> the name the report uses.
FIELD_NAMES = {"length": "length", "energy": "energy", "log_prob": "log rho"}

ANNEALING_NOTE = (
    "Annealing is not at equilibrium: its target rho^(1/T) changes with the temperature at every step, so "
    "the chains never sample one fixed distribution. R-hat and ESS are computed all the same, as a description "
    "of how much the chains agree and move, but R-hat is not a convergence diagnostic here."
)

#: Gibbs and MLM-MH keep each chain's drawn length: chains of different lengths sample different laws.
DIFFERENT_LENGTHS_NOTE = (
    "The chains have different lengths ({lengths} tokens), drawn at the start and kept by this sampler: each "
    "chain samples the sentences of its own length, so the R-hat of the energy compares different "
    "distributions and stays above 1 however long the run. For R-hat as a convergence diagnostic, give every "
    "chain one length (--length N)."
)


def _by_chain(records) -> dict:
    """chain -> its records in step order."""
    chains: dict = {}
    for record in records:
        chains.setdefault(record["chain"], []).append(record)
    return {chain: sorted(rows, key=lambda record: record["step"]) for chain, rows in sorted(chains.items())}


def _value(record, field):
    return len(record["tokens"]) if field == "length" else record.get(field)


def kept_draws(records) -> tuple:
    """The steps of the draws the diagnostics use: the second half of the kept steps (the first is warm-up).

    Returns ``(kept_steps, used_steps)``, both sorted lists of step indices.
    """
    kept = sorted({record["step"] for record in records})
    return kept, kept[len(kept) // 2:]


def _draws(chains: dict, field: str, used_steps) -> list:
    """``C`` lists of the field's values at the used steps (None where a record has none)."""
    used = set(used_steps)
    return [[_value(record, field) for record in rows if record["step"] in used] for rows in chains.values()]


def _diagnose(draws: list, field: str) -> dict:
    """Split R-hat and bulk ESS of ``draws`` ``(C, N)``, or null with the reason in words."""
    name = FIELD_NAMES.get(field, field)
    result = {"rhat": None, "ess_bulk": None, "note": None}
    num_chains = len(draws)
    num_draws = min((len(row) for row in draws), default=0)
    if num_chains < MIN_CHAINS:
        result["note"] = f"needs at least {MIN_CHAINS} chains, the run has {num_chains}"
        return result
    if num_draws < MIN_DRAWS:
        result["note"] = (f"needs at least {MIN_DRAWS} draws per chain after warm-up, the run kept {num_draws} "
                          "(more --num-steps or a smaller --keep-every)")
        return result
    draws = [row[len(row) - num_draws:] for row in draws]  # (C, N): the last N of each chain
    missing = sum(value is None for row in draws for value in row)
    if missing:
        why = " (a sentence still held [MASK])" if field == "energy" else ""
        result["note"] = (f"{name} is null or missing in {missing} of {num_chains * num_draws} draws{why}: the "
                          "diagnostics need every draw")
        return result
    array = np.array(draws, dtype=np.float64)  # (C, N)
    if not np.all(np.isfinite(array)):
        result["note"] = f"{name} is not finite in {int(np.sum(~np.isfinite(array)))} draws"
        return result
    if np.ptp(array) == 0:
        result["note"] = f"every draw has the same {name} ({array.flat[0]:g}): nothing varies, no R-hat or ESS"
        return result
    half = num_draws // 2
    halves = np.concatenate([array[:, :half], array[:, num_draws - half:]])  # (2C, N/2): the split chains
    if np.all(np.ptp(halves, axis=1) == 0):
        # No variation within any half-chain but some between them: R-hat is infinite (W = 0), and the
        # float rounding of the variance of equal numbers would print a huge meaningless number instead.
        result["note"] = (f"every half-chain keeps one {name} value while they differ between chains: the chains "
                          "do not move in this statistic (R-hat infinite)")
        return result
    rhat = diagnostics.split_rhat(array)
    ess = diagnostics.effective_sample_size(array, method="bulk")
    result["rhat"] = rhat if math.isfinite(rhat) else None
    result["ess_bulk"] = ess if math.isfinite(ess) else None
    if result["rhat"] is None or result["ess_bulk"] is None:
        result["note"] = f"not finite: R-hat {rhat}, ESS {ess}"
    return result


def _acceptance(records, field: str) -> dict:
    """Proposals and acceptances per move (``"all"`` for every move together), and the rate of each chain."""
    def count(rows) -> dict:
        values = [bool(record[field]) for record in rows]
        return {"steps": len(values), "accepted": sum(values),
                "rate": sum(values) / len(values) if values else None}

    rows = [record for record in records if field in record]
    moves: dict = {}
    if any("move" in record for record in rows):
        # The moves in the order of CGMH's MOVES (replace, insert, delete), any other after them.
        order = {move: index for index, move in enumerate(MOVES)}
        for move in sorted({record["move"] for record in rows if "move" in record},
                           key=lambda move: (order.get(move, len(order)), str(move))):
            moves[move] = count([record for record in rows if record.get("move") == move])
    moves["all"] = count(rows)
    per_chain = [count(chain_rows)["rate"] for chain_rows in _by_chain(rows).values()]
    return {"field": field, "by_move": moves, "per_chain": per_chain}


def _swaps(records):
    """Per neighbour pair of a parallel-tempering run (coldest pair first): swaps proposed, accepted, rate.

    None when no record has ``swap_proposed`` (every sampler but pt). The rate is accepted over proposed:
    the even-odd scheme proposes each pair only on some steps.
    """
    rows = [record for record in records if "swap_proposed" in record and "swap_accepted" in record]
    if not rows:
        return None
    num_pairs = max(len(record["swap_proposed"]) for record in rows)
    pairs = []
    for pair in range(num_pairs):
        proposed = sum(bool(record["swap_proposed"][pair]) for record in rows if pair < len(record["swap_proposed"]))
        accepted = sum(bool(record["swap_accepted"][pair]) for record in rows if pair < len(record["swap_accepted"]))
        pairs.append({"pair": [pair, pair + 1], "proposed": proposed, "accepted": accepted,
                      "rate": accepted / proposed if proposed else None})
    return pairs


def mixing_report(records, sampler: str, num_steps: int, keep_every: int = 1) -> dict:
    """The mixing report of a chain run from its ``samples.jsonl`` records (a dict, JSON-ready).

    Parameters
    ----------
    records : list of dict
        The run's records (``chain``, ``step``, ``tokens`` and the sampler's fields).
    sampler : str
        A name of :data:`textsampling.cli.samplers.CHAIN_SAMPLERS`.
    num_steps, keep_every : int
        The run's ``--num-steps`` and ``--keep-every``.
    """
    registered = CHAIN_SAMPLERS[sampler]
    chains = _by_chain(records)
    kept, used = kept_draws(records)
    field = registered.acceptance_field
    what = ("fraction of steps that changed the sentence (Gibbs always accepts)" if field == "changed"
            else "fraction of proposals accepted")
    counted = "every step" if keep_every == 1 else (
        f"the kept steps only: a subsample, one step in {keep_every} (and the last step)")
    acceptance = {"what": what, "counted_on": counted, **_acceptance(records, field)}
    if acceptance["by_move"]["all"]["steps"] == 0:
        acceptance["note"] = f"samples.jsonl holds no {field!r} field (written by an older version?)"
    draws = {
        "used": "the second half of the kept steps of every chain (the first half is warm-up)",
        "num_kept_steps": len(kept),
        "first_step": used[0] if used else None,
        "last_step": used[-1] if used else None,
        "num_draws_per_chain": len(used),
    }
    statistics = {}
    for name in ("length",) + tuple(registered.traced):
        if name == "length" and registered.fixed_length:
            result = {"rhat": None, "ess_bulk": None,
                      "note": "each chain keeps its starting length (this sampler only replaces tokens): nothing "
                              "to diagnose"}
        else:
            result = _diagnose(_draws(chains, name, used), name)
        statistics[FIELD_NAMES.get(name, name)] = {"field": name, **result}
    notes = []
    if not registered.at_equilibrium:
        notes.append(ANNEALING_NOTE)
    lengths = sorted({len(rows[0]["tokens"]) for rows in chains.values()})
    if registered.fixed_length and len(lengths) > 1:
        notes.append(DIFFERENT_LENGTHS_NOTE.format(lengths=", ".join(map(str, lengths))))
    if "energy" in registered.traced and field == "changed":
        notes.append("The Gibbs energy is the PLL energy under the MLM, E(x) = -sum_i log p(x_i | x_-i), written "
                     "null while the sentence still holds a [MASK].")
    report = {
        "sampler": sampler,
        "num_chains": len(chains),
        "num_steps": num_steps,
        "keep_every": keep_every,
        "acceptance": acceptance,
        "draws": draws,
        "diagnostics": {"rhat": "split R-hat, rank-normalised (Vehtari et al. 2021)",
                        "ess": "bulk ESS (rank-normalised draws)", "statistics": statistics},
        "notes": notes,
    }
    swaps = _swaps(records)
    if swaps is not None:
        report["swaps"] = {"what": "replica swaps accepted over proposed, per neighbour pair of the ladder "
                                   "(replica 0 is the coldest, T = 1)", "counted_on": counted, "pairs": swaps}
    return report


def _swap_line(swaps: dict) -> str:
    return "swaps (pair: rate, accepted/proposed): " + ", ".join(
        f"{a}-{b} {_number(pair['rate'])} ({pair['accepted']}/{pair['proposed']})"
        for pair in swaps["pairs"] for a, b in [pair["pair"]])


def _number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _acceptance_line(acceptance: dict) -> str:
    moves = acceptance["by_move"]
    parts = [f"{move} {_number(counts['rate'])} ({counts['accepted']}/{counts['steps']})"
             for move, counts in moves.items() if move != "all" or len(moves) == 1]
    if len(moves) > 1:
        parts.append(f"all {_number(moves['all']['rate'])}")
    label = "changed" if acceptance["field"] == "changed" else "acceptance"
    return f"{label}: " + ", ".join(parts)


def summary_lines(report: dict) -> list:
    """The short block ``generate`` prints: acceptance per move, R-hat and ESS, the notes."""
    draws = report["draws"]
    lines = [f"mixing ({report['num_chains']} chains; from samples.jsonl):",
             "  " + _acceptance_line(report["acceptance"])]
    if "swaps" in report:
        lines.append("  " + _swap_line(report["swaps"]))
    if report["keep_every"] > 1:
        lines.append(f"  (counted on {report['acceptance']['counted_on']})")
    lines.append(f"  split R-hat / bulk ESS on steps {draws['first_step']}..{draws['last_step']} "
                 f"({draws['num_draws_per_chain']} draws per chain, after warm-up):")
    for name, result in report["diagnostics"]["statistics"].items():
        text = f"R-hat {_number(result['rhat'])}  ESS {_number(result['ess_bulk'], 1)}"
        if result["note"]:
            text += f"  ({result['note']})"
        lines.append(f"    {name:<8} {text}")
    if ANNEALING_NOTE in report["notes"]:
        lines.append("  annealing: the target changes with the temperature, so R-hat is no convergence "
                     "diagnostic here")
    if any(note.startswith(DIFFERENT_LENGTHS_NOTE[:40]) for note in report["notes"]):
        lines.append("  the chains have different lengths, hence different targets: R-hat of the energy stays "
                     "above 1 (--length N gives one target)")
    return lines


def _markdown(report: dict, plot_name: str) -> str:
    draws = report["draws"]
    acceptance = report["acceptance"]
    lines = [f"# Mixing of a `{report['sampler']}` run", "",
             f"{report['num_chains']} chains, {report['num_steps']} steps, keep every {report['keep_every']}; "
             "computed from samples.jsonl.", "", "## Acceptance", "",
             f"{acceptance['what'].capitalize()}, counted on {acceptance['counted_on']}.", "",
             "| move | steps | accepted | rate |", "|---|---|---|---|"]
    for move, counts in acceptance["by_move"].items():
        lines.append(f"| {move} | {counts['steps']} | {counts['accepted']} | {_number(counts['rate'])} |")
    lines += ["", "Per chain: " + ", ".join(_number(rate) for rate in acceptance["per_chain"]) + ".", ""]
    if acceptance.get("note"):
        lines += [acceptance["note"], ""]
    if "swaps" in report:
        lines += ["## Replica swaps", "", f"{report['swaps']['what'].capitalize()}, counted on "
                  f"{report['swaps']['counted_on']}.", "", "| pair | proposed | accepted | rate |", "|---|---|---|---|"]
        lines += [f"| {pair['pair'][0]}-{pair['pair'][1]} | {pair['proposed']} | {pair['accepted']} | "
                  f"{_number(pair['rate'])} |" for pair in report["swaps"]["pairs"]]
        lines.append("")
    lines += ["## Split R-hat and bulk ESS across chains", "",
              f"Draws: {draws['used']}: steps {draws['first_step']}..{draws['last_step']}, "
              f"{draws['num_draws_per_chain']} per chain. R-hat near 1 (below 1.01) when the chains agree; "
              "ESS: the number of independent draws worth as much.", "",
              "| statistic | R-hat | bulk ESS | note |", "|---|---|---|---|"]
    for name, result in report["diagnostics"]["statistics"].items():
        lines.append(f"| {name} | {_number(result['rhat'])} | {_number(result['ess_bulk'], 1)} | "
                     f"{result['note'] or ''} |")
    lines += [""] + [note + "\n" for note in report["notes"]]
    lines += [f"![traces of every chain]({plot_name})", ""]
    return "\n".join(lines)


def plot_traces(records, sampler: str, path, used_from=None, statistics=None) -> Path:
    """``traces.png``: the traced score (energy or log rho) and the length of every chain over the steps.

    Drawn with matplotlib's object API on the Agg canvas (no display, no global pyplot state). A chain
    holds its sentence between kept steps (steps drawn as stairs); a null value (a Gibbs energy while
    [MASK] remains) is a gap. ``used_from`` shades the warm-up; ``statistics`` (the report's) writes
    each panel's R-hat and ESS in its corner.
    """
    from matplotlib.figure import Figure

    registered = CHAIN_SAMPLERS[sampler]
    chains = _by_chain(records)
    lengths = {len(record["tokens"]) for record in records}
    # One length everywhere (gibbs or mh with --length): a flat length panel would say nothing.
    fields = tuple(registered.traced) + (("length",) if len(lengths) > 1 else ())
    if not fields:
        fields = ("length",)
    figure = Figure(figsize=(8, max(3.2, 2.4 * len(fields))), layout="constrained")
    axes = figure.subplots(len(fields), 1, sharex=True, squeeze=False)[:, 0]
    for axis, field in zip(axes, fields):
        for chain, rows in chains.items():
            steps = [record["step"] for record in rows]
            values = [np.nan if _value(record, field) is None else _value(record, field) for record in rows]
            axis.plot(steps, values, linewidth=0.9, alpha=0.8, label=f"chain {chain}", drawstyle="steps-post")
        if used_from is not None and used_from > 0:
            axis.axvspan(0, used_from, color="0.9", zorder=0)
        name = FIELD_NAMES.get(field, field)
        axis.set_ylabel(name)
        result = (statistics or {}).get(name)
        if result is not None:
            text = (f"R-hat {_number(result['rhat'])}, ESS {_number(result['ess_bulk'], 1)}"
                    if result["note"] is None else "R-hat -, ESS - (see mixing.md)")
            axis.text(0.99, 0.03, text, transform=axis.transAxes, ha="right", va="bottom", fontsize=8,
                      bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.8})
    every_length = f", every sentence {next(iter(lengths))} tokens" if "length" not in fields else ""
    axes[0].set_title(f"{sampler}: traces of {len(chains)} chains{every_length} (grey: warm-up, not used by "
                      "R-hat/ESS)")
    axes[-1].set_xlabel("step")
    if len(chains) <= 10:
        axes[0].legend(fontsize=7, ncol=min(len(chains), 5), loc="best")
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path


def write_report(folder, records, sampler: str, num_steps: int, keep_every: int = 1) -> dict:
    """Write ``mixing.json``, ``mixing.md`` and ``traces.png`` in ``folder``; returns the report."""
    folder = Path(folder)
    report = mixing_report(records, sampler, num_steps, keep_every)
    report["files"] = {"plot": "traces.png", "summary": "mixing.md"}
    # allow_nan=False: a NaN or inf that slipped through is an error here, never a silent "NaN" on disk.
    (folder / "mixing.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    (folder / "mixing.md").write_text(_markdown(report, "traces.png"))
    plot_traces(records, sampler, folder / "traces.png", used_from=report["draws"]["first_step"],
                statistics=report["diagnostics"]["statistics"])
    return report
