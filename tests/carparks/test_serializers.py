"""The car-park serializers write their rows by hand for speed (a search page shows twenty); the rows
must equal what DRF's generic ``to_representation`` makes of the same declarations (the schema)."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import Any

import pytest
from rest_framework import serializers

from backend.carparks.api.serializers import (
    CarParkPrivateSerializer,
    CarParkSearchResultSerializer,
    CarParkSerializer,
)
from backend.carparks.models import CarPark
from backend.carparks.selectors import carparks_near, opening_periods_of
from tests.factories import CarParkFactory

pytestmark = pytest.mark.django_db

SERIALIZERS = (CarParkSerializer, CarParkSearchResultSerializer, CarParkPrivateSerializer)


@pytest.fixture
def car_parks(company: Any) -> list[CarPark]:
    """A 24/7 one, and one with a height limit, no EV bays, a day closed and an overnight period."""
    hours = [(0, time(7), time(18, 30), False), (4, time(18), time(2), True), (5, time(8), time(0), True)]
    CarParkFactory(company=company, name="Always open", latitude=52.4800)
    CarParkFactory(
        company=company,
        name="Limited",
        latitude=52.4810,
        covered=True,
        height_limit_m=Decimal("1.90"),
        ev_charging_bays=0,
        internal_notes="Barrier sticks in the rain.",
        hours=hours,
    )
    found = carparks_near(
        CarPark.objects.select_related("company").prefetch_related("opening_periods"),
        lat=52.4797,
        lng=-1.9026,
        radius_km=2,
    )
    return list(found)


def _generic(serializer_class: type[serializers.ModelSerializer], car_park: CarPark) -> dict[str, Any]:
    return serializers.ModelSerializer.to_representation(serializer_class(), car_park)


@pytest.mark.parametrize("serializer_class", SERIALIZERS)
def test_hand_written_rows_equal_drfs(car_parks: list[CarPark], serializer_class: Any) -> None:
    for car_park in car_parks:
        fast = serializer_class(car_park).data
        reference = _generic(serializer_class, car_park)
        assert list(fast) == list(reference)
        assert fast == reference, car_park.name


def test_periods_read_as_tuples_show_the_same_opening_hours(car_parks: list[CarPark]) -> None:
    periods = opening_periods_of([car_park.pk for car_park in car_parks])
    from_tuples = CarParkSearchResultSerializer(car_parks, many=True, context={"opening_periods": periods}).data
    from_instances = CarParkSearchResultSerializer(car_parks, many=True).data
    assert from_tuples == from_instances
    limited = next(row for row in from_tuples if row["name"] == "Limited")
    assert limited["opening_hours"] == [
        {"weekday": "monday", "opens": "07:00", "closes": "18:30", "overnight": False},
        {"weekday": "friday", "opens": "18:00", "closes": "02:00", "overnight": True},
        {"weekday": "saturday", "opens": "08:00", "closes": "24:00", "overnight": False},
    ]


def test_a_car_park_without_periods_shows_none(company: Any) -> None:
    closed = CarParkFactory(company=company, hours=[])
    row = CarParkSerializer(closed, context={"opening_periods": opening_periods_of([closed.pk])}).data
    assert row["opening_hours"] == []


@pytest.mark.parametrize("serializer_class", SERIALIZERS)
def test_rows_keep_the_declared_field_order(serializer_class: Any) -> None:
    assert list(serializer_class().fields) == serializer_class.Meta.fields
