"""Precision/recall curves as a PNG (matplotlib's Agg canvas; no pyplot, no global state)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..fileio import atomic_path
from .metrics import PRCurve


def _step_curve(curve: PRCurve) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) of the interpolated curve that AP integrates, from recall 0.

    Precision is made non-increasing from the right (COCO's envelope) and drawn as steps up to
    the highest recall reached, where it drops to 0 (COCO counts precision 0 beyond it); the
    false positives ranked after that point change nothing and are not drawn.
    """
    if not len(curve.recall):
        return np.array([0.0, 0.0]), np.array([0.0, 0.0])
    envelope = np.maximum.accumulate(curve.precision[::-1])[::-1]
    end = int(np.argmax(curve.recall >= curve.recall.max())) + 1
    recall = np.concatenate([[0.0], curve.recall[:end], [curve.recall[end - 1]]])
    return recall, np.concatenate([[envelope[0]], envelope[:end], [0.0]])


def _legend_label(curve: PRCurve) -> str:
    ap = "n/a" if math.isnan(curve.ap) else f"{curve.ap:.3f}"
    return f"{curve.label}: AP{round(curve.iou * 100)} {ap} ({curve.num_gt} boxes)"


def plot_pr_curves(curves: Sequence[PRCurve], path: str | os.PathLike, title: str | None = None,
                   dpi: int = 120) -> Path:
    """Draw precision against recall for each curve (the first drawn thicker) and write a PNG.

    Args:
        curves: e.g. the class-agnostic curve followed by a few classes'.
        path: the PNG to write (atomically; folders are created).
        title: figure title.
        dpi: resolution; the figure is 7 x 5.5 inches.

    Returns:
        ``path`` as a Path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5.5), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for i, curve in enumerate(curves):
        recall, precision = _step_curve(curve)
        axes.plot(recall, precision, drawstyle="steps-post", linewidth=2.5 if i == 0 else 1.2,
                  color="black" if i == 0 else None, label=_legend_label(curve))
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.grid(True, alpha=0.3)
    if title:
        axes.set_title(title)
    if curves:
        axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
