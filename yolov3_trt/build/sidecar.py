"""Old home of the engine sidecar: re-exports :mod:`yolov3_trt.tensorrt.sidecar`."""
from __future__ import annotations

from ..errors import EngineCompatibilityError  # noqa: F401
from ..fileio import file_sha256  # noqa: F401
from yolov3_trt.tensorrt.sidecar import (HARDWARE_COMPATIBILITY, PRECISIONS, EngineInfo, check_compatible,  # noqa: F401
                                check_consistent, check_engine_hash, read_sidecar, sidecar_path, write_sidecar)
