"""The OpenAPI schema, made to say what the app does where FastAPI's defaults do not.

- Errors: every 4xx/5xx answer is RFC 9457 problem details (`application/problem+json`),
  OpenAI's error envelope on /v1; guarded routes answer 401, routes with input 422 (FastAPI
  documents its own `HTTPValidationError` JSON instead, which the app never sends), routes
  with a body 400 (unparseable) and 413 (over the limit).
- Forms: a multipart field cannot be null (it is left out instead), and the form fields a
  route does not declare are refused, so multipart bodies are flattened into one object
  without `null` alternatives and with `additionalProperties: false`.

The API fuzzer (tests/test_fuzz_api.py) checks every response against this schema.
"""

import json
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from api.problems import DESCRIPTIONS, OpenAIError, Problem

Schema = dict[str, Any]
NULL = {"type": "null"}


def install(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> Schema:
        if app.openapi_schema is None:
            schema = build()
            _document_errors(schema)
            _flatten_forms(schema)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _document_errors(schema: dict[str, Any]) -> None:
    """Make the OpenAPI schema say what errors look like: problem+json (OpenAI's envelope on
    /v1) for every 4xx/5xx response, 401 on guarded routes, 422 on routes with input."""
    _, defs = models_json_schema(
        [(Problem, "serialization"), (OpenAIError, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(defs["$defs"])
    for path, item in schema.get("paths", {}).items():
        v1 = path.startswith("/v1/")
        media = "application/json" if v1 else "application/problem+json"
        body = {"$ref": "#/components/schemas/" + ("OpenAIError" if v1 else "Problem")}
        for operation in item.values():
            answers = operation.setdefault("responses", {})
            if operation.get("security"):
                answers.setdefault("401", {"description": DESCRIPTIONS[401]})
                answers["401"]["headers"] = {
                    "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}
                }
            if operation.get("parameters") or "requestBody" in operation:
                answers.setdefault("422", {})
            if "requestBody" in operation:  # unparseable; over the body limit (BodyLimit)
                answers.setdefault("400", {})
                answers.setdefault("413", {})
            for status, answer in answers.items():
                if status.isdigit() and int(status) >= 400:
                    answer["content"] = {media: {"schema": body}}
                    if answer.get("description") in (None, "Validation Error"):
                        answer["description"] = DESCRIPTIONS.get(int(status), "Error.")
    text = json.dumps(schema["paths"])  # FastAPI's validation error models, if now unused
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'/{unused}"' not in text:
            components.pop(unused, None)


def _operations(schema: Schema):
    for item in schema.get("paths", {}).values():
        yield from item.values()


def _resolve(node: Schema, components: Schema) -> Schema:
    while "$ref" in node:
        node = components[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _without_null(prop: Schema) -> Schema:
    alternatives = [a for a in prop.get("anyOf", []) if a != NULL]
    if "anyOf" not in prop or len(alternatives) == len(prop["anyOf"]):
        return prop
    rest = {k: v for k, v in prop.items() if k != "anyOf"}
    if rest.get("default", 0) is None:
        del rest["default"]
    if len(alternatives) == 1:
        return {**rest, **alternatives[0]}
    return {**rest, "anyOf": alternatives}


def _flat_object(node: Schema, components: Schema) -> tuple[Schema, list[str]]:
    node = _resolve(node, components)
    properties: Schema = {}
    required: list[str] = []
    for part in node.get("allOf", []):
        more, needed = _flat_object(part, components)
        properties.update(more)
        required += needed
    properties.update(node.get("properties", {}))
    required += node.get("required", [])
    return properties, required


def _flatten_forms(schema: Schema) -> None:
    components = schema.get("components", {}).get("schemas", {})
    for operation in _operations(schema):
        form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
        if form is None:
            continue
        properties, required = _flat_object(form["schema"], components)
        form["schema"] = {
            "type": "object",
            "properties": {name: _without_null(p) for name, p in properties.items()},
            "required": sorted(set(required)),
            "additionalProperties": False,
        }
