"""The embedded broker's transport: kombu's filesystem queue, first in, first out.

kombu's filesystem transport stores each message as a file named
``<monotonic milliseconds>_<uuid4>.<queue>.msg``, and a consumer takes the first name in
sorted order. Two messages sent in the same millisecond (a burst of job submissions, a
sweep's trials) were therefore taken in the random order of their uuids, and a millisecond
count that gains a digit sorts before every shorter one. Here a message's name starts with
the wall-clock time in nanoseconds, zero-padded to a fixed width and strictly increasing
within the sending process, so the embedded queue hands jobs out in the order they were
submitted, as a Redis list does.

A message is also written under a name the consumer ignores and renamed into the queue once
complete, so a consumer never reads half a message (kombu's own ``_put`` writes in place
under a file lock that its reader does not take).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from kombu.exceptions import ChannelError
from kombu.transport.filesystem import Channel as FilesystemChannel
from kombu.transport.filesystem import Transport as FilesystemTransport
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

#: the import path Celery's ``broker_transport`` setting takes
TRANSPORT_PATH = "lipspline_platform.jobs.ordered_filesystem:Transport"
#: digits of a nanosecond time stamp, padded so names sort as numbers until the year 2286
STAMP_DIGITS = 20

_stamp_lock = threading.Lock()
_last_stamp = 0


def next_stamp() -> int:
    """Nanoseconds since the epoch, strictly greater than the last stamp this process handed out."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


def message_name(queue: str) -> str:
    """The file name of the next message on ``queue``: sorts after every earlier one of this process."""
    return f"{next_stamp():0{STAMP_DIGITS}d}_{uuid.uuid4().hex}.{queue}.msg"


class Channel(FilesystemChannel):
    def _put(self, queue: str, payload: dict, **kwargs: object) -> None:
        """Write the message beside the queue, then rename it in: it appears whole, in sending order."""
        final = os.path.join(self.data_folder_out, message_name(queue))
        # ".<queue>.part": the consumer only takes names whose suffix is ".<queue>.msg"
        partial = final.removesuffix(".msg") + ".part"
        try:
            with open(partial, "wb", buffering=0) as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"cannot add message {final!r} to the queue folder") from exc


class Transport(FilesystemTransport):
    Channel = Channel
