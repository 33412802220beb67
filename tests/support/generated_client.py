"""A Petstore client generated from the contract at test time, and the app served for it.

The client is made by openapi-python-client from docs/petstore.yaml into a temporary
folder and imported as it was generated: nothing in it is patched.
"""

from __future__ import annotations

import importlib
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "petstore.yaml"
# No post hooks: the generator would run ruff over its output, which the client
# does not need to work.
GENERATOR_CONFIG = "post_hooks: []\n"


@contextmanager
def generated_client(folder: Path, package: str = "petstore_client") -> Iterator[ModuleType]:
    """The client package generated from the contract into `folder`, importable while
    the context lasts."""
    config = folder / "openapi-python-client.yml"
    config.write_text(GENERATOR_CONFIG)
    command = [sys.executable, "-m", "openapi_python_client", "generate",
               "--path", str(CONTRACT), "--output-path", str(folder / package),
               "--meta", "none", "--config", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"generation failed:\n{result.stdout}\n{result.stderr}"
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(package)
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules
                     if name == package or name.startswith(f"{package}.")]:
            del sys.modules[name]


class KeepsUnderscoreHeaders(WSGIRequestHandler):
    """werkzeug's handler, passing on headers whose names hold an underscore.

    werkzeug's development server drops such headers, and with them the spec's `api_key`
    header; the system's own server keeps them (gunicorn's `--header-map dangerous`, in
    the Procfile and docker-compose.yml), and this maps them the same way.
    """

    def make_environ(self) -> dict:
        environ = super().make_environ()
        for name, value in self.headers.items():
            if "_" in name:
                key = f"HTTP_{name.upper().replace('-', '_')}"
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """The app over real HTTP on a free local port; yields the API's base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True,
                         request_handler=KeepsUnderscoreHeaders)
    thread = threading.Thread(target=server.serve_forever, name="petstore-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v2"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def tiny_png() -> bytes:
    """A valid 1x1 PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)  # 1x1, 8-bit RGBA
    pixels = zlib.compress(b"\x00\xff\x99\x00\xff")  # filter byte, one orange pixel
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))
