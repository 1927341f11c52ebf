"""``python -m yolov3_trt.train``: train or fine-tune YOLOv3 on YOLO-format or COCO-format data.

    python -m yolov3_trt.train --data train.txt --val val.txt --cfg yolov3-tiny --epochs 50
    python -m yolov3_trt.train --synthetic 200 --cfg yolov3-tiny --size 256 --epochs 30   # demo data
    python -m yolov3_trt.train --resume runs/train/last.pt                                # continue
    torchrun --nproc_per_node 4 -m yolov3_trt.train --data ...                           # several GPUs
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import Sequence

from ..cli.common import UsageError, make_parser, parse_size, run

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    from .trainer import TrainConfig

    defaults = TrainConfig()
    p = make_parser("python -m yolov3_trt.train", __doc__.split("\n")[0].split(": ", 1)[1])
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, metavar="PATH", help="training set: YOLO folder or list file, or COCO JSON")
    g.add_argument("--val", default=None, metavar="PATH", help="validation set (default: --val-fraction of --data)")
    g.add_argument("--val-fraction", type=float, default=0.1, help="held out of --data when --val is not given")
    g.add_argument("--names", default=None, metavar="PATH", help="class names file (default: found beside the data)")
    g.add_argument("--synthetic", type=int, default=None, metavar="N",
                   help="generate N synthetic images (shapes on textured backgrounds) into OUTPUT/data and train on them")
    g = p.add_argument_group("model")
    g.add_argument("--cfg", default="yolov3", metavar="PATH|NAME", help="Darknet cfg or built-in name")
    g.add_argument("--weights", default=None, metavar="PATH",
                   help="start from Darknet .weights (full, backbone prefix, or another class count) or a .pt")
    g.add_argument("--resume", default=None, metavar="PATH", help="continue a run from its last.pt")
    g.add_argument("--size", type=lambda s: parse_size(s)[0], default=defaults.size, metavar="N",
                   help="square training size (multiple of 32)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=None, help=f"epochs in all (default {defaults.epochs}; "
                   "with --resume: the run's own, or more to extend it)")
    for name in ("batch", "accumulate", "workers", "seed", "eval_every"):
        g.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "ema_decay", "eval_conf"):
        g.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    g.add_argument("--optimizer", choices=("sgd", "adamw"), default=defaults.optimizer)
    g.add_argument("--schedule", choices=("cosine", "step"), default=defaults.schedule)
    g.add_argument("--no-ema", dest="ema", action="store_false", help="no weight EMA")
    g.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on CUDA")
    g.add_argument("--no-augment", dest="augment", action="store_false")
    g.add_argument("--multiscale", action="store_true", help="random input size 320..608 every 10 batches")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    p.add_argument("--output", default="runs/train", metavar="PATH", help="folder for checkpoints, metrics and curves")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..data.dataset import load_dataset
    from ..model.yolov3 import YoloV3
    from .init import init_heads, load_pretrained
    from .trainer import TrainConfig, Trainer, resume_state

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    config = TrainConfig(**given)
    output = Path(args.output)
    state = None
    if args.resume:  # the run's own settings; only --epochs may change (to extend it)
        model, names, state = resume_state(args.resume)
        config = TrainConfig(**{**state["config"], **({"epochs": args.epochs} if args.epochs else {})})
    if args.synthetic:
        from ..data.synthetic import generate
        train = generate(output / "data", args.synthetic, size=config.size, seed=config.seed)
    elif args.data:
        train = load_dataset(args.data, args.names)
    else:
        raise UsageError("give --data PATH (or --synthetic N for generated shapes)")
    val = load_dataset(args.val, train.names) if args.val else None
    if val is None and args.val_fraction > 0:
        train, val = train.split(1 - args.val_fraction, seed=config.seed)
    if state is None:
        import torch
        torch.manual_seed(config.seed)  # initial weights follow the seed too
        model = YoloV3.from_cfg(args.cfg, num_classes=len(train.names))
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
    if trainer.rank == 0 and history:
        last = history[-1]
        print(f"done: {last['epoch']} epochs, loss {last['loss']:.4f}"
              + (f", val AP50 {last['val_AP50']:.4f}" if "val_AP50" in last else "")
              + f"; checkpoints, metrics.csv and curves.png in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
