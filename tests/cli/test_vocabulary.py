"""One flag, one meaning: every tool's parser (python -m yolov3_trt.* and benchmarks/*.py) is built here.

Every option has a help line; no help line shows its default twice; a flag has the same validator,
choices, metavar and help wherever it appears, except :data:`EXCEPTIONS`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import pytest
from helpers import ROOT

from yolov3_trt.cli.common import EXIT_FAILURE, run
from yolov3_trt.errors import EnvironmentFailure

# What differs by tool, and why (keep this short).
EXCEPTIONS = {
    "--output": {"help", "metavar"},  # each tool writes its own file or folder; its help says which
    "--json": {"help"},  # each tool's results differ (detections, metrics, a layer table, a summary)
    "--force": {"help"},  # what an earlier run left differs by tool; the help names it
    "--flavour": {"choices"},  # build adds auto (the graph its TensorRT builds best); an export has no TensorRT
}
TOOLS = ["yolov3_trt.detect:build_parser", "yolov3_trt.evaluate.__main__:build_parser",
         "yolov3_trt.train.__main__:build_parser", "yolov3_trt.quantize.__main__:build_parser",
         "yolov3_trt.build.__main__:_parser", "yolov3_trt.data.__main__:build_parser"]
MAIN_ONLY = ["yolov3_trt.info", "yolov3_trt.anchors", "yolov3_trt.export.__main__", "yolov3_trt.triton.__main__"]
# every script of benchmarks/ (a file run as __main__); machine.py and plot.py are their shared modules
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if 'if __name__ == "__main__":' in p.read_text())
BENCHMARKS = [p.stem for p in SCRIPTS]


class _Captured(Exception):
    pass


def _parser_of_main(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser a main() builds: argparse.ArgumentParser.parse_args stopped before it parses."""
    seen = []

    def stop(self, *args, **kwargs):
        seen.append(self)
        raise _Captured

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    with pytest.raises(_Captured):
        importlib.import_module(module).main([])
    monkeypatch.undo()
    return seen[0]


@pytest.fixture(scope="module")
def parsers() -> dict[str, argparse.ArgumentParser]:
    found = {}
    for spec in TOOLS:
        module, name = spec.split(":")
        found[module] = getattr(importlib.import_module(module), name)()
    mp = pytest.MonkeyPatch()
    for module in MAIN_ONLY:
        found[module] = _parser_of_main(module, mp)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    for script in BENCHMARKS:
        found[f"benchmarks/{script}.py"] = importlib.import_module(script).build_parser()
    return found


def _actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for inner, sub_action in _actions(sub):
                    yield f"{inner} {name}", sub_action
        elif action.option_strings and not isinstance(action, argparse._HelpAction):
            yield "", action
    return


def _all(parsers):
    for tool, parser in parsers.items():
        for where, action in _actions(parser):
            yield f"{tool}{where}", parser, action


def _flag(action) -> str:
    return max(action.option_strings, key=len)


def _rendered(parser, action) -> str:
    return parser._get_formatter()._expand_help(action)


def test_every_tool_and_benchmark_is_covered(parsers):
    assert len(parsers) == len(TOOLS) + len(MAIN_ONLY) + len(BENCHMARKS)


def test_every_option_has_a_help_line(parsers):
    missing = [f"{tool} {_flag(a)}" for tool, _, a in _all(parsers) if not (a.help or "").strip()]
    assert not missing, missing


def test_no_help_shows_a_default_twice(parsers):
    doubled = [f"{tool} {_flag(a)}: {_rendered(p, a)}" for tool, p, a in _all(parsers)
               if _rendered(p, a).lower().count("default") > 1]
    assert not doubled, doubled


def _meaning(action) -> dict:
    kind = type(action).__mro__[1].__name__ if type(action).__name__ == type(action).__mro__[1].__name__ else \
        type(action).__name__
    return {"type": getattr(action.type, "__name__", action.type), "choices": tuple(action.choices or ()),
            "metavar": action.metavar, "help": action.help, "action": kind}


def test_one_flag_one_meaning_everywhere(parsers):
    first: dict[str, tuple[str, dict]] = {}
    drift = []
    for tool, _, action in _all(parsers):
        flag = _flag(action)
        meaning = _meaning(action)
        if flag not in first:
            first[flag] = (tool, meaning)
            continue
        where, expected = first[flag]
        for key, value in meaning.items():
            if key not in EXCEPTIONS.get(flag, ()) and value != expected[key]:
                drift.append(f"{flag} {key}: {tool} has {value!r}, {where} {expected[key]!r}")
    assert not drift, "\n".join(drift)


def test_an_environment_failure_exits_1_with_one_line(capsys):
    def main(argv):
        raise EnvironmentFailure("CUDA error 2: out of memory")

    assert run(main, []) == EXIT_FAILURE == 1
    err = capsys.readouterr().err
    assert err == "failed: CUDA error 2: out of memory\n"


def test_no_library_module_imports_the_cli():
    tools = {"detect.py", "info.py", "anchors.py", "__main__.py"}
    offenders = []
    for path in (ROOT / "yolov3_trt").rglob("*.py"):
        if path.name in tools or "cli" in path.relative_to(ROOT / "yolov3_trt").parts[:1]:
            continue
        text = path.read_text(encoding="utf-8")
        if any(mark in text for mark in ("from .cli", "from ..cli", "from ...cli", "yolov3_trt.cli import",
                                         "import yolov3_trt.cli", "from yolov3_trt.cli")):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_every_benchmark_script_builds_its_parser_from_the_vocabulary():
    assert {"fps", "cpu_targets", "quantize_accuracy"} <= set(BENCHMARKS)
    for path in SCRIPTS:
        assert "def build_parser" in path.read_text(), f"{path.name} has no build_parser()"
