"""Learning-rate schedule and weight EMA: small, stateless-by-step pieces the trainer composes."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class LrSchedule:
    """Learning rate at optimizer step ``step`` of ``total``: linear warm-up from 0 over
    ``warmup`` steps, then cosine to ``lr * final`` or steps (Darknet's ``policy=steps``: times
    ``scales[i]`` once ``steps[i]`` of the training, as fractions, has passed)."""

    lr: float
    total: int
    warmup: int = 0
    kind: str = "cosine"          # "cosine" or "step"
    final: float = 0.01
    steps: Sequence[float] = (0.8, 0.9)
    scales: Sequence[float] = (0.1, 0.1)

    def __call__(self, step: int) -> float:
        if self.warmup and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.kind == "cosine":
            span = max(1, self.total - self.warmup)
            progress = min(1.0, (step - self.warmup) / span)
            return self.lr * (self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * progress)))
        lr = self.lr
        for at, scale in zip(self.steps, self.scales):
            if step >= at * self.total:
                lr *= scale
        return lr


class ModelEMA:
    """Exponential moving average of a model's weights, with a warm-up so early steps count.

    decay(n) = ``decay * (1 - exp(-n / ramp))``: the average follows the weights closely at first
    and settles to ``decay``. Buffers (BN statistics) are averaged the same way.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, ramp: float = 2000.0):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.ramp, self.updates = decay, ramp, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.ramp))
        source = model.state_dict()
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(source[name].detach(), alpha=1 - d)
            else:
                value.copy_(source[name])

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
