"""User errors that used to end in tracebacks (issue #13): each is one line, exit 2.

The runtime-only install (``pip install .``: numpy, OpenCV, ONNX Runtime, tqdm; no matplotlib) is
simulated by running a tool in a subprocess whose import system refuses the optional packages
it would need; :func:`yolov3_trt.cli.common.run` must then name the extra that brings them.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest
from helpers import ROOT, random_model

from yolov3_trt.cli.common import BASE_MODULES, OPTIONAL_MODULES, missing_module_message, run

ASSETS = ROOT / "yolov3_trt" / "assets"

# A finder in front of every other: the listed top-level packages (and their submodules) are
# absent, as in an install without them. find_spec() raising instead of returning None is what
# an absent package looks like to an `import` statement, which is what the tools use.
BLOCKER = textwrap.dedent("""
    import runpy, sys

    class Absent:
        def __init__(self, names):
            self.names = set(names)

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Absent(sys.argv[1].split(",")))
    tool = sys.argv[2]
    sys.argv = [tool, *sys.argv[3:]]
    runpy.run_module(tool, run_name="__main__", alter_sys=True)
""")


def run_without(modules: list[str], tool: str, args: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER, ",".join(modules), tool, *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Random yolov3-tiny weights and their raw ONNX export."""
    from yolov3_trt.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("options")
    model = random_model(folder, name="tiny.weights")
    export_onnx(model, folder / "tiny.onnx", [f"c{i}" for i in range(80)], size=(64, 64))
    return folder


# tool, the packages the runtime install lacks, its flags -> what the one line must say
RUNTIME_INSTALL = {
    "detect --cfg": ("yolov3_trt.detect", ["torch", "onnx"], [str(ASSETS / "dog.jpg"), "--cfg", "yolov3-tiny",
                     "--weights", "{f}/tiny.weights", "--output", "{tmp}/detect"],
                     'python -m yolov3_trt.detect needs torch, which the runtime install does not include: '
                     'pip install ".[train]"'),
    "export": ("yolov3_trt.export", ["torch", "onnx"], ["--cfg", "yolov3-tiny", "--weights", "{f}/tiny.weights",
               "--output", "{tmp}/x.onnx"], 'python -m yolov3_trt.export needs onnx, which the runtime install does '
                                            'not include: pip install ".[train]"'),
    "export without torch only": ("yolov3_trt.export", ["torch"], ["--cfg", "yolov3-tiny", "--weights",
                                  "{f}/tiny.weights", "--output", "{tmp}/x.onnx"],
                                  'python -m yolov3_trt.export needs torch, which the runtime install does not '
                                  'include: pip install ".[train]"'),
    "quantize --target cpu": ("yolov3_trt.quantize", ["torch", "onnx", "modelopt"],
                              ["{f}/tiny.onnx", "--int8", "--target", "cpu", "--calib", str(ASSETS),
                               "--output", "{tmp}/q.onnx"],
                              'python -m yolov3_trt.quantize needs onnx, which the runtime install does not include: '
                              'pip install ".[quantize]"'),
    "quantize --target tensorrt": ("yolov3_trt.quantize", ["modelopt"],
                                   ["{f}/tiny.onnx", "--int8", "--target", "tensorrt", "--calib", str(ASSETS),
                                    "--output", "{tmp}/q.onnx"],
                                   'python -m yolov3_trt.quantize needs modelopt (nvidia-modelopt), which the runtime '
                                   'install does not include: pip install ".[quantize]"'),
    "triton": ("yolov3_trt.triton", ["torch", "onnx"], ["--model", "{f}/tiny.onnx", "--output", "{tmp}/repo"],
               'python -m yolov3_trt.triton needs onnx, which the runtime install does not include: '
               'pip install ".[train]"'),
    "build --model": ("yolov3_trt.build", ["torch", "onnx", "tensorrt"], ["--model", "{f}/tiny.onnx",
                      "--output", "{tmp}/e.engine"],
                      'python -m yolov3_trt.build needs onnx, which the runtime install does not include: '
                      'pip install ".[trt]"'),
    "build --cfg with [trt] only": ("yolov3_trt.build", ["torch"], ["--cfg", "yolov3-tiny", "--weights",
                    "{f}/tiny.weights", "--output", "{tmp}/e.engine"],
                    'python -m yolov3_trt.build needs torch, which the runtime install does not include: '
                    'pip install ".[train]"'),
    "train": ("yolov3_trt.train", ["torch", "onnx"], ["--synthetic", "4", "--epochs", "1", "--output", "{tmp}/t"],
              'python -m yolov3_trt.train needs torch, which the runtime install does not include: '
              'pip install ".[train]"'),
    "train --help": ("yolov3_trt.train", ["torch"], ["--help"],
                     'python -m yolov3_trt.train needs torch, which the runtime install does not include'),
}


