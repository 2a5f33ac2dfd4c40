"""The benchmark scripts keep running: a tiny CPU run of each prints its one table and writes its JSON to $OUT.

Not timing tests (no figure is asserted): they check that every row is measured, positive and labelled.
"""

import json
import sys

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark

from textsampling.torch import metropolis_hastings
from textsampling.torch.randomness import numba_kernel_available


def test_bench_twins_prints_one_table_and_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OUT", str(tmp_path))
    bench = load_benchmark("bench_twins")
    bench.main(
        ["--max-cpu-chains", "1e3", "--max-reference-chains", "1e3", "--min-time", "0.005"]
        + ["--implementations", "reference,numpy,numpy-counter,twin,twin-ops,fast,torch-lines"]
        + ["--no-cuda", "--threads", "1"]
    )
    printed = capsys.readouterr().out
    assert "Machine: " in printed and "torch " + torch.__version__ in printed and "1 thread(s)" in printed
    assert "load average" in printed and "5 interleaved repeats" in printed
    table = [line for line in printed.splitlines() if line.startswith(("MH, ", "Gibbs, "))]
    assert len(table) == 14  # (reference, numpy, numpy-counter, twin, twin-ops, fast, torch-lines) x (MH, Gibbs)
    assert all(" MB" in line for line in table if "reference" not in line)  # memory beside every rate
    assert any(line.startswith("MH: twin / fast") for line in printed.splitlines())
    assert any(line.startswith("MH: twin-ops / fast") for line in printed.splitlines())
    # which kernel the twin row used
    both_loops = numba_kernel_available() and metropolis_hastings.numba_kernel_available()
    assert ("compiled loops" if both_loops else "numba not installed or not loadable") in printed
    assert any(line.startswith("Gibbs: fast / numpy") for line in printed.splitlines())
    assert any(line.startswith("MH: torch-lines / numpy") for line in printed.splitlines())
    results = json.loads((tmp_path / "bench_twins.json").read_text())
    cells = [cell for row in results["rows"] for cell in row["cells"].values()]
    assert len(cells) == 14 and results["repeats"] == 5 and results["complete"] is True
    for cell in cells:
        assert len(cell["rates"]) == 5 and cell["min"] <= cell["median"] <= cell["max"] and cell["min"] > 0
    assert all(
        c["peak_mb_per_million_chains"] > 0
        for row in results["rows"]
        if row["implementation"] != "reference"
        for c in row["cells"].values()
    )
    # The Markdown twin of the table, written beside the JSON, is what the README pastes.
    markdown = (tmp_path / "bench_twins.md").read_text()
    assert "| sampler, implementation | 1e3 chains |" in markdown
    assert "| MH, torch twin (counter uniforms) | " in markdown


class _FakeRunner:
    """A runner for measure_cell: ``fail_at`` is the call of ``run`` that raises (None: never)."""

    device = torch.device("cpu")
    memory_note = "none"

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = 0, fail_at

    def run(self, steps):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("lost the device")

    def peak_bytes(self):
        return 1


def test_bench_twins_reports_a_runner_that_fails_while_timed_and_times_the_others(monkeypatch):
    bench = load_benchmark("bench_twins")
    monkeypatch.setattr(bench, "calibrate", lambda runner, min_time, max_steps: 1)  # no run before the repeats
    failing, steady = _FakeRunner(fail_at=3), _FakeRunner()  # fails in the third timed repeat
    cells = bench.measure_cell({"failing": failing, "steady": steady}, 10, 5, 1e-9, 8)
    assert cells["failing"] == {"error": "RuntimeError: lost the device"}
    assert len(cells["steady"]["rates"]) == 5 and cells["steady"]["min"] > 0


def test_bench_twins_keeps_what_it_measured_when_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    bench = load_benchmark("bench_twins")
    measured = bench.measure_cell

    def stops_at_the_second_size(runners, num_chains, *arguments):
        if num_chains > 1000:
            raise KeyboardInterrupt  # as a time cap's kill would, between two batch sizes
        return measured(runners, num_chains, *arguments)

    monkeypatch.setattr(bench, "measure_cell", stops_at_the_second_size)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--max-cpu-chains", "1e4", "--min-time", "0.001", "--implementations", "numpy,fast", "--no-cuda"])
    partial = json.loads((tmp_path / "bench_twins.json").read_text())
    assert partial["complete"] is False and "partial report" in partial["notes"][-1]
    assert [(r["sampler"], r["implementation"], list(r["cells"])) for r in partial["rows"]] == [
        ("MH", "numpy", ["1000"]),
        ("MH", "fast", ["1000"]),
    ]
    assert "| MH, torch fast (torch.Generator) | " in (tmp_path / "bench_twins.md").read_text()
    assert not list(tmp_path.glob("*.partial"))  # written aside, then renamed


