"""petstore.yaml is the contract: the document we serve may add, never narrow.

Clients are generated from docs/petstore.yaml (the Petstore spec, as shared with every
client), not from the document we serve. So every operation of the spec is served, every
body valid under the spec is accepted (no field refused as unknown or read-only, nothing
required that the spec leaves optional), and every answer stays within the spec's schemas
(nothing nullable, no status outside its enums). The limits the store documents and holds
on purpose are listed below, each with its reason.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "petstore.yaml"
# Bounds on sizes and ids ("request sizes are bounded"), and names that are not empty.
LIMITS = {"maxLength", "maxItems", "minimum", "maximum", "minLength"}
# (schema, property, keyword): what the store adds there on purpose.
ALLOWED = {
    ("User", "username", "pattern"): "the spec's login pattern: a name that cannot log in "
                                     "is refused at sign-up",
    ("User", "password", "writeOnly"): "a password is never sent back",
    ("Order", "status", "enum"): "an order undone or cancelled is `cancelled`",
}
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(CONTRACT.read_text())


@pytest.fixture(scope="module")
def served(app) -> dict[str, Any]:
    return app.test_client().get("/v2/openapi.json").json


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> tuple[str | None, dict]:
    """(the component's name when `schema` refers to one, the schema itself)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return name, document["components"]["schemas"][name]
    return None, schema


def narrowings(spec: dict, served: dict, ours: dict, theirs: dict, where: str,
               name: str | None = None, answer: bool = False) -> list[str]:
    """How the served schema `ours` narrows the spec's `theirs`, as `where: what` lines.
    Of an `answer`, what we always send and never more (required properties, no others)
    stays within the spec, so only what a client could not parse counts."""
    spec_name, theirs = _resolve(spec, theirs)
    _, ours = _resolve(served, ours)
    name = spec_name or name
    found = []

    def unless_allowed(prop: str | None, keyword: str, what: str) -> None:
        if (name, prop, keyword) not in ALLOWED:
            found.append(f"{where}: {what}")

    prop = where.rsplit(".", 1)[-1] if "." in where else None
    if theirs.get("type") and ours.get("type") != theirs["type"]:
        found.append(f"{where}: type {ours.get('type')} where the spec has {theirs['type']}")
    for keyword in ("nullable", "readOnly", "writeOnly"):
        if ours.get(keyword) and not theirs.get(keyword):
            unless_allowed(prop, keyword, keyword)
    if "pattern" in ours and ours["pattern"] != theirs.get("pattern"):
        unless_allowed(prop, "pattern", f"pattern {ours['pattern']}")
    if "enum" in theirs or "enum" in ours:
        if set(theirs.get("enum", [])) - set(ours.get("enum", theirs.get("enum", []))):
            found.append(f"{where}: enum {ours['enum']} leaves out some of {theirs['enum']}")
        if set(ours.get("enum", [])) - set(theirs.get("enum", ours.get("enum", []))):
            unless_allowed(prop, "enum", f"enum {ours['enum']} adds to {theirs.get('enum')}")
    closed = ours.get("additionalProperties") is False
    if closed and theirs.get("additionalProperties") is not False and not answer:
        found.append(f"{where}: unknown properties refused")
    for required in set(ours.get("required", [])) - set(theirs.get("required", [])):
        if not answer:
            found.append(f"{where}: requires {required}")
    for key, sub in theirs.get("properties", {}).items():
        if key not in ours.get("properties", {}):
            found.append(f"{where}.{key}: missing")
        else:
            found += narrowings(spec, served, ours["properties"][key], sub, f"{where}.{key}",
                                name, answer)
    if "items" in theirs:
        found += narrowings(spec, served, ours.get("items", {}), theirs["items"],
                            f"{where}[]", name, answer)
    extra = {k for k in ours if k not in theirs} - LIMITS - {
        "description", "example", "default", "title", "format", "nullable", "readOnly",
        "writeOnly", "pattern", "enum", "required", "properties", "items", "type",
        "additionalProperties"}
    if extra:
        found.append(f"{where}: adds {sorted(extra)}")
    return found


def _operations(document: dict) -> dict[tuple[str, str], dict]:
    """Operations by (method, path with its parameters unnamed)."""
    return {(method, re.sub(r"\{[^}]+\}", "{}", path)): operation
            for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS}


def _json_schema(part: dict | None, spec: dict) -> dict | None:
    if part and "$ref" in part:
        part = spec["components"]["requestBodies"][part["$ref"].rsplit("/", 1)[-1]]
    return ((part or {}).get("content", {}).get("application/json") or {}).get("schema")


def test_every_operation_of_the_spec_is_served(spec, served):
    missing = set(_operations(spec)) - set(_operations(served))
    assert not missing


def test_no_request_body_the_spec_allows_is_narrowed(spec, served):
    ours = _operations(served)
    found = []
    for key, operation in _operations(spec).items():
        schema = _json_schema(operation.get("requestBody"), spec)
        if schema is not None:
            served_schema = _json_schema(ours[key].get("requestBody"), served)
            found += narrowings(spec, served, served_schema or {}, schema, " ".join(key))
    assert found == []


def test_no_query_parameter_the_spec_allows_is_narrowed(spec, served):
    ours = _operations(served)
    found = []
    for key, operation in _operations(spec).items():
        served_parameters = {(p["in"], p["name"]): p
                             for p in ours[key].get("parameters", [])}
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            mine = served_parameters.get(("query", parameter["name"]))
            if mine is None:
                found.append(f"{' '.join(key)} ?{parameter['name']}: missing")
            else:
                found += narrowings(spec, served, mine["schema"], parameter["schema"],
                                    f"{' '.join(key)} ?{parameter['name']}")
    assert found == []


def test_every_answer_the_spec_describes_stays_within_its_schema(spec, served):
    ours = _operations(served)
    found = []
    for key, operation in _operations(spec).items():
        for status, response in operation.get("responses", {}).items():
            schema = _json_schema(response, spec)
            served_response = ours[key].get("responses", {}).get(status)
            if schema is not None and served_response is not None:
                found += narrowings(spec, served, _json_schema(served_response, served) or {},
                                    schema, f"{' '.join(key)} {status}", answer=True)
    assert found == []


def test_the_comparison_sees_a_narrowed_schema():
    """The check above can fail: a read-only, nullable, required id is three findings."""
    spec = {"components": {"schemas": {"Tag": {"type": "object", "properties": {
        "id": {"type": "integer"}}}}}}
    served = {"components": {"schemas": {"Tag": {"type": "object", "required": ["id"],
                                                 "properties": {"id": {
                                                     "type": "integer", "readOnly": True,
                                                     "nullable": True}}}}}}
    ref = {"$ref": "#/components/schemas/Tag"}
    assert len(narrowings(spec, served, ref, ref, "Tag")) == 3
