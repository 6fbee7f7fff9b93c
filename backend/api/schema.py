"""OpenAPI: every operation lists its error responses as problem documents, not only successes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers

from backend.api.errors import PROBLEM_CONTENT_TYPE


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="Dotted path of the field, null for the whole request.")
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `required`, `max_value`.")
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, with a stable ``code`` and field errors."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = FieldErrorSerializer(many=True)  # type: ignore[assignment]  # the wire name, not Serializer.errors
    request_id = serializers.CharField()


_ERRORS_BY_METHOD = {
    "GET": ("400", "401", "403", "404", "429"),
    "HEAD": ("400", "401", "403", "404", "429"),
    "DELETE": ("401", "403", "404", "409", "429"),
    "POST": ("400", "401", "403", "404", "409", "415", "422", "429"),
    "PUT": ("400", "401", "403", "404", "409", "415", "422", "429"),
    "PATCH": ("400", "401", "403", "404", "409", "415", "422", "429"),
}

_DESCRIPTIONS = {
    "400": "Invalid input: malformed JSON or field errors (see `errors`).",
    "401": "Missing or invalid credentials.",
    "403": "Authenticated, but this role may not do this.",
    "404": "No such resource, or not yours to see.",
    "409": "Conflicts with the current state (e.g. full, already changed); may carry Retry-After.",
    "415": "Body is not application/json.",
    "422": "Understood but refused (e.g. Idempotency-Key reused with another body).",
    "429": "Too many requests; retry after the Retry-After header.",
}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for status_code in _ERRORS_BY_METHOD.get(self.method, ()):
            if status_code in responses:
                continue
            response = self._get_response_for_code(
                ProblemSerializer, status_code, media_types=[PROBLEM_CONTENT_TYPE], direction=direction
            )
            response["description"] = _DESCRIPTIONS[status_code]
            responses[status_code] = response
        return responses
