"""Cfg parsing, writing and error reporting."""
from __future__ import annotations

import pytest
from helpers import OFFICIAL_CFGS

from yolov3_trt.darknet.cfg import format_cfg, parse_cfg, parse_cfg_text, write_cfg
from yolov3_trt.darknet.layers import build_network
from yolov3_trt.errors import CfgError, FileError


def test_official_cfgs_found():
    names = {p.stem for p in OFFICIAL_CFGS}
    assert {"yolov3", "yolov3-tiny", "yolov3-spp", "yolov3-voc", "yolov3-openimages", "darknet53"} <= names


@pytest.mark.parametrize("path", OFFICIAL_CFGS, ids=lambda p: p.stem)
def test_official_cfg_round_trips_through_writer(path, tmp_path):
    cfg = parse_cfg(path)
    out = tmp_path / "copy.cfg"
    write_cfg(cfg, out)
    again = parse_cfg(out)
    assert [(s.type, s.options) for s in again.sections] == [(s.type, s.options) for s in cfg.sections]
    assert build_network(again).layers == build_network(cfg).layers


def test_darknet_whitespace_and_comment_rules():
    cfg = parse_cfg_text("[net]\n  width = 4 16\n# c\n; c\n\n[convolutional]\nfilters=8\n", "x.cfg")
    assert cfg.net.options["width"] == "416"  # Darknet drops every whitespace character
    assert cfg.layers[0].option_lines["filters"] == 7


def test_repeated_option_keeps_first_value_like_darknet(caplog):
    cfg = parse_cfg_text("[net]\nbatch=1\nbatch=64\n", "x.cfg")
    assert cfg.net.options["batch"] == "1"
    assert "x.cfg:3" in caplog.text


def test_format_cfg_is_parseable_text():
    text = "[net]\nwidth=32\nheight=32\n\n[convolutional]\nfilters=4\nsize=3\nactivation=leaky\n"
    assert format_cfg(parse_cfg_text(text)) == text


NET = "[net]\nwidth=416\nheight=416\nchannels=3\n"
CONV = "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n"


@pytest.mark.parametrize("text, line, words", [
    (NET + "[bogus]\n", 5, "unknown section [bogus]"),
    (NET + "[convolutional]\nfilters=abc\n", 6, "bad value filters='abc'"),
    (NET + "[convolutional]\nfilters\n", 6, "expected key=value"),
    (NET + CONV + "[route]\nlayers=-3\n", 13, "refers to layer -3"),
    (NET + CONV + "[route]\nlayers=5\n", 13, "refers to layer 5"),
    (NET + CONV + "[shortcut]\nfrom=-2\n", 13, "refers to layer -2"),
    (NET + CONV + "[convolutional]\nfilters=10\nsize=1\n"
     "[yolo]\nmask=0,1,2\nanchors=1,1,2,2,3,3\nclasses=80\nnum=3\n", 15, "set filters=255"),
    (NET + CONV + "[convolutional]\nfilters=255\nsize=1\n[yolo]\nmask=0,1,3\nanchors=1,1,2,2,3,3\nnum=3\n",
     16, "mask index 3"),
    (NET + CONV + "[convolutional]\nfilters=255\nsize=1\n[yolo]\nmask=0,1,2\nanchors=1,1,2,2\nnum=3\n",
     17, "needs 6"),
    (NET + "[convolutional]\nfilters=8\nscale_x_y=1.05\n", 7, "unknown option 'scale_x_y'"),
    (NET + "[convolutional]\nfilters=8\nactivation=mish\n", 7, "unsupported activation='mish'"),
    (NET + "[convolutional]\nfilters=0\n", 6, "filters=0 must be >= 1"),
    ("filters=3\n[net]\n", 1, "before the first section"),
    ("[convolutional]\nfilters=3\n", 1, "first section must be [net]"),
    (NET + CONV + "[net]\n", 12, "[net] must be the first section"),
    (NET + "[convolutional\n", 5, "malformed section header"),
])
def test_cfg_errors_name_file_and_line(text, line, words):
    with pytest.raises(CfgError) as info:
        build_network(parse_cfg_text(text, "bad.cfg"))
    message = str(info.value)
    assert message.startswith(f"bad.cfg:{line}: "), message
    assert words in message
    assert "\n" not in message


def test_route_of_mismatched_sizes_is_an_error():
    text = NET + CONV + "[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1,-2\n"
    with pytest.raises(CfgError, match=r"bad.cfg:15: .*differ in height/width"):
        build_network(parse_cfg_text(text, "bad.cfg"))


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.cfg"
    empty.write_text("# nothing\n")
    with pytest.raises(CfgError, match="empty.cfg: no sections"):
        parse_cfg(empty)
    with pytest.raises(FileError, match="missing.cfg: no such cfg file"):
        parse_cfg(tmp_path / "missing.cfg")
    binary = tmp_path / "x.cfg"
    binary.write_bytes(b"\x00\xff\xfe" * 10)
    with pytest.raises(CfgError, match="not a text file"):
        parse_cfg(binary)
