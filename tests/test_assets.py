"""The sample photo ships with the package (and its wheel) and is Darknet's dog.jpg."""
from __future__ import annotations

import hashlib

from helpers import DARKNET

from yolov3_trt.assets import SAMPLE
from yolov3_trt.preprocess import read_image


def test_sample_is_darknets_dog():
    assert SAMPLE.is_file() and read_image(SAMPLE).shape == (576, 768, 3)
    official = DARKNET / "images" / "dog.jpg"
    if official.is_file():
        assert hashlib.sha256(SAMPLE.read_bytes()).digest() == hashlib.sha256(official.read_bytes()).digest()
