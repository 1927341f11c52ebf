"""Argument groups that parse and validate: each adds its flags and turns them into a frozen options object.

Each group has ``add_parser_args(parser)`` and ``parse(namespace)``; ``parse`` returns a frozen
dataclass of typed values and does the group's checks once, for every tool that uses the group
(a :class:`~yolov3_trt.errors.UsageError`, one line, exit 2). Whether a flag was given is known
exactly (:func:`~yolov3_trt.cli.flags.given_flags`), never guessed from its value. A tool declares
the groups it uses, with its defaults, and parses them in order (``RuntimeArgs.parse`` takes the
parsed :class:`ModelOptions`, to refuse model flags beside ``--model``).
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from ..errors import UsageError
from ..vocab import Backend, CalibMethod, Precision, ResizeKernel
from .flags import add_flag, given_flags

CALIB_IMAGES = 128  # = yolov3_trt.calibration.DEFAULT_NUM_IMAGES (kept here so parsers import nothing heavy)
_CALIB_FLAGS = ("--calib-method", "--calib-images", "--calib-seed", "--calib-cache")


def _listed(flags) -> str:
    return ", ".join(flags)


@dataclass(frozen=True)
class ModelOptions:
    """--cfg, --weights, --checkpoint, --classes, --names, --size (None: not given)."""

    cfg: str | None = None
    weights: str | None = None
    checkpoint: str | None = None
    classes: int | None = None
    names: str | None = None
    size: tuple[int, int] | None = None

    def given(self) -> list[str]:
        """The model flags set, in flag order."""
        return [f"--{name}" for name in ("cfg", "weights", "checkpoint", "classes", "names", "size")
                if getattr(self, name)]


class ModelArgs:
    """The model a tool loads from Darknet files or a checkpoint.

    ``weights``/``names``: whether the tool takes them (info reads a cfg only).
    """

    def __init__(self, *, weights: bool = True, names: bool = True):
        self.weights, self.names = weights, names

    def add_parser_args(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("model")
        add_flag(g, "--cfg", default_text="yolov3")
        if self.weights:
            add_flag(g, "--weights")
            add_flag(g, "--checkpoint")
        add_flag(g, "--classes", default_text="the cfg's")
        if self.names:
            add_flag(g, "--names", default_text="the model's")
        add_flag(g, "--size", default_text="the cfg's width x height")

    def parse(self, ns: argparse.Namespace) -> ModelOptions:
        """UsageError for --checkpoint beside --cfg, --weights or --classes (it carries its own)."""
        options = ModelOptions(**{name: getattr(ns, name, None) for name in
                                  ("cfg", "weights", "checkpoint", "classes", "names", "size")})
        if options.checkpoint and (options.cfg or options.weights or options.classes):
            raise UsageError("--checkpoint carries its own cfg, class count and weights: "
                             "do not combine it with --cfg, --weights or --classes")
        return options


@dataclass(frozen=True)
class RuntimeOptions:
    """--model (None: the model flags describe it), --backend and the Detector's --resize-kernel."""

    model: str | None = None
    backend: Backend = Backend.AUTO
    resize_kernel: ResizeKernel = ResizeKernel.DARKNET


