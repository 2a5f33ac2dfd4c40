"""The GPU check in one command (``make gpu-check``): the CUDA tests and the benchmarks, one JSON + one table.

Runs, each in its own process with a time cap, on the first CUDA device:

1. ``pytest -m gpu`` on the test files that hold tests marked ``gpu`` (:func:`gpu_test_files`) — the
   twin cross-checks on CUDA (the same chains on CUDA as on the CPU, bit for bit);
2. ``benchmarks/bench_twins.py --max-chains 1e7`` — toy MH and Gibbs on CUDA, with the CPU's NumPy, twin
   and fast rows up to 1e4 chains as peers; its JSON is rewritten after every batch size;
3. ``benchmarks/bench_lm.py --device cuda`` — MLM Gibbs and causal scoring at bert-base / gpt2-small sizes.

and writes ``gpu_check.json`` (every stage's command, exit status, time, and the benchmarks' own JSON)
and ``gpu_check.md`` (the tables, and the issue's targets beside the figures) under ``--output``
(default ``build/gpu-check``), with each stage's full log beside them. The caps (``STAGES``) keep the
whole run under 8 minutes on an H100/H200; a stage that runs out of time is recorded as timed out and
the next one still runs.

Without a CUDA device it stops at once with a message and exit status 3. ``--cpu-smoke`` runs the same
pipeline on the CPU with tiny sizes (about a minute), so CI proves the wiring without a GPU. Exit
status 0 when every stage succeeded, 1 when one failed or timed out (a missed performance target is
reported in the table, not as a failure).

Usage::

    make gpu-check                                   # = python scripts/gpu_check.py --output build/gpu-check
    python scripts/gpu_check.py --cpu-smoke --output /tmp/gpu-check-smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA_EXIT = 3
#: The issue's figures to reach on an H100/H200 (issue 15, point 4).
TARGETS = {
    "toy MH, reproducible twin, 1e7 chains": (2e10, "chain-steps/s"),
    "MLM Gibbs, bert-base size, L = 40, bf16": (60_000, "chain-steps/s"),
    "causal scoring, gpt2-small size": (30_000, "sentences/s"),
}


def gpu_test_files() -> list[str]:
    """The test files that hold tests marked ``gpu`` (``pytest.mark.gpu``), relative to the repository.

    ``pytest -m gpu`` runs only these: a module elsewhere that imports a package the GPU machine lacks
    (arviz, say, a dev extra) would otherwise stop the collection, and every GPU test with it.
    tests/test_gpu_check.py checks that these files hold every test ``-m gpu`` selects.
    """
    return sorted(
        str(path.relative_to(ROOT)) for path in (ROOT / "tests").glob("test_*.py") if "mark.gpu" in path.read_text()
    )


def stages(python: str, output: Path, cpu_smoke: bool) -> list[dict]:
    """The three stages: name, command, time cap (seconds), environment additions."""
    if cpu_smoke:
        return [
            {
                "name": "pytest -m gpu",
                "command": [python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
                + ["--junitxml", str(output / "pytest_gpu.xml"), "tests/test_twin_randomness.py"],
                "timeout": 120,
            },
            {
                "name": "bench_twins",
                "command": [python, "benchmarks/bench_twins.py", "--no-cuda", "--threads", "1"]
                + ["--max-cpu-chains", "1e3", "--min-time", "0.002", "--samplers", "MH"]
                + ["--implementations", "numpy,twin,fast", "--markdown"],
                "timeout": 120,
                "out": "bench_twins",
            },
            {
                "name": "bench_lm",
                "command": [python, "benchmarks/bench_lm.py", "--small", "--device", "cpu", "--batch-sizes", "2"]
                + ["--score-batch-sizes", "2", "--num-steps", "1", "--length", "8"],
                "timeout": 120,
                "out": "bench_lm",
            },
        ]
    # On an H100/H200 (estimates, not yet measured there): the tests about a minute; bench_twins 2-3
    # minutes (torch.compile on CUDA twice per sampler; the CPU's compiled rows are left out, they only
    # cost compile time here, and its peers stop at 1e4 chains; the JSON is rewritten after every batch
    # size, so a stage cut short keeps what it measured); bench_lm about a minute. The caps add up to
    # 7.8 minutes.
    return [
        {
            "name": "pytest -m gpu",
            "command": [python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
            + ["--junitxml", str(output / "pytest_gpu.xml")]
            + gpu_test_files(),
            "timeout": 150,
        },
        {
            "name": "bench_twins",
            "command": [python, "benchmarks/bench_twins.py", "--max-chains", "1e7", "--max-cpu-chains", "1e4"]
            + ["--implementations", "numpy,twin,twin-compiled,fast,fused", "--cpu-implementations", "numpy,twin,fast"]
            + ["--min-time", "0.2", "--markdown"],
            "timeout": 210,
            "out": "bench_twins",
        },
        {
            "name": "bench_lm",
            "command": [python, "benchmarks/bench_lm.py", "--device", "cuda", "--full"],
            "timeout": 110,
            "out": "bench_lm",
        },
    ]


def run_stage(stage: dict, output: Path) -> dict:
    """Run one stage with its time cap; its stdout and stderr go to ``<output>/<name>.log``."""
    log = output / (stage["name"].replace(" ", "_").replace("-", "") + ".log")
    # The repository first on the path, then whatever the machine's environment put there.
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=python_path)
    if "out" in stage:
        stage_out = output / stage["out"]
        stage_out.mkdir(parents=True, exist_ok=True)
        env["OUT"] = str(stage_out)
    print(f"gpu-check: {stage['name']} (at most {stage['timeout']} s) ...", flush=True)
    start = time.perf_counter()
    with open(log, "w") as handle:
        try:
            process = subprocess.run(
                stage["command"], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=stage["timeout"]
            )
            returncode, timed_out = process.returncode, False
        except subprocess.TimeoutExpired:
            returncode, timed_out = None, True
    seconds = time.perf_counter() - start
    result = {
        "name": stage["name"],
        "command": " ".join(stage["command"]),
        "returncode": returncode,
        "timed_out": timed_out,
        "seconds": round(seconds, 1),
        "log": str(log),
        "ok": returncode == 0 and not timed_out,
    }
    if "out" in stage:
        path = output / stage["out"] / f"{stage['out']}.json"
        result["results"] = json.loads(path.read_text()) if path.exists() else None
        result["failed_cells"] = failed_cells(result["results"])
    state = stage_state(result)
    print(f"gpu-check: {stage['name']}: {state} in {seconds:.0f} s (log {log})", flush=True)
    return result


def failed_cells(results: dict | None) -> int:
    """How many cells of a benchmark's JSON hold an error: bench_twins' cells, bench_lm's rows."""
    if not results:
        return 0
    if "rows" in results:  # bench_twins
        return sum("error" in cell for row in results["rows"] for cell in row["cells"].values())
    return sum("error" in row for row in results.get("results", []))  # bench_lm


