"""argparse ``type`` functions: text -> a checked value, or ``argparse.ArgumentTypeError`` (one line).

Each value kind has one validator here, so a flag parses the same way in every tool. No heavy
imports: every parser imports this module.
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Any, Callable, Sequence

from ..darknet.layers import MAX_INPUT_SIDE

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def _number(text: str, kind: type = float) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a{'n integer' if kind is int else ' number'}, "
                                         f"got {text!r}") from None


def parse_size(text: str) -> tuple[int, int]:
    """``416`` or ``608x416`` (width x height) -> (width, height), each a positive multiple of 32."""
    parts = text.lower().split("x")
    try:
        if len(parts) == 1:
            width = height = int(parts[0])
        elif len(parts) == 2:
            width, height = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or WxH, got {text!r}") from None
    if width <= 0 or height <= 0 or width % 32 or height % 32:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be positive multiples of 32")
    if max(width, height) > MAX_INPUT_SIDE:
        raise argparse.ArgumentTypeError(f"{text!r}: each side must be at most {MAX_INPUT_SIDE} px")
    return width, height


def parse_image_size(text: str) -> int | tuple[int, int] | range:
    """``S``, ``WxH`` or ``MIN:MAX`` (each side drawn per image) -> a synthetic ``size`` argument."""
    try:
        if ":" in text:
            lo, hi = (int(v) for v in text.split(":"))
            size: int | tuple[int, int] | range = range(lo, hi + 1)
            sides = [lo, hi]
            if hi < lo:
                raise argparse.ArgumentTypeError(f"{text!r}: MIN must not exceed MAX")
        elif "x" in text.lower():
            w, h = (int(v) for v in text.lower().split("x"))
            size, sides = (w, h), [w, h]
        else:
            size = int(text)
            sides = [size]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected S, WxH or MIN:MAX, got {text!r}") from None
    if min(sides) < 32:
        raise argparse.ArgumentTypeError(f"{text!r}: image sides must be >= 32 px")
    return size


def square_size(text: str) -> int:
    """:func:`parse_size` of a square size -> its side (lists of benchmark sizes)."""
    width, height = parse_size(text.strip())
    if width != height:
        raise argparse.ArgumentTypeError(f"{text!r}: the benchmark sizes are square, give N")
    return width


def parse_batch(text: str) -> tuple[int, int, int]:
    """``8`` -> (8, 8, 8); ``1:4:8`` -> (1, 4, 8), with 1 <= min <= opt <= max."""
    try:
        values = tuple(int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN:OPT:MAX, got {text!r}") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N or MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX")
    return values  # type: ignore[return-value]


def parse_device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, lower-cased; whether this machine has it is the tool's check."""
    value = text.strip().lower()
    if not _DEVICE.match(value):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1]."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1]")
    return value


def fraction(text: str) -> float:
    """In [0, 1): a share held out (1 would leave nothing to train on)."""
    value = _number(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1)")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def integer(text: str) -> int:
    return _number(text, int)


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (``positive_int`` is ``int_at_least(1)``)."""
    def parse(text: str) -> int:
        value = _number(text, int)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be >= {minimum}")
        return value
    parse.__name__ = f"int_at_least_{minimum}"
    return parse


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""
    def parse(text: str) -> int:
        value = _number(text, int)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value
    parse.__name__ = f"int_between_{low}_{high}"
    return parse


positive_int = int_at_least(1)
positive_int.__name__ = "positive_int"
non_negative_int = int_at_least(0)
non_negative_int.__name__ = "non_negative_int"


def one_of(choices: Sequence[str]) -> Callable[[str], str]:
    """An argparse type for one item of a comma-separated list (argparse's ``choices`` sees the whole list)."""
    def parse(text: str) -> str:
        if text.strip() not in choices:
            raise argparse.ArgumentTypeError(f"unknown {text.strip()!r} (choose from {', '.join(choices)})")
        return text.strip()
    parse.__name__ = f"one_of({','.join(choices)})"
    return parse


def comma_list(convert: Callable[[str], Any]) -> Callable[[str], list]:
    """An argparse type: comma-separated values, each through ``convert`` (``320,416`` -> [320, 416])."""
    def parse(text: str) -> list:
        values = [convert(v) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got {text!r}")
        return values
    parse.__name__ = f"comma_list({getattr(convert, '__name__', convert)})"
    return parse
