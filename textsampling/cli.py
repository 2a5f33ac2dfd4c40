"""The ``textsampling`` console script.

Subcommands:

``demo``
    A tour of the toy samplers of parts 1–2: for each algorithm, its estimate against the exact answer
    (TV distance, acceptance rate, ESS), with plots written to a folder it names.
``generate``
    Text from a language model by MLM Gibbs, MLM Metropolis–Hastings, CGMH, annealing or a decoding
    baseline (parts 3–4).
``check``
    Does a user's step function really sample its target? (the conformance kit).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help). Modules are imported only when their subcommand runs, so
# `textsampling demo` does not pay for importing transformers.
SUBCOMMANDS = {
    "demo": ("textsampling.demo", "tour of the toy samplers against exact answers, with plots"),
    "generate": ("textsampling.generate", "generate text with an LM sampler (Gibbs, MH, CGMH, ...)"),
    "check": ("textsampling.check", "check that a step function samples its target"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: one sub-parser per subcommand, filled in only for the one that runs."""
    from textsampling import __version__

    parser = argparse.ArgumentParser(
        prog="textsampling",
        description="Text found by search: sample or maximise an unnormalised distribution over texts.",
    )
    parser.add_argument("--version", action="version", version=f"textsampling {__version__}")
    parser.add_argument("command", choices=sorted(SUBCOMMANDS), metavar="COMMAND",
                        help="; ".join(f"{name}: {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()))
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="arguments of the subcommand")
    return parser


def subcommand_parser(name: str):
    """Import the subcommand's module (only this one) and build its argument parser."""
    module_name, help_text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"textsampling {name}", description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    return parser, module


def main(argv=None) -> int:
    top = build_parser().parse_args(argv)
    parser, module = subcommand_parser(top.command)
    args = parser.parse_args(top.arguments)
    args.command = top.command
    try:
        return int(module.run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, OSError) as error:
        # Bad input is reported as one clear line, not a traceback.
        print(f"textsampling {top.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
