"""cloudyeo.http: retries, redaction, auth errors and resumable downloads, all on loopback."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from cloudyeo.http import (
    AuthError,
    HttpClient,
    HttpError,
    IntegrityError,
    LoggingRetry,
    RetryPolicy,
    download,
    parse_retry_after,
    provenance_path,
    redact,
    redact_headers,
    register_secret,
)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Scripted loopback server.

    ``script[path]`` is a list of actions consumed one per request: an int status, a
    ``(status, headers)`` tuple, ``("slow", seconds)``, or ``("cut", nbytes)`` (send full
    headers, only ``nbytes`` of the body, then drop the connection). Without an action:
    ``/file`` serves PAYLOAD honouring Range, ``/norange`` ignores Range, anything else
    answers ``{"ok": true}``.
    """

    def __init__(self) -> None:
        self.script: dict[str, list[Any]] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                srv.seen.append((self.path, dict(self.headers)))
                queue = srv.script.get(path) or []
                action = queue.pop(0) if queue else None
                try:
                    if isinstance(action, tuple) and action[0] == "slow":
                        time.sleep(action[1])
                        action = None
                    if isinstance(action, tuple) and action[0] == "cut":
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(PAYLOAD)))
                        self.end_headers()
                        self.wfile.write(PAYLOAD[: action[1]])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    if action is not None:
                        status, headers = (action, {}) if isinstance(action, int) else action
                        echo = self.headers.get("Authorization", "")
                        self._send(status, f"denied, you sent {echo}".encode(), headers)
                        return
                    if path in ("/file", "/norange"):
                        rng = self.headers.get("Range")
                        if rng and path == "/file":
                            start = int(rng.split("=")[1].split("-")[0])
                            if start >= len(PAYLOAD):
                                self._send(416, b"", {"Content-Range": f"bytes */{len(PAYLOAD)}"})
                                return
                            self._send(206, PAYLOAD[start:], {
                                "Content-Range": f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"})
                            return
                        self._send(200, PAYLOAD, {"ETag": '"abc"'})
                        return
                    self._send(200, json.dumps({"ok": True}).encode(), {"Content-Type": "application/json"})
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.seen if p.split("?")[0] == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    try:
        yield s
    finally:
        s.close()


def fast_client(retries: int = 4, timeout: float = 5.0, sleeps: list[float] | None = None,
                **kw: Any) -> HttpClient:
    policy = RetryPolicy(max_retries=retries, backoff_base=0.01, backoff_max=0.05, timeout=timeout,
                         **{"max_total_sleep": 10.0, **kw})
    if sleeps is None:
        return HttpClient(policy)
    return HttpClient(policy, sleep=sleeps.append)


# ---------------------------------------------------------------------------------------
# redaction
# ---------------------------------------------------------------------------------------


def test_redact_urls_and_headers():
    url = ("https://acct.blob.core.windows.net/c/B02.tif?st=2024&se=2025&sp=rl&sv=2021&sr=c"
           "&skoid=abc&sig=AbC%2Fdef%3D")
    out = redact(url)
    assert "AbC" not in out and "sig=REDACTED" in out and "skoid=REDACTED" in out
    assert out.startswith("https://acct.blob.core.windows.net/c/B02.tif?st=2024")
    assert redact("http://user:pw@host/x?token=t0k&limit=5&skip=2") == \
        "http://REDACTED@host/x?token=REDACTED&limit=5&skip=2"
    assert "xyz" not in redact("GET /a?api_key=xyz&subscription-key=xyz")
    assert redact("Authorization: Bearer abc.def.ghi") == "Authorization: REDACTED"
    assert "abcdefgh" not in redact("{'Authorization': 'Bearer abcdefgh'}")
    assert "k3y" not in redact("Ocp-Apim-Subscription-Key: k3y-value")
    assert redact_headers({"Authorization": "Bearer x", "Accept": "json"}) == {
        "Authorization": "REDACTED", "Accept": "json"}
    register_secret("very-private-value-42")
    assert "very-private" not in redact("the body said very-private-value-42 twice")


def test_redact_keeps_the_words_around_a_secret():
    # Each secret goes, exactly; the neighbouring words stay.
    cases = {
        "Authorization: Bearer abc.def.ghi then the request failed":
            "Authorization: REDACTED then the request failed",
        "Ocp-Apim-Subscription-Key: k3y-value was refused by host":
            "Ocp-Apim-Subscription-Key: REDACTED was refused by host",
        "sent Bearer eyJhbGciOi.JIUzI1NiJ9.sig to the server":
            "sent Bearer REDACTED to the server",
        "GET https://h/a.tif?se=2025-01-01&sp=rl&sig=AbC%2F&x=1 failed: timeout":
            "GET https://h/a.tif?se=REDACTED&sp=REDACTED&sig=REDACTED&x=1 failed: timeout",
        "url http://alice:s3cret@host:8080/x?limit=5 is down":
            "url http://REDACTED@host:8080/x?limit=5 is down",
        "password=hunter2, then more words": "password=REDACTED, then more words",
        "(token=abc123) and access_token=xyz987 end": "(token=REDACTED) and access_token=REDACTED end",
        '{"access_token": "abc123", "expires_in": 300}': '{"access_token": "REDACTED", "expires_in": 300}',
        "X-Amz-Signature=f00d&X-Amz-Date=20240101 ok": "X-Amz-Signature=REDACTED&X-Amz-Date=20240101 ok",
    }
    for text, want in cases.items():
        assert redact(text) == want, text
    # Prose that merely mentions credentials is left alone.
    for text in ("the token expired; basic authentication failed; bearer tokens are used",
                 "exit code=3 while reading key=B04", "config key stac.url is missing",
                 "monkey=3 keyboard=us sig nature"):
        assert redact(text) == text
    # ... but the same short keys in a URL query are secrets.
    assert redact("https://h/cb?code=abc&key=zz&state=1") == "https://h/cb?code=REDACTED&key=REDACTED&state=1"


def test_handler_redaction_covers_every_logger_and_chained_tracebacks():
    import io

    from cloudyeo.http import install_handler_redaction

    stream = io.StringIO()
    logger = logging.getLogger("cloudyeo.test.handler_redaction")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger.addHandler(handler)
    try:
        install_handler_redaction(logger)
        install_handler_redaction(logger)  # idempotent
        href = "https://pc.blob.core.windows.net/c/B04.tif?st=1&sig=CHAINEDSECRET99"
        logger.warning("GDAL says %s", href)
        try:
            try:
                raise OSError(f"403 for {href}")
            except OSError as exc:
                raise RuntimeError("could not read B04") from exc
        except RuntimeError:
            logger.exception("product failed near %s", "B04")
        text = stream.getvalue()
        assert "CHAINEDSECRET99" not in text
        assert "GDAL says https://pc.blob.core.windows.net/c/B04.tif?st=1&sig=REDACTED" in text
        assert "OSError: 403 for https://pc.blob" in text and "direct cause" in text
        assert "product failed near B04" in text
    finally:
        logger.removeHandler(handler)


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 10) == 10.0


def test_full_jitter_backoff_is_bounded():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=8.0)
    delays = [policy.backoff(n) for n in range(1, 8) for _ in range(50)]
    assert min(delays) >= 0 and max(delays) <= 8.0
    assert max(policy.backoff(1) for _ in range(200)) <= 1.0
    assert policy.delay(3, retry_after=2.5) == 2.5
    assert RetryPolicy(retry_after_max=5).delay(1, retry_after=100) == 5