def stage_state(stage: dict) -> str:
    """``ok``, ``timed out`` or ``failed (exit N)``, and how many benchmark cells failed, if any."""
    state = "ok" if stage["ok"] else ("timed out" if stage["timed_out"] else f"failed (exit {stage['returncode']})")
    if stage.get("failed_cells"):
        state += f", {stage['failed_cells']} benchmark cells failed"
    return state


def pytest_summary(path: Path) -> dict | None:
    """Counts from pytest's JUnit XML: tests, failures, errors, skipped."""
    if not path.exists():
        return None
    import xml.etree.ElementTree as ElementTree

    suite = ElementTree.parse(path).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    return {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}


#: The bench_twins rows whose uniforms are the reproducible counter generator's: the eager twin, the
#: twin with the compiled kernel, and the fused step.
REPRODUCIBLE_IMPLEMENTATIONS = ("twin", "twin-compiled", "fused")


def twin_rate_at(bench_twins: dict | None, sampler: str, implementations: tuple[str, ...], num_chains: int):
    """The best median rate on CUDA at ``num_chains`` among the rows of ``implementations``: ``(rate, row)``.

    A fused row counts only where bench_twins found its step bit-identical to the eager twin's at that
    size (``fused_matches_twin``): it runs without the twin's value checks. ``(None, None)`` when no row
    measured that cell.
    """
    best = (None, None)
    matches = (bench_twins or {}).get("fused_matches_twin", {})
    for row in (bench_twins or {}).get("rows", []):
        if row["sampler"] != sampler or row["implementation"] not in implementations:
            continue
        if not row["device"].startswith("cuda"):
            continue
        if row["implementation"] == "fused" and matches.get(f"{sampler} {row['device']} {num_chains}") is not True:
            continue
        cell = row["cells"].get(str(num_chains))
        if cell and "median" in cell and (best[0] is None or cell["median"] > best[0]):
            best = (cell["median"], row["implementation"])
    return best


def target_rows(results: dict) -> list[tuple]:
    """(target name, target, unit, best figure or None, where it comes from) for the issue's three figures."""
    twins = results.get("bench_twins")
    lm_targets = (results.get("bench_lm") or {}).get("targets", {})
    mh_rate, mh_row = twin_rate_at(twins, "MH", REPRODUCIBLE_IMPLEMENTATIONS, 10**7)
    checks = "" if mh_row == "twin" else ", without value checks"
    figures = {
        "toy MH, reproducible twin, 1e7 chains": (mh_rate, f"bench_twins, MH {mh_row}{checks}" if mh_row else None),
        "MLM Gibbs, bert-base size, L = 40, bf16": (lm_targets.get("mlm_gibbs", {}).get("best"), "bench_lm"),
        "causal scoring, gpt2-small size": (lm_targets.get("causal_scoring", {}).get("best"), "bench_lm"),
    }
    return [(name, target, unit) + figures[name] for name, (target, unit) in TARGETS.items()]


