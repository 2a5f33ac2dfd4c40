"""`make gpu-check` (scripts/gpu_check.py) is wired: it refuses clearly without CUDA, and its CPU smoke run
goes through every stage (tests, bench_twins, bench_lm) and writes the JSON and the Markdown table."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


def test_gpu_check_without_cuda_says_so_and_exits_3(tmp_path):
    # CUDA_VISIBLE_DEVICES="" hides every GPU, so this holds on a GPU machine too.
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT))
    process = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert process.returncode == 3
    assert "gpu-check: no CUDA device" in process.stderr and "--cpu-smoke" in process.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.slow
def test_gpu_check_cpu_smoke_runs_every_stage(tmp_path, capsys):
    gpu_check = _load_gpu_check()
    assert gpu_check.main(["--cpu-smoke", "--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["name"] for s in report["stages"]] == ["pytest -m gpu", "bench_twins", "bench_lm"]
    assert all(s["ok"] and s["returncode"] == 0 for s in report["stages"])
    assert " -m gpu " in report["stages"][0]["command"]
    assert report["pytest"]["tests"] > 0 and report["pytest"]["failures"] == report["pytest"]["errors"] == 0
    assert {r["implementation"] for r in report["results"]["bench_twins"]["rows"]} == {"numpy", "twin", "fast"}
    assert report["results"]["bench_lm"]["results"]
    assert [t["figure"] for t in report["targets"]] == list(gpu_check.TARGETS)
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| stage | result | seconds |" in table and "## bench_twins" in table and "## bench_lm" in table
    assert "| MH, torch twin (counter uniforms) |" in table


def _load_gpu_check():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return gpu_check


@pytest.mark.slow  # collects the whole suite once (about 15 s)
def test_the_gpu_stage_runs_the_files_that_hold_every_gpu_test():
    # The stage names files, so that a module the GPU machine cannot import stops nothing; those files
    # must still hold every test that `pytest -m gpu` selects.
    files = _load_gpu_check().gpu_test_files()
    assert files and all(name.startswith("tests/test_") for name in files)
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-2000:]
    selected = {line.split("::")[0] for line in process.stdout.splitlines() if "::" in line}
    assert selected and selected <= set(files), sorted(selected - set(files))
    stage = _load_gpu_check().stages(sys.executable, Path("/tmp/out"), cpu_smoke=False)[0]
    assert stage["command"][-len(files):] == files and "tests" not in stage["command"]


def test_the_mh_target_reads_the_best_reproducible_cuda_row():
    gpu_check = _load_gpu_check()

    def row(implementation, device, rate):
        cells = {"10000000": {"median": rate}}
        return {"sampler": "MH", "implementation": implementation, "device": device, "cells": cells}

    twins = {
        "rows": [
            row("twin", "cuda:0", 3e9),
            row("fused", "cuda:0", 2.5e10),
            row("fast", "cuda:0", 9e10),  # torch.Generator: not the reproducible generator
            row("twin", "cpu", 9e10),
            row("twin-compiled", "cuda:0", 1e10),
        ],
        "fused_matches_twin": {"MH cuda:0 10000000": True},
    }
    reproducible = gpu_check.REPRODUCIBLE_IMPLEMENTATIONS
    assert gpu_check.twin_rate_at(twins, "MH", reproducible, 10**7) == (2.5e10, "fused")
    assert gpu_check.twin_rate_at(twins, "Gibbs", reproducible, 10**7) == (None, None)
    first = gpu_check.target_rows({"bench_twins": twins})[0]
    assert first[3:] == (2.5e10, "bench_twins, MH fused, without value checks") and first[3] >= first[1]
    # a fused step not found equal to the eager twin's does not count
    twins["fused_matches_twin"]["MH cuda:0 10000000"] = False
    assert gpu_check.twin_rate_at(twins, "MH", reproducible, 10**7) == (1e10, "twin-compiled")


def test_the_report_counts_failed_benchmark_cells():
    gpu_check = _load_gpu_check()
    twins = {"rows": [{"cells": {"1000": {"median": 1.0}, "10000": {"error": "RuntimeError: x"}}}]}
    lm = {"results": [{"rate": 1.0}, {"error": "out of memory: y"}, {"error": "ValueError: z", "failed": True}]}
    assert (gpu_check.failed_cells(twins), gpu_check.failed_cells(lm), gpu_check.failed_cells(None)) == (1, 2, 0)
    stage = {"ok": True, "timed_out": False, "returncode": 0, "failed_cells": 2}
    assert gpu_check.stage_state(stage) == "ok, 2 benchmark cells failed"
    assert gpu_check.stage_state(dict(stage, ok=False, timed_out=True)) == "timed out, 2 benchmark cells failed"
