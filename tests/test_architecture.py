"""The package's layers: imports flow one way (docs/architecture.md).

Every `import` of a tf_convgan module, at module level or inside a function, is an edge of the
graph; a module may import its own layer's modules or lower layers' only, and the graph of modules
has no cycle."""
import ast
import os

import pytest

from helpers import ROOT

PACKAGE = os.path.join(ROOT, "tf_convgan")

# Lower layers first. A module is placed by its first name under tf_convgan.
LAYERS = [
    {"errors", "noise"},
    {"objectives", "networks", "data"},
    {"gan", "run_dir"},
    {"evaluation", "serving", "studies"},
    {"training"},
    {"gan_stability"},
    {"cli"},
]
# python -m entry points kept under their old names, and the package's own __init__ (which
# imports everything so that gin knows every configurable): above every layer.
ENTRY_POINTS = {"tf_convgan", "tf_convgan.evaluate", "tf_convgan.sampling", "tf_convgan.export",
                "tf_convgan.import_gan_stability", "tf_convgan.sweep", "tf_convgan.spectrum"}


def _modules():
    modules = {}
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(parts)] = path
    return modules


def _imports(name, path, modules):
    """The tf_convgan modules that `name` imports (a from-import of a submodule counts as that
    submodule)."""
    tree = ast.parse(open(path).read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("tf_convgan"):
                found.add(target)
    return found


def _layer(module):
    parts = module.split(".")
    if module in ENTRY_POINTS:
        return len(LAYERS)
    for index, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and "
                         f"docs/architecture.md")


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    for module in graph:
        _layer(module)


def test_imports_flow_down_the_layers(graph):
    upward = sorted(f"{module} ({_layer(module)}) imports {target} ({_layer(target)})"
                    for module, targets in graph.items() for target in targets
                    if _layer(target) > _layer(module))
    assert not upward, "\n".join(upward)


def test_objectives_are_pure(graph):
    """The objectives import nothing of the library but errors and noise."""
    for module, targets in graph.items():
        if module.startswith("tf_convgan.objectives"):
            others = {t for t in targets if not t.startswith("tf_convgan.objectives")}
            assert others <= {"tf_convgan.errors", "tf_convgan.noise"}, (module, others)


def _find_cycle(graph):
    """A list of modules that import each other in a circle, or None."""
    state = {}

    def visit(module, stack):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if target in ENTRY_POINTS:
                continue
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target, stack + [target])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and module not in ENTRY_POINTS:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_no_import_cycle(graph):
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None


def test_the_checker_sees_an_upward_import(tmp_path):
    """The walk finds imports inside functions and relative imports."""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from tf_convgan.training import loop\n"
                    "from . import penalties\n")
    modules = {"tf_convgan.objectives.m": str(path), "tf_convgan.training.loop": "",
               "tf_convgan.objectives.penalties": ""}
    assert _imports("tf_convgan.objectives.m", str(path), modules) == {
        "tf_convgan.training.loop", "tf_convgan.objectives.penalties"}
