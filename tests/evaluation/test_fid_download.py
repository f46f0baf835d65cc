"""FID out of the box: the official graph downloaded on first use, verified, converted and cached
(tf_convgan.evaluation.weights.ensure_weights), against a local HTTP server on 127.0.0.1 serving
an inception-2015-12-05.tgz synthesised from the shared weights (tests/fid_graph.py); corrupted
downloads are refused and not cached; offline, one line says what to download and where to put
it."""
import hashlib
import http.server
import json
import os
import socket
import threading

import numpy as np
import pytest

from tf_convgan.evaluation import inception, weights
from fid_graph import archive_bytes, synthetic_graph_def, synthetic_softmax
from fid_helpers import FID_WEIGHTS, needs_weights

pytestmark = needs_weights


@pytest.fixture(scope="module")
def softmax():
    return synthetic_softmax()


@pytest.fixture(scope="module")
def pb_bytes(softmax):
    arrays, meta = weights.read_npz(FID_WEIGHTS)
    return synthetic_graph_def(arrays, meta, softmax=softmax).SerializeToString()


@pytest.fixture(scope="module")
def archive(pb_bytes):
    return archive_bytes(pb_bytes)


class _Server:
    """http.server in a thread on an ephemeral 127.0.0.1 port; `files` maps paths to bytes,
    `requests` counts the GETs per path."""

    def __init__(self):
        self.files, self.requests = {}, {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 30

            def do_GET(self):  # noqa: N802
                server.requests[self.path] = server.requests.get(self.path, 0) + 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory ($TF_CONVGAN_CACHE), no $TF_CONVGAN_FID_WEIGHTS."""
    monkeypatch.delenv(weights.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setenv(weights.CACHE_ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _closed_port_url():
    with socket.socket() as s:  # a port that was just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/models/{weights.GRAPH_ARCHIVE}"


def test_download_verifies_converts_and_caches(server, cache, archive, softmax):
    server.files["/inception-2015-12-05.tgz"] = archive
    url = server.url("/inception-2015-12-05.tgz")
    digest = hashlib.sha256(archive).hexdigest()
    path = weights.ensure_weights(url=url, archive_sha256=digest, verbose=False)
    assert server.requests == {"/inception-2015-12-05.tgz": 1}
    assert path == weights.cached_weights_path()
    assert os.path.dirname(path) == str(cache)
    assert os.path.basename(path) == (f"fid_inception_2015-12-05_"
                                      f"{weights.KNOWN_CONTENT_SHA256[:16]}.npz")
    arrays, meta = weights.read_npz(path)
    assert weights.pool3_content_sha256(arrays) == weights.KNOWN_CONTENT_SHA256
    np.testing.assert_array_equal(arrays["softmax.weights"], softmax[0])
    np.testing.assert_array_equal(arrays["softmax.biases"], softmax[1])
    assert sorted(os.listdir(cache)) == [os.path.basename(path)]  # no archive, no partial file

    # Second use: the cache, no request (also through the library's resolution, with logits).
    assert weights.ensure_weights(url=url, archive_sha256=digest, verbose=False) == path
    assert inception.resolve_weights_path(logits=True) == path
    assert inception.resolve_weights_path() == path
    assert server.requests == {"/inception-2015-12-05.tgz": 1}


def test_default_resolution_downloads_once_and_env_var_wins(server, cache, archive, monkeypatch,
                                                            tmp_path, capsys):
    """No argument, no $TF_CONVGAN_FID_WEIGHTS, no cache: the library downloads GRAPH_URL (here
    the local server) when the logits are needed (the ../shared file has none); the env var,
    when set, wins over the cache and never downloads."""
    server.files["/g.tgz"] = archive
    monkeypatch.setattr(weights, "GRAPH_URL", server.url("/g.tgz"))
    monkeypatch.setattr(weights, "GRAPH_ARCHIVE_SHA256", hashlib.sha256(archive).hexdigest())
    path = inception.resolve_weights_path(logits=True)
    assert path == weights.cached_weights_path() and server.requests == {"/g.tgz": 1}
    err = capsys.readouterr().err
    assert "Downloading the FID Inception graph" in err and "cached at" in err
    monkeypatch.setenv(weights.WEIGHTS_ENV_VAR, FID_WEIGHTS)
    assert inception.resolve_weights_path() == FID_WEIGHTS
    with pytest.raises(ValueError, match="no logits layer"):  # explicit, but without logits
        inception.resolve_weights_path(logits=True)
    monkeypatch.setenv(weights.WEIGHTS_ENV_VAR, str(tmp_path / "missing.npz"))
    with pytest.raises(FileNotFoundError, match="TF_CONVGAN_FID_WEIGHTS"):
        inception.resolve_weights_path(logits=True)
    assert server.requests == {"/g.tgz": 1}


def _flip(data, at):
    data = bytearray(data)
    data[at] ^= 0xFF
    return bytes(data)


def _refused(server, cache, body, archive_sha256, match):
    server.files["/bad.tgz"] = body
    with pytest.raises(weights.WeightsVerificationError, match=match) as e:
        weights.ensure_weights(url=server.url("/bad.tgz"), archive_sha256=archive_sha256,
                               verbose=False)
    message = str(e.value)
    assert "\n" not in message and "nothing was cached" in message
    assert not os.path.exists(weights.cached_weights_path())
    assert os.listdir(cache) == []  # neither weights nor the partial download
    return message


def test_corrupted_download_is_refused_and_not_cached(server, cache, archive, pb_bytes):
    digest = hashlib.sha256(archive).hexdigest()
    # With the archive's digest known: one flipped byte, or a truncated file.
    _refused(server, cache, _flip(archive, len(archive) // 2), digest,
             "is not that of the official")
    _refused(server, cache, archive[:len(archive) // 3], digest, "is not that of the official")
    # Without it (GRAPH_ARCHIVE_SHA256 is None): a truncated archive is unreadable, and weights
    # altered inside a well-formed archive fail the content digest of the converted weights.
    _refused(server, cache, archive[:len(archive) // 3], None, "not a readable")
    conv_weight = pb_bytes.index(b"conv/conv2d_params") + 200  # inside the first kernel's data
    _refused(server, cache, archive_bytes(_flip(pb_bytes, conv_weight)), None,
             "content digest .* is not that of the FID Inception weights")
    # The good archive still converts afterwards.
    server.files["/good.tgz"] = archive
    assert os.path.isfile(weights.ensure_weights(url=server.url("/good.tgz"), verbose=False))


def test_short_transfer_is_refused(cache, archive):
    """A server that announces more bytes than it sends (connection closed mid-way)."""
    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(archive)))
            self.end_headers()
            self.wfile.write(archive[:1000])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/x.tgz"
        with pytest.raises(weights.WeightsVerificationError, match="truncated|failed after"):
            weights.ensure_weights(url=url, verbose=False, timeout=10)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
    assert os.listdir(cache) == []


def test_offline_error_is_one_line_naming_the_file_and_where_to_put_it(cache, archive):
    url = _closed_port_url()
    with pytest.raises(weights.WeightsUnavailableError) as e:
        weights.ensure_weights(url=url, verbose=False, timeout=5)
    message = str(e.value)
    print(message)
    assert "\n" not in message
    placed = os.path.join(str(cache), weights.GRAPH_ARCHIVE)
    for part in (url, weights.GRAPH_ARCHIVE, placed, "TF_CONVGAN_FID_WEIGHTS"):
        assert part in message
    assert isinstance(e.value, FileNotFoundError)
    assert not os.path.exists(weights.cached_weights_path())
    # Doing what it says works without network: the placed archive is verified and converted
    # (and kept: it is the user's file).
    with open(placed, "wb") as f:
        f.write(archive)
    path = weights.ensure_weights(url=url, verbose=False, timeout=5)
    assert weights.file_has_logits(path) and os.path.isfile(placed)


def test_offline_evaluate_prints_one_line(cache, tmp_path, monkeypatch, capsys):
    """`evaluate --inception_score` without weights and without network: exit 2 and one line
    naming the flag, the URL, the file and where to place it (before any network is built)."""
    from fid_helpers import run_evaluate, write_folder

    url = _closed_port_url()
    monkeypatch.setattr(weights, "GRAPH_URL", url)
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), np.uint8)
    folder = write_folder(tmp_path / "images", images)
    status, out, err = run_evaluate(capsys, "--image_dir", folder, "--reference_dir", folder,
                                    "--inception_score", "--is_splits", "1")
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: --weights: ")
    assert url in lines[0] and os.path.join(str(cache), weights.GRAPH_ARCHIVE) in lines[0]


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(weights.CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_root() == str(tmp_path / "xdg" / "tf_convgan")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert weights.cache_root() == os.path.expanduser(os.path.join("~", ".cache", "tf_convgan"))
    monkeypatch.setenv(weights.CACHE_ENV_VAR, str(tmp_path / "c"))
    assert weights.cache_root() == str(tmp_path / "c")
    assert json.dumps(weights.cache_root(tmp_path / "d")) == json.dumps(str(tmp_path / "d"))
