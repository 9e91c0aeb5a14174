"""The SDK and the user CLI against a live embedded ``lipspline serve``.

* the SDK flow: upload, submit, follow the job over SSE, metrics, predict, certify, download;
* a POST whose answer is lost on the way back (a proxy drops the connection after the server
  answered) is retried by the SDK with the same Idempotency-Key and creates ONE dataset;
* the CLI as a subprocess (``--json`` output parsed), and ``jobs submit --follow`` in a
  pseudo-terminal, where the live progress bar is drawn.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lipspline.data import make_circle
from lipspline_client import Client, RetryPolicy
from tests.support.processes import Deployment, embedded_env

pytestmark = pytest.mark.e2e
CONFIG = {"architecture": {"hidden": [4]}, "training": {"epochs": 8, "batch_size": 32, "seed": 0}, "device": "cpu"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("sdk")
    with Deployment(embedded_env(workdir), workdir, embedded=True).running() as dep:
        yield dep


def test_sdk_flow_with_a_job_followed_over_sse(deployment: Deployment, tmp_path: Path) -> None:
    data = make_circle(300, seed=0)
    with Client(deployment.url, deployment.api_key) as client:
        dataset = client.datasets.upload((data.X, data.y), name="circle")
        job = client.jobs.submit(dataset, CONFIG)
        events = list(job.events())
        job.wait()
        assert job.status == "succeeded"
        assert [e.data["epoch"] for e in events if e.type == "epoch"] == list(range(1, 9))
        assert events[-1].type == "final" and events[-1].data["model_id"] == job.model_id
        assert list(job.metrics().index) == list(range(1, 9))
        model = job.model()
        prediction = model.predict(np.array([[0.0, 0.0], [0.9, 0.9]]), epsilon=0.05)
        assert prediction.predictions.tolist() == model.predict([[0.0, 0.0], [0.9, 0.9]]).predictions.tolist()
        assert prediction.certified_radius is not None and prediction.output_bounds is not None
        assert model.certify([[0.0, 0.0]], epsilon=0.1).local[0].local_radius <= 0.1
        assert model.download(tmp_path / "m.onnx", format="onnx").stat().st_size > 0


class DropFirstAnswer:
    """A TCP proxy to the server that forwards the first request, lets the server answer it in
    full, then closes the client's connection without passing the answer on (a lost response).
    Later connections are relayed both ways."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.connections = target_port, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._relay, args=(client, self.connections == 1), daemon=True).start()

    def _relay(self, client: socket.socket, drop_answer: bool) -> None:
        server = socket.create_connection(("127.0.0.1", self.target_port))
        if drop_answer:
            request = _read_request(client)
            server.sendall(request)
            server.settimeout(30)
            server.recv(65536)  # the server answered (the dataset is stored) …
            server.close()
            client.close()  # … and the client never hears it
            return
        pump = threading.Thread(target=_pipe, args=(server, client), daemon=True)
        pump.start()
        _pipe(client, server)
        pump.join()

    def close(self) -> None:
        self.listener.close()


