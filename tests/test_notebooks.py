"""Every chapter of the book (notebooks/NN_*.py, jupytext py:percent) executes from top to bottom.

The chapters run with ``CI=true``, so each shrinks its sizes (``NUM_STEPS = 200 if
os.environ.get("CI") else 20_000``) and all of them together take well under three minutes on two
cores. A chapter fails this test when a cell raises or when a cell writes to stderr (a warning, a
progress bar): the book build (`make book`, ``stderr_output: warn`` and ``-W``) would fail on the
same output. These are smoke tests of the chapters, not statistical tests: the chapters' own claims
are checked against exact answers inside them, and the samplers have their own tests.
"""

from __future__ import annotations

import pathlib

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
CHAPTERS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
#: Seconds any one cell may run under CI sizes before the chapter fails.
CELL_TIMEOUT = 240


def test_every_chapter_is_found():
    # Guards the glob below: a renamed folder must not turn the chapter tests into zero tests.
    assert len(CHAPTERS) >= 10, [path.name for path in CHAPTERS]


@pytest.mark.parametrize("path", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_chapter_executes(path, monkeypatch):
    # The kernel is a child process and inherits this environment: small sizes, no network.
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()
    stderr = [
        output["text"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stderr"
    ]
    assert not stderr, f"{path.name} wrote to stderr (the book build would fail):\n" + "\n".join(stderr)


@pytest.mark.parametrize("path", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_chapter_conventions(path):
    # What every chapter promises its reader (issue 6): one SEED cell, sizes that shrink under CI,
    # a "Try this" list, explicit generators only, and no plt.show() (a warning under Agg).
    source = path.read_text(encoding="utf-8")
    code_lines = [line for line in source.splitlines() if not line.startswith("#")]
    assert sum(line.startswith("SEED = ") for line in code_lines) == 1, f"{path.name}: exactly one SEED cell"
    assert 'os.environ.get("CI")' in source, f"{path.name}: sizes must shrink under CI"
    assert "# ## Try this" in source, f"{path.name}: a 'Try this' exercise list"
    for forbidden in ("np.random.seed(", "torch.manual_seed(", "plt.show("):
        assert forbidden not in source, f"{path.name} uses {forbidden}"
    assert source.startswith("# ---\n# jupyter:\n#   jupytext:"), f"{path.name}: jupytext py:percent header"