@pytest.mark.parametrize("case", RUNTIME_INSTALL)
def test_runtime_install_names_the_extra_to_install(case, files, tmp_path):
    tool, absent, args, words = RUNTIME_INSTALL[case]
    args = [a.replace("{f}", str(files)).replace("{tmp}", str(tmp_path)) for a in args]
    done = run_without(absent, tool, args, tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert lines and lines[-1].startswith("error: ") and words in lines[-1], done.stderr
    # the one line is the only error output: at most INFO log lines before it, never a traceback
    assert "Traceback" not in done.stderr and all(line.startswith("INFO ") for line in lines[:-1]), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _dist(requirement: str) -> str:
    """``"onnxslim>=0.1.30"`` -> ``"onnxslim"``; extras of a requirement stay (``tritonclient[grpc]``)."""
    for mark in "<>=!~;":
        requirement = requirement.split(mark)[0]
    return requirement.strip()


def _setup_extras() -> dict[str, list[str]]:
    """pyproject.toml's dependencies ("base") and extras (requirement strings), with the
    self-references (``yolov3_trt[train,quantize]``) expanded."""
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml with tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    raw = {"base": project["dependencies"], **project["optional-dependencies"]}

    def expand(requirements: list[str]) -> list[str]:
        out: list[str] = []
        for r in requirements:
            if r.startswith(project["name"] + "["):
                for extra in r[len(project["name"]) + 1:-1].split(","):
                    out += expand(raw[extra])
            else:
                out.append(r)
        return out

    return {extra: expand(requirements) for extra, requirements in raw.items()}


def test_the_module_map_matches_pyproject():
    extras = {extra: {_dist(r): r for r in requirements} for extra, requirements in _setup_extras().items()}
    for module, (requirement, named) in OPTIONAL_MODULES.items():
        holding = {extra for extra, dists in extras.items() if _dist(requirement) in dists}
        assert named and set(named) <= holding, f"{module}: {requirement} is in {sorted(holding)}, the map says {named}"
        if named != ("dev",):  # every extra that brings it is offered; [dev] only where no other does
            assert set(named) == holding - {"dev"}, (module, holding)
        assert requirement in {r for extra in named for r in extras[extra].values()}, requirement
    for module, requirement in BASE_MODULES.items():
        assert requirement in extras["base"].values(), module
    # every package an extra brings that the code imports by name is in the map
    modules = {"nvidia-modelopt": "modelopt", "onnx-graphsurgeon": "onnx_graphsurgeon", "cuda-python": "cuda",
               "opencv-python-headless": "cv2", "tritonclient[grpc]": "tritonclient"}
    not_imported = {"nvidia-cuda-nvrtc-cu12", "nvidia-cuda-nvrtc", "cuda-bindings", "pytest", "pytest-timeout",
                    "hypothesis", "ruff"}  # shared libraries (loaded by cuda-python) and test tools
    for extra in ("train", "quantize", "trt", "openvino", "dev"):
        for dist in extras[extra]:
            if dist not in not_imported:
                module = modules.get(dist, dist)
                assert module in OPTIONAL_MODULES or module in BASE_MODULES, f"{dist} ({extra}) is not mapped"


@pytest.mark.parametrize("name, tool, words", [
    ("tensorrt", "python -m yolov3_trt.build", 'needs tensorrt, which the runtime install does not include: '
                                               'pip install ".[trt]" (from the yolov3_trt checkout) (on a Jetson, '
                                               "use JetPack's TensorRT instead)"),
    ("cuda", "python -m yolov3_trt.build", 'needs cuda (cuda-python), which the runtime install does not include: '
                                           'pip install ".[trt]"'),
    ("cuda.bindings", "python -m yolov3_trt.detect", 'needs cuda.bindings (cuda-python)'),
    ("onnx", "python -m yolov3_trt.quantize", 'pip install ".[quantize]"'),
    ("onnx", "python -m yolov3_trt.build", 'pip install ".[trt]"'),
    ("onnx", "benchmarks/fps.py", 'pip install ".[train]"'),
    ("onnxslim", "python -m yolov3_trt.quantize", 'pip install ".[quantize]"'),
    ("pycocotools", "python -m yolov3_trt.evaluate", 'needs pycocotools, which the runtime install does not '
                                                     'include: pip install ".[train]"'),
    ("modelopt.onnx.quantization", "python -m yolov3_trt.quantize", "needs modelopt.onnx.quantization "
                                                                    "(nvidia-modelopt)"),
    ("tritonclient", "python -m yolov3_trt.triton", 'needs tritonclient, which no install of yolov3_trt but [dev] '
                                                    'brings: pip install "tritonclient[grpc]>=2.40"'),
    ("cv2", "python -m yolov3_trt.detect", 'needs cv2, which is missing although the base install includes it: '
                                           'pip install "opencv-python-headless>=4.8"'),
    ("matplotlib", "python -m yolov3_trt.evaluate", 'needs matplotlib, which the runtime install does not include: '
                                                    'pip install ".[train]"'),
    ("matplotlib", "python benchmarks/fps.py", 'needs matplotlib, which the runtime install does not include: '
                                               'pip install ".[train]"'),
])
def test_missing_module_messages(name, tool, words):
    message = missing_module_message(ModuleNotFoundError(f"No module named {name!r}", name=name), tool)
    assert message is not None and message.startswith(tool + " needs ") and words in message
    assert "\n" not in message


def test_a_missing_module_of_our_own_is_a_bug_and_keeps_its_traceback():
    def main(argv):
        importlib.import_module("yolov3_trt.no_such_module")

    with pytest.raises(ModuleNotFoundError):
        run(main, [])
    assert missing_module_message(ModuleNotFoundError("x", name="left_pad"), "t") is None


TOOLS = {"info": "yolov3_trt.info", "detect": "yolov3_trt.detect", "export": "yolov3_trt.export.__main__",
         "quantize": "yolov3_trt.quantize.__main__", "build": "yolov3_trt.build.__main__",
         "train": "yolov3_trt.train.__main__", "evaluate": "yolov3_trt.evaluate.__main__",
         "triton": "yolov3_trt.triton.__main__", "data": "yolov3_trt.data.__main__", "anchors": "yolov3_trt.anchors"}
WITH_SIZE = ["info", "detect", "export", "quantize", "build", "train", "evaluate", "anchors"]


def _exit(tool: str, flags: list[str]) -> int:
    try:
        return run(importlib.import_module(TOOLS[tool]).main, flags)
    except SystemExit as exit_:  # argparse
        return exit_.code


@pytest.mark.parametrize("tool", TOOLS)
def test_argparse_errors_are_one_line(tool, capsys):
    """argparse printed its whole usage block (up to 20 lines) before the error."""
    assert _exit(tool, ["--no-such-flag"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert err.rstrip().endswith(f"(see python -m yolov3_trt.{tool} --help)"), err


@pytest.mark.parametrize("tool", WITH_SIZE)
@pytest.mark.parametrize("size, words", [("99999968", "argument --size: '99999968': each side must be at most 8192 px"),
                                         ("100", "argument --size: '100': width and height must be positive "
                                                 "multiples of 32")])
def test_every_size_flag_refuses_sizes_that_cannot_work(tool, size, words, capsys):
    assert _exit(tool, ["--size", size]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
