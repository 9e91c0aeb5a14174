"""A tenant's own S3 credentials (issue 30), end to end against a real S3 API that checks them:
moto's server with authentication on, an IAM user whose keys reach one bucket, and a
`lipspline serve` deployment whose own keys (its environment) that store refuses.

The tenant that stored the user's keys registers a dataset in that bucket and trains on it
(the worker streams the rows with the same keys); a tenant without keys is refused, as is one
whose keys the store does not know, each refusal naming whose credentials were refused, and
no response ever shows a key.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.processes import Deployment, embedded_env, wait_for_job
from tests.support.s3_server import CREDENTIALS, S3Server, s3_server

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
BUCKET = "team-data"
URI = f"s3://{BUCKET}/rows/*.parquet"
CONFIG = {"architecture": {"hidden": [8], "activation": "deepspline"},
          "training": {"epochs": 2, "batch_size": 64, "lr": 0.02, "seed": 0, "validation_split": 0.2}}


def parquet_bytes(n: int) -> bytes:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, n)
    columns = {f"x{j}": (rng.normal(size=n) + 2.0 * label).astype(np.float32) for j in range(3)}
    buffer = io.BytesIO()
    pq.write_table(pa.table({**columns, "label": label}), buffer, row_group_size=200)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, dict[str, str]]]:
    """The guarded store, and the keys of the one IAM user allowed into it (made by its first, unchecked requests)."""
    with s3_server(tmp_path_factory.mktemp("s3"), check_credentials=True, unchecked_requests=4) as server:
        iam = boto3.client("iam", endpoint_url=server.url, aws_access_key_id="bootstrap",
                           aws_secret_access_key="bootstrap", region_name="us-east-1")
        iam.create_user(UserName="team")
        made = iam.create_access_key(UserName="team")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="team", PolicyName="team-s3", PolicyDocument=json.dumps(policy))
        keys = {"access_key_id": made["AccessKeyId"], "secret_access_key": made["SecretAccessKey"]}
        team = boto3.client("s3", endpoint_url=server.url, aws_access_key_id=keys["access_key_id"],
                            aws_secret_access_key=keys["secret_access_key"], region_name="us-east-1")
        team.create_bucket(Bucket=BUCKET)
        team.put_object(Bucket=BUCKET, Key="rows/part-0.parquet", Body=parquet_bytes(800))
        yield server, keys


@pytest.fixture(scope="module")
def service(store: tuple[S3Server, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("tenant-keys")
    env = embedded_env(workdir, LIPSPLINE_S3_ENDPOINT_URL=store[0].url, **CREDENTIALS)
    with Deployment(env, workdir, embedded=True).running() as dep:
        yield dep


def test_a_tenants_own_keys_register_and_train_what_the_services_cannot_read(
    service: Deployment, store: tuple[S3Server, dict[str, str]]
) -> None:
    _, keys = store
    with service.client() as team, service.client(service.create_key("outsider")) as outsider:
        refused = outsider.post("/v1/datasets", json={"uri": URI, "target": "label"})
        assert refused.status_code == 422, refused.text
        assert "the store refused the service's credentials" in refused.text

        stored = team.put("/v1/storage/credentials", json={"s3": keys})
        assert stored.status_code == 200, stored.text
        created = team.post("/v1/datasets", json={"uri": URI, "target": "label"})
        assert created.status_code == 201, created.text
        dataset = created.json()
        assert dataset["n_samples"] == 800
        for response in (stored, created, team.get(f"/v1/datasets/{dataset['id']}")):
            assert keys["secret_access_key"] not in response.text and keys["access_key_id"] not in response.text

        job = team.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": CONFIG})
        assert job.status_code == 202, job.text
        done = wait_for_job(team, job.json()["id"])
        assert done["status"] == "succeeded", done  # the worker streamed the rows with the tenant's keys

        # keys the store does not know: refused, and the refusal says they were the tenant's
        wrong = {"access_key_id": "AKIANOTKNOWN0001", "secret_access_key": "nope"}
        assert team.put("/v1/storage/credentials", json={"s3": wrong}).status_code == 200
        refused_again = team.post("/v1/datasets", json={"uri": URI, "target": "label"})
        assert refused_again.status_code == 422
        assert "the store refused the tenant's stored credentials" in refused_again.text
        assert "nope" not in refused_again.text
