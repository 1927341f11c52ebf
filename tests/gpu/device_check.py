#!/usr/bin/env python3
"""One prepared check for a GPU machine without TensorRT (run it through device_check.sh).

    bash tests/gpu/device_check.sh            # writes ${OUT:-tests/gpu/device_check_out}/device_check.{json,md}

Sections, each of which says "skipped: <reason>" instead of failing where something is missing
(no CUDA driver or GPU, no host library, no compiler the driver accepts, no torch, no onnx, no
ONNX Runtime CUDA provider):

- ``kernel_vs_host``: the decode + NMS kernel, compiled to PTX by ``yolov3_trt.plugin.ptx``
  (NVRTC, or nvcc where NVRTC is newer than the driver) and launched with cuda-python's driver
  API, against the host build (``yolov3_trt.plugin.host.run_host``): FP32 and FP16 heads, batch 1
  and 8, yolov3 (3 heads) and yolov3-tiny (2 heads) at 416, conf 0.001 and 0.25; the same
  detections per image as sets.
- ``kernel_timing``: the kernel's GPU time per launch (CUDA events around each of 200 launches
  after 20 warm-ups; median) for each case; the target, <= 50 us for yolov3-416 batch 1 at conf
  0.25, is reported as met or not (never a failure).
- ``onnxruntime_cuda``: yolov3-416 (random weights) on ONNX Runtime's CUDA provider, batch 1.
- ``torch_fp16``: the project's YoloV3 (random weights) in FP16 on PyTorch (cudnn.benchmark,
  inference_mode) at batch 1 and 8, yolov3 and yolov3-tiny: latency, images/s and BFLOP/s from
  Darknet's BFLOPs.

The JSON and the Markdown are rewritten after every section, so a run cut short still leaves what
it measured. Exit status 1 only when a comparison failed; 0 otherwise (skips included).

The sections are measured by device_sections.py beside this file; this one describes the machine,
writes the report and is the command line.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (str(HERE), str(ROOT)):  # device_sections, gpu_* beside this file; yolov3_trt from this checkout
    if path not in sys.path:
        sys.path.insert(0, path)

import numpy as np  # noqa: E402
from device_sections import TARGET_US, kernel_sections, onnxruntime_cuda, torch_fp16  # noqa: E402

SECTIONS = ("kernel_vs_host", "kernel_timing", "onnxruntime_cuda", "torch_fp16")


def _version(*names: str) -> str | None:
    """The installed version of the first distribution found among ``names`` (prefixes ending in '*')."""
    for name in names:
        if name.endswith("*"):
            for dist in importlib.metadata.distributions():
                dist_name = (dist.metadata["Name"] or "").lower()
                if dist_name.startswith(name[:-1]):
                    return f"{dist_name} {dist.version}"
            continue
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return None


def _run(cmd: list[str], timeout: float = 30) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What this machine is: GPU, driver, CUDA, CPU and the versions of what the sections use."""
    from yolov3_trt.plugin import host, ptx

    info: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(), "platform": platform.platform(), "python": sys.version.split()[0],
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
        "numpy": np.__version__, "torch": _version("torch"), "cupy": _version("cupy*"),
        "cuda_python": _version("cuda-bindings", "cuda-python"), "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime-gpu", "onnxruntime"), "opencv": _version("opencv-python-headless",
                                                                                     "opencv-python"),
        "tensorrt": _version("tensorrt", "tensorrt-cu13", "tensorrt-cu12"),
        "nvrtc": None, "nvcc": None, "driver_cuda": None, "gpu": None,
        "host_library": {"built_by": os.environ.get("YOLOV3_TRT_HOST_BUILD", "not by device_check.sh"),
                         "loads": host.available(), "path": str(host.library_path())},
    }
    nvrtc, nvcc, driver = ptx.nvrtc_version(), ptx.nvcc_version(), ptx.driver_version()
    info["nvrtc"] = None if nvrtc is None else f"{nvrtc[0]}.{nvrtc[1]}"
    info["nvcc"] = None if nvcc is None else f"{nvcc[0]}.{nvcc[1]}"
    release = _run(["nvcc", "--version"])
    if release:
        info["nvcc_release"] = release.splitlines()[-1]
    if driver is not None:
        info["driver_cuda"] = f"{driver // 1000}.{(driver % 1000) // 10}"
    smi = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                "--format=csv,noheader"])
    if smi:
        info["nvidia_smi"] = smi.splitlines()
    try:
        from gpu_kernel import KernelUnavailable, compute_capability, open_driver

        driver_api, device, _ = open_driver()
        try:
            name = driver_api.cuDeviceGetName(256, device)[1]
            memory = driver_api.cuDeviceTotalMem(device)[1]
            attr = driver_api.CUdevice_attribute
            sms = driver_api.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device)[1]
            info["gpu"] = {"name": name.split(b"\0")[0].decode(errors="replace"),
                           "compute_capability": "%d.%d" % compute_capability(driver_api, device),
                           "memory_gib": round(int(memory) / 2 ** 30, 1), "multiprocessors": int(sms),
                           "count": int(driver_api.cuDeviceGetCount()[1])}
        finally:
            driver_api.cuDevicePrimaryCtxRelease(device)
    except KernelUnavailable as why:
        info["gpu"] = f"none: {why}"
    except Exception as err:  # a broken driver is a fact about the machine, not a crash
        info["gpu"] = f"unknown: {type(err).__name__}: {err}"
    return info


# ---- report ---------------------------------------------------------------------------------------

