"""Benchmark: the counter generator (NumPy; torch with numba, torch operations, compiled) against streams, CPU.

Prints ONE table. Rows: implementation; columns: number of chains. Each cell is the time to draw the
uniforms of one step, ``k`` per chain (``--num-uniforms``, 2 by default: what a Metropolis–Hastings step
with a one-uniform proposal draws), the median of ``--repeats`` interleaved measurements [min-max]. The
implementations, all on the CPU with the same number of threads:

* ``numpy counter``     — :func:`textsampling.randomness.counter_uniforms` (vectorised Philox, float64);
* ``numpy Generator``   — NumPy's own stream, ``Generator.random`` (PCG64, float64), for context;
* ``torch counter``     — ``CounterGenerator(seed, chains).uniforms`` as users call it (per-chain reproducible):
                          numba's compiled loop where numba is installed (``textsampling[fast]``);
* ``torch ops counter`` — ``CounterGenerator(seed, chains, numba=False).uniforms``: the same numbers from
                          about a hundred eager torch operations (what runs without numba);
* ``torch compiled``    — ``CounterGenerator(seed, chains, compiled=True).uniforms`` (the same numbers from one
                          ``torch.compile``-fused loop; its compilation time is printed apart);
* ``torch.rand``        — torch's own stream, ``torch.rand(..., generator=torch.Generator())`` (not per-chain
                          reproducible): the target, ``torch compiled`` >= 0.5x its speed from 1e4 chains.

The ratio rows give each counter implementation's speed over ``torch.rand``'s, cell by cell (medians of
the same run). Before timing, the four counter implementations are checked equal on every size
(float64 NumPy rounded to the torch dtype). Run::

    .venv/bin/python benchmarks/bench_randomness.py                      # 1e3 .. 1e6 chains, 1 thread
    .venv/bin/python benchmarks/bench_randomness.py --num-uniforms 2,8 --repeats 9

With ``$OUT`` set, the results are also written to ``$OUT/bench_randomness.json``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_name, machine_description  # noqa: E402
from textsampling import randomness as numpy_randomness  # noqa: E402
from textsampling.torch.randomness import CounterGenerator, numba_kernel_available  # noqa: E402

SEED = 2021
MODES = ("numpy counter", "numpy Generator", "torch counter", "torch ops counter", "torch compiled", "torch.rand")
REFERENCE_MODE = "torch.rand"


def implementations(num_chains: int, num_uniforms: int, dtype, modes) -> dict:
    """``{mode: draw(step)}``: each draws the uniforms of one step for ``num_chains`` chains."""
    chains = np.arange(num_chains)
    eager = CounterGenerator(SEED, torch.arange(num_chains))
    torch_operations = CounterGenerator(SEED, torch.arange(num_chains), numba=False)
    compiled = CounterGenerator(SEED, torch.arange(num_chains), compiled=True)
    numpy_generator = np.random.default_rng(SEED)
    torch_generator = torch.Generator().manual_seed(SEED)
    draws = {
        "numpy counter": lambda step: numpy_randomness.counter_uniforms(SEED, chains, step, num_uniforms),
        "numpy Generator": lambda step: numpy_generator.random((num_chains, num_uniforms)),
        "torch counter": lambda step: eager.uniforms(step, num_uniforms, dtype=dtype),
        "torch ops counter": lambda step: torch_operations.uniforms(step, num_uniforms, dtype=dtype),
        "torch compiled": lambda step: compiled.uniforms(step, num_uniforms, dtype=dtype),
        "torch.rand": lambda step: torch.rand((num_chains, num_uniforms), generator=torch_generator, dtype=dtype),
    }
    return {mode: draws[mode] for mode in MODES if mode in modes}


def check_equal(draws: dict, num_chains: int, num_uniforms: int, dtype) -> None:
    """The counter implementations give the same numbers (torch: NumPy's float64 rounded, clamped below 1)."""
    expected = numpy_randomness.counter_uniforms(SEED, np.arange(num_chains), 7, num_uniforms)
    if dtype == torch.float32:
        expected = np.minimum(expected.astype(np.float32), np.float32(1 - 2**-24))
    for mode in ("torch counter", "torch ops counter", "torch compiled"):
        if mode in draws and not np.array_equal(draws[mode](7).numpy(), expected):
            raise SystemExit(
                f"{mode} differs from the NumPy counter uniforms at {num_chains} chains; timing would mislead"
            )


def time_cell(draw, step: int, calls: int) -> float:
    """Seconds per call, over ``calls`` consecutive calls (steps ``step, step + 1, ...``)."""
    began = time.perf_counter()
    for offset in range(calls):
        draw(step + offset)
    return (time.perf_counter() - began) / calls


def measure(draws: dict, repeats: int, min_time: float) -> dict:
    """``{mode: [seconds per call] * repeats}``, the modes interleaved within each repeat.

    Each measurement repeats the call enough times to last about ``min_time`` (calibrated once per
    mode on a warm call), so that small batches are not timer noise.
    """
    calls = {}
    for mode, draw in draws.items():
        single = time_cell(draw, 0, 1)
        calls[mode] = max(1, int(min_time / max(single, 1e-7)))
    times = {mode: [] for mode in draws}
    step = 1
    for _ in range(repeats):
        for mode, draw in draws.items():
            times[mode].append(time_cell(draw, step, calls[mode]))
            step += calls[mode]
    return times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1e3,1e4,1e5,1e6", help="numbers of chains, comma-separated")
    parser.add_argument("--num-uniforms", default="2", help="uniforms per chain and step, comma-separated")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved measurements per cell (median, min, max)")
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per measurement (calls repeated)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: " + ", ".join(MODES))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="torch dtype")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: comparable, shared machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    sizes = [int(float(size)) for size in args.sizes.split(",") if size]
    widths = [int(width) for width in args.num_uniforms.split(",") if width]
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"--modes: unknown {unknown}; choose from {', '.join(MODES)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    compile_seconds = {}
    if "torch compiled" in modes:
        # Compile before any timing (once per width and dtype: the kernel's shapes are dynamic in the chains).
        for width in widths:
            began = time.perf_counter()
            CounterGenerator(SEED, torch.arange(max(sizes[0], 2)), compiled=True).uniforms(0, width, dtype=dtype)
            compile_seconds[width] = time.perf_counter() - began

    load_before = os.getloadavg()
    results = []
    for width in widths:
        for num_chains in sizes:
            draws = implementations(num_chains, width, dtype, modes)
            check_equal(draws, num_chains, width, dtype)
            times = measure(draws, args.repeats, args.min_time)
            for mode, seconds in times.items():
                results.append(
                    {
                        "implementation": mode,
                        "num_chains": num_chains,
                        "num_uniforms": width,
                        "seconds_median": statistics.median(seconds),
                        "seconds_min": min(seconds),
                        "seconds_max": max(seconds),
                        "uniforms_per_second": num_chains * width / statistics.median(seconds),
                    }
                )
    load_after = os.getloadavg()

    print(f"# counter uniforms: seed {SEED}, one step per call, torch {args.dtype} (NumPy float64), CPU")
    print(
        f"# machine: {cpu_name()} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()}); "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; torch {torch.__version__}, "
        f"numpy {np.__version__}, python {platform.python_version()}"
    )
    if "torch counter" in modes:
        print(
            "# torch counter: "
            + (
                f"numba {importlib.metadata.version('numba')}'s loop"
                if numba_kernel_available()
                else "numba not installed: the torch operations, as torch ops counter"
            )
        )
    if compile_seconds:
        print(
            "# torch compiled: first call (compilation) "
            + ", ".join(f"{s:.1f} s for k = {w}" for w, s in compile_seconds.items())
        )
    print(f"# each cell: milliseconds per call, median of {args.repeats} interleaved measurements [min-max]")
    header = f"{'k':>2s} {'implementation':18s}" + "".join(f"{size:>26,d}" for size in sizes)
    print(header)
    cell = {(r["implementation"], r["num_chains"], r["num_uniforms"]): r for r in results}
    for width in widths:
        for mode in modes:
            row = f"{width:2d} {mode:18s}"
            for size in sizes:
                r = cell[(mode, size, width)]
                span = f"{1e3 * r['seconds_median']:.3f} [{1e3 * r['seconds_min']:.3f}-{1e3 * r['seconds_max']:.3f}]"
                row += f"{span:>26s}"
            print(row)
        if REFERENCE_MODE in modes:
            for mode in modes:
                if mode in (REFERENCE_MODE, "numpy Generator"):
                    continue
                row = f"{width:2d} {'speed / torch.rand':18s}"
                for size in sizes:
                    ratio = (
                        cell[(REFERENCE_MODE, size, width)]["seconds_median"]
                        / cell[(mode, size, width)]["seconds_median"]
                    )
                    cell[(mode, size, width)]["speed_over_torch_rand"] = ratio
                    row += f"{ratio:>26.2f}"
                print(row + f"   ({mode})")
    report = {
        "machine": machine_description() | {"load_average_before": load_before, "load_average_after": load_after},
        "config": {"seed": SEED, "dtype": args.dtype, "repeats": args.repeats, "min_time": args.min_time},
        "numba": importlib.metadata.version("numba") if numba_kernel_available() else None,
        "compile_seconds": compile_seconds,
        "results": results,
    }
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "bench_randomness.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
