"""Reading a ``text/event-stream`` (Server-Sent Events) line by line, as the HTML spec parses it."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    id: str | None
    event: str
    data: str


class _Parser:
    def __init__(self) -> None:
        self.id: str | None = None
        self.event, self.data = "", []

    def feed(self, line: str) -> ServerSentEvent | None:
        """One line in; a whole event out when a blank line ends it (comments are skipped)."""
        if not line:
            if not self.data:
                self.event = ""
                return None
            event = ServerSentEvent(self.id, self.event or "message", "\n".join(self.data))
            self.event, self.data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value
        elif name == "id":
            self.id = value
        return None


def parse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    parser = _Parser()
    for line in lines:
        event = parser.feed(line.rstrip("\r"))
        if event is not None:
            yield event


async def aparse(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    parser = _Parser()
    async for line in lines:
        event = parser.feed(line.rstrip("\r"))
        if event is not None:
            yield event
