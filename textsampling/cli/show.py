"""``textsampling show RUN``: a run's samples as a table, or as JSON lines.

``RUN`` is a ``generate`` output folder (its ``samples.jsonl`` is read; its ``run.json``, when there,
names the sampler in a header line) or the path of a ``samples.jsonl``; without it, the newest run under
``runs/`` (where ``generate`` writes by default), named in the first line. One row per record, in the
file's order (step by step, chain by chain); the columns are those the sampler wrote:

``chain``, ``step``; ``move`` (cgmh, anneal: replace / insert / delete); the score — ``log rho``
(cgmh, anneal), ``energy`` (mh, gibbs; ``-`` while a Gibbs sentence still holds [MASK]) or ``score``
(beam: the sum of its log-probabilities); ``accepted`` (mh, cgmh, anneal) or ``changed`` (gibbs, which
always accepts: did the step change the sentence); then the sentence, last, so that the columns line
up; a decoded sentence that reached ``--max-length`` without END ends in ``[truncated]``.

``--every K`` keeps, of each chain, its K-th, 2K-th, ... record and always its last one (the rule of
``generate --keep-every``: the sentence a chain ended on is always shown). A long sentence is cut to
``--width`` characters (default: what the terminal leaves beside the other columns), marked ``…``;
``--width 0`` never cuts. ``--json`` prints the selected records as they are in the file, one JSON
line each.

A missing file, a line that is not a JSON record, or a ``--chain`` the run does not have is refused in
one line (exit status 2). A last line cut by an interruption (no newline, not JSON) is skipped with a
note on stderr, as ``generate --resume`` would redo it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

__all__ = [
    "add_arguments", "run", "newest_run", "read_samples", "select", "format_table", "SCORE_FIELDS", "FLAG_FIELDS",
]

HELP_DESCRIPTION = """\
Print a run's samples as a table: chain, step, move (cgmh/anneal), log rho or energy or score (whichever
the sampler wrote), accepted or changed (gibbs), and the sentence (last, cut to --width).

RUN is a folder written by textsampling generate, or a samples.jsonl file (default: the newest run under
runs/). --every K shows each chain's
K-th, 2K-th, ... record and always its last (as generate --keep-every). --json prints the selected
records as JSON lines, unchanged. Bad input (no such file, a damaged line, an unknown --chain) is one
line on stderr and exit status 2.

examples:
  textsampling show                      (the newest run under runs/)
  textsampling show runs/gibbs-20260101-120000
  textsampling show runs/cgmh-20260101-120000 --chain 0,3 --every 10
  textsampling show runs/mh-20260101-120000/samples.jsonl --chain 2 --json
