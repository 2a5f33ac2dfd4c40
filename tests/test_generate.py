"""`textsampling generate` end to end: every sampler on the bigram oracle, interrupted runs resumed to the
same bytes, clear errors before any sampling, and the command line on the built-in tiny models."""

import json
import re

import numpy as np
import pytest

from textsampling import cli
from textsampling.cli import generate
from textsampling.lm import loading
from textsampling.lm.oracle import BigramOracle
from textsampling.targets import BigramLM

NUM_CHAINS, NUM_STEPS = 3, 12


@pytest.fixture(scope="module")
def oracle():
    rng = np.random.default_rng(0)
    return BigramOracle(BigramLM(rng.normal(size=6), rng.normal(size=(6, 7)), 8))


def _args(output, sampler, *extra):
    """Small settings: only the options ``sampler`` uses (any other is refused)."""
    argv = ["--sampler", sampler, "--max-length", "6", "--no-progress", *extra]
    if output is not None:
        argv += ["--output", str(output)]
    if sampler in generate.PARTICLE_SAMPLERS:
        argv += ["--num-particles", str(NUM_CHAINS)]
    elif sampler not in generate.SINGLE_SENTENCE_SAMPLERS:
        argv += ["--num-chains", str(NUM_CHAINS)]
    if sampler in generate.MCMC_SAMPLERS:
        argv += ["--num-steps", str(NUM_STEPS)]
    if sampler in generate.MASKED_SAMPLERS:
        argv += ["--min-length", "2"]
    if sampler in generate.KEYWORD_SAMPLERS:
        argv += ["--num-candidates", "4"]
    return generate.build_parser().parse_args(argv)


def _lines(folder):
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


SAMPLER_OPTIONS = {
    "gibbs": ["--scan", "systematic"], "mh": ["--energy", "raw_logit"], "cgmh": ["--keywords", "t2,t4"],
    "anneal": ["--keywords", "t1"], "smc": ["--keywords", "t1"],
    "pt": ["--keywords", "t2,t4", "--num-replicas", "3", "--max-temperature", "5"],
    "ancestral": [], "topk": ["--top-k", "3"], "topp": [], "greedy": [], "beam": [],
}


@pytest.mark.parametrize("sampler", generate.MCMC_SAMPLERS + generate.DECODING_SAMPLERS)
def test_every_sampler_writes_its_samples_and_metrics(tmp_path, oracle, sampler, capsys):
    args = _args(tmp_path, sampler, *SAMPLER_OPTIONS[sampler])
    assert generate.execute(args, masked_lm=oracle, causal_lm=oracle) == 0
    lines = _lines(tmp_path)
    if sampler in generate.DECODING_SAMPLERS:
        assert len(lines) == (1 if sampler in generate.SINGLE_SENTENCE_SAMPLERS else NUM_CHAINS)
    else:
        assert [(r["step"], r["chain"]) for r in lines] == [(t, c) for t in range(NUM_STEPS) for c in range(NUM_CHAINS)]
    for record in lines:
        assert 0 <= len(record["tokens"]) <= 6 and all(0 <= t < oracle.vocab_size for t in record["tokens"])
        if record["tokens"]:  # a decoder may end a sentence at once (END first): empty text
            assert record["text"] == oracle.decode(np.array(record["tokens"]))
    if sampler in generate.KEYWORD_SAMPLERS:
        keywords = [int(w[1:]) for w in SAMPLER_OPTIONS[sampler][1].split(",")]
        for record in lines:  # every keyword stays (in any order); the locked pieces are keyword tokens
            assert all(k in record["tokens"] for k in keywords)
            assert all(t in keywords for t, p in zip(record["tokens"], record["protected"]) if p)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["num_sentences"] == (1 if sampler in generate.SINGLE_SENTENCE_SAMPLERS else NUM_CHAINS)
    assert 0 < metrics["distinct_1"] <= 1
    if sampler not in generate.DECODING_SAMPLERS:  # complete sentences: perplexity under the oracle
        assert metrics["perplexity"] > 1
    assert "metrics:" in capsys.readouterr().out


