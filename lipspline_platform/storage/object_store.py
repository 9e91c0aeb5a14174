"""Dataset URIs -> a pyarrow filesystem and the object paths they name.

Accepted forms (``*``, ``?`` and ``[…]`` only in the last segment; a trailing ``/`` means
every ``.parquet`` object under that prefix):

* ``s3://bucket/prefix/*.parquet``: S3, or an S3-compatible store at ``LIPSPLINE_S3_ENDPOINT_URL``
  (MinIO; the tests' moto server). Credentials are the tenant's own when it stored some
  (``S3CredentialsIn``, opened by ``storage/credentials.py``), else the process environment's
  (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an instance role); never from
  the dataset request and never stored with the dataset.
* ``gs://bucket/…`` (Google Cloud Storage; ``LIPSPLINE_GCS_ENDPOINT_URL`` for an emulator) and
  ``az://container/…`` / ``abfs://…`` (Azure Blob), through pyarrow's own filesystems, with their
  environment credentials (Azure: the account ``AZURE_STORAGE_ACCOUNT_NAME`` and its key
  ``AZURE_STORAGE_ACCOUNT_KEY``, else Azure's default credential chain;
  ``LIPSPLINE_AZURE_BLOB_ENDPOINT_URL`` for another endpoint, e.g. Azurite).
* ``file:///path/…``: only under a directory listed in ``LIPSPLINE_DATASET_FILE_ROOTS`` (a
  shared filesystem mounted into every worker): a tenant may not read the server's own files.

Every refusal is a :class:`UriRefusedError` whose message names the URI's problem in the tenant's
terms (no object matches, the store refused the credentials, a scheme not served), and never
a server path outside the URI itself.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from api_schemas.dataset_refs import S3CredentialsIn
from lipspline_platform.settings import Settings

SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "file")
_GLOB = set("*?[")


class UriRefusedError(ValueError):
    """A dataset URI that names nothing readable; the message is safe to show the tenant."""


@dataclass(frozen=True)
class ObjectSet:
    """The objects a URI names, and the filesystem that reads them."""

    uri: str
    filesystem: Any
    paths: list[str]


def _s3(settings: Settings, keys: S3CredentialsIn | None) -> Any:
    import pyarrow.fs as pafs

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    options: dict[str, Any] = {
        "region": (keys.region if keys is not None else None) or region,
        "connect_timeout": 10,
        "request_timeout": 30,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
    }
    if settings.s3_endpoint_url:
        endpoint = urlsplit(settings.s3_endpoint_url)
        options.update(endpoint_override=endpoint.netloc or endpoint.path, scheme=endpoint.scheme or "https")
    if keys is not None:
        options.update(access_key=keys.access_key_id, secret_key=keys.secret_access_key,
                       session_token=keys.session_token or "")
    return pafs.S3FileSystem(**options)


def _gcs(settings: Settings) -> Any:
    import pyarrow.fs as pafs

    options: dict[str, Any] = {"anonymous": settings.gcs_anonymous,
                               "retry_time_limit": timedelta(seconds=30)}  # a refusal is an answer, not a retry loop
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    if project:
        options["project_id"] = project
    if settings.gcs_endpoint_url:
        endpoint = urlsplit(settings.gcs_endpoint_url)
        options.update(endpoint_override=endpoint.netloc or endpoint.path, scheme=endpoint.scheme or "https")
    return pafs.GcsFileSystem(**options)


def _azure(settings: Settings) -> Any:
    import pyarrow.fs as pafs

    account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME") or os.environ.get("AZURE_STORAGE_ACCOUNT")
    if not account:
        raise UriRefusedError("az:// URIs need AZURE_STORAGE_ACCOUNT_NAME in the service's environment")
    options: dict[str, Any] = {}
    key = os.environ.get("AZURE_STORAGE_ACCOUNT_KEY") or os.environ.get("AZURE_STORAGE_KEY")
    if key:
        options["account_key"] = key
    if settings.azure_blob_endpoint_url:  # one host serves both APIs on an emulator (path-style URLs)
        endpoint = urlsplit(settings.azure_blob_endpoint_url)
        authority, scheme = endpoint.netloc or endpoint.path, endpoint.scheme or "https"
        options.update(blob_storage_authority=authority, blob_storage_scheme=scheme,
                       dfs_storage_authority=authority, dfs_storage_scheme=scheme)
    return pafs.AzureFileSystem(account_name=account, **options)


def filesystem_for(scheme: str, settings: Settings, keys: S3CredentialsIn | None = None) -> Any:
    """The filesystem of ``scheme``; ``keys`` (s3 only): the tenant's credentials instead of the environment's."""
    import pyarrow.fs as pafs

    if scheme == "s3":
        return _s3(settings, keys)
    if scheme in ("gs", "gcs"):
        return _gcs(settings)
    if scheme in ("az", "abfs"):
        return _azure(settings)
    return pafs.LocalFileSystem()


def _local_path(uri: str, parts: Any, settings: Settings) -> str:
    if parts.netloc not in ("", "localhost"):
        raise UriRefusedError(f"{uri!r}: a file:// URI names a local path (file:///dir/…), not a host")
    path = os.path.normpath(parts.path)
    roots = [os.path.realpath(root) for root in settings.dataset_file_roots]
    directory = path if not _GLOB & set(os.path.basename(path)) else os.path.dirname(path)
    real = os.path.realpath(directory)
    if not any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots):
        raise UriRefusedError(f"{uri!r}: file:// URIs must lie under a directory the service shares for datasets "
                         "(LIPSPLINE_DATASET_FILE_ROOTS)")
    return os.path.join(real, os.path.basename(path)) if directory != path else real


def _refusal(uri: str, exc: Exception, whose: str = "the service's") -> UriRefusedError:
    text = str(exc)
    lowered = text.lower()
    squashed = lowered.replace("_", "").replace(" ", "")
    refusals = ("accessdenied", "forbidden", "403", "invalidaccesskeyid", "signaturedoesnotmatch", "credentials",
                "expiredtoken", "invalidtoken")
    if any(word in squashed for word in refusals):
        return UriRefusedError(f"{uri!r}: the store refused {whose} credentials")
    if "nosuchbucket" in lowered or "bucket does not exist" in lowered or "no such bucket" in lowered:
        return UriRefusedError(f"{uri!r}: no such bucket")
    first_line = text.splitlines()[0][:200] if text else type(exc).__name__
    return UriRefusedError(f"{uri!r}: the store could not be read ({first_line})")


def resolve(uri: str, settings: Settings, keys: S3CredentialsIn | None = None) -> ObjectSet:
    """The objects ``uri`` names (sorted), or UriRefusedError saying why there are none to read.

    ``keys``: the tenant's own S3 credentials (used for an ``s3://`` URI instead of the environment's).
    """
    import pyarrow as pa
    import pyarrow.fs as pafs

    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UriRefusedError(f"{uri!r}: scheme {parts.scheme or '(none)'!r} is not served; use one of "
                         + ", ".join(f"{s}://" for s in SCHEMES))
    filesystem = filesystem_for(scheme, settings, keys)
    whose = "the tenant's stored" if keys is not None and scheme == "s3" else "the service's"
    if scheme == "file":
        path = _local_path(uri, parts, settings)
    else:
        if not parts.netloc:
            raise UriRefusedError(f"{uri!r}: no bucket")
        path = parts.netloc + parts.path
    prefix_only = path.endswith("/")
    directory, pattern = os.path.split(path.rstrip("/")) if not prefix_only else (path.rstrip("/"), "*.parquet")
    try:
        if prefix_only or _GLOB & set(pattern):
            listed = filesystem.get_file_info(pafs.FileSelector(directory, allow_not_found=True,
                                                                 recursive=prefix_only))
            paths = sorted(info.path for info in listed if info.type == pafs.FileType.File
                           and fnmatch.fnmatchcase(os.path.basename(info.path), pattern))
        else:
            info = filesystem.get_file_info(path)
            paths = [info.path] if info.type == pafs.FileType.File else []
    except (pa.ArrowException, OSError) as exc:
        raise _refusal(uri, exc, whose) from exc
    if not paths:
        raise UriRefusedError(f"{uri!r}: no object matches")
    if len(paths) > settings.max_reference_objects:
        limit = settings.max_reference_objects
        raise UriRefusedError(f"{uri!r}: matches {len(paths)} objects, over the {limit} allowed")
    return ObjectSet(uri=uri, filesystem=filesystem, paths=paths)
