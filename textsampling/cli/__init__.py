"""The ``textsampling`` console script.

Subcommands:

``demo``
    A tour of the toy samplers of parts 1–2: for each algorithm, its estimate against the exact answer
    (TV distance, acceptance rate, ESS), with plots written to a folder it names.
``generate``
    Text from a language model by MLM Gibbs, MLM Metropolis–Hastings, CGMH, annealing or a decoding
    baseline (parts 3–4).
``evaluate``
    Quality and diversity of generated texts as the papers report them: BLEU against reference
    corpora, self-BLEU (named conventions), % unique n-grams, distinct-n, length, perplexity.
``check``
    Does a user's step function really sample its target? (the conformance kit). It imports the
    user's module and runs its code, as ``python`` would: check only code you trust.
``show``
    A ``generate`` run's samples as a table (chain, step, score, accepted, sentence) or JSON lines.

``--help`` of every subcommand is plain text: defaults are spelled out, and the reStructuredText of
the modules' docstrings (written for the API reference) is turned into plain words.

Exit status: 0 done (``check``: passed), 1 ``check`` failed, 2 bad input (one line on stderr, no
traceback), 130 interrupted by Ctrl-C (no traceback; ``generate`` keeps the samples it wrote).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import textwrap

# subcommand -> (module, one-line help). Modules are imported only when their subcommand runs, so
# `textsampling demo` does not pay for importing transformers.
SUBCOMMANDS = {
    "demo": ("textsampling.cli.demo", "tour of the toy samplers against exact answers, with plots"),
    "generate": ("textsampling.cli.generate", "generate text with an LM sampler (Gibbs, MH, CGMH, ...)"),
    "evaluate": ("textsampling.cli.evaluate", "BLEU, self-BLEU, % unique n-grams, perplexity of generated texts"),
    "check": ("textsampling.cli.check", "check that a step function samples its target (imports and runs your module)"),
    "show": ("textsampling.cli.show", "print a generate run's samples as a table (--chain, --every, --json)"),
}

#: Said first in ``textsampling check --help``: the check executes the user's code.
CHECK_RUNS_YOUR_CODE = (
    "Note: textsampling check imports the module you name (module:function or path/to/file.py:function) "
    "and runs its code, as `python` would: everything at the top of that file runs, then your step "
    "function, thousands of times. Check only code you trust."
)

# reStructuredText and LaTeX of the docstrings -> plain text for --help
_ROLE = re.compile(r":(?:math|mod|func|class|meth|attr|data|obj|exc|ref):`(~?)([^`]*)`")
_WORD_END = r"(?![A-Za-z])"
_LATEX = [
    (r"\\(?:mathrm|text|operatorname|mathbf)\{([^}]*)\}", r"\1"),
    (r"\\sim" + _WORD_END, "~"), (r"\\propto" + _WORD_END, "∝"), (r"\\mid" + _WORD_END, "|"),
    (r"\\log" + _WORD_END, "log"), (r"\\exp" + _WORD_END, "exp"), (r"\\pi" + _WORD_END, "π"),
    (r"\\rho" + _WORD_END, "ρ"), (r"\\gamma" + _WORD_END, "γ"), (r"\\chi" + _WORD_END, "χ"),
    (r"\\sigma" + _WORD_END, "σ"), (r"\\le" + _WORD_END, "<="), (r"\\ge" + _WORD_END, ">="),
    (r"\\cdot" + _WORD_END, "·"), (r"\\to" + _WORD_END, "->"), (r"\\infty" + _WORD_END, "inf"),
    (r"\\[,;! ]", " "), (r"\\_", "_"), (r"\{([^{}]*)\}", r"\1"),
]


def _role_text(match) -> str:
    """``:math:`x``` -> x; ``:func:`~a.b.c``` -> c (the ~ of Sphinx: last component only)."""
    tilde, target = match.group(1), match.group(2)
    return target.split(".")[-1] if tilde else target


def plain_text(docstring: str) -> str:
    """A docstring's reStructuredText roles, literals, bold and LaTeX turned into plain text for --help."""
    text = _ROLE.sub(_role_text, docstring or "")
    text = re.sub(r"``([^`]*)``", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    for pattern, replacement in _LATEX:
        text = re.sub(pattern, replacement, text)
    return text


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends ``(default: X)`` to options whose help does not
    already say their default (None and False are not shown: "not given" is the default there)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text or default in (None, False, "") or default is argparse.SUPPRESS
                or not action.option_strings):
            return text
        return f"{text} (default: {default})"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: one sub-parser per subcommand, filled in only for the one that runs."""
    from textsampling import __version__

    parser = argparse.ArgumentParser(
        prog="textsampling",
        description="Text found by search: sample or maximise an unnormalised distribution over texts.",
    )
    parser.add_argument("--version", action="version", version=f"textsampling {__version__}")
    parser.add_argument("command", choices=sorted(SUBCOMMANDS), metavar="COMMAND",
                        # argparse %-formats help strings: a literal % (as in "% unique") is doubled
                        help="; ".join(f"{name}: {help_text}" for name, (_, help_text) in SUBCOMMANDS.items())
                        .replace("%", "%%"))
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="arguments of the subcommand")
    return parser


def subcommand_parser(name: str):
    """Import the subcommand's module (only this one) and build its argument parser (plain-text help)."""
    module_name, help_text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    # HELP_DESCRIPTION: plain text already; HELP_DOCSTRING: a docstring kept elsewhere (check's is the
    # conformance kit's), turned into plain text like the module's own.
    description = getattr(module, "HELP_DESCRIPTION", None) or plain_text(
        getattr(module, "HELP_DOCSTRING", None) or module.__doc__)
    if name == "check":
        description = textwrap.fill(CHECK_RUNS_YOUR_CODE, width=100) + "\n\n" + description
    parser = argparse.ArgumentParser(prog=f"textsampling {name}", description=description)
    module.add_arguments(parser)
    parser.formatter_class = HelpFormatter  # after add_arguments, which may set its own
    if parser.epilog:
        parser.epilog = plain_text(parser.epilog)
    return parser, module


