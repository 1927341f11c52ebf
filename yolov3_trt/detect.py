"""``python -m yolov3_trt.detect``: detect objects in images, a folder, a video or a camera.

Writes annotated copies (images, or an .mp4 for video and camera) to --output and all
detections as COCO-style JSON to --json (default: <output>/detections.json).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from .cli.common import UsageError, add_model_args, add_postprocess_args, make_parser, run
from .fileio import atomic_write_json
from .postprocess import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET
from .sources import AnnotatedOutput, open_source
from .visualize import draw_detections

logger = logging.getLogger(__name__)
PER_IMAGE_REPORT_LIMIT = 20  # print one line per image for small image sets
LISTED_DETECTIONS = 8  # detections named on that line


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("python -m yolov3_trt.detect", __doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("source", metavar="SOURCE",
                        help="image file, folder of images, video file, or camera index (e.g. 0)")
    add_model_args(parser)
    add_postprocess_args(parser, DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET)
    g = parser.add_argument_group("input and output")
    g.add_argument("--resize", choices=("letterbox", "resize"), default="letterbox",
                   help="letterbox keeps the aspect ratio (Darknet's detect); resize stretches")
    g.add_argument("--output", default="runs/detect", metavar="PATH", help="folder for annotated output")
    g.add_argument("--json", default=None, metavar="PATH", help="detections as COCO-style JSON "
                   "(default: OUTPUT/detections.json)")
    g.add_argument("--no-draw", action="store_true", help="write only the JSON, no annotated images/video")
    g.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N video/camera frames")
    g.add_argument("--skip-unreadable", action="store_true", help="skip unreadable images in a folder "
                   "instead of stopping")
    return parser


def load_torch_model(args: argparse.Namespace):
    """The model and class names that --cfg/--weights/--checkpoint/--classes/--names describe."""
    from .model.checkpoint import load_checkpoint
    from .model.yolov3 import YoloV3
    from .names import check_names, default_names, load_names

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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be >= 1")
    from .model.pipeline import TorchDetector

    model, names = load_torch_model(args)
    detector = TorchDetector(model, names, size=args.size, conf=args.conf, iou=args.iou,
                             max_det=args.max_det, mode=args.resize)
    output = Path(args.output)
    json_path = Path(args.json) if args.json else output / "detections.json"
    records: list[dict[str, Any]] = []
    lines: list[str] = []
    frames = 0
    with open_source(args.source, max_frames=args.max_frames, skip_unreadable=args.skip_unreadable) as source, \
            (contextlib.nullcontext() if args.no_draw else AnnotatedOutput(output, source)) as writer:
        progress = tqdm(source, total=source.total, unit="img" if source.kind == "images" else "frame",
                        desc="detect", disable=None)
        try:
            for frame in progress:
                detections = detector.detect(frame.image)
                frames += 1
                records.extend(detections.to_coco(frame.index, file_name=frame.name))
                if writer is not None:
                    writer.write(frame, draw_detections(frame.image, detections))
                found = ", ".join(f"{n} {s:.2f}" for n, s in
                                  zip(detections.class_names[:LISTED_DETECTIONS], detections.scores))
                if len(detections) > LISTED_DETECTIONS:
                    found += ", ..."
                lines.append(f"{frame.name}: {len(detections)} detections" + (f": {found}" if found else ""))
        except KeyboardInterrupt:
            if source.kind != "camera":
                raise
            # A camera runs until stopped: Ctrl-C ends the recording normally, not as a failure.
            logger.info("stopped by Ctrl-C after %d frames", frames)
    atomic_write_json(json_path, records)
    if source.kind == "images" and frames <= PER_IMAGE_REPORT_LIMIT:
        print("\n".join(lines))
    where = f"annotated output in {output}, " if writer is not None else ""
    print(f"{frames} {'images' if source.kind == 'images' else 'frames'}, {len(records)} detections; "
          f"{where}detections in {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
