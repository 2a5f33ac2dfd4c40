"""`textsampling evaluate`: the numbers it prints are the metric functions' on the sentences it reads.

Through :func:`textsampling.cli.main` on temporary files: plain text and samples.jsonl (each chain's
final record, or every record), the table, --json, the perplexity of the built-in scoring model, and
bad input (exit status 2, one line).
"""

import json

import pytest

from textsampling import cli, metrics

SAMPLES = ["the king is dead", "long live the king", "the queen is fair and the king is foul",
           "a sword of the lord", "the king is dead"]
REFERENCES = ["the king is here", "my lord the queen", "fair is foul and foul is fair"]


@pytest.fixture
def files(tmp_path):
    samples = tmp_path / "samples.txt"
    samples.write_text("\n".join(SAMPLES) + "\n\n")  # a blank line: skipped
    references = tmp_path / "refs.txt"
    references.write_text("\n".join(REFERENCES) + "\n")
    return samples, references


def run_json(capsys, *arguments):
    assert cli.main(["evaluate", *arguments, "--no-perplexity", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for expected in ["--references", "wang-cho", "texygen", "(default: wang-cho,texygen)", "--all-records",
                     "(default: tiny-shakespeare)", "--no-perplexity", "each chain's final record"]:
        assert expected in text, expected


def test_json_holds_the_metric_functions_numbers(files, capsys):
    samples, references = files
    document = run_json(capsys, str(samples), "--references", str(references), "--convention",
                        "wang-cho,texygen,sacrebleu")
    result = document["files"][str(samples)]
    assert result["num_texts"] == len(SAMPLES)
    for convention in ("wang-cho", "texygen", "sacrebleu"):
        assert result["self_bleu"][convention] == pytest.approx(metrics.self_bleu(SAMPLES, convention), rel=1e-15)
    assert result["bleu"]["refs.txt"] == pytest.approx(metrics.reference_corpus_bleu(SAMPLES, REFERENCES), rel=1e-15)
    for n in range(1, 5):
        assert result["unique_ngrams"]["self"][str(n)] == pytest.approx(metrics.unique_ngrams(SAMPLES, n))
        assert result["unique_ngrams"]["refs.txt"][str(n)] == pytest.approx(
            metrics.unique_ngrams(SAMPLES, n, REFERENCES))
    assert result["distinct"]["2"] == pytest.approx(metrics.distinct_n(SAMPLES, 2))
    assert result["mean_length"] == pytest.approx(metrics.mean_length(SAMPLES))
    assert result["perplexity"] is None and document["references"] == {"refs.txt": str(references)}


def test_table_names_every_metric_and_file(files, capsys, tmp_path):
    samples, references = files
    out_json, other = tmp_path / "out.json", tmp_path / "other.txt"
    other.write_text("\n".join(SAMPLES[:4]))
    assert cli.main(["evaluate", str(samples), str(other), "--references", str(references), "--no-perplexity",
                     "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    for expected in ["self-BLEU, wang-cho", "self-BLEU, texygen", "BLEU vs refs.txt (nltk)",
                     "% unique 4-grams within the samples", "% unique 2-grams vs refs.txt", "distinct-1 (%)",
                     f"[1] {samples}", f"[2] {other}", "tokens: whitespace", f"JSON written to {out_json}"]:
        assert expected in printed, expected
    row = next(line for line in printed.splitlines() if line.startswith("self-BLEU, wang-cho"))
    assert row.split("|")[1].strip() == f"{metrics.self_bleu(SAMPLES, 'wang-cho'):.2f}"
    assert row.split("|")[2].strip() == f"{metrics.self_bleu(SAMPLES[:4], 'wang-cho'):.2f}"
    assert json.loads(out_json.read_text())["files"][str(samples)]["num_texts"] == len(SAMPLES)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_samples_jsonl_final_record_per_chain_or_all(tmp_path, capsys):
    records = [{"chain": c, "step": s, "tokens": [], "text": f"chain {c} step {s} of the run"}
               for s in range(3) for c in range(2)]
    path = tmp_path / "samples.jsonl"
    write_jsonl(path, records)
    final = run_json(capsys, str(path))["files"][str(path)]
    texts = ["chain 0 step 2 of the run", "chain 1 step 2 of the run"]
    assert final["num_texts"] == 2 and final["self_bleu"]["wang-cho"] == pytest.approx(
        metrics.self_bleu(texts, "wang-cho"))
    every = run_json(capsys, str(path), "--all-records")["files"][str(path)]
    assert every["num_texts"] == 6 and every["self_bleu"]["texygen"] == pytest.approx(
        metrics.self_bleu([r["text"] for r in records], "texygen"))


def test_perplexity_under_the_builtin_model(files, capsys):
    pytest.importorskip("transformers")
    from textsampling.lm.loading import load_causal_lm

    samples, _ = files
    assert cli.main(["evaluate", str(samples), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["files"][str(samples)]
    model = load_causal_lm("tiny-shakespeare")
    want = metrics.perplexity(model, model.encode(SAMPLES))
    assert result["perplexity"] == {"value": pytest.approx(want, rel=1e-6), "model": "tiny-shakespeare",
                                    "num_scored": len(SAMPLES), "num_skipped": 0}


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["missing.txt"], "missing.txt: no such file"),
        (["{samples}", "--convention", "wang"], "--convention takes self-BLEU conventions"),
        (["{one}"], "holds 1 sentence: self-BLEU needs at least 2"),
        (["{bad_jsonl}"], "line 2: not JSON"),
        (["{no_text_jsonl}"], "line 1: a record needs the fields text, chain, step"),
        (["{samples}", "--references", "{empty}"], "holds no sentence"),
        (["{samples}", "--max-order", "0"], "--max-order must be an integer >= 1"),
    ],
)
def test_bad_input_is_one_line_and_status_2(files, tmp_path, capsys, arguments, message):
    samples, _ = files
    (tmp_path / "one.txt").write_text("just one sentence\n")
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "bad.jsonl").write_text('{"chain": 0, "step": 0, "text": "a b"}\nnot json\n')
    (tmp_path / "no_text.jsonl").write_text('{"chain": 0}\n')
    names = {"samples": samples, "one": tmp_path / "one.txt", "empty": tmp_path / "empty.txt",
             "bad_jsonl": tmp_path / "bad.jsonl", "no_text_jsonl": tmp_path / "no_text.jsonl"}
    status = cli.main(["evaluate", *[a.format(**names) for a in arguments], "--no-perplexity"])
    error = capsys.readouterr().err
    assert status == 2 and message in error and len(error.strip().splitlines()) == 1, error
