"""The speed picture: FPS and achieved BFLOP/s per input size and backend, paper rows drawn in."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
import numpy as np  # noqa: E402


def plot(rows: Sequence[dict[str, Any]], paper: Sequence[dict[str, Any]], gemm: float, title: str,
         path: Path, paper_label: str = "paper: Titan X (Darknet)") -> None:
    """Grouped bars per size: FPS (left) and BFLOP/s (right); the paper's Titan X as markers.

    One color per (backend, precision, batch) from a 20-color map, forward-only rows hatched; one
    legend below both plots, so no label sits on a bar."""
    labels = sorted({(r["backend"], r["precision"], r["batch"]) for r in rows}, key=str)
    forward_only = {(r["backend"], r["precision"], r["batch"]) for r in rows if r.get("scope") == "forward only"}
    colors = plt.get_cmap("tab20" if len(labels) > 10 else "tab10").colors
    sizes = sorted({r["size"] for r in rows})
    x = np.arange(len(sizes))
    width = 0.8 / max(len(labels), 1)
    legend_rows = (len(labels) + 3) // 4 + 1
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.4 + 0.22 * legend_rows))
    for metric, ax, unit in (("fps", axes[0], "frames / s (log scale)"),
                             ("bflops_per_s", axes[1], "BFLOP/s achieved in inference (log scale)")):
        for i, label in enumerate(labels):
            values = [next((r[metric] for r in rows if (r["backend"], r["precision"], r["batch"]) == label
                            and r["size"] == s), np.nan) for s in sizes]
            name = f"{label[0]} {label[1]}" + (f" b{label[2]}" if label[2] != 1 else "")
            bars = ax.bar(x + (i - (len(labels) - 1) / 2) * width, values, width, label=name,
                          color=colors[i % len(colors)], hatch="//" if label in forward_only else None,
                          edgecolor="white" if label in forward_only else None)
            ax.bar_label(bars, fmt="%.1f" if metric == "fps" else "%.0f", fontsize=6)
        paper_values = [next((p[metric] for p in paper if p["size"] == s), np.nan) for s in sizes]
        ax.plot(x, paper_values, "k*", markersize=12, label=paper_label)
        if metric == "bflops_per_s" and gemm:
            ax.axhline(gemm, color="grey", linestyle="--", label=f"this CPU: FP32 GEMM {gemm:.0f} GFLOP/s")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(x, [f"{s}x{s}" for s in sizes])
        ax.set_xlabel("input size")
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=4, fontsize=7, frameon=False,
               title="hatched: network forward only; plain: the Detector end to end", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05 * legend_rows, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict[str, Any]], gemm: float) -> str:
    head = (f"{'backend':<12} {'prec':<5} {'size':>4} {'batch':>5} {'p50 ms':>8} {'p90':>8} {'p99':>8} "
            f"{'pre':>6} {'infer':>8} {'post':>6} {'FPS':>7} {'BFLOP/s':>8} {'%GEMM':>6}  scope")
    lines = [head, "-" * len(head)]
    width = max([5] + [len(r["precision"]) for r in rows])
    lines[0] = head.replace(f"{'prec':<5}", f"{'prec':<{width}}")
    lines[1] = "-" * len(lines[0])
    for r in rows:
        if "p50_ms" not in r:  # a row that could not run here: say why
            lines.append(f"{r['backend']:<12} {r['precision']:<{width}} {r['size']:>4} {r['batch']:>5} {r['scope']}")
            continue
        pre = f"{r['preprocess_ms']:6.1f}" if r["preprocess_ms"] is not None else f"{'-':>6}"
        post = f"{r['postprocess_ms']:6.1f}" if r["postprocess_ms"] is not None else f"{'-':>6}"
        gemm_pct = f"{100 * r['bflops_per_s'] / gemm:5.0f}%" if gemm else f"{'-':>6}"
        lines.append(f"{r['backend']:<12} {r['precision']:<{width}} {r['size']:>4} {r['batch']:>5} {r['p50_ms']:8.1f} "
                     f"{r['p90_ms']:8.1f} {r['p99_ms']:8.1f} {pre} {r['infer_ms']:8.1f} {post} {r['fps']:7.2f} "
                     f"{r['bflops_per_s']:8.1f} {gemm_pct}  {r['scope']}")
    return "\n".join(lines)
