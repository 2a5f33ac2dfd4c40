"""`textsampling generate --sampler smc`: the files equal the reference SMC run by run, the same seed writes
the same bytes, bad options are one clear line before any model loads, and show / evaluate read the run.

Most tests run on the exact bigram oracle (fast); one runs the command line on the built-in tiny GPT-2.
"""

import json

import numpy as np
import pytest

from textsampling import cli
from textsampling.cli import evaluate, generate, particles, show
from textsampling.lm.oracle import BigramOracle
from textsampling.randomness import CounterGenerator
from textsampling.reference import smc
from textsampling.targets import BigramLM

NUM_PARTICLES, NUM_RUNS, MAX_LENGTH, SEED = 5, 3, 5, 7


@pytest.fixture(scope="module")
def oracle():
    rng = np.random.default_rng(0)
    return BigramOracle(BigramLM(rng.normal(size=6), rng.normal(size=(6, 7)), 8))


def _args(output, *extra, keywords="t1,t2"):
    argv = ["--sampler", "smc", "--keywords", keywords, "--num-particles", str(NUM_PARTICLES), "--num-runs",
            str(NUM_RUNS), "--max-length", str(MAX_LENGTH), "--seed", str(SEED), "--no-progress", *extra]
    if output is not None:
        argv += ["--output", str(output)]
    return generate.build_parser().parse_args(argv)


def _records(folder):
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("proposal, ess_threshold", [("guided", "0.5"), ("bootstrap", "1")])
def test_each_run_is_the_reference_smc_run_decision_by_decision(tmp_path, oracle, proposal, ess_threshold, capsys):
    args = _args(tmp_path, "--proposal", proposal, "--ess-threshold", ess_threshold)
    assert generate.execute(args, causal_lm=oracle) == 0
    records = _records(tmp_path)
    summary = json.loads((tmp_path / "smc.json").read_text())
    assert len(records) == NUM_RUNS * NUM_PARTICLES and len(summary["runs"]) == NUM_RUNS
    potential = smc.KeywordPotential.for_model(oracle, ["t1", "t2"], MAX_LENGTH)
    log_z = []
    for run in range(NUM_RUNS):
        trace = smc.sample(CounterGenerator(SEED, run), smc.empty_prefixes(NUM_PARTICLES, MAX_LENGTH), oracle,
                           potential, MAX_LENGTH + 1, proposal=proposal, ess_threshold=float(ess_threshold))
        final = trace.final_state
        mine = [r for r in records if r["run"] == run]
        assert [r["particle"] for r in mine] == list(range(NUM_PARTICLES))
        assert [r["chain"] for r in mine] == [run * NUM_PARTICLES + n for n in range(NUM_PARTICLES)]
        assert all(r["step"] == MAX_LENGTH for r in mine)
        for n, record in enumerate(mine):
            assert record["tokens"] == [int(t) for t in final.x[n] if t >= 0]
            assert record["text"] == (oracle.decode(final.x[n][final.x[n] >= 0]) if record["tokens"] else "")
            if final.log_weight[n] == -np.inf:
                assert record["log_weight"] is None
            else:
                assert record["log_weight"] == pytest.approx(final.log_weight[n], abs=1e-12)
            assert record["satisfied"] == ({1, 2} <= set(record["tokens"]))
            assert record["keywords_present"] == [w for w in ("t1", "t2") if int(w[1:]) in record["tokens"]]
        ran = summary["runs"][run]
        if np.all(final.log_weight == -np.inf):  # Z-hat = 0 (the bootstrap proposal's dead ends): null, not NaN
            assert all(r["weight"] is None for r in mine) and ran["log_evidence"] is None
            assert ran["final_ess"] == 0.0
        else:
            weights = np.array([r["weight"] for r in mine])
            np.testing.assert_allclose(weights, np.exp(final.log_weight - np.logaddexp.reduce(final.log_weight)),
                                       atol=1e-12)
            assert ran["log_evidence"] == pytest.approx(trace.infos.log_evidence[-1], abs=1e-12)
        np.testing.assert_allclose(ran["ess"], trace.infos.ess, atol=1e-9)
        assert ran["resampled_steps"] == np.flatnonzero(trace.infos.resampled).tolist()
        assert ran["num_resampling_steps"] == int(trace.infos.resampled.sum())
        # the model ran once per particle unfinished after each step's resampling
        finished_before = np.concatenate([np.zeros((1, NUM_PARTICLES), bool), trace.states.finished[:-1]])
        unfinished = ~np.take_along_axis(finished_before, trace.infos.ancestors, axis=1)
        assert ran["evaluations"] == int(unfinished.sum())
        log_z.append(trace.infos.log_evidence[-1])
    log_z = np.array(log_z)
    assert summary["log_evidence_pooled"] == pytest.approx(np.logaddexp.reduce(log_z) - np.log(NUM_RUNS), abs=1e-12)
    if np.all(np.isfinite(log_z)):
        assert summary["log_evidence_variance"] == pytest.approx(np.var(log_z, ddof=1), abs=1e-12)
    else:
        assert summary["log_evidence_variance"] is None
    assert summary["fraction_satisfied"] == np.mean([r["satisfied"] for r in records])
    out = capsys.readouterr().out
    assert "run 0: log Z-hat = " + (f"{log_z[0]:.4f}" if np.isfinite(log_z[0]) else "-inf") in out
    assert "distinct sentences among" in out


