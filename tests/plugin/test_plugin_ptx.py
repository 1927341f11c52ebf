"""The kernel compiles to PTX with nvcc and NVRTC for every supported architecture, and the
generated constants, cache and version checks behave."""
from __future__ import annotations

import re
import shutil

import pytest
from plugin_cases import yolov3_heads

from yolov3_trt.plugin import ptx
from yolov3_trt.plugin.params import PluginConfig, shared_memory_bytes
from yolov3_trt.plugin.sources import KERNEL_NAME, PluginError

CONFIG = PluginConfig.from_heads(yolov3_heads(80), (416, 416), [(13, 13), (26, 26), (52, 52)], conf=0.25, iou=0.45,
                                 max_det=100, pre_nms_top_k=1024)
TINY = PluginConfig.from_heads(yolov3_heads(80)[:2], (416, 416), [(13, 13), (26, 26)], conf=0.001, iou=0.45,
                               max_det=300, pre_nms_top_k=1866)

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
needs_nvrtc = pytest.mark.skipif(ptx.nvrtc_version() is None,
                                 reason="cuda-python's NVRTC is not installed "
                                        "(pip install cuda-python nvidia-cuda-nvrtc)")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOV3_TRT_CACHE", str(tmp_path))


def _entry_params(text: str) -> int:
    entry = re.search(rf"\.entry {KERNEL_NAME}\((.*?)\)", text, re.S)
    assert entry, "entry symbol missing"
    return len(re.findall(r"\.param", entry.group(1)))


@needs_nvcc
@pytest.mark.parametrize("arch", ptx.ARCHITECTURES)
def test_nvcc_compiles_for_every_architecture(arch):
    text = ptx.compile_ptx(CONFIG, arch=arch, compiler="nvcc", use_cache=False, check_driver=False).decode()
    assert f".target sm_{arch.split('_')[1]}" in text
    assert _entry_params(text) == 3 + 1 + 4   # heads, batch, outputs: the AOT argument order


@needs_nvrtc
@pytest.mark.parametrize("arch", ptx.ARCHITECTURES)
@pytest.mark.parametrize("fp16", [False, True])
def test_nvrtc_compiles_for_every_architecture(arch, fp16):
    text = ptx.compile_ptx(CONFIG, fp16=fp16, arch=arch, compiler="nvrtc", use_cache=False, check_driver=False).decode()
    assert f".target sm_{arch.split('_')[1]}" in text
    assert _entry_params(text) == 8
    # FP16 heads are read as 16-bit words and widened in software, FP32 heads as 32-bit floats
    assert ("ld.global.nc.u16" in text, "ld.global.nc.f32" in text) == (fp16, not fp16)


@needs_nvrtc
def test_two_heads_and_largest_capacity_fit():
    text = ptx.compile_ptx(TINY, arch="compute_87", compiler="nvrtc", use_cache=False, check_driver=False).decode()
    assert _entry_params(text) == 2 + 1 + 4
    arrays = [int(n) for n in re.findall(r"\.shared \.align \d+ \.b8 \w+\[(\d+)\]", text)]
    assert sorted(arrays) == sorted([2048 * 8, 1866 * 16, 1866, 256 * 4, 2 * 4])
    assert shared_memory_bytes(1866) == 49140 <= 48 * 1024   # what ptxas reports for this kernel


@needs_nvrtc
def test_cache_hits_and_keys(tmp_path):
    first = ptx.compile_ptx(CONFIG, arch="sm_86", check_driver=False)
    cached = list((tmp_path / "ptx").glob("*.ptx"))
    assert len(cached) == 1 and cached[0].read_bytes() == first
    cached[0].write_bytes(first + b"// from the cache\n")
    assert ptx.compile_ptx(CONFIG, arch="compute_86", check_driver=False).endswith(b"// from the cache\n")
    ptx.compile_ptx(CONFIG, arch="compute_89", check_driver=False)              # new arch: new entry
    ptx.compile_ptx(TINY, arch="compute_86", check_driver=False)                # new constants: new entry
    assert len(list((tmp_path / "ptx").glob("*.ptx"))) == 3


def test_driver_version_check():
    ptx.check_driver_compatible((12, 6), 12060)
    ptx.check_driver_compatible((12, 6), 13000)
    ptx.check_driver_compatible((13, 0), None)       # no driver here: nothing to load it anyway
    with pytest.raises(PluginError, match=r'CUDA 12\.6 driver.*pip install "cuda-python>=12\.6,<13" '
                                          r'"nvidia-cuda-nvrtc-cu12==12\.6\.\*"'):
        ptx.check_driver_compatible((13, 0), 12060)
    with pytest.raises(PluginError, match=r'"cuda-python>=13,<14" "nvidia-cuda-nvrtc==13\.0\.\*"'):
        ptx.check_driver_compatible((13, 2), 13000)
    assert "-cu13" not in ptx.nvrtc_install_hint((13, 1))   # nvidia-cuda-nvrtc-cu13 is an empty placeholder


@pytest.mark.parametrize("nvrtc, nvcc, driver, chosen", [
    ((13, 0), (12, 6), 12060, "nvcc"),     # NVRTC too new for the driver: the nvcc it can load from
    ((13, 0), (13, 0), 13000, "nvrtc"),    # both fine: NVRTC first
    ((12, 6), None, 12080, "nvrtc"),
    ((13, 0), None, 12060, "error"),       # nothing the driver can load from: say what to install
    ((13, 0), (12, 9), 12060, "error"),
    (None, (12, 6), 12060, "nvcc"),
])
def test_compiler_choice_follows_the_driver(monkeypatch, nvrtc, nvcc, driver, chosen):
    monkeypatch.setattr(ptx, "nvrtc_version", lambda: nvrtc)
    monkeypatch.setattr(ptx, "nvcc_version", lambda: nvcc)
    monkeypatch.setattr(ptx, "driver_version", lambda: driver)
    used = []
    monkeypatch.setattr(ptx, "_nvrtc_compile", lambda h, a: used.append("nvrtc") or b".entry yolo_decode_nms(")
    monkeypatch.setattr(ptx, "_nvcc_compile", lambda h, a: used.append("nvcc") or b".entry yolo_decode_nms(")
    if chosen == "error":
        with pytest.raises(PluginError, match="cannot load, and no older compiler was found: pip install"):
            ptx.compile_ptx(CONFIG, use_cache=False)
    else:
        ptx.compile_ptx(CONFIG, use_cache=False)
        assert used == [chosen]


def test_arch_names():
    assert ptx.normalise_arch((8, 7)) == ptx.normalise_arch("sm_87") == ptx.normalise_arch("87") == "compute_87"
    with pytest.raises(PluginError, match="unknown GPU architecture"):
        ptx.normalise_arch("ampere")


def test_capacity_beyond_shared_memory_is_refused():
    big = PluginConfig.from_heads(yolov3_heads(80), (416, 416), [(13, 13), (26, 26), (52, 52)], conf=0.25, iou=0.45,
                                  max_det=100, pre_nms_top_k=3840)
    with pytest.raises(ValueError, match="shared memory"):
        ptx.compile_ptx(big, compiler="nvcc", check_driver=False)
