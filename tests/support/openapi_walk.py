"""Walks an OpenAPI document for what makes generated clients poor: untyped bags in response bodies.

An *untyped bag* is a schema that tells a client nothing about a value it will receive:
``{}`` (any JSON), an object with ``additionalProperties: true`` or without properties and
without typed ``additionalProperties``, or an array whose items are any of those. A map with
typed values (``{"additionalProperties": {"type": "number"}}``: metric name -> value) is typed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

JSON_MEDIA_TYPES = ("application/json", "application/problem+json")
#: schemas that are open on purpose: the problem details (RFC 9457 lets problems carry extension members)
OPEN_BY_DESIGN = frozenset({"Problem"})


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    ref = schema.get("$ref")
    if ref is None:
        return None, schema
    name = ref.rsplit("/", 1)[-1]
    return name, document["components"]["schemas"][name]


def untyped_bags(document: dict[str, Any]) -> Iterator[str]:
    """``where: why`` for every untyped bag reachable from a JSON response body of any operation."""
    seen: set[str] = set()

    def walk(schema: dict[str, Any], where: str) -> Iterator[str]:
        name, schema = _resolve(document, schema)
        if name is not None:
            if name in seen or name in OPEN_BY_DESIGN:
                return
            seen.add(name)
            where = name
        for key in ("anyOf", "oneOf", "allOf"):
            for i, option in enumerate(schema.get(key, [])):
                yield from walk(option, f"{where}|{key}[{i}]")
        if not schema or (set(schema) <= {"title", "description", "default", "examples"}):
            yield f"{where}: any JSON value"
            return
        kind = schema.get("type")
        if kind == "array":
            for i, item in enumerate(schema.get("prefixItems", [])):  # a tuple: one schema per position
                yield from walk(item, f"{where}[{i}]")
            if "prefixItems" not in schema or "items" in schema:
                yield from walk(schema.get("items", {}), f"{where}[]")
        if kind == "object" or "properties" in schema:
            extra = schema.get("additionalProperties")
            if extra is True or extra == {}:
                yield f"{where}: additionalProperties is any JSON value"
            elif isinstance(extra, dict):
                yield from walk(extra, f"{where}{{*}}")
            elif not schema.get("properties"):
                yield f"{where}: an object with no declared members"
            for member, sub in schema.get("properties", {}).items():
                yield from walk(sub, f"{where}.{member}")

    for path, path_item in document["paths"].items():
        for method, operation in path_item.items():
            for status, response in operation.get("responses", {}).items():
                for media_type, content in response.get("content", {}).items():
                    if media_type in JSON_MEDIA_TYPES and "schema" in content:
                        yield from walk(content["schema"], f"{method.upper()} {path} {status}")