def test_bench_twins_cpu_implementations_keep_the_others_off_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    bench = load_benchmark("bench_twins")
    report = bench.main(
        ["--max-cpu-chains", "1e3", "--min-time", "0.001", "--samplers", "MH", "--no-cuda"]
        + ["--implementations", "numpy,fast,twin-compiled", "--cpu-implementations", "numpy,fast"]
    )
    assert [row["implementation"] for row in report["rows"]] == ["numpy", "fast"] and report["complete"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--implementations", "numpy,fast", "--cpu-implementations", "numpy,twin"])


def test_bench_twins_without_jax_says_so(monkeypatch, capsys):
    bench = load_benchmark("bench_twins")
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax raises ImportError
    bench.main(["--max-cpu-chains", "1e3", "--min-time", "0.001", "--implementations", "numpy,jax", "--samplers", "MH"])
    printed = capsys.readouterr().out
    assert "jax not importable" in printed and "JAX rows skipped" in printed
    assert "JAX vmap" not in printed.split("jax not importable")[1].split("\n", 1)[1]


def test_bench_twins_refuses_fewer_than_five_repeats():
    with pytest.raises(SystemExit):
        load_benchmark("bench_twins").parse_args(["--repeats", "3"])


def test_bench_twins_numpy_and_torch_baselines_make_the_reference_decisions():
    # The ten-line NumPy samplers, and the same lines in torch, are the same kernels: fed the per-chain
    # counter uniforms, they make the reference's decisions chain by chain (float64 all; exact for MH, and
    # for Gibbs up to a uniform landing within an ulp of a CDF boundary, probability ~1e-16 per draw).
    from textsampling import randomness
    from textsampling.reference import gibbs as reference_gibbs
    from textsampling.reference import metropolis_hastings as reference_mh

    bench = load_benchmark("bench_twins")
    categorical, proposal, bigram = bench.make_problems()
    chains, num_steps = np.arange(7), 25
    for chain in chains:
        mh = reference_mh.sample(
            randomness.CounterGenerator(11, chain), int(chain), categorical.log_prob, proposal, num_steps
        )
        start = np.zeros(bench.LENGTH, dtype=np.int64)
        gibbs = reference_gibbs.sample(
            randomness.CounterGenerator(11, chain), start, bigram.conditional_log_probs, num_steps
        )
        x, log_prob = np.array([chain]), categorical.logits[[chain]]
        sequences = start[None, :]
        torch_x, torch_log_prob = torch.from_numpy(x), torch.from_numpy(log_prob)
        torch_sequences = torch.from_numpy(sequences)
        logits, log_initial, log_transition = (
            torch.from_numpy(a) for a in (categorical.logits, bigram.log_initial, bigram.log_transition)
        )
        for step in range(num_steps):
            uniforms = randomness.counter_uniforms(11, np.array([chain]), step, 2)  # (1, 2)
            x, log_prob = bench.numpy_mh_step(uniforms, x, log_prob, categorical.logits)
            sequences, _ = bench.numpy_gibbs_step(uniforms, sequences, bigram.log_initial, bigram.log_transition)
            assert x[0] == mh.states.x[step] and sequences[0].tolist() == gibbs.states.x[step].tolist()
            torch_uniforms = torch.from_numpy(uniforms)
            torch_x, torch_log_prob = bench.torch_mh_step(torch_uniforms, torch_x, torch_log_prob, logits)
            torch_sequences, _ = bench.torch_gibbs_step(torch_uniforms, torch_sequences, log_initial, log_transition)
            assert torch_x.tolist() == x.tolist() and torch_sequences.tolist() == sequences.tolist()
            assert torch_log_prob.tolist() == log_prob.tolist()


def test_bench_lm_prints_one_table_and_writes_json(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    monkeypatch.setenv("OUT", str(tmp_path))
    load_benchmark("bench_lm").main(
        ["--small", "--device", "cpu", "--batch-sizes", "2,4", "--score-batch-sizes", "3"]
        + ["--num-steps", "1", "--length", "8"]
    )
    printed = capsys.readouterr().out
    assert "machine: CPU" in printed and "torch " + torch.__version__ in printed
    assert "GFLOP per chain-step" in printed and "GFLOP per sentence" in printed
    table = [line for line in printed.splitlines() if line.startswith(("mlm_gibbs ", "causal_scoring "))]
    assert len(table) == 2 * 2 + 2  # (ours, minimal) x (2 Gibbs batches + 1 scoring batch)
    assert all(" - " in line for line in table)  # MFU is "-" on the CPU
    assert "60,000" in printed and "30,000" in printed  # the targets beside the numbers

    results = json.loads((tmp_path / "bench_lm.json").read_text())
    assert results["machine"]["torch"] == torch.__version__ and results["machine"]["gpu"] is None
    assert results["config"]["small"] is True and results["config"]["dtype"] == "float32"
    rows = results["results"]
    assert [(r["workload"], r["implementation"], r["batch_size"]) for r in rows] == [
        ("mlm_gibbs", "ours", 2),
        ("mlm_gibbs", "minimal", 2),
        ("mlm_gibbs", "ours", 4),
        ("mlm_gibbs", "minimal", 4),
        ("causal_scoring", "ours", 3),
        ("causal_scoring", "minimal", 3),
    ]
    assert all("error" not in r and r["rate"] > 0 and r["flops_per_item"] > 0 and r["mfu"] is None for r in rows)
    assert set(results["targets"]) == {"mlm_gibbs", "causal_scoring"}


def test_bench_lm_reports_a_failed_row_and_measures_the_others(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    monkeypatch.setenv("OUT", str(tmp_path))
    bench = load_benchmark("bench_lm")

    def fails(*arguments):
        raise ValueError("a kernel this device lacks")

    monkeypatch.setattr(bench, "causal_scoring_minimal", fails)
    rows = bench.main(
        ["--small", "--device", "cpu", "--batch-sizes", "2", "--score-batch-sizes", "3", "--num-steps", "1"]
        + ["--length", "8"]
    )["results"]
    failed = [r for r in rows if "error" in r]
    assert [(r["workload"], r["implementation"], r["error"], r["failed"]) for r in failed] == [
        ("causal_scoring", "minimal", "ValueError: a kernel this device lacks", True)
    ]
    assert all(r["rate"] > 0 for r in rows if "error" not in r) and len(rows) == 4
    assert json.loads((tmp_path / "bench_lm.json").read_text())["results"][-1]["failed"] is True
    assert "a kernel this device lacks" in capsys.readouterr().err


def test_bench_lm_flops_and_peak(monkeypatch):
    pytest.importorskip("transformers")
    bench = load_benchmark("bench_lm")
    assert bench.peak_flops(torch.device("cpu"), torch.float32) is None
    assert bench.peak_flops(torch.device("cpu"), torch.float32, override_tflops=100) == 100e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert bench.peak_flops(torch.device("cuda"), torch.bfloat16) == 989e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert bench.peak_flops(torch.device("cuda"), torch.bfloat16) == 989e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert bench.peak_flops(torch.device("cuda"), torch.bfloat16) == 756e12
    assert bench.peak_flops(torch.device("cuda"), torch.float32) is None
    tokenizer = bench.make_tokenizer(50, 64)
    assert len(tokenizer) == 50 and tokenizer.mask_token_id == 4 and tokenizer.eos_token_id == 3


def test_bench_metrics_prints_one_table_and_writes_json(tmp_path, monkeypatch, capsys):
    pytest.importorskip("nltk")
    monkeypatch.setenv("OUT", str(tmp_path))
    load_benchmark("bench_metrics").main(
        ["--num-hypotheses", "30", "--num-references", "20", "--repeats", "2", "--nltk-size", "10",
         "--nltk-repeats", "1"]
    )
    printed = capsys.readouterr().out
    assert "machine: CPU" in printed and "load average" in printed and "mark: < 5 s" in printed
    table = [line for line in printed.splitlines() if line.startswith(("self-BLEU", "BLEU vs", "% unique", "evaluate"))]
    # 3 self-BLEU conventions + NLTK and ours at the peer's size, 2 BLEU conventions, 2 unique rows, evaluate
    assert len(table) == 3 + 2 + 2 + 2 + 1
    assert "same value: True" in printed and "extrapolated" in printed
    results = json.loads((tmp_path / "bench_metrics.json").read_text())
    rows = results["results"]
    assert len(rows) == 13 and all(r["median_s"] > 0 and r["min_s"] <= r["median_s"] <= r["max_s"] for r in rows)
    assert results["peer"]["same_value"] is True and results["peer"]["size"] == 10


def test_bench_decoding_prints_one_table_and_writes_json(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    monkeypatch.setenv("OUT", str(tmp_path))
    load_benchmark("bench_decoding").main(["--batch-sizes", "2", "--repeats", "1", "--max-new-tokens", "4"])
    printed = capsys.readouterr().out
    assert "# machine:" in printed and "torch " + torch.__version__ in printed
    table = [line for line in printed.splitlines() if line.startswith(("greedy ", "ancestral "))]
    assert len(table) == 6  # (ours cached, ours uncached, generate) x (greedy, ancestral)
    results = json.loads((tmp_path / "bench_decoding.json").read_text())["results"]
    assert len(results) == 6 and all(r["seconds_median"] > 0 and r["batch"] == 2 for r in results)


def test_machine_describes_the_cpu_by_family_model_and_vector_extension():
    describe = load_benchmark("machine").describe_cpuinfo
    x86 = (
        "\nprocessor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 49\nmodel name\t: AMD EPYC\n"
        "flags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nmodel name\t: Other CPU\nflags\t\t: avx512f avx2\n"
    )
    assert describe(x86) == "AMD EPYC, family 23, model 49, AVX2"  # the first processor only
    assert describe("model name\t: Intel Xeon\nflags\t\t: avx avx2 avx512f\n") == "Intel Xeon, AVX-512"
    assert describe("model name\t: Some CPU\n") == "Some CPU"  # no family, model or flags: left out
    assert describe("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\nCPU part\t: 0xd0c\n") is None  # ARM
    assert describe("") is None


@pytest.mark.slow  # compiles the step (twice: a second size recompiles with symbolic sizes)
def test_bench_twins_compiled_step_makes_the_eager_twins_decisions():
    # The compiled-step row is Inductor's code for the MH step, fed the twin's counter uniforms; the
    # runner compares three of its steps with the eager twin's, bit for bit, and records the verdict.
    # 1,003 chains: not a multiple of any vector width, so the compiled loop's scalar tail runs too;
    # 5,003: also at least BRANCH_FREE_MIN_ENTRIES, so the selects take their branch-free form.
    bench = load_benchmark("bench_twins")
    problems = bench.make_problems()
    assert metropolis_hastings.BRANCH_FREE_MIN_ENTRIES <= 5003
    for num_chains in (1003, 5003):
        runner = bench.TorchRunner("MH", "compiled-step", num_chains, problems, torch.device("cpu"))
        assert bench.COMPILED_STEP_MATCHES[("MH", "cpu", num_chains)] is True
        runner.run(2)  # and it runs as a row


def test_bench_twins_compiled_step_check_fails_a_step_that_decides_otherwise_at_the_third_step(monkeypatch):
    # The test of the check: a "compiled" step that makes the eager twin's first two steps and then
    # rejects every proposal is reported as not matching (each of the three steps is compared).
    bench = load_benchmark("bench_twins")
    problems = bench.make_problems()
    _, transition, _ = bench.transitions("MH", problems, torch.device("cpu"), torch.float32)
    calls = []

    def wrong_at_the_third_step(uniforms, current):
        calls.append(None)
        new_state = transition(uniforms, current, False)
        if len(calls) < 3:
            return new_state
        return type(new_state)(current.x.clone(), current.log_prob.clone())

    monkeypatch.setattr(bench, "compiled_step", lambda *args: wrong_at_the_third_step)
    bench.TorchRunner("MH", "compiled-step", 1000, problems, torch.device("cpu"))
    assert len(calls) == 3 and bench.COMPILED_STEP_MATCHES[("MH", "cpu", 1000)] is False
