"""`textsampling generate` over several processes: torchrun with gloo on the CPU gives the files of one process.

Chain ``c`` at step ``t`` draws from Philox(seed, c, t) only, so splitting the chains into blocks, one per
process, and merging the blocks' shard files must give ``samples.jsonl`` byte for byte, and the report
files written from it (metrics.json, mixing.json, mixing.md, run.json) too. The torchrun tests start real
processes (``torchrun --nproc_per_node=N -m textsampling.cli generate``, gloo on localhost, a free port)
on the built-in model; the resume tests fold interrupted shards of one process count into a run
resumed with another. Every process runs one thread (torchrun's default for N > 1, and the suite's
``torch.set_num_threads(1)`` in process): the same arithmetic in every run.
"""

import json
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from textsampling import cli
from textsampling.cli import distributed, generate
from textsampling.lm.oracle import BigramOracle
from textsampling.targets import BigramLM

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
#: gibbs on the built-in masked LM: 5 chains split 3 + 2 by two processes and 1 + 2 + 2 by three
BUILTIN = ["--sampler", "gibbs", "--num-chains", "5", "--num-steps", "6", "--max-length", "8", "--no-progress"]
#: the files of a run: the samples and what the report writes from them
REPORT_FILES = ("samples.jsonl", "metrics.json", "mixing.json", "mixing.md", "traces.png", "run.json")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun(num_processes: int, *command, check_status=0):
    """Run ``command`` (``-m module ...`` or a script) under torchrun with gloo on localhost; its output."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                   "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name in distributed.TORCHRUN_VARIABLES:  # never inherit another launcher's place
        environment.pop(name, None)
    if sys.platform.startswith("linux"):  # gloo on the loopback device: no need for the host name to resolve
        environment.setdefault("GLOO_SOCKET_IFNAME", "lo")
    argv = [str(TORCHRUN) if TORCHRUN.exists() else "torchrun", f"--nproc_per_node={num_processes}",
            "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *command]
    result = subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    if check_status is not None:
        assert result.returncode == check_status, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _report_of(folder: Path, stdout: str) -> str:
    return stdout.replace(str(folder), "OUTPUT")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The run of one process (no torchrun), in this process: (folder, what it printed)."""
    folder = tmp_path_factory.mktemp("one") / "run"
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["generate", *BUILTIN, "--output", str(folder)]) == 0
    return folder, printed.getvalue()


def _assert_same_run(folder: Path, stdout: str, one_process) -> None:
    single, single_stdout = one_process
    for name in REPORT_FILES:
        assert (folder / name).read_bytes() == (single / name).read_bytes(), name
    assert not distributed.find_shards(folder)  # merged and removed
    assert _report_of(folder, stdout) == _report_of(single, single_stdout)


# ----------------------------------------------------------------------------- torchrun, real processes
def test_two_processes_with_torchrun_write_the_files_of_one(tmp_path, one_process):
    folder = tmp_path / "run"
    result = _torchrun(2, "-m", "textsampling.cli", "generate", *BUILTIN, "--output", str(folder))
    _assert_same_run(folder, result.stdout, one_process)


@pytest.mark.slow
def test_three_processes_with_torchrun_write_the_files_of_one(tmp_path, one_process):
    folder = tmp_path / "run"
    result = _torchrun(3, "-m", "textsampling.cli", "generate", *BUILTIN, "--output", str(folder))
    _assert_same_run(folder, result.stdout, one_process)


@pytest.mark.slow
def test_a_run_interrupted_in_two_processes_resumes_in_three(tmp_path, one_process):
    folder = tmp_path / "run"
    interrupted = _torchrun(2, "tests/interrupted_generate.py", "2", *BUILTIN, "--output", str(folder),
                            check_status=None)
    assert interrupted.returncode != 0 and "--resume" in interrupted.stderr
    shards = distributed.find_shards(folder)
    assert [chains for chains, _ in shards] == [range(0, 2), range(2, 5)]
    assert not (folder / "samples.jsonl").exists() and not (folder / "metrics.json").exists()
    for chains, path in shards:  # steps 0..2 of each block, written when the processes stopped
        steps = [json.loads(line)["step"] for line in path.read_text().splitlines()]
        assert steps == [step for step in range(3) for _ in chains]
    resumed = _torchrun(3, "-m", "textsampling.cli", "generate", *BUILTIN, "--output", str(folder), "--resume")
    single, _ = one_process
    for name in REPORT_FILES:
        assert (folder / name).read_bytes() == (single / name).read_bytes(), name
    assert not distributed.find_shards(folder)
    assert "resuming" in resumed.stdout


