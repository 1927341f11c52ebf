"""NVIDIA's real TensorRT Python bindings, importable on a machine without TensorRT or a GPU.

The ``tensorrt-cu12-bindings`` wheels on the package index (~1.3 MB each) hold the real
``tensorrt.so`` and NVIDIA's ``tensorrt/plugin`` Python layer. ``tensorrt.so`` links against
nine C entry points of the engine libraries (``nm -D --undefined-only tensorrt.so``); three stub
libraries that define them (returning NULL/0) let ``import tensorrt`` succeed. Everything
Python-side is then NVIDIA's code (enums, ``PluginField``, ``PluginFieldCollection``, the
``tensorrt.plugin`` decorators, validators and plugin classes); nothing can build or run an
engine, and ``get_plugin_registry()`` returns None. This is not a GPU run.

:func:`prepare` downloads a release once (``pip download``) into a cache
(``$YOLOV3_TRT_CACHE/trt-bindings``, default ``~/.cache/yolov3_trt/trt-bindings``), unpacks it
as an importable ``tensorrt`` package and compiles the stubs with the C compiler; it returns
the environment for a child interpreter, or raises :class:`Unavailable` with the reason (no
package index, no C compiler) so the tests skip instead of failing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

# JetPack 6 (no tensorrt.plugin: the end2end fallback), the first AOT release, JetPack 7 (the
# name-lifetime and NumPy defects), the first with the name fixed, and the current release.
RELEASES = ("10.3.0", "10.9.0.34", "10.13.3.9", "10.14.1.48.post1", "11.4.0.106")

STUBS = {
    "libnvinfer": ["void* createInferBuilder_INTERNAL(void* l, int v) { return 0; }",
                   "void* createInferRuntime_INTERNAL(void* l, int v) { return 0; }",
                   "void* createInferRefitter_INTERNAL(void* e, void* l, int v) { return 0; }",
                   "void* getPluginRegistry(void) { return 0; }",
                   "void* getBuilderPluginRegistry(int v) { return 0; }"],
    "libnvonnxparser": ["void* createNvOnnxParser_INTERNAL(void* n, void* l, int v) { return 0; }",
                        "void* createNvOnnxParserRefitter_INTERNAL(void* r, void* l, int v) { return 0; }",
                        "int getNvOnnxParserVersion(void) { return 0; }"],
    "libnvinfer_plugin": ["int initLibNvInferPlugins(void* l, const char* ns) { return 0; }"],
}


class Unavailable(Exception):
    """The bindings cannot be prepared here (the reason is the message)."""


def cache_root() -> Path:
    from yolov3_trt.fileio import cache_root as project_cache

    return project_cache() / "trt-bindings"


def _download(version: str, folder: Path) -> Path:
    wheels = sorted(folder.glob("tensorrt_cu12_bindings-*.whl"))
    if wheels:
        return wheels[0]
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", "-d", str(folder), f"tensorrt-cu12-bindings=={version}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"pip download tensorrt-cu12-bindings=={version} timed out (package index unreachable?)")
    wheels = sorted(folder.glob("tensorrt_cu12_bindings-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(f"pip download tensorrt-cu12-bindings=={version} failed: {last}")
    return wheels[0]


def _unpack(wheel: Path, target: Path) -> None:
    """The wheel's ``tensorrt_bindings`` package as ``target/tensorrt`` (what ``tensorrt`` imports)."""
    if (target / "tensorrt" / "tensorrt.so").is_file():
        return
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(staging)
    (staging / "tensorrt_bindings").rename(staging / "tensorrt")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _stubs(major: int, folder: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise Unavailable("no C compiler (cc) to build the stub engine libraries")
    folder.mkdir(parents=True, exist_ok=True)
    for name, functions in STUBS.items():
        library = folder / f"{name}.so.{major}"
        if library.is_file():
            continue
        source = folder / f"{name}.c"
        source.write_text("\n".join(functions) + "\n", encoding="utf-8")
        tmp = folder / f".{library.name}.tmp"
        done = subprocess.run([compiler, "-shared", "-fPIC", "-o", str(tmp), str(source),
                               f"-Wl,-soname,{library.name}"], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise Unavailable(f"cc could not build {library.name}: {done.stderr.strip()[:300]}")
        tmp.rename(library)


def prepare(version: str) -> dict[str, str]:
    """Environment variables for a child interpreter whose ``import tensorrt`` is release ``version``."""
    root = cache_root() / version
    wheel = _download(version, root / "wheel")
    _unpack(wheel, root / "site")
    major = int(version.split(".")[0])
    _stubs(major, root / f"stubs{major}")
    env = dict(os.environ)
    project = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([str(root / "site"), project, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(root / f"stubs{major}"), env.get("LD_LIBRARY_PATH", "")]).rstrip(
        os.pathsep)
    return env
