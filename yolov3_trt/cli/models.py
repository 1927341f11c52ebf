"""Loading the torch model that --cfg/--weights/--checkpoint/--classes/--names describe."""
from __future__ import annotations

import argparse

from .common import UsageError


def load_torch_model(args: argparse.Namespace):
    """The model and class names that --cfg/--weights/--checkpoint/--classes/--names describe."""
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
        model = YoloV3.from_cfg(args.cfg or "yolov3", num_classes=args.classes)
        model.load_darknet_weights(args.weights)
        names = default_names(model.num_classes)
    if not model.heads:
        raise UsageError(f"{model.cfg.source} has no [yolo] layers: it is not a detector")
    if args.names:
        names = load_names(args.names)
        check_names(names, model.num_classes, args.names)
    return model, names