class RuntimeArgs:
    """An exported model file and the backend that runs it.

    ``backend``: whether the tool has --backend; ``size_with_model``: whether --size may go with
    --model (build checks it against the file instead of refusing it); ``resize_kernel``: whether
    it has --resize-kernel (the tools that run a Detector).
    """

    def __init__(self, *, backend: bool = True, size_with_model: bool = False, required: bool = False,
                 resize_kernel: bool = False):
        self.backend, self.size_with_model, self.required = backend, size_with_model, required
        self.resize_kernel = resize_kernel

    def add_parser_args(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("runtime")
        add_flag(g, "--model", required=self.required, default_text=None if self.required else
                 "the model flags describe it")
        if self.backend:
            add_flag(g, "--backend", default=Backend.AUTO.value)
        if self.resize_kernel:
            add_flag(g, "--resize-kernel", default=ResizeKernel.DARKNET.value)

    def parse(self, ns: argparse.Namespace, model: ModelOptions | None = None) -> RuntimeOptions:
        """UsageError for model flags beside --model, and a backend the model flags cannot run on."""
        options = RuntimeOptions(getattr(ns, "model", None), Backend.parse(getattr(ns, "backend", "auto"), "--backend"),
                                 ResizeKernel.parse(getattr(ns, "resize_kernel", None) or "darknet", "--resize-kernel"))
        if model is None:
            return options
        clash = [flag for flag in model.given() if not (flag == "--size" and self.size_with_model)]
        if options.model and clash:
            what = "cfg and class names" if self.size_with_model else "cfg, size and class names"
            raise UsageError(f"--model carries its own {what}: drop {_listed(clash)}")
        if not options.model and options.backend not in (Backend.AUTO, Backend.TORCH, Backend.ONNXRUNTIME):
            raise UsageError(f"--cfg/--weights/--checkpoint run on PyTorch or ONNX Runtime; for {options.backend}, "
                             "export the model (python -m yolov3_trt.export) and pass --model")
        return options


@dataclass(frozen=True)
class PostprocessOptions:
    """--conf, --iou, --max-det (None: the model's own) and which of them were given."""

    conf: float | None
    iou: float | None
    max_det: int | None
    given: frozenset[str] = frozenset()


class PostprocessArgs:
    """Score threshold, NMS IoU and detections kept; a None default shows as ``default_text``."""

    FLAGS = ("--conf", "--iou", "--max-det")

    def __init__(self, conf: float | None = None, iou: float | None = None, max_det: int | None = None, *,
                 default_text: str = "the model's"):
        self.defaults, self.default_text = (conf, iou, max_det), default_text

    def add_parser_args(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("post-processing")
        for flag, default in zip(self.FLAGS, self.defaults):
            add_flag(g, flag, default=default, default_text=self.default_text if default is None else None)

    def parse(self, ns: argparse.Namespace) -> PostprocessOptions:
        return PostprocessOptions(ns.conf, ns.iou, ns.max_det, given_flags(ns) & set(self.FLAGS))


@dataclass(frozen=True)
class PrecisionOptions:
    """--fp16 | --int8 and the calibration settings (used only with INT8)."""

    precision: Precision
    calib: str | None
    calib_method: CalibMethod
    calib_images: int
    calib_seed: int
    calib_cache: str | None


class PrecisionArgs:
    """--fp16 | --int8 (neither: FP32), --calib and its settings. ``required``: FP32 is no choice (quantize)."""

    def __init__(self, *, required: bool = False):
        self.required = required

    def add_parser_args(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("precision and calibration")
        mode = g.add_mutually_exclusive_group()
        add_flag(mode, "--fp16")
        add_flag(mode, "--int8")
        add_flag(g, "--calib")
        add_flag(g, "--calib-method", default=CalibMethod.ENTROPY.value)
        add_flag(g, "--calib-images", default=CALIB_IMAGES)
        add_flag(g, "--calib-seed", default=0)
        add_flag(g, "--calib-cache")

    def parse(self, ns: argparse.Namespace) -> PrecisionOptions:
        """UsageError for no precision where one is required, --int8 without --calib, and
        calibration flags without --int8."""
        if self.required and not (ns.fp16 or ns.int8):
            raise UsageError("choose a precision: --fp16 or --int8")
        if ns.int8 and not ns.calib:
            raise UsageError("--int8 needs calibration images: give --calib PATH (a folder of typical input images)")
        if ns.calib and not ns.int8:
            raise UsageError("--calib is used only with --int8")
        stray = [flag for flag in _CALIB_FLAGS if flag in given_flags(ns)]
        if stray and not ns.int8:
            raise UsageError(f"{_listed(stray)} {'is' if len(stray) == 1 else 'are'} used only with --int8")
        precision = Precision.FP16 if ns.fp16 else Precision.INT8 if ns.int8 else Precision.FP32
        return PrecisionOptions(precision, ns.calib, CalibMethod.parse(ns.calib_method, "--calib-method"),
                                ns.calib_images, ns.calib_seed, ns.calib_cache)


@dataclass(frozen=True)
class BudgetOptions:
    """--max-ap-drop and its sets: the AP50 budget of an INT8 file (yolov3_trt.quantize.budget)."""

    max_ap_drop: float
    val: str
    holdout: str | None
    max_excluded: int | None


_BUDGET_FLAGS = ("--val", "--holdout", "--max-excluded")


class BudgetArgs:
    """--max-ap-drop P --val DATA [--holdout DATA] [--max-excluded N] (quantize and build, with --int8)."""

    def add_parser_args(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("accuracy budget (INT8)")
        add_flag(g, "--max-ap-drop", default_text="no budget: every layer the placement quantizes is INT8")
        add_flag(g, "--val", default_text="none; needed by --max-ap-drop")
        add_flag(g, "--holdout", default_text="none: the drop is known on --val only")
        add_flag(g, "--max-excluded", default_text="every quantized Conv")

    def parse(self, ns: argparse.Namespace) -> BudgetOptions | None:
        """None without --max-ap-drop; UsageError for it without --int8 or --val, for the set
        flags without it, and for --holdout naming the --val set (checked before the precision
        group's own checks: a budget without --int8 is named as such)."""
        stray = [flag for flag in _BUDGET_FLAGS if flag in given_flags(ns)]
        if ns.max_ap_drop is None:
            if stray:
                raise UsageError(f"{_listed(stray)} {'is' if len(stray) == 1 else 'are'} used only with "
                                 "--max-ap-drop")
            return None
        if not ns.int8:
            raise UsageError("--max-ap-drop is used only with --int8 (it is the AP50 budget of the INT8 file)")
        if not ns.val:
            raise UsageError("--max-ap-drop needs a validation set to measure AP50 on: give --val DATA (labelled, "
                             "or a folder of images: then agreement with FP32's detections)")
        if ns.holdout and os.path.realpath(ns.holdout) == os.path.realpath(ns.val):
            raise UsageError(f"--holdout {ns.holdout} is the --val set: a held-out set shares no image with it")
        return BudgetOptions(ns.max_ap_drop, ns.val, ns.holdout, ns.max_excluded)

    @staticmethod
    def inputs(options: BudgetOptions | None) -> list[str]:
        """The budget's input paths (never to be written over)."""
        return [] if options is None else [p for p in (options.val, options.holdout) if p]


def cuda_index(device: str, tool: str) -> int:
    """The CUDA device index of a ``--device`` value for a tool that runs on CUDA only (UsageError for cpu)."""
    if device == "cpu":
        raise UsageError(f"--device cpu: {tool} runs on a CUDA GPU; give auto, cuda or cuda:N")
    return int(device.split(":")[1]) if ":" in device else 0
