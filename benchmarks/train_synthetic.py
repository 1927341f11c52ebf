"""Training from scratch on the generated shapes set: ``python benchmarks/train_synthetic.py``.

Generates the procedural dataset (train + held-out validation split), trains a yolov3-tiny
from scratch on this machine's CPU with the project's trainer, and reports the held-out AP50 and
the wall-clock time; the trainer's curves.png and metrics.csv land in --output. The target this
answers: AP50 >= 0.8 on the held-out split within 30 minutes on a 2-core CPU.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402


def build_parser():
    """The flags (yolov3_trt.cli.flags: one meaning, one validator, one help line in every tool)."""
    from yolov3_trt.cli.common import ArgumentParser
    from yolov3_trt.cli.flags import add_flag

    p = ArgumentParser(prog="benchmarks/train_synthetic.py", description=__doc__.split("\n")[0])
    add_flag(p, "--images", default=600, default_text="600, 20% held out")
    add_flag(p, "--size", default=(192, 192), default_text="192")
    add_flag(p, "--epochs", default=40)
    add_flag(p, "--batch-size", default=16)
    add_flag(p, "--lr", default=0.002)
    add_flag(p, "--cfg", default="yolov3-tiny")
    add_flag(p, "--output", default="runs/train_synthetic", metavar="DIR", help="folder for the data and the run")
    add_flag(p, "--budget-minutes", default=30.0)
    return p

def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.size[0] != args.size[1]:
        p.error(f"argument --size: {args.size[0]}x{args.size[1]}: the benchmark sizes are square, give N")
    args.size = args.size[0]

    from yolov3_trt.cli.common import run
    from yolov3_trt.data.synthetic import generate
    from yolov3_trt.fileio import atomic_write_json
    from yolov3_trt.model.checkpoint import load_checkpoint
    from yolov3_trt.train.__main__ import main as train_main

    out = Path(args.output)
    start = time.perf_counter()
    generate(out / "data", args.images, size=args.size, seed=0, val_fraction=0.2, overwrite=True)
    command = ["--data", str(out / "data" / "train.txt"), "--val", str(out / "data" / "val.txt"),
               "--cfg", args.cfg, "--size", str(args.size), "--epochs", str(args.epochs),
               "--batch-size", str(args.batch),
               "--optimizer", "adamw", "--lr", str(args.lr), "--weight-decay", "0.0005", "--warmup-epochs", "2",
               "--eval-every", "5", "--seed", "0", "--output", str(out / "run"), "--force"]  # its own run
    status = run(train_main, command)
    minutes = (time.perf_counter() - start) / 60
    if status:
        return status
    _, _, extra = load_checkpoint(out / "run" / "last.pt")
    last = extra["history"][-1]
    result = {"command": "python benchmarks/train_synthetic.py " + " ".join(argv or sys.argv[1:]),
              "train_command": "python -m yolov3_trt.train " + " ".join(command),
              "machine": machine_info(), "minutes": minutes, "epochs": last["epoch"],
              "val_AP50": last["val_AP50"], "val_mAP": last["val_mAP"], "history": extra["history"],
              "target": {"AP50": 0.8, "minutes": args.budget_minutes},
              "met": last["val_AP50"] >= 0.8 and minutes <= args.budget_minutes}
    atomic_write_json(out / "train_synthetic.json", result)
    print(f"{args.cfg} from scratch on {int(args.images * 0.8)} generated images, {args.size} px, "
          f"{last['epoch']} epochs in {minutes:.1f} min on {machine_info()['cpu']}: held-out AP50 "
          f"{last['val_AP50']:.3f}, mAP {last['val_mAP']:.3f} "
          f"({'meets' if result['met'] else 'misses'} AP50 >= 0.8 within {args.budget_minutes:.0f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
