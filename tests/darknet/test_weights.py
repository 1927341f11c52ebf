"""Darknet .weights: exact sizes, both header widths, byte-identical round trips, bad files."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import DARKNET

from yolov3_trt.darknet.builtin import builtin_cfg, load_cfg
from yolov3_trt.darknet.cfg import parse_cfg
from yolov3_trt.darknet.layers import build_network
from yolov3_trt.darknet.weights import (
    DarknetHeader,
    expected_size,
    random_darknet_weights,
    read_darknet_weights,
    read_header,
    write_darknet_weights,
)
from yolov3_trt.errors import DarknetWeightsError, FileError

# Sizes of the files Darknet's authors publish (header 0.2.0 with a 64-bit "seen").
PUBLISHED_SIZES = {"yolov3": 248_007_048, "yolov3-tiny": 35_434_956, "yolov3-spp": 252_209_544}


@pytest.mark.parametrize("name", sorted(PUBLISHED_SIZES))
def test_expected_size_matches_published_files(name):
    assert expected_size(build_network(parse_cfg(DARKNET / "cfg" / f"{name}.cfg"))) == PUBLISHED_SIZES[name]


@pytest.mark.parametrize("header, header_bytes", [
    (DarknetHeader(0, 2, 0, 32013312), 20),   # yolov3.weights
    (DarknetHeader(0, 1, 0, 64000), 16),      # old files: 32-bit seen
    (DarknetHeader(1, 0, 0, 5), 20),
])
def test_round_trip_is_byte_identical(tmp_path, header, header_bytes):
    network = build_network(load_cfg("yolov3-tiny"))
    path, copy = tmp_path / "a.weights", tmp_path / "b.weights"
    write_darknet_weights(path, network, random_darknet_weights(network, seed=3), header)
    assert path.stat().st_size == expected_size(network, header)
    assert header.nbytes == header_bytes
    read_back, layers = read_darknet_weights(path, network)
    assert read_back == header
    write_darknet_weights(copy, network, layers, read_back)
    assert path.read_bytes() == copy.read_bytes()


def test_arrays_are_in_darknet_order(tmp_path):
    network = build_network(load_cfg("yolov3-tiny"))
    layers = random_darknet_weights(network, seed=1)
    path = tmp_path / "t.weights"
    write_darknet_weights(path, network, layers)
    raw = np.fromfile(path, dtype="<f4", offset=20)
    first = layers[0]
    n = 16
    np.testing.assert_array_equal(raw[:n], first["biases"])
    np.testing.assert_array_equal(raw[n:2 * n], first["scales"])
    np.testing.assert_array_equal(raw[2 * n:3 * n], first["rolling_mean"])
    np.testing.assert_array_equal(raw[3 * n:4 * n], first["rolling_variance"])
    np.testing.assert_array_equal(raw[4 * n:4 * n + 16 * 3 * 9], first["weights"].ravel())


@pytest.mark.parametrize("delta, word", [(-4, "truncated"), (-1000, "truncated"), (8, "oversized")])
def test_wrong_size_names_expected_and_found(tmp_path, delta, word):
    network = build_network(load_cfg("yolov3-tiny"))
    path = tmp_path / "bad.weights"
    write_darknet_weights(path, network, random_darknet_weights(network))
    data = path.read_bytes()
    path.write_bytes(data[:delta] if delta < 0 else data + bytes(delta))
    with pytest.raises(DarknetWeightsError) as info:
        read_darknet_weights(path, network)
    message = str(info.value)
    assert message.startswith(f"{path}: {word}")
    assert "35,434,956" in message and f"{35_434_956 + delta:,}" in message


def test_weights_for_another_class_count_are_rejected(tmp_path):
    coco = build_network(load_cfg("yolov3-tiny"))
    path = tmp_path / "coco.weights"
    write_darknet_weights(path, coco, random_darknet_weights(coco))

    voc = build_network(builtin_cfg("yolov3-tiny", classes=20))
    with pytest.raises(DarknetWeightsError, match="oversized.*class count"):
        read_darknet_weights(path, voc)


def test_missing_and_tiny_files(tmp_path):
    with pytest.raises(FileError, match="nope.weights: no such weights file"):
        read_header(tmp_path / "nope.weights")
    short = tmp_path / "short.weights"
    short.write_bytes(b"\x00" * 10)
    with pytest.raises(DarknetWeightsError, match="too short"):
        read_header(short)


def test_failed_write_leaves_nothing(tmp_path):
    network = build_network(load_cfg("yolov3-tiny"))
    layers = random_darknet_weights(network)
    del layers[max(layers)]
    with pytest.raises(ValueError):
        write_darknet_weights(tmp_path / "x.weights", network, layers)
    assert list(tmp_path.iterdir()) == []
