"""benchmarks/bench_randomness.py keeps running: a tiny CPU run prints its one table and writes its JSON to $OUT.

Not a timing test (no figure is asserted): every row is measured, positive and labelled. The compiled mode
is left out here (its compilation is what tests/test_twin_randomness.py pays for once).
"""

import json

import torch
from benchmark_scripts import load_benchmark

from textsampling.torch.randomness import numba_kernel_available


def test_bench_randomness_prints_one_table_and_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OUT", str(tmp_path))
    threads = torch.get_num_threads()
    try:
        load_benchmark("bench_randomness").main(
            ["--sizes", "1e3,2e3", "--num-uniforms", "2,3", "--repeats", "2", "--min-time", "0.001"]
            + ["--modes", "numpy counter,numpy Generator,torch counter,torch ops counter,torch.rand"]
        )
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "torch threads 1" in printed and "load average" in printed and "torch " + torch.__version__ in printed
    table = [line for line in printed.splitlines() if line[:2].strip() in ("2", "3")]
    # which kernel the default used
    assert ("# torch counter: numba " if numba_kernel_available() else "numba not installed") in printed
    # (5 implementations + 3 ratio rows: numpy, torch and torch ops counter) x 2 widths
    assert len(table) == 2 * (5 + 3)
    results = json.loads((tmp_path / "bench_randomness.json").read_text())["results"]
    assert len(results) == 2 * 2 * 5
    assert {r["implementation"] for r in results} == {
        "numpy counter",
        "numpy Generator",
        "torch counter",
        "torch ops counter",
        "torch.rand",
    }
    assert all(
        r["uniforms_per_second"] > 0 and r["seconds_min"] <= r["seconds_median"] <= r["seconds_max"] for r in results
    )
