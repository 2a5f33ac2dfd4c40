"""The exercises and their autograder (``assignments/autograder.py``).

* The solutions pass; the starters, the usual mistakes and steps that are not the requested algorithm
  get "not yet" with feedback naming what to fix; the exit status says which.
* The autograder's exact kernels are the library's (MH, systematic MLM Gibbs) or keep the target exactly
  (CGMH insert/delete), and the transition test catches every listed mistake with power >= 0.999.
* The student bundle holds no solution; a folder of submissions grades into a CSV/JSON table.

Every verdict here is for a fixed seed. Over seeds, a correct step fails with probability <= 1e-4
(5e-5 transition test + 5e-5 conformance check); a listed mistake passes with probability at most
1 - (its power) and is named with probability >= 1 - 1e-3 - (1 - power) (the fit test's level).
"""

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from textsampling.targets import make_target

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ROOT / "assignments"
SOLUTIONS = ASSIGNMENTS / "solutions"


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


autograder = _load(ASSIGNMENTS / "autograder.py", "autograder_under_test")
student_bundle = _load(ROOT / "scripts" / "student_bundle.py", "student_bundle_under_test")

# (exercise, starter, solution, function, sizes of the conformance stage for the solution)
EXERCISES = [
    (1, "01_metropolis_hastings.py", "ex01_metropolis_hastings.py", "mh_step",
     dict(num_samples=3000, num_chains=200, num_steps=100)),
    # A sweep from the oracle mixes within 10 sweeps (exact TV < 1e-4 for the reference sweep).
    (2, "02_mlm_gibbs_sweep.py", "ex02_mlm_gibbs_sweep.py", "mlm_gibbs_sweep",
     dict(num_samples=1000, num_chains=100, num_steps=10)),
    (3, "03_cgmh_insert_delete.py", "ex03_cgmh_insert_delete.py", "insert_delete_step",
     dict(num_samples=3000, num_chains=200, num_steps=100)),
]
R = np.array([0.6, 0.3, 0.1])
solution_3 = _load(SOLUTIONS / "ex03_cgmh_insert_delete.py", "solution_3")


# ============================================================================ wrong steps
def mh_exact_draw(rng, x, target):
    """Ignores x: an exact draw from the target (leaves it invariant, is not MH)."""
    return target.sample_exact(rng, 1)[0]


def _mh(rng, x, target, proposal=R, hastings=True, compare="log"):
    x = np.array(x)
    i = rng.integers(target.length)
    y = x.copy()
    y[i] = rng.choice(3, p=proposal)
    log_x, log_y = target.log_prob(np.stack([x, y]))
    log_ratio = log_y - log_x + (np.log(proposal[x[i]]) - np.log(proposal[y[i]]) if hastings else 0.0)
    u = rng.random()
    return y if (np.log(u) if compare == "log" else u) < log_ratio else x


def mh_no_hastings(rng, x, target):
    return _mh(rng, x, target, hastings=False)


def mh_u_versus_log_ratio(rng, x, target):
    return _mh(rng, x, target, compare="u")


def mh_uniform_proposal(rng, x, target):
    """A correct MH step, with the wrong proposal: keeps the target, is not the requested algorithm."""
    return _mh(rng, x, target, proposal=np.full(3, 1 / 3))


def mh_wrong_hastings_law(rng, x, target):
    """Proposes from r but computes the Hastings term with (0.5, 0.3, 0.2): none of the listed mistakes."""
    x = np.array(x)
    i = rng.integers(target.length)
    y = x.copy()
    y[i] = rng.choice(3, p=R)
    log_x, log_y = target.log_prob(np.stack([x, y]))
    wrong = np.log([0.5, 0.3, 0.2])
    return y if np.log(rng.random()) < log_y - log_x + wrong[x[i]] - wrong[y[i]] else x


def _draw(rng, lm, x, position, mask=True):
    query = np.array(x)
    if mask:
        query[position] = lm.mask_token_id
    p = np.exp(lm.masked_log_probs(query[None], np.array([position]))[0])
    return rng.choice(p.size, p=p / p.sum())


