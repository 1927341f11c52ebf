"""TensorRT build steps, each small and composable (as Polygraphy's loaders are).

    builder, network, parser = network_from_onnx("yolov3-int8.onnx", make_logger())  # strongly typed
    config = create_config(builder, network, BuildOptions(batch=(1, 4, 8)), timing_cache)
    plan = build_serialized_engine(builder, network, config)           # tqdm bars per build phase
    save_timing_cache(config, "timing.cache"); save_engine(plan, "yolov3.engine")

Written against TensorRT 10.3 (JetPack 6) to 11.x, checked name by name with the project's
``check_trt_names.py``; names some releases lack are behind version checks. Precision lives in
the ONNX file (FP16 weights, or INT8 Q/DQ nodes): the builder only parses and compiles, with
the network strongly typed (a flag on 10.x; every network is strongly typed on 11).

Nothing in this module runs on the development machines (no TensorRT, no GPU there); the GPU
tests in ``tests/gpu/`` run it.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import FileError, YoloV3TrtError
from ..fileio import atomic_write_bytes
from yolov3_trt.tensorrt.device import parse_version

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    """Builder settings. ``batch`` is the optimisation profile (min, opt, max)."""

    batch: tuple[int, int, int] = (1, 1, 1)
    workspace_mib: int | None = None                 # None: TensorRT's default (the GPU's memory)
    optimization_level: int | None = None            # 0..5; None: TensorRT's default (3)
    dla_core: int | None = None                      # Jetson DLA core, unsupported layers fall back to the GPU
    hardware_compatibility: str = "none"             # none | ampere+ | same-cc
    version_compatible: bool = False
    progress: bool = True


def make_logger(verbose: bool = False):
    """A ``tensorrt.ILogger`` that forwards TensorRT's messages to :mod:`logging` (logger "tensorrt")."""
    import tensorrt as trt

    severity = trt.ILogger.Severity
    levels = {int(severity.INTERNAL_ERROR): logging.ERROR, int(severity.ERROR): logging.ERROR,
              int(severity.WARNING): logging.WARNING, int(severity.INFO): logging.INFO,
              int(severity.VERBOSE): logging.DEBUG}

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, sev, msg):
            level = levels.get(int(sev), logging.DEBUG)
            if verbose or level >= logging.WARNING:
                logging.getLogger("tensorrt").log(level, "%s", msg)

    return _Logger()


def make_progress_monitor():
    """A ``tensorrt.IProgressMonitor`` drawing one tqdm bar per build phase, or None without one.

    The progress monitor interface exists from TensorRT 10.0 on; the check keeps older bindings
    (and future removals) working, only without bars.
    """
    import tensorrt as trt

    if not hasattr(trt, "IProgressMonitor"):
        return None
    from tqdm import tqdm

    class _Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self._bars: dict[str, tqdm] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            depth = len(self._bars)  # nested phases (parent_phase set) stack below their parents
            self._bars[phase_name] = tqdm(total=num_steps, desc=phase_name, position=depth, leave=depth == 0,
                                          unit="step", dynamic_ncols=True)

        def step_complete(self, phase_name, step):
            bar = self._bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            bar = self._bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return _Monitor()


def network_from_onnx(onnx_path: str | os.PathLike, trt_logger, dla: bool = False):
    """(builder, network, parser) for ``onnx_path``; FileError with the parser's errors on failure.

    The network is strongly typed: tensor types come from the ONNX (FP16 weights, Q/DQ scales),
    never from builder precision flags. Keep ``parser`` alive as long as ``network``. ``dla``:
    let the parser shape layers for the DLA where it can (TensorRT 11.4+).
    """
    import tensorrt as trt

    builder = trt.Builder(trt_logger)
    flags = 0
    if parse_version(trt.__version__)[:1] < (11,):  # TensorRT 11: every network is strongly typed
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if dla and hasattr(trt.OnnxParserFlag, "ADJUST_FOR_DLA"):  # from TensorRT 11.4
        parser.set_flag(trt.OnnxParserFlag.ADJUST_FOR_DLA)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        first = errors[0].splitlines()[0] if errors else "unknown parser error"
        raise FileError(onnx_path, f"TensorRT's ONNX parser failed ({len(errors)} errors; first: {first})")
    return builder, network, parser


def input_batch_dynamic(network) -> bool:
    """Whether the network's one input has a dynamic batch axis (-1)."""
    return int(network.get_input(0).shape[0]) < 0


def create_config(builder, network, options: BuildOptions, timing_cache: bytes | None = None):
    """An ``IBuilderConfig`` with the optimisation profile, memory, level, DLA and compatibility set."""
    import tensorrt as trt

    config = builder.create_builder_config()
    tensor = network.get_input(0)
    shape = tuple(int(d) for d in tensor.shape)
    low, opt, high = options.batch
    if input_batch_dynamic(network):
        profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, (low, *shape[1:]), (opt, *shape[1:]), (high, *shape[1:]))
        config.add_optimization_profile(profile)
    elif options.batch != (shape[0],) * 3:
        raise YoloV3TrtError(f"the ONNX has a fixed batch of {shape[0]}: --batch {low}:{opt}:{high} needs an export "
                             "with a dynamic batch (python -m yolov3_trt.export without --batch)")
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level
    if options.dla_core is not None:
        available = int(builder.num_DLA_cores)
        if not 0 <= options.dla_core < available:
            raise YoloV3TrtError(f"--dla-core {options.dla_core}: this device has {available} DLA cores")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # NMS, TopK and the plugin run on the GPU
    if options.hardware_compatibility == "ampere+":
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    elif options.hardware_compatibility == "same-cc":
        if not hasattr(trt.HardwareCompatibilityLevel, "SAME_COMPUTE_CAPABILITY"):  # from TensorRT 10.4
            raise YoloV3TrtError(f"--hardware-compatible same-cc needs TensorRT 10.4 or newer (this is "
                                 f"{trt.__version__}); use ampere+")
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    cache = config.create_timing_cache(timing_cache or b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        # a damaged cache, or one from another TensorRT/GPU: this build measures afresh
        logger.warning("the timing cache does not load here (damaged, or from another TensorRT or GPU): "
                       "starting an empty one")
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    if options.progress:
        monitor = make_progress_monitor()
        if monitor is not None:
            config.progress_monitor = monitor
    return config


def build_serialized_engine(builder, network, config) -> bytes:
    """Compile ``network`` into a serialized plan (minutes for yolov3); YoloV3TrtError on failure."""
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise YoloV3TrtError("TensorRT could not build the engine (its log above says why)")
    return bytes(memoryview(plan))


def timing_cache_bytes(config) -> bytes:
    """The timing cache after a build (what the builder measured plus what it loaded)."""
    return bytes(memoryview(config.get_timing_cache().serialize()))


def load_timing_cache(path: str | os.PathLike | None) -> bytes | None:
    """The cache file's bytes, or None when there is none yet."""
    if path is None or not Path(path).is_file():
        return None
    try:
        return Path(path).read_bytes()
    except OSError as err:  # an unreadable cache costs build time, not the build
        logger.warning("timing cache %s not read (%s)", path, err)
        return None


def save_engine(plan: bytes, path: str | os.PathLike) -> Path:
    """Write the plan atomically (a reader never sees half an engine)."""
    atomic_write_bytes(path, plan)
    return Path(path)
