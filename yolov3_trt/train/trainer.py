"""The training loop: data, loss, optimizer, schedule, EMA, AMP, accumulation, DDP, checkpoints.

Resuming continues exactly: the data order and augmentation come from (seed, epoch, index), the
multi-scale sizes from (seed, epoch, batch), and the checkpoint holds the model, EMA, optimizer,
scaler and history, so epoch k+1 after a resume is epoch k+1 of an uninterrupted run.
Distributed (torchrun): each process takes its shard of every global batch; rank 0 evaluates,
logs and writes. BatchNorm statistics are per process on the CPU (SyncBatchNorm needs GPUs;
it is used there).

Stability. The gradient's norm is clipped (``grad_clip``). The L2 box term (Darknet's w, h
delta, unbounded in the error) makes the loss stiff in the head weights: on a 32-image, 2-class
set at 256 px its Hessian's largest eigenvalue in yolov3-tiny's stride-32 head is ~320 at
initialisation, and SGD with Nesterov momentum 0.9 is stable on a quadratic only while
``lr * eigenvalue < 2 (1 + m) / (1 + 2 m) = 1.36``, i.e. lr < 0.004. At the default 0.01 each
step overshot more (tw 0.5 -> 4 -> 29 -> 390 -> 47312 in 13 steps; NaN in epoch 7). Clipping
bounds the step where the curvature is high without changing the delta. A loss or gradient that
is not finite stops the run at that batch with a :class:`TrainingError`, before the optimizer
step, and no checkpoint ever holds non-finite weights, so ``last.pt`` stays the last good epoch.
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..darknet.layers import YoloSpec, build_network
from ..data.augment import Augment
from ..data.dataset import DetectionDataset
from ..data.loader import TrainingData, make_loader, multiscale_size, resize_batch
from ..errors import CheckpointError, TrainingError
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
    grad_clip: float = 10.0         # max norm of the gradient of the loss (per image); 0: no clipping
    schedule: str = "cosine"        # "cosine" or "step"
    ema: bool = True
    ema_decay: float = 0.9999
    amp: bool = True                # used only on CUDA
    multiscale: bool = False        # the paper: a random size in 320..608 every 10 batches
    multiscale_every: int = 10
    augment: bool = True
    workers: int = 0
    seed: int = 0
    device: str = "auto"            # as given: "auto" resolves on the machine that runs (or resumes) it
    eval_every: int = 1
    eval_conf: float = 0.005
    bn_images: int = 128            # BatchNorm statistics recomputed on this many training images; 0: not
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
        self.device = resolve_device(config.device, local, self.world)
        if config.batch % self.world:
            raise ValueError(f"batch {config.batch} must divide among {self.world} processes")
        self.config, self.names, self.output = config, names, Path(output)
        # The weights learn the training size; the cfg says so, and every checkpoint with it, so
        # evaluate, detect and export run the model at the size it was trained at.
        self.model = set_input_size(model, config.size).to(self.device)
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
                self.recompute_bn_statistics()
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
                self._check_finite(loss, parts, i, len(loader))
                # DDP averages gradients over processes; each process's loss is over its shard
                self.scaler.scale(loss / cfg.accumulate).backward()
            if sync:
                for group in self.optimizer.param_groups:
                    group["lr"] = self.schedule(self.step)
                self.scaler.unscale_(self.optimizer)
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or float("inf"))
                if not self.amp and not torch.isfinite(norm):  # under AMP the scaler skips such steps
                    raise TrainingError(f"{self._where(i, len(loader))}: the gradient is not finite "
                                        f"({float(norm)}); {self._nothing_saved()}")
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

    def _where(self, batch: int, batches: int) -> str:
        return f"training diverged at epoch {self.epoch + 1}, batch {batch + 1} of {batches}"

    def _nothing_saved(self, kept: int | None = None) -> str:
        kept = self.epoch if kept is None else kept
        where = f"last.pt holds epoch {kept}" if kept else "no checkpoint was written"
        return f"{where}; try a lower --lr or --grad-clip"

    def _check_finite(self, loss: torch.Tensor, parts: dict[str, float], batch: int, batches: int) -> None:
        """TrainingError, on every process at once, when a process's loss is not finite."""
        bad = torch.tensor(0.0 if torch.isfinite(loss.detach()) else 1.0, device=self.device)
        if self.world > 1:  # all processes stop together (one alone would hang the others in backward)
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        if bad.item():
            terms = ", ".join(f"{k} {v:.4g}" for k, v in parts.items())
            raise TrainingError(f"{self._where(batch, batches)}: the loss is {float(loss.detach()):.4g} ({terms}); "
                                + self._nothing_saved())

    def eval_model(self) -> YoloV3:
        return self.ema.module if self.ema else self.model

    @torch.no_grad()
    def recompute_bn_statistics(self) -> None:
        """Give the evaluated model's BatchNorm layers the exact mean and variance of its own
        activations on ``bn_images`` training images (letterboxed, not augmented; the same ones
        every epoch), as detectron2's PreciseBN does.

        The running averages lag: at momentum 0.03 they average the last ~33 steps' weights,
        which on a small set (2 steps an epoch) is 16 epochs of a model that has moved since.
        Measured on issue #13's 32-image set (lr 0.01, clipped, no warm-up): the same weights at
        epoch 40 scored AP50 0.13 with the running averages and 0.85 with recomputed statistics,
        at epoch 60 0.76 and 0.96 (recomputed on augmented images instead: 0.96, so it is the
        lag, not the augmentation). Training never reads these buffers (it normalises by batch
        statistics), so only evaluation and the checkpoints see the change.
        """
        if self.config.bn_images <= 0:
            return
        model = self.eval_model()
        layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not layers:
            return
        plain = TrainingData(self.data.dataset, self.config.size, None, seed=self.config.seed)
        loader = make_loader(plain, self.config.batch // self.world, shuffle=True, seed=self.config.seed, epoch=0,
                             workers=self.config.workers)
        momenta = [m.momentum for m in layers]
        was_training = model.training
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches below
        model.train()
        seen = 0
        for images, _ in loader:
            model(images[: self.config.bn_images - seen].to(self.device))
            seen += min(len(images), self.config.bn_images - seen)
            if seen >= self.config.bn_images:
                break
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)

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
        for name, model in (("model", self.model), ("EMA", self.eval_model())):
            if not all(bool(torch.isfinite(v).all()) for v in model.state_dict().values() if v.is_floating_point()):
                raise TrainingError(f"training diverged in epoch {self.epoch}: the {name} weights are not finite, "
                                    f"not saved; {self._nothing_saved(self.epoch - 1)}")
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


