"""Benchmark: chain-steps per second of MH and Gibbs, NumPy reference vs torch twin (CPU, CUDA), by number of chains.

Prints ONE table. Rows: sampler x implementation x device; columns: number of chains (1e3 ... 1e7, capped
by ``--max-chains`` / ``--max-cpu-chains`` / ``--max-reference-chains`` and by free memory). Every figure
*includes drawing the random numbers*:

* ``reference``   — the NumPy reference: counter uniforms for all chains (vectorised Philox), then the
                    reference ``step`` chain by chain (a Python loop, as the reference is written);
* ``twin``        — the torch twin as users call it: ``CounterGenerator.uniforms`` (Philox in int64 ops,
                    per-chain reproducible) + ``step`` with its value checks (``validate=True``), float32;
* ``fast``        — torch's own generator (``torch.rand``, not per-chain reproducible) + ``step(validate=False)``;
* ``fused``       — ``torch.compile`` of counter uniforms + step (one fused kernel where Inductor manages),
                    per-chain reproducible; reported as failed (with the reason) if compilation fails.

Targets: MH on a 1,000-state categorical target with the uniform proposal; random-scan Gibbs on a
fixed-length bigram (V = 8, L = 8, the exact masked conditional). Run::

    .venv/bin/python benchmarks/bench_twins.py                       # CPU, small sizes (~1-2 min)
    .venv/bin/python benchmarks/bench_twins.py --max-chains 10000000 # on a GPU machine

With ``$OUT`` set, the results are also written to ``$OUT/bench_twins.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_name  # noqa: E402
from textsampling import randomness as numpy_randomness  # noqa: E402
from textsampling import targets  # noqa: E402
from textsampling.reference import gibbs as reference_gibbs  # noqa: E402
from textsampling.reference import metropolis_hastings as reference_mh  # noqa: E402
from textsampling.reference import proposals  # noqa: E402
from textsampling.torch import gibbs, metropolis_hastings  # noqa: E402
from textsampling.torch.randomness import CounterGenerator, _uniforms  # noqa: E402
from textsampling.torch.twins import twin_of  # noqa: E402

SEED = 2021
SIZES = [10**3, 10**4, 10**5, 10**6, 10**7]
NUM_CATEGORIES = 1000
VOCAB_SIZE, LENGTH = 8, 8
BYTES_PER_CHAIN = 400  # generous: states, uniforms and Philox temporaries (int64) of one step
FUSED_MATCHES = {}  # (sampler, device, num_chains) -> fused step == eager twin step, bit for bit


def machine_description() -> dict:
    info = {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def make_problems():
    rng = np.random.default_rng(0)
    categorical = targets.Categorical(rng.normal(size=NUM_CATEGORIES) * 2.0)
    bigram = targets.FixedLengthBigram(
        rng.normal(size=VOCAB_SIZE), rng.normal(size=(VOCAB_SIZE, VOCAB_SIZE + 1)), LENGTH
    )
    return categorical, proposals.UniformCategoricalProposal(NUM_CATEGORIES), bigram


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(run_steps, num_chains: int, min_time: float, device=None, max_steps: int = 10_000) -> float:
    """Chain-steps per second: one warm-up step, then doubling batches of steps until ``min_time`` elapses."""
    run_steps(1)
    if device is not None:
        synchronize(device)
    steps, elapsed = 1, 0.0
    while elapsed < min_time and steps <= max_steps:
        start = time.perf_counter()
        run_steps(steps)
        if device is not None:
            synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return num_chains * steps / elapsed
        steps *= 2
    return num_chains * (steps // 2) / max(elapsed, 1e-12)


# ----------------------------------------------------------------------------- NumPy reference
def reference_runner(sampler, num_chains, problems):
    categorical, proposal, bigram = problems
    chains = np.arange(num_chains)
    if sampler == "MH":
        states = [reference_mh.init(c % NUM_CATEGORIES, categorical.log_prob) for c in chains]
        width = reference_mh.num_uniforms(proposal)
    else:
        states = [reference_gibbs.GibbsState(np.zeros(LENGTH, dtype=np.int64)) for _ in chains]
        width = 2
    counter = {"step": 0}

    def run_steps(num_steps):
        for _ in range(num_steps):
            uniforms = numpy_randomness.counter_uniforms(SEED, chains, counter["step"], width)  # (N, k)
            for c in range(num_chains):
                if sampler == "MH":
                    states[c], _ = reference_mh.step(uniforms[c], states[c], categorical.log_prob, proposal)
                else:
                    states[c], _ = reference_gibbs.step(uniforms[c], states[c], bigram.conditional_log_probs)
            counter["step"] += 1

    return run_steps


_TRANSITIONS = {}
_FUSED = {}


def transitions(sampler, problems, device, dtype):
    """(uniforms per step, transition(uniforms, state, validate), initial_state(chain_index)), cached per device.

    Cached so that the compiled fused step sees the same objects for every batch size (no recompilation).
    """
    key = (sampler, str(device), dtype)
    if key in _TRANSITIONS:
        return _TRANSITIONS[key]
    categorical, proposal, bigram = problems
    if sampler == "MH":
        target, twin_proposal = twin_of(categorical, dtype, device), twin_of(proposal, dtype, device)

        def transition(uniforms, current, validate):
            return metropolis_hastings.step(uniforms, current, target.log_prob, twin_proposal, validate=validate)[0]

        def initial_state(chain_index):
            return metropolis_hastings.init(chain_index % NUM_CATEGORIES, target.log_prob)

        width = metropolis_hastings.num_uniforms(twin_proposal)
    else:
        target = twin_of(bigram, dtype, device)

        def transition(uniforms, current, validate):
            return gibbs.step(uniforms, current, target.conditional_log_probs, validate=validate)[0]

        def initial_state(chain_index):
            return gibbs.GibbsState(torch.zeros((chain_index.shape[0], LENGTH), dtype=torch.int64, device=device))

        width = 2
    _TRANSITIONS[key] = (width, transition, initial_state)
    return _TRANSITIONS[key]


def fused_step(sampler, problems, device, dtype):
    """``torch.compile`` of counter uniforms + transition, one per (sampler, device): ``(compiled, eager)``."""
    key = (sampler, str(device), dtype)
    if key not in _FUSED:
        width, transition, _ = transitions(sampler, problems, device, dtype)

        def counter_step(step_tensor, chain_index, current):
            uniforms = _uniforms(SEED, chain_index, step_tensor, width, dtype)
            return transition(uniforms, current, False)

        # dynamic=None: the second batch size triggers one recompilation with symbolic sizes, then no more.
        _FUSED[key] = (torch.compile(counter_step), counter_step)
    return _FUSED[key]


# ----------------------------------------------------------------------------- torch
def torch_runner(sampler, mode, num_chains, problems, device, dtype=torch.float32):
    categorical, proposal, bigram = problems
    chain_index = torch.arange(num_chains, device=device)
    rng = CounterGenerator(SEED, chain_index)
    generator = torch.Generator(device=device).manual_seed(SEED)
    width, transition, initial_state = transitions(sampler, problems, device, dtype)
    state = initial_state(chain_index)
    holder = {"state": state, "step": 0}
    if mode == "twin":

        def one_step():
            return transition(rng.uniforms(holder["step"], width, dtype=dtype), holder["state"], True)

    elif mode == "fast":

        def one_step():
            uniforms = torch.rand((num_chains, width), generator=generator, dtype=dtype, device=device)
            return transition(uniforms.clamp_(min=torch.finfo(dtype).tiny), holder["state"], False)

    elif mode == "fused":
        compiled, counter_step = fused_step(sampler, problems, device, dtype)
        # Check once that the fused step makes exactly the eager twin's decisions (this also compiles it).
        step_zero = torch.tensor(0, device=device)
        fused_state = compiled(step_zero, chain_index, state)
        eager_state = counter_step(step_zero, chain_index, state)
        FUSED_MATCHES[(sampler, str(device), num_chains)] = all(
            torch.equal(a, b) for a, b in zip(fused_state, eager_state, strict=True)
        )

        def one_step():
            # The step number travels as a tensor so that one compiled graph serves every step.
            return compiled(torch.tensor(holder["step"], device=device), chain_index, holder["state"])

    else:
        raise ValueError(mode)

    def run_steps(num_steps):
        for _ in range(num_steps):
            holder["state"] = one_step()
            holder["step"] += 1

    return run_steps


def fits_in_memory(num_chains, device) -> bool:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return num_chains * BYTES_PER_CHAIN < 0.5 * free
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return True
    return num_chains * BYTES_PER_CHAIN < 0.25 * available


def format_rate(value) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.2e}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-chains", type=float, default=1e7, help="largest batch on CUDA")
    parser.add_argument("--max-cpu-chains", type=float, default=1e5, help="largest batch for torch on the CPU")
    parser.add_argument(
        "--max-reference-chains",
        type=float,
        default=1e3,
        help="largest batch for the NumPy reference (a Python loop over chains)",
    )
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds timed per cell (after one warm-up step)")
    parser.add_argument("--modes", default="twin,fast,fused", help="torch modes, comma-separated: twin, fast, fused")
    parser.add_argument(
        "--max-cpu-fused-chains",
        type=float,
        default=1e4,
        help="largest batch for the fused mode on the CPU (each size compiles anew)",
    )
    parser.add_argument("--samplers", default="MH,Gibbs")
    parser.add_argument("--no-cuda", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice); 1 on a shared machine"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        # On a machine shared with other jobs, OpenMP threads that wait for busy cores can be 50x slower.
        torch.set_num_threads(args.threads)

    problems = make_problems()
    machine = machine_description()
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append(torch.device("cuda", 0))
    modes = [m for m in args.modes.split(",") if m]
    samplers = [s for s in args.samplers.split(",") if s]
    rows = []  # (label, {num_chains: rate or note})
    results = []
    for sampler in samplers:
        row = {}
        for num_chains in SIZES:
            if num_chains > args.max_reference_chains:
                continue
            row[num_chains] = measure(reference_runner(sampler, num_chains, problems), num_chains, args.min_time)
            results.append(
                {
                    "sampler": sampler,
                    "implementation": "numpy reference",
                    "device": "cpu",
                    "num_chains": num_chains,
                    "chain_steps_per_second": row[num_chains],
                }
            )
        rows.append((f"{sampler:5s} numpy reference   cpu", row))
        for device in devices:
            for mode in modes:
                cap = args.max_chains if device.type == "cuda" else args.max_cpu_chains
                if mode == "fused" and device.type == "cpu":
                    cap = min(cap, args.max_cpu_fused_chains)
                row = {}
                for num_chains in SIZES:
                    if num_chains > cap or not fits_in_memory(num_chains, device):
                        continue
                    try:
                        runner = torch_runner(sampler, mode, num_chains, problems, device)
                        row[num_chains] = measure(runner, num_chains, args.min_time, device)
                    except Exception as error:  # a failed compilation is reported, not hidden
                        row[num_chains] = f"failed ({type(error).__name__})"
                        print(
                            f"# {sampler} {mode} {device} {num_chains}: {type(error).__name__}: {str(error)[:300]}",
                            file=sys.stderr,
                        )
                        break
                    results.append(
                        {
                            "sampler": sampler,
                            "implementation": f"torch {mode}",
                            "device": str(device),
                            "num_chains": num_chains,
                            "chain_steps_per_second": row[num_chains],
                        }
                    )
                rows.append((f"{sampler:5s} torch {mode:11s} {device.type}", row))

    sizes = [n for n in SIZES if any(n in row for _, row in rows)]
    print("# chain-steps per second (random numbers included); float32 torch; NumPy float64")
    print(
        f"# machine: CPU {machine['cpu']} ({machine['cpu_count']} cores, torch threads {machine['torch_threads']}); "
        f"GPU {machine['gpu'] or 'none'}; torch {machine['torch']}; numpy {machine['numpy']}"
    )
    print(
        f"# MH: {NUM_CATEGORIES}-state categorical, uniform proposal. "
        f"Gibbs: random scan, fixed-length bigram V={VOCAB_SIZE}, L={LENGTH}"
    )
    header = f"{'sampler / implementation / device':36s}" + "".join(f"{f'{n:.0e} chains':>16s}" for n in sizes)
    print(header)
    print("-" * len(header))
    for label, row in rows:
        print(f"{label:36s}" + "".join(f"{format_rate(row.get(n, '-')):>16s}" for n in sizes))
    if FUSED_MATCHES:
        print(
            f"# fused step bit-identical to the eager twin (step 0): {all(FUSED_MATCHES.values())} "
            f"({', '.join(f'{k[0]} {k[1]} {k[2]:.0e}: {v}' for k, v in FUSED_MATCHES.items())})"
        )
    out = os.environ.get("OUT")
    if out:
        path = Path(out) / "bench_twins.json"
        path.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "results": results,
                    "fused_matches_twin": {" ".join(map(str, key)): value for key, value in FUSED_MATCHES.items()},
                },
                indent=2,
            )
        )
        print(f"# written {path}")


if __name__ == "__main__":
    main()
