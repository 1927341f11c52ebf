"""The fast path for ``--cfg/--weights/--checkpoint``: the model exported once to a cached ONNX
and run on ONNX Runtime (on a 2-core CPU yolov3-tiny takes ~34 ms a frame there against ~0.66 s
on PyTorch eager).

The cache (``$YOLOV3_TRT_CACHE/onnx``, default ``~/.cache/yolov3_trt/onnx``) is keyed by
everything the exported file depends on: the cfg text, the weights or checkpoint bytes, the
class names, the input size and the versions of yolov3_trt, torch and onnx. Entries are written
atomically, so a concurrent or interrupted run never leaves a broken file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

from ..fileio import cache_root

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    return cache_root() / "onnx"


def cache_key(model, names: Sequence[str], size: tuple[int, int], source_sha256: str) -> str:
    """Hex key of the raw ONNX export of ``model`` (loaded from a file of ``source_sha256``) at ``size``."""
    import onnx
    import torch

    from .. import __version__
    from ..darknet.cfg import format_cfg

    header = {"cfg": format_cfg(model.cfg), "source": source_sha256, "names": list(names),
              "size": list(size), "versions": [__version__, torch.__version__, onnx.__version__], "flavour": "raw"}
    return hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:32]


def cached_onnx(model, names: Sequence[str], size: tuple[int, int] | None, source: str | os.PathLike) -> Path:
    """The raw ONNX of ``model`` at ``size`` (None: the cfg's), exported on first use."""
    from ..export.onnx_export import export_onnx
    from ..fileio import file_sha256

    size = tuple(size) if size else tuple(model.input_size)
    digest = file_sha256(source)  # once: the weights may be 250 MB
    path = cache_dir() / f"{Path(source).stem}-{size[0]}x{size[1]}-{cache_key(model, names, size, digest)}.onnx"
    if path.is_file():
        logger.info("using the cached ONNX export %s", path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("exporting %s to %s once, to run it on ONNX Runtime (--backend torch keeps PyTorch)",
                Path(source).name, path)
    export_onnx(model, path, names, size=size, weights_sha256=digest, source=Path(source).name)
    return path
