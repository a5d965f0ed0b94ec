"""open_url against a local HTTP server: downloads, cache, Drive pages, retries, errors."""

import hashlib
import http.server
import os
import socket
import threading
import urllib.parse

import pytest

from dnnlib import util

PAYLOAD = os.urandom(200_000)
DRIVE_TOKEN = "t0k3n-AbC_9"


class _Handler(http.server.BaseHTTPRequestHandler):
    counts = {}           # path -> number of requests
    flaky_failures = 0    # /flaky answers 503 this many times first

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, body, content_type="application/octet-stream", status=200, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parsed = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        counts = type(self).counts
        counts[parsed.path] = counts.get(parsed.path, 0) + 1
        if parsed.path == "/files/data.bin":
            self._send(PAYLOAD)
        elif parsed.path == "/drive/uc":  # newer Drive: a form with hidden fields
            page = ('<html><head><title>Google Drive - Virus scan warning</title></head><body>'
                    '<form id="download-form" action="/drive/download" method="get">'
                    f'<input type="hidden" name="id" value="{query["id"]}">'
                    '<input type="hidden" name="export" value="download">'
                    f'<input type="hidden" name="confirm" value="{DRIVE_TOKEN}"></form></body></html>')
            self._send(page.encode(), "text/html; charset=utf-8")
        elif parsed.path == "/drive/download":
            if query.get("confirm") != DRIVE_TOKEN:
                self._send(b"bad token", "text/plain", status=403)
            else:
                self._send(PAYLOAD, headers=[("Content-Disposition", 'attachment; filename="net work.pkl"')])
        elif parsed.path == "/drive-cookie/uc":  # older Drive: a download_warning cookie
            if query.get("confirm") == DRIVE_TOKEN and "download_warning_x1" in self.headers.get("Cookie", ""):
                self._send(PAYLOAD)
            else:
                page = b"<html><title>Google Drive - Virus scan warning</title>Cannot scan this file.</html>"
                self._send(page, "text/html", headers=[("Set-Cookie", f"download_warning_x1={DRIVE_TOKEN}; Path=/")])
        elif parsed.path == "/drive-quota/uc":
            page = b"<html><title>Google Drive - Quota exceeded</title>Too many users have viewed or downloaded this file recently.</html>"
            self._send(page, "text/html")
        elif parsed.path == "/flaky.bin":
            if counts[parsed.path] <= type(self).flaky_failures:
                self._send(b"busy", "text/plain", status=503)
            else:
                self._send(PAYLOAD)
        elif parsed.path == "/broken.bin":  # promises the whole file, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send(b"not here", "text/plain", status=404)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(util, "_RETRY_BASE_DELAY", 0.01)
    _Handler.counts = {}
    _Handler.flaky_failures = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _cache_files(cache_dir):
    return sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []


def test_download_then_cache_hit(server, tmp_path):
    url = server + "/files/data.bin"
    with util.open_url(url, cache_dir=str(tmp_path), verbose=False) as f:
        assert f.read() == PAYLOAD
    name = hashlib.md5(url.encode()).hexdigest() + "_data.bin"
    assert _cache_files(tmp_path) == [name]
    path = util.open_url(url, cache_dir=str(tmp_path), verbose=False, return_filename=True)
    assert path == os.path.join(str(tmp_path), name)
    assert _Handler.counts["/files/data.bin"] == 1  # second call never reached the server