def gibbs_random_scan(rng, x, lm):
    x = np.array(x)
    i = int(rng.integers(x.size))
    x[i] = _draw(rng, lm, x, i)
    return x


def gibbs_stale(rng, x, lm):
    start, x = np.array(x), np.array(x)
    for i in range(x.size):
        x[i] = _draw(rng, lm, start, i)
    return x


def gibbs_forgot_mask(rng, x, lm):
    """A systematic sweep that asks for the conditional at i with x[i] in view (no [MASK] there)."""
    x = np.array(x)
    for i in range(x.size):
        x[i] = _draw(rng, lm, x, i, mask=False)
    return x


def gibbs_exact_draw_without_lm(rng, x, lm):
    return make_target("bigram-small").sample_exact(rng, 1)[0]


def gibbs_exact_draw_asking_lm(rng, x, lm):
    lm.masked_log_probs(np.array(x)[None], np.array([0]))
    return make_target("bigram-small").sample_exact(rng, 1)[0]


def _insert_delete(rng, x, target, drop=()):
    x = np.array(x)
    keywords, vocab = set(target.keywords), target.vocab_size
    tokens = [int(t) for t in x if t != -1]
    n = len(tokens)
    if rng.random() < 0.5:
        if n == target.length:
            return x
        slot, token = int(rng.integers(n + 1)), int(rng.integers(vocab))
        new = tokens[:slot] + [token] + tokens[slot:]
        factors = {"position": np.log(n + 1) - np.log(len(solution_3.deletable_positions(new, keywords))),
                   "token": np.log(vocab)}
    else:
        positions = solution_3.deletable_positions(tokens, keywords)
        if n == 1 or not positions:
            return x
        position = positions[int(rng.integers(len(positions)))]
        new = tokens[:position] + tokens[position + 1 :]
        factors = {"position": np.log(len(positions)) - np.log(n), "token": -np.log(vocab)}
    y = solution_3.padded(new, target.length)
    log_x, log_y = target.log_prob(np.stack([x, y]))
    log_hastings = sum(value for name, value in factors.items() if name not in drop)
    return y if np.log(rng.random()) < log_y - log_x + log_hastings else x


def cgmh_no_position_ratio(rng, x, target):
    return _insert_delete(rng, x, target, drop=("position",))


def cgmh_no_token_factor(rng, x, target):
    return _insert_delete(rng, x, target, drop=("token",))


def cgmh_exact_draw(rng, x, target):
    return target.sample_exact(rng, 1)[0]


def cgmh_replace(rng, x, target):
    """Replaces a token: a CGMH move, but not an insertion or deletion."""
    x = np.array(x)
    y = x.copy()
    y[int(rng.integers(int(np.sum(x != -1))))] = 2
    return y


def cgmh_drops_keyword(rng, x, target):
    tokens = [int(t) for t in x if t != -1]
    return np.array(x) if len(tokens) == 1 else solution_3.padded(tokens[1:], target.length)


# ============================================================================ the verdicts
@pytest.mark.slow
@pytest.mark.parametrize("exercise, starter, solution, function, sizes", EXERCISES)
def test_solution_passes_every_stage(exercise, starter, solution, function, sizes):
    step = autograder.load_function(SOLUTIONS / solution, function)
    result = autograder.grade(exercise, step, budget=None, conformance_sizes=sizes)
    assert result.passed, result.format()
    assert [stage.name for stage in result.stages] == [
        "loads", "valid states", "requested algorithm", "transition probabilities", "keeps and reaches the target"]


@pytest.mark.parametrize("exercise, starter, solution, function, sizes", EXERCISES)
def test_starter_gets_not_yet_with_never_moved(exercise, starter, solution, function, sizes):
    # Loading the notebook skips its autograding cell (guarded by __main__).
    step = autograder.load_function(ASSIGNMENTS / starter, function)
    result = autograder.grade(exercise, step, conformance=False)
    assert not result.passed
    assert result.headline.startswith("your chain never moved: in all"), result.format()
    assert "A correct step moves from a state drawn uniformly from the support with probability" in result.headline