# ---------------------------------------------------------------------------------------
# retrying client
# ---------------------------------------------------------------------------------------


def test_recovers_from_429_503_and_honours_retry_after(server: Server, caplog):
    caplog.set_level(logging.WARNING, logger="cloudyeo")
    server.script["/json"] = [(429, {"Retry-After": "2"}), 503, (503, {"Retry-After": "0"}), 502]
    sleeps: list[float] = []
    client = fast_client(sleeps=sleeps, retry_after_max=60)
    assert client.get_json(server.url + "/json?token=SeCrEt99") == {"ok": True}
    assert server.count("/json") == 5
    assert sleeps[0] == 2.0 and sleeps[2] == 0.0  # Retry-After honoured
    assert all(0 <= s <= 0.05 for s in (sleeps[1], sleeps[3]))  # jittered backoff otherwise
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    assert all("token=REDACTED" in w and "SeCrEt99" not in w for w in warnings)
    assert "HTTP 429" in warnings[0] and "HTTP 503" in warnings[1]


def test_recovers_from_timeouts(server: Server, caplog):
    caplog.set_level(logging.WARNING, logger="cloudyeo")
    server.script["/json"] = [("slow", 1.0), ("slow", 1.0)]
    t0 = time.monotonic()
    assert fast_client(timeout=0.2).get_json(server.url + "/json") == {"ok": True}
    assert time.monotonic() - t0 < 2.0
    assert server.count("/json") == 3
    assert sum("Timeout" in r.getMessage() for r in caplog.records) == 2