@pytest.mark.parametrize("sampler", ["gibbs", "mh", "cgmh", "anneal"])
def test_interrupted_run_resumed_equals_an_uninterrupted_one(tmp_path, oracle, sampler):
    options = SAMPLER_OPTIONS[sampler] + ["--keep-every", "2"] * (sampler == "cgmh")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert generate.execute(_args(whole, sampler, *options), masked_lm=oracle, causal_lm=oracle) == 0
    status = generate.execute(_args(cut, sampler, *options), masked_lm=oracle, causal_lm=oracle, interrupt_after_step=6)
    assert status == 130 and not (cut / "metrics.json").exists()
    partial = (cut / "samples.jsonl").read_text()
    assert 0 < len(partial) < len((whole / "samples.jsonl").read_text())
    # The interruption may also land in the middle of a step and of a line: simulate both (the next record
    # of the step after, with a changed sentence that the resumed run must redo, and half a line).
    following = (whole / "samples.jsonl").read_text().splitlines(keepends=True)[partial.count("\n"):]
    started = json.loads(following[0])
    assert started["chain"] == 0
    started["tokens"], started["text"] = [1, 2], "t1 t2"
    (cut / "samples.jsonl").write_text(partial + json.dumps(started) + "\n" + following[1][:12])
    assert generate.execute(_args(cut, sampler, *options, "--resume"), masked_lm=oracle, causal_lm=oracle) == 0
    assert (cut / "samples.jsonl").read_bytes() == (whole / "samples.jsonl").read_bytes()
    assert json.loads((cut / "metrics.json").read_text()) == json.loads((whole / "metrics.json").read_text())
    assert (cut / "mixing.json").read_bytes() == (whole / "mixing.json").read_bytes()  # from the file: whole run's


def test_resumed_decoding_skips_finished_sentences(tmp_path, oracle):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    generate.execute(_args(whole, "topp"), causal_lm=oracle)
    generate.execute(_args(cut, "topp"), causal_lm=oracle)
    lines = (cut / "samples.jsonl").read_text().splitlines(keepends=True)
    (cut / "samples.jsonl").write_text(lines[0] + lines[1][:10])
    generate.execute(_args(cut, "topp", "--resume"), causal_lm=oracle)
    assert (cut / "samples.jsonl").read_text() == (whole / "samples.jsonl").read_text()


@pytest.mark.parametrize(
    "sampler, extra, match",
    [
        ("cgmh", ["--keywords", "t1,crown"], "cannot be represented"),
        ("cgmh", ["--keywords", "t1,t2,t3,t4,t5,t0,t1"], "more than --max-length"),
        ("gibbs", ["--max-length", "9"], "over the model's maximum"),
        ("gibbs", ["--keywords", "t1"], "--keywords is used by"),
        ("cgmh", [], "give at least one"),
        ("gibbs", ["--length", "7"], "--length must lie"),
        ("topp", ["--top-p", "1.5"], "--top-p"),
    ],
)
def test_bad_input_is_refused_before_sampling(tmp_path, oracle, sampler, extra, match):
    args = _args(tmp_path / "out", sampler, *extra)
    with pytest.raises(ValueError, match=match):
        generate.execute(args, masked_lm=oracle, causal_lm=oracle)
    assert not (tmp_path / "out" / "samples.jsonl").exists()  # nothing was sampled


def test_resume_refuses_other_settings_and_a_second_run_refuses_the_folder(tmp_path, oracle):
    generate.execute(_args(tmp_path, "gibbs"), masked_lm=oracle)
    with pytest.raises(FileExistsError, match="--resume"):
        generate.execute(_args(tmp_path, "gibbs"), masked_lm=oracle)
    with pytest.raises(ValueError, match="seed"):
        generate.execute(_args(tmp_path, "gibbs", "--seed", "5", "--resume"), masked_lm=oracle)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        generate.execute(_args(tmp_path / "empty", "gibbs", "--resume"), masked_lm=oracle)


