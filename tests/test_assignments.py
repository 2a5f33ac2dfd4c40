"""The exercises: every solution passes the autograder's check, every starter fails it.

Starters return ``x`` unchanged: that leaves the target invariant (one-step tests pass) and never
mixes, so the long-run test fails with certainty (every chain stays at the start, whose cell has
probability < 1). Solutions are checked at reduced sizes with the default false-fail rate 1e-4.
"""

from pathlib import Path

import pytest

from textsampling.check import check_step, load_step_function

ASSIGNMENTS = Path(__file__).resolve().parent.parent / "assignments"

# (notebook, solution module, function, kind, target, sizes of the solution's check)
EXERCISES = [
    ("01_metropolis_hastings.py", "ex01_metropolis_hastings.py", "mh_step", "mh", "bigram-small",
     dict(num_samples=3000, num_chains=200, num_steps=100)),
    # A sweep from the oracle mixes within 10 sweeps (exact TV < 1e-4 for the reference sweep).
    ("02_mlm_gibbs_sweep.py", "ex02_mlm_gibbs_sweep.py", "mlm_gibbs_sweep", "mlm-gibbs", "bigram-small",
     dict(num_samples=1000, num_chains=100, num_steps=10)),
    ("03_cgmh_insert_delete.py", "ex03_cgmh_insert_delete.py", "insert_delete_step", "cgmh", "bigram-keywords",
     dict(num_samples=3000, num_chains=200, num_steps=100)),
]


@pytest.mark.parametrize("notebook, solution, function, kind, target, sizes", EXERCISES)
def test_solution_passes(notebook, solution, function, kind, target, sizes):
    step = load_step_function(f"{ASSIGNMENTS / 'solutions' / solution}:{function}")
    report = check_step(step, kind, target, budget=None, seed=3, **sizes)
    assert report.passed, report.format()


@pytest.mark.parametrize("notebook, solution, function, kind, target, sizes", EXERCISES)
def test_starter_fails(notebook, solution, function, kind, target, sizes):
    # Importing the notebook as a module skips its autograding cell (guarded by __main__).
    step = load_step_function(f"{ASSIGNMENTS / notebook}:{function}")
    report = check_step(step, kind, target, budget=None, seed=3, num_samples=500, num_chains=100, num_steps=2)
    assert not report.passed
    long_run = report.outcomes[-1].result
    assert long_run.name == "long-run fit" and not long_run.passed


@pytest.mark.parametrize("notebook", [exercise[0] for exercise in EXERCISES])
def test_notebooks_are_jupytext_percent_with_task_starter_and_autograder(notebook):
    text = (ASSIGNMENTS / notebook).read_text()
    assert text.startswith("# ---\n# jupyter:") and "format_name: percent" in text
    assert "**Task.**" in text and "# TODO" in text
    assert "## Autograding" in text and "check_step(" in text and 'if __name__ == "__main__":' in text