def test_connection_refused_is_retried_then_fails(caplog):
    caplog.set_level(logging.WARNING, logger="cloudyeo")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HttpError, match="3 attempts"):
        fast_client(retries=2).get(f"http://127.0.0.1:{port}/x")
    assert sum("ConnectionError" in r.getMessage() for r in caplog.records) == 2


def test_attempts_are_bounded(server: Server):
    server.script["/json"] = [503] * 20
    with pytest.raises(HttpError) as info:
        fast_client(retries=3).get(server.url + "/json")
    assert info.value.status == 503
    assert server.count("/json") == 4


def test_total_sleep_is_bounded(server: Server):
    server.script["/json"] = [(503, {"Retry-After": "100"})] * 5
    sleeps: list[float] = []
    client = fast_client(sleeps=sleeps, retry_after_max=1000, max_total_sleep=30)
    with pytest.raises(HttpError):
        client.get(server.url + "/json")
    assert sleeps == [] and server.count("/json") == 1  # asked to wait longer than allowed


def test_other_client_errors_are_not_retried(server: Server):
    server.script["/json"] = [404]
    with pytest.raises(HttpError) as info:
        fast_client().get(server.url + "/json?sig=abcdef123")
    assert info.value.status == 404 and server.count("/json") == 1
    assert "abcdef123" not in str(info.value)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_error_names_env_var_and_never_the_token(server: Server, caplog, status: int):
    caplog.set_level(logging.DEBUG)
    token = f"tok-{status}-0123456789abcdef"
    server.script["/json"] = [status]
    client = HttpClient(RetryPolicy(max_retries=3), credential_env="MY_SERVICE_TOKEN",
                        headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(AuthError) as info:
        client.get(server.url + f"/json?access_token={token}")
    err = info.value
    assert "MY_SERVICE_TOKEN" in str(err) and str(status) in str(err)
    assert err.credential_env == "MY_SERVICE_TOKEN" and err.status == status
    assert token not in str(err) and token not in repr(err) and token not in (err.url or "")
    assert token not in caplog.text
    assert server.count("/json") == 1  # not retried
    assert err.__cause__ is None


# ---------------------------------------------------------------------------------------
# urllib3 retry (used under pystac-client)
# ---------------------------------------------------------------------------------------


def test_logging_retry_with_requests_adapter(server: Server, caplog):
    caplog.set_level(logging.WARNING)
    server.script["/json"] = [(429, {"Retry-After": "0"}), 500]
    retry = RetryPolicy(max_retries=3, backoff_base=0.01, backoff_max=0.02).urllib3_retry()
    assert isinstance(retry, LoggingRetry)
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(max_retries=retry))
    resp = session.get(server.url + "/json?key=hidden-KEY-1", timeout=5)
    assert resp.status_code == 200 and server.count("/json") == 3
    msgs = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(msgs) == 2 and all("key=REDACTED" in m for m in msgs)
    assert "hidden-KEY-1" not in caplog.text


# ---------------------------------------------------------------------------------------
# downloads
# ---------------------------------------------------------------------------------------


