"""The bookings serializers write their rows by hand for speed; they must equal what DRF's
generic ``to_representation`` makes of the same field declarations (the OpenAPI schema)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from backend.accounts.models import User
from bookings import services
from bookings.api.serializers import BookingSerializer, ExtensionSerializer, PaymentSerializer
from bookings.models import Booking
from tests.bookings.helpers import confirmed, future_window, hold

pytestmark = pytest.mark.django_db


def _generic_payment(serializer: PaymentSerializer, instance: Any) -> dict[str, Any]:
    data = serializers.ModelSerializer.to_representation(serializer, instance)
    if not serializer._shows_secret_of(instance):
        data["client_secret"] = None
    return data


def _generic(serializer: serializers.ModelSerializer, instance: Any) -> dict[str, Any]:
    return serializers.ModelSerializer.to_representation(serializer, instance)


def _request_of(viewer: User) -> Any:
    request = APIRequestFactory().get("/")
    request.user = viewer
    return request


def _as_seen_by(viewer: User, booking: Booking, monkeypatch: pytest.MonkeyPatch, *, generic: bool) -> Any:
    request = _request_of(viewer)
    with monkeypatch.context() as patch:
        if generic:
            patch.setattr(PaymentSerializer, "to_representation", _generic_payment)
            patch.setattr(ExtensionSerializer, "to_representation", _generic)
            patch.setattr(BookingSerializer, "to_representation", _generic)
        fresh = Booking.objects.prefetch_related("payments", "extensions__payments").get(pk=booking.pk)
        return BookingSerializer(fresh, context={"request": request}).data


def _bookings_in_every_state(driver: User, car_park: Any) -> list[Booking]:
    held = hold(driver, car_park, *future_window(days=3))
    paid = confirmed(driver, car_park, *future_window(days=4))
    extended = confirmed(driver, car_park, *future_window(days=5))
    services.booking_extend(booking_id=extended.pk, new_end=extended.end + timedelta(hours=1))
    cancelled = confirmed(driver, car_park, *future_window(days=6))
    services.booking_cancel(booking_id=cancelled.pk)
    return [held, paid, extended, cancelled]


def test_hand_written_rows_equal_drfs_for_every_state_and_viewer(
    driver, operator, car_park, monkeypatch: pytest.MonkeyPatch
):
    for booking in _bookings_in_every_state(driver, car_park):
        for viewer in (driver, operator):
            fast = _as_seen_by(viewer, booking, monkeypatch, generic=False)
            reference = _as_seen_by(viewer, booking, monkeypatch, generic=True)
            assert list(fast) == list(reference)
            assert fast == reference, booking.status


def test_a_fresh_hold_answers_exactly_what_reading_it_back_shows(driver, car_park, monkeypatch: pytest.MonkeyPatch):
    """The 201 body is written from the rows the hold just made, not read back: it must not differ."""
    booking = hold(driver, car_park, *future_window())
    answered = BookingSerializer(booking, context={"request": _request_of(driver)}).data
    assert answered == _as_seen_by(driver, booking, monkeypatch, generic=True)


def test_rows_keep_the_declared_field_order():
    assert list(BookingSerializer().fields) == BookingSerializer.Meta.fields
    assert list(ExtensionSerializer().fields) == ExtensionSerializer.Meta.fields
    assert list(PaymentSerializer().fields) == PaymentSerializer.Meta.fields
