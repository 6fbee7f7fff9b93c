"""django-filter filters shared by every app's API."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from backend.core import clock


class AwareIsoDateTimeField(forms.DateTimeField):
    """ISO 8601 with an offset or ``Z``; a naive date-time is refused (400), never read as UTC."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:  # well formed but impossible, e.g. 30 February or 25:00
                parsed = None
            if parsed is None:
                raise ValidationError("Use ISO 8601, e.g. 2026-12-01T08:00:00Z.", code="invalid")
            if timezone.is_naive(parsed):
                raise ValidationError("Give a time zone offset or Z (e.g. 2026-12-01T08:00:00Z).", code="naive")
            if not clock.is_supported(parsed):
                raise ValidationError(clock.SUPPORTED_RANGE_TEXT, code="out_of_range")
            return parsed
        return super().to_python(value)


class AwareIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = AwareIsoDateTimeField


class StrictBooleanField(forms.Field):
    """``true``/``false`` (or 1/0); anything else is an error rather than "no filter"."""

    _VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        parsed = self._VALUES.get(str(value).strip().lower())
        if parsed is None:
            raise ValidationError("Use true or false.", code="invalid")
        return parsed


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


MAX_ID = 2**63 - 1  # a bigint primary key


class IdFilter(django_filters.NumberFilter):
    """A database id: a whole number a bigint holds (anything else is a 400, not an overflow)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)