def test_download_resumes_after_interruption(server: Server, tmp_path: Path):
    server.script["/file"] = [("cut", 300_000)]
    dest = tmp_path / "sub" / "layer.tif"
    rec = download(server.url + "/file?sig=SIGSECRET123", dest, session=fast_client(),
                   expected_size=len(PAYLOAD), sha256=PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("layer.tif.part").exists()
    ranges = [h.get("Range") for p, h in server.seen if p.startswith("/file")]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1].split("=")[1].rstrip("-")) > 0  # continued, not restarted
    assert rec["size"] == len(PAYLOAD) and rec["sha256"] == PAYLOAD_SHA
    assert rec["verified"] == {"size": True, "sha256": True, "format": False}
    assert rec["declared_size"] == len(PAYLOAD)
    on_disk = json.loads(provenance_path(dest).read_text())
    assert on_disk == rec
    assert "SIGSECRET123" not in provenance_path(dest).read_text()
    assert "sig=REDACTED" in rec["url"] and rec["downloaded_at"].endswith("+00:00")


def test_download_continues_a_part_file_from_an_earlier_run(server: Server, tmp_path: Path):
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(PAYLOAD[:123_456])
    download(server.url + "/file", dest, session=fast_client())
    assert dest.read_bytes() == PAYLOAD
    assert server.seen[0][1]["Range"] == "bytes=123456-"
    # Already complete with a matching record: no request at all.
    n = len(server.seen)
    assert download(server.url + "/file", dest, session=fast_client(), sha256=PAYLOAD_SHA)["size"] == len(PAYLOAD)
    assert len(server.seen) == n