def test_the_same_seed_writes_the_same_files_and_another_seed_others(tmp_path, oracle):
    first, second, other = tmp_path / "first", tmp_path / "second", tmp_path / "other"
    assert generate.execute(_args(first), causal_lm=oracle) == 0
    assert generate.execute(_args(second), causal_lm=oracle) == 0
    for name in ("samples.jsonl", "smc.json", "run.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    args = _args(other)
    args.seed = SEED + 1
    assert generate.execute(args, causal_lm=oracle) == 0
    assert (other / "samples.jsonl").read_bytes() != (first / "samples.jsonl").read_bytes()


def test_the_settings_are_in_run_json(tmp_path, oracle):
    generate.execute(_args(tmp_path, "--proposal", "bootstrap"), causal_lm=oracle)
    settings = json.loads((tmp_path / "run.json").read_text())
    assert settings["sampler"] == "smc" and settings["keywords"] == "t1,t2" and settings["seed"] == SEED
    assert (settings["num_particles"], settings["num_runs"], settings["proposal"], settings["ess_threshold"]) == (
        NUM_PARTICLES, NUM_RUNS, "bootstrap", 0.5)
    assert settings["num_steps"] == MAX_LENGTH + 1 and settings["scheme"] == particles.SCHEME


def test_show_and_evaluate_read_an_smc_run(tmp_path, oracle, capsys):
    generate.execute(_args(tmp_path), causal_lm=oracle)
    records, _, skipped = show.read_samples(tmp_path)
    assert len(records) == NUM_RUNS * NUM_PARTICLES and not skipped
    assert show.select(records) == list(range(len(records)))  # one record per chain: every particle is shown
    capsys.readouterr()
    assert cli.main(["show", str(tmp_path), "--width", "0"]) == 0
    table = capsys.readouterr().out
    assert "sampler smc" in table and all(record["text"] in table for record in records)
    texts = evaluate.read_texts(tmp_path / "samples.jsonl")  # every particle's text, the weights ignored
    assert texts == [record["text"] for record in records]


def test_an_interrupted_run_keeps_nothing(tmp_path, oracle, capsys):
    folder = tmp_path / "run"
    assert generate.execute(_args(folder), causal_lm=oracle, interrupt_after_step=2) == 130
    assert not folder.exists()
    assert "nothing was kept" in capsys.readouterr().err
    assert generate.execute(_args(folder), causal_lm=oracle) == 0  # the same command then runs


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--num-particles", "0"], "--num-particles must be an integer >= 1, got 0"),
        (["--num-runs", "0"], "--num-runs must be an integer >= 1, got 0"),
        (["--ess-threshold", "1.5"], r"--ess-threshold must lie in \[0, 1\]"),
        (["--ess-threshold", "-0.1"], r"--ess-threshold must lie in \[0, 1\]"),
        (["--num-chains", "4"], "--num-chains is not used by --sampler smc"),
        (["--num-steps", "4"], "--num-steps is used by"),
        (["--temperature", "2"], "--temperature is used by"),
        (["--resume"], "--resume: a --sampler smc run cannot be resumed"),
    ],
)
def test_bad_options_are_one_line_naming_the_flag_before_any_model_loads(tmp_path, argv, match, capsys, monkeypatch):
    monkeypatch.setattr(generate, "load_models", lambda args: pytest.fail("loaded a model before refusing"))
    with pytest.raises(ValueError, match=match):
        generate._check_settings(_args(tmp_path / "run", *argv))
    full = ["generate", "--sampler", "smc", "--keywords", "king", "--no-progress", "--output", str(tmp_path / "run"),
            *argv]
    assert cli.main(full) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "error:" in err
    assert not (tmp_path / "run" / "samples.jsonl").exists()


