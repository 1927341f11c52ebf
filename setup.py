"""The plugin's host library build. Metadata, dependencies and extras are PEP 621 in pyproject.toml;
setup.py remains because the decode+NMS plugin's host library is compiled here: plugins/yolo_decode_nms/
built by the C++ compiler (no CUDA) into
yolov3_trt/plugin/libyolo_decode_nms.so, a plain shared library that yolov3_trt.plugin.host loads
with ctypes. `pip install -e .` (or `python setup.py build_ext --inplace`) builds it in place;
wheels carry it and a copy of the kernel sources (yolov3_trt/plugin/src/, for NVRTC)."""
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent

PLUGIN_SOURCES = HERE / "plugins" / "yolo_decode_nms"
HOST_LIBRARY = "yolov3_trt.plugin.libyolo_decode_nms"


class BuildHostLibrary(build_ext):
    """Builds the plugin's host library as a plain C shared library (no Python module init)."""

    def get_ext_filename(self, fullname):
        # Called with the full dotted name and with its last part alone; keep the package path.
        if fullname.split(".")[-1] == HOST_LIBRARY.split(".")[-1]:
            return str(Path(*fullname.split("."))) + ".so"
        return super().get_ext_filename(fullname)

    def get_export_symbols(self, ext):
        return [] if ext.name == HOST_LIBRARY else super().get_export_symbols(ext)


class BuildPyWithKernelSources(build_py):
    """Copies the kernel sources into the built package (yolov3_trt/plugin/src) for NVRTC."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "yolov3_trt" / "plugin" / "src"
        target.mkdir(parents=True, exist_ok=True)
        for source in PLUGIN_SOURCES.iterdir():
            if source.suffix in (".h", ".cuh", ".cu", ".cpp"):
                shutil.copy2(source, target / source.name)


setup(
    ext_modules=[Extension(
        HOST_LIBRARY, sources=["plugins/yolo_decode_nms/yolo_decode_nms_host.cpp"], language="c++",
        include_dirs=["plugins/yolo_decode_nms"], depends=[str(p) for p in sorted(PLUGIN_SOURCES.glob("*.*h"))],
        extra_compile_args=["-std=c++17", "-O3", "-ffp-contract=off"])],
    cmdclass={"build_ext": BuildHostLibrary, "build_py": BuildPyWithKernelSources},
)
