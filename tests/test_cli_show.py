"""`textsampling show RUN`: every sampler's samples as a table or JSON lines, --chain / --every / --width,
and bad input refused in one line with exit status 2."""

import json

import numpy as np
import pytest
from test_generate import SAMPLER_OPTIONS, _args

from textsampling import cli
from textsampling.cli import generate, show
from textsampling.lm.oracle import BigramOracle
from textsampling.targets import BigramLM

#: column headers each sampler's table must show (score and flag), from what it writes
COLUMNS = {
    "gibbs": ["energy", "changed"], "mh": ["energy", "accepted"], "cgmh": ["move", "log rho", "accepted"],
    "anneal": ["move", "log rho", "accepted"], "beam": ["score"], "ancestral": [], "topk": [], "topp": [],
    "greedy": [], "smc": [], "pt": ["move", "log rho", "accepted"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One small run of every sampler on the bigram oracle of tests/test_generate.py."""
    rng = np.random.default_rng(0)
    oracle = BigramOracle(BigramLM(rng.normal(size=6), rng.normal(size=(6, 7)), 8))
    root = tmp_path_factory.mktemp("runs")
    for sampler in generate.SAMPLERS:
        args = _args(root / sampler, sampler, *SAMPLER_OPTIONS[sampler])
        assert generate.execute(args, masked_lm=oracle, causal_lm=oracle) == 0
    return root


def _records(folder):
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


def _show(capsys, *argv):
    capsys.readouterr()
    status = cli.main(["show", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("sampler", generate.SAMPLERS)
def test_every_samplers_output_is_shown_as_a_table(runs, sampler, capsys):
    status, out, err = _show(capsys, runs / sampler, "--width", 0)
    assert status == 0 and err == ""
    header_line, table_header, *rows = out.splitlines()
    assert header_line.startswith(f"{runs / sampler / 'samples.jsonl'}: sampler {sampler}")
    assert table_header.split() == ["chain", "step"] + " ".join(COLUMNS[sampler]).split() + ["sentence"]
    records = _records(runs / sampler)
    assert len(rows) == len(records)
    for row, record in zip(rows, records):
        cells = row.split()
        assert [int(cells[0]), int(cells[1])] == [record["chain"], record["step"]]
        text = record["text"] + (" [truncated]" if record.get("truncated") else "")
        assert row.endswith("  " + text) or (text == "" and row.endswith("  "))
        for field in ("log_prob", "energy", "score"):
            if field in record:
                assert (f"{record[field]:.3f}" if record[field] is not None else "-") in cells
        if "move" in record:
            assert cells[2] == record["move"]


@pytest.mark.parametrize("sampler", ["gibbs", "cgmh", "topp"])
def test_json_lines_are_the_selected_records_unchanged(runs, sampler, capsys):
    status, out, _ = _show(capsys, runs / sampler / "samples.jsonl", "--json", "--chain", "1")
    assert status == 0
    lines = (runs / sampler / "samples.jsonl").read_text().splitlines()
    assert out.splitlines() == [line for line in lines if json.loads(line)["chain"] == 1]


def test_chain_is_repeatable_or_a_list_and_every_keeps_each_chains_last(runs, capsys):
    records = _records(runs / "mh")
    _, repeated, _ = _show(capsys, runs / "mh", "--json", "--chain", "0", "--chain", "2", "--every", "5")
    _, listed, _ = _show(capsys, runs / "mh", "--json", "--chain", "2,0", "--every", "5")
    assert repeated == listed
    shown = [json.loads(line) for line in repeated.splitlines()]
    for chain in (0, 2):
        steps = [r["step"] for r in records if r["chain"] == chain]  # 0..11
        want = sorted(set(steps[4::5]) | {steps[-1]})  # the 5th, 10th record and the last: steps 4, 9, 11
        assert want == [4, 9, 11]
        assert [r["step"] for r in shown if r["chain"] == chain] == want
    assert {r["chain"] for r in shown} == {0, 2}


def test_long_sentences_are_cut_to_the_width(tmp_path, runs, capsys):
    folder = tmp_path / "long"
    folder.mkdir()
    long_text = "word " * 40
    (folder / "samples.jsonl").write_text(json.dumps({"chain": 0, "step": 0, "tokens": [1], "text": long_text}) + "\n")
    _, out, _ = _show(capsys, folder, "--width", 30)
    header, row = out.splitlines()
    sentence = row[header.index("sentence"):]
    assert len(sentence) == 30 and sentence.endswith("…") and long_text.startswith(sentence[:-1])
    _, out, _ = _show(capsys, folder, "--width", 0)
    assert long_text.rstrip() in out


def _damaged(tmp_path, runs, line_number, text):
    folder = tmp_path / "damaged"
    folder.mkdir()
    lines = (runs / "cgmh" / "samples.jsonl").read_text().splitlines(keepends=True)
    lines[line_number - 1] = text
    (folder / "samples.jsonl").write_text("".join(lines))
    return folder


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda tmp_path, runs: tmp_path / "missing", "no such folder or file"),
        (lambda tmp_path, runs: tmp_path, "holds no samples.jsonl"),
        (lambda tmp_path, runs: _damaged(tmp_path, runs, 5, '{"chain": 1, "st\n'), "line 5 is not valid JSON"),
        (lambda tmp_path, runs: _damaged(tmp_path, runs, 3, '{"chain": 1, "text": "a"}\n'), "line 3: the record has no"
                                                                                         " integer 'step'"),
        (lambda tmp_path, runs: _damaged(tmp_path, runs, 2, "[1, 2]\n"), "line 2 is not a JSON object"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, runs, make, match, capsys):
    status, out, err = _show(capsys, make(tmp_path, runs))
    assert status == 2 and match in err and err.startswith("textsampling show: error: ")
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""


def test_an_unknown_chain_names_the_chains_there_are(runs, capsys):
    status, _, err = _show(capsys, runs / "gibbs", "--chain", "1,7")
    assert status == 2 and "--chain 7: the run has chains 0..2" in err and err.count("\n") == 1
    status, _, err = _show(capsys, runs / "gibbs", "--chain", "x")
    assert status == 2 and "--chain must be chain numbers" in err


def test_a_last_line_cut_by_an_interruption_is_skipped_with_a_note(tmp_path, runs, capsys):
    folder = tmp_path / "cut"
    folder.mkdir()
    text = (runs / "cgmh" / "samples.jsonl").read_text()
    (folder / "samples.jsonl").write_text(text + '{"chain": 0, "ste')
    status, out, err = _show(capsys, folder, "--json")
    assert status == 0 and out == text and "cut by an interruption" in err


def test_select_and_format_table_as_functions():
    records = [{"chain": c, "step": t, "text": f"s{c}{t}", "energy": float(t)} for t in range(7) for c in range(2)]
    assert [records[i]["step"] for i in show.select(records, [1], every=3)] == [2, 5, 6]
    assert len(show.select(records)) == len(records)
    table = show.format_table([records[0]], width=None)
    assert table.splitlines() == ["chain  step  energy  sentence", "    0     0   0.000  s00"]


def test_without_run_the_newest_run_under_runs_is_shown(tmp_path, runs, monkeypatch, capsys):
    import os
    import shutil

    assert show.DEFAULT_RUNS == generate.DEFAULT_OUTPUT_ROOT  # where generate writes is where show looks
    for age, sampler in enumerate(["mh", "cgmh"]):  # cgmh written last
        shutil.copytree(runs / sampler, tmp_path / "runs" / f"{sampler}-x")
        os.utime(tmp_path / "runs" / f"{sampler}-x" / "samples.jsonl", ns=(10**18 + age, 10**18 + age))
    monkeypatch.chdir(tmp_path)
    status, out, _ = _show(capsys, "--width", 0)
    assert status == 0 and out.splitlines()[0] == f"{os.path.join('runs', 'cgmh-x')} (the newest run)"
    assert "log rho" in out
    monkeypatch.chdir(tmp_path / "runs")  # no runs/ below here
    status, _, err = _show(capsys)
    assert status == 2 and "RUN not given and no run under runs/" in err
