"""Compile the decode + NMS kernel to PTX: NVRTC (cuda-python's ``cuda.bindings.nvrtc``) first,
nvcc as the fallback, cached on disk.

The model's constants are compiled in (:func:`~yolov3_trt.plugin.params.constants_header`), so
each (model, thresholds, input dtype, architecture) gets its own PTX. The cache key hashes the
kernel sources, the generated header, the target architecture, the compiler and its version and
the flags; entries are written atomically. A driver loads PTX only from a compiler no newer than
itself (JetPack 6 has CUDA 12.6 while the NVRTC wheel on PyPI is 13.x), so before compiling for
a GPU that is present, the NVRTC version is checked against the driver's
(:func:`check_driver_compatible`) and the error says which NVRTC to install.

Nothing here needs a GPU: PTX is text, and tests compile it for every supported architecture.
"""
from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from yolov3_trt.tensorrt.device import driver_version

from ..fileio import atomic_path, cache_root
from .params import PluginConfig, constants_header
from .sources import CONSTANTS_HEADER, KERNEL_FILE, KERNEL_NAME, PluginError, read_sources, sources_sha256

logger = logging.getLogger(__name__)

ARCHITECTURES = ("compute_75", "compute_80", "compute_86", "compute_87", "compute_89", "compute_90")
# No FMA contraction: the host build rounds every product and sum separately (-ffp-contract=off),
# so the GPU must too for the two to agree bit for bit.
FLAGS = ("-std=c++17", "--fmad=false")


def normalise_arch(arch: str | tuple[int, int]) -> str:
    """``(8, 6)``, ``"86"``, ``"sm_86"`` or ``"compute_86"`` -> ``"compute_86"``."""
    if isinstance(arch, tuple):
        return f"compute_{arch[0]}{arch[1]}"
    match = re.fullmatch(r"(?:sm_|compute_)?(\d{2,3}[a-z]?)", str(arch).strip())
    if not match:
        raise PluginError(f"unknown GPU architecture {arch!r} (expected e.g. compute_86, sm_87 or (8, 6))")
    return f"compute_{match.group(1)}"


def nvrtc_install_hint(driver: tuple[int, int]) -> str:
    """The install line for an NVRTC (and the cuda-python that loads it) no newer than ``driver``.
    cuda-bindings 12.x loads libnvrtc.so.12 and 13.x only libnvrtc.so.13, so the two go together;
    ``nvidia-cuda-nvrtc-cu13`` is a placeholder, CUDA 13's wheel is ``nvidia-cuda-nvrtc``."""
    major, minor = driver
    if major == 12:
        return (f'pip install "cuda-python>=12.6,<13" "nvidia-cuda-nvrtc-cu12=={major}.{minor}.*" '
                "(on JetPack 6, cuda-python 12.6 finds JetPack's own NVRTC)")
    if major >= 13:
        return f'pip install "cuda-python>={major},<{major + 1}" "nvidia-cuda-nvrtc=={major}.{minor}.*"'
    return f"install the NVRTC of CUDA {major}.{minor} (TensorRT 10 needs a CUDA 12 or newer driver)"