def test_download_restarts_when_range_is_ignored(server: Server, tmp_path: Path):
    dest = tmp_path / "g.bin"
    dest.with_name("g.bin.part").write_bytes(b"garbage" * 10)
    rec = download(server.url + "/norange", dest, session=fast_client(), sha256=PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD and rec["etag"] == '"abc"'


def test_download_complete_part_file_gets_416(server: Server, tmp_path: Path):
    dest = tmp_path / "h.bin"
    dest.with_name("h.bin.part").write_bytes(PAYLOAD)
    download(server.url + "/file", dest, session=fast_client())
    assert dest.read_bytes() == PAYLOAD


def test_download_verification_failure(server: Server, tmp_path: Path):
    dest = tmp_path / "bad.bin"
    with pytest.raises(IntegrityError, match="sha256"):
        download(server.url + "/file", dest, session=fast_client(), sha256="0" * 64)
    assert not dest.exists() and not dest.with_name("bad.bin.part").exists()
    with pytest.raises(IntegrityError, match="size"):
        download(server.url + "/norange", dest, session=fast_client(), expected_size=10)


def test_download_with_plain_session_and_503(server: Server, tmp_path: Path):
    server.script["/file"] = [(503, {"Retry-After": "0"})]
    rec = download(server.url + "/file", tmp_path / "p.bin", session=requests.Session())
    assert rec["size"] == len(PAYLOAD) and rec["retries"] == 1


def test_cut_bodies_and_unparsable_json_are_retried(server: Server, caplog):
    caplog.set_level(logging.WARNING, logger="cloudyeo.http")
    # Headers, 10 bytes of a longer body, dropped connection; then a 200 whose JSON is cut.
    server.script["/json"] = [("cut", 10), (200, {"Content-Type": "application/json"})]
    assert fast_client().get_json(server.url + "/json?token=T0KEN99") == {"ok": True}
    assert server.count("/json") == 3
    msgs = [r.getMessage() for r in caplog.records]
    assert any("ChunkedEncodingError" in m for m in msgs)
    assert any("truncated or invalid JSON" in m for m in msgs)
    assert not any("T0KEN99" in m for m in msgs)
    server.script["/json"] = [(200, {"Content-Type": "application/json"})] * 10
    with pytest.raises(HttpError, match="did not return JSON") as info:
        fast_client(retries=2).get_json(server.url + "/json?token=T0KEN99")
    assert "T0KEN99" not in str(info.value) and server.count("/json") == 6


def test_credentials_only_to_their_origin_redirects_included(server: Server):
    other = Server()
    try:
        key = "subscription-key-0123456789"
        client = HttpClient(RetryPolicy(max_retries=0), auth_origins=[server.url + "/api"],
                            headers={"Ocp-Apim-Subscription-Key": key, "Accept": "application/json"})
        assert client.get_json(server.url + "/json") == {"ok": True}
        server.script["/hop"] = [(302, {"Location": other.url + "/json"})]
        assert client.get_json(server.url + "/hop") == {"ok": True}
        assert [h.get("Ocp-Apim-Subscription-Key") for _, h in server.seen] == [key, key]
        (_, foreign), = other.seen
        assert "Ocp-Apim-Subscription-Key" not in foreign and foreign.get("Accept") == "application/json"
        assert key not in str(client.session.headers)
    finally:
        other.close()


def test_origin_helpers():
    from cloudyeo.http import ScopedCredentials, origin, same_origin

    assert origin("HTTPS://User:pw@Example.COM/a?b") == ("https", "example.com", 443)
    assert same_origin("https://h/x", "https://h:443/y") and not same_origin("https://h/", "http://h/")
    assert not same_origin("https://h/", "https://h:8443/") and not same_origin("https://h.evil/", "https://h/")
    creds = ScopedCredentials({"Authorization": "Bearer abcdefgh123"}, ["https://h"])
    assert creds.for_url("https://h/p") == {"Authorization": "Bearer abcdefgh123"}
    assert creds.for_url("https://other/p") == {} and not ScopedCredentials({}, ["https://h"])
    assert "abcdefgh123" not in repr(creds) and "abcdefgh123" not in redact("sent abcdefgh123")


def test_download_refetches_a_short_body_that_matches_its_content_length(server: Server, tmp_path: Path,
                                                                        caplog):
    caplog.set_level(logging.WARNING, logger="cloudyeo.http")
    # A 200 whose 17-byte body matches its Content-Length: complete as far as HTTP can tell.
    server.script["/file"] = [(200, {})]
    dest = tmp_path / "s.bin"
    rec = download(server.url + "/file", dest, session=fast_client(), sha256=PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD and rec["retries"] == 1 and server.count("/file") == 2
    assert any("s.bin failed verification (sha256" in r.getMessage() for r in caplog.records)
    # Without a checksum, a format check does the same job.
    def starts_like_payload(path: Path) -> None:
        with open(path, "rb") as fh:
            if fh.read(8) != PAYLOAD[:8]:
                raise IntegrityError("not the expected format")

    server.script["/norange"] = [(200, {})]
    rec = download(server.url + "/norange", tmp_path / "v.bin", session=fast_client(),
                   validate=starts_like_payload)
    assert (tmp_path / "v.bin").read_bytes() == PAYLOAD and rec["verified"]["format"]
    server.script["/norange"] = [(200, {})] * 10
    with pytest.raises(IntegrityError, match="w.bin: not the expected format"):
        download(server.url + "/norange", tmp_path / "w.bin", session=fast_client(retries=2),
                 validate=starts_like_payload)
    assert not (tmp_path / "w.bin").exists() and not (tmp_path / "w.bin.part").exists()


def test_download_refuses_a_resumed_body_with_another_declared_size(server: Server, tmp_path: Path,
                                                                    caplog):
    caplog.set_level(logging.WARNING, logger="cloudyeo.http")
    # 300 kB of a 1 MiB body, then the resume is answered with a (short) 200 of 17 bytes.
    server.script["/file"] = [("cut", 300_000), (200, {})]
    dest = tmp_path / "r.bin"
    rec = download(server.url + "/file", dest, session=fast_client())
    assert dest.read_bytes() == PAYLOAD and rec["declared_size"] == len(PAYLOAD)
    assert any(f"declared a size of 17 bytes, earlier {len(PAYLOAD)}" in r.getMessage()
               for r in caplog.records)


def test_download_refetches_a_file_changed_on_disk(server: Server, tmp_path: Path):
    dest = tmp_path / "c.bin"
    download(server.url + "/file", dest, session=fast_client())
    n = server.count("/file")
    data = bytearray(dest.read_bytes())
    data[1000] ^= 0xFF  # same size, different bytes
    dest.write_bytes(bytes(data))
    rec = download(server.url + "/file", dest, session=fast_client())
    assert server.count("/file") == n + 1 and dest.read_bytes() == PAYLOAD
    assert rec["sha256"] == PAYLOAD_SHA
