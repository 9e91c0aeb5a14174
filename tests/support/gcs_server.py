"""A GCS JSON API on loopback for the tests: gcp-storage-emulator (pure Python, from PyPI) in its own process.

The service reaches it as it reaches Google Cloud Storage: pyarrow's GCS filesystem over HTTP,
pointed there by ``LIPSPLINE_GCS_ENDPOINT_URL`` (anonymous, as the emulator checks no credentials).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from tests.support.processes import Process, free_port, wait_for_http

PROJECT = "lipspline-test"


class GcsServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(self.port),
                "--in-memory"]
        self.process = Process(argv, dict(os.environ), workdir / "gcs.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GcsServer:
        self.process.start()
        wait_for_http(self.process, self.url + "/storage/v1/b", "the GCS emulator")
        return self

    def filesystem(self):
        """pyarrow's GCS filesystem on this emulator (the tests write their objects with it)."""
        import pyarrow.fs as pafs

        return pafs.GcsFileSystem(anonymous=True, endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
                                  project_id=PROJECT, retry_time_limit=timedelta(seconds=10))

    def service_env(self) -> dict[str, str]:
        return {"LIPSPLINE_GCS_ENDPOINT_URL": self.url, "LIPSPLINE_GCS_ANONYMOUS": "true",
                "GOOGLE_CLOUD_PROJECT": PROJECT}

    def stop(self) -> None:
        self.process.stop()


@contextmanager
def gcs_server(workdir: Path) -> Iterator[GcsServer]:
    server = GcsServer(workdir).start()
    try:
        yield server
    finally:
        server.stop()
