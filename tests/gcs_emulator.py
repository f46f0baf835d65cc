"""A local Google Cloud Storage for the tests: gcp-storage-emulator (a PyPI package) behind a TLS
proxy on 127.0.0.1, so that TensorFlow's own gs:// filesystem (tsl/platform/cloud) talks to it.

TensorFlow's GCS filesystem has no endpoint setting: gcs_file_system.cc sends metadata, listing,
copy and upload requests to https://www.googleapis.com/{storage,upload/storage}/v1/ and reads to
https://storage.googleapis.com/<bucket>/<object> (the constants kGcsUriBase, kGcsUploadUriBase,
kStorageHost). What it does read from the environment is enough to reach an emulator:
- HTTPS_PROXY: its libcurl sets no proxy of its own, so it tunnels every https request through
  a CONNECT to this proxy;
- CURL_CA_BUNDLE: the certificates its libcurl trusts (curl_http_request.cc): here a certificate
  authority made for the session, which signs the proxy's certificate for the two Google hosts;
- GOOGLE_AUTH_TOKEN_FOR_TESTING and NO_GCE_CHECK: a fixed bearer token and no metadata server
  (google_auth_provider.cc), so no request leaves for an OAuth server.
The proxy answers the CONNECT, presents that certificate and hands each request to the emulator
over plain HTTP. The emulator writes its resumable-upload session URL as http://<Host>/...; the
proxy rewrites it to https so that the upload goes through the proxy too.

`python tests/gcs_emulator.py DIR BUCKET` makes the certificates in DIR, starts both on free
ports of 127.0.0.1 with BUCKET created, prints one JSON line of the environment to use, and
serves until killed. `start(directory, bucket)` runs it in a subprocess (a context manager)."""
import contextlib
import datetime
import http.client
import http.server
import json
import logging
import os
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time

GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "expect",
              "content-length", "te", "upgrade"}


def available():
    """'' when the emulator and the certificate maker are installed, else why not."""
    import importlib.util
    missing = [name for name, module in (("gcp-storage-emulator", "gcp_storage_emulator"),
                                         ("cryptography", "cryptography"))
               if importlib.util.find_spec(module) is None]
    return f"not installed: {', '.join(missing)} (requirements.txt)" if missing else ""


def make_certificates(directory):
    """A certificate authority (ca.pem) and a certificate for GOOGLE_HOSTS that it signs
    (host.pem, host.key) in `directory`; returns their three paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, host_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tf_convgan test CA")])

    def certificate(subject, key, issuer_key, extensions):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=2)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    ca = certificate(ca_name, ca_key, ca_key, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                       key_agreement=False, encipher_only=False, decipher_only=False), True)])
    host = certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GOOGLE_HOSTS[0])]), host_key, ca_key,
        [(x509.SubjectAlternativeName([x509.DNSName(h) for h in GOOGLE_HOSTS]), False),
         (x509.BasicConstraints(ca=False, path_length=None), True)])
    paths = [os.path.join(directory, name) for name in ("ca.pem", "host.pem", "host.key")]
    pem = serialization.Encoding.PEM
    for path, data in zip(paths, [
            ca.public_bytes(pem), host.public_bytes(pem),
            host_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())]):
        with open(path, "wb") as f:
            f.write(data)
    return paths


class _Forwarder(http.server.BaseHTTPRequestHandler):
    """The requests inside one TLS tunnel, each sent on to the emulator."""
    protocol_version = "HTTP/1.1"  # keep-alive, and '100 Continue' for curl's Expect header

    def log_message(self, *args):
        pass

    def _body(self):
        """The request's body: chunked where it says so (TensorFlow's uploads send
        'Transfer-Encoding: chunked' beside a Content-Length; the chunking wins, RFC 9112 6.3),
        else Content-Length bytes."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length)

    def _forward(self):
        start = time.time()
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        else:
            body = None
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.emulator_port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() in HOP_BY_HOP or key.lower() in ("server", "date"):
                continue  # send_response wrote its own
            if key.lower() == "location" and value.startswith("http://"):
                value = "https://" + value[len("http://"):]
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        logging.getLogger("proxy").info("%s %s: %d, %d bytes in, %.3f s", self.command,
                                        self.path, response.status, len(body or b""),
                                        time.time() - start)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _forward