def test_smc_needs_keywords_and_its_options_are_refused_elsewhere(tmp_path):
    with pytest.raises(ValueError, match="--sampler smc builds sentences around --keywords"):
        generate._check_settings(_args(tmp_path, keywords=""))
    for sampler, flag, value in [("gibbs", "--num-particles", "8"), ("cgmh", "--proposal", "bootstrap"),
                                 ("ancestral", "--num-runs", "2"), ("mh", "--ess-threshold", "0.3")]:
        args = generate.build_parser().parse_args(["--sampler", sampler, flag, value, "--keywords", "t1"])
        with pytest.raises(ValueError, match=f"{flag} is used by --sampler smc only"):
            generate._check_settings(args)


def test_summary_across_runs_in_log_space():
    log_z = np.array([-1000.0, -1001.0, -1002.5])  # exp underflows: only log-space code gets these right
    summary = particles.summarise_runs(log_z)
    assert summary["log_evidence_pooled"] == pytest.approx(np.logaddexp.reduce(log_z) - np.log(3), abs=1e-12)
    assert summary["log_evidence_variance"] == pytest.approx(np.var(log_z, ddof=1), abs=1e-12)
    ratios = np.exp(log_z - summary["log_evidence_pooled"])
    assert summary["relative_evidence_variance"] == pytest.approx(np.var(ratios, ddof=1), abs=1e-12)
    with_zero = particles.summarise_runs(np.array([-2.0, -np.inf]))  # a run with Z-hat = 0 still counts
    assert with_zero["log_evidence_pooled"] == pytest.approx(-2.0 - np.log(2), abs=1e-12)
    assert with_zero["log_evidence_variance"] is None and with_zero["relative_evidence_variance"] == 2.0
    assert particles.summarise_runs(np.array([-np.inf, -np.inf]))["log_evidence_pooled"] is None
    single = particles.summarise_runs(np.array([-3.0]))
    assert single == {"log_evidence_pooled": -3.0, "log_evidence_variance": None, "relative_evidence_variance": None}


def test_the_command_line_on_the_built_in_gpt2_equals_the_twin(tmp_path, capsys):
    """The built-in tiny GPT-2, as a user runs it; the files are the torch twin's run, particle by particle."""
    import torch

    from textsampling.lm.loading import load_causal_lm
    from textsampling.torch import smc as smc_twin
    from textsampling.torch.randomness import CounterGenerator as TorchCounterGenerator

    folder = tmp_path / "gpt2"
    argv = ["generate", "--sampler", "smc", "--keywords", "king,crown", "--num-particles", "4", "--num-runs", "2",
            "--max-length", "6", "--seed", "3", "--no-progress", "--output", str(folder)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "run 1: log Z-hat = " in out and "written to" in out
    records = _records(folder)
    summary = json.loads((folder / "smc.json").read_text())
    model = load_causal_lm("tiny-shakespeare")
    potential = smc.KeywordPotential.for_model(model, ["king", "crown"], 6)
    trace = smc_twin.sample(TorchCounterGenerator(3, torch.arange(2)), smc_twin.empty_prefixes_torch(2, 4, 6), model,
                            potential, 7, proposal="guided", ess_threshold=0.5, dtype=torch.float64)
    final = trace.final_state
    for record in records:
        row = final.x[record["run"], record["particle"]].numpy()
        assert record["tokens"] == [int(t) for t in row if t >= 0]
        assert record["log_weight"] == pytest.approx(float(final.log_weight[record["run"], record["particle"]]),
                                                     abs=1e-9)
    for run in range(2):
        assert summary["runs"][run]["log_evidence"] == pytest.approx(float(trace.infos.log_evidence[run, -1]), abs=1e-9)
        assert sum(r["weight"] for r in records if r["run"] == run) == pytest.approx(1.0, abs=1e-12)
