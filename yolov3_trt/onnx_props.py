"""An ONNX file's ``metadata_props`` without onnx, ONNX Runtime or reading the graph.

:func:`read_metadata_props` walks only the top level of the ``ModelProto`` message (protobuf wire
format: a varint tag, then a varint, a fixed 4/8 bytes, or a length-prefixed body) and seeks past
every field but ``metadata_props`` (field 14, repeated ``StringStringEntryProto`` of ``key`` = 1 and
``value`` = 2), so a 250 MB model costs a few small reads. The runtime uses it to look at a file
(precision, quantization target) before choosing what runs it; the base install has no onnx.

Contract: the same mapping as ``{p.key: p.value for p in onnx.load(path).metadata_props}`` (later
duplicates win, as there); a file that is not a well-formed protobuf message at the top level
raises :class:`~yolov3_trt.errors.FileError` naming it.
"""
from __future__ import annotations

import io
import os
from typing import BinaryIO

from .errors import FileError

METADATA_PROPS = 14   # ModelProto.metadata_props
KEY, VALUE = 1, 2     # StringStringEntryProto.key, .value
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class _Truncated(Exception):
    """The message ends inside a field."""


def _varint(stream: BinaryIO) -> int | None:
    """The next varint, or None at a clean end of the stream (before its first byte)."""
    value, shift = 0, 0
    while True:
        byte = stream.read(1)
        if not byte:
            if shift:
                raise _Truncated
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _fields(stream: BinaryIO, end: int):
    """(field number, wire type, body length or None) of each field up to offset ``end``. Fixed
    and varint values are consumed; a length-prefixed body is left for the caller to read or seek past."""
    while stream.tell() < end:
        tag = _varint(stream)
        if tag is None:
            return
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            if _varint(stream) is None:
                raise _Truncated
            yield number, wire, None
        elif wire in (_FIXED64, _FIXED32):
            stream.seek(8 if wire == _FIXED64 else 4, os.SEEK_CUR)
            yield number, wire, None
        elif wire == _LENGTH:
            length = _varint(stream)
            if length is None:
                raise _Truncated
            yield number, wire, length
        else:
            raise ValueError(f"wire type {wire} (groups or garbage) at the top level")


def _entry(body: bytes) -> tuple[str, str]:
    """``(key, value)`` of one StringStringEntryProto."""
    stream, parts = io.BytesIO(body), {KEY: b"", VALUE: b""}
    for number, wire, length in _fields(stream, len(body)):
        if wire == _LENGTH:
            data = stream.read(length)
            if len(data) != length:
                raise _Truncated
            if number in parts:
                parts[number] = data
    return parts[KEY].decode("utf-8"), parts[VALUE].decode("utf-8")


def read_metadata_props(path: str | os.PathLike) -> dict[str, str]:
    """``metadata_props`` of the ONNX file ``path`` as a dict (see the module docstring)."""
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            props: dict[str, str] = {}
            for number, wire, length in _fields(stream, size):
                if wire != _LENGTH:
                    continue
                if stream.tell() + length > size:
                    raise _Truncated
                if number == METADATA_PROPS:
                    key, value = _entry(stream.read(length))
                    props[key] = value
                else:
                    stream.seek(length, os.SEEK_CUR)
            return props
    except FileNotFoundError:
        raise FileError(path, "no such model file") from None
    except IsADirectoryError:
        raise FileError(path, "is a folder, not an ONNX file") from None
    except _Truncated:
        raise FileError(path, "is truncated: the ONNX message ends inside a field") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise FileError(path, f"is not an ONNX file ({err})") from None
