"""The train command refuses what it cannot do, before any work: one line naming the option, exit 2."""
from __future__ import annotations

import pytest
import torch

from yolov3_trt.cli.common import run
from yolov3_trt.data.synthetic import generate
from yolov3_trt.model.checkpoint import load_checkpoint, save_checkpoint
from yolov3_trt.model.yolov3 import YoloV3
from yolov3_trt.train.__main__ import main as train_main

FAST = ["--cfg", "yolov3-tiny", "--size", "64", "--batch-size", "2", "--val-fraction", "0", "--eval-every", "100"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    generate(folder, 4, size=64, seed=1, max_objects=2)
    return folder


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory):
    """A finished 1-epoch run's folder (last.pt, best.pt)."""
    out = tmp_path_factory.mktemp("run")
    assert run(train_main, ["--data", str(data), "--val", str(data), *FAST, "--epochs", "1",
                            "--output", str(out)]) == 0
    assert (out / "best.pt").is_file()
    return out


def _run(argv, capsys) -> tuple[int, str]:
    try:
        code = run(train_main, argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("flags, words", [
    (["--batch-size", "0"], ["--batch-size", "0"]),
    (["--batch-size", "-3"], ["--batch-size"]),
    (["--accumulate", "0"], ["--accumulate"]),
    (["--eval-every", "0"], ["--eval-every"]),
    (["--lr", "-1"], ["--lr", "> 0"]),
    (["--lr", "0"], ["--lr"]),
    (["--lr", "nan"], ["--lr"]),
    (["--workers", "-1"], ["--workers"]),
    (["--val-fraction", "1.5"], ["--val-fraction", "1.5"]),
    (["--val-fraction", "1"], ["--val-fraction"]),
    (["--val-fraction", "-0.1"], ["--val-fraction"]),
    (["--epochs", "0"], ["--epochs"]),
    (["--momentum", "1.5"], ["--momentum"]),
    (["--weight-decay", "-1"], ["--weight-decay"]),
    (["--warmup-epochs", "-1"], ["--warmup-epochs"]),
    (["--grad-clip", "-1"], ["--grad-clip"]),
    (["--eval-conf", "2"], ["--eval-conf"]),
    (["--size", "256x192"], ["--size", "square"]),
    (["--size", "100"], ["--size"]),
    (["--synthetic", "0"], ["--synthetic"]),
    (["--device", "tpu"], ["--device"]),
    (["--device", "cuda:x"], ["--device"]),
])
def test_bad_option_is_one_line_naming_it(flags, words, data, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(["--data", str(data), *FAST, "--epochs", "1", *flags, "--output", str(out)], capsys)
    assert code == 2, err
    line = _one_error_line(err)
    for word in words:
        assert word in line, line
    assert "-0.5" not in line  # --val-fraction 1.5 once reported the train share it implied
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda(device, data, tmp_path, capsys):
    code, err = _run(["--data", str(data), *FAST, "--device", device, "--output", str(tmp_path / "out")], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert f"--device {device}" in line and "CUDA is not available" in line, line
    assert not (tmp_path / "out").exists()


def test_square_size_as_nxn_is_accepted(data, tmp_path):
    assert run(train_main, ["--data", str(data), *FAST, "--size", "64x64", "--epochs", "1",
                            "--output", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_output_that_cannot_be_a_folder_fails_before_training(where, data, tmp_path, capsys):
    # a file where the folder should be (root ignores permissions, so no chmod-based case)
    plain = tmp_path / "plainfile"
    plain.write_text("I am a file")
    out = plain if where == "file" else plain / "run"
    code, err = _run(["--data", str(data), *FAST, "--epochs", "1", "--output", str(out)], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "plainfile" in line and "--output" in line, line
    assert "epoch" not in err  # refused before the first epoch
    assert plain.read_text() == "I am a file"


def test_synthetic_into_an_output_under_a_file(tmp_path, capsys):
    plain = tmp_path / "plainfile"
    plain.write_text("x")
    code, err = _run(["--synthetic", "2", *FAST, "--output", str(plain / "run")], capsys)
    assert code == 2 and "plainfile" in _one_error_line(err)


def test_resume_of_a_model_checkpoint_is_refused(data, tmp_path, capsys):
    model = YoloV3.from_cfg("yolov3-tiny", num_classes=6)
    save_checkpoint(tmp_path / "model.pt", model, [str(i) for i in range(6)])
    code, err = _run(["--resume", str(tmp_path / "model.pt"), "--output", str(tmp_path / "out")], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "model.pt" in line and "--resume" in line and "--init-checkpoint" in line, line
    assert not (tmp_path / "out").exists()


def test_resume_of_best_pt_is_refused(finished_run, data, capsys):
    code, err = _run(["--resume", str(finished_run / "best.pt"), "--data", str(data), "--output",
                      str(finished_run)], capsys)
    line = _one_error_line(err)
    assert code == 2 and "best.pt" in line and "no training state" in line, line


@pytest.mark.parametrize("flags, words", [
    ([], ["finished its 1 epochs", "--epochs N > 1"]),
    (["--epochs", "1"], ["--epochs 1 adds none"]),
    (["--epochs", "3", "--lr", "0.5"], ["drop --lr"]),
    (["--epochs", "3", "--size", "128"], ["drop --size"]),
    (["--epochs", "3", "--cfg", "yolov3"], ["drop --cfg"]),
])
def test_resume_refuses_what_it_cannot_do(flags, words, finished_run, data, capsys):
    before = (finished_run / "last.pt").read_bytes()
    code, err = _run(["--resume", str(finished_run / "last.pt"), "--data", str(data), "--val-fraction", "0",
                      *flags, "--output", str(finished_run)], capsys)
    assert code == 2, err
    line = _one_error_line(err)
    for word in words:
        assert word in line, line
    assert (finished_run / "last.pt").read_bytes() == before


def test_checkpoints_record_the_training_size(finished_run):
    """Trained at 64: the checkpoints' cfg says 64x64, so detect/evaluate/export run at 64."""
    for name in ("last.pt", "best.pt"):
        model, _, _ = load_checkpoint(finished_run / name)
        assert model.input_size == (64, 64), name
        assert (model.cfg.net.options["width"], model.cfg.net.options["height"]) == ("64", "64")


def test_checkpoint_size_reaches_export(finished_run, tmp_path):
    from yolov3_trt.export.__main__ import main as export_main
    from yolov3_trt.metadata import ModelMetadata

    onnx_path = tmp_path / "model.onnx"
    assert run(export_main, ["--checkpoint", str(finished_run / "best.pt"), "--output", str(onnx_path)]) == 0
    import onnx
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert ModelMetadata.from_props(props, onnx_path).input_size == (64, 64)
    graph_input = onnx.load(str(onnx_path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in graph_input][2:] == [64, 64]


def test_an_earlier_run_is_replaced_only_with_force(finished_run, data, tmp_path, capsys):
    before = (finished_run / "last.pt").read_bytes()
    argv = ["--data", str(data), *FAST, "--epochs", "1", "--output", str(finished_run)]
    code, err = _run(argv, capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "last.pt" in line and "--force" in line, line
    assert (finished_run / "last.pt").read_bytes() == before
    # the same run, elsewhere: --force replaces
    copy = tmp_path / "again"
    copy.mkdir()
    (copy / "last.pt").write_bytes(before)
    assert run(train_main, [*argv[:-1], str(copy), "--force"]) == 0
    assert (copy / "last.pt").read_bytes() != before


def test_inputs_are_never_outputs(finished_run, data, tmp_path, capsys):
    weights = tmp_path / "run" / "best.pt"
    weights.parent.mkdir()
    weights.write_bytes((finished_run / "best.pt").read_bytes())
    code, err = _run(["--data", str(data), *FAST, "--epochs", "1", "--init-checkpoint", str(weights), "--force",
                      "--output", str(weights.parent)], capsys)
    assert code == 2 and "best.pt" in _one_error_line(err) and "input" in err, err
    code, err = _run(["--data", str(data), *FAST, "--epochs", "1", "--output", str(data / "run")], capsys)
    assert code == 2 and "inside" in _one_error_line(err), err
    assert not (data / "run").exists()
