"""API conventions every endpoint shares: problem+json errors, no trailing slash, request ids, throttling."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from rest_framework.throttling import AnonRateThrottle

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "errors", "request_id"}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    return body


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v1/carparks/", "/api/v2/carparks", "/nothing/here", "/api/v1/me/"]
)
def test_unknown_routes_and_trailing_slashes_get_the_404_problem(db, path):
    assert_problem(Client().get(path), 404, "not_found")


def test_unknown_car_park_is_a_404_problem(db, anon):
    assert_problem(anon.get("/api/v1/carparks/999999"), 404, "not_found")


def test_wrong_method_is_a_405_problem_with_allow(db, anon):
    response = anon.delete("/api/v1/auth/register")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_non_json_body_is_a_415_problem(db, anon):
    response = anon.post("/api/v1/auth/register", data="email=a@b.c", content_type="application/x-www-form-urlencoded")
    assert_problem(response, 415, "unsupported_media_type")


def test_malformed_json_is_a_400_problem(db, anon):
    body = assert_problem(
        anon.post("/api/v1/auth/register", data="{not json", content_type="application/json"), 400, "malformed_json"
    )
    assert body["detail"]


def test_validation_errors_list_field_code_and_message(db, anon):
    body = assert_problem(
        anon.post("/api/v1/auth/register", {"email": "not-an-email"}, format="json"), 400, "validation_error"
    )
    by_field = {error["field"]: error for error in body["errors"]}
    assert by_field["email"]["code"] == "invalid"
    assert by_field["password"]["code"] == "required"
    assert all(error["message"] for error in body["errors"])


def test_bad_token_is_a_401_problem(db, anon):
    anon.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    body = assert_problem(anon.get("/api/v1/me"), 401, "token_not_valid")
    assert body["errors"] == []


def test_every_response_has_a_request_id_and_a_valid_one_is_echoed(db, anon):
    generated = anon.get("/api/v1/carparks")
    assert len(generated["X-Request-ID"]) == 32
    echoed = anon.get("/api/v1/carparks", HTTP_X_REQUEST_ID="client-req-0001")
    assert echoed["X-Request-ID"] == "client-req-0001"
    hostile = anon.get("/api/v1/carparks", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert hostile["X-Request-ID"] != "bad id\nwith newline"
    problem = anon.get("/api/v1/carparks/0", HTTP_X_REQUEST_ID="client-req-0002")
    assert problem.json()["request_id"] == "client-req-0002"


def test_log_lines_carry_the_request_id(db, anon, caplog):
    from backend.core.logging import RequestIdFilter

    handler_filter = RequestIdFilter()
    with caplog.at_level(logging.WARNING, logger="django.request"), caplog.at_level(logging.WARNING):
        caplog.handler.addFilter(handler_filter)
        anon.get("/api/v1/carparks/0", HTTP_X_REQUEST_ID="trace-me-12345")
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records, "Django logs the 404"
    assert records[0].request_id == "trace-me-12345"


def test_anonymous_clients_are_throttled_with_a_429_problem(db, anon, monkeypatch):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "3/minute"})
    statuses = [anon.get("/api/v1/carparks", REMOTE_ADDR="203.0.113.77").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = anon.get("/api/v1/carparks", REMOTE_ADDR="203.0.113.77")
    assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_openapi_schema_lists_error_responses_as_problems():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    create = schema["paths"]["/api/v1/carparks"]["post"]["responses"]
    assert {"201", "400", "401", "403", "409", "415", "422", "429"} <= set(create)
    assert "application/problem+json" in create["400"]["content"]
    detail = schema["paths"]["/api/v1/carparks/{id}"]["get"]["responses"]
    assert {"200", "404"} <= set(detail)
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["required"]) >= {"type", "title", "status", "detail", "code", "errors"}
    assert not any(path.endswith("/") for path in schema["paths"] if path.startswith("/api/v1/"))


def test_docs_page_renders(db):
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
    assert Client().get("/api/schema/").status_code == 200
