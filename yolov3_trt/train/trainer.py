"""The training loop: data, loss, optimizer, schedule, EMA, AMP, accumulation, DDP, checkpoints.

Resuming continues exactly: the data order and augmentation come from (seed, epoch, index), the
multi-scale sizes from (seed, epoch, batch), and the checkpoint holds the model, EMA, optimizer,
scaler and history, so epoch k+1 after a resume is epoch k+1 of an uninterrupted run.
Distributed (torchrun): each process takes its shard of every global batch; rank 0 evaluates,
logs and writes. BatchNorm statistics are per process on the CPU (SyncBatchNorm needs GPUs;
it is used there).
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..darknet.layers import YoloSpec
from ..data.augment import Augment
from ..data.dataset import DetectionDataset
from ..data.loader import TrainingData, make_loader, multiscale_size, resize_batch
from ..fileio import atomic_path, atomic_write_text
from ..model.checkpoint import load_checkpoint, save_checkpoint
from ..model.yolov3 import YoloV3
from .loss import YoloLoss
from .schedule import LrSchedule, ModelEMA

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Every setting of a run (saved in each checkpoint)."""

    size: int = 416
    epochs: int = 100
    batch: int = 16                 # global batch per optimizer step, before accumulation
    accumulate: int = 1             # optimizer step every N batches
    optimizer: str = "sgd"          # "sgd" or "adamw"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4      # on conv weights only, not biases or BN
    warmup_epochs: float = 1.0
    schedule: str = "cosine"        # "cosine" or "step"
    ema: bool = True
    ema_decay: float = 0.9999
    amp: bool = True                # used only on CUDA
    multiscale: bool = False        # the paper: a random size in 320..608 every 10 batches
    multiscale_every: int = 10
    augment: bool = True
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    eval_every: int = 1
    eval_conf: float = 0.005
    extra: dict[str, Any] = field(default_factory=dict)