@pytest.mark.parametrize("exercise, step, stage, fragment", [
    # A perfect draw from the target is not MH: it changes several positions at once.
    (1, mh_exact_draw, "requested algorithm", "one Metropolis-Hastings step with a single-site proposal"),
    (3, cgmh_exact_draw, "requested algorithm", "one insert/delete step returns x"),
    (3, cgmh_replace, "requested algorithm", "one insert/delete step returns x"),
    (2, gibbs_exact_draw_without_lm, "requested algorithm", "without calling lm.masked_log_probs"),
    (2, gibbs_exact_draw_asking_lm, "transition probabilities", "does not depend on x"),
    (3, cgmh_drops_keyword, "valid states", "a state outside the support: it lost keyword 2"),
])
def test_steps_that_are_not_the_requested_algorithm_do_not_pass(exercise, step, stage, fragment):
    result = autograder.grade(exercise, step, conformance=False)
    assert not result.passed
    failed = [s for s in result.stages if not s.passed]
    assert failed[0].name == stage and fragment in failed[0].summary, result.format()


def test_a_step_that_keeps_the_target_with_the_wrong_proposal_does_not_pass():
    result = autograder.grade(1, mh_uniform_proposal, conformance_sizes=dict(num_samples=3000, num_steps=100))
    stages = {stage.name: stage for stage in result.stages}
    assert stages["keeps and reaches the target"].passed, result.format()  # it is a correct sampler ...
    assert not result.passed and "UNIFORM token proposal" in stages["transition probabilities"].summary


def test_the_conformance_stage_says_when_a_budget_shrank_the_sizes():
    # No budget (the default): the fixed sizes run and nothing is said. A budget no step can meet
    # (1e-9 s) shrinks them on any machine: the stage must tell the student, whatever its verdict.
    step = autograder.load_function(SOLUTIONS / "ex01_metropolis_hastings.py", "mh_step")
    sizes = dict(num_samples=3000, num_chains=200, num_steps=100)
    fixed = {s.name: s for s in autograder.grade(1, step, conformance_sizes=sizes).stages}
    stage = fixed["keeps and reaches the target"]
    assert "--budget" not in stage.summary and not any("--budget" in line for line in stage.details), stage
    shrunk = {s.name: s for s in autograder.grade(1, step, budget=1e-9, conformance_sizes=sizes).stages}
    stage = shrunk["keeps and reaches the target"]
    assert "sizes shrunk by --budget 1e-09 s" in stage.summary, stage
    assert stage.details[0].startswith("--budget 1e-09 s shrank the sample sizes (scale ") and (
        "leave --budget out to run the fixed sizes" in stage.details[0]), stage


@pytest.mark.parametrize("exercise, step, fragment", [
    (1, mh_no_hastings, "WITHOUT the Hastings term"),
    (1, mh_u_versus_log_ratio, "compares u with the LOG ratio"),
    (2, gibbs_random_scan, "(random scan)"),
    (2, gibbs_stale, "all taken from the STARTING x"),
    (2, gibbs_forgot_mask, "x[i] still in view"),
    (3, cgmh_no_position_ratio, "WITHOUT the position factors"),
    (3, cgmh_no_token_factor, "WITHOUT the token factor 1/V"),
])
def test_the_usual_mistakes_are_named(exercise, step, fragment):
    result = autograder.grade(exercise, step, conformance=False)
    assert not result.passed and fragment in result.headline, result.format()
    transition = [s for s in result.stages if s.name == "transition probabilities"][0]
    assert any(line.startswith("the moves most off") for line in transition.details)


def test_an_unlisted_mistake_gets_the_factors_of_the_moves_most_off():
    result = autograder.grade(1, mh_wrong_hastings_law, conformance=False)
    assert not result.passed and "fits none of the usual mistakes" in result.headline, result.format()
    transition = [s for s in result.stages if s.name == "transition probabilities"][0]
    rows = [line for line in transition.details if "accept min(1, rho(y)/rho(x) * q(x|y)/q(y|x))" in line]
    assert len(rows) >= 2, result.format()


