"""A live progress bar for a job, fed by its event stream (``Job.wait(progress=True)``, ``--follow``).

One line: the status, the epoch of epochs as a bar, the loss terms and the train/validation
metrics of the last epoch, and the time remaining (rich estimates it from the epochs' pace).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column

from api_schemas.http import JobEvent


def _numbers(values: dict[str, Any] | None, prefix: str = "") -> list[str]:
    return [f"{prefix}{name} {value:.4g}" for name, value in (values or {}).items() if isinstance(value, int | float)]


def epoch_summary(data: dict[str, Any], *, short: bool = False) -> str:
    """``data 0.31 bv2 0.002 total 0.31 | train accuracy 0.91 | val accuracy 0.9`` for an epoch event;
    ``short``: the total loss and the metrics other than the loss (fits beside a progress bar)."""
    losses = data.get("losses") or {}
    if short and "total" in losses:
        losses = {"total": losses["total"]}
    parts = [" ".join(_numbers({("loss" if short else k): v for k, v in losses.items()}))]
    for key, prefix in (("train_metrics", "train "), ("validation_metrics", "val ")):
        metrics = {k: v for k, v in (data.get(key) or {}).items() if not (short and k == "loss")}
        parts.append(" ".join(_numbers(metrics, prefix)))
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
            # the summary gives way first on a narrow terminal: the bar, counts and ETA stay whole
            TextColumn("{task.fields[summary]}", table_column=Column(no_wrap=True, overflow="ellipsis")),
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
                                 status="running", summary=epoch_summary(data, short=True))  # fmt: skip
        else:  # status, final
            self.progress.update(self.task, status=data.get("status", "?"))
