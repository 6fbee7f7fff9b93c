"""One error body for every error: ``application/problem+json`` (RFC 9457).

``{type, title, status, detail, code, errors: [{field, code, message}], request_id}``. Domain
exceptions carry their own status and code; views never build error bodies by hand.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from backend.core.logging import current_request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://parking.example/problems/"

# Stable codes for DRF's own exceptions, by class.
_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "validation_error",
}

_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class DomainError(Exception):
    """A refusal the API reports as a problem. Subclasses set ``status`` and ``code``."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.errors = errors or []
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Unprocessable(DomainError):
    status = 422
    code = "unprocessable"
    title = "Unprocessable content"


class InvalidInput(DomainError):
    """A field-level refusal raised by a service (the same shape as serializer validation)."""

    status = 400
    code = "validation_error"
    title = "Invalid input"

    def __init__(self, field: str | None, message: str, *, code: str = "invalid") -> None:
        super().__init__(message, errors=[{"field": field, "code": code, "message": message}])


def problem_body(
    status_code: int,
    *,
    code: str,
    detail: str,
    title: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"{PROBLEM_TYPE_BASE}{code.replace('_', '-')}",
        "title": title or _TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail,
        "code": code,
        "errors": errors or [],
        "request_id": current_request_id(),
    }
    if extra:
        body.update(extra)
    return body


def problem_response(
    status_code: int, *, code: str, detail: str, headers: Mapping[str, str] | None = None, **kwargs: Any
) -> Response:
    return Response(
        problem_body(status_code, code=code, detail=detail, **kwargs),
        status=status_code,
        headers=dict(headers or {}),
        content_type=PROBLEM_CONTENT_TYPE,
    )


def json_problem(status_code: int, *, code: str, detail: str) -> JsonResponse:
    """A problem from plain Django (404/500 handlers, CSRF), outside DRF's machinery."""
    return JsonResponse(
        problem_body(status_code, code=code, detail=detail), status=status_code, content_type=PROBLEM_CONTENT_TYPE
    )


def _flatten(detail: Any, prefix: str | None = None) -> Iterator[dict[str, Any]]:
    """Turn DRF's nested error detail into ``[{field, code, message}]`` with dotted paths."""
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                yield from _flatten(value, prefix)
            else:
                yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail | str) for item in detail):
            for item in detail:
                yield {"field": prefix, "code": getattr(item, "code", "invalid"), "message": str(item)}
        else:
            for index, item in enumerate(detail):
                if item:
                    yield from _flatten(item, f"{prefix}.{index}" if prefix else str(index))
    else:
        yield {"field": prefix, "code": getattr(detail, "code", "invalid"), "message": str(detail)}


def validation_errors(detail: Any) -> list[dict[str, Any]]:
    return list(_flatten(detail))


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: every handled exception becomes a problem response."""
    if isinstance(exc, DomainError):
        return problem_response(
            exc.status,
            code=exc.code,
            detail=exc.detail,
            title=exc.title,
            errors=exc.errors,
            extra=exc.extra,
            headers=exc.headers,
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response

    code = _code_for(exc)
    errors: list[dict[str, Any]] = []
    if isinstance(exc, exceptions.ValidationError):
        errors = validation_errors(exc.detail)
        detail = _("The request has invalid fields: see errors.")
        if errors and all(error["field"] is None for error in errors):
            detail = errors[0]["message"]
    else:
        detail = _detail_text(exc.detail)
    headers = {
        key: value for key, value in response.headers.items() if key in ("Retry-After", "Allow", "WWW-Authenticate")
    }
    return problem_response(response.status_code, code=code, detail=detail, errors=errors, headers=headers)


def _code_for(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.ParseError):
        return "malformed_json"
    if isinstance(exc.detail, Mapping) and isinstance(exc.detail.get("code"), str):
        return str(exc.detail["code"])  # simplejwt's InvalidToken carries {"detail", "code", "messages"}
    detail_code = exc.get_codes()
    if isinstance(detail_code, str) and detail_code not in ("invalid", "error", "parse_error"):
        # e.g. simplejwt's "token_not_valid", DRF's "not_authenticated"
        return detail_code
    for klass, code in _DRF_CODES.items():
        if isinstance(exc, klass):
            return code
    return "error" if exc.status_code >= 500 else "bad_request"


def _detail_text(detail: Any) -> str:
    if isinstance(detail, Mapping):
        inner = detail.get("detail")
        return str(inner) if inner is not None else "; ".join(str(v) for v in detail.values())
    if isinstance(detail, list):
        return "; ".join(str(item) for item in detail)
    return str(detail)


# --- Django-level handlers (unknown routes, server errors, CSRF) -------------------------


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_problem(status.HTTP_404_NOT_FOUND, code="not_found", detail=_("No resource at this path."))


def server_error_view(request: HttpRequest) -> JsonResponse:
    return json_problem(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        code="server_error",
        detail=_("Something went wrong on our side; the request id identifies it in our logs."),
    )


def bad_request_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):  # Django reports a body over its limit as a 400
        return json_problem(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            code="payload_too_large",
            detail=_("The request body is larger than this API accepts."),
        )
    return json_problem(
        status.HTTP_400_BAD_REQUEST, code="bad_request", detail=_("The request could not be understood.")
    )


def permission_denied_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_problem(status.HTTP_403_FORBIDDEN, code="permission_denied", detail=_("You may not do this."))


def csrf_failure_view(request: HttpRequest, reason: str = "") -> JsonResponse:
    return json_problem(status.HTTP_403_FORBIDDEN, code="csrf_failed", detail=f"CSRF check failed: {reason}")