def _md_table(rows: list[dict], columns: list[str]) -> list[str]:
    if not rows:
        return ["(none)"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return lines


def markdown(report: dict) -> str:
    m = report["machine"]
    gpu = m.get("gpu")
    lines = ["# Device check", "", f"{m['date']}, exit status {report.get('exit_status', 'running')}", "",
             "## Machine", "", "| | |", "| --- | --- |"]
    gpu_text = (f"{gpu['name']} (sm {gpu['compute_capability']}, {gpu['memory_gib']} GiB, {gpu['multiprocessors']} "
                f"SMs, {gpu['count']} device(s))" if isinstance(gpu, dict) else str(gpu))
    for key, value in (("GPU", gpu_text), ("nvidia-smi", "; ".join(m.get("nvidia_smi", [])) or "not available"),
                       ("driver's CUDA", m["driver_cuda"]), ("CPU", f"{m['cpu']} ({m['cpu_count']} threads)"),
                       ("Python", m["python"]), ("numpy", m["numpy"]), ("torch", m["torch"]), ("CuPy", m["cupy"]),
                       ("cuda-python", m["cuda_python"]), ("NVRTC", m["nvrtc"]),
                       ("nvcc", m.get("nvcc_release") or m["nvcc"]), ("onnx", m["onnx"]),
                       ("onnxruntime", m["onnxruntime"]), ("OpenCV", m["opencv"]), ("TensorRT", m["tensorrt"]),
                       ("host library", f"built by {m['host_library']['built_by']}, loads: "
                                        f"{m['host_library']['loads']}")):
        lines.append(f"| {key} | {value} |")
    titles = {"kernel_vs_host": "a. Kernel (PTX, driver API) vs host build",
              "kernel_timing": "b. Kernel time per launch",
              "onnxruntime_cuda": "c. ONNX Runtime CUDA provider, yolov3-416 batch 1",
              "torch_fp16": "d. PyTorch FP16 baseline at 416"}
    for name in SECTIONS:
        section = report["sections"].get(name, {"status": "not run"})
        status = section["status"] + (f": {section['reason']}" if section.get("reason") else "")
        lines += ["", f"## {titles[name]}", "", f"**{status}**", ""]
        if section.get("error"):
            lines += ["```", section["error"], "```"]
        if name == "kernel_vs_host" and section.get("cases"):
            lines += _md_table(section["cases"], ["model", "dtype", "batch", "conf", "compiler", "status",
                                                  "detections", "host_ms", "problem"])
        elif name == "kernel_timing" and section.get("cases"):
            for dtype, t in section.get("target", {}).items():
                lines.append(f"- target <= {TARGET_US:g} us, yolov3-416 batch 1 conf 0.25 {dtype}: "
                             f"{t['median_us']} us, {'met' if t['met'] else 'NOT met'}")
            lines += ["", section["method"], ""]
            lines += _md_table(section["cases"], ["model", "dtype", "batch", "conf", "median_us", "p10_us", "p90_us",
                                                  "min_us", "error"])
        elif name == "onnxruntime_cuda" and section["status"] == "measured":
            lines += _md_table([section], ["onnxruntime", "provider", "model", "batch", "median_ms", "p10_ms", "fps",
                                           "bflop_per_s"])
            lines += ["", section["note"]]
        elif name == "torch_fp16" and section.get("rows"):
            lines += [f"torch {section['torch']}, CUDA {section['cuda']}, cuDNN {section['cudnn']}, "
                      f"{section['device']}; {section['method']}", ""]
            lines += _md_table(section["rows"], ["model", "batch", "median_ms", "p10_ms", "p90_ms", "fps",
                                                 "bflops_per_image", "tflop_per_s", "finite"])
    return "\n".join(lines) + "\n"


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("device_check.json", json.dumps(report, indent=2, default=str) + "\n"),
                       ("device_check.md", markdown(report))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or HERE / "device_check_out"),
                        help="folder for device_check.json and device_check.md (default: $OUT or "
                             "tests/gpu/device_check_out)")
    parser.add_argument("--launches", type=int, default=200, help="timed kernel launches per case")
    parser.add_argument("--iterations", type=int, default=100, help="timed passes per ORT/torch row")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report: dict = {"machine": {}, "sections": {}}
    try:
        report["machine"] = machine()
    except Exception as err:  # the sections can still run
        report["machine"] = {"error": f"{type(err).__name__}: {err}"}
    report["machine"].setdefault("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    write(report, args.out)

    def guarded(names, run):
        begin = time.perf_counter()
        try:
            results = run()
        except Exception:
            text = traceback.format_exc(limit=6)
            results = tuple({"status": "error", "error": text[-3000:]} for _ in names)
        for name, result in zip(names, results):
            result["seconds"] = round(time.perf_counter() - begin, 1)
            report["sections"][name] = result
        write(report, args.out)

    guarded(("kernel_vs_host", "kernel_timing"), lambda: kernel_sections(args.launches, warmup=20))
    guarded(("onnxruntime_cuda",), lambda: (onnxruntime_cuda(args.iterations),))
    guarded(("torch_fp16",), lambda: (torch_fp16(args.iterations),))
    # a section that broke ("error") is reported, but only a comparison that failed fails the run
    failed = report["sections"]["kernel_vs_host"]["status"] == "failed"
    report["exit_status"] = 1 if failed else 0
    report["seconds"] = round(time.perf_counter() - started, 1)
    write(report, args.out)
    for name in SECTIONS:
        section = report["sections"][name]
        print(f"{name}: {section['status']}" + (f": {section['reason']}" if section.get("reason") else ""))
    print(f"wrote {args.out / 'device_check.json'} and {args.out / 'device_check.md'} in {report['seconds']} s")
    return report["exit_status"]


if __name__ == "__main__":
    sys.exit(main())
