"""A real Azure Blob API on loopback for the tests: Azurite, Microsoft's storage emulator, in its own process.

Installed by ``make azurite`` (npm) under ``.tools/``. The service reaches it exactly as it reaches
Azure: pyarrow's Azure filesystem over HTTP, pointed there by ``LIPSPLINE_AZURE_BLOB_ENDPOINT_URL``,
with the emulator's well-known development account and key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import Process, free_port, wait_for_http
from tests.support.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("LIPSPLINE_TEST_AZURITE", ROOT / ".tools/azurite/node_modules/.bin/azurite-blob"))
#: Azurite's fixed development account (public, documented by Microsoft: not a secret)
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class Azurite:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        argv = [str(BINARY), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--inMemoryPersistence",
                "--skipApiVersionCheck", "--loose"]
        self.process = Process(argv, dict(os.environ), workdir / "azurite.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Azurite:
        self.process.start()
        # any HTTP answer (a 400 for this bare URL) means it listens
        wait_for_http(self.process, self.url, "azurite", timeout_s=60)
        return self

    def filesystem(self, account_key: str = ACCOUNT_KEY):
        """pyarrow's Azure filesystem on this emulator (the tests write their objects with it)."""
        import pyarrow.fs as pafs

        host = f"127.0.0.1:{self.port}"
        return pafs.AzureFileSystem(ACCOUNT, account_key=account_key, blob_storage_authority=host,
                                    blob_storage_scheme="http", dfs_storage_authority=host, dfs_storage_scheme="http")

    def service_env(self) -> dict[str, str]:
        """What a deployment needs to read az:// URIs here."""
        return {"LIPSPLINE_AZURE_BLOB_ENDPOINT_URL": self.url, "AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT,
                "AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY}

    def stop(self) -> None:
        # Azurite logs "successfully closed" at once on SIGTERM but its node process then lingers until
        # the 30 s default kill: it is in-memory, nothing is lost by killing it after a short grace
        self.process.stop(timeout_s=3)


@contextmanager
def azurite(workdir: Path) -> Iterator[Azurite]:
    if not BINARY.exists():
        unavailable(f"azurite is not installed at {BINARY} (make azurite)")
    server = Azurite(workdir).start()
    try:
        yield server
    finally:
        server.stop()
