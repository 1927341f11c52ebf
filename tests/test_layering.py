"""Layering of the ``yolov3_trt`` package, from its source (``ast``, nothing imported).

- no import cycle among ``yolov3_trt`` modules at module level (imports inside functions are
  the deliberate way to defer a heavy or optional dependency and are not edges);
- no library module imports ``yolov3_trt.cli`` (only the tools do: ``__main__.py`` files,
  ``detect.py``, ``info.py``, ``anchors.py``, and ``cli`` itself);
- no module imports another module's ``_private`` names (at any level).
"""
from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "yolov3_trt"
TOOLS = {"yolov3_trt.detect", "yolov3_trt.info", "yolov3_trt.anchors"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def absolute(name: str, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` names, relative levels resolved."""
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package(name) else name.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str, tree: ast.AST) -> list[tuple[str, str | None, ast.stmt]]:
    """``(module, imported name or None, statement)`` of every import in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = absolute(name, node)
            found += [(module, alias.name, node) for alias in node.names]
    return found


def top_level(tree: ast.Module) -> set[int]:
    """ids of the import statements that run when the module is imported (not in a function,
    not under ``if TYPE_CHECKING``)."""
    ids: set[int] = set()

    def visit(nodes) -> None:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                ids.add(id(node))
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ClassDef)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit(getattr(node, field, []))
            elif isinstance(node, ast.ExceptHandler):
                visit(node.body)

    visit(tree.body)
    return ids


def target(module: str, imported: str | None) -> str | None:
    """The yolov3_trt module an import executes (a submodule when ``imported`` is one)."""
    if imported and f"{module}.{imported}" in MODULES:
        return f"{module}.{imported}"
    return module if module in MODULES else None


def parse_all() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in MODULES.items()}


TREES = parse_all()


def module_graph(deferred: bool = False) -> dict[str, set[str]]:
    """module -> the yolov3_trt modules it imports at module level (``deferred``: anywhere)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, tree in TREES.items():
        run_now = top_level(tree)
        for module, imported, node in imports(name, tree):
            found = target(module, imported)
            if (deferred or id(node) in run_now) and found and found != name:
                graph[name].add(found)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_graph_sees_known_edges() -> None:
    graph = module_graph()
    assert "yolov3_trt.errors" in graph["yolov3_trt.fileio"]
    assert "yolov3_trt.boxes" in graph["yolov3_trt.postprocess"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_at_module_level() -> None:
    assert find_cycle(module_graph()) is None


def test_dataset_readers_depend_on_the_model_not_on_each_other() -> None:
    # Even deferred imports: the readers build Samples from data.samples; data.dataset dispatches.
    graph = module_graph(deferred=True)
    data = {name: {t for t in targets if t.startswith("yolov3_trt.data.")}
            for name, targets in graph.items() if name.startswith("yolov3_trt.data.")}
    assert find_cycle(data) is None
    assert {"yolov3_trt.data.coco_format", "yolov3_trt.data.yolo_format"} <= graph["yolov3_trt.data.dataset"]
    for reader in ("yolov3_trt.data.coco_format", "yolov3_trt.data.yolo_format"):
        assert "yolov3_trt.data.samples" in graph[reader]
        assert "yolov3_trt.data.dataset" not in graph[reader]


def is_tool(name: str) -> bool:
    return name.endswith(".__main__") or name in TOOLS or name == "yolov3_trt.cli" or name.startswith("yolov3_trt.cli.")


def test_no_library_module_imports_cli() -> None:
    offenders = sorted(f"{name} imports {module}" for name, tree in TREES.items() if not is_tool(name)
                       for module, imported, _ in imports(name, tree)
                       if (target(module, imported) or "").startswith("yolov3_trt.cli"))
    assert offenders == []


def test_no_module_imports_private_names() -> None:
    offenders = []
    for name, tree in TREES.items():
        for module, imported, _ in imports(name, tree):
            if not (module == "yolov3_trt" or module.startswith("yolov3_trt.")) or imported is None:
                continue
            if imported.startswith("_") and not imported.startswith("__") and module != name:
                offenders.append(f"{name}: from {module} import {imported}")
    assert offenders == []
