"""The ``textsampling check`` command: load the user's step function, run
:func:`~textsampling.testing.conformance.check_step`, print the report (and the plot).

Its ``--help`` description is the conformance kit's own documentation
(:mod:`textsampling.testing.conformance`), in plain text.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable

from textsampling.targets.named import TARGETS
from textsampling.testing import conformance
from textsampling.testing.conformance import (
    DEFAULT_BUDGET,
    DEFAULT_FALSE_FAIL_RATE,
    DEFAULT_NUM_CHAINS,
    DEFAULT_TEMPERATURE,
    DEFAULT_TV_ALTERNATIVE,
    KINDS,
    check_step,
)

__all__ = ["load_step_function", "add_arguments", "run"]

# What `textsampling check --help` says first (turned into plain text by textsampling.cli): the
# conformance kit's documentation, kept in one place.
HELP_DOCSTRING = conformance.__doc__


# ============================================================================ loading the user's function
def load_step_function(spec: str) -> Callable:
    """Import ``module:function`` (a module on ``sys.path``) or ``path/to/file.py:function``.

    Raises
    ------
    ValueError
        If ``spec`` has no ``:``, the module or file cannot be found, or the attribute is missing or not
        callable.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"step function must be given as module:function or path/to/file.py:function, got {spec!r}")
    module_part, _, function_name = spec.rpartition(":")
    if not module_part or not function_name:
        raise ValueError(f"step function must be given as module:function or path/to/file.py:function, got {spec!r}")
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        path = Path(module_part)
        if not path.is_file():
            raise ValueError(f"step function file {module_part!r} does not exist")
        module_name = f"_textsampling_check_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        # Imports next to the file (helpers of the user's code) should resolve.
        sys.path.insert(0, str(path.resolve().parent))
        try:
            module_spec.loader.exec_module(module)
        finally:
            sys.path.pop(0)
    else:
        if "" not in sys.path and "." not in sys.path:
            sys.path.insert(0, "")  # the working directory, as `python -m` would see it
        try:
            module = importlib.import_module(module_part)
        except ModuleNotFoundError as error:
            raise ValueError(f"cannot import module {module_part!r} for the step function: {error}") from None
    function = getattr(module, function_name, None)
    if function is None:
        raise ValueError(f"module {module_part!r} has no attribute {function_name!r}")
    if not callable(function):
        raise ValueError(f"{spec} is a {type(function).__name__}, not a function")
    return function



# ============================================================================ the command line
def _kinds_help() -> str:
    lines = ["step function signatures by --kind:"]
    for kind in KINDS.values():
        lines.append(f"  {kind.name:<10} {kind.signature}: {kind.description} (targets: {', '.join(kind.targets)})")
    lines.append("targets:")
    for name, (description, _) in TARGETS.items():
        lines.append(f"  {name:<18} {description}")
    lines.append("exit status: 0 passes, 1 fails (or the step raised / returned something malformed), 2 usage error")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``textsampling check`` (called by :func:`textsampling.cli.main`)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _kinds_help()
    parser.add_argument("step", help="the step function: module:function or path/to/file.py:function")
    parser.add_argument("--kind", required=True, choices=sorted(KINDS), help="what the step function is")
    parser.add_argument("--target", default=None, help="built-in target (default: the kind's first)")
    parser.add_argument("--false-fail-rate", type=float, default=DEFAULT_FALSE_FAIL_RATE,
                        help="probability that a correct sampler fails the check (default %(default)g)")
    parser.add_argument("--tv", type=float, default=DEFAULT_TV_ALTERNATIVE, dest="tv_alternative",
                        help="TV distance the reported power refers to (default %(default)g)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                        help="opt-in: seconds the step calls may take; the sample sizes shrink to fit and "
                        "the report says so (default: no budget, fixed sizes, a verdict that depends on "
                        "--seed alone)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator passed to the step (default 0)")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                        help="fixed temperature of an anneal check (default %(default)g)")
    parser.add_argument("--num-samples", type=int, default=None, help="exact draws of the one-step tests")
    parser.add_argument("--num-chains", type=int, default=DEFAULT_NUM_CHAINS, help="chains of the long-run test")
    parser.add_argument("--num-steps", type=int, default=None, help="steps per chain of the long-run test")
    parser.add_argument("--reversible", action=argparse.BooleanOptionalAction, default=None,
                        help="run the reversibility test (default: for mh, anneal, cgmh)")
    parser.add_argument("--temperatures", type=_temperatures, default=None, metavar="T0,T1,...",
                        help="pt-swap: the ladder of the replicas, strictly increasing, coldest first (default: "
                             "1,2,4)")
    parser.add_argument("--exact-kernel", action=argparse.BooleanOptionalAction, default=None,
                        help="pt-swap: also test the pairs against the exact kernel of the stochastic even-odd swap "
                             "(parallel_tempering.swap); --no-exact-kernel for a correct swap of another scheme "
                             "(default: when the joint space has at most 2000 states)")
    parser.add_argument("--plot", default=None, metavar="PATH", help="write observed vs expected frequencies here")


def _temperatures(text: str) -> tuple:
    """``--temperatures 1,2,4`` -> (1.0, 2.0, 4.0); the ladder's order is checked with the kind."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--temperatures must be comma-separated numbers, e.g. 1,2,4, got "
                                         f"{text!r}") from None
    if len(values) < 2:
        raise argparse.ArgumentTypeError(f"--temperatures needs at least two temperatures, e.g. 1,2,4, got {text!r}")
    return values


def _swap_options(args) -> dict:
    """``temperatures`` and ``exact_kernel`` when given (``check_step`` refuses them for a kind but pt-swap)."""
    options = {"temperatures": getattr(args, "temperatures", None), "exact_kernel": getattr(args, "exact_kernel", None)}
    return {name: value for name, value in options.items() if value is not None}


def run(args) -> int:
    """Run ``textsampling check``: print the report; 0 passes, 1 fails, 2 usage error."""
    try:
        step_fn = load_step_function(args.step)
        report = check_step(
            step_fn,
            args.kind,
            args.target,
            false_fail_rate=args.false_fail_rate,
            tv_alternative=args.tv_alternative,
            budget=args.budget,
            seed=args.seed,
            temperature=args.temperature,
            num_samples=args.num_samples,
            num_chains=args.num_chains,
            num_steps=args.num_steps,
            reversible=args.reversible,
            step_name=args.step,
            **_swap_options(args),
        )
    except (ValueError, TypeError) as error:
        print(f"textsampling check: error: {error}", file=sys.stderr)
        return 2
    print(report.format())
    if args.plot:
        print(f"plot written to {report.plot(args.plot)}")
    return 0 if report.passed else 1
