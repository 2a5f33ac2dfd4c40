"""The package's layers, as ARCHITECTURE.md ("Layers") states them, hold in the code.

Every module of ``textsampling`` is parsed (``ast``: imports at the top, inside functions and under
``if TYPE_CHECKING`` alike) and these fail:

* an upward import: a module imports one of a higher layer (the order is :data:`LAYERS`);
* a private name taken from another module: ``from m import _x``, or ``m._x`` on a module ``m`` the
  file imported (dunder names such as ``__version__`` are public);
* a private module used outside its package: ``textsampling.lm._hf_common`` is shared by
  ``textsampling.lm.*`` only, ``textsampling._validation`` by all of ``textsampling`` (the leading
  underscore of a module means "not public API", not "private to one file");
* an import cycle between modules (function-level imports count: they only move the cycle to run time).

Known offenders, in modules whose owners are changing them now, are listed in the allow-lists below,
each with what clears it; an entry that no longer occurs fails too, so the lists only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "textsampling"

#: Lowest first. A module may import modules of its own layer and of the layers below it. A module
#: belongs to the layer of the longest prefix that names it (``textsampling`` alone is the root package).
LAYERS = (
    ("foundation", ("textsampling", "textsampling._validation", "textsampling.randomness")),
    ("analysis", ("textsampling.markov", "textsampling.diagnostics", "textsampling.metrics")),
    ("targets", ("textsampling.targets",)),
    ("lm", ("textsampling.lm",)),
    ("reference", ("textsampling.reference",)),
    ("torch", ("textsampling.torch",)),
    ("testing", ("textsampling.testing",)),
    ("gallery", ("textsampling.gallery",)),
    ("cli", ("textsampling.cli", "textsampling.__main__")),  # the entry points sit on top
)

# The allow-lists: known offenders in modules other helpers own while issue 16 reshapes them. The lead
# clears each entry by the change it names, then deletes the entry (a stale entry fails the tests).

#: (importing module, imported module) -> what clears it. Upward imports.
KNOWN_UPWARD = {
}

#: (importing module, "module.name") -> what clears it. Private names taken from another module.
KNOWN_PRIVATE_NAMES = {
}

#: Modules of a cycle -> what clears it.
KNOWN_CYCLES = {
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(package: Path = PACKAGE) -> dict:
    """name -> source of every module of the package."""
    return {module_name(path): path.read_text(encoding="utf-8") for path in sorted(package.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != "textsampling" and module.startswith(prefix + "."))
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS here and in ARCHITECTURE.md")
    return best


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imports_of(module: str, source: str, modules) -> list:
    """``(imported module, name or None, line)`` for every import of a ``textsampling`` module, and
    ``(module, attribute, line)`` for every ``m._x`` on a module ``m`` bound by one of them."""
    tree = ast.parse(source)
    found, bound = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "textsampling":
                    found.append((alias.name, None, node.lineno))
                    if alias.asname:
                        bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not _is_package(module, modules):
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if origin.split(".")[0] != "textsampling":
                continue
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                if submodule in modules:
                    found.append((submodule, None, node.lineno))
                    bound[alias.asname or alias.name] = submodule
                else:
                    found.append((origin, alias.name, node.lineno))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                and _is_private(node.attr)):
            found.append((bound[node.value.id], node.attr, node.lineno))
    return found


def _is_package(module: str, modules) -> bool:
    return any(other.startswith(module + ".") for other in modules)


def violations(modules: dict) -> dict:
    """``{"upward": {(src, dst): [lines]}, "private": {(src, "dst.name"): [lines]}, "private_module": ...}``."""
    upward, private, private_module = {}, {}, {}
    for source_module, source in modules.items():
        for target, name, line in imports_of(source_module, source, modules):
            if target == source_module:
                continue
            if layer_of(target) > layer_of(source_module):
                upward.setdefault((source_module, target), []).append(line)
            if name is not None and _is_private(name):
                private.setdefault((source_module, f"{target}.{name}"), []).append(line)
            parts = target.split(".")
            for depth, part in enumerate(parts):
                if _is_private(part):
                    package = ".".join(parts[:depth])
                    if not (source_module == package or source_module.startswith(package + ".")):
                        private_module.setdefault((source_module, target), []).append(line)
                    break
    return {"upward": upward, "private": private, "private_module": private_module}


def import_graph(modules: dict) -> dict:
    graph = {}
    for source_module, source in modules.items():
        targets = graph.setdefault(source_module, set())
        for target, _, _ in imports_of(source_module, source, modules):
            if target != source_module and target in modules:
                targets.add(target)
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                components.append(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


# ----------------------------------------------------------------------------- the tests
MODULES = package_modules()
FOUND = violations(MODULES)


def _check(found: dict, known: dict, what: str) -> None:
    new = {key: lines for key, lines in found.items() if key not in known}
    assert not new, f"{what} (module, imported) -> lines: {new}"
    stale = sorted(set(known) - set(found))
    assert not stale, f"no longer {what}: delete these entries of the allow-list: {stale}"


def test_every_module_has_a_layer_and_architecture_md_states_the_order():
    for module in MODULES:
        layer_of(module)
    order = " < ".join(name for name, _ in LAYERS)
    assert order in (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"), order


def test_no_module_imports_a_higher_layer():
    _check(FOUND["upward"], KNOWN_UPWARD, "upward imports")


def test_no_private_name_is_taken_from_another_module():
    _check(FOUND["private"], KNOWN_PRIVATE_NAMES, "private names taken from another module")


def test_private_modules_stay_in_their_package():
    _check(FOUND["private_module"], {}, "private modules used outside their package")


def test_no_import_cycle():
    found = {component: True for component in cycles(import_graph(MODULES))}
    _check(found, KNOWN_CYCLES, "import cycles")


def test_the_checks_catch_what_they_forbid():
    # A made-up package with one offence of each kind (and legal imports beside them): the checker
    # must report exactly those, so the tests above cannot pass by seeing nothing.
    modules = {
        "textsampling": "",
        "textsampling._validation": "def check_int(x, name): return x\n",
        "textsampling.targets": "",
        "textsampling.targets.base": "from textsampling._validation import check_int\n_TABLE = 1\n",
        "textsampling.targets.upward": "def f():\n    from textsampling.reference import gibbs\n",
        "textsampling.reference": "",
        "textsampling.reference.gibbs": (
            "from textsampling.targets.base import _TABLE\n"
            "from textsampling.targets import base\n"
            "VALUE = base._TABLE\n"
        ),
        "textsampling.lm": "",
        "textsampling.lm._common": "X = 1\n",
        "textsampling.lm.hf": "from textsampling.lm._common import X\n",
        "textsampling.testing": "",
        "textsampling.testing.leak": "from textsampling.lm._common import X\nfrom textsampling import __version__\n",
    }
    found = violations(modules)
    assert set(found["upward"]) == {("textsampling.targets.upward", "textsampling.reference.gibbs")}
    assert set(found["private"]) == {("textsampling.reference.gibbs", "textsampling.targets.base._TABLE")}
    assert found["private"][("textsampling.reference.gibbs", "textsampling.targets.base._TABLE")] == [1, 3]
    assert set(found["private_module"]) == {("textsampling.testing.leak", "textsampling.lm._common")}
    graph = import_graph({"textsampling.a": "from textsampling import b\n", "textsampling.b": "def f():\n"
                          "    import textsampling.a\n", "textsampling.c": "from textsampling import a\n"})
    assert cycles(graph) == [("textsampling.a", "textsampling.b")]


if __name__ == "__main__":
    found = violations(package_modules())
    for kind, entries in found.items():
        for key, lines in sorted(entries.items()):
            print(kind, key, lines)
    for component in cycles(import_graph(package_modules())):
        print("cycle", component)