def distributed() -> tuple[int, int, int]:
    """(rank, local rank, world size) from torchrun's environment, or (0, 0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Conv weights decay; biases and BatchNorm parameters do not."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if name.endswith("conv.weight") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Trains a YoloV3 on a dataset; see the module docstring for what is saved and how."""

    def __init__(self, model: YoloV3, names: list[str], train: DetectionDataset, val: DetectionDataset | None,
                 config: TrainConfig, output: str | os.PathLike, resume: dict[str, Any] | None = None):
        self.rank, local, self.world = distributed()
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if config.device == "auto":
            config.device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(config.device)
        if config.batch % self.world:
            raise ValueError(f"batch {config.batch} must divide among {self.world} processes")
        self.config, self.names, self.output = config, names, Path(output)
        self.model = model.to(self.device)
        self.criterion = YoloLoss([s for s in model.network.layers if isinstance(s, YoloSpec)])
        self.data = TrainingData(train, config.size, Augment() if config.augment else None, seed=config.seed)
        self.val = val
        steps_per_epoch = -(-len(train) // config.batch) // config.accumulate or 1
        self.schedule = LrSchedule(config.lr, steps_per_epoch * config.epochs,
                                   warmup=int(config.warmup_epochs * steps_per_epoch), kind=config.schedule)
        groups = param_groups(self.model, config.weight_decay)
        self.optimizer = (torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
                          if config.optimizer == "sgd" else torch.optim.AdamW(groups, lr=config.lr))
        self.amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.ema = ModelEMA(self.model, config.ema_decay) if config.ema else None
        self.epoch, self.step, self.history = 0, 0, []
        self.best = -1.0
        if resume:
            self._restore(resume)
        self.net = self.model
        if self.world > 1:
            if self.device.type == "cuda":
                self.net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.net)
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    # ---- state ---------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
                "config": asdict(self.config), "history": self.history, "best": self.best}

    def _restore(self, state: dict[str, Any]) -> None:
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.history, self.best = list(state["history"]), float(state.get("best", -1.0))

    # ---- loop ----------------------------------------------------------------------------

    def fit(self, until: int | None = None) -> list[dict[str, Any]]:
        """Train from ``self.epoch`` to ``config.epochs`` (or stop after epoch ``until``, as an
        interrupted run would; the schedule still spans ``config.epochs``); returns the history."""
        while self.epoch < min(self.config.epochs, until or self.config.epochs):
            row = self.train_epoch()
            self.epoch += 1
            if self.rank == 0:
                if self.val is not None and (self.epoch % self.config.eval_every == 0
                                             or self.epoch == self.config.epochs):
                    row.update(self.evaluate())
                self.history.append(row)
                self.save(row)
            if self.world > 1:
                dist.barrier()
        return self.history

    def train_epoch(self) -> dict[str, Any]:
        cfg = self.config
        self.net.train()
        self.data.set_epoch(self.epoch)
        loader = make_loader(self.data, cfg.batch // self.world, shuffle=True, seed=cfg.seed, epoch=self.epoch,
                             workers=cfg.workers, distributed=(self.rank, self.world) if self.world > 1 else None,
                             drop_last=self.world > 1)  # equal shards: DDP processes must step together
        sums = {"loss": 0.0, "xy": 0.0, "wh": 0.0, "obj": 0.0, "cls": 0.0}
        start, batches = time.perf_counter(), 0
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", disable=self.rank != 0 or None, leave=False)
        for i, (images, targets) in enumerate(bar):
            size = cfg.size
            if cfg.multiscale:
                # one draw per group of batches, from (seed, epoch, group): the same on every process
                # and after a resume
                rng = np.random.default_rng([cfg.seed, self.epoch, i // cfg.multiscale_every])
                size = multiscale_size(cfg.size, 0, rng, every=1)
                images = resize_batch(images, size)
            images, targets = images.to(self.device, non_blocking=True), targets.to(self.device)
            sync = (i + 1) % cfg.accumulate == 0 or i + 1 == len(loader)
            no_sync = self.net.no_sync if self.world > 1 and not sync else contextlib.nullcontext
            with no_sync(), torch.autocast(self.device.type, enabled=self.amp):
                outputs = self.net(images)
                loss, parts = self.criterion([o.float() for o in outputs], targets, (size, size))
                # DDP averages gradients over processes; each process's loss is over its shard
                self.scaler.scale(loss / cfg.accumulate).backward()
            if sync:
                for group in self.optimizer.param_groups:
                    group["lr"] = self.schedule(self.step)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                if self.ema:
                    self.ema.update(self.model)
                self.step += 1
            batches += 1
            sums["loss"] += float(loss.detach())
            for k, v in parts.items():
                sums[k] += v
            bar.set_postfix(loss=f"{sums['loss'] / batches:.3f}", size=size)
        row = {k: v / max(batches, 1) for k, v in sums.items()}
        row.update(epoch=self.epoch + 1, lr=self.optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - start)
        if self.world > 1:  # report the mean over processes
            values = torch.tensor([row[k] for k in sums], dtype=torch.float64)
            dist.all_reduce(values)
            row.update({k: float(v) / self.world for k, v in zip(sums, values)})
        logger.info("epoch %d: loss %.4f (xy %.3f wh %.3f obj %.3f cls %.3f), lr %.2e, %.0f s", row["epoch"],
                    row["loss"], row["xy"], row["wh"], row["obj"], row["cls"], row["lr"], row["seconds"])
        return row

    def eval_model(self) -> YoloV3:
        return self.ema.module if self.ema else self.model

    def evaluate(self) -> dict[str, float]:
        """COCO metrics of the (EMA) model on the validation set."""
        from ..evaluate.runner import evaluate_detector
        from ..runtime.detector import Detector

        detector = Detector.from_model(self.eval_model(), self.names, size=(self.config.size, self.config.size),
                                       conf=self.config.eval_conf, max_det=100, device=str(self.device))
        metrics = evaluate_detector(detector, self.val, progress=False)
        detector.close()
        logger.info("epoch %d: val AP50 %.4f, mAP %.4f", self.epoch, metrics["ap50"], metrics["map"])
        return {"val_AP50": metrics["ap50"], "val_mAP": metrics["map"], "val_global_AP50": metrics["global_ap50"]}

    # ---- output --------------------------------------------------------------------------

    def save(self, row: dict[str, Any]) -> None:
        """last.pt every epoch (and best.pt on a new best val AP50), metrics.csv, curves.png."""
        state = self._state()
        save_checkpoint(self.output / "last.pt", self.eval_model(), self.names,
                        extra={**state, "raw_model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}})
        score = row.get("val_AP50", -1.0)
        if score > self.best:
            self.best = score
            save_checkpoint(self.output / "best.pt", self.eval_model(), self.names, extra={"epoch": self.epoch,
                                                                                           "val_AP50": score})
        write_metrics(self.history, self.output)


def write_metrics(history: list[dict[str, Any]], output: Path) -> None:
    """metrics.csv and curves.png (losses, and validation AP when measured)."""
    if not history:
        return
    fields = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(output / "metrics.csv", buffer.getvalue())
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss", "xy", "wh", "obj", "cls"):
        left.plot(epochs, [r[key] for r in history], label=key)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss per image")
    left.legend()
    evaluated = [r for r in history if "val_AP50" in r]
    for key in ("val_AP50", "val_mAP"):
        right.plot([r["epoch"] for r in evaluated], [r[key] for r in evaluated], "o-", label=key)
    right.set_ylim(0, 1)
    right.set_xlabel("epoch")
    right.set_ylabel("validation AP")
    right.legend()
    right.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(output / "curves.png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def resume_state(path: str | os.PathLike) -> tuple[YoloV3, list[str], dict[str, Any]]:
    """Model (raw weights, not the EMA), names and trainer state from a last.pt."""
    model, names, extra = load_checkpoint(path)
    if "raw_model" in extra:
        model.load_state_dict(extra["raw_model"])
    return model, names, extra
