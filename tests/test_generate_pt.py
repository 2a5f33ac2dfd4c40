"""`textsampling generate --sampler pt`: parallel tempering over sentences through the command line.

On the bigram oracle the records are exactly the library's run (the torch twin of
``sentence_tempering`` with the counter uniforms of ``--seed``): the chain's sentence is the replica at
T = 1, beside the swaps and every replica; an interrupted run resumed gives the same bytes. On the
built-in model, ``--keywords king,crown`` runs and resumes byte for byte. Flags are checked before
anything loads, with errors naming them.
"""

import json

import numpy as np
import pytest
import torch
from test_generate import NUM_CHAINS, NUM_STEPS, SAMPLER_OPTIONS, _args, _lines

from textsampling import cli
from textsampling.cli import generate
from textsampling.lm.keywords import continuation_token_ids, keyword_units
from textsampling.lm.oracle import BigramOracle
from textsampling.reference import cgmh
from textsampling.reference.sentence_tempering import geometric_temperatures
from textsampling.targets import BigramLM
from textsampling.torch import sentence_tempering
from textsampling.torch.randomness import CounterGenerator

OPTIONS = SAMPLER_OPTIONS["pt"]  # --keywords t2,t4 --num-replicas 3 --max-temperature 5
NUM_REPLICAS, MAX_TEMPERATURE = 3, 5.0


@pytest.fixture(scope="module")
def oracle():
    """The bigram oracle of tests/test_generate.py."""
    rng = np.random.default_rng(0)
    return BigramOracle(BigramLM(rng.normal(size=6), rng.normal(size=(6, 7)), 8))


def test_the_records_are_the_libraries_run_with_the_cold_replica_as_the_sentence(tmp_path, oracle):
    assert generate.execute(_args(tmp_path, "pt", *OPTIONS), causal_lm=oracle) == 0
    records = _lines(tmp_path)
    assert [(r["step"], r["chain"]) for r in records] == [(t, c) for t in range(NUM_STEPS) for c in range(NUM_CHAINS)]
    # The same run from the library: keyword start, the counter uniforms of --seed 0, chain c = stream c.
    config = cgmh.make_config(oracle, keyword_units(oracle, ["t2", "t4"]), num_candidates=4, max_length=6,
                              continuation_tokens=continuation_token_ids(oracle))
    start = torch.tensor([[2, 4]] * NUM_CHAINS)
    trace = sentence_tempering.sample(CounterGenerator(0, torch.arange(NUM_CHAINS)), start, config, NUM_STEPS,
                                      temperatures=geometric_temperatures(NUM_REPLICAS, MAX_TEMPERATURE))
    for record in records:
        chain, step = record["chain"], record["step"]
        replicas = trace.states.x[chain, step].numpy()  # (M, L)
        assert record["replicas"] == [[int(t) for t in row if t != -1] for row in replicas]
        assert record["tokens"] == record["replicas"][0]  # the chain's sentence: the replica at T = 1
        assert record["replica_log_probs"] == trace.states.log_prob[chain, step].tolist()
        assert record["log_prob"] == record["replica_log_probs"][0]
        assert record["replica_protected"] == trace.states.protected[chain, step].tolist()
        assert record["accepted"] == bool(trace.infos.accepted[chain, step, 0])
        assert record["move"] == cgmh.MOVES[int(trace.infos.move[chain, step, 0])]
        assert record["swap_proposed"] == trace.infos.swap_proposed[chain, step].tolist()
        assert record["swap_accepted"] == trace.infos.swap_accepted[chain, step].tolist()
        assert len(record["swap_accepted"]) == NUM_REPLICAS - 1
    # Swaps happen, not always: the ladder is doing something.
    accepted = [a for r in records for a, p in zip(r["swap_accepted"], r["swap_proposed"]) if p]
    assert 0 < np.mean(accepted) < 1