def test_resume_of_a_run_made_before_an_option_existed_takes_the_option_default(tmp_path, oracle):
    """A run.json without a later option's key resumes when the option is left at its default, not otherwise."""
    full = _args(tmp_path / "full", "gibbs")
    generate.execute(full, masked_lm=oracle)
    cut = tmp_path / "cut"
    assert generate.execute(_args(cut, "gibbs"), masked_lm=oracle, interrupt_after_step=6) == 130
    settings = json.loads((cut / "run.json").read_text())
    for later in ("keep_every", "num_replicas", "max_temperature", "num_particles"):  # options added later
        del settings[later]
    (cut / "run.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="keep_every: 1 then, 2 now"):
        generate.execute(_args(cut, "gibbs", "--keep-every", "2", "--resume"), masked_lm=oracle)
    assert generate.execute(_args(cut, "gibbs", "--resume"), masked_lm=oracle) == 0
    assert _lines(cut) == _lines(tmp_path / "full")


# ----------------------------------------------------------------------------- the command line, real models
def test_command_line_errors_are_one_line_before_sampling(tmp_path, capsys):
    clm_folder = loading.MODELS_DIR / "tiny-shakespeare" / "clm"
    cases = [
        (["--sampler", "gibbs", "--model", ""], "empty"),
        (["--sampler", "gibbs", "--model", str(clm_folder)], "masked LM is needed"),
        (["--sampler", "cgmh", "--keywords", "king,crown", "--max-length", "100000"], "over the model's maximum"),
    ]
    for argv, match in cases:
        status = cli.main(["generate", *argv, "--output", str(tmp_path / "out"), "--no-progress"])
        assert status == 2 and match in capsys.readouterr().err
        assert not (tmp_path / "out" / "samples.jsonl").exists()


def test_command_line_runs_gibbs_and_cgmh_on_the_builtin_model(tmp_path, capsys):
    gibbs = ["generate", "--sampler", "gibbs", "--num-chains", "2", "--num-steps", "4", "--max-length", "8",
             "--output", str(tmp_path / "gibbs"), "--no-progress"]
    assert cli.main(gibbs) == 0
    cgmh = ["generate", "--sampler", "cgmh", "--keywords", "king,crown", "--num-chains", "2", "--num-steps", "4",
            "--max-length", "10", "--output", str(tmp_path / "cgmh"), "--no-progress"]
    assert cli.main(cgmh) == 0
    for record in _lines(tmp_path / "cgmh"):
        assert "king" in record["text"] and "crown" in record["text"]
    assert json.loads((tmp_path / "gibbs" / "metrics.json").read_text())["num_sentences"] == 2


def test_resume_is_byte_identical_on_the_builtin_float32_model(tmp_path):
    """The HF path keeps float32 scores: the resumed run restores them from the file, not by rescoring
    (a rescoring in another batch could differ in the last bit and flip an accept decision)."""
    from textsampling.lm.loading import load_causal_lm

    causal_lm = load_causal_lm()
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    options = ["--num-steps", "5", "--max-length", "8", "--num-candidates", "4", "--keywords", "king,crown"]
    assert generate.execute(_args(whole, "cgmh", *options), causal_lm=causal_lm) == 0
    assert generate.execute(_args(cut, "cgmh", *options), causal_lm=causal_lm, interrupt_after_step=2) == 130
    assert generate.execute(_args(cut, "cgmh", *options, "--resume"), causal_lm=causal_lm) == 0
    assert (cut / "samples.jsonl").read_bytes() == (whole / "samples.jsonl").read_bytes()


def test_a_keyword_of_several_word_pieces_stays_whole_in_every_printed_sentence(tmp_path):
    """"usurper" is two pieces of the built-in tokenizer (usurp ##er): no insert lands between them, no
    piece is replaced, and every decoded sentence holds the word (generate checks the text too)."""
    from textsampling.lm.keywords import keyword_units
    from textsampling.lm.loading import load_causal_lm

    model = load_causal_lm("tiny-shakespeare")
    assert len(keyword_units(model, ["usurper"])[0]) == 2
    folder = tmp_path / "usurper"
    command = ["generate", "--sampler", "cgmh", "--keywords", "usurper,king", "--num-chains", "4", "--num-steps", "30",
               "--max-length", "10", "--output", str(folder), "--no-progress"]
    assert cli.main(command) == 0
    lines = _lines(folder)
    assert len({record["text"] for record in lines}) > 4  # the chains moved
    for record in lines:
        words = re.findall(r"[\w']+", record["text"])
        assert "usurper" in words and "king" in words, record["text"]


def test_a_sentence_without_its_keyword_is_never_written(tmp_path, oracle):
    """The text check of generate: a state that lost a keyword (a sampler bug) stops the run."""
    import io

    import torch

    output = io.StringIO()
    generate._write_step(output, 0, torch.tensor([[2, 4, -1]]), oracle, {}, ["t2", "t4"])
    with pytest.raises(RuntimeError, match="without the keyword"):
        generate._write_step(output, 1, torch.tensor([[2, 3, -1]]), oracle, {}, ["t2", "t4"])
    assert output.getvalue().count("\n") == 1


# ----------------------------------------------------------------------------- a fresh folder per run
def test_default_folder_is_named_by_sampler_and_time():
    when = generate.datetime(2026, 1, 2, 3, 4, 5)
    assert generate.default_output("gibbs", now=when) == generate.Path("runs") / "gibbs-20260102-030405"


def test_runs_without_output_never_collide(tmp_path, oracle, monkeypatch, capsys):
    """The same command twice in the same second: two complete runs, the second in name-2 (no clock read)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(generate, "default_output", lambda sampler: generate.Path("runs") / f"{sampler}-same-second")
    for _ in range(2):
        assert generate.execute(_args(None, "cgmh", "--keywords", "t2"), causal_lm=oracle) == 0
    first, second = tmp_path / "runs" / "cgmh-same-second", tmp_path / "runs" / "cgmh-same-second-2"
    out = capsys.readouterr().out
    assert out.startswith("textsampling generate: writing to runs/cgmh-same-second\n")
    assert "writing to runs/cgmh-same-second-2\n" in out
    assert (first / "samples.jsonl").read_bytes() == (second / "samples.jsonl").read_bytes()  # same seed
    assert (first / "metrics.json").is_file() and (second / "metrics.json").is_file()


def test_resume_needs_output():
    with pytest.raises(ValueError, match="--resume continues the run in --output"):
        generate._check_settings(_args(None, "gibbs", "--resume"))


# ----------------------------------------------------------------------------- options checked before loading
@pytest.mark.parametrize(
    "sampler, extra, match",
    [
        ("gibbs", ["--top-p", "0.5"], "--top-p is used by --sampler topp only"),
        ("topp", ["--num-steps", "5"], "--num-steps is used by"),
        ("cgmh", ["--keywords", "t1", "--energy", "raw_logit"], "--energy is used by --sampler mh only"),
        ("beam", ["--num-chains", "4"], "returns one sentence.*--num-chains must be 1"),
        ("greedy", ["--num-chains", "2"], "returns one sentence"),
        ("ancestral", ["--temperature", "0"], "--temperature must be a finite number > 0"),
        ("topk", ["--top-k", "0"], "--top-k must be an integer >= 1"),
        ("gibbs", ["--device", "tpu"], "--device 'tpu' is not a device"),
        ("gibbs", ["--device", "cuda:7"], "--device cuda:7"),
    ],
)
def test_bad_options_are_refused_before_any_model_loads(sampler, extra, match, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only torch, even on a GPU box
    with pytest.raises(ValueError, match=match):
        generate._check_settings(_args(tmp_path / "out", sampler, *extra))
    assert not (tmp_path / "out").exists()


def test_command_line_refuses_before_loading_and_in_one_line(tmp_path, monkeypatch, capsys):
    """Device, options, keywords, lengths: exit status 2, one line, no traceback, no model weights loaded."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(generate, "load_models", lambda args: pytest.fail("loaded a model before refusing"))
    monkeypatch.chdir(tmp_path)
    cases = [
        (["--sampler", "gibbs", "--device", "cuda"], "cannot use CUDA here"),
        (["--sampler", "gibbs", "--device", "tpu"], "is not a device"),
        (["--sampler", "beam", "--num-chains", "4"], "returns one sentence"),
        (["--sampler", "cgmh", "--keywords", "king,\u2603"], "cannot be represented"),
        (["--sampler", "cgmh", "--keywords", "king", "--max-length", "100000"], "over the model's maximum"),
        (["--sampler", "gibbs", "--resume"], "--resume continues the run in --output"),
    ]
    for argv, match in cases:
        assert cli.main(["generate", *argv, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # no folder claimed for a refused run


def test_ctrl_c_while_loading_ends_quietly_and_leaves_no_empty_run(tmp_path, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(generate, "load_models", interrupted)
    assert cli.main(["generate", "--sampler", "gibbs", "--no-progress"]) == 130
    captured = capsys.readouterr()
    assert "interrupted" in captured.err and "Traceback" not in captured.err
    assert list((tmp_path / "runs").iterdir()) == []


def test_ctrl_c_while_importing_ends_quietly(monkeypatch, capsys):
    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)
    assert cli.main(["generate", "--sampler", "gibbs"]) == 130
    assert capsys.readouterr().err.strip() == "textsampling generate: interrupted"


def test_ctrl_c_while_sampling_keeps_the_samples_through_the_command_line(tmp_path, oracle, monkeypatch, capsys):
    real_execute = generate.execute
    monkeypatch.setattr(generate, "load_models", lambda args: (oracle, oracle))
    monkeypatch.setattr(generate, "_check_model_before_loading", lambda args: None)  # the oracle has no checkpoint
    monkeypatch.setattr(
        generate, "execute", lambda args, **models: real_execute(args, interrupt_after_step=3, **models)
    )
    argv = ["generate", "--sampler", "gibbs", "--num-chains", "3", "--num-steps", "9", "--max-length", "6",
            "--output", str(tmp_path / "run"), "--no-progress"]
    assert cli.main(argv) == 130
    assert "Traceback" not in capsys.readouterr().err
    assert [json.loads(line)["step"] for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()] == [
        step for step in range(4) for _ in range(3)]


# ----------------------------------------------------------------------------- what a run says
def test_greedy_and_beam_say_they_return_one_sentence(tmp_path, oracle, capsys):
    for sampler in ("greedy", "beam"):
        assert generate.execute(_args(tmp_path / sampler, sampler), causal_lm=oracle) == 0
        assert "returns one sentence" in capsys.readouterr().out
        assert len(_lines(tmp_path / sampler)) == 1


def test_greedy_takes_the_most_probable_token_each_time(tmp_path, oracle):
    generate.execute(_args(tmp_path, "greedy"), causal_lm=oracle)
    (record,) = _lines(tmp_path)
    prefix = np.full((1, 6), -1)
    for position, token in enumerate(record["tokens"] + ([] if record["truncated"] else [oracle.end_token_id])):
        row = oracle.next_token_log_probs(prefix)[0]
        row[[t for t in oracle.special_token_ids if t != oracle.end_token_id]] = -np.inf
        assert token == int(np.argmax(row))
        if position < 6 and token != oracle.end_token_id:
            prefix[0, position] = token


def test_truncated_sentences_are_marked_in_the_record_and_the_printout(tmp_path, oracle, capsys):
    # --max-length 2 cuts some sentences of this bigram and not others (seed 0; the first assert below checks
    # that the test sees both kinds)
    args = generate.build_parser().parse_args(["--sampler", "ancestral", "--num-chains", "8", "--max-length", "2",
                                               "--output", str(tmp_path), "--no-progress"])
    assert generate.execute(args, causal_lm=oracle) == 0
    out = capsys.readouterr().out
    records = _lines(tmp_path)
    assert {r["truncated"] for r in records} == {True, False}
    for record in records:
        assert record["truncated"] == (not record["ended"])
        assert record["truncated"] == (len(record["tokens"]) == 2 and not record["ended"])
        marker = f"[{record['chain']}] {record['text']} [truncated]"
        assert (marker in out) == record["truncated"]
    assert json.loads((tmp_path / "metrics.json").read_text())["num_truncated"] == sum(r["truncated"] for r in records)


@pytest.mark.parametrize("sampler, score", [("mh", "energy"), ("cgmh", "log_prob")])
def test_the_summary_prints_the_acceptance_rate_and_score_of_the_file(tmp_path, oracle, sampler, score, capsys):
    generate.execute(_args(tmp_path, sampler, *SAMPLER_OPTIONS[sampler]), masked_lm=oracle, causal_lm=oracle)
    records = _lines(tmp_path)
    rate = np.mean([r["accepted"] for r in records])
    last = [r[score] for r in records if r["step"] == NUM_STEPS - 1]
    name = "energy" if sampler == "mh" else "log rho"
    out = capsys.readouterr().out
    assert f"acceptance rate {rate:.3f} over the {NUM_STEPS * NUM_CHAINS} chain-steps run now" in out
    assert f"mean {name} of the chains' last sentences {np.mean(last):.3f}" in out


def test_progress_postfix_shows_acceptance_and_score():
    import torch

    statistics = generate._RunningStatistics("cgmh")
    statistics.update(torch.tensor([True, False, False, True]), torch.tensor([-3.0, -5.0, -4.0, -4.0]))
    statistics.update(torch.tensor([True, True, False, True]), torch.tensor([-1.0, -2.0, -3.0, -2.0]))
    assert statistics.postfix() == "accept=0.625 log rho=-2.00"


# ----------------------------------------------------------------------------- --resume refuses damage
def _damaged_run(tmp_path, oracle, damage):
    """A cgmh run cut after step 5, its samples file then damaged by ``damage(lines) -> lines``."""
    folder = tmp_path / "run"
    generate.execute(_args(folder, "cgmh", "--keywords", "t2"), causal_lm=oracle, interrupt_after_step=5)
    lines = (folder / "samples.jsonl").read_text().splitlines(keepends=True)
    assert len(lines) == 6 * NUM_CHAINS
    (folder / "samples.jsonl").write_text("".join(damage(lines)))
    return folder


def _without_tokens(line):
    record = json.loads(line)
    del record["tokens"]
    return json.dumps(record) + "\n"


DAMAGE = {
    "deleted": (lambda lines: lines[:7] + lines[8:], 8, "expected step 2 chain 1, found step 2 chain 2"),
    "duplicated": (
        lambda lines: lines[:8] + lines[7:], 9, "expected step 2 chain 2, found step 2 chain 1 \\(a duplicate"
    ),
    "swapped": (
        lambda lines: lines[:3] + [lines[4], lines[3]] + lines[5:], 4, "expected step 1 chain 0, found step 1 chain 1"
    ),
    "no tokens": (lambda lines: lines[:10] + [_without_tokens(lines[10])] + lines[11:], 11, "has no 'tokens'"),
    "not JSON": (lambda lines: lines[:5] + ['{"chain": 2, "st\n'] + lines[6:], 6, "is not valid JSON"),
    "past the end": (lambda lines: lines + [lines[-1]] * 0 + [json.dumps({**json.loads(lines[0]), "step": 99}) + "\n"],
                     19, "expected step 6 chain 0, found step 99 chain 0"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_resume_refuses_a_damaged_samples_file_naming_the_first_bad_line(tmp_path, oracle, kind, capsys, monkeypatch):
    damage, line, match = DAMAGE[kind]
    folder = _damaged_run(tmp_path, oracle, damage)
    before = (folder / "samples.jsonl").read_bytes()
    with pytest.raises(generate.DamagedSamplesError, match=f"samples.jsonl line {line}\\b.*{match}"):
        generate.execute(_args(folder, "cgmh", "--keywords", "t2", "--resume"), causal_lm=oracle)
    assert (folder / "samples.jsonl").read_bytes() == before  # refused: nothing rewritten
    # through the command line: one line, exit status 2, before any model loads
    capsys.readouterr()
    monkeypatch.setattr(generate, "load_models", lambda args: pytest.fail("loaded a model before refusing"))
    argv = ["generate", "--sampler", "cgmh", "--keywords", "t2", "--max-length", "6", "--num-chains", str(NUM_CHAINS),
            "--num-steps", str(NUM_STEPS), "--num-candidates", "4", "--output", str(folder), "--resume",
            "--no-progress"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"line {line}:" in err or f"line {line} is" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (folder / "samples.jsonl").read_bytes() == before


def test_resume_keeps_a_complete_file_and_repairs_only_a_cut_last_line(tmp_path, oracle):
    whole = tmp_path / "whole"
    generate.execute(_args(whole, "cgmh", "--keywords", "t2"), causal_lm=oracle)
    folder = _damaged_run(tmp_path, oracle, lambda lines: lines + [lines[0][:7]])  # cut mid-line, no newline
    assert generate.execute(_args(folder, "cgmh", "--keywords", "t2", "--resume"), causal_lm=oracle) == 0
    assert (folder / "samples.jsonl").read_bytes() == (whole / "samples.jsonl").read_bytes()


def test_every_chain_sampler_runs_through_the_registry_with_no_branch_of_its_own():
    import inspect

    from textsampling.cli.samplers import CHAIN_SAMPLERS

    assert generate.MCMC_SAMPLERS == tuple(CHAIN_SAMPLERS)
    assert set(generate.SAMPLERS) == (set(CHAIN_SAMPLERS) | set(generate.DECODING_SAMPLERS)
                                      | set(generate.PARTICLE_SAMPLERS))
    source = inspect.getsource(generate._run_chains)
    assert "args.sampler ==" not in source and "args.sampler in" not in source, "a branch per sampler"
    for name, sampler in CHAIN_SAMPLERS.items():
        module = sampler.module()
        assert all(callable(getattr(module, function)) for function in ("init", "num_uniforms", "step")), name
        assert sampler.model in ("masked", "causal"), name


# ----------------------------------------------------------------------------- the writes
def test_batched_texts_are_the_texts_of_each_sentence_alone():
    """One batch decode of the built-in tokenizer gives, for every row, the text of that row decoded alone."""
    from textsampling.lm.loading import load_masked_lm

    model = load_masked_lm("tiny-shakespeare")
    rng = np.random.default_rng(5)
    rows = [rng.integers(5, model.vocab_size, size=length).tolist() for length in (3, 0, 8, 1, 16, 0, 5)]
    assert generate._texts(model, rows) == [generate._text(model, row) for row in rows]
    assert generate._texts(model, [[], []]) == ["", ""]


class _CountingWrites:
    def __init__(self):
        self.writes = []

    def write(self, text):
        self.writes.append(text)

    def flush(self):
        pass


def test_a_step_is_one_write_and_a_sentence_is_decoded_only_when_it_changed(oracle):
    import torch

    decoded = []

    class CountingOracle:
        def decode(self, row):
            decoded.append(list(row))
            return oracle.decode(row)

    output = _CountingWrites()
    writer = generate._StepWriter(output, CountingOracle(), chains=range(4, 7))
    writer.write_step(0, torch.tensor([[1, 2, -1], [3, -1, -1], [4, 5, 0]]), {"accepted": torch.tensor([1, 0, 1]) > 0,
                                                                               "temperature": 0.5})
    writer.write_step(1, torch.tensor([[1, 2, -1], [3, 3, -1], [4, 5, 0]]), {"accepted": torch.tensor([0, 1, 0]) > 0,
                                                                               "temperature": 0.25})
    assert decoded == [[1, 2], [3], [4, 5, 0], [3, 3]]  # step 1 decodes the one sentence that changed
    assert len(output.writes) == 2  # one write per step
    lines = "".join(output.writes).splitlines()
    want = [
        {"chain": 4, "step": 0, "tokens": [1, 2], "text": "t1 t2", "accepted": True, "temperature": 0.5},
        {"chain": 5, "step": 0, "tokens": [3], "text": "t3", "accepted": False, "temperature": 0.5},
        {"chain": 6, "step": 0, "tokens": [4, 5, 0], "text": "t4 t5 t0", "accepted": True, "temperature": 0.5},
        {"chain": 4, "step": 1, "tokens": [1, 2], "text": "t1 t2", "accepted": False, "temperature": 0.25},
        {"chain": 5, "step": 1, "tokens": [3, 3], "text": "t3 t3", "accepted": True, "temperature": 0.25},
        {"chain": 6, "step": 1, "tokens": [4, 5, 0], "text": "t4 t5 t0", "accepted": False, "temperature": 0.25},
    ]
    assert lines == [json.dumps(record) for record in want]


def test_resume_refuses_token_ids_the_model_does_not_have_before_rewriting_anything(tmp_path, oracle):
    def foreign_token(lines):  # token 99 in the record of step 1 chain 1: not in the oracle's 8 tokens
        return lines[:4] + [lines[4].replace('"tokens": [', '"tokens": [99, ', 1)] + lines[5:]

    folder = _damaged_run(tmp_path, oracle, foreign_token)
    before = (folder / "samples.jsonl").read_bytes()
    with pytest.raises(generate.DamagedSamplesError, match="record 5 \\(step 1 chain 1\\): a token id is not below"):
        generate.execute(_args(folder, "cgmh", "--keywords", "t2", "--resume"), causal_lm=oracle)
    assert (folder / "samples.jsonl").read_bytes() == before
