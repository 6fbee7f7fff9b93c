"""Reads of the inventory shared by views, services and other apps."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import F, FloatField, Value
from django.db.models.functions import ASin, Cos, Power, Radians, Round, Sin, Sqrt

from backend.carparks.hours import Period, is_open_throughout
from backend.carparks.models import BOOKING_TERM_FIELDS, CarPark, CarParkQuerySet, Closure, OpeningPeriod

EARTH_RADIUS_M = 6_371_008.8
_KM_PER_DEGREE_LAT = 111.32


def carparks_near(queryset: CarParkQuerySet, *, lat: float, lng: float, radius_km: float) -> CarParkQuerySet:
    """Car parks within ``radius_km`` of a point, nearest first, annotated with ``distance_m``.

    A bounding box on the indexed coordinates narrows the candidates before the
    great-circle (haversine) distance is computed in the database.
    """
    lat_delta = radius_km / _KM_PER_DEGREE_LAT
    cos_lat = max(math.cos(math.radians(lat)), 0.01)
    lng_delta = min(radius_km / (_KM_PER_DEGREE_LAT * cos_lat), 180.0)
    boxed = queryset.filter(latitude__gte=lat - lat_delta, latitude__lte=lat + lat_delta)
    if lng - lng_delta >= -180 and lng + lng_delta <= 180:
        boxed = boxed.filter(longitude__gte=lng - lng_delta, longitude__lte=lng + lng_delta)

    point_lat = Value(math.radians(lat), output_field=FloatField())
    d_lat = Radians(F("latitude")) - point_lat
    d_lng = Radians(F("longitude")) - Value(math.radians(lng), output_field=FloatField())
    haversine = Power(Sin(d_lat / 2), 2) + Cos(point_lat) * Cos(Radians(F("latitude"))) * Power(Sin(d_lng / 2), 2)
    distance = Value(2 * EARTH_RADIUS_M, output_field=FloatField()) * ASin(Sqrt(haversine))
    return (
        boxed.annotate(distance_m=Round(distance, output_field=FloatField()))
        .filter(distance_m__lte=radius_km * 1000)
        .order_by("distance_m", "id")
    )


def periods_of(car_park: CarPark) -> list[Period]:
    return [
        Period(weekday=p.weekday, opens=p.opens, closes=p.closes, overnight=p.overnight)
        for p in car_park.opening_periods.all()
    ]


def opening_periods_of(car_park_ids: Sequence[int]) -> dict[int, list[Period]]:
    """The opening periods of many car parks in one query, by weekday (plain tuples, no model rows:
    a search page shows seven for each of its car parks)."""
    found: dict[int, list[Period]] = defaultdict(list)
    rows = (
        OpeningPeriod.objects.filter(car_park_id__in=car_park_ids)
        .order_by("car_park_id", "weekday")
        .values_list("car_park_id", "weekday", "opens", "closes", "overnight")
    )
    for car_park_id, weekday, opens, closes, overnight in rows:
        found[car_park_id].append(Period(weekday=weekday, opens=opens, closes=closes, overnight=overnight))
    return found


def is_open_for_window(car_park: CarPark, start: datetime, end: datetime) -> bool:
    """Open throughout ``[start, end)`` by its opening hours (closures are separate)."""
    return is_open_throughout(periods_of(car_park), car_park.zone, start, end)


def closures_overlapping(car_park: CarPark, start: datetime, end: datetime) -> list[Closure]:
    return list(car_park.closures.filter(starts_at__lt=end, ends_at__gt=start))


def carpark_snapshot(car_park: CarPark) -> dict[str, Any]:
    """A JSON-able picture of a car park for the audit log's before/after."""
    return {
        "name": car_park.name,
        "address": car_park.address,
        "latitude": car_park.latitude,
        "longitude": car_park.longitude,
        "timezone": car_park.timezone,
        "currency": car_park.currency,
        "bays": {
            "standard": car_park.standard_bays,
            "accessible": car_park.accessible_bays,
            "ev_charging": car_park.ev_charging_bays,
        },
        "covered": car_park.covered,
        "height_limit_m": str(car_park.height_limit_m) if car_park.height_limit_m is not None else None,
        "booking_terms": {name: getattr(car_park, name) for name in BOOKING_TERM_FIELDS},
        "internal_notes": car_park.internal_notes,
        "opening_hours": [
            {
                "weekday": p.weekday,
                "opens": p.opens.isoformat("minutes"),
                "closes": p.closes.isoformat("minutes"),
                "overnight": p.overnight,
            }
            for p in car_park.opening_periods.all()
        ],
        "archived_at": car_park.archived_at.isoformat() if car_park.archived_at else None,
    }
