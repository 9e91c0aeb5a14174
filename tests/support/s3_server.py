"""A real S3 API on loopback for the tests: moto's standalone server, in its own process.

The service reaches it exactly as it reaches S3 or MinIO: pyarrow's S3 filesystem over HTTP,
pointed there by ``LIPSPLINE_S3_ENDPOINT_URL``; the tests write objects with boto3.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import Process, free_port, wait_for_http

#: the credentials every process of a test deployment gets (moto accepts any unless told otherwise)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lipspline-test", "AWS_SECRET_ACCESS_KEY": "lipspline-test-secret",
               "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


class S3Server:
    """moto_server on a free loopback port; ``client()`` is a boto3 S3 client for writing test objects."""

    def __init__(self, workdir: Path, *, check_credentials: bool = False, unchecked_requests: int = 0) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        env = dict(CREDENTIALS)
        if check_credentials:  # requests are authenticated (after the first ``unchecked_requests``, which may
            # create IAM users and keys): keys moto never issued are refused (403), IAM policies apply
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(unchecked_requests)
        self.process = Process(argv, env, workdir / "moto.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        self.process.start()
        wait_for_http(self.process, self.url + "/moto-api/", "moto server", answered=lambda r: r.status_code < 500)
        return self

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")

    def stop(self) -> None:
        self.process.stop()


@contextmanager
def s3_server(workdir: Path, *, check_credentials: bool = False, unchecked_requests: int = 0) -> Iterator[S3Server]:
    server = S3Server(workdir, check_credentials=check_credentials, unchecked_requests=unchecked_requests).start()
    try:
        yield server
    finally:
        server.stop()