def markdown_report(report: dict, output: Path) -> str:
    lines = [f"# GPU check ({'CPU smoke run' if report['cpu_smoke'] else report['machine']['gpu']})", ""]
    machine = report["machine"]
    lines.append(
        f"Machine: GPU {machine['gpu'] or 'none'}, {machine['cpu_count']} CPU cores; torch {machine['torch']}, "
        f"CUDA {machine['cuda'] or 'none'}; Python {machine['python']}. Total {report['seconds']:.0f} s."
    )
    lines.append("")
    lines.append("| stage | result | seconds |")
    lines.append("|---|---|---|")
    for stage in report["stages"]:
        command = stage["command"].replace(str(ROOT) + "/", "")
        lines.append(f"| `{command}` | {stage_state(stage)} | {stage['seconds']} |")
    summary = report.get("pytest")
    if summary:
        passed = summary["tests"] - summary["failures"] - summary["errors"] - summary["skipped"]
        lines.append("")
        lines.append(
            f"`pytest -m gpu`: {passed} passed, {summary['failures']} failed, {summary['errors']} errors, "
            f"{summary['skipped']} skipped."
        )
    lines.append("")
    lines.append("Targets of issue 15 (on an H100/H200):")
    lines.append("")
    lines.append("| figure | target | measured (best row) | met |")
    lines.append("|---|---|---|---|")
    for name, target, unit, figure, source in target_rows(report["results"]):
        measured = "–" if figure is None else f"{figure:,.0f} {unit} ({source})"
        met = "–" if figure is None or report["cpu_smoke"] else ("yes" if figure >= target else "no")
        lines.append(f"| {name} | ≥ {target:,.0f} {unit} | {measured} | {met} |")
    twins_md = output / "bench_twins" / "bench_twins.md"
    if twins_md.exists():
        lines += ["", "## bench_twins", "", twins_md.read_text().rstrip()]
    lm = report["results"].get("bench_lm")
    if lm:
        lines += ["", "## bench_lm", ""]
        lines.append("| workload | implementation | batch | rate | unit | MFU |")
        lines.append("|---|---|---|---|---|---|")
        for row in lm.get("results", []):
            if "error" in row:
                lines.append(
                    f"| {row['workload']} | {row['implementation']} | {row['batch_size']} | {row['error']} |||"
                )
                continue
            mfu = "–" if row.get("mfu") is None else f"{100 * row['mfu']:.1f}%"
            lines.append(
                f"| {row['workload']} | {row['implementation']} | {row['batch_size']} | {row['rate']:,.0f} | "
                f"{row['unit']} | {mfu} |"
            )
    return "\n".join(lines) + "\n"


def machine_description(torch) -> dict:
    return {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(ROOT / "build" / "gpu-check"), help="folder for the JSON, table, logs")
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="run the whole pipeline on the CPU with tiny sizes (checks the wiring)"
    )
    args = parser.parse_args(argv)

    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print(
            f"gpu-check: no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}; "
            "torch.cuda.is_available() is False). Run it on a machine with an NVIDIA GPU and a CUDA build of "
            "torch, or add --cpu-smoke to check the pipeline on the CPU with tiny sizes.",
            file=sys.stderr,
        )
        return NO_CUDA_EXIT
    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = [run_stage(stage, output) for stage in stages(sys.executable, output, args.cpu_smoke)]
    report = {
        "cpu_smoke": args.cpu_smoke,
        "machine": machine_description(torch),
        "seconds": round(time.perf_counter() - start, 1),
        "stages": [{k: v for k, v in stage.items() if k != "results"} for stage in results],
        "pytest": pytest_summary(output / "pytest_gpu.xml"),
        "results": {stage["name"]: stage.get("results") for stage in results if "results" in stage},
    }
    report["targets"] = [
        {"figure": name, "target": target, "unit": unit, "measured": figure, "source": source}
        for name, target, unit, figure, source in target_rows(report["results"])
    ]
    (output / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (output / "gpu_check.md").write_text(markdown_report(report, output))
    print(f"gpu-check: {report['seconds']:.0f} s in all; written {output / 'gpu_check.json'} and gpu_check.md")
    return 0 if all(stage["ok"] for stage in results) else 1


if __name__ == "__main__":
    sys.exit(main())