class _Proxy(http.server.BaseHTTPRequestHandler):
    """CONNECT to a Google host: the tunnel ends here, in TLS with the session's certificate."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_CONNECT(self):
        host = self.path.rsplit(":", 1)[0]
        if host not in GOOGLE_HOSTS:
            self.send_error(403, f"only {GOOGLE_HOSTS} go to the emulator")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        tunnel = self.server.tls.wrap_socket(self.connection, server_side=True)
        try:
            _Forwarder(tunnel, self.client_address, self.server)
        finally:
            with contextlib.suppress(OSError):
                tunnel.close()
        self.close_connection = True


class _ProxyServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _empty_media_uploads():
    """The emulator reads an empty request body as None and fails on an empty media upload,
    which is how TensorFlow makes a directory (an empty object 'name/'): give it b''."""
    from gcp_storage_emulator.handlers import objects
    upload = objects._media_upload

    def media_upload(request, response, storage):
        if request.data is None:
            request._data = b""
        return upload(request, response, storage)
    objects._media_upload = media_upload


def serve(directory, bucket):
    """Starts the emulator and the proxy (threads of this process); returns the environment for
    TensorFlow's gs:// filesystem to use them."""
    from gcp_storage_emulator.server import create_server
    ca, host_cert, host_key = make_certificates(directory)
    _empty_media_uploads()
    emulator_port = _free_port()
    create_server("127.0.0.1", emulator_port, in_memory=True, default_bucket=bucket).start()
    proxy = _ProxyServer(("127.0.0.1", 0), _Proxy)
    proxy.emulator_port = emulator_port
    proxy.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    proxy.tls.load_cert_chain(host_cert, host_key)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    return {"HTTPS_PROXY": f"http://127.0.0.1:{proxy.server_address[1]}",
            "CURL_CA_BUNDLE": ca, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
            "NO_GCE_CHECK": "true", "NO_PROXY": "", "no_proxy": "",
            "GCS_EMULATOR_PORT": str(emulator_port)}


class Emulator:
    """A started emulator: `env` (what TensorFlow needs to reach it), `bucket`, and what the
    emulator itself holds, read over plain HTTP past TensorFlow."""

    def __init__(self, env, bucket):
        self.env, self.bucket = env, bucket

    def _get(self, path):
        connection = http.client.HTTPConnection("127.0.0.1", int(self.env["GCS_EMULATOR_PORT"]),
                                                timeout=60)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def object_bytes(self, url):
        """The bytes of the object at gs://<bucket>/<name>, None where there is none."""
        import urllib.parse
        name = url[len(f"gs://{self.bucket}/"):]
        status, data = self._get(f"/download/storage/v1/b/{self.bucket}/o/"
                                 f"{urllib.parse.quote(name, safe='')}?alt=media")
        return data if status == 200 else None

    def names(self, url):
        """The names of every object under gs://<bucket>/<prefix> (sorted)."""
        import urllib.parse
        prefix = url[len(f"gs://{self.bucket}/"):]
        status, data = self._get(f"/storage/v1/b/{self.bucket}/o?prefix="
                                 f"{urllib.parse.quote(prefix, safe='')}")
        assert status == 200, data
        return sorted(item["name"] for item in json.loads(data).get("items", []))


@contextlib.contextmanager
def start(directory, bucket):
    """The emulator and its proxy in a subprocess; yields an Emulator (its `env`: the
    environment under which TensorFlow's gs://<bucket>/ reaches it). Killed on exit."""
    process = subprocess.Popen([sys.executable, os.path.abspath(__file__), str(directory), bucket],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the GCS emulator did not start: {process.stderr.read()[-2000:]}")
        yield Emulator(json.loads(line), bucket)
    finally:
        process.kill()
        process.wait()


if __name__ == "__main__":
    if os.environ.get("GCS_EMULATOR_LOG"):
        logging.basicConfig(level=logging.DEBUG, filename=os.environ["GCS_EMULATOR_LOG"],
                            format="%(asctime)s %(name)s %(message)s")
    else:
        logging.disable(logging.CRITICAL)  # the emulator logs every request
    # GCS_EMULATOR_LOG=FILE: every request of the emulator and of the proxy logged there.
    print(json.dumps(serve(sys.argv[1], sys.argv[2])), flush=True)
    while True:
        time.sleep(3600)
