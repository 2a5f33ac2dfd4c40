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
    parser = argparse.ArgumentParser(
        prog="textsampling",
        description="Text found by search: sample or maximise an unnormalised distribution over texts.",
    )
    from textsampling import __version__

    parser.add_argument("--version", action="version", version=f"textsampling {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue  # subcommand not shipped in this version
        subparser = subparsers.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, OSError) as error:
        # Bad input is reported as one clear line, not a traceback.
        print(f"textsampling {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
