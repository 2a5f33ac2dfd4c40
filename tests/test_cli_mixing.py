"""The mixing report of `textsampling generate` (mixing.json, mixing.md, traces.png): every number is
recounted from samples.jsonl or recomputed with textsampling.diagnostics on the arrays read back; too
few chains or draws, missing energies and stuck chains are said in words, never a NaN."""

import json

import numpy as np
import pytest
from test_generate import SAMPLER_OPTIONS, _args, _lines

from textsampling import cli, diagnostics
from textsampling.cli import generate, mixing
from textsampling.cli.samplers import CHAIN_SAMPLERS
from textsampling.lm.oracle import BigramOracle
from textsampling.reference.cgmh import MOVES
from textsampling.targets import BigramLM

NUM_STEPS = 24  # 12 draws per chain after warm-up


@pytest.fixture(scope="module")
def oracle():
    """The bigram oracle of tests/test_generate.py."""
    rng = np.random.default_rng(0)
    return BigramOracle(BigramLM(rng.normal(size=6), rng.normal(size=(6, 7)), 8))


def _settings(folder, sampler, *extra, num_steps=NUM_STEPS):
    args = _args(folder, sampler, *SAMPLER_OPTIONS[sampler], *extra)
    args.num_steps = num_steps  # _args sets test_generate's NUM_STEPS
    return args


def _run(folder, sampler, oracle, *extra, num_steps=NUM_STEPS):
    args = _settings(folder, sampler, *extra, num_steps=num_steps)
    assert generate.execute(args, masked_lm=oracle, causal_lm=oracle) == 0
    return _lines(folder), json.loads((folder / "mixing.json").read_text())


def _check_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert np.ptp(image[..., :3]) > 0  # something is drawn


