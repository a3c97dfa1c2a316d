"""Tests for keras_unets.data.download against a real HTTP server on 127.0.0.1.

The server serves synthetic volumes in the ISBI 2012 shape
(``synthetic_isbi_full_dir``), not the official files, so the expected blob
ids are computed from the served files and injected with ``expected=``, and
where a test needs "the known pixels" the table of pixel hashes is patched to
the served volumes' (``known_pixels``). The checks of the real files
(``ISBI2012_DIR``) are at the end.
"""
import hashlib
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from click.testing import CliRunner

from keras_unets.data import download as dl
from keras_unets.cli import main as cli_main
from keras_unets.data import PIXEL_SHA256, VOLUME_FILES, load_isbi2012, pixel_sha256
from keras_unets.data.download import (
    OFFICIAL_BLOB_IDS,
    DownloadError,
    check_data_dir,
    download_isbi2012,
    git_blob_id,
)

NAMES = tuple(VOLUME_FILES.values())


# ---------------------------------------------------------------------------
# git blob ids
# ---------------------------------------------------------------------------


def test_git_blob_id_hand_values(tmp_path):
    # Well-known ids: the empty blob, and `echo hello | git hash-object --stdin`.
    assert git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    # Definition: sha1(b"blob <size>\0" + data), for bytes and for a file.
    data = bytes(range(256)) * 3
    (tmp_path / "f").write_bytes(data)
    want = hashlib.sha1(b"blob 768\x00" + data).hexdigest()
    assert git_blob_id(data) == git_blob_id(tmp_path / "f") == want


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_blob_id_matches_git_hash_object(synthetic_isbi_dir):
    path = synthetic_isbi_dir / "train-labels.tif"
    out = subprocess.run(
        ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
    )
    assert git_blob_id(path) == out.stdout.strip()


# ---------------------------------------------------------------------------
# a local mirror server
# ---------------------------------------------------------------------------


class _Server:
    """Routes: /good/<f>, /corrupt/<f> (one byte flipped), /missing/<f> (404),
    /truncated/<f> (Content-Length of the full file, half the body, close),
    /stall/<f> (1000 bytes, then 2 s of silence)."""

    def __init__(self, files):
        self.files = files
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                server.requests.append(self.path)
                _, mode, name = self.path.split("/", 2)
                body = server.files.get(name)
                if mode == "missing" or body is None:
                    self.send_error(404, "Not Found")
                    return
                if mode == "corrupt":
                    body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "stall":  # headers and a little data, then silence
                    self.wfile.write(body[:1000])
                    self.wfile.flush()
                    time.sleep(2.0)
                    return
                if mode == "truncated":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, mode):
        return f"http://127.0.0.1:{self.port}/{mode}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def served(synthetic_isbi_full_dir):
    files = {name: (synthetic_isbi_full_dir / name).read_bytes() for name in NAMES}
    server = _Server(files)
    yield server
    server.close()


