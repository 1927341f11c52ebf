"""Packaging. setup.py (not only pyproject.toml) because the decode+NMS plugin's host library
will be compiled here as an extension (see plugins/README.md)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

RUNTIME = [
    "numpy>=1.23",
    "opencv-python-headless>=4.8",
    "onnxruntime>=1.17",
    "tqdm>=4.60",
    "matplotlib>=3.6",
]
TRAIN = ["torch>=2.1", "onnx>=1.15", "onnxslim>=0.1.30", "pycocotools>=2.0.7"]
QUANTIZE = ["onnx>=1.15", "nvidia-modelopt[onnx]>=0.30"]
TRT = ["tensorrt>=10.3", "cuda-python>=12.6", "onnx>=1.15"]  # onnx: build reads the ONNX's metadata
# Everything the CPU test suite needs. OpenCV 4.x is pinned because 5.x dropped the Darknet
# importer the tests use as an independent YOLOv3; torchvision provides the reference NMS.
DEV = TRAIN + ["torchvision", "opencv-python-headless>=4.8,<5", "pytest>=7", "pytest-timeout>=2"]
# Triton's model-config protobuf, which the tests parse each generated config.pbtxt with
DEV += ["tritonclient[grpc]>=2.40"]

setup(
    name="yolov3_trt",
    version="0.1.0",
    description="YOLOv3 from Darknet or PyTorch training to TensorRT inference on Jetson and desktop GPUs",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["yolov3_trt", "yolov3_trt.*"]),
    install_requires=RUNTIME,
    extras_require={"train": TRAIN, "quantize": QUANTIZE, "trt": TRT, "dev": DEV},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
