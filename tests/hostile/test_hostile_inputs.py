"""The hostile-input suite: bad files, bad options and bad output paths for every tool.

Each case runs a CLI in-process and asserts what the project promises for bad input: exit code
2, exactly one ``error:`` line that names the file or option, no traceback, the inputs
byte-identical afterwards, and nothing written to the output. Cases share one small workspace
(``workspace.py``: a 64x64 yolov3-tiny, its exports, photos, a labelled set, bad files).
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import workspace

pytestmark = pytest.mark.slow
TOOLS = {"info": "yolov3_trt.info", "detect": "yolov3_trt.detect", "export": "yolov3_trt.export.__main__",
         "quantize": "yolov3_trt.quantize.__main__", "evaluate": "yolov3_trt.evaluate.__main__",
         "build": "yolov3_trt.build.__main__", "triton": "yolov3_trt.triton.__main__",
         "train": "yolov3_trt.train.__main__", "data": "yolov3_trt.data.__main__", "anchors": "yolov3_trt.anchors"}
PWNED = Path("/tmp/yolov3_trt_pwned")


@dataclass(frozen=True)
class Case:
    id: str
    tool: str
    argv: str                 # words; {name} is a workspace path, {out} a fresh output path
    words: tuple[str, ...]    # what the one error line must name (formatted like argv)
    code: int = 2


M = "--cfg yolov3-tiny --weights {weights} --size 64"   # the valid model
CASES = [
    # info: cfgs and sizes
    Case("info-missing-cfg", "info", "--cfg {folder}/missing.cfg", ("missing.cfg",)),
    Case("info-bad-filters", "info", "--cfg {cfg_bad_filters}", ("bad_filters.cfg:",)),
    Case("info-unknown-option", "info", "--cfg {cfg_unknown_option}", ("unknown_option.cfg:", "wobble")),
    Case("info-unknown-section", "info", "--cfg {cfg_unknown_section}", ("unknown_section.cfg", "teleport")),
    Case("info-bad-route", "info", "--cfg {cfg_bad_route}", ("bad_route.cfg:",)),
    Case("info-binary-cfg", "info", "--cfg {cfg_binary}", ("binary.cfg",)),
    Case("info-huge-width", "info", "--cfg {cfg_huge_width}", ("huge_width.cfg",)),
    Case("info-huge-filters", "info", "--cfg {cfg_huge_filters}", ("huge_filters.cfg",)),
    Case("info-size-100", "info", "--cfg yolov3-tiny --size 100", ("--size",)),
    Case("info-size-text", "info", "--cfg yolov3-tiny --size big", ("--size",)),
    Case("info-size-huge", "info", "--cfg yolov3-tiny --size 99999968", ("--size",)),
    Case("info-unknown-name", "info", "--cfg yolov9", ("yolov9",)),
    # detect: sources
    Case("detect-missing-source", "detect", "{folder}/nowhere.jpg " + M + " --output {out}", ("nowhere.jpg",)),
    Case("detect-text-as-jpg", "detect", "{text_jpg} " + M + " --output {out}", ("notes.jpg",)),
    Case("detect-empty-folder", "detect", "{empty_folder} " + M + " --output {out}", ("nothing",)),
    Case("detect-folder-of-texts", "detect", "{text_folder} " + M + " --output {out}", ("b.jpg",)),
    Case("detect-garbage-video", "detect", "{video_garbage} " + M + " --output {out}", ("clip.mp4",)),
    Case("detect-max-frames-0", "detect", "{photo} " + M + " --max-frames 0 --output {out}", ("--max-frames",)),
    # detect: weights, cfgs, names
    Case("detect-truncated-weights", "detect", "{photo} --cfg yolov3-tiny --weights {truncated_weights} --output {out}",
         ("truncated.weights",)),
    Case("detect-oversized-weights", "detect", "{photo} --cfg yolov3-tiny --weights {oversized_weights} --output {out}",
         ("oversized.weights",)),
    Case("detect-header-only-weights", "detect", "{photo} --cfg yolov3-tiny --weights {header_only} --output {out}",
         ("header.weights",)),
    Case("detect-empty-weights", "detect", "{photo} --cfg yolov3-tiny --weights {empty} --output {out}",
         ("empty.bin",)),
    Case("detect-weights-for-3-classes", "detect", "{photo} " + M + " --classes 3 --output {out}",
         ("yolov3-tiny.weights",)),
    Case("detect-missing-weights", "detect", "{photo} --cfg yolov3-tiny --weights {folder}/no.weights --output {out}",
         ("no.weights",)),
    Case("detect-unknown-weights-name", "detect", "{photo} --weights yolov9 --output {out}", ("yolov9",)),
    Case("detect-name-vs-cfg", "detect", "{photo} --weights yolov3-tiny --cfg yolov3 --output {out}", ("--cfg",)),
    Case("detect-bad-cfg", "detect", "{photo} --cfg {cfg_bad_filters} --weights {weights} --output {out}",
         ("bad_filters.cfg:",)),
    Case("detect-names-count", "detect", "{photo} " + M + " --names {names_two} --output {out}", ("two.names",)),
    Case("detect-no-weights", "detect", "{photo} --cfg yolov3-tiny --output {out}", ("--weights",)),
    # detect: model files
    Case("detect-garbage-onnx", "detect", "{photo} --model {garbage_onnx} --output {out}", ("garbage.onnx",)),
    Case("detect-empty-onnx", "detect", "{photo} --model {empty_onnx} --output {out}", ("empty.onnx",)),
    Case("detect-onnx-without-metadata", "detect", "{photo} --model {no_metadata_onnx} --output {out}",
         ("plain.onnx",)),
    Case("detect-engine-without-sidecar", "detect", "{photo} --model {engine} --output {out}", ("model.engine",)),
    Case("detect-engine-broken-sidecar", "detect", "{photo} --model {engine_bad_sidecar} --output {out}",
         ("broken.engine",)),
    Case("detect-unknown-model-suffix", "detect", "{photo} --model {garbage} --output {out}", ("garbage.bin",)),
    Case("detect-pickle-bomb", "detect", "{photo} --checkpoint {pickle_bomb} --output {out}", ("evil.pt",)),
    Case("detect-not-our-checkpoint", "detect", "{photo} --checkpoint {not_ours_pt} --output {out}", ("other.pt",)),
    Case("detect-checkpoint-and-cfg", "detect", "{photo} --checkpoint {checkpoint} --cfg yolov3-tiny --output {out}",
         ("--checkpoint",)),
    Case("detect-model-and-cfg", "detect", "{photo} --model {onnx} --cfg yolov3-tiny --output {out}", ("--model",)),
    # detect: options
    Case("detect-conf-2", "detect", "{photo} " + M + " --conf 2 --output {out}", ("--conf",)),
    Case("detect-conf-negative", "detect", "{photo} " + M + " --conf -0.5 --output {out}", ("--conf",)),
    Case("detect-iou-1.5", "detect", "{photo} " + M + " --iou 1.5 --output {out}", ("--iou",)),
    Case("detect-max-det-0", "detect", "{photo} " + M + " --max-det 0 --output {out}", ("--max-det",)),
    Case("detect-backend-bogus", "detect", "{photo} --model {onnx} --backend warp --output {out}", ("--backend",)),
    Case("detect-size-100", "detect", "{photo} --cfg yolov3-tiny --weights {weights} --size 100 --output {out}",
         ("--size",)),
    Case("detect-stricter-end2end-only", "detect", "{photo} --model {end2end} --conf 0.1 --output {out}",
         ("end2end.onnx",)),
    # detect: outputs
    Case("detect-output-is-a-file", "detect", "{photo} " + M + " --output {file_as_folder}", ("plainfile",)),
    Case("detect-output-under-a-file", "detect", "{photo} " + M + " --output {file_as_folder}/run", ("plainfile",)),
    Case("detect-json-is-a-folder", "detect", "{photo} " + M + " --output {out} --json {empty_folder}", ("nothing",)),
    Case("detect-json-under-a-file", "detect", "{photo} " + M + " --output {out} --json {file_as_folder}/d.json",
         ("plainfile",)),
    Case("detect-output-is-the-input-folder", "detect", "{photos} " + M + " --output {photos}", ("photos",)),
    Case("detect-earlier-run-without-force", "detect", "{photo} " + M + " --output {earlier_run}", ("--force",)),
    # export
    Case("export-over-its-weights", "export", M + " --output {weights}", ("yolov3-tiny.weights",)),
    Case("export-output-is-a-folder", "export", M + " --output {empty_folder}", ("nothing",)),
    Case("export-output-under-a-file", "export", M + " --output {file_as_folder}/m.onnx", ("plainfile",)),
    Case("export-existing-without-force", "export", M + " --output {onnx}", ("--force",)),
    Case("export-opset-99", "export", M + " --opset 99 --output {out}/m.onnx", ("opset 99",)),
    Case("export-opset-9", "export", M + " --opset 9 --output {out}/m.onnx", ("opset",)),
    Case("export-size-huge", "export", "--cfg yolov3-tiny --weights {weights} --size 99999968 --output {out}/m.onnx",
         ("--size",)),
    Case("export-huge-filters", "export", "--cfg {cfg_huge_filters} --weights {weights} --output {out}/m.onnx",
         ("huge_filters.cfg",)),
    Case("export-plugin-top-k", "export", M + " --flavour plugin --pre-nms-top-k 5000 --output {out}/m.onnx",
         ("pre_nms_top_k",)),
    Case("export-flavour-bogus", "export", M + " --flavour fancy --output {out}/m.onnx", ("--flavour",)),
    Case("export-truncated-weights", "export", "--cfg yolov3-tiny --weights {truncated_weights} --output {out}/m.onnx",
         ("truncated.weights",)),
    # quantize
    Case("quantize-missing-model", "quantize", "{folder}/none.onnx --fp16 --output {out}/q.onnx", ("none.onnx",)),
    Case("quantize-garbage-model", "quantize", "{garbage_onnx} --fp16 --output {out}/q.onnx", ("garbage.onnx",)),
    Case("quantize-no-metadata", "quantize", "{no_metadata_onnx} --int8 --target cpu --calib {photos} "
         "--output {out}/q.onnx", ("plain.onnx",)),
    Case("quantize-int8-without-calib", "quantize", "{onnx} --int8 --output {out}/q.onnx", ("--calib",)),
    Case("quantize-calib-without-int8", "quantize", "{onnx} --fp16 --calib {photos} --output {out}/q.onnx",
         ("--calib",)),
    Case("quantize-calib-empty-folder", "quantize", "{onnx} --int8 --target cpu --calib {empty_folder} "
         "--output {out}/q.onnx", ("nothing",)),
    Case("quantize-calib-not-images", "quantize", "{onnx} --int8 --target cpu --calib {text_folder} "
         "--output {out}/q.onnx", ("texts",)),
    Case("quantize-calib-missing", "quantize", "{onnx} --int8 --target cpu --calib {folder}/gone "
         "--output {out}/q.onnx", ("gone",)),
    Case("quantize-over-its-input", "quantize", "{onnx} --int8 --target cpu --calib {photos} --output {onnx}",
         ("raw.onnx",)),
    Case("quantize-output-under-a-file", "quantize", "{onnx} --int8 --target cpu --calib {photos} "
         "--output {file_as_folder}/q.onnx", ("plainfile",)),
    Case("quantize-too-few-calibration-images", "quantize", "{onnx} --int8 --target cpu --calib {photos} "
         "--calib-images 128 --output {out}/q.onnx", ("photos", "128")),
    # evaluate
    Case("evaluate-missing-data", "evaluate", "{folder}/no_data --model {onnx} --output {out}", ("no_data",)),
    Case("evaluate-garbage-data", "evaluate", "{garbage} --model {onnx} --output {out}", ("garbage.bin",)),
    Case("evaluate-class-mismatch", "evaluate", "{data}/val.txt --model {onnx} --output {out}", ("classes",)),
    Case("evaluate-json-is-a-folder", "evaluate", "{data}/val.txt --model {onnx} --names {data}/classes.names "
         "--output {out} --json {empty_folder}", ("nothing",)),
    Case("evaluate-output-under-a-file", "evaluate", "{data}/val.txt --model {onnx} --output {file_as_folder}/ev",
         ("plainfile",)),
    Case("evaluate-compare-non-onnx", "evaluate", "{data}/val.txt --compare {onnx} {garbage} --output {out}",
         ("garbage.bin",)),
    # build
    Case("build-nothing", "build", "", ("--model",)),
    Case("build-missing-model", "build", "--model {folder}/none.onnx", ("none.onnx",)),
    Case("build-garbage-model", "build", "--model {garbage_onnx}", ("garbage.onnx",)),
    Case("build-batch-0", "build", "--model {onnx} --batch 0", ("--batch",)),
    Case("build-batch-order", "build", "--model {onnx} --batch 8:4:1", ("--batch",)),
    Case("build-int8-without-calib", "build", "--model {onnx} --int8", ("--calib",)),
    Case("build-size-mismatch", "build", "--model {onnx} --size 96", ("--size",)),
    Case("build-output-under-a-file", "build", "--model {onnx} --output {file_as_folder}/m.engine", ("plainfile",)),
    Case("build-model-and-cfg", "build", "--model {onnx} --cfg yolov3-tiny", ("--model",)),
    # triton
    Case("triton-missing-model", "triton", "--model {folder}/none.onnx --output {out}", ("none.onnx",)),
    Case("triton-engine-without-sidecar", "triton", "--model {engine} --output {out}", ("model.engine",)),
    Case("triton-output-under-a-file", "triton", "--model {onnx} --output {file_as_folder}/repo", ("plainfile",)),
    # train
    Case("train-batch-0", "train", "--data {data}/train.txt --cfg yolov3-tiny --size 64 --epochs 1 --batch-size 0 "
         "--output {out}", ("--batch-size",)),
    Case("train-negative-lr", "train", "--data {data}/train.txt --cfg yolov3-tiny --size 64 --epochs 1 --lr -1 "
         "--output {out}", ("--lr",)),
    Case("train-negative-workers", "train", "--data {data}/train.txt --cfg yolov3-tiny --size 64 --epochs 1 "
         "--workers -1 --output {out}", ("--workers",)),
    Case("train-val-fraction-1.5", "train", "--data {data}/train.txt --cfg yolov3-tiny --size 64 --epochs 1 "
         "--val-fraction 1.5 --output {out}", ("--val-fraction",)),
    Case("train-cuda-without-gpu", "train", "--data {data}/train.txt --cfg yolov3-tiny --size 64 --epochs 1 "
         "--device cuda --output {out}", ("--device",)),
    Case("train-epochs-0", "train", "--data {data}/train.txt --cfg yolov3-tiny --size 64 --epochs 0 --output {out}",
         ("--epochs",)),
    Case("train-resume-not-a-run", "train", "--resume {checkpoint} --output {out}", ("model.pt",)),
    Case("train-missing-data", "train", "--data {folder}/no_data --cfg yolov3-tiny --size 64 --output {out}",
         ("no_data",)),
    Case("train-output-under-a-file", "train", "--data {data}/train.txt --cfg yolov3-tiny --size 64 --epochs 1 "
         "--output {file_as_folder}/run", ("plainfile",)),
    Case("train-size-100", "train", "--data {data}/train.txt --cfg yolov3-tiny --size 100 --output {out}",
         ("--size",)),
    # data and anchors
    Case("data-synthetic-over-a-file", "data", "synthetic {file_as_folder} --images 2 --image-size 64", ("plainfile",)),
    Case("data-summary-missing", "data", "summary {folder}/no_data", ("no_data",)),
    Case("anchors-missing-data", "anchors", "{folder}/no_data", ("no_data",)),
    Case("anchors-num-0", "anchors", "{data}/train.txt --num 0", ("--num",)),
]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    files = workspace.build(folder)
    files["folder"] = folder
    files["garbage_onnx"] = folder / "garbage.onnx"
    files["garbage_onnx"].write_bytes(files["garbage"].read_bytes())
    files["empty_onnx"] = folder / "empty.onnx"
    files["empty_onnx"].write_bytes(b"")
    earlier = folder / "earlier_run"
    earlier.mkdir()
    (earlier / "detections.json").write_text("[]")
    (earlier / "old.jpg").write_bytes(files["photo"].read_bytes())
    files["earlier_run"] = earlier
    return files


def _argv(case: Case, ws: dict[str, Path], out: Path) -> list[str]:
    names = {k: str(v) for k, v in ws.items()} | {"out": str(out)}
    return [word.format(**names) for word in case.argv.split()]


def _run(tool: str, argv: list[str]) -> int:
    from yolov3_trt.cli.common import run

    main = importlib.import_module(TOOLS[tool]).main
    try:
        return run(main, argv)
    except SystemExit as exit_:  # argparse's own errors
        return int(exit_.code or 0)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, ws, tmp_path, capsys):
    before = workspace.snapshot(ws["folder"])
    out = tmp_path / "out"
    PWNED.unlink(missing_ok=True)
    code = _run(case.tool, _argv(case, ws, out))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:") or ": error:" in line]
    assert code == case.code, err
    assert len(errors) == 1 and not any(line.startswith("usage:") for line in err.splitlines()), err
    for word in case.words:
        assert word.format(**{k: str(v) for k, v in ws.items()}) in errors[0], errors[0]
    assert workspace.snapshot(ws["folder"]) == before, "an input changed"
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
    assert not PWNED.exists(), "a pickle ran code"


def test_there_are_enough_cases():
    assert len(CASES) >= 80 and len({c.id for c in CASES}) == len(CASES)


# ---- Python API ----------------------------------------------------------------------------

API_CASES = [
    ("none", lambda ws: dict(model_path=None), "model"),
    ("missing", lambda ws: dict(model_path=ws["folder"] / "none.onnx"), "none.onnx"),
    ("garbage", lambda ws: dict(model_path=ws["garbage_onnx"]), "garbage.onnx"),
    ("iou-negative", lambda ws: dict(model_path=ws["onnx"], iou=-1), "iou"),
    ("iou-5", lambda ws: dict(model_path=ws["onnx"], iou=5), "iou"),
    ("max-det-0", lambda ws: dict(model_path=ws["onnx"], max_det=0), "max_det"),
    ("conf-2", lambda ws: dict(model_path=ws["onnx"], conf=2.0), "conf"),
    ("cuda-without-gpu", lambda ws: dict(model_path=ws["onnx"], device="cuda"), "cuda"),
]


@pytest.mark.parametrize("name, kwargs, word", API_CASES, ids=[c[0] for c in API_CASES])
def test_detector_refuses(name, kwargs, word, ws):
    from yolov3_trt import Detector
    from yolov3_trt.errors import YoloV3TrtError

    args = kwargs(ws)
    with pytest.raises(YoloV3TrtError) as info:
        Detector(args.pop("model_path"), **args)
    message = str(info.value)
    assert "\n" not in message and word in message, message


def test_non_ascii_paths_work(ws, tmp_path, capsys):
    out = tmp_path / "вывод"
    assert _run("detect", [str(ws["unicode_photo"]), *M.format(weights=ws["weights"]).split(),
                           "--output", str(out)]) == 0
    assert (out / "собака.jpg").is_file() and (out / "detections.json").is_file()


def test_four_threads_on_one_detector_agree(ws):
    import cv2

    from yolov3_trt import Detector

    images = [cv2.imread(str(p)) for p in sorted(ws["photos"].glob("*.jpg"))] * 4
    with Detector(ws["onnx"], conf=0.01) as detector:
        expected = [detector.detect(im) for im in images]
        results: dict[int, list] = {}

        def work(index: int) -> None:
            results[index] = [detector.detect(im) for im in images]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for got in results.values():
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a.boxes, b.boxes)
            np.testing.assert_array_equal(a.class_ids, b.class_ids)
