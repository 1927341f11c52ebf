"""The runtime: ``Detector`` and its backends. Imports neither torch nor the training code."""
from .detector import Detector

__all__ = ["Detector"]