# ----------------------------------------------------------------------------- resume from shards, in process
NUM_CHAINS, NUM_STEPS = 3, 12


@pytest.fixture(scope="module")
def oracle():
    rng = np.random.default_rng(0)
    return BigramOracle(BigramLM(rng.normal(size=6), rng.normal(size=(6, 7)), 8))


def _args(output, sampler, *extra):
    argv = ["--sampler", sampler, "--max-length", "6", "--no-progress", "--num-chains", str(NUM_CHAINS),
            "--output", str(output), *extra]
    if sampler in generate.MCMC_SAMPLERS:
        argv += ["--num-steps", str(NUM_STEPS)]
    if sampler in generate.MASKED_SAMPLERS:
        argv += ["--min-length", "2"]
    if sampler in generate.KEYWORD_SAMPLERS:
        argv += ["--num-candidates", "4", "--keywords", "t2"]
    return generate.build_parser().parse_args(argv)


def _kept_records(folder, sampler):
    """The records a run resumed from ``folder`` keeps (read only, as before any model loads)."""
    args = _args(folder, sampler, "--resume")
    generate._check_settings(args)
    return generate._check_output(args)


def _records_by_key(folder):
    lines = (folder / "samples.jsonl").read_text().splitlines(keepends=True)
    return {(json.loads(line)["step"], json.loads(line)["chain"]): line for line in lines}


def _shard(folder, lines_by_key, chains, steps, cut=""):
    """Write the shard file of ``chains`` holding ``steps`` (in the file's order), then ``cut`` (half a line)."""
    path = distributed.shard_path(folder, chains)
    path.write_text("".join(lines_by_key[(step, chain)] for step in steps for chain in chains) + cut)
    return path


@pytest.mark.parametrize("sampler", ["gibbs", "mh", "cgmh", "anneal"])
def test_shards_of_two_processes_at_different_steps_resume_in_one(tmp_path, oracle, sampler):
    """Merged steps 0-2, then a 2-process run stopped with chains 0-1 at step 8 (and half a line) and chain 2
    at step 5: the run resumed in one process redraws steps 6-8 of chains 0-1 and ends with the same bytes."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert generate.execute(_args(whole, sampler), masked_lm=oracle, causal_lm=oracle) == 0
    by_key = _records_by_key(whole)
    cut.mkdir()
    (cut / "run.json").write_bytes((whole / "run.json").read_bytes())
    (cut / "samples.jsonl").write_text("".join(by_key[(t, c)] for t in range(3) for c in range(NUM_CHAINS)))
    _shard(cut, by_key, range(0, 2), range(3, 9), cut=by_key[(9, 0)][:15])
    _shard(cut, by_key, range(2, 3), range(3, 6))
    records = _kept_records(cut, sampler)
    assert [(r["step"], r["chain"]) for r in records] == [(t, c) for t in range(6) for c in range(NUM_CHAINS)]
    assert generate.execute(_args(cut, sampler, "--resume"), masked_lm=oracle, causal_lm=oracle) == 0
    for name in ("samples.jsonl", "metrics.json", "mixing.json"):
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), name
    assert not distributed.find_shards(cut)


def test_shards_that_overlap_the_merged_file_resume_and_decoders_keep_their_sentences(tmp_path, oracle):
    """A process stopped between writing the merged file and removing the shards leaves records twice
    (the same bytes): they count once. A decoder's shards resume too (its sentences are independent)."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert generate.execute(_args(whole, "topp"), causal_lm=oracle) == 0
    by_key = _records_by_key(whole)
    cut.mkdir()
    (cut / "run.json").write_bytes((whole / "run.json").read_bytes())
    (cut / "samples.jsonl").write_text(by_key[(0, 0)])
    _shard(cut, by_key, range(0, 2), [0])  # chain 0 again, and chain 1
    records = _kept_records(cut, "topp")
    assert [r["chain"] for r in records] == [0, 1]
    assert generate.execute(_args(cut, "topp", "--resume"), causal_lm=oracle) == 0
    assert (cut / "samples.jsonl").read_bytes() == (whole / "samples.jsonl").read_bytes()


def _stopped_shards(tmp_path, oracle):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    generate.execute(_args(whole, "cgmh"), causal_lm=oracle)
    by_key = _records_by_key(whole)
    cut.mkdir()
    (cut / "run.json").write_bytes((whole / "run.json").read_bytes())
    return cut, by_key


