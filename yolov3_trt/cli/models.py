"""The model a tool's flags describe: --model, or --cfg/--weights/--checkpoint/--classes/--names.

:func:`load_model` and :func:`detector_for` take the parsed option objects of
:mod:`yolov3_trt.cli.args`; :func:`load_torch_model` and :func:`build_detector` take a parsed
namespace (or any object with those attributes) and parse it through the same groups.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from ..errors import UsageError
from .args import ModelArgs, ModelOptions, PostprocessOptions, RuntimeArgs, RuntimeOptions

logger = logging.getLogger(__name__)


def resolve_weights_flags(cfg: str | None, weights: str) -> tuple[str, str]:
    """(cfg, weights file) for --cfg and --weights: an official name (yolov3-tiny) fetches Darknet's
    weights and implies --cfg of that name; an existing file always wins over a name."""
    from ..darknet.official import official_name, resolve_weights

    named = official_name(weights)
    if named and cfg and cfg != named and Path(cfg).name != f"{named}.cfg":
        raise UsageError(f"--weights {weights} are Darknet's official {named} weights, which need --cfg "
                         f"{named} (or no --cfg), not --cfg {cfg}; for another cfg pass a weights file path")
    return cfg or named or "yolov3", str(resolve_weights(weights))


def load_model(options: ModelOptions):
    """(model, class names, the options with --cfg and --weights resolved to what was loaded)."""
    from ..model.checkpoint import load_checkpoint
    from ..model.yolov3 import YoloV3
    from ..names import check_names, default_names, load_names

    if options.checkpoint:
        model, names, _ = load_checkpoint(options.checkpoint)
    else:
        if not options.weights:
            raise UsageError("no weights: give --weights FILE (Darknet .weights for --cfg) or --checkpoint FILE")
        cfg, weights = resolve_weights_flags(options.cfg, options.weights)
        options = dataclasses.replace(options, cfg=cfg, weights=weights)
        model = YoloV3.from_cfg(cfg, num_classes=options.classes)
        model.load_darknet_weights(weights)
        names = default_names(model.num_classes)
    if not model.heads:
        raise UsageError(f"{model.cfg.source} has no [yolo] layers: it is not a detector")
    if options.names:
        names = load_names(options.names)
        check_names(names, model.num_classes, options.names)
    return model, names, options


def load_torch_model(args: argparse.Namespace):
    """The model and class names that ``args``' model flags describe. The resolved --cfg and
    --weights file are written back to ``args``, so code reading ``args.weights`` afterwards
    (a sha256) sees the file."""
    model, names, resolved = load_model(ModelArgs().parse(args))
    if not resolved.checkpoint:
        args.cfg, args.weights = resolved.cfg, resolved.weights
    return model, names


def detector_for(model: ModelOptions, runtime: RuntimeOptions, post: PostprocessOptions):
    """(a Detector for --model, or for the model flags (cached ONNX on ONNX Runtime, else PyTorch),
    the model options with --cfg and --weights resolved)."""
    from ..runtime.detector import Detector

    settings = {"conf": post.conf, "iou": post.iou, "max_det": post.max_det,
                "resize_kernel": str(runtime.resize_kernel)}
    if runtime.model:
        return Detector(runtime.model, str(runtime.backend), **settings), model
    torch_model, names, resolved = load_model(model)
    if runtime.backend != "torch":  # the fast path: exported once, then ONNX Runtime
        import importlib.util

        if importlib.util.find_spec("onnx") is not None:
            from .fast_path import cached_onnx

            onnx_path = cached_onnx(torch_model, names, model.size, resolved.checkpoint or resolved.weights)
            return Detector(onnx_path, "onnxruntime", **settings), resolved
        logger.info("onnx is not installed: running on PyTorch (pip install onnx for ONNX Runtime, ~20x faster here)")
    return Detector.from_model(torch_model, names, size=model.size, **settings), resolved


def build_detector(args: argparse.Namespace):
    """:func:`detector_for` the namespace's model, runtime and post-processing flags."""
    model = ModelArgs().parse(args)
    runtime = RuntimeArgs().parse(args, model)
    post = PostprocessOptions(args.conf, args.iou, args.max_det)
    detector, resolved = detector_for(model, runtime, post)
    if not resolved.checkpoint and not runtime.model:
        args.cfg, args.weights = resolved.cfg, resolved.weights
    return detector
