"""``python -m yolov3_trt.detect``: detect objects in images, a folder, a video, a stream or a camera.

Writes annotated copies (images, or an .mp4 for video, stream and camera) to --output and all
detections as COCO-style JSON to --json (default: <output>/detections.json).

Outputs (``yolov3_trt.cli.outputs``): checked before the model loads; never written over an
input; the annotated files and the JSON are written into a hidden staging folder and moved into
--output together when the run completes, so a failed or interrupted run leaves --output as it
was. A folder holding an earlier run's results (its ``.yolov3_trt-run.json`` manifest, or a file
this run would write) is refused unless --force, which replaces them and removes the earlier
run's files that this run does not rewrite.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from .cli.args import ModelArgs, PostprocessArgs, RuntimeArgs
from .cli.common import UsageError, make_parser, run
from .cli.flags import add_flag
from .cli.models import detector_for
from .cli.outputs import (
    ResultFolder,
    StagedFiles,
    absolute,
    add_force_arg,
    check_not_input,
    check_output_file,
    existing_inputs,
    model_inputs,
)
from .detections import coco_image_ids
from .errors import ImageReadError
from .fileio import atomic_write_json
from .names import coco_category_ids
from .sources import (
    AnnotatedOutput,
    Frame,
    ImageSource,
    Source,
    StreamSource,
    TruncatedVideoError,
    VideoSource,
    open_source,
)
from .visualize import draw_detections

logger = logging.getLogger(__name__)
PER_IMAGE_REPORT_LIMIT = 20  # print one line per image for small image sets
LISTED_DETECTIONS = 8  # detections named on that line


GROUPS = (ModelArgs(), RuntimeArgs(resize_kernel=True), PostprocessArgs())


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("python -m yolov3_trt.detect", __doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("source", metavar="SOURCE",
                        help="image file, folder of images, video file, stream URL (rtsp://, http://), or camera "
                             "index (e.g. 0)")
    for group in GROUPS:
        group.add_parser_args(parser)
    g = parser.add_argument_group("input and output")
    add_flag(g, "--output", default="runs/detect", metavar="PATH",
             help="folder for annotated output (an earlier run's results there need --force)")
    add_flag(g, "--json", metavar="PATH", help="detections as COCO-style JSON", default_text="OUTPUT/detections.json")
    add_flag(g, "--no-draw")
    add_flag(g, "--max-frames", default_text="all")
    add_flag(g, "--skip-unreadable")
    add_flag(g, "--tolerate-truncated")
    add_force_arg(g, help="replace an earlier run's results in --output (and an existing --json), removing its "
                          "files this run does not rewrite; never an input")
    return parser


def _coco_image_fields(source: Source) -> Callable[[Frame], tuple[int, str]]:
    """A frame's JSON ``image_id`` and ``file_name``: for images, the id from
    :func:`coco_image_ids` and the file's name with its extension; for a video, the frame index
    and the video's file name; for a stream, the frame index and the URL's last part; for a
    camera, the frame index and ``camera<N>``."""
    if isinstance(source, ImageSource):
        file_names = [path.name for path in source.paths]
        image_ids = coco_image_ids(file_names)
        return lambda frame: (image_ids[frame.index], file_names[frame.index])
    if isinstance(source, VideoSource):
        name = source.path.name
    else:
        name = source.name if isinstance(source, StreamSource) else source.stem
    return lambda frame: (frame.index, name)


def _source_inputs(source: Source) -> list[Path]:
    if isinstance(source, ImageSource):
        return list(source.paths)
    return [source.path] if isinstance(source, VideoSource) else []


def _plan_outputs(args: argparse.Namespace, source: Source, inputs: list[Path]) -> tuple[ResultFolder | None, Path,
                                                                                          bool]:
    """(the result folder or None when nothing goes there, the JSON path, whether the JSON is in
    the folder), every path checked: OutputError before any work."""
    output = Path(args.output)
    json_path = Path(args.json) if args.json else output / "detections.json"
    json_in_folder = absolute(json_path.parent) == absolute(output)
    planned = [json_path.name] if json_in_folder else []
    if not args.no_draw:
        names = source.names if isinstance(source, ImageSource) else [source.stem]
        suffix = ".jpg" if isinstance(source, ImageSource) else ".mp4"
        planned += [name + suffix for name in names]
        if json_in_folder and json_path.name in planned[1:]:
            raise UsageError(f"--json {json_path} is also the name of an annotated image; choose another --json")
    if not json_in_folder:
        check_output_file(json_path, inputs=inputs, force=args.force, option="--json")
    if not planned:
        return None, json_path, False
    folder = ResultFolder(output, planned, tool="detect", inputs=inputs, force=args.force)
    folder.check()
    return folder, json_path, json_in_folder


def _detect_all(detector, source: Source, writer: AnnotatedOutput | None) -> tuple[list[dict[str, Any]], list[str],
                                                                                   int]:
    """Run ``detector`` over ``source``: (COCO records, one report line per frame, frames)."""
    records: list[dict[str, Any]] = []
    lines: list[str] = []
    frames = 0
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
        if source.kind not in ("camera", "stream"):
            raise
        # A camera or live stream runs until stopped: Ctrl-C ends the recording normally, not as a failure.
        logger.info("stopped by Ctrl-C after %d frames", frames)
    except TruncatedVideoError as err:
        raise ImageReadError(err.path, f"{err.problem}; nothing written: pass --tolerate-truncated to keep the "
                                       f"{err.frames} frames read") from None
    return records, lines, frames


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model_options, post = GROUPS[0].parse(args), GROUPS[2].parse(args)
    output = Path(args.output)
    with open_source(args.source, max_frames=args.max_frames, skip_unreadable=args.skip_unreadable,
                     tolerate_truncated=args.tolerate_truncated) as source:
        inputs = model_inputs(args) + _source_inputs(source)
        folder, json_path, json_in_folder = _plan_outputs(args, source, inputs)
        runtime = GROUPS[1].parse(args, model_options)  # after the output checks, as the model loads
        detector, resolved = detector_for(model_options, runtime, post)
        # --weights by name became the cached file: it too is an input
        check_not_input(json_path, existing_inputs(resolved.weights, resolved.checkpoint), option="--json")
        with detector, contextlib.ExitStack() as stack:
            staged = None if json_in_folder else stack.enter_context(StagedFiles([json_path]))
            if folder is not None:
                stack.enter_context(folder)
            writer = None if args.no_draw else stack.enter_context(AnnotatedOutput(folder.staging, source))
            records, lines, frames = _detect_all(detector, source, writer)
            atomic_write_json(folder.staging / json_path.name if json_in_folder else staged[json_path], records)
    if source.kind == "images" and frames <= PER_IMAGE_REPORT_LIMIT:
        print("\n".join(lines))
    where = f"annotated output in {output}, " if writer is not None else ""
    print(f"{frames} {'images' if source.kind == 'images' else 'frames'}, {len(records)} detections; "
          f"{where}detections in {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
