"""The OpenAPI 3.1 document of the gateway's HTTP API, written by hand to match the routes exactly.

A test compares its paths and methods with the app's routes, and validates it.
"""

from __future__ import annotations

from typing import Any

from services.gateway import inputs

UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
ASSET_NAME_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$"

Schema = dict[str, Any]
NO_CONTROL_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"


def not_blank_pattern() -> str:
    """At least one character that is not blank (`inputs.is_blank`), as literal ranges both Python and ECMA read."""
    return "[^" + "".join(f"{chr(a)}-{chr(b)}" if a != b else chr(a) for a, b in inputs.blank_ranges()) + "]"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> Schema:
    response: Schema = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str) -> Schema:
    return {"$ref": f"#/components/responses/{description}"}


# Errors any API call can answer with: a bad request, limits, and the backends' state.
_COMMON_ERRORS = {
    "400": _error("BadRequest"),
    "405": _error("MethodNotAllowed"),
    "429": _error("TooManyRequests"),
    "500": _error("Internal"),
    "502": _error("BadGateway"),
    "503": _error("Unavailable"),
    "504": _error("Timeout"),
    "default": _error("Error"),
}


def _errors(*codes: str) -> dict[str, Any]:
    extra = {
        "401": _error("Unauthenticated"),
        "404": _error("NotFound"),
        "409": _error("Conflict"),
        "413": _error("PayloadTooLarge"),
        "415": _error("UnsupportedMediaType"),
        "416": _error("RangeNotSatisfiable"),
    }
    return {**{code: extra[code] for code in codes}, **_COMMON_ERRORS}


def _path_id(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": UUID_PATTERN},
    }


def _links(expression: str, parameter: str, *operations: str) -> dict[str, Any]:
    """OpenAPI links: where a response's id can be used next (fuzzers follow them)."""
    return {op[0].upper() + op[1:]: {"operationId": op, "parameters": {parameter: expression}} for op in operations}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


_SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Machine-readable, e.g. `not_found`."},
                    "message": {"type": "string", "description": "For a person; names the field at fault."},
                },
            },
            "message": {"type": "string", "description": "Only on the original app's routes: the same message."},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "StoryRequest": {
        "type": "object",
        "required": ["prompt"],
        "additionalProperties": False,
        "properties": {
            "prompt": {
                "type": "string",
                "minLength": 1,
                "maxLength": inputs.MAX_PROMPT_CHARS,
                "pattern": not_blank_pattern(),
                "description": "What the story is about; blanks around it are trimmed.",
            },
            "parts": {"type": "integer", "minimum": 1, "maximum": inputs.MAX_PARTS},
            "style": {
                "type": "string",
                "maxLength": inputs.MAX_STYLE_CHARS,
                "pattern": NO_CONTROL_PATTERN,
                "examples": ["Pencil and Ink"],
            },
        },
    },
    "JobError": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    },
    "Job": {
        "type": "object",
        "required": ["id", "state", "stage", "progress", "story_id", "error", "attempts", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "string", "pattern": UUID_PATTERN},
            "state": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "stage": {"type": "string", "examples": ["queued", "writing", "illustrating", "saving", "done"]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "story_id": _nullable({"type": "string"}),
            "error": _nullable(_ref("JobError")),
            "attempts": {"type": "integer", "minimum": 0},
            "created_at": _nullable({"type": "string", "format": "date-time"}),
            "updated_at": _nullable({"type": "string", "format": "date-time"}),
            "prompt": {"type": "string"},
            "parts": {"type": "integer"},
            "style": {"type": "string"},
        },
    },
    "JobEnvelope": {"type": "object", "required": ["job"], "properties": {"job": _ref("Job")}},
    "StorySummary": {
        "type": "object",
        "required": ["id", "title", "created_at", "cover_url"],
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "created_at": _nullable({"type": "string", "format": "date-time"}),
            "cover_url": _nullable({"type": "string"}),
        },
    },
    "StoryList": {
        "type": "object",
        "required": ["stories", "next_cursor"],
        "properties": {
            "stories": {"type": "array", "items": _ref("StorySummary")},
            "next_cursor": _nullable({"type": "string"}),
        },
    },
    "Asset": {
        "type": "object",
        "required": ["url", "cid", "content_type", "size"],
        "properties": {
            "name": {"type": "string"},
            "url": {"type": "string"},
            "cid": {"type": "string"},
            "content_type": {"type": "string"},
            "size": {"type": "integer", "minimum": 0},
        },
    },
    "Part": {
        "type": "object",
        "required": ["index", "title", "text", "image"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "title": {"type": "string"},
            "text": {"type": "string"},
            "image": _nullable(_ref("Asset")),
        },
    },
    "Character": {
        "type": "object",
        "required": ["name", "description"],
        "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
    },
    "Engine": {
        "type": "object",
        "required": ["text_engine", "image_engine", "offline", "label"],
        "properties": {
            "text_engine": {"type": "string"},
            "text_model": {"type": "string"},
            "image_engine": {"type": "string"},
            "image_model": {"type": "string"},
            "offline": {"type": "boolean", "description": "True: the built-in offline engine, not an AI model."},
            "label": {"type": "string", "description": "Which engine made the story, in words."},
        },
    },
    "Story": {
        "type": "object",
        "required": ["id", "title", "prompt", "style", "created_at", "engine", "characters", "parts"],
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "prompt": {"type": "string"},
            "style": {"type": "string"},
            "created_at": _nullable({"type": "string", "format": "date-time"}),
            "format": {"type": "string", "enum": ["manifest", "legacy"]},
            "engine": _ref("Engine"),
            "characters": {"type": "array", "items": _ref("Character")},
            "parts": {"type": "array", "items": _ref("Part")},
        },
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "Ready": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ready"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "LegacyPrompt": {
        "type": "object",
        "required": ["prompt"],
        "properties": {
            "prompt": {
                "type": "string",
                "minLength": 1,
                "maxLength": inputs.MAX_PROMPT_CHARS,
                "pattern": not_blank_pattern(),
            }
        },
    },
    "LegacySubmitted": {
        "type": "object",
        "required": ["message", "jobId"],
        "properties": {"message": {"type": "string", "const": "Job submitted"}, "jobId": {"type": "string"}},
    },
    "LegacyJob": {
        "type": "object",
        "required": ["jobId", "failedReason", "failed", "status"],
        "properties": {
            "jobId": {"type": "string"},
            "failedReason": _nullable({"type": "string"}),
            "failed": {"type": "boolean"},
            "status": {"type": "string", "enum": ["completed", "in progress"]},
        },
    },
    "LegacyStories": {
        "type": "object",
        "required": ["stories"],
        "properties": {
            "stories": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["groupId", "title"],
                    "properties": {"groupId": {"type": "string"}, "title": {"type": "string"}},
                },
            }
        },
    },
    "LegacyStoryParts": {
        "type": "object",
        "required": ["storyParts"],
        "properties": {
            "storyParts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "cid"],
                    "properties": {"name": {"type": "string"}, "cid": {"type": "string"}},
                },
            }
        },
    },
    "LegacyText": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
}

