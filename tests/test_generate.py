"""`textsampling generate` end to end: every sampler on the bigram oracle, interrupted runs resumed to the
same bytes, clear errors before any sampling, and the command line on the built-in tiny models."""

import json

import numpy as np
import pytest

from textsampling import cli, generate
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
    if sampler not in generate.SINGLE_SENTENCE_SAMPLERS:
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
    "anneal": ["--keywords", "t1"], "ancestral": [], "topk": ["--top-k", "3"], "topp": [], "greedy": [], "beam": [],
}


@pytest.mark.parametrize("sampler", generate.SAMPLERS)
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
        for record in lines:  # keywords stay, in order, at the protected positions
            assert [t for t, p in zip(record["tokens"], record["protected"]) if p] == keywords
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


# ----------------------------------------------------------------------------- the command line, real models
def test_command_line_errors_are_one_line_before_sampling(tmp_path, capsys):
    clm_folder = generate.Path(generate.__file__).parent / "models" / "tiny-shakespeare" / "clm"
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
