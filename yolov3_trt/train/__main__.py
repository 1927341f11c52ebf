"""``python -m yolov3_trt.train``: train or fine-tune YOLOv3 on YOLO-format or COCO-format data.

    python -m yolov3_trt.train --data train.txt --val val.txt --cfg yolov3-tiny --epochs 50
    python -m yolov3_trt.train --synthetic 200 --cfg yolov3-tiny --size 256 --epochs 30   # demo data
    python -m yolov3_trt.train --resume runs/train/last.pt --data train.txt               # continue
    torchrun --nproc_per_node 4 -m yolov3_trt.train --data ...                           # several GPUs
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

from ..cli.common import UsageError, make_parser, parse_size, positive_int, run
from ..cli.outputs import (OutputError, absolute, add_force_arg, check_not_input, check_output_file,
                           check_output_folder, dataset_inputs, existing_inputs, same_file)

logger = logging.getLogger(__name__)

# Settings a resumed run may change: they choose where and how fast it runs, not what it computes.
RESUME_MAY_CHANGE = ("epochs", "device", "workers", "eval_every")
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "curves.png")  # what a run writes into --output


def _number(text: str, kind: type = float) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a{'n integer' if kind is int else ' number'}, "
                                         f"got {text!r}") from None


def _positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def _non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def _fraction(text: str) -> float:
    """In [0, 1): a share held out (1 would leave nothing to train on)."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1)")
    return value


def _probability(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1]")
    return value


def _square_size(text: str) -> int:
    """``N`` or ``NxN``: training batches are square."""
    width, height = parse_size(text)
    if width != height:
        raise argparse.ArgumentTypeError(f"{text!r}: training runs on square inputs; give one side N "
                                         "(detect, evaluate and export take WxH)")
    return width


def build_parser() -> argparse.ArgumentParser:
    from .trainer import TrainConfig

    d = TrainConfig()
    p = make_parser("python -m yolov3_trt.train", __doc__.split("\n")[0].split(": ", 1)[1])
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, metavar="PATH", help="training set: YOLO folder or list file, or COCO JSON")
    g.add_argument("--val", default=None, metavar="PATH", help="validation set (default: --val-fraction of --data)")
    g.add_argument("--val-fraction", type=_fraction, default=0.1, metavar="F",
                   help="held out of --data when --val is not given")
    g.add_argument("--names", default=None, metavar="PATH", help="class names file (default: found beside the data)")
    g.add_argument("--synthetic", type=positive_int, default=None, metavar="N",
                   help="generate N synthetic images (shapes on textured backgrounds) into OUTPUT/data and train on them")
    g = p.add_argument_group("model")
    g.add_argument("--cfg", default=None, metavar="PATH|NAME", help="Darknet cfg or built-in name (default: yolov3)")
    g.add_argument("--weights", default=None, metavar="PATH",
                   help="start from Darknet .weights (full, backbone prefix, or another class count) or a .pt")
    g.add_argument("--resume", default=None, metavar="PATH",
                   help="continue a run from its last.pt, with its own settings (only --epochs, --device, "
                        "--workers and --eval-every may change)")
    g.add_argument("--size", type=_square_size, default=None, metavar="N",
                   help=f"square training size, a multiple of 32 (default {d.size}); the checkpoints' cfg "
                        "records it, so detect, evaluate and export run at it")
    # Defaults are None here and TrainConfig's below, so that a resumed run can tell which were given.
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=positive_int, default=None, metavar="N", help=f"epochs in all (default {d.epochs}; "
                   "with --resume: the run's own, or more to extend it)")
    ints = {"batch": (positive_int, "images per optimizer step, before accumulation"),
            "accumulate": (positive_int, "optimizer step every N batches"),
            "workers": (_non_negative_int, "data-loader processes; 0 loads in the main process"),
            "seed": (lambda s: _number(s, int), "initial weights, data order and augmentation follow it"),
            "eval_every": (positive_int, "validate every N epochs (and after the last)"),
            "bn_images": (_non_negative_int, "before each validation and checkpoint, recompute the BatchNorm "
                                             "statistics on this many training images; 0 keeps the running ones")}
    for name, (kind, text) in ints.items():
        g.add_argument("--" + name.replace("_", "-"), type=kind, default=None, metavar="N",
                       help=f"{text} (default {getattr(d, name)})")
    floats = {"lr": (_positive_float, "peak learning rate, as in a Darknet cfg (the loss is summed over a batch "
                                      "and divided by its size)"),
              "momentum": (_probability, "SGD momentum"),
              "weight_decay": (_non_negative_float, "on conv weights only"),
              "warmup_epochs": (_non_negative_float, "linear learning-rate warm-up"),
              "grad_clip": (_non_negative_float, "scale the gradient down to this norm when it is larger, "
                                                 "which keeps the L2 box term from diverging; 0 never clips"),
              "ema_decay": (_probability, "weight EMA decay"),
              "eval_conf": (_probability, "score threshold of the validation detections")}
    for name, (kind, text) in floats.items():
        g.add_argument("--" + name.replace("_", "-"), type=kind, default=None, metavar="X",
                       help=f"{text} (default {getattr(d, name)})")
    g.add_argument("--optimizer", choices=("sgd", "adamw"), default=None, help=f"(default {d.optimizer})")
    g.add_argument("--schedule", choices=("cosine", "step"), default=None, help=f"(default {d.schedule})")
    g.add_argument("--no-ema", dest="ema", action="store_false", default=None, help="no weight EMA")
    g.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="no mixed precision on CUDA")
    g.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    g.add_argument("--multiscale", action="store_true", default=None,
                   help="random input size 320..608 every 10 batches")
    g.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1 (default auto)")
    p.add_argument("--output", default="runs/train", metavar="PATH", help="folder for checkpoints, metrics and curves")
    add_force_arg(p, help="replace an earlier run's " + ", ".join(RUN_FILES) + " in --output (never an input; "
                          "--resume continues its own run's files without it)")
    return p


