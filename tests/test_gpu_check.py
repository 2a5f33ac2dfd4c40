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
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
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
