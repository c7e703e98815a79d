"""cloudyeo.cli: logging setup. Secrets never reach a log, whichever logger or traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SIG = "sv=2021&sig=Zm9vYmFyU0VDUkVUc2lnbmF0dXJl%3D"
SECRET = "Zm9vYmFyU0VDUkVUc2lnbmF0dXJl"

# Run in a fresh interpreter: configure_logging() changes process-wide state (root handlers,
# sys.excepthook, warnings capture), exactly as `cloudyeo <stage> <verb>` does.
SCRIPT = textwrap.dedent(
    """
    import logging, threading, warnings
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import rasterio
    from cloudyeo.cli import configure_logging
    from cloudyeo.http import redact

    class Deny(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass
        def _deny(self):
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
        do_GET = do_HEAD = _deny

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    href = f"http://127.0.0.1:{httpd.server_address[1]}/B04.tif?SIGNED"

    configure_logging(logging.DEBUG)
    # GDAL's own messages, relayed by rasterio's error handler (logger rasterio._err etc.)
    with rasterio.Env(CPL_DEBUG="ON", GDAL_HTTP_MAX_RETRY="0", CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif"):
        try:
            rasterio.open("/vsicurl/" + href)
        except rasterio.errors.RasterioError as exc:
            gdal_error = exc
    # third-party loggers that print the URL with %-args, and warnings
    logging.getLogger("rasterio._err").error("CPLE_HttpResponse: %s", href)
    logging.getLogger("some.library").warning("fetching %s", href)
    warnings.warn(f"odd raster at {href}")
    logging.getLogger("cloudyeo.x").info("header Authorization: Bearer Tok3nVALUE123 sent; done")
    # a logged exception whose chained cause carries the raw message
    try:
        try:
            raise OSError(f"HTTP 403 for {href}")
        except OSError as inner:
            raise RuntimeError(f"cannot read B04 from {redact(href)}") from inner
    except RuntimeError:
        logging.getLogger("cloudyeo.datasets").exception("product failed")
    # an uncaught one in a worker thread (printed by threading.excepthook)
    def worker():
        raise RuntimeError(f"thread could not read {href}")
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    # and an uncaught one, chained to GDAL's error (printed by sys.excepthook)
    raise RuntimeError(f"cannot read B04 from {redact(href)}") from gdal_error
    """
).replace("SIGNED", SIG)


def test_no_signed_url_in_the_log_whatever_the_logger():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    log = proc.stderr
    assert proc.returncode == 1, log  # the uncaught error still fails the process
    assert SECRET not in log and "Tok3nVALUE123" not in log, log
    # ... while everything around the secrets is still there
    assert "sig=REDACTED" in log
    assert "fetching http://127.0.0.1:" in log and "/B04.tif?sv=2021&sig=REDACTED" in log
    assert "CPLE_HttpResponse: http://" in log and "odd raster at http://" in log
    assert "header Authorization: REDACTED sent; done" in log
    assert "product failed" in log and "OSError: HTTP 403 for http://" in log
    assert "The above exception was the direct cause" in log  # the chain is shown, redacted
    assert "RuntimeError: cannot read B04 from http://" in log
    assert "rasterio" in log  # GDAL's own error made it into the log (redacted)
    assert "RuntimeError: thread could not read http://" in log


def test_a_process_without_logging_setup_still_redacts():
    # No configure_logging(): Python's handler of last resort prints warnings; importing
    # cloudyeo.http makes it redact them.
    code = ("import logging, cloudyeo.http\n"
            f"logging.getLogger('rasterio._err').warning('GDAL: cannot open %s', 'https://h/B04.tif?{SIG}')\n"
            f"logging.getLogger('any.other').error('HTTP 403 for https://h/B04.tif?{SIG} (retrying)')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stderr
    assert "GDAL: cannot open https://h/B04.tif?sv=2021&sig=REDACTED" in proc.stderr
    assert "HTTP 403 for https://h/B04.tif?sv=2021&sig=REDACTED (retrying)" in proc.stderr
