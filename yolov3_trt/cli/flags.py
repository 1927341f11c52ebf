"""The flag vocabulary: every option of every tool (benchmarks included), defined once.

A :class:`Flag` is what a flag means wherever it appears: its validator (``type``, from
:mod:`yolov3_trt.cli.types`), ``choices`` (from :mod:`yolov3_trt.vocab`), metavar and help line.
A tool adds a flag with :func:`add_flag`, giving only what is its own: the default and how to
show it (``default_text``). The help shows a default once, appended by the formatter
(``yolov3_trt.cli.common``); no help text here names a default.

Only the flags in :data:`PER_TOOL_HELP` take their help (and metavar) from the tool, because
what they name differs by tool: the file or folder written (``--output``, ``--json``) and what
``--force`` may replace. ``tests/cli/test_vocabulary.py`` checks all of this on every parser.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable

from ..vocab import Backend, CalibMethod, Flavour, HardwareCompat, InferencePrecision, ResizeKernel, ResizeMode, Target
from .types import (
    comma_list,
    fraction,
    int_between,
    integer,
    non_negative_float,
    non_negative_int,
    one_of,
    parse_batch,
    parse_device,
    parse_image_size,
    parse_size,
    positive_float,
    positive_int,
    probability,
    square_size,
)

PER_TOOL_HELP = frozenset({"--output", "--json", "--force"})
BENCH_BACKENDS = ("onnxruntime", "openvino", "tensorrt", "torch", "torch-eager", "opencv-dnn", "openvino-net")
BENCH_PRECISIONS = ("fp32", "bf16", "fp16", "int8-cpu", "int8-tensorrt")


@dataclass(frozen=True)
class Flag:
    """One flag's meaning. ``action`` set: a switch (``store_true``/``store_false``), no type."""

    help: str
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    action: str | None = None
    dest: str | None = None


_MODEL_FILE = ("exported model file, which carries its cfg, input size and class names (.onnx, or a TensorRT "
               ".engine/.plan with its .json sidecar; detect and evaluate also take a checkpoint .pt)")
_SYNTH = "synthetic images to generate (shapes on textured backgrounds)"

