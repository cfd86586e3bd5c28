"""The house shows its architecture: meshops/ is three folders — what runs against a cluster
(cluster/ and the steps), what renders a review (review/), promotion (promotion/) — and the
imports keep to that shape (issue "When it goes wrong", item 12)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MESHOPS = ROOT / "meshops"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


MODULES = {module_name(p): p for p in MESHOPS.rglob("*.py")}


def meshops_imports(name: str) -> set[str]:
    return {m for m in imports_of(MODULES[name]) if m in MODULES and m != name}


def test_the_tree_has_the_three_concerns():
    assert {p.name for p in MESHOPS.iterdir() if p.is_dir() and not p.name.startswith("__")} == {"cluster", "review", "promotion", "steps"}
    assert not [p.name for p in MESHOPS.glob("*.py") if p.name not in ("__init__.py", "__main__.py", "context.py")], \
        "only the CLI and the step contract live at the top"


def step_closure() -> set[str]:
    """Every meshops module a step process can load: the steps and what they import, transitively."""
    todo = [n for n in MODULES if n.startswith("meshops.steps")] + ["meshops.cluster.execute", "meshops.cluster.keep"]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += sorted(meshops_imports(name))
    return seen


def test_what_a_step_runs_is_the_cluster_side_and_the_standard_library_only():
    """Steps run as `python3 -m meshops <step>` on the deploying machine with nothing installed."""
    closure = step_closure()
    assert "meshops.cluster.process" in closure and "meshops.cluster.backup_store" in closure
    for name in sorted(closure):
        assert not name.startswith(("meshops.review", "meshops.promotion")), f"a step loads {name}"
        for imported in imports_of(MODULES[name]):
            top = imported.split(".")[0]
            assert top in ("meshops", "__future__") or top in sys.stdlib_module_names, f"{name} imports {imported}"


def test_no_import_cycles():
    graph = {name: meshops_imports(name) for name in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(nxt):], nxt]) if nxt in trail else nxt)
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
