"""Search parameters for ``GET /api/v1/carparks``, validated by django-filter's form."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from backend.api.filters import StrictBooleanFilter
from backend.carparks.models import CarPark
from backend.carparks.selectors import carparks_near

DEFAULT_RADIUS_KM = 5
MAX_RADIUS_KM = 50


def _positive(value: Decimal) -> None:
    if value is not None and value <= 0:
        raise ValidationError("Must be greater than 0.", code="min_value")


class CarParkSearchForm(forms.Form):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        lat, lng, radius = cleaned.get("lat"), cleaned.get("lng"), cleaned.get("radius_km")
        if (lat is None) != (lng is None) and "lat" not in self.errors and "lng" not in self.errors:
            self.add_error(
                "lng" if lng is None else "lat", ValidationError("Give lat and lng together.", code="required")
            )
        if radius is not None and lat is None and lng is None:
            self.add_error("lat", ValidationError("radius_km needs lat and lng.", code="required"))
        return cleaned


class CarParkFilter(django_filters.FilterSet):
    lat = django_filters.NumberFilter(
        method="filter_noop", min_value=Decimal(-90), max_value=Decimal(90), label="Latitude of the search point"
    )
    lng = django_filters.NumberFilter(
        method="filter_noop", min_value=Decimal(-180), max_value=Decimal(180), label="Longitude of the search point"
    )
    radius_km = django_filters.NumberFilter(
        method="filter_noop",
        max_value=Decimal(MAX_RADIUS_KM),
        validators=[_positive],
        label=f"Search radius in km, in (0, {MAX_RADIUS_KM}]; default {DEFAULT_RADIUS_KM}",
    )
    covered = StrictBooleanFilter(field_name="covered", label="Covered car parks only")
    ev_charging = StrictBooleanFilter(method="filter_ev_charging", label="Has EV charging bays")
    accessible = StrictBooleanFilter(method="filter_accessible", label="Has accessible bays")
    vehicle_height_m = django_filters.NumberFilter(
        method="filter_vehicle_height",
        min_value=Decimal("0.5"),
        max_value=Decimal(10),
        label="Vehicle height in metres: car parks with no limit or a higher one",
    )
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")

    class Meta:
        model = CarPark
        fields: list[str] = []
        form = CarParkSearchForm

    def filter_noop(self, queryset: QuerySet[CarPark], name: str, value: Any) -> QuerySet[CarPark]:
        return queryset  # applied together in filter_queryset

    def filter_ev_charging(self, queryset: QuerySet[CarPark], name: str, value: bool) -> QuerySet[CarPark]:
        return queryset.filter(ev_charging_bays__gt=0) if value else queryset.filter(ev_charging_bays=0)

    def filter_accessible(self, queryset: QuerySet[CarPark], name: str, value: bool) -> QuerySet[CarPark]:
        return queryset.filter(accessible_bays__gt=0) if value else queryset.filter(accessible_bays=0)

    def filter_vehicle_height(self, queryset: QuerySet[CarPark], name: str, value: Decimal) -> QuerySet[CarPark]:
        return queryset.filter(Q(height_limit_m__isnull=True) | Q(height_limit_m__gte=value))

    def filter_queryset(self, queryset: QuerySet[CarPark]) -> QuerySet[CarPark]:
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        if data.get("lat") is not None and data.get("lng") is not None:
            radius = data.get("radius_km") or DEFAULT_RADIUS_KM
            queryset = carparks_near(queryset, lat=float(data["lat"]), lng=float(data["lng"]), radius_km=float(radius))  # type: ignore[arg-type]
        return queryset
