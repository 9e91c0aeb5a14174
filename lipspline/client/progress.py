"""A live progress bar for a job, fed by its event stream (``Job.wait(progress=True)``, ``--follow``).

One line: the status, the epoch of epochs as a bar, the loss terms and the train/validation
metrics of the last epoch, and the time remaining (rich estimates it from the epochs' pace).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from api_schemas.http import JobEvent


def _numbers(values: dict[str, Any] | None, prefix: str = "") -> list[str]:
    return [f"{prefix}{name} {value:.4g}" for name, value in (values or {}).items() if isinstance(value, int | float)]


def epoch_summary(data: dict[str, Any]) -> str:
    """``loss 0.31 bv2 0.002 | train accuracy 0.91 | val accuracy 0.9`` for an epoch event's data."""
    parts = [" ".join(_numbers(data.get("losses")))]
    parts.append(" ".join(_numbers(data.get("train_metrics"), "train ")))
    parts.append(" ".join(_numbers(data.get("validation_metrics"), "val ")))
    return " | ".join(p for p in parts if p)


class JobProgress:
    """A rich progress display of one job; ``update`` with each event, use as a context manager."""

    def __init__(self, job_id: str, epochs: int | None = None, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[status]:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("epochs"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[summary]}"),
            console=self.console,
        )
        self.task = self.progress.add_task(job_id, total=epochs, status="queued", summary="")

    def __enter__(self) -> JobProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, event: JobEvent) -> None:
        data = event.data
        if event.type == "epoch":
            self.progress.update(self.task, total=data.get("epochs"), completed=data.get("epoch", 0),
                                 status="running", summary=epoch_summary(data))  # fmt: skip
        else:  # status, final
            self.progress.update(self.task, status=data.get("status", "?"))
