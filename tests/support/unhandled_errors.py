"""Never a 500: a guard that fails a test when the service logged an unhandled exception while it ran.

The service logs every unhandled error on ``service.http.problems`` at ERROR before it answers 500, so
collecting those records catches a 500 even where the test does not look at the status.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_unhandled_errors() -> Iterator[None]:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.ERROR)
    logger = logging.getLogger("service.http.problems")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert not records, [r.getMessage() + "\n" + str(r.exc_info and r.exc_info[1]) for r in records]
