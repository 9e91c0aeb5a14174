"""Models as the API lists and reads them: a tenant's models, one model, the dataset it was trained on.

The rows are written by the jobs' lifecycle (``jobs/lifecycle.py``, with the job's success); this
module only reads them for the ``/v1/models`` routes, which pass filters and ids, never queries.
"""

from __future__ import annotations

from typing import Any

from lipspline_platform import labels
from lipspline_platform.db.engine import Session
from lipspline_platform.db.ownership import find_owned
from lipspline_platform.db.pagination import Rows, Window, list_owned
from lipspline_platform.db.tables import DatasetRow, ModelRow


def find(session: Session, tenant_id: str, model_id: str, *, lock: bool = False) -> ModelRow | None:
    """The tenant's model ``model_id`` (locked ``FOR UPDATE`` with ``lock``), or None."""
    return find_owned(session, ModelRow, model_id, tenant_id, lock=lock)


def list_models(
    session: Session, tenant_id: str, window: Window, *, dataset_id: str | None = None, job_id: str | None = None,
    task: str | None = None, name: str | None = None, tags: list[str] | None = None,
) -> Rows:
    """One window of the tenant's models, newest first, filtered."""
    where: list[Any] = [column == value for column, value in
                        ((ModelRow.dataset_id, dataset_id), (ModelRow.job_id, job_id), (ModelRow.task, task))
                        if value is not None]
    where += labels.conditions("model", name=name, tags=tags)
    return list_owned(session, ModelRow, window, tenant_id=tenant_id, where=where)


def training_dataset(session: Session, tenant_id: str, model: ModelRow) -> DatasetRow | None:
    """The dataset the model was trained on, if it still exists and is the tenant's."""
    if model.dataset_id is None:
        return None
    row = session.get(DatasetRow, model.dataset_id)
    return row if row is not None and row.tenant_id == tenant_id else None