def test_an_interrupted_run_resumed_equals_an_uninterrupted_one(tmp_path, oracle):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert generate.execute(_args(whole, "pt", *OPTIONS, "--keep-every", "2"), causal_lm=oracle) == 0
    assert generate.execute(_args(cut, "pt", *OPTIONS, "--keep-every", "2"), causal_lm=oracle,
                            interrupt_after_step=5) == 130
    partial = (cut / "samples.jsonl").read_text()
    assert 0 < len(partial) < len((whole / "samples.jsonl").read_text())
    (cut / "samples.jsonl").write_text(partial + partial.splitlines(keepends=True)[0][:20])  # a cut last line
    assert generate.execute(_args(cut, "pt", *OPTIONS, "--keep-every", "2", "--resume"), causal_lm=oracle) == 0
    assert (cut / "samples.jsonl").read_bytes() == (whole / "samples.jsonl").read_bytes()
    assert (cut / "mixing.json").read_bytes() == (whole / "mixing.json").read_bytes()


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda replicas: replicas[:-1], "'replicas' must list --num-replicas"),
        (lambda replicas: [replicas[0] + [10_000]] + replicas[1:], "not below the model's vocabulary size"),
        (lambda replicas: [replicas[0] + [1] * 20] + replicas[1:], "more than --max-length"),
        (lambda replicas: [["t1"]] + replicas[1:], "a replica is not a list of token ids"),
    ],
)
def test_resume_refuses_damaged_replicas_naming_the_record(tmp_path, oracle, damage, match):
    assert generate.execute(_args(tmp_path, "pt", *OPTIONS), causal_lm=oracle, interrupt_after_step=2) == 130
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    record = json.loads(lines[1])
    record["replicas"] = damage(record["replicas"])
    lines[1] = json.dumps(record)
    (tmp_path / "samples.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(generate.DamagedSamplesError, match=match):
        generate.execute(_args(tmp_path, "pt", *OPTIONS, "--resume"), causal_lm=oracle)


@pytest.mark.parametrize(
    "sampler, extra, match",
    [
        ("pt", ["--keywords", "t1", "--num-replicas", "1"], "--num-replicas must be an integer >= 2"),
        ("pt", ["--keywords", "t1", "--max-temperature", "1"], "--max-temperature must be a finite number > 1"),
        ("pt", ["--keywords", "t1", "--max-temperature", "inf"], "--max-temperature must be a finite number > 1"),
        ("cgmh", ["--keywords", "t1", "--num-replicas", "3"], "--num-replicas is used by --sampler pt only"),
        ("anneal", ["--keywords", "t1", "--max-temperature", "3"], "--max-temperature is used by --sampler pt only"),
        ("pt", [], "give at least one"),
    ],
)
def test_bad_tempering_options_are_refused_naming_the_flag(tmp_path, sampler, extra, match):
    with pytest.raises(ValueError, match=match):
        generate._check_settings(_args(tmp_path / "out", sampler, *extra))
    assert not (tmp_path / "out").exists()


def test_pt_with_king_and_crown_on_the_builtin_model_runs_and_resumes_byte_for_byte(tmp_path, capsys):
    """The HF model keeps float32 scores: the resumed replicas get theirs from the file, not by rescoring."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    argv = ["generate", "--sampler", "pt", "--keywords", "king,crown", "--num-chains", "2", "--num-steps", "4",
            "--max-length", "8", "--num-candidates", "4", "--num-replicas", "2", "--no-progress"]
    assert cli.main([*argv, "--output", str(whole)]) == 0
    records = _lines(whole)
    assert len(records) == 2 * 4
    for record in records:
        assert "king" in record["text"] and "crown" in record["text"]
        assert len(record["replicas"]) == 2 and record["tokens"] == record["replicas"][0]
        assert len(record["swap_accepted"]) == 1
    assert json.loads((whole / "run.json").read_text())["num_replicas"] == 2
    assert "mixing report:" in capsys.readouterr().out

    from textsampling.lm.loading import load_causal_lm

    causal_lm = load_causal_lm()
    options = ["--keywords", "king,crown", "--num-replicas", "2", "--max-length", "8"]
    args = _args(cut, "pt", *options)
    args.num_chains, args.num_steps = 2, 4
    assert generate.execute(args, causal_lm=causal_lm, interrupt_after_step=1) == 130
    args = _args(cut, "pt", *options, "--resume")
    args.num_chains, args.num_steps = 2, 4
    assert generate.execute(args, causal_lm=causal_lm) == 0
    assert (cut / "samples.jsonl").read_bytes() == (whole / "samples.jsonl").read_bytes()