FLAGS: dict[str, Flag] = {
    # model
    "--cfg": Flag("Darknet cfg file or built-in name: yolov3, yolov3-tiny, yolov3-spp", metavar="PATH|NAME"),
    "--weights": Flag("Darknet .weights for --cfg, or an official name: yolov3, yolov3-tiny, yolov3-spp (Darknet's "
                      "COCO weights, downloaded once into ~/.cache/yolov3_trt/weights or $YOLOV3_TRT_CACHE/weights; "
                      "implies --cfg of that name; an existing file wins)", metavar="PATH|NAME"),
    "--checkpoint": Flag("yolov3_trt PyTorch checkpoint (carries its own cfg and class names)", metavar="PATH"),
    "--init-checkpoint": Flag("start from this yolov3_trt checkpoint's weights: every tensor whose name and shape "
                              "match --cfg's network (heads of another class count start afresh)", metavar="PATH"),
    "--classes": Flag("class count for the heads (filters follow)", positive_int, "N"),
    "--names": Flag("class names file, one per line", metavar="PATH"),
    "--size": Flag("network input size: N or WxH (width x height), multiples of 32", parse_size, "N|WxH"),
    "--model": Flag(_MODEL_FILE, metavar="PATH"),
    "--backend": Flag("inference backend; auto picks by model file type and hardware", choices=Backend.values()),
    # post-processing
    "--conf": Flag("score threshold on objectness x class probability", probability, "X"),
    "--iou": Flag("per-class NMS IoU threshold", probability, "X"),
    "--max-det": Flag("detections kept per image", positive_int, "N"),
    "--pre-nms-top-k": Flag("end2end/plugin: best candidates entering NMS", integer, "K"),
    # precision and calibration
    "--fp16": Flag("FP16 (mixed, FP32 inputs/outputs)", action="store_true"),
    "--int8": Flag("INT8 Q/DQ calibrated on --calib images", action="store_true"),
    "--calib": Flag("calibration images: a folder, an image list .txt or a COCO .json (labels, when present, "
                    "stratify the sample by class)", metavar="PATH"),
    "--calib-method": Flag("activation range method (TensorRT/ModelOpt: entropy, max; CPU/ONNX Runtime: all three)",
                           choices=CalibMethod.values()),
    "--calib-images": Flag("images sampled from --calib", positive_int, "N"),
    "--calib-seed": Flag("seed of the --calib sample: the same seed, the same images", integer, "N"),
    "--calib-cache": Flag("keep calibrated models here; an identical request (model, images, method, size) is "
                          "copied instead of calibrated again", metavar="DIR"),
    "--target": Flag("INT8 placement: tensorrt (ModelOpt, for build --int8) or cpu (ONNX Runtime)",
                     choices=Target.values()),
    "--max-ap-drop": Flag("INT8 within an accuracy budget: the most AP50 points it may lose against FP32 on --val; "
                          "the Conv layers with the largest output error stay in higher precision (FP16 for tensorrt, "
                          "FP32 for cpu), 1, 2, 4, ... of them, until it fits; writes a .budget.json report and "
                          ".budget.png beside the output", non_negative_float, "P"),
    "--holdout": Flag("held-out set for --max-ap-drop (as --val, no image of it): after --val chooses the layers, "
                      "the drop is measured again here and must fit too", metavar="PATH"),
    "--max-excluded": Flag("--max-ap-drop: the most Conv layers it may keep in higher precision", non_negative_int,
                           "N"),
    # graphs and engines
    "--flavour": Flag("graph exported from --cfg/--checkpoint: raw: the head tensors (decode + NMS outside); "
                      "end2end: decode + NMS in the graph, EfficientNMS outputs (--conf/--iou/--max-det baked in); "
                      "plugin: the same as one CUDA plugin node (TensorRT >= 10.9); auto (build): plugin where "
                      "the TensorRT here builds it, else end2end", choices=("auto",) + Flavour.values()),
    "--batch": Flag("batch sizes the model accepts: N (fixed), or MIN:OPT:MAX, a TensorRT optimisation profile "
                    "tuned for OPT (build only)", parse_batch, "N|MIN:OPT:MAX"),
    "--opset": Flag("ONNX opset: 17 up to the newest the installed torch exporter and onnx both write", integer, "N"),
    "--resize": Flag("how an image is fitted to the network input: letterbox keeps the aspect ratio and pads "
                     "(Darknet's); resize stretches", choices=ResizeMode.values()),
    "--resize-kernel": Flag("the Detector's resize of each image into the network input: darknet = Darknet's exact "
                            "float bilinear resize, detections equal the C Darknet's; opencv = cv2.resize "
                            "INTER_LINEAR on the uint8 image, about 8x faster, boxes within a pixel or so",
                            choices=ResizeKernel.values()),
    "--no-simplify": Flag("skip onnxslim's constant folding", action="store_true"),
    "--workspace": Flag("builder workspace limit in MiB", positive_int, "MIB"),
    "--builder-optimization-level": Flag("TensorRT builder optimisation level (higher builds longer)",
                                         int_between(0, 5), "0-5"),
    "--timing-cache": Flag("timing cache file, read and updated", metavar="PATH"),
    "--dla-core": Flag("Jetson: run on DLA core N, layers it cannot run fall back to the GPU", non_negative_int, "N"),
    "--hardware-compatible": Flag("ampere+: the engine runs on any GPU of sm 8.0+; same-cc: any GPU of this "
                                  "compute capability (TensorRT >= 10.4); both may run slower",
                                  choices=HardwareCompat.values()),
    "--version-compatible": Flag("the engine also runs on later TensorRT releases of the same major version",
                                 action="store_true"),
    "--device": Flag("auto, cpu, cuda or cuda:N (a tool refuses a device it cannot use)", parse_device,
                     "auto|cpu|cuda|cuda:N"),
    # data
    "--data": Flag("a labelled set: YOLO-format folder or list file, or COCO JSON", metavar="PATH"),
    "--data-names": Flag("class names file of the dataset", metavar="PATH"),
    "--val": Flag("validation set: YOLO-format folder or list file, or COCO JSON", metavar="PATH"),
    "--val-fraction": Flag("share of the images held out as the validation set", fraction, "F"),
    "--synthetic": Flag(_SYNTH + " into OUTPUT/data, and train on them", positive_int, "N"),
    "--images": Flag(_SYNTH, positive_int, "N"),
    "--image-size": Flag("synthetic image size: S, WxH, or MIN:MAX to draw each side per image", parse_image_size,
                         "S|WxH|MIN:MAX"),
    "--max-objects": Flag("objects per image at most", positive_int, "N"),
    "--format": Flag("image file format", choices=("png", "jpg")),
    "--seed": Flag("seed of every random choice: the same seed, the same result", integer, "N"),
    "--limit": Flag("use the first N images only", positive_int, "N"),
    # inference
    "--infer-batch": Flag("images per inference call", positive_int, "N"),
    "--max-frames": Flag("stop after N video/stream/camera frames", positive_int, "N"),
    "--no-draw": Flag("write only the JSON, no annotated images/video", action="store_true"),
    "--skip-unreadable": Flag("skip unreadable images in a folder instead of stopping", action="store_true"),
    "--tolerate-truncated": Flag("keep the frames of a video that ends before its frame count (truncated or corrupt) "
                                 "instead of failing", action="store_true"),
    # training
    "--resume": Flag("continue a run from its last.pt, with its own settings (only --epochs, --device, --workers "
                     "and --eval-every may change)", metavar="PATH"),
    "--epochs": Flag("epochs in all (with --resume: the run's own, or more to extend it)", positive_int, "N"),
    "--batch-size": Flag("training images per optimizer step, all processes together, before --accumulate",
                         positive_int, "N", dest="batch"),
    "--accumulate": Flag("optimizer step every N batches", positive_int, "N"),
    "--workers": Flag("data-loader processes; 0 loads in the main process", non_negative_int, "N"),
    "--eval-every": Flag("validate every N epochs (and after the last)", positive_int, "N"),
    "--bn-images": Flag("before each validation and checkpoint, recompute the BatchNorm statistics on this many "
                        "training images; 0 keeps the running ones", non_negative_int, "N"),
    "--lr": Flag("peak learning rate, as in a Darknet cfg (the loss is summed over a batch and divided by its size)",
                 positive_float, "X"),
    "--momentum": Flag("SGD momentum", probability, "X"),
    "--weight-decay": Flag("on conv weights only", non_negative_float, "X"),
    "--warmup-epochs": Flag("linear learning-rate warm-up", non_negative_float, "X"),
    "--grad-clip": Flag("scale the gradient down to this norm when it is larger, which keeps the L2 box term from "
                        "diverging; 0 never clips", non_negative_float, "X"),
    "--ema-decay": Flag("weight EMA decay", probability, "X"),
    "--eval-conf": Flag("score threshold of the validation detections", probability, "X"),
    "--optimizer": Flag("optimizer", choices=("sgd", "adamw")),
    "--schedule": Flag("learning-rate schedule after the warm-up", choices=("cosine", "step")),
    "--no-ema": Flag("no weight EMA", action="store_false", dest="ema"),
    "--no-amp": Flag("no mixed precision on CUDA", action="store_false", dest="amp"),
    "--no-augment": Flag("no data augmentation (flips, HSV jitter, scale and translation)", action="store_false",
                         dest="augment"),
    "--multiscale": Flag("random input size 320..608 every 10 batches", action="store_true"),
    # evaluate
    "--plot-classes": Flag("classes drawn beside the class-agnostic curve (most labelled first)", non_negative_int,
                           "N"),
    "--compare": Flag("evaluate these ONNX files side by side (the first is the reference), each FILE on ONNX "
                      "Runtime or FILE@openvino / FILE@openvino-bf16 on OpenVINO (f32 / BF16 inference); writes "
                      "OUTPUT/compare.json, compare.md and compare.png", metavar="ONNX[@RUNTIME]"),
    # triton
    "--name": Flag("model name in Triton", metavar="NAME"),
    "--max-batch": Flag("max_batch_size of the Triton model", positive_int, "N"),
    "--preferred-batch": Flag("dynamic batching's preferred sizes", comma_list(positive_int), "N,N"),
    "--max-queue-delay-us": Flag("how long dynamic batching waits to fill a batch", non_negative_int, "US"),
    "--instances": Flag("model instances (each its own execution context and stream)", positive_int, "N"),
    "--kind": Flag("instance kind (cpu: ONNX only)", choices=("gpu", "cpu")),
    "--openvino-precision": Flag("the openvino backend's inference precision: f32, or bf16 (about 2x faster where the "
                                 "CPU has AVX-512 BF16 or AMX; f32 elsewhere, said in the log)",
                                 choices=InferencePrecision.values()),
    "--version": Flag("model version folder", positive_int, "N"),
    # anchors, data, misc
    "--num": Flag("anchors (9 for yolov3, 6 for yolov3-tiny)", positive_int, "N"),
    "--quiet": Flag("no progress bar", action="store_true"),
    "--output": Flag("what this tool writes", metavar="PATH"),
    "--json": Flag("results as JSON", metavar="PATH"),
    "--force": Flag("replace outputs of an earlier run (never one of this run's inputs); without it an existing "
                    "output is an error", action="store_true"),
    # benchmarks
    "--sizes": Flag("comma-separated square input sizes (multiples of 32)", comma_list(square_size), "N,N"),
    "--infer-batches": Flag("comma-separated images per inference call", comma_list(positive_int), "N,N"),
    "--trt-batch": Flag("comma-separated images per inference call of the tensorrt rows (each engine's profile: 1 "
                        "to the largest)", comma_list(positive_int), "N,N"),
    "--backends": Flag("comma-separated: onnxruntime, openvino (the Detector on ONNX Runtime or OpenVINO), tensorrt "
                       "(the Detector on engines built here), torch (the Detector on torch), torch-eager, opencv-dnn "
                       "and openvino-net (peers, network forward only)",
                       comma_list(one_of(BENCH_BACKENDS)), "NAME,NAME"),
    "--precisions": Flag("comma-separated, for the onnxruntime and openvino backends: fp32, bf16 (the FP32 file with "
                         "OpenVINO's BF16 inference; openvino only), fp16 (ModelOpt AutoCast), int8-cpu (ONNX Runtime "
                         "QDQ), int8-tensorrt (ModelOpt Q/DQ, placed for TensorRT); others run fp32",
                         comma_list(one_of(BENCH_PRECISIONS)), "NAME,NAME"),
    "--resize-kernels": Flag("comma-separated resize kernels of the Detector rows, each row once per kernel: darknet, "
                             "opencv (as --resize-kernel)", comma_list(one_of(ResizeKernel.values())), "NAME,NAME"),
    "--warmup": Flag("untimed runs before the timed ones", non_negative_int, "N"),
    "--runs": Flag("timed runs of each measurement", positive_int, "N"),
    "--rounds": Flag("interleaved rounds over the files", positive_int, "N"),
    "--threads": Flag("threads for every runtime", positive_int, "N"),
    "--image": Flag("photo to detect in (a synthetic one if missing)", metavar="PATH"),
    "--photos": Flag("folder of .jpg photos", metavar="DIR"),
    "--no-gemm": Flag("skip the GEMM ceiling measurement", action="store_true"),
    "--fps-json": Flag("fps.json of a python benchmarks/fps.py run", metavar="PATH"),
    "--compare-json": Flag("compare.json of a python benchmarks/quantize_accuracy.py run (for the BF16 accuracy)",
                           metavar="PATH"),
    "--no-openvino": Flag("leave out the OpenVINO rows (they run when openvino is installed)", action="store_true"),
    "--confs": Flag("comma-separated score thresholds", comma_list(probability), "X,X"),
    "--no-trained": Flag("skip the trained checkpoint's heads", action="store_true"),
    "--train": Flag("training set the calibration images are sampled from", metavar="PATH"),
    "--cpu-methods": Flag("comma-separated calibration methods of the CPU INT8 files",
                          comma_list(one_of(CalibMethod.values())), "NAME,NAME"),
    "--layer-images": Flag("calibration images for the per-layer error", positive_int, "N"),
    "--budget-minutes": Flag("stop training after this many minutes", positive_float, "MIN"),
}