"""

#: Where ``generate`` writes when ``--output`` is not given (its DEFAULT_OUTPUT_ROOT; not imported, so that
#: ``show`` does not import the generate module).
DEFAULT_RUNS = "runs"
#: Record field -> column header, the first one present in a run is shown.
SCORE_FIELDS = {"log_prob": "log rho", "energy": "energy", "score": "score"}
#: Boolean record field -> column header, the first one present in a run is shown.
FLAG_FIELDS = {"accepted": "accepted", "changed": "changed"}
#: Narrowest sentence column when the width comes from the terminal.
MIN_SENTENCE_WIDTH = 20


def _integer_at_least(minimum: int, meaning: str = ""):
    """An argparse type: an int >= ``minimum``, else an error that says what is valid."""
    valid = f"an integer >= {minimum}{meaning}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {valid}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {valid}, got {value}")
        return value

    return parse


_positive = _integer_at_least(1)
_width = _integer_at_least(0, " (0: never cut)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``show`` options to ``parser`` (used by :mod:`textsampling.cli`)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("run", metavar="RUN", nargs="?", default=None,
                        help="a folder written by textsampling generate, or its samples.jsonl (default: the newest "
                             f"run under {DEFAULT_RUNS}/, where generate writes when --output is not given)")
    parser.add_argument("--chain", action="append", default=None, metavar="N",
                        help="show only these chains: repeat it (--chain 0 --chain 2) or give a list (--chain 0,2) "
                             "(default: every chain)")
    parser.add_argument("--every", type=_positive, default=1, metavar="K",
                        help="each chain's K-th, 2K-th, ... record and always its last")
    parser.add_argument("--json", action="store_true", help="print the selected records as JSON lines, unchanged")
    parser.add_argument("--width", type=_width, default=None,
                        help="cut sentences to this many characters, 0 never (default: the terminal's width less "
                             "the other columns)")


def newest_run(root=None) -> Path:
    """The run folder under ``root`` (default ``runs/``) whose ``samples.jsonl`` was written last."""
    root = Path(DEFAULT_RUNS if root is None else root)
    candidates = list(root.glob("*/samples.jsonl")) if root.is_dir() else []
    if not candidates:
        raise FileNotFoundError(f"RUN not given and no run under {root}/ (from this folder): give a textsampling "
                                "generate output folder or its samples.jsonl")
    return max(candidates, key=lambda path: (path.stat().st_mtime_ns, str(path))).parent


def _samples_path(run) -> Path:
    path = Path(run)
    if path.is_dir():
        samples = path / "samples.jsonl"
        if not samples.is_file():
            raise FileNotFoundError(f"RUN {run}: the folder holds no samples.jsonl (is it a textsampling generate "
                                    "output folder?)")
        return samples
    if not path.exists():
        raise FileNotFoundError(f"RUN {run}: no such folder or file (give a textsampling generate output folder "
                                "or its samples.jsonl)")
    return path


def read_samples(run) -> tuple:
    """``(records, lines, skipped_cut_line)`` of a run folder or samples file.

    Every line must be a JSON object with integer ``chain`` and ``step`` and a ``text``; the first that
    is not raises ``ValueError`` naming the file and line. A last line without its newline that is not
    JSON (cut by an interruption) is skipped.
    """
    path = _samples_path(run)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file of JSON lines") from None
    lines = text.splitlines(keepends=True)
    skipped = False
    records, kept = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise ValueError(f"{path} line {number} is empty: a samples file has one JSON record per line")
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines) and not line.endswith("\n"):
                skipped = True  # cut by an interruption mid-line: generate --resume redoes it
                break
            raise ValueError(f"{path} line {number} is not valid JSON: {line[:60].rstrip()!r}") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path} line {number} is not a JSON object (a record)")
        for name in ("chain", "step"):
            value = record.get(name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{path} line {number}: the record has no integer {name!r}")
        if not isinstance(record.get("text"), str):
            raise ValueError(f"{path} line {number}: the record has no 'text'")
        records.append(record)
        kept.append(line.rstrip("\n"))
    return records, kept, skipped


def _chains_asked(values) -> list | None:
    """``--chain`` values (each an integer or a comma-separated list) -> sorted unique chain numbers."""
    if not values:
        return None
    chains = set()
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                chain = int(part)
            except ValueError:
                raise ValueError(f"--chain must be chain numbers (e.g. --chain 0,2), got {value!r}") from None
            if chain < 0:
                raise ValueError(f"--chain must be chain numbers >= 0, got {chain}")
            chains.add(chain)
    if not chains:
        raise ValueError(f"--chain must name at least one chain, got {values!r}")
    return sorted(chains)


def select(records, chains=None, every: int = 1) -> list:
    """Indices of the records shown: those of ``chains`` (None: all), each chain's ``every``-th and last.

    Raises ``ValueError`` for a chain the records do not hold, naming the ones they do.
    """
    present = sorted({record["chain"] for record in records})
    if chains is not None:
        unknown = [chain for chain in chains if chain not in present]
        if unknown:
            held = (f"chains {present[0]}..{present[-1]}" if present == list(range(present[0], present[-1] + 1))
                    else "chains " + ", ".join(map(str, present))) if present else "no records"
            raise ValueError(f"--chain {','.join(map(str, unknown))}: the run has {held}")
    wanted = set(present if chains is None else chains)
    positions: dict = {}  # chain -> indices of its records, in file order
    for index, record in enumerate(records):
        if record["chain"] in wanted:
            positions.setdefault(record["chain"], []).append(index)
    shown = set()
    for indices in positions.values():
        shown.update(indices[every - 1 :: every])
        shown.add(indices[-1])  # the sentence the chain ended on
    return sorted(shown)


def _first_present(records, fields: dict):
    for field in fields:
        if any(field in record for record in records):
            return field
    return None


def _cell(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "score":
        return f"{value:.3f}"
    if kind == "flag":
        return "yes" if value else "no"
    return str(value)


def format_table(records, width=None) -> str:
    """The table of ``records`` (already selected); ``width``: the sentence column's cut, 0 or None never."""
    score = _first_present(records, SCORE_FIELDS)
    flag = _first_present(records, FLAG_FIELDS)
    has_move = any("move" in record for record in records)
    columns = [("chain", "chain", ""), ("step", "step", "")]
    if has_move:
        columns.append(("move", "move", ""))
    if score is not None:
        columns.append((score, SCORE_FIELDS[score], "score"))
    if flag is not None:
        columns.append((flag, FLAG_FIELDS[flag], "flag"))
    cells = [[_cell(record.get(field), kind) for field, _, kind in columns] for record in records]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, (_, header, _) in enumerate(columns)]

    def sentence(record) -> str:
        text = record["text"] + (" [truncated]" if record.get("truncated") else "")
        if width and len(text) > width:
            text = text[: max(width - 1, 1)] + "…"
        return text

    # numbers to the right, words to the left
    def line(values) -> str:
        return "  ".join(value.ljust(w) if header in ("move", "accepted", "changed") else value.rjust(w)
                         for value, w, (_, header, _) in zip(values, widths, columns))

    out = [line([header for _, header, _ in columns]) + "  sentence"]
    for row, record in zip(cells, records):
        out.append(line(row) + "  " + sentence(record))
    return "\n".join(out)


