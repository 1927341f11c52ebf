"""The project's PyTorch checkpoint: weights plus everything needed to rebuild and label them.

A checkpoint is a plain dict saved with ``torch.save`` holding only tensors, strings, numbers
and lists, so it loads with ``torch.load(..., weights_only=True)`` (no pickled code runs):

``format`` ("yolov3_trt.checkpoint"), ``version`` (1), ``cfg`` (Darknet cfg text, so the
architecture, class count and anchors travel with the weights), ``names`` (class names),
``anchors`` (per head, input pixels, for readers that skip the cfg), ``darknet_header``
(major, minor, revision, seen), ``state_dict``, and ``extra`` (a dict for training state).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from ..darknet.cfg import format_cfg, parse_cfg_text
from ..darknet.weights import DarknetHeader
from ..errors import CheckpointError, FileError, YoloV3TrtError
from ..fileio import atomic_path
from .yolov3 import YoloV3

FORMAT = "yolov3_trt.checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: YoloV3, names: Sequence[str],
                    extra: dict[str, Any] | None = None) -> None:
    """Save ``model`` with its cfg and class ``names`` to ``path`` (atomically)."""
    if len(names) != model.num_classes:
        raise YoloV3TrtError(f"{len(names)} class names for a model with {model.num_classes} classes")
    h = model.darknet_header
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "cfg": format_cfg(model.cfg),
        "names": list(names),
        "anchors": [[list(a) for a in head.anchors] for head in model.heads],
        "darknet_header": [h.major, h.minor, h.revision, h.seen],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, *, bn_eps: float | None = None
                    ) -> tuple[YoloV3, list[str], dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`: ``(model, names, extra)``."""
    path = Path(path)
    if not path.is_file():
        raise FileError(path, "no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for foreign or corrupt files
        raise CheckpointError(path, f"not a loadable PyTorch checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(path, f"not a {FORMAT} file (a bare state_dict or another project's checkpoint?)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(path, f"checkpoint version {payload['version']} is newer than this yolov3_trt "
                                    f"reads ({VERSION}); upgrade yolov3_trt")
    cfg = parse_cfg_text(payload["cfg"], source=f"{path} (embedded cfg)")
    kwargs = {} if bn_eps is None else {"bn_eps": bn_eps}
    model = YoloV3(cfg, **kwargs)
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(path, f"weights do not fit the embedded cfg (missing {len(missing)}, "
                                    f"unexpected {len(unexpected)} tensors)")
    model.darknet_header = DarknetHeader(*payload.get("darknet_header", (0, 2, 0, 0)))
    names = list(payload["names"])
    if len(names) != model.num_classes:
        raise CheckpointError(path, f"{len(names)} class names for {model.num_classes} classes")
    return model, names, dict(payload.get("extra", {}))