def prefer_huge_pages() -> bool:
    """Let torch's CPU allocator ask for transparent huge pages, unless the user said otherwise.

    Sets ``THP_MEM_ALLOC_ENABLE=1`` (a PyTorch setting: allocations of 2 MiB and more are aligned and
    ``madvise``'d for huge pages, as NumPy does for its large arrays) when it is unset and torch is not
    imported yet: torch reads it once, at its first allocation. Large CPU batches then touch 2 MiB pages
    instead of 4 KiB ones: the MH twin at 1e7 chains took 8.3e5 minor page faults a step without and
    2.6e4 with it (``benchmarks/bench_twins.py``, README). ``THP_MEM_ALLOC_ENABLE=0`` opts out. The
    variable stays in this process's environment, so processes it starts inherit it (``torchrun``'s
    workers run the console script and decide for themselves). Returns whether this call set it.
    """
    if "torch" in sys.modules or "THP_MEM_ALLOC_ENABLE" in os.environ:
        return False
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    return True


def main(argv=None) -> int:
    """Run a subcommand: its exit status; 2 for bad input (one line), 130 for Ctrl-C (no traceback)."""
    prefer_huge_pages()  # before a subcommand imports torch
    command = "textsampling"
    try:
        top = build_parser().parse_args(argv)
        command = f"textsampling {top.command}"
        parser, module = subcommand_parser(top.command)
        args = parser.parse_args(top.arguments)
        args.command = top.command
        try:
            return int(module.run(args) or 0)
        except (ValueError, TypeError, FileNotFoundError, OSError) as error:
            # Bad input is reported as one clear line, not a traceback.
            print(f"{command}: error: {error}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        # Ctrl-C at any moment (imports, model loading, sampling): no traceback. A run that was sampling
        # has already said where its samples are.
        print(f"\n{command}: interrupted", file=sys.stderr)
        return 130