_RESPONSES = {
    "Error": _json(_ref("Error"), "An error."),
    "BadRequest": _json(_ref("Error"), "The request is malformed; the message names the field."),
    "Unauthenticated": _json(_ref("Error"), "A backend's credentials were refused."),
    "NotFound": _json(_ref("Error"), "No such story, job, file or route."),
    "MethodNotAllowed": _json(
        _ref("Error"),
        "The route exists but not with this method.",
        {"Allow": {"schema": {"type": "string"}, "description": "The methods the route takes."}},
    ),
    "Conflict": _json(_ref("Error"), "The resource's state forbids it (e.g. cancelling a finished job)."),
    "PayloadTooLarge": _json(_ref("Error"), "The body is larger than 64 KB."),
    "UnsupportedMediaType": _json(_ref("Error"), "The body is not declared as application/json."),
    "RangeNotSatisfiable": _json(
        _ref("Error"),
        "The byte range lies outside the file.",
        {"Content-Range": {"schema": {"type": "string"}, "description": "`bytes */SIZE`"}},
    ),
    "TooManyRequests": _json(_ref("Error"), "A limit was hit; retry later."),
    "Internal": _json(_ref("Error"), "An unexpected error in the gateway (the message has the request id)."),
    "BadGateway": _json(_ref("Error"), "A backend failed unexpectedly."),
    "Unavailable": _json(_ref("Error"), "A backend is down; retry shortly."),
    "Timeout": _json(_ref("Error"), "A backend did not answer in time."),
}

_REQUEST_ID = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "description": (
        "Echoed back and passed to the backends; one is made up when it is absent or not 1-128 of "
        "`A-Z a-z 0-9 . _ : -`."
    ),
    "schema": {"type": "string"},
}

_EVENT_ID = {"type": "string", "pattern": inputs.EVENT_ID_PATTERN, "examples": ["1700000000000-0"]}

# One message of the stream (comment lines are heartbeats and carry no event).
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "enum": ["progress", "text", "part", "image", "done", "failed"]},
        "id": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json", "description": "A JSON object."},
        "retry": {"type": "integer"},
    },
}

