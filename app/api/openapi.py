"""The API's OpenAPI 3.1 description, served at ``/api/v1/openapi.json``.
A test checks that it describes exactly the routes ``app.url_map`` has."""

from __future__ import annotations

from typing import Any

from ..api_tokens import AUDIENCE

APP_PATH = "/apps/{owner}/{title}"
JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


ERRORS = {
    400: "The request is malformed.",
    401: "No token, or the token is not valid (WWW-Authenticate says which).",
    403: "The app's monthly budget is spent; the message says how much, and until when.",
    404: "No such app, or one the token's user may not see or manage (the same answer).",
    409: "The app's Python environment could not be built (its owner sees uv's message).",
    422: "The app is not valid; `fields` names each wrong field.",
    429: "Too many requests; wait Retry-After seconds.",
    503: "As many apps are running as may, or its Python environment is being prepared; "
    "try again after Retry-After seconds.",
}


def _responses(ok: dict[str, Any], *codes: int) -> dict[str, Any]:
    """``ok`` and the error answers ``codes`` (401 always: every route needs a token)."""
    return ok | {str(code): {"$ref": f"#/components/responses/E{code}"} for code in (401, *codes)}


OWNER_TITLE = [
    {"name": "owner", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "title", "in": "path", "required": True, "schema": {"type": "string"}},
]

TEXT = {"type": "string"}
APP_FIELDS: dict[str, Any] = {
    "title": {**TEXT, "description": "Lowercase letters, digits and hyphens; part of the URL."},
    "framework": {"type": "string", "enum": ["dash", "bokeh"]},
    "description": TEXT,
    "source": {**TEXT, "description": "A Python file in the apps folder (Dash: `path.py:callable`)."},
    "image": {**TEXT, "description": "A container image (cluster backends)."},
    "command": {**TEXT, "description": "With an image: the container's command."},
    "port": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    "cpu": {**TEXT, "examples": ["500m", "1.5"]},
    "memory": {**TEXT, "examples": ["512Mi", "2Gi"]},
    "env": {
        "oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": "string"}}],
        "description": "KEY=VALUE lines, or an object. On an edit, `NAME=********` keeps a stored value.",
    },
    "embed_origins": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "requirements": {
        **TEXT,
        "description": "Local backend: its requirements file in the apps folder (blank: requirements.txt "
        "beside the source). Resolved at publish: requirements that cannot be met are a 422 on this field.",
    },
    "is_public": {"type": "boolean"},
}


