"""The API as a contract: the OpenAPI document is complete, consistent and committed.

Checked on the document the app serves, so that a new route is covered by itself.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from anxin.i18n import choose, negotiate
from api.contract import KEBAB_SEGMENT, TAGS, decode_cursor, encode_cursor, page_list
from boot.openapi_doc import DOC, current, render

V1 = "/api/v1"
METHODS = {"get", "post", "put", "patch", "delete"}
TAG_NAMES = {t["name"] for t in TAGS}
BINARY = {
    "image/png",
    "image/jpeg",
    "image/svg+xml",
    "text/csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.apple.mpegurl",
    "video/mp2t",
    "video/mp4",
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return current()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def test_committed_document_is_current(doc: dict[str, Any]) -> None:
    """docs/openapi.json is what the app serves: regenerate with
    `uv run python -m boot.openapi_doc` (and the TS client: clients/miniprogram)."""
    assert DOC.read_text(encoding="utf-8") == render(doc), (
        "docs/openapi.json drifted from the app: run `uv run python -m boot.openapi_doc`"
    )


def test_every_operation_has_a_readable_unique_id_and_a_known_tag(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    for oid in ids:
        assert re.fullmatch(r"[a-z][a-zA-Z0-9]+", oid), oid
        assert "Api" not in oid and "_" not in oid, oid
    for method, path, op in operations(doc):
        assert op.get("tags") and set(op["tags"]) <= TAG_NAMES, (method, path, op.get("tags"))
        assert op.get("summary"), (method, path)


def test_paths_are_kebab_case(doc: dict[str, Any]) -> None:
    for path in doc["paths"]:
        for segment in path.strip("/").split("/"):
            assert KEBAB_SEGMENT.match(segment), (path, segment)


def test_every_success_has_a_declared_body(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        ok = [s for s in op["responses"] if s.startswith("2")]
        assert len(ok) == 1, (method, path, ok)
        content = op["responses"][ok[0]].get("content", {})
        assert content, (method, path, "no response body declared")
        for media, spec in content.items():
            schema = spec.get("schema", {})
            if media in BINARY:
                continue
            assert media == "application/json", (method, path, media)
            resolved = resolve(doc, schema)
            # A JSON body is an object with declared properties: never a bare array or `{}`.
            assert resolved.get("type") == "object" or "oneOf" in resolved, (method, path)
            assert resolved.get("properties") or "oneOf" in resolved, (method, path)


def test_every_error_status_carries_the_real_error_body(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 body is not what we send
    error = schemas["ErrorBody"]
    assert error["required"] == ["error"]
    info = schemas["ErrorInfo"]
    assert {"code", "message", "message_zh", "message_en", "request_id"} <= set(info["required"])
    for method, path, op in operations(doc):
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        assert "400" in errors, (method, path)
        has_input = bool(op.get("parameters")) or "requestBody" in op
        assert ("422" in errors) == has_input, (method, path)
        if op.get("security"):
            assert {"401", "403"} <= set(errors), (method, path)
        if "{" in path:
            assert "404" in errors, (method, path)
        for status, response in errors.items():
            if (path, status) == ("/readyz", "503"):
                continue  # readiness reports its checks, not an error
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
            assert response["description"], (method, path, status)


def test_bearer_security_scheme(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    public = {
        "/healthz",
        "/readyz",
        f"{V1}/auth/wechat/login",
        f"{V1}/auth/staff/login",
        f"{V1}/auth/refresh",
        f"{V1}/auth/logout",
        f"{V1}/communities/{{community_id}}/pass-key",
        # a viewing ticket in the path is the credential (players cannot send headers)
        f"{V1}/video/live/{{camera_id}}/{{ticket}}/index.m3u8",
        f"{V1}/video/live/{{camera_id}}/{{ticket}}/{{segment}}",
    }
    for method, path, op in operations(doc):
        if path in public:
            assert not op.get("security"), path
        else:
            assert op.get("security") == [{"bearer": []}], (method, path)


def test_collections_have_one_shape(doc: dict[str, Any]) -> None:
    """Every list is {items, next}; it takes `cursor` and a bounded `limit`."""
    pages = 0
    for method, path, op in operations(doc):
        params = {p["name"]: p for p in op.get("parameters", [])}
        assert "offset" not in params and "before_id" not in params, (method, path)
        ok = next(s for s in op["responses"] if s.startswith("2"))
        content = op["responses"][ok].get("content", {}).get("application/json")
        if not content:
            continue
        schema = resolve(doc, content["schema"])
        props = schema.get("properties", {})
        for name, prop in props.items():
            if prop.get("type") == "array" and name not in ("items",):
                item = resolve(doc, prop.get("items", {}))
                # Nested arrays inside one resource are parts of it (actions, roles, the
                # tree); an array of records with ids is a collection and must be a Page.
                assert not (method == "get" and "id" in item.get("properties", {})) or (
                    path.endswith(("/tree", "/deletions", "/face-library"))
                ), (method, path, name)
        if "items" in props and "next" in props:
            pages += 1
            assert set(schema["required"]) >= {"items", "next"}
            if method == "get":
                assert "cursor" in params and "limit" in params, (method, path)
                limit = params["limit"]["schema"]
                assert limit["minimum"] == 1 and limit["maximum"] <= 200, (method, path)
    assert pages >= 20


def test_times_are_one_format(doc: dict[str, Any]) -> None:
    """Every *_at field is an ISO 8601 date-time string (never an epoch number)."""
    found = 0
    for name, schema in doc["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            if not field.endswith(("_at", "_after")) or field == "warning_at":  # a head count
                continue
            options = prop.get("anyOf", [prop])
            kinds = {o.get("type") for o in options}
            assert kinds <= {"string", "null"}, (name, field, prop)
            assert any(o.get("format") == "date-time" for o in options), (name, field, prop)
            found += 1
    assert found > 10


def test_idempotency_key_on_the_retried_operations(doc: dict[str, Any]) -> None:
    wanted = {"openDoor", "acceptIntercomCall", "createPass", "enrollFacePhoto"}
    wanted |= {"enrollFaceLiveness", "replaceDevice"}
    for _, _, op in operations(doc):
        names = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
        assert ("Idempotency-Key" in names) == (op["operationId"] in wanted), op["operationId"]


@pytest.mark.parametrize(
    ("header", "stored", "expected"),
    [
        ("en-US,en;q=0.9", None, "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh"),
        ("en;q=0.1, zh", None, "zh"),  # q-values, not order, decide
        ("zh-Hans", "en", "zh"),
        ("zh-TW", None, "zh"),
        ("fr-FR, en-GB;q=0.5", None, "en"),
        ("fr", "en", "en"),  # nothing we have: the resident's setting
        ("fr", None, "zh"),
        ("", "en", "en"),
        (None, None, "zh"),
        ("*", None, "zh"),
        ("zh;q=0, *;q=0.5", None, "en"),
        ("en;q=abc, zh", None, "zh"),  # a malformed entry is skipped
        ("EN", None, "en"),
    ],
)
def test_accept_language_negotiation(header: str | None, stored: str | None, expected: str) -> None:
    assert choose(header, stored) == expected


def test_negotiate_names_nothing_for_unsupported() -> None:
    assert negotiate("de, fr;q=0.8") is None


def test_cursor_round_trip_and_refusal() -> None:
    assert decode_cursor(encode_cursor(2**62)) == 2**62
    assert decode_cursor(None) is None
    for bad in ("!!", "e30", encode_cursor(5)[:-2] + "xx", "eyJrIjoiYSJ9"):
        with pytest.raises(Exception) as info:
            decode_cursor(bad)
        assert getattr(info.value, "code", "") == "invalid_cursor"


def test_page_list_walks_every_item_once() -> None:
    items = list(range(1, 24))
    seen: list[int] = []
    cursor = None
    while True:
        page, cursor = page_list(items, cursor, 5, lambda i: i, descending=True)
        seen += page
        if cursor is None:
            break
    assert seen == sorted(items, reverse=True)
