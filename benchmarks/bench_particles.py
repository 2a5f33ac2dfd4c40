"""Benchmark: particle-steps per second of the particle samplers, torch twin vs NumPy reference, by N.

Prints ONE table (``--markdown``: a Markdown table) and, with ``$OUT`` set, writes
``$OUT/bench_particles.json``. A *particle-step* is one particle advanced by one step: one token of SMC,
one rung of AIS (reweight + MH move), one replica's MH move and its share of the swaps in parallel
tempering, one ancestor drawn by resampling. Rows, each for the torch twin and the NumPy reference:

* ``smc oracle`` — :func:`textsampling.torch.smc.sample` (bootstrap proposal, systematic resampling at
  ESS < N/2) on the bigram oracle (:class:`~textsampling.lm.oracle.BigramOracle`, V = 20 tokens, sentences
  of at most 8) with a two-keyword :class:`~textsampling.reference.smc.KeywordPotential`; 9 steps finish
  every particle;
* ``smc tiny-shakespeare`` — the same on the built-in tiny GPT-2 (:func:`textsampling.lm.loading.load_causal_lm`,
  keyword "king", sentences of at most 8 tokens): the forward pass over the ``R N`` prefixes dominates
  (N = 10 and 100 by default, ``--lm-sizes`` for more);
* ``resampling <scheme>`` — :func:`textsampling.torch.resampling.ancestors` for multinomial, stratified,
  systematic and residual on fixed random log-weights;
* ``ais`` — :func:`textsampling.torch.annealed_importance.sample`, 10 rungs (``power_schedule(10, 2)``)
  from uniform sequences to a fixed-length bigram (V = 8, L = 8) with single-site MH moves; ``ais, gibbs
  moves`` the same with a random-scan Gibbs step on each rung's bridge (``GibbsMove``: 8 candidates
  evaluated per particle-step);
* ``parallel tempering`` — :func:`textsampling.torch.parallel_tempering.sample`, ``N`` replicas (N
  geometric temperatures from 1 to 50) on the same bigram, 10 steps.

Every figure *includes drawing the random numbers*: the counter generator (Philox,
:class:`textsampling.torch.randomness.CounterGenerator`), so that run ``r`` of the twin is the reference
run with ``CounterGenerator(seed, r)`` (``tests/test_twin_*.py`` check that decision by decision). The twin
runs ``--runs`` independent runs of ``N`` particles in one batch (``(R, N)``); the reference runs one
run (its Python loops do not batch runs), up to ``--max-reference-particles`` (1,000), and its rate is per
particle-step all the same, so the ratio row, twin rate / reference rate, compares like with like.
Twins compute in float32 (the language model too), the reference in float64.

Each cell is the median of ``--repeats`` (default 5) calls, twin and reference interleaved within each
repeat (so a change of machine load hits both alike), with min and max; threads and load average are
printed. Run::

    .venv/bin/python benchmarks/bench_particles.py --threads 1            # a few minutes on one core
    .venv/bin/python benchmarks/bench_particles.py --threads 1 --markdown # the README's table
    .venv/bin/python benchmarks/bench_particles.py --quick                # N = 10, 100 only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.machine import machine_description  # noqa: E402
from textsampling import randomness as numpy_randomness  # noqa: E402
from textsampling import targets  # noqa: E402
from textsampling.lm.oracle import BigramOracle  # noqa: E402
from textsampling.reference import annealed_importance as reference_ais  # noqa: E402
from textsampling.reference import parallel_tempering as reference_pt  # noqa: E402
from textsampling.reference import proposals  # noqa: E402
from textsampling.reference import resampling as reference_resampling  # noqa: E402
from textsampling.reference import smc as reference_smc  # noqa: E402
from textsampling.targets.sequences import BigramLM  # noqa: E402
from textsampling.torch import annealed_importance, parallel_tempering, resampling, smc  # noqa: E402
from textsampling.torch.randomness import CounterGenerator, draw_uniforms  # noqa: E402
from textsampling.torch.twins import twin_of  # noqa: E402

SEED = 2024
SIZES = [10, 100, 1_000, 10_000]
QUICK_SIZES = [10, 100]
LM_SIZES = [10, 100]
SCHEMES = ("multinomial", "stratified", "systematic", "residual")
ORACLE_VOCAB, SENTENCE_LENGTH = 20, 8
BIGRAM_VOCAB, BIGRAM_LENGTH = 8, 8
NUM_RUNGS = 10
NUM_PT_STEPS = 10
MAX_TEMPERATURE = 50.0
DTYPE = torch.float32




class Workload:
    """One row pair: ``make(N)`` returns ``(twin_call, reference_call, steps)``; a call returns nothing of
    interest (its cost is the figure), ``steps`` the steps of one call (particle-steps = R N steps)."""

    def __init__(self, name: str, make, sizes):
        self.name, self.make, self.sizes = name, make, sizes


def smc_workload(name: str, model, potential, num_runs: int, sizes) -> Workload:
    num_steps = SENTENCE_LENGTH + 1  # every particle finished

    def make(num_particles):
        x0 = smc.empty_prefixes_torch(num_runs, num_particles, SENTENCE_LENGTH)  # (R, N, L)
        reference_x0 = reference_smc.empty_prefixes(num_particles, SENTENCE_LENGTH)  # (N, L)

        def twin():
            rng = CounterGenerator(SEED, torch.arange(num_runs))
            smc.sample(rng, x0, model, potential, num_steps, dtype=DTYPE)

        def reference():
            reference_smc.sample(numpy_randomness.CounterGenerator(SEED, 0), reference_x0, model, potential, num_steps)

        return twin, reference, num_steps

    return Workload(name, make, sizes)


def resampling_workload(scheme: str, num_runs: int, sizes) -> Workload:
    def make(num_particles):
        log_weights = np.random.default_rng(SEED).normal(scale=2.0, size=(num_runs, num_particles))  # (R, N)
        twin_log_weights = torch.as_tensor(log_weights, dtype=DTYPE)  # (R, N)
        width = reference_resampling.num_uniforms(num_particles, scheme)

        def twin():
            rng = CounterGenerator(SEED, torch.arange(num_runs))
            resampling.ancestors(draw_uniforms(rng, 0, width, dtype=DTYPE), twin_log_weights, scheme)

        def reference():
            uniforms = numpy_randomness.draw_uniforms(numpy_randomness.CounterGenerator(SEED, 0), 0, width)
            reference_resampling.ancestors(uniforms, log_weights[0], scheme)

        return twin, reference, 1

    return Workload(f"resampling {scheme}", make, sizes)


def bigram_problem():
    rng = np.random.default_rng(0)
    bigram = targets.FixedLengthBigram(
        rng.normal(size=BIGRAM_VOCAB), rng.normal(size=(BIGRAM_VOCAB, BIGRAM_VOCAB + 1)), BIGRAM_LENGTH
    )
    return bigram, proposals.SingleSiteProposal(BIGRAM_VOCAB, BIGRAM_LENGTH)


def ais_workload(num_runs: int, sizes, gibbs_moves: bool = False) -> Workload:
    target, proposal = bigram_problem()
    if gibbs_moves:  # a random-scan Gibbs step on each rung's bridge instead of an MH step
        proposal = reference_ais.GibbsMove(BIGRAM_VOCAB)
    base = proposals.IndependentUniformSequences(BIGRAM_VOCAB, BIGRAM_LENGTH)
    twin_target, twin_base = twin_of(target, DTYPE), twin_of(base, DTYPE)
    twin_proposal = proposal if gibbs_moves else twin_of(proposal, DTYPE)
    betas = reference_ais.power_schedule(NUM_RUNGS, 2.0)

    def make(num_particles):
        def twin():
            rng = CounterGenerator(SEED, torch.arange(num_runs))
            annealed_importance.sample(rng, None, twin_target.log_prob, twin_base, twin_proposal, NUM_RUNGS,
                                       betas=betas, num_particles=num_particles)

        def reference():
            reference_ais.sample(numpy_randomness.CounterGenerator(SEED, 0), None, target.log_prob, base, proposal,
                                 NUM_RUNGS, betas=betas, num_particles=num_particles)

        return twin, reference, NUM_RUNGS

    return Workload("ais, gibbs moves" if gibbs_moves else "ais", make, sizes)


def tempering_workload(num_runs: int, sizes) -> Workload:
    target, proposal = bigram_problem()
    twin_target, twin_proposal = twin_of(target, DTYPE), twin_of(proposal, DTYPE)

    def make(num_replicas):
        temperatures = reference_pt.geometric_temperatures(num_replicas, MAX_TEMPERATURE)
        starts = np.random.default_rng(SEED).integers(0, BIGRAM_VOCAB, (num_runs, num_replicas, BIGRAM_LENGTH))
        twin_starts = torch.as_tensor(starts)  # (R, M, L)

        def twin():
            rng = CounterGenerator(SEED, torch.arange(num_runs))
            parallel_tempering.sample(rng, twin_starts, twin_target.log_prob, twin_proposal, NUM_PT_STEPS,
                                      temperatures=temperatures, dtype=DTYPE)

        def reference():
            reference_pt.sample(numpy_randomness.CounterGenerator(SEED, 0), starts[0], target.log_prob, proposal,
                                NUM_PT_STEPS, temperatures=temperatures)

        return twin, reference, NUM_PT_STEPS

    return Workload("parallel tempering", make, sizes)


def workloads(args, sizes, lm_sizes) -> list:
    oracle = BigramOracle(BigramLM.random(np.random.default_rng(SEED), ORACLE_VOCAB, SENTENCE_LENGTH))
    oracle_potential = reference_smc.KeywordPotential(oracle.encode_keywords(["t0", "t2"]), SENTENCE_LENGTH)
    chosen = [smc_workload("smc oracle", oracle, oracle_potential, args.runs, sizes)]
    if lm_sizes:
        from textsampling.lm.loading import load_causal_lm

        model = load_causal_lm("tiny-shakespeare")
        potential = reference_smc.KeywordPotential.for_model(model, ["king"], SENTENCE_LENGTH)
        chosen.append(smc_workload("smc tiny-shakespeare", model, potential, args.runs, lm_sizes))
    chosen += [resampling_workload(scheme, args.runs, sizes) for scheme in SCHEMES]
    chosen += [ais_workload(args.runs, sizes), ais_workload(args.runs, sizes, gibbs_moves=True),
               tempering_workload(args.runs, sizes)]
    return chosen


def measure(workload: Workload, num_particles: int, num_runs: int, repeats: int, with_reference: bool) -> list:
    """The twin's and (if asked) the reference's rows at ``num_particles``: repeats interleaved."""
    twin, reference, steps = workload.make(num_particles)
    calls = {"twin": (twin, num_runs)}
    if with_reference:
        calls["reference"] = (reference, 1)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        for call, _ in calls.values():
            call()  # warm-up (first-call allocations, the model's caches)
        times = {name: [] for name in calls}
        for _ in range(repeats):
            for name, (call, _) in calls.items():
                began = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - began)
    rows = []
    for name, (_, runs) in calls.items():
        particle_steps = runs * num_particles * steps
        rates = [particle_steps / seconds for seconds in times[name]]
        rows.append({
            "workload": workload.name, "implementation": name, "num_particles": num_particles, "num_runs": runs,
            "steps": steps, "rate_median": statistics.median(rates), "rate_min": min(rates),
            "rate_max": max(rates), "seconds_median": statistics.median(times[name]), "repeats": repeats,
        })
    if with_reference:
        rows[0]["twin_over_reference"] = rows[0]["rate_median"] / rows[1]["rate_median"]
    return rows


def scientific(value: float) -> str:
    """``2.3e5`` for 231,456 (two significant digits, the README's style)."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def cell(row) -> str:
    if row is None:
        return "–"
    return f"{scientific(row['rate_median'])} [{scientific(row['rate_min'])}–{scientific(row['rate_max'])}]"


def print_table(results, sizes, markdown: bool) -> None:
    found = {(r["workload"], r["implementation"], r["num_particles"]): r for r in results}
    names = list(dict.fromkeys(r["workload"] for r in results))
    header = ["workload", "implementation"] + [f"N = {n:,}" for n in sizes]
    lines = []
    for name in names:
        for implementation in ("twin", "reference"):
            lines.append([name, implementation] + [cell(found.get((name, implementation, n))) for n in sizes])
        ratios = [found.get((name, "twin", n), {}).get("twin_over_reference") for n in sizes]
        lines.append([name, "ratio twin / reference"] + ["–" if r is None else f"{r:.1f}" for r in ratios])
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(str(line[i])) for line in lines + [header]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for line in lines:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=None, help="comma-separated particle counts N (default 10,...,10000)")
    parser.add_argument("--lm-sizes", default=None, help="N for the tiny GPT-2 (default 10,100; '' to skip)")
    parser.add_argument("--runs", type=int, default=4, help="independent runs R batched by the twin (default 4)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cell (median, min, max)")
    parser.add_argument("--max-reference-particles", type=int, default=1_000,
                        help="largest N at which the NumPy reference is timed (default 1000: it loops in Python, "
                             "and its rate per particle-step no longer changes with N)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="N = 10, 100 (the LM at 10), for a look in seconds")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sizes is not None:
        sizes = [int(n) for n in args.sizes.split(",") if n]
    else:
        sizes = QUICK_SIZES if args.quick else SIZES
    if args.lm_sizes is not None:
        lm_sizes = [int(n) for n in args.lm_sizes.split(",") if n]
    else:
        lm_sizes = [10] if args.quick else LM_SIZES
    machine = machine_description()
    results = []
    for workload in workloads(args, sizes, lm_sizes):
        for num_particles in (lm_sizes if workload.name == "smc tiny-shakespeare" else sizes):
            with_reference = num_particles <= args.max_reference_particles
            rows = measure(workload, num_particles, args.runs, args.repeats, with_reference)
            results += rows
            # Progress on stderr (a full run takes minutes); the table is printed once, at the end.
            print(f"# measured {workload.name}, N = {num_particles}: "
                  + ", ".join(f"{r['implementation']} {scientific(r['rate_median'])}" for r in rows), file=sys.stderr)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    all_sizes = sorted(set(sizes) | set(lm_sizes))
    print(f"# particle-steps per second: median of {args.repeats} interleaved calls [min–max]; twin: {args.runs} "
          f"runs x N particles in one batch, float32; reference: one run, float64; counter uniforms included")
    print(f"# machine: CPU {machine['cpu']} ({machine['cpu_count']} cores, torch threads {machine['torch_threads']}); "
          f"load average before {machine['load_average_1_5_15']}, after "
          f"{[round(x, 2) for x in load] if load else None}; torch {machine['torch']}, NumPy {machine['numpy']}")
    print_table(results, all_sizes, args.markdown)
    report = {"machine": machine, "load_average_after": load, "config": vars(args), "results": results}
    if os.environ.get("OUT"):
        path = Path(os.environ["OUT"], "bench_particles.json")
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"# written {path}")
    return report


if __name__ == "__main__":
    main()