_UNSET = object()


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, *, default: Any = _UNSET,
             default_text: str | None = None, help: str | None = None, metavar: str | None = None,
             **extra: Any) -> argparse.Action:
    """Add flag ``name`` as :data:`FLAGS` defines it, with this tool's ``default``.

    ``default_text``: how the help shows the default (``"the cfg's"``) when the value itself says
    nothing (None) or is not what the user typed. ``help``/``metavar``: only for
    :data:`PER_TOOL_HELP`. ``extra``: argparse's ``dest``, ``required``, ``nargs``, aliases via
    ``aliases=(...)``.
    """
    spec = FLAGS[name]
    if (help is not None or metavar is not None) and name not in PER_TOOL_HELP:
        raise ValueError(f"{name} has one help line in every tool (yolov3_trt.cli.flags.FLAGS)")
    aliases = extra.pop("aliases", ())
    if default is _UNSET:  # a switch is off unless given; any other flag is None
        default = {"store_true": False, "store_false": True}.get(spec.action or "")
    kwargs: dict[str, Any] = {"help": help or spec.help, "default": default}
    if spec.dest:
        kwargs["dest"] = spec.dest
    if spec.action:
        kwargs["action"] = spec.action
    else:
        kwargs.update(type=spec.type, metavar=metavar or spec.metavar, choices=spec.choices)
    kwargs.update(extra)
    action = parser.add_argument(name, *aliases, **{k: v for k, v in kwargs.items() if v is not None or k == "default"})
    action.default_text = default_text  # type: ignore[attr-defined]  # read by the help formatter
    action.__class__ = _recording(type(action))
    return action


GIVEN = "_given_flags"  # namespace attribute: the flags on the command line (their canonical names)


def given_flags(namespace: argparse.Namespace) -> frozenset[str]:
    """The flags added by :func:`add_flag` that the command line gave, exactly (not by comparing values)."""
    return frozenset(getattr(namespace, GIVEN, ()))


_RECORDING: dict[type, type] = {}


def _recording(cls: type) -> type:
    """``cls`` that also records its flag in the namespace's :data:`GIVEN` set when argparse calls it."""
    if cls not in _RECORDING:
        def __call__(self, parser, namespace, values, option_string=None):
            setattr(namespace, GIVEN, getattr(namespace, GIVEN, frozenset()) | {self.option_strings[0]})
            return cls.__call__(self, parser, namespace, values, option_string)
        _RECORDING[cls] = type(cls.__name__, (cls,), {"__call__": __call__})
    return _RECORDING[cls]
