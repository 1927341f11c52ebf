"""Every TensorRT name the package uses, read from its source (nothing is imported or run).

Two kinds, as the code uses them:
- chains from the module (``trt.BuilderFlag.STRONGLY_TYPED``, ``trtp.KernelLaunchParams``):
  resolved attribute by attribute in a real release;
- members of objects that came out of TensorRT (``builder.create_network``, ``self._context
  .set_input_shape``), whose class is not known statically: looked up among the attributes of
  every class the release defines.
Names are tracked through assignments from TensorRT expressions (plain names and ``self.x``).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOTS = {"tensorrt": "tensorrt", "trt": "tensorrt", "trtp": "tensorrt.plugin"}


def _module_aliases(tree: ast.AST) -> dict[str, str]:
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "tensorrt":
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else "tensorrt"
    if aliases:  # modules handed in as parameters keep the conventional names
        aliases.update({k: v for k, v in ROOTS.items() if k not in aliases})
    return aliases


def _key(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return "self." + node.attr
    return None


class _Finder(ast.NodeVisitor):
    def __init__(self, aliases: dict[str, str]):
        self.aliases, self.objects = aliases, set()
        self.chains: set[tuple[str, ...]] = set()
        self.members: set[str] = set()

    def _root(self, node: ast.AST):
        """(alias module, chain) for a pure attribute chain from a module alias; else None."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.aliases:
            return self.aliases[node.id], tuple(reversed(parts))
        return None

    def _from_tensorrt(self, node: ast.AST) -> bool:
        while isinstance(node, (ast.Call, ast.Subscript, ast.Attribute)):
            if isinstance(node, ast.Attribute) and _key(node) in self.objects:
                return True
            node = node.func if isinstance(node, ast.Call) else node.value
        return isinstance(node, ast.Name) and (node.id in self.aliases or node.id in self.objects)

    def visit_Assign(self, node: ast.Assign) -> None:
        if self._from_tensorrt(node.value):
            for target in node.targets:
                for element in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    if _key(element) and _key(element) not in self.aliases:
                        self.objects.add(_key(element))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        rooted = self._root(node)
        if rooted is not None:
            module, chain = rooted
            self.chains.add((module, *chain))
            return  # the chain covers its prefixes
        if _key(node) not in self.objects and self._from_tensorrt(node.value):
            self.members.add(node.attr)
        self.generic_visit(node)


def used_names(package: Path) -> tuple[list[list[str]], list[str]]:
    """(module chains, member names) over every ``.py`` under ``package`` that imports tensorrt."""
    chains, members = set(), set()
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        aliases = _module_aliases(tree)
        if not aliases:
            continue
        finder = _Finder(aliases)
        finder.visit(tree)   # twice: names assigned below a method that uses them
        finder.chains.clear()
        finder.members.clear()
        finder.visit(tree)
        chains |= finder.chains
        members |= finder.members
    return sorted(list(c) for c in chains), sorted(members)
