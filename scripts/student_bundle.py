"""Build what students get: the starters, their instructions and the autograder — never the solutions.

    python scripts/student_bundle.py [--output dist/student-bundle] [--no-notebooks]

Writes ``OUTPUT/`` and ``OUTPUT.zip`` holding exactly:

* ``README.md``     — the students' instructions (``assignments/STUDENTS.md``);
* ``autograder.py`` — run by the notebooks' last cell and by ``python autograder.py 01_...py``;
* ``01_metropolis_hastings.py``, ``02_mlm_gibbs_sweep.py``, ``03_cgmh_insert_delete.py`` — the starters
  (jupytext percent scripts), and the same as ``.ipynb`` notebooks unless ``--no-notebooks``.

The bundle is built from an allow-list, and checked before it is written out: no path names a
solution, no file holds a line of solution code that the starter does not already give (exit status 1
and nothing written if one does). Students also need the ``textsampling`` package installed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ROOT / "assignments"
STARTERS = ["01_metropolis_hastings.py", "02_mlm_gibbs_sweep.py", "03_cgmh_insert_delete.py"]
SOLUTIONS = {
    "01_metropolis_hastings.py": "ex01_metropolis_hastings.py",
    "02_mlm_gibbs_sweep.py": "ex02_mlm_gibbs_sweep.py",
    "03_cgmh_insert_delete.py": "ex03_cgmh_insert_delete.py",
}


def _code_lines(text: str) -> set:
    """Stripped lines of code, without blanks, comments, docstrings and bare imports/keywords."""
    lines, in_docstring = set(), False
    for raw in text.splitlines():
        line = raw.strip()
        quotes = line.count('"""') + line.count("'''")
        if in_docstring:
            in_docstring = quotes % 2 == 0
            continue
        if line.startswith(('"""', "'''")):
            in_docstring = quotes % 2 == 1
            continue
        if not line or line.startswith("#") or line.startswith(("import ", "from ")):
            continue
        line = line.split("  #")[0].rstrip()
        if len(line) >= 28:  # "y = x.copy()", "if n == 1 or not positions:" and the like say nothing
            lines.add(line)
    return lines


def solution_lines() -> set:
    """Lines of the solutions that their starters do not already hold (the answer, not the scaffold)."""
    lines = set()
    for starter, solution in SOLUTIONS.items():
        given = _code_lines((ASSIGNMENTS / starter).read_text(encoding="utf-8"))
        lines |= _code_lines((ASSIGNMENTS / "solutions" / solution).read_text(encoding="utf-8")) - given
    return lines


def leaks(folder: Path) -> list:
    """``(file, line)`` for every path naming a solution and every solution line found under ``folder``."""
    answer = solution_lines()
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if "solution" in str(relative).lower():
            found.append((str(relative), "(a solution by its name)"))
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".ipynb":
            import json

            text = "\n".join("".join(cell.get("source", "")) for cell in json.loads(text).get("cells", []))
        for line in sorted(_code_lines(text) & answer):
            found.append((str(relative), line))
    return found


def build(output: Path, notebooks: bool = True) -> Path:
    """Write the bundle to ``output`` and ``output.zip``; returns ``output``. Raises ``RuntimeError``
    (nothing written) if a solution would leak."""
    output = Path(output)
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch) / output.name
        staging.mkdir()
        shutil.copyfile(ASSIGNMENTS / "STUDENTS.md", staging / "README.md")
        shutil.copyfile(ASSIGNMENTS / "autograder.py", staging / "autograder.py")
        for starter in STARTERS:
            shutil.copyfile(ASSIGNMENTS / starter, staging / starter)
            if notebooks:
                import jupytext

                notebook = jupytext.read(ASSIGNMENTS / starter)
                jupytext.write(notebook, staging / starter.replace(".py", ".ipynb"))
        found = leaks(staging)
        if found:
            raise RuntimeError("solution code would reach the students: "
                               + "; ".join(f"{file}: {line}" for file, line in found[:5]))
        if output.exists():
            shutil.rmtree(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, output)
    archive = output.with_name(output.name + ".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(output.rglob("*")):
            zipped.write(path, Path(output.name) / path.relative_to(output))
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="dist/student-bundle", help="bundle folder (default %(default)s)")
    parser.add_argument("--no-notebooks", dest="notebooks", action="store_false",
                        help="ship the .py starters only (no jupytext needed)")
    args = parser.parse_args(argv)
    try:
        output = build(Path(args.output), args.notebooks)
    except RuntimeError as error:
        print(f"student_bundle: error: {error}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:
        print(f"student_bundle: error: {error}; install jupytext or pass --no-notebooks", file=sys.stderr)
        return 2
    files = sorted(p.name for p in output.iterdir())
    print(f"student bundle: {output}/ and {output}.zip ({', '.join(files)}); no solutions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
