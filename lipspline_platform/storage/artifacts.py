"""The artifact store: model weights, training checkpoints and uploaded datasets as objects, not rows.

A PostgreSQL ``bytea`` stops at 1 GB and every row read copies its bytes through the
database; an object store does not. So bytes go to ``LIPSPLINE_ARTIFACT_STORE_URL`` and the
row keeps the object's URI (its sha256 and size stay in the row, and the weights' sha256 is
checked on every load, as before):

* ``s3://bucket/prefix`` (S3, MinIO; ``LIPSPLINE_S3_ENDPOINT_URL`` as for datasets) or
  ``file:///dir`` (a directory every API and worker process shares);
* unset, with the embedded SQLite database: ``artifacts/`` beside the database file, which
  every process of that deployment already shares;
* unset, with another database: the bytes stay in the database (the column they always had),
  because no directory is known to be shared by API and workers on different hosts.

Keys are ``{kind}/{id}`` (``weights/<model id>``, ``checkpoints/<job id>``,
``datasets/<dataset id>``): one object per row, replaced in place when a checkpoint moves on.
Local writes go to a temporary file renamed over the target, so a reader never sees half an
object.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lipspline_platform.settings import Settings
from lipspline_platform.storage.object_store import filesystem_for

log = logging.getLogger(__name__)


class ArtifactMissingError(RuntimeError):
    """A row names an artifact the store no longer holds."""


@dataclass(frozen=True)
class ArtifactStore:
    """Bytes by key under one root URI."""

    root: str
    filesystem: Any

    def uri(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    def _path(self, uri: str) -> str:
        parts = urlsplit(uri)
        return parts.path if parts.scheme == "file" else parts.netloc + parts.path

    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (replacing what was there); its URI."""
        uri = self.uri(key)
        path = self._path(uri)
        if urlsplit(uri).scheme == "file":
            folder = Path(path).parent
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            with self.filesystem.open_output_stream(path) as out:
                out.write(data)
        return uri

    def put_file(self, key: str, source: Any, chunk: int = 8 << 20) -> tuple[str, int, str]:
        """Copy a readable binary file object under ``key`` chunk by chunk: (URI, size, sha256).

        Memory holds one chunk, whatever the file's size: how a large upload reaches the store.
        """
        digest, size = hashlib.sha256(), 0
        uri = self.uri(key)
        path = self._path(uri)
        local = urlsplit(uri).scheme == "file"
        if local:
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=".part-")
            out: Any = os.fdopen(fd, "wb")
        else:
            tmp, out = "", self.filesystem.open_output_stream(path)
        try:
            with out:
                while block := source.read(chunk):
                    digest.update(block)
                    size += len(block)
                    out.write(block)
            if local:
                os.replace(tmp, path)
        finally:
            if local and os.path.exists(tmp):
                os.unlink(tmp)
        return uri, size, digest.hexdigest()

    def path_of(self, uri: str) -> str:
        """The object's path on :attr:`filesystem` (what pyarrow reads)."""
        return self._path(uri)

    def key_of(self, uri: str) -> str:
        """``uri`` relative to the store's root: how an object is named to a tenant (the root, a
        server path on the embedded default, is the operator's business)."""
        root = self.root.rstrip("/") + "/"
        return uri[len(root):] if uri.startswith(root) else uri.rsplit("/", 1)[-1]

    def get(self, uri: str) -> bytes:
        try:
            with self.filesystem.open_input_stream(self._path(uri)) as stream:
                return stream.read()
        except (FileNotFoundError, OSError) as exc:
            log.warning("artifact %s cannot be read: %s", uri, exc)  # the details, for the operator's log
            reason = "it is missing" if isinstance(exc, FileNotFoundError) else type(exc).__name__
            raise ArtifactMissingError(f"stored object {self.key_of(uri)} cannot be read ({reason})") from exc

    def delete(self, uri: str) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):  # already gone: deleting is idempotent
            self.filesystem.delete_file(self._path(uri))


def root_for(settings: Settings, database_url: str | None = None) -> str | None:
    """The store's root URI for this configuration, or None when bytes stay in the database.

    ``database_url`` (default: the settings') decides where an embedded store lies: beside
    the SQLite file every process of the deployment opens.
    """
    if settings.artifact_store_url:
        return settings.artifact_store_url
    url = database_url or settings.resolved_database_url
    if url.startswith("sqlite:///"):
        return "file://" + str(Path(url.removeprefix("sqlite:///")).resolve().parent / "artifacts")
    return None


def store_for(settings: Settings, database_url: str | None = None) -> ArtifactStore | None:
    root = root_for(settings, database_url)
    if root is None:
        return None
    return ArtifactStore(root, filesystem_for(urlsplit(root).scheme.lower() or "file", settings))


def read(settings: Settings, inline: bytes | None, uri: str | None) -> bytes:
    """A row's bytes: from the store when it names an object, else the column's own."""
    if uri is None:
        if inline is None:
            raise ArtifactMissingError("the row holds neither bytes nor an artifact URI")
        return inline
    store = store_for(settings)
    if store is None:  # the row was written by a process configured with a store: open its root
        store = ArtifactStore(uri, filesystem_for(urlsplit(uri).scheme.lower(), settings))
    return store.get(uri)
