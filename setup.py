"""Packaging. setup.py (not only pyproject.toml) because the decode+NMS plugin's host library
is compiled here: plugins/yolo_decode_nms/ built by the C++ compiler (no CUDA) into
yolov3_trt/plugin/libyolo_decode_nms.so, a plain shared library that yolov3_trt.plugin.host loads
with ctypes. `pip install -e .` (or `python setup.py build_ext --inplace`) builds it in place;
wheels carry it and a copy of the kernel sources (yolov3_trt/plugin/src/, for NVRTC)."""
import shutil
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent

RUNTIME = [
    "numpy>=1.23",
    "opencv-python-headless>=4.8",
    "onnxruntime>=1.17",
    "tqdm>=4.60",
    "matplotlib>=3.6",
]
TRAIN = ["torch>=2.1", "onnx>=1.15", "onnxslim>=0.1.30", "pycocotools>=2.0.7"]
# ModelOpt WITHOUT its [onnx] extra, plus that extra's pure-Python parts that modelopt.onnx imports.
# On Linux x86 nvidia-modelopt[onnx] pins onnxruntime-gpu (~=1.24), which installs the same
# `onnxruntime` import package as the plain onnxruntime wheel above: pip installs both into one
# folder and uninstalling either breaks `import onnxruntime`. It also pulls cupy-cuda12x (for INT4
# only). The CPU onnxruntime wheel has everything quantization needs (calibration runs on its CPU
# provider, calibration_eps=["cpu"]); users with GPUs swap in onnxruntime-gpu themselves. The
# version range is the one tested: ModelOpt patches onnxruntime.quantization internals.
QUANTIZE = ["onnx>=1.15", "nvidia-modelopt>=0.47,<0.48", "onnx-graphsurgeon>=0.6.1", "polygraphy>=0.53.4",
            "onnxscript", "onnxslim>=0.1.76", "ml_dtypes", "lief"]
# onnx: build reads the ONNX's metadata. NVRTC compiles the plugin's PTX at engine-build time, and a
# driver loads PTX only from a compiler no newer than itself: CUDA 12.6's (JetPack 6's) loads on every
# driver TensorRT 10/11 runs on. cuda-bindings 12.x loads libnvrtc.so.12 (13.x only .so.13), hence
# cuda-python 12.x beside it. Newer drivers may use a newer NVRTC (ptx.nvrtc_install_hint).
TRT = ["tensorrt>=10.3", "cuda-python>=12.6,<13", "nvidia-cuda-nvrtc-cu12>=12.6,<12.7", "onnx>=1.15"]
# Everything the CPU test suite needs. OpenCV 4.x is pinned because 5.x dropped the Darknet
# importer the tests use as an independent YOLOv3; torchvision provides the reference NMS.
DEV = TRAIN + QUANTIZE + ["torchvision", "opencv-python-headless>=4.8,<5", "pytest>=7", "pytest-timeout>=2", "hypothesis>=6.100",
       "cuda-bindings>=12.6", "nvidia-cuda-nvrtc"]  # NVRTC for the plugin PTX tests

# The openvino backend (CPU: FP32, BF16 where the CPU has it, both INT8 flavours).
OPENVINO = ["openvino>=2024.0"]
# benchmarks/fps.py's OpenCV DNN peer row: OpenCV 5.x dropped cv2.dnn.readNetFromDarknet.
BENCH = ["opencv-python-headless>=4.8,<5", "matplotlib>=3.6"]

# Triton's model-config protobuf, which the tests parse each generated config.pbtxt with
DEV += ["tritonclient[grpc]>=2.40", "openvino>=2024.0"]  # the openvino backend's tests

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
    name="yolov3_trt",
    version="0.1.0",
    description="YOLOv3 from Darknet or PyTorch training to TensorRT inference on Jetson and desktop GPUs",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["yolov3_trt", "yolov3_trt.*"]),
    package_data={"yolov3_trt.assets": ["*.jpg"]},
    ext_modules=[Extension(
        HOST_LIBRARY, sources=["plugins/yolo_decode_nms/yolo_decode_nms_host.cpp"], language="c++",
        include_dirs=["plugins/yolo_decode_nms"], depends=[str(p) for p in sorted(PLUGIN_SOURCES.glob("*.*h"))],
        extra_compile_args=["-std=c++17", "-O3", "-ffp-contract=off"])],
    cmdclass={"build_ext": BuildHostLibrary, "build_py": BuildPyWithKernelSources},
    install_requires=RUNTIME,
    extras_require={"train": TRAIN, "quantize": QUANTIZE, "trt": TRT, "bench": BENCH, "openvino": OPENVINO, "dev": DEV},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