def document() -> dict[str, Any]:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Dormouse API",
            "version": "1",
            "description": (
                "Publish, start, stop and read Dash and Bokeh apps. Authenticate with a bearer token "
                "from /account/tokens or `flask tokens issue USER --ttl SECONDS`; cookies are ignored."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/openapi.json": {
                "get": {
                    "summary": "This description",
                    "operationId": "openapi",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
                }
            },
            "/apps": {
                "get": {
                    "summary": "The apps the token's user may see (public ones, their own; admins: all)",
                    "operationId": "listApps",
                    "responses": _responses(
                        {
                            "200": _json(
                                {
                                    "type": "object",
                                    "properties": {"apps": {"type": "array", "items": _ref("App")}},
                                    "required": ["apps"],
                                },
                                "The apps, newest first.",
                            )
                        },
                    ),
                },
                "post": {
                    "summary": "Publish an app (the publish form's rules)",
                    "operationId": "publishApp",
                    "requestBody": {"required": True, "content": {JSON: {"schema": _ref("AppInput")}}},
                    "responses": _responses({"201": _json(_ref("App"), "Published.")}, 400, 422, 429),
                },
            },
            APP_PATH: {
                "parameters": OWNER_TITLE,
                "get": {
                    "summary": "One app",
                    "operationId": "getApp",
                    "responses": _responses({"200": _json(_ref("App"), "The app.")}, 404),
                },
                "patch": {
                    "summary": "Edit your app (title and framework stay); made private, it stops",
                    "operationId": "editApp",
                    "requestBody": {"required": True, "content": {JSON: {"schema": _ref("AppEdit")}}},
                    "responses": _responses({"200": _json(_ref("App"), "Saved.")}, 400, 404, 422, 429),
                },
                "delete": {
                    "summary": "Delete your app (its usage history is kept)",
                    "operationId": "deleteApp",
                    "responses": _responses({"204": {"description": "Deleted."}}, 404),
                },
            },
            f"{APP_PATH}/deployment": {
                "parameters": OWNER_TITLE,
                "get": {
                    "summary": "The status of the app's latest deployment",
                    "operationId": "getDeployment",
                    "responses": _responses({"200": _json(_ref("Deployment"), "Its status.")}, 404),
                },
                "post": {
                    "summary": "Start the app (or find it running); poll GET until `running`",
                    "operationId": "startDeployment",
                    "responses": _responses(
                        {"202": _json(_ref("Deployment"), "Starting (or already live).")},
                        403,
                        404,
                        409,
                        429,
                        503,
                    ),
                },
                "delete": {
                    "summary": "Stop your app's live deployment",
                    "operationId": "stopDeployment",
                    "responses": _responses(
                        {
                            "200": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "stopped": {"type": "boolean"},
                                        "deployment": _ref("Deployment"),
                                    },
                                    "required": ["stopped", "deployment"],
                                },
                                "Whether this call stopped it.",
                            )
                        },
                        404,
                    ),
                },
            },
            f"{APP_PATH}/stats": {
                "parameters": OWNER_TITLE,
                "get": {
                    "summary": "Your app's usage over the last `days` days, and its cost this month",
                    "operationId": "getStats",
                    "parameters": [
                        {
                            "name": "days",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 366, "default": 10},
                        }
                    ],
                    "responses": _responses({"200": _json(_ref("Stats"), "The numbers.")}, 400, 404),
                },
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": f"An API token (HS256 JWT, audience {AUDIENCE!r}).",
                }
            },
            "responses": {f"E{code}": _json(_ref("Error"), text) for code, text in ERRORS.items()},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "status": {"type": "integer"},
                        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                    "required": ["error", "status"],
                },
                "AppInput": {
                    "type": "object",
                    "properties": APP_FIELDS,
                    "required": ["title", "framework"],
                    "additionalProperties": False,
                },
                "AppEdit": {"type": "object", "properties": APP_FIELDS, "additionalProperties": False},
                "App": {
                    "type": "object",
                    "properties": {
                        "owner": TEXT,
                        "title": TEXT,
                        "framework": TEXT,
                        "description": TEXT,
                        "is_public": {"type": "boolean"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "page_url": {"type": "string", "format": "uri"},
                        "viz_url": {"type": "string", "format": "uri"},
                        "state": {
                            "type": "object",
                            "properties": {
                                "label": {
                                    "type": "string",
                                    "enum": ["starting", "running", "asleep", "failed"],
                                },
                                "since": nullable_time,
                            },
                        },
                        "config": {"type": "object", "description": "For its owner and admins only."},
                    },
                    "required": ["owner", "title", "framework", "is_public", "state"],
                },
                "Deployment": {
                    "type": "object",
                    "properties": {
                        "status": {
                            "type": "string",
                            "enum": ["none", "starting", "running", "failed", "stopped"],
                        },
                        "reason": TEXT,
                        "stop_reason": {"type": ["string", "null"]},
                        "phase": TEXT,
                        "url": {"type": ["string", "null"]},
                        "public_name": {"type": ["string", "null"]},
                        "created_at": nullable_time,
                        "ready_at": nullable_time,
                        "latest_load_at": nullable_time,
                        "latest_ping_at": nullable_time,
                        "stopped_at": nullable_time,
                        "elapsed": {"type": "integer"},
                    },
                    "required": ["status"],
                },
                "Stats": {
                    "type": "object",
                    "properties": {
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                        "deployments": {"type": "integer"},
                        "running_seconds": {"type": "number"},
                        "percent_running": {"type": "number"},
                        "cold_starts": {"type": "integer"},
                        "page_loads": {"type": "integer"},
                        "viewer_minutes": {"type": "number"},
                        "stops_by_reason": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "month_cost": {
                            "type": "object",
                            "properties": {
                                k: {"type": "number"}
                                for k in ("running_seconds", "cpu_hours", "gb_hours", "dollars")
                            },
                        },
                    },
                    "required": ["start", "end", "deployments", "running_seconds", "month_cost"],
                },
            },
        },
    }
