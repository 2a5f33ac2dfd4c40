"""`textsampling <command> --help` is plain text (no reStructuredText or LaTeX) and spells out defaults."""

import re

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
                     "(default: cpu)", "(default: 16)", "(default: 0.9)", "(default: 500 for gibbs/mh, 100 for cgmh/anneal",
                     "beam search: ONE sentence", "greedy", "--allow-pickle", "[truncated]"]:
        assert expected in text, expected


def test_check_help_says_it_runs_the_users_code():
    parser, _ = cli.subcommand_parser("check")
    text = " ".join(parser.format_help().split())
    assert "imports the module you name (module:function or path/to/file.py:function) and runs its code" in text
    assert "(default: 0.0001)" in text or "default 0.0001" in text


def test_plain_text_of_a_docstring():
    assert cli.plain_text(r"draw :math:`x_0 \sim \pi`, see :func:`~textsampling.testing.conformance.check_step` and ``--kind``") == (
        "draw x_0 ~ π, see check_step and --kind")