def resolve_device(device: str, local_rank: int = 0, world: int = 1) -> torch.device:
    """The torch device of a ``TrainConfig.device``: ``auto`` is this process's GPU, else the CPU;
    ``cuda`` without an index is this process's GPU under torchrun."""
    if device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and world > 1:
        return torch.device(f"cuda:{local_rank}")
    return torch.device(device)


def set_input_size(model: YoloV3, size: int) -> YoloV3:
    """Make ``model``'s cfg ([net] width, height) say ``size`` x ``size``: what ``input_size`` and
    every checkpoint report. The layers do not depend on it."""
    net = model.cfg.net.options
    if (net.get("width"), net.get("height")) != (str(size), str(size)):
        net["width"] = net["height"] = str(size)
        model.network = build_network(model.cfg)
    return model


TRAINING_STATE = ("config", "epoch", "step", "optimizer", "scaler", "history", "raw_model")


def resume_state(path: str | os.PathLike) -> tuple[YoloV3, list[str], dict[str, Any]]:
    """Model (raw weights, not the EMA), names and trainer state from a last.pt.

    Raises CheckpointError for a checkpoint without training state (a best.pt, an export's or
    another tool's checkpoint)."""
    model, names, extra = load_checkpoint(path)
    missing = [k for k in TRAINING_STATE if k not in extra]
    if missing:
        raise CheckpointError(path, "holds no training state (not a run's last.pt: a best.pt or a model "
                                    "checkpoint?); --resume needs last.pt; "
                                    "to start from these weights use --init-checkpoint")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(extra["config"]) - known)
    if unknown:
        logger.warning("%s: ignoring training settings this version does not know: %s", path, ", ".join(unknown))
    extra["config"] = {k: v for k, v in extra["config"].items() if k in known}
    model.load_state_dict(extra["raw_model"])
    return model, names, extra