def _check_against_the_file(records, report, sampler):
    """The report's numbers, recounted from the records and recomputed by textsampling.diagnostics."""
    registered = CHAIN_SAMPLERS[sampler]
    field = registered.acceptance_field
    # acceptance per move: a recount
    by_move = report["acceptance"]["by_move"]
    moves = sorted({r["move"] for r in records}, key=MOVES.index) if "move" in records[0] else []
    assert list(by_move) == moves + ["all"]
    for move in moves + ["all"]:
        rows = [r for r in records if move == "all" or r["move"] == move]
        assert by_move[move]["steps"] == len(rows)
        assert by_move[move]["accepted"] == sum(r[field] for r in rows)
        assert by_move[move]["rate"] == pytest.approx(np.mean([r[field] for r in rows]), abs=1e-15)
    per_chain = [np.mean([r[field] for r in records if r["chain"] == c]) for c in range(report["num_chains"])]
    assert report["acceptance"]["per_chain"] == pytest.approx(per_chain, abs=1e-15)
    # the draws: the second half of the kept steps
    kept = sorted({r["step"] for r in records})
    used = kept[len(kept) // 2:]
    assert (report["draws"]["first_step"], report["draws"]["last_step"]) == (used[0], used[-1])
    assert report["draws"]["num_draws_per_chain"] == len(used)
    computed = 0
    for name, result in report["diagnostics"]["statistics"].items():
        key = result["field"]
        array = np.array([[len(r["tokens"]) if key == "length" else r[key] for r in records
                           if r["chain"] == c and r["step"] in used] for c in range(report["num_chains"])],
                         dtype=float)  # (C, N)
        if result["note"] is None:
            assert result["rhat"] == diagnostics.split_rhat(array)
            assert result["ess_bulk"] == diagnostics.effective_sample_size(array, method="bulk")
            computed += 1
        else:
            assert result["rhat"] is None and result["ess_bulk"] is None and result["note"]
    return computed


#: Annealing to 0.01 on the oracle ends on its argmax within the warm-up (nothing left to diagnose, as
#: test_stuck_and_constant_chains_get_a_reason_not_a_nan checks); a warmer end keeps the chains moving.
MOVING = {"anneal": ["--final-temperature", "0.5"]}


@pytest.mark.parametrize("sampler", generate.MCMC_SAMPLERS)
def test_a_chain_run_leaves_a_mixing_report_that_the_samples_recount(tmp_path, oracle, sampler, capsys):
    records, report = _run(tmp_path, sampler, oracle, *MOVING.get(sampler, []))
    assert set(report) >= {"sampler", "num_chains", "num_steps", "keep_every", "acceptance", "draws", "diagnostics",
                           "notes"}
    statistics = report["diagnostics"]["statistics"]
    expected = ["length", "energy"] if sampler in ("gibbs", "mh") else ["length", "log rho"]
    assert list(statistics) == expected
    # the traced score is diagnosed in this run (a stuck or too-short run would say why instead)
    assert _check_against_the_file(records, report, sampler) >= 1
    assert statistics[expected[1]]["rhat"] is not None
    if sampler in ("gibbs", "mh"):  # each chain keeps its drawn length: said, not a meaningless number
        assert "keeps its starting length" in statistics["length"]["note"]
    _check_png(tmp_path / "traces.png")
    text = (tmp_path / "mixing.md").read_text()
    assert "split R-hat" in text.replace("Split", "split") and "traces.png" in text
    out = capsys.readouterr().out
    assert "mixing (3 chains" in out and f"R-hat {statistics[expected[1]]['rhat']:.3f}" in out
    assert f"{report['acceptance']['by_move']['all']['rate']:.3f}" in out


def test_cgmh_records_the_move_of_every_step_and_the_report_splits_by_it(tmp_path, oracle):
    records, report = _run(tmp_path, "cgmh", oracle)
    assert {r["move"] for r in records} == set(MOVES)  # this run proposes every move type
    assert set(report["acceptance"]["by_move"]) == set(MOVES) | {"all"}


def test_pt_reports_the_swap_acceptance_of_every_neighbour_pair_recounted_from_the_samples(tmp_path, oracle, capsys):
    records, report = _run(tmp_path, "pt", oracle)
    pairs = report["swaps"]["pairs"]
    num_replicas = len(records[0]["replicas"])
    assert [pair["pair"] for pair in pairs] == [[m, m + 1] for m in range(num_replicas - 1)]
    for m, pair in enumerate(pairs):  # recounted from samples.jsonl, pair by pair
        proposed = sum(record["swap_proposed"][m] for record in records)
        accepted = sum(record["swap_accepted"][m] for record in records)
        assert (pair["proposed"], pair["accepted"]) == (proposed, accepted) and 0 < accepted <= proposed
        assert pair["rate"] == accepted / proposed
    out = capsys.readouterr().out
    assert "swaps (pair: rate, accepted/proposed): 0-1 " + f"{pairs[0]['rate']:.3f}" in out
    assert "## Replica swaps" in (tmp_path / "mixing.md").read_text()
    _, cgmh_report = _run(tmp_path / "cgmh", "cgmh", oracle)
    assert "swaps" not in cgmh_report


def test_annealing_says_its_r_hat_is_no_convergence_diagnostic(tmp_path, oracle, capsys):
    records, report = _run(tmp_path, "anneal", oracle)
    assert mixing.ANNEALING_NOTE in report["notes"]
    assert "not a convergence diagnostic" in (tmp_path / "mixing.md").read_text()
    assert "R-hat is no convergence diagnostic" in capsys.readouterr().out
    _, cgmh_report = _run(tmp_path / "cgmh", "cgmh", oracle)
    assert mixing.ANNEALING_NOTE not in cgmh_report["notes"]


def test_gibbs_energy_is_the_pll_energy_of_mlm_mh_and_null_while_mask_remains(tmp_path, oracle):
    import torch

    from textsampling.torch.mlm_metropolis_hastings import energy

    args = _args(tmp_path, "gibbs")  # random scan: [MASK] stays a few steps
    assert generate.execute(args, masked_lm=oracle) == 0
    records = _lines(tmp_path)
    with_mask = [r for r in records if oracle.mask_token_id in r["tokens"]]
    complete = [r for r in records if oracle.mask_token_id not in r["tokens"]]
    assert with_mask and complete  # the test sees both kinds
    assert all(r["energy"] is None for r in with_mask)
    for record in complete:
        x = torch.tensor([record["tokens"]], dtype=torch.int64)
        assert record["energy"] == pytest.approx(float(energy(oracle, x, "pll")[0]), rel=1e-12)
    # changed: did the sentence differ from the chain's previous record (every step is kept here)
    for record in records:
        if record["step"] > 0:
            before = next(r for r in records if r["chain"] == record["chain"] and r["step"] == record["step"] - 1)
            assert record["changed"] == (record["tokens"] != before["tokens"])
    report = json.loads((tmp_path / "mixing.json").read_text())
    note = report["diagnostics"]["statistics"]["energy"]["note"]
    assert report["diagnostics"]["statistics"]["energy"]["rhat"] is None
    assert "null or missing in" in note and "[MASK]" in note


def test_too_few_chains_or_draws_are_said_in_words(tmp_path, oracle, capsys):
    # 6 steps: 3 draws per chain after warm-up, one fewer than the split diagnostics need
    _, report = _run(tmp_path / "short", "cgmh", oracle, num_steps=6)
    for result in report["diagnostics"]["statistics"].values():
        assert result["rhat"] is None and result["ess_bulk"] is None
        assert "needs at least 4 draws per chain after warm-up, the run kept 3" in result["note"]
    assert "needs at least 4 draws" in capsys.readouterr().out
    # one chain
    records = [{**r, "chain": 0} for r in _lines(tmp_path / "short") if r["chain"] == 1]
    one = mixing.mixing_report(records, "cgmh", num_steps=6)
    assert all("needs at least 2 chains, the run has 1" in r["note"]
               for r in one["diagnostics"]["statistics"].values())
    assert "NaN" not in (tmp_path / "short" / "mixing.json").read_text()


def _synthetic(values_by_chain, field="log_prob"):
    """cgmh-like records: chain c's value at step t is values_by_chain[c][t]; lengths from the value."""
    return [{"chain": c, "step": t, "tokens": [1] * 3, "text": "t1 t1 t1", field: values[t], "move": "replace",
             "accepted": t % 2 == 0}
            for t in range(len(values_by_chain[0])) for c, values in enumerate(values_by_chain)]


def test_stuck_and_constant_chains_get_a_reason_not_a_nan():
    stuck = mixing.mixing_report(_synthetic([[-3.0] * 8, [-5.0] * 8]), "cgmh", num_steps=8)
    result = stuck["diagnostics"]["statistics"]["log rho"]
    assert result["rhat"] is None and "do not move" in result["note"]
    length = stuck["diagnostics"]["statistics"]["length"]
    assert length["rhat"] is None and "every draw has the same length (3)" in length["note"]
    moving = mixing.mixing_report(_synthetic([[-3.0, -4.0] * 4, [-5.0, -4.5] * 4]), "cgmh", num_steps=8)
    assert moving["diagnostics"]["statistics"]["log rho"]["rhat"] == diagnostics.split_rhat(
        np.array([[-3.0, -4.0] * 2, [-5.0, -4.5] * 2]))
    json.dumps(stuck, allow_nan=False)  # nothing that is not a number


def test_keep_every_says_the_acceptance_is_a_subsample(tmp_path, oracle):
    records, report = _run(tmp_path, "mh", oracle, "--keep-every", "3")
    assert "subsample, one step in 3" in report["acceptance"]["counted_on"]
    assert report["draws"]["num_kept_steps"] == NUM_STEPS // 3
    _check_against_the_file(records, report, "mh")


def test_chains_of_different_lengths_are_said_to_sample_different_targets(tmp_path, oracle):
    _, drawn = _run(tmp_path / "drawn", "mh", oracle)
    assert any("different lengths" in note for note in drawn["notes"])
    _, fixed = _run(tmp_path / "fixed", "mh", oracle, "--length", "4")
    assert not any("different lengths" in note for note in fixed["notes"])


def test_resumed_run_has_the_mixing_report_of_the_whole_run(tmp_path, oracle):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert generate.execute(_settings(whole, "cgmh"), causal_lm=oracle) == 0
    assert generate.execute(_settings(cut, "cgmh"), causal_lm=oracle, interrupt_after_step=4) == 130
    assert not (cut / "mixing.json").exists()
    assert generate.execute(_settings(cut, "cgmh", "--resume"), causal_lm=oracle) == 0
    assert (cut / "mixing.json").read_bytes() == (whole / "mixing.json").read_bytes()
    assert (cut / "mixing.md").read_bytes() == (whole / "mixing.md").read_bytes()


def test_decoders_leave_no_mixing_report(tmp_path, oracle):
    assert generate.execute(_args(tmp_path, "topk", "--top-k", "3"), causal_lm=oracle) == 0
    assert not (tmp_path / "mixing.json").exists() and not (tmp_path / "traces.png").exists()


# ----------------------------------------------------------------------------- the built-in tiny models
@pytest.mark.parametrize("sampler", generate.MCMC_SAMPLERS)
def test_every_chain_sampler_leaves_its_report_on_the_builtin_models(tmp_path, sampler, capsys):
    folder = tmp_path / sampler
    argv = ["generate", "--sampler", sampler, "--num-chains", "2", "--num-steps", "8", "--max-length", "8",
            "--output", str(folder), "--no-progress"]
    if sampler in generate.KEYWORD_SAMPLERS:
        argv += ["--keywords", "king", "--num-candidates", "4"]
    else:
        argv += ["--scan", "systematic"] * (sampler == "gibbs")
    assert cli.main(argv) == 0
    records = _lines(folder)
    report = json.loads((folder / "mixing.json").read_text())
    assert report["sampler"] == sampler and report["num_chains"] == 2
    _check_against_the_file(records, report, sampler)
    if sampler == "gibbs":  # a systematic sweep fills every [MASK] at once: an energy on every record
        assert all(isinstance(r["energy"], float) and r["energy"] > 0 for r in records)
    _check_png(folder / "traces.png")
    assert (folder / "mixing.md").is_file()
    assert "mixing report:" in capsys.readouterr().out
    # and `show` reads the run: one row per record, under its header line and the table's
    assert cli.main(["show", str(folder), "--width", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 + len(records) and all(row.endswith(r["text"]) for row, r in zip(out[2:], records))