_ASSET_PARAMS = [
    _path_id("story_id", "The story (a draft's files can be read too)."),
    {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "`text_N`, `image_N` or `story.json`.",
        "schema": {"type": "string", "pattern": ASSET_NAME_PATTERN},
    },
    {"name": "Range", "in": "header", "required": False, "schema": {"type": "string", "examples": ["bytes=0-99"]}},
    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
]
_ASSET_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "description": "The file's CID, quoted."},
    "Cache-Control": {"schema": {"type": "string"}, "description": "`public, max-age=31536000, immutable`"},
    "Content-Length": {"schema": {"type": "integer"}},
}
_BYTES = {"*/*": {"schema": {"type": "string", "format": "binary"}}}


def _asset_operation(summary: str, with_body: bool) -> Schema:
    content = {"content": _BYTES} if with_body else {}
    return {
        "summary": summary,
        "tags": ["stories"],
        "parameters": _ASSET_PARAMS,
        "responses": {
            "200": {"description": "The whole file.", "headers": _ASSET_HEADERS, **content},
            "206": {
                "description": "The requested byte range.",
                "headers": {**_ASSET_HEADERS, "Content-Range": {"schema": {"type": "string"}}},
                **content,
            },
            "304": {"description": "The client's copy (If-None-Match) is current.", "headers": _ASSET_HEADERS},
            **_errors("404", "416"),
        },
    }


