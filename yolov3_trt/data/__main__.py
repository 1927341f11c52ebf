"""``python -m yolov3_trt.data``: summarise a dataset, or generate the synthetic one.

    python -m yolov3_trt.data summary PATH [--names F] [--json OUT]
    python -m yolov3_trt.data synthetic OUT --images N [--image-size S|WxH|MIN:MAX] [--seed K] [--val-fraction F]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from yolov3_trt.cli.common import HelpFormatter, make_parser, run
from yolov3_trt.cli.flags import add_flag
from yolov3_trt.cli.outputs import add_force_arg, check_output_file, check_output_folder, dataset_inputs
from yolov3_trt.cli.types import parse_image_size  # noqa: F401 (imported from here by tests)
from yolov3_trt.fileio import atomic_write_json

logger = logging.getLogger("yolov3_trt.data")


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a human-readable table."""
    lines = [f"dataset {summary['source']}: {summary['images']} images, {summary['boxes']} boxes, "
             f"{summary['classes']} classes, {summary['images_without_boxes']} images without boxes"]
    for key, label in (("box_width", "box width "), ("box_height", "box height")):
        stats = summary[key]
        if stats is not None:
            lines.append(f"{label} (fraction of image): min {stats['min']:.4f}  median {stats['median']:.4f}  "
                         f"max {stats['max']:.4f}")
    area = summary["coco_area"]
    if area is not None:
        lines.append(f"COCO sizes: small {area['small']}  medium {area['medium']}  large {area['large']}"
                     + (f"  unknown {area['unknown']}" if area["unknown"] else ""))
    width = max([len(c["name"]) for c in summary["per_class"]] + [5])
    lines.append(f"{'id':>4}  {'class':<{width}}  {'boxes':>8}  {'images':>8}")
    lines += [f"{c['id']:>4}  {c['name']:<{width}}  {c['boxes']:>8}  {c['images']:>8}" for c in summary["per_class"]]
    return "\n".join(lines)


def _summary(args: argparse.Namespace) -> int:
    from yolov3_trt.data.dataset import load_dataset

    if args.json not in (None, "-"):
        files, folders = dataset_inputs(args.path, args.names)
        check_output_file(args.json, inputs=files, force=args.force, option="--json", input_folders=folders)
    summary = load_dataset(args.path, args.names).summary()
    if args.json == "-":
        print(json.dumps(summary, indent=2))
        return 0
    print(format_summary(summary))
    if args.json is not None:
        atomic_write_json(args.json, summary)
    return 0


def _synthetic(args: argparse.Namespace) -> int:
    from yolov3_trt.data.synthetic import MARKER, generate

    check_output_folder(args.output, option="OUT")
    if (Path(args.output) / MARKER).is_file():  # the generator's documented policy: its own earlier set goes
        logger.info("replacing the synthetic dataset in %s (an earlier run's images and labels are removed)",
                    args.output)
    dataset = generate(args.output, args.images, size=args.image_size, seed=args.seed, max_objects=args.max_objects,
                       val_fraction=args.val_fraction, image_format=args.format, overwrite=args.force,
                       progress=not args.quiet)
    boxes = sum(len(s.classes) for s in dataset.samples)
    print(f"wrote {len(dataset)} images with {boxes} objects to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("python -m yolov3_trt.data", "Summarise a detection dataset or generate the synthetic one.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verbose = dict(action="store_true", default=argparse.SUPPRESS, help="log debug messages")

    summary = commands.add_parser("summary", help="image, box and per-class counts, box sizes",
                                  formatter_class=HelpFormatter)
    summary.add_argument("path", metavar="PATH", help="YOLO folder, image list .txt, or COCO .json")
    add_flag(summary, "--names", default_text="classes.names or *.names beside the data")
    add_flag(summary, "--json", metavar="PATH", help="also write the summary as JSON ('-': stdout)")
    add_force_arg(summary, help="replace an existing --json file (never the dataset's own files)")
    summary.add_argument("-v", "--verbose", **verbose)
    summary.set_defaults(func=_summary)

    synth = commands.add_parser("synthetic", help="generate the shapes dataset (YOLO + COCO files)",
                                formatter_class=HelpFormatter)
    synth.add_argument("output", metavar="OUT", help="output folder (new or empty)")
    add_flag(synth, "--images", required=True)
    add_flag(synth, "--image-size", default=416)
    add_flag(synth, "--seed", default=0)
    add_flag(synth, "--max-objects", default=10)
    add_flag(synth, "--val-fraction", default=0.0, default_text="0: no train/val lists; above 0 they are written, "
             "with COCO files of each")
    add_flag(synth, "--format", default="png")
    add_force_arg(synth, aliases=("--overwrite",),
                  help="write into a folder that holds other files (this generator's own earlier output is "
                       "always replaced, stale images included)")
    add_flag(synth, "--quiet")
    synth.add_argument("-v", "--verbose", **verbose)
    synth.set_defaults(func=_synthetic)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(run(main))
