"""The benchmark script keeps running: a tiny CPU run prints its one table and writes its JSON to $OUT.

Not a timing test (no figure is asserted): it checks that every row is measured and positive.
"""

import importlib.util
import json
from pathlib import Path

import torch


def _load_benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_twins.py"
    spec = importlib.util.spec_from_file_location("bench_twins", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_prints_one_table_and_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OUT", str(tmp_path))
    _load_benchmark().main(
        [
            "--max-cpu-chains",
            "1e3",
            "--max-reference-chains",
            "1e3",
            "--min-time",
            "0.01",
            "--modes",
            "twin,fast",
            "--no-cuda",
        ]
    )
    printed = capsys.readouterr().out
    assert "machine: CPU" in printed and "torch " + torch.__version__ in printed
    table = [line for line in printed.splitlines() if line.startswith(("MH", "Gibbs"))]
    assert len(table) == 6  # (reference, twin, fast) x (MH, Gibbs)
    results = json.loads((tmp_path / "bench_twins.json").read_text())
    assert len(results["results"]) == 6
    assert all(r["num_chains"] == 1000 and r["chain_steps_per_second"] > 0 for r in results["results"])
