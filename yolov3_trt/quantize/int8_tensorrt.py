"""INT8 for TensorRT: explicit Q/DQ placed by NVIDIA ModelOpt (``modelopt.onnx.quantization``).

What TensorRT needs (its explicit-quantization rules) and how it is asked for:
- symmetric INT8, zero point 0 on every Q/DQ, no quantized bias: ModelOpt's INT8 mode
  (``use_zero_point=False``); tests check every Conv's input and weight.
- per-channel weights (axis 0 of each Conv weight): ModelOpt's default for Conv.
- TensorRT's placement: Q/DQ on the inputs of the ops TensorRT runs in INT8 (Conv, Add,
  MaxPool, ...), none after them, so TensorRT fuses ``DQ -> Conv -> LeakyRelu -> Add`` itself.
- what is not quantized runs in FP16 (``high_precision_dtype="fp16"``), since TensorRT 11 takes
  precision only from the file (strongly typed network).
- calibration on the CPU (``calibration_eps=["cpu"]``): ModelOpt's default list tries CUDA and
  TensorRT execution providers first; on a machine without them the CPU provider is the one that
  works, and the activation ranges do not depend on where they are measured.

ModelOpt calibrates by monkeypatching ``onnxruntime.quantization`` (its calibrators and
quantizer classes) for the rest of the process; ONNX Runtime's own static quantization then
fails ("Histogram has not been collected"). So ModelOpt runs in a child process, and
the caller's onnxruntime stays as it was: the CPU INT8 file can be made after the TensorRT one.

The file also runs on ONNX Runtime's CPU provider (slowly: no Q after a Conv means no integer
kernel), which is how its accuracy is measured before any GPU sees it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re

import numpy as np

logger = logging.getLogger(__name__)

METHODS = {"entropy": "entropy", "max": "max"}  # what ModelOpt offers for INT8


def exclude_patterns(names: list[str]) -> list[str]:
    """ModelOpt's ``nodes_to_exclude`` for exactly these node names: it takes regular expressions
    and applies ``re.match`` (a prefix match: ``/layers.1/conv/Conv`` would also match layer 10's
    Conv), so each name is escaped and anchored at its end."""
    return [re.escape(name) + "$" for name in names]


def _quantize_in_this_process(src: str, tmp: str, input_name: str, images_npy: str, method: str,
                              exclude_json: str = "[]") -> None:
    from modelopt.onnx.quantization import quantize

    images = np.load(images_npy)
    excluded = json.loads(exclude_json)
    quantize(onnx_path=src, quantize_mode="int8", calibration_data={input_name: images},
             calibration_method=METHODS[method], calibration_eps=["cpu"], high_precision_dtype="fp16",
             use_zero_point=False, output_path=tmp, log_level="WARNING",
             nodes_to_exclude=exclude_patterns(excluded) if excluded else None)


@contextlib.contextmanager
def _child_signal_blocked():
    """SIGCHLD blocked in this (main) thread while the child runs, its pending one consumed after.

    PyTorch's DataLoader installs a SIGCHLD handler with SA_ONSTACK for the whole process, and a
    library loaded later can leave the main thread's alternate signal stack unusable: the kernel
    then cannot deliver the child's SIGCHLD to the main thread, waiting in ``poll``, and kills
    the process with SIGSEGV (measured: the test suite died so after a DataLoader test). The
    child is reaped by ``subprocess`` itself, so its SIGCHLD carries nothing to act on.
    """
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        yield
    finally:
        if signal.SIGCHLD not in previous:
            while signal.sigtimedwait({signal.SIGCHLD}, 0) is not None:
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def quantize_tensorrt(src: str | os.PathLike, tmp: str | os.PathLike, input_name: str, images: np.ndarray,
                      method: str, *, nodes_to_exclude: list[str] | None = None) -> None:
    """Calibrate ``src`` on ``images`` ``(N, 3, H, W)`` with ``method`` and write TensorRT Q/DQ INT8 to ``tmp``.

    ``nodes_to_exclude``: node names ModelOpt leaves unquantized (they stay in the high-precision
    dtype, FP16); None or empty: ModelOpt's own choice, as before.

    Runs ModelOpt in a child interpreter (module docstring). A subprocess rather than
    multiprocessing: a spawned worker re-imports the caller's main script, which breaks scripts
    without an ``if __name__ == "__main__"`` guard. ModelOpt's log goes to this logger at debug
    level; a failure raises QuantizeError with its last line.
    """
    import subprocess
    import sys
    import tempfile

    from .model_io import QuantizeError

    with tempfile.TemporaryDirectory(prefix="yolov3_trt-modelopt-") as folder:
        images_npy = os.path.join(folder, "calibration.npy")
        np.save(images_npy, np.ascontiguousarray(images, dtype=np.float32))
        code = ("import sys; from yolov3_trt.quantize.int8_tensorrt import _quantize_in_this_process as q; "
                "q(*sys.argv[1:])")
        env = dict(os.environ)
        # The folder holding this yolov3_trt (a source tree need not be installed), and nothing else of
        # the caller's sys.path: a test runner's or an application's folders may shadow modules
        # ModelOpt imports.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        # Its own session: a native crash handler in the child that re-sends the signal to its
        # process group must not take the caller down with it.
        with _child_signal_blocked():
            done = subprocess.run([sys.executable, "-c", code, str(src), str(tmp), input_name, images_npy, method,
                                   json.dumps(list(nodes_to_exclude or []))],
                                  capture_output=True, text=True, env=env, cwd=os.getcwd(), start_new_session=True)
    for line in (done.stdout + done.stderr).splitlines():
        logger.debug("modelopt: %s", line)
    if done.returncode < 0:  # killed by a signal: a crash, not an error it reported
        raise QuantizeError(src, f"ModelOpt INT8 quantization crashed (signal {-done.returncode}); its log is "
                                 "at debug level (--verbose)")
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise QuantizeError(src, "ModelOpt INT8 quantization failed: "
                            + (lines[-1] if lines else f"exit {done.returncode}"))