@pytest.mark.parametrize("damage, match", [
    ("swapped", r"samples.chains-0-2.jsonl line 3: expected step 1 chain 0, found step 1 chain 1"),
    ("differs", r"samples.chains-0-2.jsonl line 1: step 0 chain 0 differs from the same record"),
    ("other chains", r"samples.chains-2-5.jsonl: chains 2..4 are not chains of this run \(0..2\)"),
])
def test_resume_refuses_damaged_shards_naming_the_file_and_line(tmp_path, oracle, damage, match):
    cut, by_key = _stopped_shards(tmp_path, oracle)
    if damage == "swapped":
        lines = [by_key[(0, 0)], by_key[(0, 1)], by_key[(1, 1)], by_key[(1, 0)]]
        distributed.shard_path(cut, range(0, 2)).write_text("".join(lines))
    elif damage == "differs":
        (cut / "samples.jsonl").write_text("".join(by_key[(0, c)] for c in range(NUM_CHAINS)))
        changed = json.loads(by_key[(0, 0)])
        changed["log_prob"] += 1.0
        distributed.shard_path(cut, range(0, 2)).write_text(json.dumps(changed) + "\n")
    else:
        distributed.shard_path(cut, range(2, 5)).write_text(by_key[(0, 2)])
    before = {path.name: path.read_bytes() for path in cut.iterdir()}
    with pytest.raises(generate.DamagedSamplesError, match=match):
        generate.execute(_args(cut, "cgmh", "--resume"), causal_lm=oracle)
    assert {path.name: path.read_bytes() for path in cut.iterdir()} == before  # refused: nothing rewritten


def test_a_new_run_refuses_a_folder_holding_shards(tmp_path, oracle):
    distributed.shard_path(tmp_path, range(0, 1)).write_text("")
    with pytest.raises(FileExistsError, match="already holds a run"):
        generate.execute(_args(tmp_path, "cgmh"), causal_lm=oracle)


# ----------------------------------------------------------------------------- the helpers
def test_blocks_cover_every_chain_once_in_order_and_differ_by_at_most_one():
    for num_chains in range(0, 12):
        for world_size in range(1, 6):
            blocks = [distributed.shard(num_chains, distributed.Processes(rank, world_size, rank))
                      for rank in range(world_size)]
            assert [chain for block in blocks for chain in block] == list(range(num_chains))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_torchrun_variables_name_the_process_and_bad_ones_are_refused():
    assert distributed.from_environment({}) == distributed.Processes(0, 1, 0)
    assert distributed.from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == \
        distributed.Processes(3, 4, 1)
    with pytest.raises(ValueError, match="sets RANK but not WORLD_SIZE, LOCAL_RANK"):
        distributed.from_environment({"RANK": "0"})
    with pytest.raises(ValueError, match="must be integers"):
        distributed.from_environment({"RANK": "a", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="0 <= RANK < WORLD_SIZE"):
        distributed.from_environment({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


def test_each_process_takes_the_gpu_of_its_local_rank():
    several = distributed.Processes(rank=5, world_size=8, local_rank=1)
    assert distributed.process_device("cuda", several) == "cuda:1"
    assert distributed.process_device("cpu", several) == "cpu"
    assert distributed.process_device("cuda:1", distributed.Processes()) == "cuda:1"  # one process: as given
    with pytest.raises(ValueError, match="pass --device cuda"):
        distributed.process_device("cuda:0", several)
    assert distributed.backend_for("cuda:1") == "nccl" and distributed.backend_for("cpu") == "gloo"


def test_samplers_whose_chains_interact_are_refused_over_several_processes(monkeypatch, tmp_path):
    monkeypatch.setitem(generate.CHAIN_SAMPLERS, "gibbs", types.SimpleNamespace(independent_chains=False))
    args = types.SimpleNamespace(sampler="gibbs", device="cpu")
    assert generate._processes(args) == distributed.Processes()  # one process: nothing to split
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="--sampler gibbs: its chains interact"):
        generate._processes(args)


def test_merge_copies_sorted_lines_byte_for_byte(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text('{"chain": 0, "step": 0, "x": 1.5}\n{"chain": 0, "step": 1}\n')
    second.write_text('{"chain": 1, "step": 0, "text": "\\u00e9"}\n{"chain": 1, "step": 1}\n')
    count = distributed.merge_sorted([first, second], first, key=generate._record_order)
    assert count == 4
    assert first.read_text() == ('{"chain": 0, "step": 0, "x": 1.5}\n{"chain": 1, "step": 0, "text": "\\u00e9"}\n'
                                 '{"chain": 0, "step": 1}\n{"chain": 1, "step": 1}\n')
