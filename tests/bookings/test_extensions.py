"""Extensions paid late: an expired extension's payment never buys the same hours twice."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from backend.carparks.models import CarPark
from backend.core import clock
from bookings import services
from bookings.models import Booking, BookingExtension, CapacitySlot, ExtensionStatus, Payment, PaymentStatus
from pricing.selectors import quote_for_window
from tests.bookings.helpers import confirmed, future_window

pytestmark = pytest.mark.django_db

HOLD_RUN_OUT = timedelta(minutes=11)


def _most_reserved(car_park: CarPark, start: datetime, end: datetime) -> int:
    slots = CapacitySlot.objects.filter(car_park=car_park, starts_at__gte=start, starts_at__lt=end)
    return max(slots.values_list("reserved", flat=True), default=0)


def _extend_unpaid(booking: Booking, new_end: datetime, now: datetime) -> tuple[BookingExtension, Payment]:
    extension = services.booking_extend(booking_id=booking.pk, new_end=new_end, now=now)
    return extension, extension.payments.get()


def _expire_holds(car_park: CarPark, now: datetime) -> None:
    services.holds_expire(now=now, car_park_id=car_park.pk)


def test_an_expired_extension_paid_while_a_newer_one_waits_is_refunded(driver, car_park):
    start, end = future_window(hours=2)
    booking = confirmed(driver, car_park, start, end)
    now = clock.now()
    first, first_payment = _extend_unpaid(booking, end + timedelta(hours=2), now)
    _expire_holds(car_park, now + HOLD_RUN_OUT)
    second, second_payment = _extend_unpaid(booking, end + timedelta(hours=2), now + HOLD_RUN_OUT)

    services.payment_succeeded(payment=first_payment, now=now + HOLD_RUN_OUT)
    services.payment_succeeded(payment=second_payment, now=now + HOLD_RUN_OUT)

    first.refresh_from_db()
    second.refresh_from_db()
    booking.refresh_from_db()
    assert (first.status, second.status) == (ExtensionStatus.EXPIRED, ExtensionStatus.CONFIRMED)
    assert first_payment.refunds.get().amount_minor == first_payment.amount_minor
    whole_stay = quote_for_window(car_park, start, end + timedelta(hours=2)).amount_minor
    assert booking.amount_minor == whole_stay
    assert services.paid_minor(booking) == whole_stay
    assert _most_reserved(car_park, end, end + timedelta(hours=2)) == 1

    services.booking_cancel(booking_id=booking.pk)
    assert _most_reserved(car_park, start, end + timedelta(hours=2)) == 0


def test_an_expired_extension_paid_after_a_newer_one_applied_is_refunded(driver, car_park):
    start, end = future_window(hours=2)
    booking = confirmed(driver, car_park, start, end)
    now = clock.now()
    _first, first_payment = _extend_unpaid(booking, end + timedelta(hours=1), now)
    _expire_holds(car_park, now + HOLD_RUN_OUT)
    _second, second_payment = _extend_unpaid(booking, end + timedelta(hours=3), now + HOLD_RUN_OUT)
    services.payment_succeeded(payment=second_payment, now=now + HOLD_RUN_OUT)

    services.payment_succeeded(payment=first_payment, now=now + HOLD_RUN_OUT)

    booking.refresh_from_db()
    assert booking.end == end + timedelta(hours=3)
    assert Payment.objects.get(pk=first_payment.pk).refunded_minor == first_payment.amount_minor
    assert services.paid_minor(booking) == quote_for_window(car_park, start, booking.end).amount_minor
    assert _most_reserved(car_park, end, booking.end) == 1


def test_an_expired_extension_paid_late_with_nothing_newer_takes_its_bays_again(driver, car_park):
    start, end = future_window(hours=2)
    booking = confirmed(driver, car_park, start, end)
    now = clock.now()
    extension, payment = _extend_unpaid(booking, end + timedelta(hours=2), now)
    _expire_holds(car_park, now + HOLD_RUN_OUT)
    assert _most_reserved(car_park, end, end + timedelta(hours=2)) == 0

    services.payment_succeeded(payment=payment, now=now + HOLD_RUN_OUT)

    extension.refresh_from_db()
    booking.refresh_from_db()
    assert extension.status == ExtensionStatus.CONFIRMED
    assert booking.end == end + timedelta(hours=2)
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED
    assert _most_reserved(car_park, end, end + timedelta(hours=2)) == 1
