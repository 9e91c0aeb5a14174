"""Live progress for a job (fed by its event stream: ``Job.wait(progress=True)``, ``jobs submit --follow``)
and for a sweep (fed by polling it: ``Sweep.wait(progress=True)``, ``sweeps submit --follow``, ``sweeps follow``).

The line adapts to the terminal's width, chosen again at every redraw (a resized terminal is followed):

* 80 columns and wider: the status, a bar, ``epoch k/N``, the loss, ``ETA`` and, in what is left,
  the last epoch's metrics (cut first when space runs out);
* narrower: compact, without the bar: ``running 12/40 loss 0.31 ETA 0:00:12``.

A sweep's line counts trials: done (succeeded, stopped, failed or cancelled) of planned, how many
run now, and the size of the current accuracy-vs-Lipschitz front.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Column
from rich.text import Text

from api_schemas.http import TERMINAL_STATES, JobEvent

#: from this width on, the full line (with the bar); below it, the compact one
WIDE_COLUMNS = 80


def _numbers(values: dict[str, Any] | None, prefix: str = "") -> list[str]:
    return [f"{prefix}{name} {value:.4g}" for name, value in (values or {}).items() if isinstance(value, int | float)]


def epoch_summary(data: dict[str, Any], *, short: bool = False) -> str:
    """``data 0.31 bv2 0.002 total 0.31 | train accuracy 0.91 | val accuracy 0.9`` for an epoch event;
    ``short``: the metrics other than the loss (the loss has a column of its own beside the bar)."""
    losses = {} if short else data.get("losses") or {}
    parts = [" ".join(_numbers(losses))]
    for key, prefix in (("train_metrics", "train "), ("validation_metrics", "val ")):
        metrics = {k: v for k, v in (data.get(key) or {}).items() if not (short and k == "loss")}
        parts.append(" ".join(_numbers(metrics, prefix)))
    return " | ".join(p for p in parts if p)


def _loss(data: dict[str, Any]) -> str:
    losses = data.get("losses") or {}
    value = losses.get("total", next(iter(losses.values()), None)) if losses else None
    return f"loss {value:.4g}" if isinstance(value, int | float) else ""


class _Count(ProgressColumn):
    """``k/N`` (``k/?`` while the total is unknown) followed by a unit: ``epochs``, ``trials``."""

    def __init__(self, unit: str) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self.unit = unit

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else str(int(task.total))
        return Text(f"{int(task.completed)}/{total} {self.unit}".rstrip())


class _Eta(TimeRemainingColumn):
    """``ETA 0:00:12`` (rich's estimate from the pace so far; ``ETA -:--:--`` until it has one)."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task: Task) -> Text:
        if task.fields.get("ended"):  # a job that stopped early (converged) has no time left, whatever N says
            return Text("")
        remaining = super().render(task)
        return Text("ETA ") + remaining


class _Rest(ProgressColumn):
    """A field that takes what width is left and is cut (with an ellipsis) when there is too little:
    the only column a narrow terminal shrinks, so the bar, the counts and the ETA stay whole."""

    def __init__(self, name: str) -> None:
        super().__init__(table_column=Column(no_wrap=False, min_width=0))
        self.name = name

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get(self.name, "")), no_wrap=True, overflow="ellipsis")


class AdaptiveProgress(Progress):
    """A :class:`rich.progress.Progress` whose columns depend on the console's width at each redraw."""

    def __init__(self, wide: list[ProgressColumn], compact: list[ProgressColumn], console: Console) -> None:
        self.wide_columns, self.compact_columns, self._width_of = tuple(wide), tuple(compact), console
        super().__init__(*wide, console=console)

    def get_renderables(self):
        self.columns = self.wide_columns if self._width_of.width >= WIDE_COLUMNS else self.compact_columns
        yield from super().get_renderables()


def _status() -> TextColumn:
    return TextColumn("[bold]{task.fields[status]:<9}", table_column=Column(no_wrap=True))


def _field(name: str) -> TextColumn:
    return TextColumn(f"{{task.fields[{name}]}}", markup=False, table_column=Column(no_wrap=True))


def _bar() -> BarColumn:
    return BarColumn(bar_width=20, table_column=Column(no_wrap=True))


class JobProgress:
    """A live progress line of one job; ``update`` it with each event, use it as a context manager."""

    def __init__(self, job_id: str, epochs: int | None = None, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        wide = [_status(), _bar(), _Count("epochs"), _field("loss"), _Eta(), _Rest("summary")]
        compact = [_status(), _Count(""), _field("loss"), _Eta()]
        self.progress = AdaptiveProgress(wide, compact, self.console)
        self.task = self.progress.add_task(job_id, total=epochs, status="queued", loss="", summary="", ended=False)

    def __enter__(self) -> JobProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, event: JobEvent) -> None:
        data = event.data
        if event.type == "epoch":
            self.progress.update(self.task, total=data.get("epochs"), completed=data.get("epoch", 0), status="running",
                                 loss=_loss(data), summary=epoch_summary(data, short=True))
        else:  # status, final
            status = data.get("status", "?")
            self.progress.update(self.task, status=status, ended=status in TERMINAL_STATES)


def sweep_counts(info: Any) -> dict[str, Any]:
    """What the sweep's line shows, from a ``SweepOut``: trials done / running / planned and the front's size."""
    progress = info.progress
    done = progress.succeeded + progress.stopped + progress.failed + progress.cancelled
    front = getattr(info, "front", None)
    front_size = len(front.lipschitz) if front is not None else 0
    return {"done": done, "running": progress.active, "planned": progress.planned, "front": front_size,
            "succeeded": progress.succeeded, "failed": progress.failed, "status": str(info.status)}


class SweepProgress:
    """A live progress line of one sweep; ``update`` it with each polled ``SweepOut``."""

    def __init__(self, sweep_id: str, planned: int | None = None, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        wide = [_status(), _bar(), _Count("trials done"), _field("detail"), _Eta()]
        compact = [_status(), _Count("done"), _field("short")]
        self.progress = AdaptiveProgress(wide, compact, self.console)
        self.task = self.progress.add_task(sweep_id, total=planned, status="running", detail="", short="")

    def __enter__(self) -> SweepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, info: Any) -> None:
        counts = sweep_counts(info)
        detail = f"{counts['running']} running, front {counts['front']}"
        failed = f", {counts['failed']} failed" if counts["failed"] else ""
        short = f"{counts['running']} run, front {counts['front']}"
        self.progress.update(self.task, total=counts["planned"], completed=counts["done"], status=counts["status"],
                             detail=detail + failed, short=short)
