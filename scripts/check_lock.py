"""Fail when an installed package's version differs from requirements.lock (the install drifted).

Usage:
    python scripts/check_lock.py requirements.lock          # the running interpreter's packages
    pip list --format=freeze | python scripts/check_lock.py --diff requirements.lock
                                                            # print how a freeze differs; exit 1 if it does

Every installed distribution must appear in the lock at exactly its version; only ``pip`` (pinned by
the Makefile), the project itself (installed editable from the working tree) and the virtual
environment's own bootstrap packages are exempt. Packages of the lock that are not installed are fine:
the lock covers every extra, an install takes a subset.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

EXEMPT = {"pip", "textsampling"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: str) -> dict:
    pins = {}
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match is None:
            raise SystemExit(f"check_lock: {path}: not an exact pin: {line!r}")
        pins[normalise(match.group(1))] = match.group(2)
    return pins


def installed_from_freeze(text: str) -> dict:
    installed = {}
    for line in text.splitlines():
        if "==" in line:
            name, version = line.strip().split("==", 1)
            installed[normalise(name)] = version
    return installed


def main(argv) -> int:
    diff_mode = "--diff" in argv
    paths = [a for a in argv if not a.startswith("--")]
    if len(paths) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    pins = read_pins(paths[0])
    if diff_mode:
        installed = installed_from_freeze(sys.stdin.read())
    else:
        installed = {normalise(d.metadata["Name"]): d.version for d in metadata.distributions()}
    problems = []
    for name, version in sorted(installed.items()):
        if name in EXEMPT:
            continue
        if name not in pins:
            problems.append(f"{name}=={version} is installed but not in the lock")
        elif pins[name] != version:
            problems.append(f"{name}=={version} is installed, the lock says {pins[name]}")
    if diff_mode:
        title = f"newest allowed versions that differ from {paths[0]}"
        print(f"{title}: {len(problems)}" + "".join(f"\n  {p}" for p in problems))
        return 1 if problems else 0
    if problems:
        print(f"check_lock: the install differs from {paths[0]} (run `make clean install`; "
              "if pyproject.toml changed, `make lock`):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"check_lock: all {len(installed)} installed packages match {paths[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
