"""Names, tags and descriptions: what a person calls a dataset, job, model or sweep (issue 27).

One set of rules for the four resources, used by their creation bodies, their ``PATCH``
bodies, their list filters (``?name=…&tag=…``) and their answers:

* **name**: 1-100 characters once surrounding spaces are stripped, every one printable
  (``str.isprintable``: no NUL, no control character, no line break, no lone surrogate,
  which PostgreSQL could not store). Names need not be unique.
* **tags**: at most 20 per resource, each 1-50 characters of ``A-Z a-z 0-9 . _ : / = -``
  (``team:vision``, ``stage=prod``, ``v1.2``); a repeated tag is kept once, in the order given.
* **description**: at most 2000 characters; line breaks and tabs are allowed, other control
  characters and lone surrogates are not.

A violation is a 422 problem naming the field (``name``, ``tags.3``, ``description``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

NAME_MAX_LENGTH = 100
TAG_MAX_LENGTH = 50
MAX_TAGS = 20
DESCRIPTION_MAX_LENGTH = 2000
#: one tag: letters, digits and ``. _ : / = -`` (no spaces, no commas: a comma-separated list splits cleanly)
TAG_PATTERN = r"^[A-Za-z0-9._:/=-]{1,50}$"
_DESCRIPTION_REFUSED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _printable(value: str) -> str:
    for index, character in enumerate(value):
        if not character.isprintable():
            raise ValueError(f"character {index} ({character!r}) is not printable: names hold no control characters")
    return value


def _plain_text(value: str) -> str:
    found = _DESCRIPTION_REFUSED.search(value)
    if found is not None:
        raise ValueError(f"character {found.start()} ({found.group()!r}) is a control character or a lone surrogate")
    return value


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def _none_is_empty(value: Any) -> Any:
    return [] if value is None else value


#: a resource's name (see the module's docstring)
ResourceName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(_printable),
]
#: one tag
Tag = Annotated[str, StringConstraints(min_length=1, max_length=TAG_MAX_LENGTH, pattern=TAG_PATTERN)]
#: a resource's tags: a list of at most 20 tags, repeats dropped (order kept)
TagList = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_unique)]
#: a resource's description
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH), AfterValidator(_plain_text)]

NAME_HELP = "1-100 printable characters (surrounding spaces are stripped); need not be unique"
TAGS_HELP = "at most 20 tags, each 1-50 characters of letters, digits and `. _ : / = -`; repeats are kept once"
DESCRIPTION_HELP = "free text, at most 2000 characters (line breaks allowed)"


#: the optional members of a creation body (jobs, sweeps, JSON datasets); ``tags: null`` is the same as ``[]``
InName = Annotated[ResourceName | None, Field(description=NAME_HELP)]
InTags = Annotated[TagList, BeforeValidator(_none_is_empty), Field(description=TAGS_HELP)]
InDescription = Annotated[Description | None, Field(description=DESCRIPTION_HELP)]

#: the members of every answer (DatasetOut, JobOut, ModelOut, SweepOut)
OutName = Annotated[str | None, Field(description="what the resource is called (null: no name)")]
OutTags = Annotated[list[str], Field(description="the resource's tags, in the order they were given")]
OutDescription = Annotated[str | None, Field(description="free text about the resource (null: none)")]
