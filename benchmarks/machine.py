"""What machine a benchmark ran on, its measured FP32 GEMM rate (the compute ceiling), and timing helpers."""
from __future__ import annotations

import os
import platform
import time
from typing import Any, Callable

import numpy as np


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return sorted(flags & {"avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16",
                                           "amx_bf16", "amx_tile"})
    except OSError:
        pass
    return []


def physical_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("onnxruntime", "openvino", "torch", "cv2"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def machine_info() -> dict[str, Any]:
    return {"cpu": cpu_name(), "cores": physical_cores(), "flags": cpu_flags(), "system": platform.platform(),
            "versions": versions()}


def gemm_gflops(threads: int, n: int = 4096, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` FP32 n x n matmul rate of numpy and (if installed) torch, in GFLOP/s."""
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    results = {}

    def best(fn) -> float:
        fn()  # warm-up: thread pools, page faults
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return flops / min(times) / 1e9

    results["numpy"] = best(lambda: a @ b)
    try:
        import torch
    except ImportError:
        return results
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    results["torch"] = best(lambda: torch.mm(ta, tb))
    torch.set_num_threads(previous)
    return results


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed(fn: Callable[[], Any], warmup: int, runs: int) -> list[float]:
    """Wall-clock ms of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out
