"""The vocabularies (yolov3_trt/vocab.py): a member is interchangeable with its spelling."""
from __future__ import annotations

import json

import pytest

from yolov3_trt import vocab
from yolov3_trt.vocab import Backend, CalibMethod, Choice, Flavour, Precision, Target

ALL = [cls for cls in vars(vocab).values() if isinstance(cls, type) and issubclass(cls, Choice) and cls is not Choice]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_a_member_is_its_spelling_everywhere(cls):
    for member in cls:
        assert member == member.value and str(member) == member.value and f"{member}" == member.value
        assert hash(member) == hash(member.value) and {member.value: 1}[member] == 1  # dict keys mix
        assert json.dumps(member) == json.dumps(member.value)
        assert cls.parse(member.value) is member
    assert cls.values() == tuple(m.value for m in cls) and len(set(cls.values())) == len(cls)
    assert cls.describe() == ", ".join(cls.values())


def test_parse_names_what_and_the_choices():
    with pytest.raises(ValueError, match=r"^unknown flavour 'tail' \(expected one of raw, end2end, plugin\)$"):
        Flavour.parse("tail")
    with pytest.raises(ValueError, match=r"^unknown --target 'gpu' \(expected one of tensorrt, cpu\)$"):
        Target.parse("gpu", "--target")


def test_the_spellings_the_files_store_stay_as_they_were():
    # metadata, sidecars and calibration caches on disk hold these strings: renaming one breaks old files
    assert Flavour.values() == ("raw", "end2end", "plugin")
    assert Precision.values() == ("fp32", "fp16", "int8")
    assert CalibMethod.values() == ("entropy", "max", "percentile")
    assert Backend.values() == ("auto", "onnxruntime", "torch", "tensorrt", "openvino")
