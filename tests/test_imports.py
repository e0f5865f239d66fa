"""The import graph of rlexp has no cycle, counting imports inside functions and the registries' own
imports of every module in their package; rlexp.schema is a leaf.

One deferred import is allowed to point back: an algorithm's `build_trainer` (rlexp/algos/<name>.py) imports its
trainer (rlexp/trainers/<name>.py), which reads the algorithm's config, when a run starts. At module level no
algorithm imports a trainer, so composing and checking a config never loads TRL (tests/test_cli.py checks that)."""

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "rlexp"
REGISTRIES = ("rlexp.algos", "rlexp.envs")  # import every module in their package when asked for names


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        deferred = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for n in ast.walk(f)}
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                module = ".".join(filter(None, [base, node.module]))
                if name.startswith("rlexp.algos.") and module.startswith("rlexp.trainers") and id(node) in deferred:
                    continue  # the run's trainer, imported when the run starts
                found |= {f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module for alias in node.names}
        # a module importing its own package (for `register`) is how registration works, not a cycle
        graph[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")}
    for registry in REGISTRIES:
        graph[registry] |= {m for m in modules if m.rpartition(".")[0] == registry}
    graph["rlexp.worker"] |= {m for m in modules if m.startswith("rlexp.modes.")}  # the mode, by its name
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_schema_module_is_a_leaf():
    graph = import_graph()
    assert graph["rlexp.schema"] <= {"rlexp.errors"} and graph["rlexp.errors"] == set()


def test_no_algorithm_imports_a_trainer_at_module_level():
    graph = import_graph()
    assert not [(a, t) for a in graph if a.startswith("rlexp.algos") for t in graph[a] if t.startswith("rlexp.trainers")]
