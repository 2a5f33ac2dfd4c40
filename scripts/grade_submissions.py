"""Grade a folder of submitted exercises into one table: a row per student per exercise.

    python scripts/grade_submissions.py SUBMISSIONS --output grades [--jobs 2] [--timeout 600] [--budget SECONDS]

``SUBMISSIONS`` holds either one folder per student (``alice/01_metropolis_hastings.ipynb``, any depth)
or files named ``<student>_<exercise file>`` (``alice_01_metropolis_hastings.py``) — or both. A file's
exercise is read from its name (``01``, ``02``, ``03``) or, failing that, from the one exercise function
it defines. Each file is graded by ``assignments/autograder.py`` in its own process (student code can
crash, loop or exit; the timeout ends it). The conformance stage runs its fixed sample sizes, so a
verdict depends on the seed alone, never on the machine's load; ``--budget SECONDS`` opts into a time
limit per file that shrinks the sizes of a slow step (its report then says so). Writes, under ``--output``:

* ``grades.csv``  — student, exercise, file, passed, verdict, feedback (the first thing to fix), seconds;
* ``grades.json`` — the same rows, each with the autograder's full stages;
* ``reports/<student>-<exercise>.txt`` — the report the student would see, to hand back.

A student with no file for an exercise gets a row "no submission". Exit status: 0 when every row was
graded (whatever the verdicts), 2 on a usage error. The autograder runs the students' code: grade in a
container or an account that holds nothing else.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUTOGRADER = ROOT / "assignments" / "autograder.py"
EXERCISES = {1: "mh_step", 2: "mlm_gibbs_sweep", 3: "insert_delete_step"}
SUFFIXES = (".py", ".ipynb")
COLUMNS = ["student", "exercise", "file", "passed", "verdict", "feedback", "seconds"]


def exercise_from_name(name: str) -> int | None:
    match = re.search(r"(?<![0-9])0([1-3])(?![0-9])", name)
    return int(match.group(1)) if match else None


def exercise_from_source(path: Path) -> int | None:
    """The exercise whose function the file defines, if exactly one."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = [number for number, function in EXERCISES.items() if re.search(rf"def\s+{function}\s*\(", text)]
    return found[0] if len(found) == 1 else None


def student_from_name(name: str) -> str:
    """``alice_01_metropolis_hastings.py`` -> ``alice``; a name without a prefix is its own student."""
    stem = Path(name).stem
    match = re.search(r"(?<![0-9])0[1-3](?![0-9])", stem)
    prefix = stem[: match.start()] if match else ""
    return prefix.strip("_-. ") or stem


def discover(folder: Path) -> tuple[dict, list]:
    """``{(student, exercise): [files]}`` and the files whose exercise cannot be told."""
    found, unknown = {}, []

    def skip(path: Path) -> bool:
        return any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(folder).parts)

    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            student, files = entry.name, sorted(p for p in entry.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        elif entry.suffix in SUFFIXES:
            student, files = student_from_name(entry.name), [entry]
        else:
            continue
        for path in files:
            if skip(path):
                continue
            exercise = exercise_from_name(path.name) or exercise_from_source(path)
            if exercise is None:
                unknown.append((student, path))
            else:
                found.setdefault((student, exercise), []).append(path)
    return found, unknown


def grade_file(path: Path, exercise: int, timeout: float, budget: float | None, seed: int) -> dict:
    """Run the autograder on one file in its own process; its result as a dict."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
        result_path = Path(scratch) / "result.json"
        command = [sys.executable, str(AUTOGRADER), str(path.resolve()), "--exercise", str(exercise),
                   "--json", str(result_path), "--seed", str(seed)]
        if budget is not None:
            command += ["--budget", str(budget)]
        try:
            completed = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"passed": False, "verdict": "NOT YET", "seconds": time.perf_counter() - started,
                    "headline": f"timed out after {timeout:g} s (does your step loop forever?)",
                    "report": f"the autograder was stopped after {timeout:g} s", "stages": []}
        seconds = time.perf_counter() - started
        if completed.returncode in (0, 1) and result_path.is_file():
            result = json.loads(result_path.read_text(encoding="utf-8"))
            result["report"] = completed.stdout
            result["seconds"] = seconds
            # The verdict is the autograder's JSON and its exit status together.
            result["passed"] = bool(result.get("passed")) and completed.returncode == 0
            result["verdict"] = "PASSED" if result["passed"] else "NOT YET"
            return result
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        return {"passed": False, "verdict": "NOT YET", "seconds": seconds, "stages": [],
                "headline": f"the autograder did not finish (exit status {completed.returncode}): " + " | ".join(tail),
                "report": completed.stdout + completed.stderr}


def report_name(student: str, exercise: int) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "_", student) + f"-{exercise:02d}.txt"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", help="folder of submissions (one folder per student, or <student>_<file>)")
    parser.add_argument("--output", default="grades",
                        help="folder for grades.csv, grades.json and reports/ (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="files graded at once (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per file (default %(default)g)")
    parser.add_argument("--budget", type=float, default=None,
                        help="opt in: seconds the conformance stage may spend per file, shrinking the sample sizes "
                             "of a slow step (default: no limit; the fixed sizes make a verdict depend on the seed "
                             "alone)")
    parser.add_argument("--seed", type=int, default=0, help="seed passed to every student's step (default 0)")
    args = parser.parse_args(argv)
    folder = Path(args.submissions)
    if not folder.is_dir():
        print(f"grade_submissions: error: submissions {str(folder)!r} is not a folder", file=sys.stderr)
        return 2
    if args.jobs < 1 or args.timeout <= 0 or (args.budget is not None and args.budget <= 0):
        print("grade_submissions: error: --jobs must be >= 1, --timeout and --budget > 0", file=sys.stderr)
        return 2
    found, unknown = discover(folder)
    students = sorted({student for student, _ in found} | {student for student, _ in unknown})
    if not students:
        print(f"grade_submissions: error: no .py or .ipynb files in {str(folder)!r}", file=sys.stderr)
        return 2

    jobs = {}
    for (student, exercise), files in found.items():
        # Several files for one exercise: the last by name is graded, the others are named in the row.
        jobs[(student, exercise)] = (files[-1], files[:-1])
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {key: pool.submit(grade_file, path, key[1], args.timeout, args.budget, args.seed)
                   for key, (path, _) in jobs.items()}
        results = {key: future.result() for key, future in futures.items()}

    output = Path(args.output)
    (output / "reports").mkdir(parents=True, exist_ok=True)
    rows = []
    for student in students:
        for exercise in EXERCISES:
            key = (student, exercise)
            if key not in jobs:
                rows.append({"student": student, "exercise": exercise, "file": "", "passed": False,
                             "verdict": "NOT YET", "feedback": "no submission", "seconds": 0.0, "stages": []})
                continue
            path, ignored = jobs[key]
            result = results[key]
            feedback = result.get("headline") or ""
            if ignored:
                feedback += f" (also found {', '.join(p.name for p in ignored)}: graded {path.name} only)"
            rows.append({"student": student, "exercise": exercise, "file": str(path.relative_to(folder)),
                         "passed": result["passed"], "verdict": result["verdict"], "feedback": feedback,
                         "seconds": round(result["seconds"], 1), "stages": result.get("stages", [])})
            (output / "reports" / report_name(student, exercise)).write_text(result.get("report", ""), encoding="utf-8")
    for student, path in unknown:
        rows.append({"student": student, "exercise": None, "file": str(path.relative_to(folder)), "passed": False,
                     "verdict": "NOT YET", "seconds": 0.0, "stages": [],
                     "feedback": "not graded: cannot tell which exercise (a helper? an answer is named 01_..., "
                                 "02_... or 03_... as its starter, or defines the exercise's function)"})

    with open(output / "grades.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (output / "grades.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    passed = sum(row["passed"] for row in rows)
    print(f"graded {len(students)} students: {passed} of {len(rows)} rows passed; "
          f"wrote {output / 'grades.csv'}, {output / 'grades.json'}, {output / 'reports'}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
