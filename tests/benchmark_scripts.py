"""The benchmark scripts as modules, for their smoke tests (the benchmarks are scripts, not a package)."""

import importlib.util
from pathlib import Path


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
