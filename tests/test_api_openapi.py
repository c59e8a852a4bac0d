"""The OpenAPI description: it describes exactly the API's routes, its
structure holds (openapi-spec-validator is not installed: the checks are
ours, and every schema is checked as JSON Schema 2020-12 with jsonschema),
and the API's real answers match the schemas it documents."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource

from app.api.openapi import document
from tests.factories import bearer, make_app, make_token

METHODS = {"get", "post", "patch", "delete", "put"}
PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def api_routes(app) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every API route in ``app.url_map``."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        path = PARAM.sub(r"{\1}", rule.rule.removeprefix("/api/v1"))
        found |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def described(doc: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, item in doc["paths"].items() for method in item if method in METHODS}


def test_the_document_describes_every_api_route_and_no_other(app):
    assert api_routes(app) == described(document())
    assert len(api_routes(app)) == 10


def _refs(node, found: list[str]) -> list[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                found.append(value)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)
    return found


def test_the_structure_holds():
    doc = document()
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["bearer"] == {
        **doc["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    operation_ids = []
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{([a-z_]+)}", path)), path
        assert all(p["required"] is True for p in item.get("parameters", []) if p["in"] == "path")
        for method, op in item.items():
            if method not in METHODS:
                continue
            operation_ids.append(op["operationId"])
            assert op["summary"] and op["responses"], (path, method)
            assert all(re.fullmatch(r"[1-5]\d\d", code) for code in op["responses"]), (path, method)
            assert any(code.startswith("2") for code in op["responses"]), (path, method)
            if op.get("security", doc["security"]):  # every route that needs a token documents the 401
                assert "401" in op["responses"], (path, method)
    assert len(operation_ids) == len(set(operation_ids))
    for ref in _refs(doc, []):  # every reference resolves inside the document
        node = doc
        assert ref.startswith("#/"), ref
        for part in ref[2:].split("/"):
            node = node[part]
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def validator(name: str) -> Draft202012Validator:
    doc = document()
    resource = Resource.from_contents({**doc, "$schema": "https://json-schema.org/draft/2020-12/schema"})
    registry = Registry().with_resource("urn:dormouse-api", resource)
    return Draft202012Validator({"$ref": f"urn:dormouse-api#/components/schemas/{name}"}, registry=registry)


def test_the_answers_match_their_schemas(app, client, fake_backend, alice):
    make_app(alice, "wave", env="A=1")
    auth = bearer(make_token(alice))
    for path, schema in (
        ("/api/v1/apps/alice/wave", "App"),
        ("/api/v1/apps/alice/wave/deployment", "Deployment"),
        ("/api/v1/apps/alice/wave/stats", "Stats"),
        ("/api/v1/apps/alice/nothing", "Error"),
    ):
        validator(schema).validate(client.get(path, headers=auth).get_json())
    validator("Deployment").validate(
        client.post("/api/v1/apps/alice/wave/deployment", headers=auth, csrf=False).get_json()
    )
    validator("Error").validate(
        client.post("/api/v1/apps", json={"title": "x"}, headers=auth, csrf=False).get_json()
    )
    for listed in client.get("/api/v1/apps", headers=auth).get_json()["apps"]:
        validator("App").validate(listed)
    with pytest.raises(ValidationError):  # and the schemas can refuse: a wrong answer fails
        validator("App").validate({"owner": "alice"})


def test_the_document_is_served_without_a_token(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.get_json() == document()
