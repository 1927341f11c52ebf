"""The device check's sections (device_check.py runs them, describes the machine and writes the report).

- :func:`kernel_sections`: ``kernel_vs_host`` (the decode + NMS kernel from its PTX on the driver
  API against the host build, the same detections per image as sets) and ``kernel_timing`` (its
  GPU time per launch against the target, TARGET_US for yolov3-416 batch 1 at conf 0.25);
- :func:`onnxruntime_cuda`: yolov3-416 (random weights) on ONNX Runtime's CUDA provider, batch 1;
- :func:`torch_fp16`: the project's YoloV3 (random weights) in FP16 on PyTorch.

Each returns a dict with a ``status`` (``skipped`` with a ``reason`` where something is missing).
The kernel launch and the comparisons come from gpu_kernel.py and gpu_helpers.py beside this file,
imported when a section runs (so the tests can put fakes in their place).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE = (416, 416)
TARGET_US = 50.0
MODELS = ("yolov3", "yolov3-tiny")


# ---- sections a and b: the kernel against the host build, and its time ---------------------------

def kernel_sections(launches: int, warmup: int) -> tuple[dict, dict]:
    """(kernel_vs_host, kernel_timing)."""
    from gpu_helpers import model_heads, random_heads, same_plugin_detections
    from gpu_kernel import DeviceKernel, KernelUnavailable, open_driver, summary_us

    from yolov3_trt.plugin import host
    from yolov3_trt.plugin.params import DEFAULT_DEVICE_CAPACITY, PluginConfig

    def skipped(reason: str):
        return {"status": "skipped", "reason": reason}, {"status": "skipped", "reason": reason}

    if not host.available():
        try:
            host.load_library()
        except Exception as err:
            return skipped(f"the host library does not load: {err}")
    try:
        driver, device, _ = open_driver()
    except KernelUnavailable as why:
        return skipped(str(why))
    compare: dict = {"status": "passed", "cases": []}
    timing: dict = {"status": "measured", "target_us": TARGET_US, "cases": [],
                    "method": f"CUDA events around each of {launches} launches after {warmup} warm-ups; median"}
    try:
        for cfg in MODELS:
            heads, grids = model_heads(cfg, SIZE)
            for fp16 in (False, True):
                for conf in (0.001, 0.25):
                    config = PluginConfig.from_heads(heads, SIZE, grids, conf=conf, iou=0.45, max_det=100,
                                                     pre_nms_top_k=DEFAULT_DEVICE_CAPACITY)
                    try:
                        kernel = DeviceKernel(driver, device, config, fp16=fp16)
                    except KernelUnavailable as why:
                        return skipped(str(why))
                    with kernel:
                        for batch in (1, 8):
                            case = {"model": cfg, "heads": len(heads), "dtype": "fp16" if fp16 else "fp32",
                                    "batch": batch, "conf": conf, "compiler": kernel.compiler}
                            seed = [MODELS.index(cfg), int(fp16), int(conf * 1000), batch]
                            outputs = random_heads(np.random.default_rng(seed), batch, heads, grids, obj_mean=-3.0,
                                                   tie_step=0.25, fp16=fp16)
                            result = dict(case)
                            try:
                                gpu = kernel.run(outputs)
                                start = time.perf_counter()
                                cpu = host.run_host(outputs, config)
                                result["host_ms"] = round((time.perf_counter() - start) * 1e3, 3)
                                result["detections"] = cpu[0][:, 0].tolist()
                                same_plugin_detections(gpu, cpu)
                                result["status"] = "passed"
                            except AssertionError as err:
                                result["status"], result["problem"] = "failed", str(err).strip()[:2000]
                                compare["status"] = "failed"
                            except Exception as err:  # a launch that fails is a failed comparison too
                                result["status"] = "failed"
                                result["problem"] = f"{type(err).__name__}: {err}"[:2000]
                                compare["status"] = "failed"
                            compare["cases"].append(result)
                            try:
                                times = kernel.time(outputs, warmup=warmup, launches=launches)
                                timing["cases"].append({**case, **summary_us(times)})
                            except Exception as err:
                                timing["cases"].append({**case, "error": f"{type(err).__name__}: {err}"})
    finally:
        driver.cuDevicePrimaryCtxRelease(device)
    target = {}
    for row in timing["cases"]:
        if row["model"] == "yolov3" and row["batch"] == 1 and row["conf"] == 0.25 and "median_us" in row:
            target[row["dtype"]] = {"median_us": row["median_us"], "met": row["median_us"] <= TARGET_US}
    timing["target"] = target
    return compare, timing


# ---- section c: ONNX Runtime's CUDA provider ---------------------------------------------------------

def _random_yolov3(cfg: str):
    """The project's YoloV3 with realistic random weights (as the tests' random_model, no file)."""
    from yolov3_trt.darknet.weights import random_darknet_weights
    from yolov3_trt.model.convert import darknet_to_state_dict
    from yolov3_trt.model.yolov3 import YoloV3

    model = YoloV3.from_cfg(cfg).eval()
    model.load_state_dict(darknet_to_state_dict(random_darknet_weights(model.network, 0, head_gain=0.15)),
                          strict=True)
    return model


def _latency(run, warmup: int, iterations: int) -> list[float]:
    """Wall-clock milliseconds of each of ``iterations`` calls of ``run`` (which must finish its work)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def onnxruntime_cuda(iterations: int, *, cfg: str = "yolov3", provider: str = "CUDAExecutionProvider") -> dict:
    """``cfg`` at 416 on ONNX Runtime's ``provider`` (the CPU test runs yolov3-tiny on the CPU one)."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        return {"status": "skipped", "reason": f"onnxruntime is not installed ({err})"}
    providers = ort.get_available_providers()
    if provider not in providers:
        return {"status": "skipped", "reason": f"onnxruntime {ort.__version__} has no {provider} "
                                               f"(providers: {', '.join(providers)}); pip install onnxruntime-gpu"}
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        return {"status": "skipped", "reason": f"exporting the ONNX needs onnx and torch ({err})"}
    from gpu_helpers import network_bflops

    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.names import COCO_NAMES

    with tempfile.TemporaryDirectory(prefix="device_check_") as tmp:
        path = Path(tmp) / f"{cfg}-416.onnx"
        export_onnx(_random_yolov3(cfg), path, COCO_NAMES, size=SIZE)
        session = ort.InferenceSession(str(path), providers=list(dict.fromkeys([provider, "CPUExecutionProvider"])))
        if session.get_providers()[0] != provider:
            return {"status": "skipped", "reason": f"{provider} did not load (the session runs on "
                                                   f"{session.get_providers()}); see ONNX Runtime's log"}
        x = np.random.default_rng(0).random((1, 3, SIZE[1], SIZE[0]), dtype=np.float32)
        feed = {session.get_inputs()[0].name: x}
        times = _latency(lambda: session.run(None, feed), warmup=10, iterations=iterations)
    median = statistics.median(times)
    bflops = network_bflops(cfg, SIZE)
    return {"status": "measured", "onnxruntime": ort.__version__, "provider": provider, "model": cfg,
            "size": list(SIZE), "batch": 1, "note": "session.run with numpy input and outputs (copies included), "
                                                     "wall clock; median of the runs after 10 warm-ups",
            "median_ms": round(median, 3), "p10_ms": round(sorted(times)[len(times) // 10], 3),
            "fps": round(1e3 / median, 1), "bflops_per_image": round(bflops, 3),
            "bflop_per_s": round(bflops / (median / 1e3), 1), "iterations": iterations}


# ---- section d: PyTorch FP16 baseline --------------------------------------------------------------

def torch_fp16(iterations: int, *, device: str = "cuda", models: tuple[str, ...] = MODELS,
               batches: tuple[int, ...] = (1, 8)) -> dict:
    """The models in FP16 on the GPU (``device="cpu"``: FP32 and wall-clock timing, for the CPU test)."""
    try:
        import torch
    except ImportError as err:
        return {"status": "skipped", "reason": f"torch is not installed ({err})"}
    if device == "cuda" and not torch.cuda.is_available():
        return {"status": "skipped", "reason": f"torch {torch.__version__} sees no CUDA device "
                                               f"(built for CUDA {torch.version.cuda})"}
    from gpu_helpers import network_bflops

    cuda = device == "cuda"
    dtype = torch.half if cuda else torch.float32
    torch.backends.cudnn.benchmark = True
    out: dict = {"status": "measured", "torch": torch.__version__, "cuda": torch.version.cuda,
                 "cudnn": torch.backends.cudnn.version() if cuda else None,
                 "device": torch.cuda.get_device_name(0) if cuda else "cpu", "dtype": str(dtype),
                 "method": f"{'CUDA events' if cuda else 'wall clock'} around each of {iterations} forward passes "
                           "after 20 warm-ups; median; random weights, .half().cuda().eval(), inference_mode, "
                           "cudnn.benchmark", "rows": []}
    for cfg in models:
        model = _random_yolov3(cfg).to(device=device, dtype=dtype).eval()
        bflops = network_bflops(cfg, SIZE)
        for batch in batches:
            x = torch.rand(batch, 3, SIZE[1], SIZE[0], device=device, dtype=dtype)
            with torch.inference_mode():
                for _ in range(20 if cuda else 1):  # cudnn.benchmark picks its kernels on the first passes
                    heads = model(x)
                if cuda:
                    torch.cuda.synchronize()
                    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                              for _ in range(iterations)]
                    for start, stop in events:
                        start.record()
                        heads = model(x)
                        stop.record()
                    torch.cuda.synchronize()
                    times = [start.elapsed_time(stop) for start, stop in events]
                else:
                    times = _latency(lambda m=model: m(x), warmup=0, iterations=iterations)
                    heads = model(x)
            ordered = sorted(times)
            median = statistics.median(ordered)
            out["rows"].append({
                "model": cfg, "batch": batch, "median_ms": round(median, 3),
                "p10_ms": round(ordered[len(ordered) // 10], 3), "p90_ms": round(ordered[9 * len(ordered) // 10], 3),
                "fps": round(batch * 1e3 / median, 1), "bflops_per_image": round(bflops, 3),
                "tflop_per_s": round(bflops * batch / (median / 1e3) / 1e3, 3),
                "finite": bool(all(torch.isfinite(h).all().item() for h in heads))})
        del model
        if cuda:
            torch.cuda.empty_cache()
    return out
