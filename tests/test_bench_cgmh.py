"""benchmarks/bench_cgmh.py keeps running: a tiny CPU run prints its one table and writes its JSON to $OUT.

Not a timing test (no figure is asserted): every row is measured, positive and labelled, and the two
implementations took the same decisions (the script exits otherwise).
"""

import json

import pytest
from benchmark_scripts import load_benchmark

pytest.importorskip("transformers")


def test_bench_cgmh_prints_one_table_and_writes_json(tmp_path, monkeypatch, capsys):
    module = load_benchmark("bench_cgmh")
    monkeypatch.setenv("OUT", str(tmp_path))
    module.main(["--batch-sizes", "1,2", "--num-candidates", "5", "--max-length", "8", "--num-steps", "2",
                 "--repeats", "1", "--threads", "1"])
    printed = capsys.readouterr().out
    assert "torch threads 1" in printed and "load average" in printed
    table = [line for line in printed.splitlines() if line.startswith(("full rescoring", "prefix reuse"))]
    assert len(table) == 4  # (full, prefix reuse) x (batch 1, 2)
    report = json.loads((tmp_path / "bench_cgmh.json").read_text())
    rows = report["results"]
    assert [(r["implementation"], r["batch"]) for r in rows] == [
        ("full rescoring", 1), ("prefix reuse", 1), ("full rescoring", 2), ("prefix reuse", 2)
    ]
    assert all(r["seconds_per_step_min"] > 0 and r["full_time_over_this"] > 0 for r in rows)
    assert all(r["cpu_seconds_per_step_min"] > 0 and r["full_cpu_time_over_this"] > 0 for r in rows)
    assert all(r["model_calls_per_step"] > 0 for r in rows)  # the first step runs the model
    assert report["num_candidates"] == 5 and report["max_length"] == 8 and report["threads"] == 1