def test_env_var_sets_default_cache_dir(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    path = util.open_url(server + "/files/data.bin", verbose=False, return_filename=True)
    assert os.path.dirname(path) == str(tmp_path / "cache" / "downloads")


def test_drive_confirmation_form(server, tmp_path):
    url = server + "/drive/uc?id=abc123"
    path = util.open_url(url, cache_dir=str(tmp_path), verbose=False, return_filename=True)
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD
    assert path.endswith("_net_work.pkl")  # name from Content-Disposition, sanitised
    assert _Handler.counts == {"/drive/uc": 1, "/drive/download": 1}
    assert util.open_url(url, cache_dir=str(tmp_path), verbose=False, return_filename=True) == path
    assert _Handler.counts == {"/drive/uc": 1, "/drive/download": 1}


def test_drive_confirmation_cookie(server, tmp_path):
    with util.open_url(server + "/drive-cookie/uc?id=abc", cache_dir=str(tmp_path), verbose=False) as f:
        assert f.read() == PAYLOAD
    assert _Handler.counts["/drive-cookie/uc"] == 2


def test_drive_quota_page(server, tmp_path):
    url = server + "/drive-quota/uc?id=q"
    with pytest.raises(util.UserError, match="quota exceeded") as info:
        util.open_url(url, cache_dir=str(tmp_path), verbose=False)
    assert url in str(info.value) and str(tmp_path) in str(info.value)
    assert _Handler.counts["/drive-quota/uc"] == 1  # not retried
    assert _cache_files(tmp_path) == []


def test_404_is_a_user_error_without_retries(server, tmp_path):
    url = server + "/nope.pkl"
    with pytest.raises(util.UserError, match="HTTP 404") as info:
        util.open_url(url, cache_dir=str(tmp_path), verbose=False)
    assert url in str(info.value) and "\n" not in str(info.value)
    assert _Handler.counts["/nope.pkl"] == 1


def test_retries_until_success(server, tmp_path):
    _Handler.flaky_failures = 3
    with util.open_url(server + "/flaky.bin", cache_dir=str(tmp_path), num_attempts=5, verbose=False) as f:
        assert f.read() == PAYLOAD
    assert _Handler.counts["/flaky.bin"] == 4


def test_retries_exhausted(server, tmp_path):
    _Handler.flaky_failures = 10
    with pytest.raises(util.UserError, match="HTTP 503"):
        util.open_url(server + "/flaky.bin", cache_dir=str(tmp_path), num_attempts=3, verbose=False)
    assert _Handler.counts["/flaky.bin"] == 3
    assert _cache_files(tmp_path) == []


def test_broken_download_leaves_no_file(server, tmp_path):
    url = server + "/broken.bin"
    with pytest.raises(util.UserError) as info:
        util.open_url(url, cache_dir=str(tmp_path), num_attempts=2, verbose=False)
    assert url in str(info.value)
    assert _Handler.counts["/broken.bin"] == 2
    assert _cache_files(tmp_path) == []  # neither a final nor a temporary file


def test_md5_check(server, tmp_path):
    url = server + "/files/data.bin"
    wrong = "0" * 32
    with pytest.raises(util.UserError) as info:
        util.open_url(url, cache_dir=str(tmp_path), verbose=False, md5=wrong)
    message = str(info.value)
    assert url in message and wrong in message and hashlib.md5(PAYLOAD).hexdigest() in message
    assert _cache_files(tmp_path) == []
    good = hashlib.md5(PAYLOAD).hexdigest()
    with util.open_url(url, cache_dir=str(tmp_path), verbose=False, md5=good) as f:
        assert f.read() == PAYLOAD


def test_connection_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(util, "_RETRY_BASE_DELAY", 0.01)
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/models/net.pkl"
    with pytest.raises(util.UserError) as info:
        util.open_url(url, cache_dir=str(tmp_path), num_attempts=2, verbose=False)
    message = str(info.value)
    expected_path = os.path.join(str(tmp_path), hashlib.md5(url.encode()).hexdigest() + "_net.pkl")
    assert url in message and expected_path in message and "local path" in message
    assert "\n" not in message
    # Putting the file where the message says makes the same call work offline.
    with open(expected_path, "wb") as f:
        f.write(b"offline copy")
    with util.open_url(url, cache_dir=str(tmp_path), verbose=False) as f:
        assert f.read() == b"offline copy"


def test_local_paths_and_file_urls(tmp_path):
    path = tmp_path / "some file.bin"
    path.write_bytes(PAYLOAD)
    with util.open_url(str(path)) as f:
        assert f.read() == PAYLOAD
    assert util.open_url(str(path), return_filename=True) == str(path)
    file_url = path.as_uri()
    assert file_url.startswith("file://") and "%20" in file_url
    with util.open_url(file_url) as f:
        assert f.read() == PAYLOAD
    assert util.open_url(file_url, return_filename=True) == str(path)
    with pytest.raises(util.UserError, match="not found"):
        util.open_url(str(tmp_path / "missing.pkl"))


def test_is_url():
    assert util.is_url("https://example.com/a.pkl")
    assert util.is_url("http://127.0.0.1:8000/x")
    assert not util.is_url("file:///tmp/x")
    assert util.is_url("file:///tmp/x", allow_file_urls=True)
    assert not util.is_url("/tmp/x.pkl")
    assert not util.is_url("https://")
    assert not util.is_url(None)
