"""Serializer fields shared by every app's API."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from backend.core import clock


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time with an offset or ``Z``; a naive one is refused, never guessed."""

    default_error_messages = {
        **serializers.DateTimeField.default_error_messages,
        "naive": "Give a time zone offset or Z (e.g. 2026-12-01T08:00:00Z).",
        "out_of_range": clock.SUPPORTED_RANGE_TEXT,
    }

    def to_internal_value(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                raw = parse_datetime(value.strip())
            except ValueError:  # well formed but impossible: DRF's own parse says so below
                raw = None
            if raw is not None and not clock.is_supported(raw):
                self.fail("out_of_range")
            parsed = super().to_internal_value(value)
            if raw is not None and timezone.is_naive(raw):
                self.fail("naive")
            return parsed
        return super().to_internal_value(value)