def _paths() -> dict[str, Any]:
    story_id = _path_id("story_id", "The story's id.")
    job_id = _path_id("job_id", "The job's id.")
    legacy_note = "The original DreamForge app's route, kept for its page and scripts."
    return {
        "/api/v1/stories": {
            "post": {
                "summary": "Start writing a story",
                "tags": ["stories"],
                "operationId": "submitStory",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "The same key returns the same job.",
                        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
                    },
                    _REQUEST_ID,
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("StoryRequest")}}},
                "responses": {
                    "202": {
                        **_json(
                            _ref("JobEnvelope"),
                            "The job is queued.",
                            {"Location": {"schema": {"type": "string"}, "description": "/api/v1/jobs/{id}"}},
                        ),
                        "links": _links("$response.body#/job/id", "job_id", "getJob", "cancelJob", "watchJob"),
                    },
                    **_errors("409", "413", "415"),
                },
            },
            "get": {
                "summary": "The library: committed stories, newest first",
                "tags": ["stories"],
                "operationId": "listStories",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "`next_cursor` of the previous page.",
                        "schema": {"type": "string", "maxLength": inputs.MAX_CURSOR_CHARS},
                    },
                    {
                        "name": "q",
                        "in": "query",
                        "description": "Case-insensitive part of the title.",
                        "schema": {"type": "string", "maxLength": inputs.MAX_QUERY_CHARS},
                    },
                ],
                "responses": {
                    "200": {
                        **_json(_ref("StoryList"), "One page of stories."),
                        "links": _links(
                            "$response.body#/stories/0/id", "story_id", "getStory", "deleteStory", "legacyGetStory"
                        ),
                    },
                    **_errors(),
                },
            },
        },
        "/api/v1/stories/{story_id}": {
            "parameters": [story_id],
            "get": {
                "summary": "One story: title, characters, parts with pictures, engine",
                "tags": ["stories"],
                "operationId": "getStory",
                "responses": {
                    "200": {
                        **_json(_ref("Story"), "The story."),
                        "links": {
                            "LegacyGetPart": {
                                "operationId": "legacyGetPart",
                                "parameters": {"story_id": "$response.body#/id", "part": "text_0"},
                            },
                            "GetAsset": {
                                "operationId": "getAsset",
                                "parameters": {"story_id": "$response.body#/id", "name": "image_0"},
                            },
                        },
                    },
                    **_errors("404"),
                },
            },
            "delete": {
                "summary": "Delete a story and its files",
                "tags": ["stories"],
                "operationId": "deleteStory",
                "responses": {"204": {"description": "Deleted."}, **_errors("404", "409")},
            },
        },
        "/api/v1/stories/{story_id}/assets/{name}": {
            "get": {**_asset_operation("One file of a story, streamed", True), "operationId": "getAsset"},
            "head": {**_asset_operation("One file's headers", False), "operationId": "headAsset"},
        },
        "/api/v1/jobs/{job_id}": {
            "parameters": [job_id],
            "get": {
                "summary": "A job's state",
                "tags": ["jobs"],
                "operationId": "getJob",
                "responses": {"200": _json(_ref("Job"), "The job."), **_errors("404")},
            },
            "delete": {
                "summary": "Cancel a queued or running job",
                "tags": ["jobs"],
                "operationId": "cancelJob",
                "responses": {"200": _json(_ref("Job"), "The job, now cancelled."), **_errors("404", "409")},
            },
        },
        "/api/v1/jobs/{job_id}/events": {
            "parameters": [job_id],
            "get": {
                "summary": "The job's events as Server-Sent Events",
                "description": (
                    "One SSE message per event (`progress`, `text`, `part`, `image`, `done`, `failed`), each with "
                    "an `id:` line and JSON data. Resume with the `Last-Event-ID` header (what EventSource sends "
                    "when it reconnects; the same pattern as `last_event_id`, and it wins over it) or "
                    "`?last_event_id=`; comment lines are heartbeats. The stream ends after `done` or `failed`."
                ),
                "tags": ["jobs"],
                "operationId": "watchJob",
                "parameters": [
                    {"name": "last_event_id", "in": "query", "required": False, "schema": _EVENT_ID},
                ],
                "responses": {
                    "200": {
                        "description": "The event stream.",
                        "content": {"text/event-stream": {"schema": _SSE_EVENT}},
                    },
                    **_errors("404"),
                },
            },
        },
        "/api/v1/admin/reindex": {
            "post": {
                "summary": "Rebuild the library index from the stored stories",
                "description": "Used by `dreamforge reindex`. Takes no body.",
                "tags": ["meta"],
                "operationId": "reindex",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["story_count"],
                            "properties": {"story_count": {"type": "integer", "minimum": 0}},
                        },
                        "The index now lists this many stories.",
                    ),
                    **_errors("413"),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "tags": ["meta"],
                "operationId": "openapi",
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document."), **_errors()},
            }
        },
        "/healthz": {
            "get": {
                "summary": "The process is alive",
                "tags": ["meta"],
                "operationId": "healthz",
                "responses": {"200": _json(_ref("Health"), "Alive."), **_errors()},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Storage and generator answer their gRPC health checks",
                "tags": ["meta"],
                "operationId": "readyz",
                "responses": {"200": _json(_ref("Ready"), "Ready."), **_errors()},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "tags": ["meta"],
                "operationId": "metrics",
                "responses": {
                    "200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    **_errors(),
                },
            }
        },
        "/api/stories": {
            "post": {
                "summary": "Start a story (original API)",
                "description": legacy_note,
                "tags": ["legacy"],
                "operationId": "legacySubmitStory",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("LegacyPrompt")}}},
                "responses": {
                    "202": {
                        **_json(_ref("LegacySubmitted"), "Queued."),
                        "links": _links("$response.body#/jobId", "job_id", "legacyGetJob"),
                    },
                    **_errors("413", "415"),
                },
            },
            "get": {
                "summary": "Every story, oldest first (original API)",
                "description": legacy_note + " 404 `Index not found` while there is no story.",
                "tags": ["legacy"],
                "operationId": "legacyListStories",
                "responses": {"200": _json(_ref("LegacyStories"), "The stories."), **_errors("404")},
            },
        },
        "/api/jobs": {
            "post": {
                "summary": "Start a story (original API)",
                "description": legacy_note,
                "tags": ["legacy"],
                "operationId": "legacySubmitJob",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("LegacyPrompt")}}},
                "responses": {
                    "202": {
                        **_json(_ref("LegacySubmitted"), "Queued."),
                        "links": _links("$response.body#/jobId", "job_id", "legacyGetJob"),
                    },
                    **_errors("413", "415"),
                },
            }
        },
        "/api/jobs/{job_id}": {
            "get": {
                "summary": "A job's status (original API)",
                "description": legacy_note + " 404 `Job not found` for an unknown id.",
                "tags": ["legacy"],
                "operationId": "legacyGetJob",
                "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("LegacyJob"), "The job."), **_errors("404")},
            }
        },
        "/api/stories/{story_id}": {
            "get": {
                "summary": "A story's part files (original API)",
                "description": legacy_note,
                "tags": ["legacy"],
                "operationId": "legacyGetStory",
                "parameters": [{"name": "story_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("LegacyStoryParts"), "The part files."), **_errors("404")},
            }
        },
        "/api/stories/{story_id}/{part}": {
            "get": {
                "summary": "One part: `{text}` for text_N, the picture for image_N (original API)",
                "description": legacy_note + " 404 `Part not found` for anything else.",
                "tags": ["legacy"],
                "operationId": "legacyGetPart",
                "parameters": [
                    {"name": "story_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "part", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": '`{"text"}` for a text part; the image bytes for a picture.',
                        "content": {"application/json": {"schema": _ref("LegacyText")}, "image/*": _BYTES["*/*"]},
                    },
                    "304": {"description": "The client's copy of the picture is current."},
                    **_errors("404", "416"),
                },
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DreamForge",
            "version": "1.0.0",
            "description": (
                "Illustrated stories from a one-line prompt. Errors are always "
                '`{"error": {"code": "...", "message": "..."}}`; request bodies are limited to 64 KB.'
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "stories"},
            {"name": "jobs"},
            {"name": "meta"},
            {"name": "legacy", "description": "The original DreamForge app's API."},
        ],
        "paths": _paths(),
        "components": {"schemas": _SCHEMAS, "responses": _RESPONSES},
    }