@pytest.mark.parametrize("step, fragment", [
    (lambda rng, x, target: None, "returned None"),
    (lambda rng, x, target: (x, {}), "not (state, info)"),
    (lambda rng, x, target: np.asarray(x, dtype=float), "dtype float64"),
    (lambda rng, x, target: np.asarray(x)[:2], "expected (3,)"),
    (lambda rng, x, target: np.full(3, 7), "token 7 is outside the vocabulary 0..2"),
    (lambda rng, x, target: 1 / 0, "your step raised ZeroDivisionError"),
    (lambda rng, x, target: sys.exit(0), "your step raised SystemExit"),
])
def test_malformed_returns_are_explained(step, fragment):
    result = autograder.grade(1, step, conformance=False)
    assert not result.passed and fragment in result.headline, result.format()


def test_a_sweep_that_writes_a_special_id_is_told_so():
    result = autograder.grade(2, lambda rng, x, lm: np.full(3, lm.mask_token_id), conformance=False)
    assert not result.passed and "must never be written" in result.headline, result.format()


def test_wrong_signature_and_unloadable_files(tmp_path):
    result = autograder.grade(1, lambda rng, x: x)
    assert not result.passed and "cannot be called as" in result.headline
    broken = tmp_path / "01_broken.py"
    broken.write_text("def mh_step(rng, x, target)\n    return x\n")
    with pytest.raises(LookupError, match="SyntaxError"):
        autograder.load_function(broken, "mh_step")
    with pytest.raises(LookupError, match="defines no function 'mh_step'"):
        autograder.load_function(ASSIGNMENTS / "02_mlm_gibbs_sweep.py", "mh_step")


# ============================================================================ the exact kernels
def test_the_exact_kernels_are_the_requested_algorithms():
    from textsampling.markov import is_irreducible
    from textsampling.reference import metropolis_hastings, mlm_gibbs
    from textsampling.reference.proposals import SingleSiteProposal
    from textsampling.testing import check_detailed_balance, check_stationary

    mh = autograder.model(1)
    proposal = SingleSiteProposal(3, 3, token_logits=np.log(R))
    np.testing.assert_allclose(mh.correct, metropolis_hastings.transition_matrix(mh.target, proposal), atol=1e-12)
    gibbs = autograder.model(2)
    systematic = mlm_gibbs.transition_matrix(gibbs.lm, gibbs.states, scan="systematic")
    np.testing.assert_allclose(gibbs.correct, systematic, atol=1e-12)
    cgmh = autograder.model(3)
    assert check_detailed_balance(cgmh.correct, cgmh.pi).passed and is_irreducible(cgmh.correct)
    for exact in (mh, gibbs, cgmh):
        assert check_stationary(exact.correct, exact.pi).passed
        np.testing.assert_allclose(exact.correct.sum(axis=1), 1.0, atol=1e-12)
        for name, kernel, _ in exact.mistakes:
            np.testing.assert_allclose(kernel.sum(axis=1), 1.0, atol=1e-12, err_msg=name)
            assert np.abs(kernel - exact.correct).max() > 1e-3, name


@pytest.mark.parametrize("exercise", [1, 2, 3])
def test_the_transition_test_catches_every_listed_mistake(exercise):
    exact = autograder.model(exercise)
    calls = autograder.EXERCISES[exercise].num_calls
    for name, kernel, _ in exact.mistakes:
        assert autograder.detection_power(kernel, exact.correct, calls) >= 0.999, name


def _editable(tokens, keywords) -> list:
    """The reference CGMH's rule: the positions that are not the only remaining occurrence of a keyword."""
    from textsampling.reference.cgmh import locked_positions

    locked, _ = locked_positions([[k] for k in keywords], np.array(tokens))
    return [i for i in range(len(tokens)) if not locked[i]]


