"""What the four labelled resources' routes share: the ``?name=``/``?tag=`` filters and ``PATCH``.

``GET /v1/{datasets,jobs,models,sweeps}?name=N&tag=A&tag=B``: only those called exactly ``N``
that carry both ``A`` and ``B``. The values are held to the rules of the labels themselves
(``api_schemas/labels.py``), so a filter that could match nothing by construction (a tag with
a space, a name of 300 characters) is a 422 naming ``query.tag.0`` or ``query.name``, and no
value reaches the database that it could not compare (NUL bytes are refused for every
parameter by ``service/http/query_parameters.py``).

``PATCH /v1/{datasets,jobs,models,sweeps}/{id}`` with a ``LabelsPatch``: see :func:`patch`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Query

from api_schemas.http import LabelsPatch
from api_schemas.labels import MAX_TAGS, NAME_MAX_LENGTH, Tag
from lipspline_platform import labels
from lipspline_platform.db.engine import Session
from lipspline_platform.labels import Kind
from service.http.openapi_docs import problems

if TYPE_CHECKING:
    from sqlalchemy import Select

#: ``?name=``: the exact name (datasets declare their own, as their names may be 200 characters long)
NameFilter = Annotated[
    str | None, Query(min_length=1, max_length=NAME_MAX_LENGTH, description="only those called exactly this")
]
#: ``?tag=``, repeatable
TagFilter = Annotated[
    list[Tag] | None,
    Query(max_length=MAX_TAGS, description="only those carrying this tag; repeat it to ask for several "
          "(every one must be present); 1-50 characters of `A-Za-z0-9._:/=-`"),
]
#: the ``responses=`` of every ``PATCH``
PATCH_RESPONSES = problems(
    (404, "no such resource (or another tenant's)"),
    (422, "a member breaks its rule (the problem's `field` names it: `name`, `tags.3`, `description`), or an "
     "unknown member"),
)


#: the platform's writers, for the routes that create (tags given at creation) and delete
set_tags = labels.set_tags
forget = labels.forget


def filtered(query: Select, kind: Kind, name: str | None, tags: list[str] | None) -> Select:
    return labels.filtered(query, kind, name=name, tags=tags)


def patch(session: Session, kind: Kind, row: Any, body: LabelsPatch) -> None:
    """Apply the body to ``row`` (which the caller found, owned and locked): JSON merge semantics.

    A member left out is unchanged; ``null`` clears a name or description (a dataset's name goes
    back to the default, ``dataset``); ``tags`` replaces the whole list. The session is flushed,
    so a value the database refuses is refused here, inside the route.
    """
    labels.change(session, kind, row, body.changes())
