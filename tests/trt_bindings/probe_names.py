"""Resolve the package's TensorRT names (``trt_names.used_names``) in a real release.

Usage: python probe_names.py NAMES.json; prints {"version", "missing_chains", "missing_members"}.
A chain is missing from its first absent attribute; a member is missing when no class of
``tensorrt`` (or ``tensorrt.plugin`` where it exists) has it.
"""
from __future__ import annotations

import importlib
import inspect
import json
import sys


def class_attributes(modules) -> set[str]:
    names: set[str] = set()
    seen: set[int] = set()
    stack = [obj for module in modules for obj in vars(module).values() if inspect.isclass(obj)]
    while stack:
        cls = stack.pop()
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        for name in dir(cls):
            names.add(name)
            value = getattr(cls, name, None)
            if inspect.isclass(value):
                stack.append(value)
    return names


def main(path: str) -> dict:
    import tensorrt as trt

    with open(path, encoding="utf-8") as f:
        used = json.load(f)
    modules = {"tensorrt": trt}
    try:
        modules["tensorrt.plugin"] = importlib.import_module("tensorrt.plugin")
    except ImportError:
        pass
    missing_chains = []
    for module, *chain in used["chains"]:
        obj, done = modules.get(module), [module]
        for part in chain:
            if obj is None or not hasattr(obj, part):
                missing_chains.append(".".join([*done, part]))
                break
            obj, done = getattr(obj, part), [*done, part]
    members = class_attributes(modules.values())
    return {"version": trt.__version__, "missing_chains": sorted(set(missing_chains)),
            "missing_members": sorted(m for m in used["members"] if m not in members)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
