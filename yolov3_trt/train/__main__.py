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
from typing import Sequence

from ..cli.common import UsageError, make_parser, run
from ..cli.flags import FLAGS, add_flag
from ..cli.models import resolve_weights_flags
from ..cli.outputs import (
    OutputError,
    absolute,
    add_force_arg,
    check_not_input,
    check_output_file,
    check_output_folder,
    dataset_inputs,
    existing_inputs,
    same_file,
)

logger = logging.getLogger(__name__)

# Settings a resumed run may change: they choose where and how fast it runs, not what it computes.
RESUME_MAY_CHANGE = ("epochs", "device", "workers", "eval_every")
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "curves.png")  # what a run writes into --output


def build_parser() -> argparse.ArgumentParser:
    from .trainer import TrainConfig

    d = TrainConfig()
    p = make_parser("python -m yolov3_trt.train", __doc__.split("\n")[0].split(": ", 1)[1])
    g = p.add_argument_group("data")
    add_flag(g, "--data")
    add_flag(g, "--val", default_text="--val-fraction of --data")
    add_flag(g, "--val-fraction", default=0.1, default_text="0.1, when --val is not given")
    add_flag(g, "--names", default_text="found beside the data")
    add_flag(g, "--synthetic")
    g = p.add_argument_group("model")
    add_flag(g, "--cfg", default_text="yolov3")
    add_flag(g, "--weights", default_text="none: heads initialised afresh")
    add_flag(g, "--init-checkpoint")
    add_flag(g, "--resume")
    add_flag(g, "--size", default_text=f"{d.size}; training runs on square inputs, and the checkpoints' cfg "
             "records it, so detect, evaluate and export run at it")
    # Defaults are None here and TrainConfig's below: a resumed run takes its own, and given_flags says which changed.
    g = p.add_argument_group("optimisation")
    for flag in TRAIN_FLAGS:
        add_flag(g, flag, default_text=str(getattr(d, FLAGS[flag].dest or flag[2:].replace("-", "_"))))
    for flag in ("--no-ema", "--no-amp", "--no-augment", "--multiscale"):
        add_flag(g, flag, default=None)  # None: not given (a resumed run keeps its own)
    add_flag(g, "--device", default_text=d.device)
    add_flag(p, "--output", default="runs/train", metavar="PATH", help="folder for checkpoints, metrics and curves")
    add_force_arg(p, help="replace an earlier run's " + ", ".join(RUN_FILES) + " in --output (never an input; "
                          "--resume continues its own run's files without it)")
    return p


TRAIN_FLAGS = ("--epochs", "--batch-size", "--accumulate", "--workers", "--seed", "--eval-every", "--bn-images",
               "--lr", "--momentum", "--weight-decay", "--warmup-epochs", "--grad-clip", "--ema-decay", "--eval-conf",
               "--optimizer", "--schedule")


def _flag(field: str) -> str:
    """The flag of a TrainConfig field (``batch`` -> ``--batch-size``)."""
    for flag, spec in FLAGS.items():
        if (spec.dest or flag[2:].replace("-", "_")) == field:
            return flag
    return "--" + field.replace("_", "-")


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
    files += existing_inputs(args.weights, args.init_checkpoint, args.cfg)
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
    if args.size is not None and args.size[0] != args.size[1]:
        raise UsageError(f"--size {args.size[0]}x{args.size[1]}: training runs on square inputs; give one side N "
                         "(detect, evaluate and export take WxH)")
    if args.size is not None:
        given["size"] = args.size[0]
    if args.weights and Path(args.weights).suffix in (".pt", ".pth"):
        raise UsageError(f"--weights {args.weights}: --weights takes Darknet .weights (or an official name); "
                         "start from a yolov3_trt checkpoint with --init-checkpoint")
    if args.weights and args.init_checkpoint:
        raise UsageError("--weights and --init-checkpoint both give the starting weights: choose one")

    from ..data.dataset import load_dataset
    from ..model.yolov3 import YoloV3
    from .init import init_heads, load_pretrained
    from .trainer import Trainer, distributed, resume_state

    state = None
    if args.resume:  # the run's own settings; only RESUME_MAY_CHANGE may change
        fixed = sorted(_flag(k) for k in given if k not in RESUME_MAY_CHANGE)
        fixed += [flag for flag, value in (("--cfg", args.cfg), ("--weights", args.weights),
                                           ("--init-checkpoint", args.init_checkpoint)) if value]
        if fixed:
            raise UsageError(f"--resume continues a run with its own settings: drop {', '.join(fixed)} (only "
                             + ", ".join(_flag(k) for k in RESUME_MAY_CHANGE) + " may change)")
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
        raise UsageError(f"--batch-size {config.batch} must divide among the {world} processes")
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
        cfg, weights = resolve_weights_flags(args.cfg, args.weights) if args.weights else (args.cfg, None)
        model = YoloV3.from_cfg(cfg or "yolov3", num_classes=len(train.names))
        if weights or args.init_checkpoint:
            logger.info("%s", load_pretrained(model, weights or args.init_checkpoint))
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
