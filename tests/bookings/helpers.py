"""Shared helpers for bookings tests: windows, holds through the real services, the API."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rest_framework.test import APIClient

from backend.accounts.models import User, Vehicle
from backend.carparks.models import CarPark
from backend.core import clock
from bookings import services
from bookings.models import Booking
from tests.factories import VehicleFactory


def future_window(days: int = 2, hours: float = 2, start_hour: int = 10) -> tuple[datetime, datetime]:
    """A window ``days`` ahead starting on the hour (UTC), lasting ``hours``."""
    start = (clock.now() + timedelta(days=days)).replace(hour=start_hour, minute=0, second=0, microsecond=0)
    return start, start + timedelta(hours=hours)


def vehicle_of(driver: User) -> Vehicle:
    return driver.vehicles.first() or VehicleFactory(owner=driver)


def hold(driver: User, car_park: CarPark, start: datetime, end: datetime, **kwargs: Any) -> Booking:
    return services.booking_hold(
        driver=driver, car_park_id=car_park.pk, vehicle_id=vehicle_of(driver).pk, start=start, end=end, **kwargs
    )


def confirmed(driver: User, car_park: CarPark, start: datetime, end: datetime, **kwargs: Any) -> Booking:
    booking = hold(driver, car_park, start, end, **kwargs)
    payment = booking.payments.first()
    if payment is not None:
        services.payment_succeeded(payment=payment)
    booking.refresh_from_db()
    return booking


def post_booking(
    client: APIClient,
    driver: User,
    car_park: CarPark,
    start: datetime,
    end: datetime,
    key: str | None = None,
    **extra: Any,
) -> Any:
    body = {
        "car_park": car_park.pk,
        "vehicle": vehicle_of(driver).pk,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    body.update(extra)
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/api/v1/bookings", body, format="json", **headers)
