"""The embedded broker hands messages out in the order they were sent (a real kombu queue on disk)."""

from __future__ import annotations

import os

from kombu import Connection

from lipspline_platform.jobs import ordered_filesystem
from lipspline_platform.jobs.queue import make_celery
from lipspline_platform.settings import Settings


def _queue_connection(folder) -> Connection:
    queue = str(folder / "queue")
    os.makedirs(queue, exist_ok=True)
    options = {"data_folder_in": queue, "data_folder_out": queue, "processed_folder": str(folder / "done"),
               "control_folder": str(folder / "control"), "store_processed": False, "polling_interval": 0.01}
    return Connection("filesystem://", transport=ordered_filesystem.TRANSPORT_PATH, transport_options=options)


def test_a_burst_of_messages_comes_out_in_the_order_it_went_in(tmp_path):
    # hundreds of messages inside a few milliseconds: kombu's own names tie on the millisecond
    with _queue_connection(tmp_path) as connection:
        queue = connection.SimpleQueue("jobs")
        for number in range(300):
            queue.put({"n": number})
        received = []
        for _ in range(300):
            message = queue.get(timeout=5)
            received.append(message.payload["n"])
            message.ack()
        queue.close()
    assert received == list(range(300))
    assert not any(name.endswith(".part") for name in os.listdir(tmp_path / "queue"))


def test_message_names_sort_in_sending_order_and_keep_their_queue_suffix():
    names = [ordered_filesystem.message_name("cpu") for _ in range(1000)]
    assert names == sorted(names)
    assert len({name.split("_")[0] for name in names}) == 1000  # strictly increasing stamps
    assert all(name.partition(".")[2] == "cpu.msg" for name in names)  # what the consumer matches


def test_the_embedded_deployment_uses_the_ordered_transport_and_redis_keeps_its_own(tmp_path):
    embedded = make_celery(Settings(data_dir=tmp_path))
    with embedded.connection_for_write() as connection:
        assert isinstance(connection.transport, ordered_filesystem.Transport)
    redis = make_celery(Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/0"))
    with redis.connection_for_write() as connection:
        assert not isinstance(connection.transport, ordered_filesystem.Transport)
        assert connection.transport.driver_type == "redis"
