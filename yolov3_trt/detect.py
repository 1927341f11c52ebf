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
from typing import Any, Callable, Sequence

from tqdm import tqdm

from .cli.common import UsageError, add_model_args, add_postprocess_args, add_runtime_args, make_parser, run
from .cli.models import build_detector
from .detections import coco_image_ids
from .fileio import atomic_write_json
from .names import coco_category_ids
from .sources import AnnotatedOutput, Frame, ImageSource, Source, VideoSource, open_source
from .visualize import draw_detections

logger = logging.getLogger(__name__)
PER_IMAGE_REPORT_LIMIT = 20  # print one line per image for small image sets
LISTED_DETECTIONS = 8  # detections named on that line


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("python -m yolov3_trt.detect", __doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("source", metavar="SOURCE",
                        help="image file, folder of images, video file, or camera index (e.g. 0)")
    add_model_args(parser)
    add_runtime_args(parser)
    add_postprocess_args(parser, None, None, None)
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


def _coco_image_fields(source: Source) -> Callable[[Frame], tuple[int, str]]:
    """A frame's JSON ``image_id`` and ``file_name``: for images, the id from
    :func:`coco_image_ids` and the file's name with its extension; for a video, the frame index
    and the video's file name; for a camera, the frame index and ``camera<N>``."""
    if isinstance(source, ImageSource):
        file_names = [path.name for path in source.paths]
        image_ids = coco_image_ids(file_names)
        return lambda frame: (image_ids[frame.index], file_names[frame.index])
    name = source.path.name if isinstance(source, VideoSource) else source.stem
    return lambda frame: (frame.index, name)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be >= 1")
    detector = build_detector(args)
    output = Path(args.output)
    json_path = Path(args.json) if args.json else output / "detections.json"
    records: list[dict[str, Any]] = []
    lines: list[str] = []
    frames = 0
    with detector, open_source(args.source, max_frames=args.max_frames, skip_unreadable=args.skip_unreadable) as source, \
            (contextlib.nullcontext() if args.no_draw else AnnotatedOutput(output, source)) as writer:
        image_fields = _coco_image_fields(source)
        category_ids = coco_category_ids(detector.names)  # COCO's 1..90 for COCO names, else None
        progress = tqdm(source, total=source.total, unit="img" if source.kind == "images" else "frame",
                        desc="detect", disable=None)
        try:
            for frame in progress:
                detections = detector.detect(frame.image)
                frames += 1
                image_id, file_name = image_fields(frame)
                records.extend(detections.to_coco(image_id, file_name=file_name, category_ids=category_ids))
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