def check_driver_compatible(compiler_version: tuple[int, int], driver_version: int | None,
                            compiler: str = "NVRTC/nvcc") -> None:
    """PluginError when PTX from a CUDA ``compiler_version`` (major, minor) is too new for a driver
    reporting ``driver_version`` (``cuDriverGetVersion``: 1000 * major + 10 * minor; None: no driver)."""
    if driver_version is None:
        return
    driver = (driver_version // 1000, (driver_version % 1000) // 10)
    if compiler_version > driver:
        raise PluginError(
            f"{compiler} {compiler_version[0]}.{compiler_version[1]} writes PTX that the CUDA {driver[0]}.{driver[1]} "
            f"driver here cannot load, and no older compiler was found: {nvrtc_install_hint(driver)}, "
            "or put an nvcc no newer than the driver on PATH, or upgrade the driver")


def _too_new(version: tuple[int, int] | None, driver: int | None) -> bool:
    return version is not None and driver is not None and version > (driver // 1000, (driver % 1000) // 10)


def nvrtc_version() -> tuple[int, int] | None:
    """NVRTC's (major, minor) through cuda-python, or None when unavailable."""
    try:
        from cuda.bindings import nvrtc
        err, major, minor = nvrtc.nvrtcVersion()
    except Exception:  # cuda-python or the NVRTC library missing
        return None
    return (int(major), int(minor)) if int(err) == 0 else None


def nvcc_version() -> tuple[int, int] | None:
    """nvcc's (major, minor) from ``nvcc --version``, or None when nvcc is not on PATH."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"release (\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def cache_dir() -> Path:
    """``$YOLOV3_TRT_CACHE/ptx`` or ``~/.cache/yolov3_trt/ptx``."""
    return cache_root() / "ptx"


def cache_key(header: str, arch: str, compiler: str, version: tuple[int, int]) -> str:
    """Hex key over sources, generated constants, architecture, compiler, version and flags."""
    digest = hashlib.sha256()
    for part in (sources_sha256(), header, arch, compiler, f"{version[0]}.{version[1]}", " ".join(FLAGS)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:32]


def _nvrtc_compile(header: str, arch: str) -> bytes:
    from cuda.bindings import nvrtc

    sources = read_sources()
    includes = {name: text for name, text in sources.items() if name != KERNEL_FILE}
    includes[CONSTANTS_HEADER] = header
    names = list(includes)
    err, prog = nvrtc.nvrtcCreateProgram(sources[KERNEL_FILE].encode(), KERNEL_FILE.encode(), len(names),
                                         [includes[n].encode() for n in names], [n.encode() for n in names])
    _check_nvrtc(err, "nvrtcCreateProgram")
    try:
        options = [f"--gpu-architecture={arch}".encode(), *(f.encode() for f in FLAGS)]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(options), options)
        if int(err) != 0:
            _, size = nvrtc.nvrtcGetProgramLogSize(prog)
            log = b" " * size
            nvrtc.nvrtcGetProgramLog(prog, log)
            raise PluginError(f"NVRTC could not compile {KERNEL_FILE} for {arch}: "
                              f"{log.decode(errors='replace').strip()[:2000]}")
        err, size = nvrtc.nvrtcGetPTXSize(prog)
        _check_nvrtc(err, "nvrtcGetPTXSize")
        ptx = b" " * size
        (err,) = nvrtc.nvrtcGetPTX(prog, ptx)
        _check_nvrtc(err, "nvrtcGetPTX")
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    return ptx.rstrip(b"\0")


def _check_nvrtc(err, what: str) -> None:
    if int(err) != 0:
        raise PluginError(f"{what} failed: {err}")


def _nvcc_compile(header: str, arch: str) -> bytes:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise PluginError("neither NVRTC (pip install cuda-python nvidia-cuda-nvrtc) nor nvcc is available to "
                          "compile the decode + NMS kernel")
    with tempfile.TemporaryDirectory(prefix="yolov3_trt_ptx_") as tmp:
        folder = Path(tmp)
        for name, text in read_sources().items():
            (folder / name).write_text(text, encoding="utf-8")
        (folder / CONSTANTS_HEADER).write_text(header, encoding="utf-8")
        out = folder / "kernel.ptx"
        cmd = [nvcc, "-ptx", f"-arch={arch}", *FLAGS, "-I", str(folder), str(folder / KERNEL_FILE), "-o", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PluginError(f"nvcc could not compile {KERNEL_FILE} for {arch}: {done.stderr.strip()[:2000]}")
        return out.read_bytes()


def compile_ptx(config: PluginConfig, *, fp16: bool = False, arch: str | tuple[int, int] = "compute_75",
                compiler: str = "auto", use_cache: bool = True, check_driver: bool = True) -> bytes:
    """PTX of the kernel for ``config`` and ``arch``; its entry is :data:`KERNEL_NAME`.

    ``compiler``: ``auto`` (NVRTC when cuda-python has it, else nvcc), ``nvrtc`` or ``nvcc``.
    ``check_driver``: refuse PTX newer than the driver here (when there is one).
    """
    arch = normalise_arch(arch)
    header = constants_header(config, fp16)
    if compiler not in ("auto", "nvrtc", "nvcc"):
        raise PluginError(f"unknown compiler {compiler!r}: use auto, nvrtc or nvcc")
    driver = driver_version() if check_driver else None
    version = nvrtc_version() if compiler in ("auto", "nvrtc") else None
    if compiler == "auto" and _too_new(version, driver) and nvcc_version() is not None \
            and not _too_new(nvcc_version(), driver):
        logger.info("NVRTC %d.%d is newer than the CUDA driver (%d): compiling with nvcc %d.%d instead",
                    *version, driver, *nvcc_version())
        version = None  # an nvcc the driver can load from
    if version is not None:
        chosen = "nvrtc"
    elif compiler == "nvrtc":
        raise PluginError("NVRTC is not available: pip install cuda-python nvidia-cuda-nvrtc (matching your driver's "
                          "CUDA major version)")
    else:
        chosen, version = "nvcc", nvcc_version()
        if version is None:
            raise PluginError("neither NVRTC (pip install cuda-python nvidia-cuda-nvrtc) nor nvcc is available to "
                              "compile the decode + NMS kernel")
    if check_driver:
        check_driver_compatible(version, driver, chosen.upper() if chosen == "nvrtc" else chosen)
    path = cache_dir() / f"{KERNEL_NAME}-{arch}-{cache_key(header, arch, chosen, version)}.ptx"
    if use_cache and path.is_file():
        logger.debug("PTX from cache: %s", path)
        return path.read_bytes()
    ptx = _nvrtc_compile(header, arch) if chosen == "nvrtc" else _nvcc_compile(header, arch)
    if f".entry {KERNEL_NAME}(".encode() not in ptx:
        raise PluginError(f"{chosen} produced PTX without the entry {KERNEL_NAME}")
    logger.info("compiled %s for %s with %s %d.%d (%d bytes of PTX)", KERNEL_NAME, arch, chosen, *version, len(ptx))
    if use_cache:
        try:
            with atomic_path(path) as tmp:
                tmp.write_bytes(ptx)
        except OSError as err:  # a read-only home is no reason to fail the build
            logger.warning("could not cache the PTX at %s: %s", path, err)
    return ptx
