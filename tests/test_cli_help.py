"""`textsampling <command> --help` is plain text (no reStructuredText or LaTeX) and spells out defaults."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from textsampling import cli

MARKUP = re.compile(r"``|:(math|mod|func|class|meth|attr|data)`|\\[a-z]+|\*\*")


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_help_is_plain_text(name):
    parser, _ = cli.subcommand_parser(name)
    text = parser.format_help()
    assert not MARKUP.search(text), MARKUP.search(text)


def test_generate_help_states_the_defaults_and_what_it_promises():
    parser, _ = cli.subcommand_parser("generate")
    text = " ".join(parser.format_help().split())  # argparse wraps lines: compare with single spaces
    for expected in ["(default: 8; greedy and beam return 1)", "(default: a fresh runs/<sampler>-<YYYYmmdd-HHMMSS>)",
                     "(default: cpu)", "(default: 16)", "(default: 0.9)",
                     "(default: 500 for gibbs/mh, 100 for cgmh/anneal", "beam search: ONE sentence", "greedy",
                     "--allow-pickle", "[truncated]", "mixing.json", "traces.png", "textsampling show"]:
        assert expected in text, expected


def test_check_help_says_it_runs_the_users_code():
    parser, _ = cli.subcommand_parser("check")
    text = " ".join(parser.format_help().split())
    assert "imports the module you name (module:function or path/to/file.py:function) and runs its code" in text
    assert "(default: 0.0001)" in text or "default 0.0001" in text


def test_plain_text_of_a_docstring():
    docstring = r"draw :math:`x_0 \sim \pi`, see :func:`~textsampling.testing.conformance.check_step` and ``--kind``"
    assert cli.plain_text(docstring) == "draw x_0 ~ π, see check_step and --kind"


def test_the_console_script_and_python_m_reach_the_same_main():
    # pyproject.toml's [project.scripts] entry resolves to cli.main, and `python -m textsampling.cli`
    # runs it too (the check's help comes from textsampling.cli.check).
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    scripts = pyproject.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    module_name, _, function_name = re.search(r'^textsampling = "([^"]+)"', scripts, flags=re.M)[1].partition(":")
    assert getattr(importlib.import_module(module_name), function_name) is cli.main
    assert cli.SUBCOMMANDS["check"][0] == "textsampling.cli.check"
    done = subprocess.run([sys.executable, "-m", "textsampling.cli", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("textsampling "), done
    # `python -m textsampling` (what `torchrun -m textsampling generate ...` runs) is the same main
    done = subprocess.run([sys.executable, "-m", "textsampling", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("textsampling "), done


def test_the_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name, (_, help_text) in cli.SUBCOMMANDS.items():
        assert f"{name}: " in text and " ".join(help_text.split()[:3]) in " ".join(text.split()), name