def test_exercise_3_targets_the_sentence_law_with_the_keyword_rule_of_the_gallery():
    text = (ASSIGNMENTS / "03_cgmh_insert_delete.py").read_text()
    assert "every keyword" in text and "in any order" in text and "protected" not in text
    assert "only remaining occurrence of a keyword" in text
    starter = _load(ASSIGNMENTS / "03_cgmh_insert_delete.py", "starter_3")
    target = make_target("bigram-keywords")
    for state in target.states:
        tokens = [int(t) for t in state if t != -1]
        expected = _editable(tokens, target.keywords)
        assert solution_3.deletable_positions(tokens, target.keywords) == expected
        assert starter.deletable_positions(tokens, target.keywords) == expected


# ============================================================================ exit status
def _run(*arguments, cwd=ROOT):
    return subprocess.run([sys.executable, *map(str, arguments)], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_exit_status_is_1_for_not_yet_0_for_passed_2_for_usage():
    starter = _run(ASSIGNMENTS / "01_metropolis_hastings.py")
    assert starter.returncode == 1 and "exercise 1: NOT YET" in starter.stdout, starter.stdout + starter.stderr
    assert "your chain never moved" in starter.stdout
    solution = _run(ASSIGNMENTS / "autograder.py", SOLUTIONS / "ex01_metropolis_hastings.py", "--budget", "5")
    assert solution.returncode == 0 and "exercise 1: PASSED" in solution.stdout, solution.stdout + solution.stderr
    assert _run(ASSIGNMENTS / "autograder.py", "no-such-file.py").returncode == 2
    assert _run(ASSIGNMENTS / "autograder.py", SOLUTIONS / "__init__.py").returncode == 2  # which exercise?


# ============================================================================ the student bundle
BUNDLE_FILES = {"README.md", "autograder.py"} | {name for _, name, *_ in EXERCISES} | {
    name.replace(".py", ".ipynb") for _, name, *_ in EXERCISES}


def test_student_bundle_holds_starters_instructions_autograder_and_no_solution(tmp_path):
    pytest.importorskip("jupytext")
    bundle = student_bundle.build(tmp_path / "student-bundle")
    assert {p.name for p in bundle.iterdir()} == BUNDLE_FILES
    assert student_bundle.leaks(bundle) == []
    for _, starter, _, function, _ in EXERCISES:
        assert (bundle / starter).read_bytes() == (ASSIGNMENTS / starter).read_bytes()
    # No solution's function: the exercise functions are defined in the starters only, as TODO stubs.
    for path in bundle.glob("*.py"):
        text = path.read_text()
        for _, starter, _, function, _ in EXERCISES:
            assert (f"def {function}(" in text) == (path.name == starter), (path.name, function)
    import zipfile

    with zipfile.ZipFile(tmp_path / "student-bundle.zip") as zipped:
        assert {Path(name).name for name in zipped.namelist()} == BUNDLE_FILES
    # Self-contained: the bundle's autograder grades the bundle's notebook from inside the bundle.
    graded = _run(bundle / "autograder.py", "02_mlm_gibbs_sweep.ipynb", cwd=bundle)
    assert graded.returncode == 1 and "your chain never moved" in graded.stdout, graded.stdout + graded.stderr


def test_the_leak_check_sees_a_solution_copied_into_a_bundle(tmp_path):
    for _, starter, solution, _, _ in EXERCISES:
        shutil.copyfile(SOLUTIONS / solution, tmp_path / starter)
    found = student_bundle.leaks(tmp_path)
    assert {file for file, _ in found} == {name for _, name, *_ in EXERCISES}
    assert any("log_q_reverse" in line for _, line in found)


# ============================================================================ grading a folder
def _notebook(source: str) -> str:
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": source.splitlines(keepends=True)}
    magic = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": ["%matplotlib inline\n"],
    }
    return json.dumps({"cells": [magic, cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.mark.slow
def test_grading_a_folder_of_submissions_writes_one_row_per_student_per_exercise(tmp_path):
    submissions = tmp_path / "submissions"
    alice = submissions / "alice"
    alice.mkdir(parents=True)
    shutil.copyfile(SOLUTIONS / "ex01_metropolis_hastings.py", alice / "01_metropolis_hastings.py")
    (alice / "02_mlm_gibbs_sweep.ipynb").write_text(_notebook((SOLUTIONS / "ex02_mlm_gibbs_sweep.py").read_text()))
    shutil.copyfile(SOLUTIONS / "ex03_cgmh_insert_delete.py", alice / "my_cgmh.py")  # exercise from its function
    shutil.copyfile(ASSIGNMENTS / "01_metropolis_hastings.py", submissions / "bob_01_metropolis_hastings.py")
    shutil.copyfile(ASSIGNMENTS / "02_mlm_gibbs_sweep.py", submissions / "bob_02_mlm_gibbs_sweep.py")
    (submissions / "carol").mkdir()
    (submissions / "carol" / "01_metropolis_hastings.py").write_text("def mh_step(rng, x, target)\n    return x\n")
    (submissions / "dave").mkdir()
    (submissions / "dave" / "notes.py").write_text("print('hello')\n")
    output = tmp_path / "grades"
    completed = _run(ROOT / "scripts" / "grade_submissions.py", submissions, "--output", output, "--budget", "5")
    assert completed.returncode == 0, completed.stdout + completed.stderr

    with open(output / "grades.csv", newline="") as handle:
        rows = {(row["student"], row["exercise"]): row for row in csv.DictReader(handle)}
    # dave handed in nothing the grader recognises: three "no submission" rows and one naming the file.
    assert set(rows) == {(s, str(e)) for s in ("alice", "bob", "carol", "dave") for e in (1, 2, 3)} | {("dave", "")}
    for exercise in "123":
        assert rows[("alice", exercise)]["passed"] == "True", rows[("alice", exercise)]
    assert rows[("alice", "3")]["file"] == "alice/my_cgmh.py"
    for exercise in "12":
        assert rows[("bob", exercise)]["verdict"] == "NOT YET"
        assert rows[("bob", exercise)]["feedback"].startswith("your chain never moved")
    assert rows[("bob", "3")]["feedback"] == "no submission"
    assert "SyntaxError" in rows[("carol", "1")]["feedback"]
    assert "cannot tell which exercise" in rows[("dave", "")]["feedback"]
    assert rows[("dave", "")]["file"] == "dave/notes.py"
    assert all(rows[("dave", e)]["feedback"] == "no submission" for e in "123")
    table = json.loads((output / "grades.json").read_text())
    assert len(table) == len(rows) and all("stages" in row for row in table)
    assert "exercise 2: PASSED" in (output / "reports" / "alice-02.txt").read_text()
    assert "your chain never moved" in (output / "reports" / "bob-01.txt").read_text()


@pytest.mark.parametrize("exercise, starter, solution, function, sizes", EXERCISES)
def test_notebooks_are_jupytext_percent_with_task_starter_and_autograder(exercise, starter, solution, function, sizes):
    text = (ASSIGNMENTS / starter).read_text()
    assert text.startswith("# ---\n# jupyter:") and "format_name: percent" in text
    assert "**Task.**" in text and "# TODO" in text
    assert "## Autograding" in text and f"finish(grade({exercise}, {function}))" in text
    assert 'if __name__ == "__main__":' in text


def test_finish_exits_with_1_as_a_script_and_only_prints_in_jupyter(monkeypatch, capsys):
    result = autograder.grade(1, lambda rng, x, target: None, conformance=False)
    with pytest.raises(SystemExit) as stopped:
        autograder.finish(result)
    assert stopped.value.code == 1 and "exercise 1: NOT YET" in capsys.readouterr().out
    monkeypatch.setattr("builtins.__IPYTHON__", True, raising=False)
    assert autograder.finish(result) is result  # a notebook cell prints the verdict, no SystemExit traceback