def _read_request(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def test_a_post_whose_answer_was_lost_is_retried_and_creates_one_record(deployment: Deployment) -> None:
    proxy = DropFirstAnswer(deployment.port)
    data = make_circle(50, seed=9)
    try:
        with Client(deployment.url, deployment.api_key) as direct:
            before = {d.id for d in direct.datasets.list().items}
            with Client(proxy.url, deployment.api_key, retry=RetryPolicy(backoff_s=0.05)) as client:
                dataset = client.datasets.upload((data.X, data.y), name="lost-answer")
            after = [d for d in direct.datasets.list().items if d.id not in before]
    finally:
        proxy.close()
    assert proxy.connections >= 2  # the answer was lost once, and the SDK asked again
    assert [d.id for d in after] == [dataset.id]  # one record: the retry got the first answer replayed


def cli(deployment: Deployment, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(deployment.env, LIPSPLINE_URL=deployment.url, LIPSPLINE_API_KEY=deployment.api_key)
    env.pop("LIPSPLINE_DATA_DIR")  # from any directory: the key comes from LIPSPLINE_API_KEY
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_flow(deployment: Deployment, tmp_path: Path) -> None:
    data = make_circle(200, seed=4)
    rows = ["x1,x2,inside", *[f"{a},{b},{int(c)}" for (a, b), c in zip(data.X.tolist(), data.y.tolist(), strict=True)]]
    (tmp_path / "circle.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "config.yaml").write_text("architecture: {hidden: [4]}\ntraining: {epochs: 5, seed: 0}\ndevice: cpu\n")
    (tmp_path / "rows.csv").write_text("x1,x2\n0.0,0.0\n0.9,0.9\n")

    upload = cli(deployment, "datasets", "upload", "circle.csv", "--target", "inside", cwd=tmp_path)
    assert upload.returncode == 0, upload.stderr
    dataset_id = upload.stdout.strip()
    shown = json.loads(cli(deployment, "datasets", "show", dataset_id, "--json", cwd=tmp_path).stdout)
    assert shown["n_samples"] == 200 and shown["feature_names"] == ["x1", "x2"]

    submitted = cli(deployment, "jobs", "submit", "config.yaml", "--dataset", dataset_id, "--follow", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(cli(deployment, "jobs", "show", submitted.stdout.strip(), "--json", cwd=tmp_path).stdout)
    assert job["status"] == "succeeded" and job["progress"]["epoch"] == 5
    logs = cli(deployment, "jobs", "logs", job["id"], cwd=tmp_path).stdout.splitlines()
    assert sum(" epoch " in line for line in logs) == 5 and "final succeeded" in logs[-1]

    # the tables (not only --json) of the read commands
    listed = cli(deployment, "jobs", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "5/5" in listed.stdout, listed.stderr
    shown_model = cli(deployment, "models", "show", job["model_id"], cwd=tmp_path)
    assert shown_model.returncode == 0 and "validation accuracy" in shown_model.stdout, shown_model.stderr
    models = json.loads(cli(deployment, "models", "list", "--json", cwd=tmp_path).stdout)["items"]
    assert job["model_id"] in [m["id"] for m in models]
    predicted = cli(deployment, "predict", job["model_id"], "--input", "rows.csv", "--epsilon", "0.05",
                    "--output", "out.csv", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    header, *lines = (tmp_path / "out.csv").read_text().splitlines()
    assert header.split(",")[:3] == ["x1", "x2", "prediction"] and len(lines) == 2
    assert {"certified_radius", "output_bound", "rounding_bound", "lipschitz_bound"} <= set(header.split(","))
    local = cli(deployment, "predict", job["model_id"], "--input", "rows.csv", "--local-ball", "0.1", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    assert "radius_source" in local.stdout.splitlines()[0].split(",")
    # "I need radius r" and nothing else: no config file, the target radius fills the rest
    robust = cli(deployment, "jobs", "submit", "--dataset", dataset_id, "--target-radius", "0.05", cwd=tmp_path)
    assert robust.returncode == 0, robust.stderr
    robust_job = json.loads(cli(deployment, "jobs", "show", robust.stdout.strip(), "--json", cwd=tmp_path).stdout)
    assert robust_job["config"]["robustness"]["target_radius"] == 0.05
    assert robust_job["config"]["objective"]["mode"] == "one_lipschitz"
    assert cli(deployment, "jobs", "cancel", robust_job["id"], cwd=tmp_path).returncode == 0
    download = cli(deployment, "models", "download", job["model_id"], "--format", "onnx", "-o", "m.onnx", cwd=tmp_path)
    assert download.returncode == 0 and (tmp_path / "m.onnx").stat().st_size > 0

    missing = cli(deployment, "jobs", "show", "nope", cwd=tmp_path)
    assert missing.returncode == 1 and "404 Not Found" in missing.stderr


def test_follow_draws_a_live_progress_bar_in_a_terminal(deployment: Deployment, tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    # enough steps that an epoch outlasts the event stream's poll (0.3 s), so the bar is seen mid-run:
    # 3,200 training rows at the default batch size took ~0.1 s an epoch, and all six epochs then
    # arrived in one poll now and then; at batch 8 an epoch is 400 steps
    data = make_circle(4000, seed=5)
    with Client(deployment.url, deployment.api_key) as client:
        dataset = client.datasets.upload((data.X, data.y))
    # all six epochs run (no early stop), so the bar is drawn up to 6/6
    training = {"epochs": 6, "seed": 0, "early_stopping": False, "batch_size": 8}
    (tmp_path / "config.json").write_text(json.dumps({**CONFIG, "training": training}))
    env = dict(deployment.env, LIPSPLINE_URL=deployment.url, LIPSPLINE_API_KEY=deployment.api_key, COLUMNS="160")
    child = pexpect.spawn(sys.executable, ["-m", "service.cli", "jobs", "submit", "config.json", "--dataset",
                                           dataset.id, "--follow"], cwd=str(tmp_path), env=env,
                          timeout=180, encoding="utf-8", dimensions=(40, 160),
                          use_poll=True)  # select() refuses descriptors above 1023 (a long test process has them)
    ansi = r"(?:\x1b\[[0-9;?]*[a-zA-Z]|\s)*"  # colours and cursor moves between the words
    child.expect(rf"running{ansi}.*?[1-5]{ansi}/{ansi}6{ansi}epochs")  # drawn while the job runs …
    child.expect(rf"6{ansi}/{ansi}6{ansi}epochs")  # … redrawn in place up to the last epoch
    child.expect(rf"succeeded{ansi}: model [0-9a-f]+")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_sweep_from_the_sdk_and_the_cli(deployment: Deployment, tmp_path: Path) -> None:
    data = make_circle(300, seed=6)
    base = {**CONFIG, "training": {**CONFIG["training"], "epochs": 4, "validation_split": 0.25}}
    # the CLI's sweep must still run when it is cancelled: trials far too long to end first, even on an idle machine
    long = {**base, "training": {**base["training"], "epochs": 5000, "batch_size": 4}}
    (tmp_path / "config.json").write_text(json.dumps(long))
    with Client(deployment.url, deployment.api_key) as client:
        dataset = client.datasets.upload((data.X, data.y), name="sweep-circle")
        sweep = client.sweeps.create(dataset, base, space={"objective.lambda": [1e-6, 1e-2]}, strategy="grid",
                                     budget={"max_trials": 2, "max_concurrent": 2})
        # a second sweep from the CLI, cancelled at once: its options reach the service as the API's members
        submitted = cli(deployment, "sweeps", "submit", "--dataset", dataset.id, "--space", '{"spline.knots": [5, 11]}',
                        "--config", "config.json", "--strategy", "grid", "--max-trials", "2",
                        "--select", "max_accuracy:50", "--json", cwd=tmp_path)
        assert submitted.returncode == 0, submitted.stderr
        cli_sweep = json.loads(submitted.stdout)
        assert cli_sweep["trials"] == 2 and cli_sweep["status"] == "running"
        cancelled = cli(deployment, "sweeps", "cancel", cli_sweep["id"], cwd=tmp_path)
        assert cancelled.returncode == 0 and "cancelled" in cancelled.stderr, cancelled.stderr

        assert sweep.wait(poll_s=0.5, timeout_s=120).status == "succeeded", sweep.info.note
        model = sweep.selected_model()
        prediction = model.predict([[0.0, 0.0], [0.9, 0.9]], epsilon=0.05)
        assert prediction.predictions.shape == (2,) and prediction.lipschitz_bound == model.info.lipschitz.certified
        frame = sweep.trials_frame()
        assert frame["objective.lambda"].tolist() == [1e-6, 1e-2]
        assert frame.loc[frame["selected"], "model_id"].tolist() == [model.id]

    listed = {s["id"]: s for s in json.loads(cli(deployment, "sweeps", "list", "--json", cwd=tmp_path).stdout)["items"]}
    from_cli = listed[cli_sweep["id"]]
    assert listed[sweep.id]["status"] == "succeeded" and from_cli["status"] == "cancelled"
    assert from_cli["select"] == {"rule": "max_accuracy", "max_lipschitz": 50.0} and from_cli["strategy"] == "grid"
    assert from_cli["space"] == {"spline.knots": [5, 11]} and from_cli["budget"]["max_trials"] == 2
    shown = json.loads(cli(deployment, "sweeps", "show", sweep.id, "--json", cwd=tmp_path).stdout)
    assert shown["selected"]["model_id"] == model.id and len(shown["trials"]) == 2
    table = cli(deployment, "sweeps", "show", sweep.id, cwd=tmp_path)
    assert table.returncode == 0 and f"selected: trial {shown['selected']['trial']}, model {model.id}" in table.stdout
    finished = cli(deployment, "sweeps", "cancel", sweep.id, cwd=tmp_path)
    assert finished.returncode == 1 and "409 Conflict" in finished.stderr