def check_outputs(args: argparse.Namespace, output: Path) -> None:
    """Before any work (README, "What is never overwritten"): ``output`` is a folder that exists or
    can be created and is writable; the run's files there replace no input (weights, cfg, names,
    a dataset file, nothing inside a dataset folder) and, without --force, no earlier run's files,
    except the files of the run that --resume continues. Creates nothing."""
    files, folders = [], []
    for data in (args.data, args.val):
        found, within = dataset_inputs(data, args.names)
        files += found
        folders += within
    files += existing_inputs(args.weights, args.cfg)
    check_output_folder(output, inputs=files)
    for folder in folders:
        if same_file(folder, output) or absolute(folder) in absolute(output).parents:
            raise OutputError(output, f"is inside {folder}, an input of this run; choose another --output "
                                      "(nothing is ever written among the inputs)")
    own_run = args.resume is not None and same_file(args.resume, output / "last.pt")
    for name in RUN_FILES:
        path = output / name
        if own_run and os.path.lexists(path):
            check_not_input(path, files)  # the resumed run's own files: it continues them
        else:
            check_output_file(path, inputs=files, force=args.force)


def check_device(text: str, source: str = "--device") -> None:
    """UsageError for a device that torch cannot name or this machine does not have."""
    if text == "auto":
        return
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"{source} {text!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise UsageError(f"{source} {text}: training runs on cpu or cuda devices")
    if not torch.cuda.is_available():
        why = "this torch has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise UsageError(f"{source} {text}: CUDA is not available here ({why}); use --device cpu or auto")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"{source} {text}: only {torch.cuda.device_count()} CUDA device(s) here")


def main(argv: Sequence[str] | None = None) -> int:
    from .trainer import TrainConfig

    args = build_parser().parse_args(argv)
    output = Path(args.output)
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    if args.device is not None:
        check_device(args.device)

    from ..data.dataset import load_dataset
    from ..model.yolov3 import YoloV3
    from .init import init_heads, load_pretrained
    from .trainer import Trainer, distributed, resume_state

    state = None
    if args.resume:  # the run's own settings; only RESUME_MAY_CHANGE may change
        fixed = sorted("--" + k.replace("_", "-") for k in given if k not in RESUME_MAY_CHANGE)
        fixed += [flag for flag, value in (("--cfg", args.cfg), ("--weights", args.weights)) if value]
        if fixed:
            raise UsageError(f"--resume continues a run with its own settings: drop {', '.join(fixed)} (only "
                             + ", ".join("--" + k.replace("_", "-") for k in RESUME_MAY_CHANGE) + " may change)")
        model, names, state = resume_state(args.resume)
        config = TrainConfig(**{**state["config"], **{k: v for k, v in given.items() if k in RESUME_MAY_CHANGE}})
        done = int(state["epoch"])
        if done >= config.epochs:
            raise UsageError(f"--resume {args.resume}: the run has finished its {done} epochs"
                             + (f"; --epochs {config.epochs} adds none" if "epochs" in given else "")
                             + f"; give --epochs N > {done} to extend it")
        if "device" not in given:
            check_device(config.device, source=f"--device (from {args.resume})")
    else:
        config = TrainConfig(**given)
    check_outputs(args, output)  # after reading --resume (whose own files it may continue), before any work
    rank, _, world = distributed()
    if config.batch % world:
        raise UsageError(f"--batch {config.batch} must divide among the {world} processes")
    if args.synthetic:
        from ..data.synthetic import generate
        train = generate(output / "data", args.synthetic, size=config.size, seed=config.seed)
    elif args.data:
        train = load_dataset(args.data, args.names)
    else:
        raise UsageError("give --data PATH (or --synthetic N for generated shapes)")
    val = load_dataset(args.val, train.names) if args.val else None
    if val is None and args.val_fraction > 0 and len(train) > 1:
        train, val = train.split(1 - args.val_fraction, seed=config.seed)
    if not len(train):
        raise UsageError(f"--data {args.data or output / 'data'}: no training images")
    if val is not None and not len(val):
        raise UsageError(f"--val {args.val}: no images")
    if state is None:
        import torch
        torch.manual_seed(config.seed)  # initial weights follow the seed too
        model = YoloV3.from_cfg(args.cfg or "yolov3", num_classes=len(train.names))
        if args.weights:
            logger.info("%s", load_pretrained(model, args.weights))
        else:
            init_heads(model)
        names = list(train.names)
    elif len(names) != len(train.names):
        raise UsageError(f"{args.resume} was trained on {len(names)} classes, the data has {len(train.names)}")
    logger.info("training %s on %d images (%d validation), %d classes, size %d", model.cfg.source, len(train),
                len(val) if val else 0, len(names), config.size)
    trainer = Trainer(model, names, train, val, config, output, resume=state)
    history = trainer.fit()
    if rank == 0 and history:
        last = history[-1]
        print(f"done: {last['epoch']} epochs, loss {last['loss']:.4f}"
              + (f", val AP50 {last['val_AP50']:.4f}" if "val_AP50" in last else "")
              + f"; checkpoints, metrics.csv and curves.png in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