def _header(path: Path) -> str | None:
    """One line from the run's ``run.json`` (beside the samples file), or None without one."""
    settings_file = path.parent / "run.json"
    try:
        settings = json.loads(settings_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(settings, dict) or "sampler" not in settings:
        return None
    parts = [f"sampler {settings['sampler']}"]
    for name, label in (("num_chains", "chains"), ("num_steps", "steps"), ("keep_every", "keep every")):
        if settings.get(name) is not None and (name != "keep_every" or settings.get("num_steps") is not None):
            parts.append(f"{label} {settings[name]}")  # a decoder has no steps, nothing kept every k
    return f"{path}: " + ", ".join(parts)


def run(args) -> int:
    """Print the selected records of ``args.run`` as a table or JSON lines."""
    chains = _chains_asked(args.chain)
    if args.run is None:
        args.run = newest_run()
        if not args.json:
            print(f"{args.run} (the newest run)")
    records, lines, skipped = read_samples(args.run)
    path = _samples_path(args.run)
    if skipped:
        print(f"textsampling show: note: the last line of {path} was cut by an interruption: not shown",
              file=sys.stderr)
    shown = select(records, chains, args.every)
    if args.json:
        for index in shown:
            print(lines[index])
        return 0
    header = _header(path)
    if header:
        print(header)
    if not shown:
        print("(no samples yet)")
        return 0
    selected = [records[index] for index in shown]
    width = args.width
    if width is None:
        other = len(format_table([{**record, "text": ""} for record in selected]).splitlines()[0]) - len("sentence")
        width = max(shutil.get_terminal_size((120, 24)).columns - other, MIN_SENTENCE_WIDTH)
    print(format_table(selected, width))
    return 0