@pytest.fixture
def server(served, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    served.requests.clear()
    return served


@pytest.fixture(scope="module")
def expected(synthetic_isbi_full_dir):
    return {name: git_blob_id(synthetic_isbi_full_dir / name) for name in NAMES}


@pytest.fixture(scope="module")
def served_pixels(synthetic_isbi_full_dir):
    data = load_isbi2012(synthetic_isbi_full_dir)
    return {key: pixel_sha256(getattr(data, key)) for key in PIXEL_SHA256}


@pytest.fixture
def known_pixels(served_pixels, monkeypatch):
    """The served volumes' pixel hashes in place of the published ones."""
    for key, digest in served_pixels.items():
        monkeypatch.setitem(PIXEL_SHA256, key, digest)
    return PIXEL_SHA256


def _listing(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------
# download scenarios
# ---------------------------------------------------------------------------


def test_download_good_mirror_gives_verified_data(server, expected, known_pixels, tmp_path):
    dest = download_isbi2012(
        tmp_path / "isbi", mirrors=[server.url("good")], expected=expected,
        progress=False, timeout=10,
    )
    assert _listing(dest) == sorted(NAMES)  # no temporary files left
    for name in NAMES:
        assert git_blob_id(dest / name) == expected[name]
    data = load_isbi2012(dest)
    for key in PIXEL_SHA256:
        assert pixel_sha256(getattr(data, key)) == PIXEL_SHA256[key]
    assert check_data_dir(dest)["ok"]


def test_404_falls_back_to_next_mirror(server, expected, tmp_path):
    name = "train-labels.tif"
    download_isbi2012(
        tmp_path, mirrors=[server.url("missing"), server.url("good")],
        expected=expected, files=[name], progress=False, timeout=10,
    )
    assert server.requests == [f"/missing/{name}", f"/good/{name}"]
    assert git_blob_id(tmp_path / name) == expected[name]


def test_corrupt_file_is_rejected_and_nothing_is_left(server, expected, tmp_path):
    name = "test-volume.tif"
    with pytest.raises(DownloadError) as info:
        download_isbi2012(
            tmp_path / "d", mirrors=[server.url("corrupt")], expected=expected,
            files=[name], progress=False, timeout=10,
        )
    msg = str(info.value)
    assert "wrong content" in msg and expected[name] in msg
    assert _listing(tmp_path / "d") == []
    # With a good mirror after it, the corrupt one is skipped.
    download_isbi2012(
        tmp_path / "d", mirrors=[server.url("corrupt"), server.url("good")],
        expected=expected, files=[name], progress=False, timeout=10,
    )
    assert server.requests[-2:] == [f"/corrupt/{name}", f"/good/{name}"]
    assert _listing(tmp_path / "d") == [name]
    assert git_blob_id(tmp_path / "d" / name) == expected[name]


def test_interrupted_transfer_leaves_nothing_and_tries_next(server, expected, tmp_path):
    name = "train-volume.tif"
    size = len(server.files[name])
    with pytest.raises(DownloadError, match=f"interrupted after {size // 2} of {size} bytes"):
        download_isbi2012(
            tmp_path, mirrors=[server.url("truncated")], expected=expected,
            files=[name], progress=False, timeout=10,
        )
    assert _listing(tmp_path) == []
    download_isbi2012(
        tmp_path, mirrors=[server.url("truncated"), server.url("good")],
        expected=expected, files=[name], progress=False, timeout=10,
    )
    assert server.requests[-2:] == [f"/truncated/{name}", f"/good/{name}"]
    assert _listing(tmp_path) == [name]


def test_stalled_server_times_out_and_next_mirror_is_used(server, expected, tmp_path):
    name = "train-labels.tif"
    start = time.monotonic()
    download_isbi2012(
        tmp_path, mirrors=[server.url("stall"), server.url("good")],
        expected=expected, files=[name], progress=False, timeout=0.5,
    )
    assert time.monotonic() - start < 2.0  # gave up on the stalled mirror early
    assert server.requests == [f"/stall/{name}", f"/good/{name}"]
    assert _listing(tmp_path) == [name]
    with pytest.raises(DownloadError, match="timed out"):
        download_isbi2012(
            tmp_path / "t", mirrors=[server.url("stall")], expected=expected,
            files=[name], progress=False, timeout=0.5,
        )
    assert _listing(tmp_path / "t") == []


def test_existing_verified_file_is_not_downloaded_again(server, expected, known_pixels,
                                                        tmp_path):
    name = "train-labels.tif"
    (tmp_path / name).write_bytes(server.files[name])
    download_isbi2012(
        tmp_path, mirrors=[server.url("good")], expected=expected, files=[name],
        progress=False, timeout=10,
    )
    assert server.requests == []
    # A re-encoded copy with the known pixels is also kept (official ids here).
    download_isbi2012(
        tmp_path, mirrors=[server.url("good")], files=[name], progress=False, timeout=10,
    )
    assert server.requests == []


def test_failed_download_keeps_the_previous_file(server, expected, tmp_path):
    name = "train-labels.tif"
    old = b"an old, wrong file"
    (tmp_path / name).write_bytes(old)
    with pytest.raises(DownloadError):
        download_isbi2012(
            tmp_path, mirrors=[server.url("truncated"), server.url("corrupt")],
            expected=expected, files=[name], progress=False, timeout=10,
        )
    assert (tmp_path / name).read_bytes() == old
    assert _listing(tmp_path) == [name]
    download_isbi2012(
        tmp_path, mirrors=[server.url("good")], expected=expected, files=[name],
        progress=False, timeout=10,
    )
    assert git_blob_id(tmp_path / name) == expected[name]


def test_official_ids_reject_other_files(server, tmp_path):
    # The served TIFFs are not the official bytes: the default table refuses them.
    name = "test-volume.tif"
    with pytest.raises(DownloadError, match=OFFICIAL_BLOB_IDS[name]):
        download_isbi2012(
            tmp_path, mirrors=[server.url("good")], files=[name], progress=False,
            timeout=10,
        )
    assert _listing(tmp_path) == []


def test_offline_error_says_where_to_put_the_files(tmp_path, monkeypatch):
    # A port with nothing listening: connection refused, like being offline.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    mirror = f"http://127.0.0.1:{port}/x/"
    with pytest.raises(DownloadError) as info:
        download_isbi2012(tmp_path / "dest", mirrors=[mirror], progress=False, timeout=5)
    msg = str(info.value)
    assert "cannot connect" in msg and "are you offline?" in msg
    for name in NAMES:
        assert str(tmp_path / "dest" / name) in msg
        assert f"{mirror}{name}" in msg
    assert _listing(tmp_path / "dest") == []


def test_mirrors_from_environment_and_validation(server, expected, tmp_path, monkeypatch):
    monkeypatch.setenv(dl.MIRRORS_ENV_VAR, f"{server.url('missing')}, {server.url('good')}")
    download_isbi2012(
        tmp_path, expected=expected, files=["test-volume.tif"], progress=False, timeout=10,
    )
    assert server.requests == ["/missing/test-volume.tif", "/good/test-volume.tif"]
    with pytest.raises(ValueError, match="http:// or https://"):
        download_isbi2012(tmp_path, mirrors=["file:///etc/"], progress=False)
    with pytest.raises(ValueError, match="No expected blob id"):
        download_isbi2012(tmp_path, mirrors=[server.url("good")], files=["x.tif"])


def test_default_destination_is_isbi2012_dir(server, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("ISBI2012_DIR", str(tmp_path / "env"))
    dest = download_isbi2012(
        mirrors=[server.url("good")], expected=expected, files=["train-labels.tif"],
        progress=False, timeout=10,
    )
    assert dest == tmp_path / "env"
    assert _listing(dest) == ["train-labels.tif"]


# ---------------------------------------------------------------------------
# check_data_dir and the CLI
# ---------------------------------------------------------------------------


@pytest.mark.real_isbi("checks their pixel hashes, bytes and cell fraction")
def test_check_data_dir_on_the_shared_copy(isbi_dir):
    report = check_data_dir(isbi_dir)
    assert report["ok"] and report["errors"] == [] and report["layout"] == "tiff"
    for layout in ("tiff", "png"):
        for key, vol in report["volumes"][layout].items():
            assert vol["shape"] == [30, 512, 512] and vol["dtype"] == "uint8"
            assert vol["pixel_sha256"] == PIXEL_SHA256[key]
            assert vol["pixels_match"]
    tiff = report["volumes"]["tiff"]
    # README: same pixels as the official files, different bytes.
    assert not any(v["official_bytes"] for v in tiff.values())
    assert tiff["train_labels"]["cell_fraction"] == pytest.approx(1 - 0.2196, abs=5e-5)


def test_check_data_dir_reports_problems(tmp_path):
    from keras_unets.data import write_stack

    write_stack(tmp_path / "train-volume.tif", np.zeros((3, 8, 8), np.uint8))
    labels = np.zeros((2, 8, 8), np.uint8)
    labels[0, 0, 0] = 3
    write_stack(tmp_path / "train-labels.tif", labels)
    report = check_data_dir(tmp_path)
    assert not report["ok"] and report["layout"] is None
    text = "\n".join(report["errors"])
    assert f"{tmp_path / 'test-volume.tif'}: missing" in text
    assert "train-volume.tif: expected 30 slices of 512 x 512 px" in text
    assert "Received values: 0, 3" in text
    assert "2 label slices" in text and "3 image slices" in text
    assert not check_data_dir(tmp_path / "nope")["ok"]


@pytest.mark.real_isbi("checks that their pixel hashes are printed as known")
def test_cli_check(isbi_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli_main, ["data", "check", str(isbi_dir)])
    assert result.exit_code == 0, result.output
    for digest in PIXEL_SHA256.values():
        assert digest in result.output
    assert "matches known pixels" in result.output and "OK" in result.output
    result = runner.invoke(cli_main, ["data", "check", "--json", str(tmp_path)])
    assert result.exit_code == 1
    assert '"ok": false' in result.output


def test_cli_download(server, expected, tmp_path, monkeypatch):
    runner = CliRunner()
    dest = tmp_path / "cli"
    result = runner.invoke(
        cli_main,
        ["data", "download", "--dest", str(dest), "--mirror", server.url("missing"),
         "--timeout", "10", "--no-progress"],
    )
    assert result.exit_code == 1
    assert "HTTP 404" in result.output and str(dest / "train-volume.tif") in result.output
    # With the expected ids of the served files, the same command succeeds.
    for name in NAMES:
        monkeypatch.setitem(dl.OFFICIAL_BLOB_IDS, name, expected[name])
    result = runner.invoke(
        cli_main,
        ["data", "download", "--dest", str(dest), "--mirror", server.url("missing"),
         "--mirror", server.url("good"), "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert f"ISBI 2012 data ready in {dest}" in result.output
    assert _listing(dest) == sorted(NAMES)
