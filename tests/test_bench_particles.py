"""The particle benchmark keeps running: a tiny CPU run prints its one table and writes its JSON to $OUT.

Not a timing test (no figure is asserted): every row is measured, positive and labelled, and the
twin / reference ratio is there wherever the reference ran.
"""

import json

import pytest
import torch
from benchmark_scripts import load_benchmark


@pytest.mark.parametrize("markdown", [False, True])
def test_bench_particles_prints_one_table_and_writes_json(tmp_path, monkeypatch, capsys, markdown):
    pytest.importorskip("transformers")
    monkeypatch.setenv("OUT", str(tmp_path))
    argv = ["--sizes", "3,5", "--lm-sizes", "2", "--runs", "2", "--repeats", "1",
            "--max-reference-particles", "3"]
    load_benchmark("bench_particles").main(argv + (["--markdown"] if markdown else []))
    printed = capsys.readouterr().out
    assert "# machine: CPU" in printed and "torch " + torch.__version__ in printed and "load average" in printed
    workloads = ["smc oracle", "smc tiny-shakespeare", "resampling multinomial", "resampling stratified",
                 "resampling systematic", "resampling residual", "ais", "ais, gibbs moves", "parallel tempering"]
    prefix = "| " if markdown else ""
    names = [line[len(prefix):].split("  " if not markdown else " |")[0] for line in printed.splitlines()]
    assert sorted(n for n in names if n in workloads) == sorted(workloads * 3)  # twin, reference, ratio each
    results = json.loads((tmp_path / "bench_particles.json").read_text())["results"]
    # twin at N = 3 and 5 (the LM at 2), the reference only up to --max-reference-particles = 3
    expected = {(w, "twin", n) for w in workloads for n in ((2,) if "shakespeare" in w else (3, 5))}
    expected |= {(w, "reference", n) for w in workloads for n in ((2,) if "shakespeare" in w else (3,))}
    assert {(r["workload"], r["implementation"], r["num_particles"]) for r in results} == expected
    assert all(r["rate_min"] <= r["rate_median"] <= r["rate_max"] and r["rate_min"] > 0 for r in results)
    assert all(r["num_runs"] == (2 if r["implementation"] == "twin" else 1) for r in results)
    compared = [r for r in results if r["implementation"] == "twin" and r["num_particles"] <= 3]
    assert all(r["twin_over_reference"] > 0 for r in compared)
