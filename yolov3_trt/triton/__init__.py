"""Serving with Triton Inference Server: a model repository from an engine or ONNX file."""
from __future__ import annotations

from .repository import TritonOptions, render_config, tensor_specs, validate_config, write_repository

__all__ = ["TritonOptions", "render_config", "tensor_specs", "validate_config", "write_repository"]
