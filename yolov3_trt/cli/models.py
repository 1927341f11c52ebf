"""The model a tool's flags describe: --model, or --cfg/--weights/--checkpoint/--classes/--names."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import UsageError

logger = logging.getLogger(__name__)


def load_torch_model(args: argparse.Namespace):
    """The model and class names that --cfg/--weights/--checkpoint/--classes/--names describe."""
    from ..darknet.official import official_name, resolve_weights
    from ..model.checkpoint import load_checkpoint
    from ..model.yolov3 import YoloV3
    from ..names import check_names, default_names, load_names

    if args.checkpoint:
        if args.cfg or args.weights or args.classes:
            raise UsageError("--checkpoint carries its own cfg, class count and weights: "
                             "do not combine it with --cfg, --weights or --classes")
        model, names, _ = load_checkpoint(args.checkpoint)
    else:
        if not args.weights:
            raise UsageError("no weights: give --weights FILE (Darknet .weights for --cfg) or --checkpoint FILE")
        # A name (yolov3-tiny) fetches Darknet's official weights and implies --cfg of that name;
        # an existing file always wins over a name. The resolved cfg and file are written back to
        # args, so tools reading args.weights afterwards (export's and build's sha256) see the file.
        named = official_name(args.weights)
        if named and args.cfg and args.cfg != named and Path(args.cfg).name != f"{named}.cfg":
            raise UsageError(f"--weights {args.weights} are Darknet's official {named} weights, which need --cfg "
                             f"{named} (or no --cfg), not --cfg {args.cfg}; for another cfg pass a weights file path")
        args.cfg = args.cfg or named or "yolov3"
        args.weights = str(resolve_weights(args.weights))
        model = YoloV3.from_cfg(args.cfg, num_classes=args.classes)
        model.load_darknet_weights(args.weights)
        names = default_names(model.num_classes)
    if not model.heads:
        raise UsageError(f"{model.cfg.source} has no [yolo] layers: it is not a detector")
    if args.names:
        names = load_names(args.names)
        check_names(names, model.num_classes, args.names)
    return model, names


def build_detector(args: argparse.Namespace):
    """A Detector for --model, or for --cfg/--weights/--checkpoint on the torch backend."""
    from ..runtime.detector import Detector

    thresholds = {"conf": args.conf, "iou": args.iou, "max_det": args.max_det}
    if args.model:
        clash = [flag for flag, value in (("--cfg", args.cfg), ("--weights", args.weights),
                                          ("--checkpoint", args.checkpoint), ("--classes", args.classes),
                                          ("--names", args.names), ("--size", args.size)) if value]
        if clash:
            raise UsageError(f"--model carries its own cfg, size and class names: drop {', '.join(clash)}")
        return Detector(args.model, args.backend, **thresholds)
    if args.backend not in ("auto", "torch", "onnxruntime"):
        raise UsageError(f"--cfg/--weights/--checkpoint run on PyTorch or ONNX Runtime; for {args.backend}, "
                         "export the model (python -m yolov3_trt.export) and pass --model")
    model, names = load_torch_model(args)
    if args.backend != "torch":  # the fast path: exported once, then ONNX Runtime
        import importlib.util

        if importlib.util.find_spec("onnx") is not None:
            from .fast_path import cached_onnx

            source = args.checkpoint or args.weights
            onnx_path = cached_onnx(model, names, args.size, source)
            return Detector(onnx_path, "onnxruntime", **thresholds)
        logger.info("onnx is not installed: running on PyTorch (pip install onnx for ONNX Runtime, ~20x faster here)")
    return Detector.from_model(model, names, size=args.size, **thresholds)
