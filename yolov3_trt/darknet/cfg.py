"""Darknet ``.cfg`` files: parse to sections, format back to text.

The grammar is Darknet's own (``parse.c`` / ``option_list.c``): every whitespace character in a
line is dropped, lines starting with ``#`` or ``;`` are comments, ``[name]`` opens a section and
``key=value`` adds an option to it. This module keeps options as the strings written in the file,
with their line numbers, so :func:`format_cfg` writes back what was read and every later error
can name the file and line. Typed, validated layers come from :mod:`yolov3_trt.darknet.layers`.
"""
from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CfgError, FileError
from ..fileio import atomic_write_text

logger = logging.getLogger(__name__)

# Section names Darknet accepts, mapped to the canonical name used everywhere here.
SECTION_ALIASES: dict[str, str] = {
    "net": "net", "network": "net",
    "convolutional": "convolutional", "conv": "convolutional",
    "route": "route",
    "shortcut": "shortcut",
    "upsample": "upsample",
    "maxpool": "maxpool", "max": "maxpool",
    "avgpool": "avgpool", "avg": "avgpool",
    "softmax": "softmax", "soft": "softmax",
    "yolo": "yolo",
}


@dataclass
class Section:
    """One ``[type]`` block: its options as written, and where each came from."""

    type: str
    options: dict[str, str] = field(default_factory=dict)
    line: int | None = None
    option_lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int | None:
        """The line of option ``key``, else of the section header."""
        return self.option_lines.get(key, self.line)


@dataclass
class DarknetCfg:
    """A parsed cfg: ``sections[0]`` is ``[net]``, the rest are the layers in order."""

    sections: list[Section]
    source: str = "<cfg>"

    @property
    def net(self) -> Section:
        return self.sections[0]

    @property
    def layers(self) -> list[Section]:
        return self.sections[1:]

    def copy(self) -> "DarknetCfg":
        return copy.deepcopy(self)

    def error(self, problem: str, line: int | None = None) -> CfgError:
        return CfgError(self.source, problem, line)


def parse_cfg_text(text: str, source: str = "<cfg>") -> DarknetCfg:
    """Parse cfg text. ``source`` names the file in error messages."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = "".join(raw.split())  # Darknet's strip(): drops every whitespace character
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]") or len(line) < 3:
                raise CfgError(source, f"malformed section header {raw.strip()!r}", number)
            name = line[1:-1]
            kind = SECTION_ALIASES.get(name)
            if kind is None:
                known = ", ".join(sorted(set(SECTION_ALIASES.values())))
                raise CfgError(source, f"unknown section [{name}] (supported: {known})", number)
            if kind == "net" and sections:
                raise CfgError(source, "[net] must be the first section and appear once", number)
            if kind != "net" and not sections:
                raise CfgError(source, f"the first section must be [net], found [{name}]", number)
            sections.append(Section(kind, line=number))
            continue
        if not sections:
            raise CfgError(source, f"option {raw.strip()!r} before the first section", number)
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise CfgError(source, f"expected key=value, found {raw.strip()!r}", number)
        section = sections[-1]
        if key in section.options:
            # Darknet's option_find() returns the first occurrence; later ones are dead text.
            logger.warning("%s:%d: option %r repeats line %d of [%s]; the first value is used, as in Darknet",
                           source, number, key, section.option_lines[key], section.type)
            continue
        section.options[key] = value
        section.option_lines[key] = number
    if not sections:
        raise CfgError(source, "no sections: not a Darknet cfg file")
    return DarknetCfg(sections, source)


def parse_cfg(path: str | os.PathLike) -> DarknetCfg:
    """Read and parse a cfg file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileError(path, "no such cfg file") from None
    except UnicodeDecodeError:
        raise CfgError(path, "not a text file (is this a .weights file?)") from None
    except OSError as err:
        raise FileError(path, f"cannot read cfg: {err.strerror}") from None
    return parse_cfg_text(text, source=str(path))


def format_cfg(cfg: DarknetCfg) -> str:
    """Cfg text that :func:`parse_cfg_text` reads back to the same sections and options."""
    blocks = []
    for section in cfg.sections:
        lines = [f"[{section.type}]"] + [f"{k}={v}" for k, v in section.options.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_cfg(cfg: DarknetCfg, path: str | os.PathLike) -> None:
    """Write ``cfg`` to ``path`` (atomically)."""
    atomic_write_text(path, format_cfg(cfg))
