"""Real services on loopback shared by the archive and dataset tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests


def rustac_executable() -> str | None:
    exe = Path(sys.executable).with_name("rustac")
    return str(exe) if exe.exists() else shutil.which("rustac")


@contextmanager
def rustac_serving(port: int, collections: Sequence[str], items: Path, log_path: Path,
                   wait_s: float = 30.0) -> Iterator[str]:
    """``rustac serve`` (a real STAC API, in-memory backend) on 127.0.0.1:``port``; yields its URL.

    Skips the test when rustac is not installed; stops the server on exit.
    """
    exe = rustac_executable()
    if exe is None:
        pytest.skip("rustac is not installed (pip install rustac)")
    with open(log_path, "wb") as log_fh:
        proc = subprocess.Popen([exe, "serve", "--addr", f"127.0.0.1:{port}", *collections, str(items)],
                                stdout=log_fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rustac serve exited: {log_path.read_text()}")
            try:
                if requests.get(url + "/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"rustac serve did not answer: {log_path.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def ee_invocations(expression: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every function call of a serialized Earth Engine expression as (name, {argument: constant | name})."""
    values = expression["values"]
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if "valueReference" in node:
            return walk(values[node["valueReference"]])
        if "constantValue" in node:
            return node["constantValue"]
        if "functionInvocationValue" in node:
            inv = node["functionInvocationValue"]
            args = {k: walk(v) for k, v in inv.get("arguments", {}).items()}
            found.append((inv["functionName"], args))
            return inv["functionName"]
        if "arrayValue" in node:
            return [walk(v) for v in node["arrayValue"]["values"]]
        if "dictionaryValue" in node:
            return {k: walk(v) for k, v in node["dictionaryValue"]["values"].items()}
        return node

    walk(values[expression["result"]])
    return found
