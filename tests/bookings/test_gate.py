"""The gate: check-in within the entry grace, check-out with overstay, drive-ups, devices, who may call."""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from backend.carparks.models import Closure
from backend.core import clock
from bookings import ledger, occupancy
from bookings.models import (
    Booking,
    BookingStatus,
    CapacitySlot,
    GateDevice,
    GateEvent,
    Payment,
    PaymentKind,
    PaymentStatus,
    SavedCard,
)
from pricing.models import RateCard
from pricing.selectors import quote_for_window
from tests.bookings.helpers import confirmed, future_window
from tests.factories import CarParkFactory, VehicleFactory

pytestmark = pytest.mark.django_db

PLATE = "AB12CDE"


def entries(car_park) -> str:
    return f"/api/v1/carparks/{car_park.pk}/entries"


def exits(car_park) -> str:
    return f"/api/v1/carparks/{car_park.pk}/exits"


def devices(car_park) -> str:
    return f"/api/v1/carparks/{car_park.pk}/gate-devices"


@pytest.fixture
def booking(driver, car_park) -> Booking:
    """A paid booking for tomorrow-but-one, 10:00-12:00 UTC, for the driver's car AB12 CDE."""
    VehicleFactory(owner=driver, plate=PLATE)
    start, end = future_window(hours=2)
    booking = confirmed(driver, car_park, start, end)
    assert booking.status == BookingStatus.CONFIRMED
    return booking


@pytest.fixture
def at(time_machine):
    """``at(moment)``: stop the clock at ``moment`` (sign clients in afterwards: tokens expire)."""

    def move(moment):
        time_machine.move_to(moment, tick=False)

    return move


@pytest.fixture
def recorded(monkeypatch) -> list[tuple[int, str, dict]]:
    """Occupancy handed to the pricing app, captured (pricing's recorder is not needed here)."""
    calls: list[tuple[int, str, dict]] = []
    monkeypatch.setattr(
        occupancy, "_record", lambda car_park, source, hours: calls.append((car_park.pk, source, hours))
    )
    return calls


def device_token(api, operator, car_park) -> str:
    response = api(operator).post(devices(car_park), {"name": "North barrier"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["token"]


def device_client(token: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    return client


def reserved_over(booking: Booking) -> list[int]:
    return list(
        CapacitySlot.objects.filter(
            car_park=booking.car_park,
            bay_type=booking.bay_type,
            starts_at__gte=booking.ledger_start,
            starts_at__lt=booking.ledger_end,
        )
        .order_by("starts_at")
        .values_list("reserved", flat=True)
    )


# --- entry ---------------------------------------------------------------------------------------


def test_entry_by_code_within_the_grace_checks_the_booking_in(api, at, operator_staff, car_park, booking):
    at(booking.start - timedelta(minutes=15))
    response = api(operator_staff).post(entries(car_park), {"code": booking.code.lower()}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    event = GateEvent.objects.get()
    assert body == {
        "event_id": event.pk,
        "kind": "entry",
        "occurred_at": (booking.start - timedelta(minutes=15)).isoformat().replace("+00:00", "Z"),
        "open_gate": True,
        "drive_up": False,
        "plate": PLATE,
        "booking": {
            "id": booking.pk,
            "status": "checked_in",
            "plate": PLATE,
            "start": booking.start.isoformat().replace("+00:00", "Z"),
            "end": booking.end.isoformat().replace("+00:00", "Z"),
        },
        "overstay": None,
    }
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CHECKED_IN
    assert booking.checked_in_at == booking.start - timedelta(minutes=15)
    assert (event.booking_id, event.is_drive_up, event.staff_id, event.device_id) == (
        booking.pk,
        False,
        operator_staff.pk,
        None,
    )


def test_entry_before_the_grace_is_too_early_and_changes_nothing(api, at, operator, car_park, booking):
    at(booking.start - timedelta(minutes=16))
    response = api(operator).post(entries(car_park), {"code": booking.code}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "too_early"
    assert body["earliest_entry"] == (booking.start - timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
    assert booking.checked_in_at is None
    assert not GateEvent.objects.exists()


def test_entry_grace_is_the_car_parks_setting(api, at, operator, car_park, booking):
    car_park.entry_grace_minutes = 45
    car_park.save(update_fields=["entry_grace_minutes"])
    at(booking.start - timedelta(minutes=40))
    response = api(operator).post(entries(car_park), {"code": booking.code}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["booking"]["status"] == "checked_in"


def test_entry_with_an_occurred_at_in_the_past_is_judged_at_that_time(api, at, operator, car_park, booking):
    at(booking.start + timedelta(minutes=30))
    passed = booking.start + timedelta(minutes=5)
    response = api(operator).post(
        entries(car_park), {"code": booking.code, "occurred_at": passed.isoformat()}, format="json"
    )
    assert response.status_code == 201, response.content
    booking.refresh_from_db()
    assert booking.checked_in_at == passed


def test_entry_after_the_booking_ended_is_refused(api, at, operator, car_park, booking):
    at(booking.end)
    response = api(operator).post(entries(car_park), {"code": booking.code}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "booking_ended"
    assert Booking.objects.get().status == BookingStatus.CONFIRMED


def test_entry_by_plate_checks_in_the_booking(api, at, operator, car_park, booking):
    at(booking.start + timedelta(minutes=1))
    response = api(operator).post(entries(car_park), {"plate": "ab12 cde"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["drive_up"] is False
    assert body["booking"]["id"] == booking.pk
    assert Booking.objects.get().status == BookingStatus.CHECKED_IN


def test_a_second_entry_is_already_inside(api, at, operator, car_park, booking):
    at(booking.start)
    client = api(operator)
    assert client.post(entries(car_park), {"code": booking.code}, format="json").status_code == 201
    by_code = client.post(entries(car_park), {"code": booking.code}, format="json")
    by_plate = client.post(entries(car_park), {"plate": PLATE}, format="json")
    assert (by_code.status_code, by_code.json()["code"]) == (409, "already_inside")
    assert (by_plate.status_code, by_plate.json()["code"]) == (409, "already_inside")
    assert GateEvent.objects.count() == 1


def test_an_unknown_plate_is_a_drive_up_and_is_counted(
    api, at, operator, car_park, recorded, django_capture_on_commit_callbacks
):
    hour = future_window()[0]
    at(hour + timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        entry = api(operator).post(entries(car_park), {"plate": "XY99 ZZZ"}, format="json")
    assert entry.status_code == 201, entry.content
    assert (entry.json()["kind"], entry.json()["drive_up"], entry.json()["booking"]) == ("entry", True, None)
    event = GateEvent.objects.get()
    assert (event.kind, event.plate, event.is_drive_up, event.booking_id) == ("entry", "XY99ZZZ", True, None)

    at(hour + timedelta(minutes=20))
    with django_capture_on_commit_callbacks(execute=True):
        api(operator).post(entries(car_park), {"plate": "CD34EFG"}, format="json")
    at(hour + timedelta(minutes=30))
    with django_capture_on_commit_callbacks(execute=True):
        leaving = api(operator).post(exits(car_park), {"plate": "xy99-zzz"}, format="json")
    assert leaving.status_code == 201, leaving.content
    assert (leaving.json()["kind"], leaving.json()["drive_up"], leaving.json()["overstay"]) == ("exit", True, None)
    assert GateEvent.objects.filter(is_drive_up=True).count() == 3
    # Each event republished the hour's real occupancy for pricing, drive-ups included:
    # XY99ZZZ inside 10:05-10:20 (0.25); then 10:05-10:30 plus CD34EFG 10:20-10:30 (25 + 10 min).
    assert [(car_park_id, source) for car_park_id, source, _ in recorded] == [(car_park.pk, "gate")] * 3
    assert [list(hours.items()) for _, _, hours in recorded[1:]] == [
        [(hour, Decimal("0.25"))],
        [(hour, Decimal("0.58"))],
    ]


def test_a_plate_seen_too_early_for_its_booking_is_a_drive_up(api, at, operator, car_park, booking):
    at(booking.start - timedelta(hours=3))
    response = api(operator).post(entries(car_park), {"plate": PLATE}, format="json")
    assert response.status_code == 201
    assert response.json()["drive_up"] is True
    assert Booking.objects.get().status == BookingStatus.CONFIRMED


def test_a_code_of_another_car_park_or_unknown_is_not_found(api, at, operator, other_driver, car_park, booking):
    second = CarParkFactory(company=car_park.company)
    at(booking.start)
    client = api(operator)
    elsewhere = client.post(entries(second), {"code": booking.code}, format="json")
    unknown = client.post(entries(car_park), {"code": "ZZZZ2222"}, format="json")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "booking_not_found")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "booking_not_found")
    assert Booking.objects.get().status == BookingStatus.CONFIRMED
    assert not GateEvent.objects.exists()


def test_a_publish_failure_never_fails_the_gate(
    api, at, operator, car_park, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def missing(*args, **kwargs):
        raise ImportError("cannot import name 'occupancy_record' from 'pricing.services'")

    monkeypatch.setattr(occupancy, "_record", missing)  # where pricing is imported
    at(future_window()[0])
    with caplog.at_level(logging.WARNING, logger="bookings.gate"), django_capture_on_commit_callbacks(execute=True):
        response = api(operator).post(entries(car_park), {"plate": "XY99ZZZ"}, format="json")
    assert response.status_code == 201
    assert "not published" in caplog.text
    assert GateEvent.objects.count() == 1


# --- input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"plate": "AB12*CDE"}, "plate", "invalid_plate"),
        ({"code": "ABCD2345", "plate": "AB12CDE"}, None, "code_or_plate"),
        ({}, None, "code_or_plate"),
        ({"code": "AB$D"}, "code", "invalid_code"),
        ({"plate": "AB12CDE", "occurred_at": "2030-01-01T10:00:00"}, "occurred_at", "naive"),
    ],
)
def test_invalid_input_is_a_400_field_error(api, operator, car_park, body, field, code):
    response = api(operator).post(entries(car_park), body, format="json")
    assert response.status_code == 400
    assert [(error["field"], error["code"]) for error in response.json()["errors"]] == [(field, code)]
    assert not GateEvent.objects.exists()


def test_a_time_in_the_future_is_refused(api, operator, car_park):
    from backend.core import clock

    later = clock.now() + timedelta(minutes=2)
    response = api(operator).post(exits(car_park), {"plate": PLATE, "occurred_at": later.isoformat()}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "in_future"


# --- exit ----------------------------------------------------------------------------------------


def check_in(api, at, user, booking) -> None:
    at(booking.start)
    response = api(user).post(entries(booking.car_park), {"code": booking.code}, format="json")
    assert response.status_code == 201, response.content


def test_exit_completes_the_booking_and_gives_its_bays_back(api, at, operator, car_park, booking):
    check_in(api, at, operator, booking)
    assert reserved_over(booking) == [1] * 8
    at(booking.end - timedelta(minutes=30))
    response = api(operator).post(exits(car_park), {"code": booking.code}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["drive_up"], body["overstay"]) == ("exit", False, None)
    assert body["booking"]["status"] == "completed"
    booking.refresh_from_db()
    assert booking.status == BookingStatus.COMPLETED
    assert booking.checked_out_at == booking.end - timedelta(minutes=30)
    assert reserved_over(booking) == [0] * 8
    assert ledger.availability(car_park, booking.bay_type, booking.start, booking.end).available == 90
    assert not Payment.objects.filter(kind=PaymentKind.OVERSTAY).exists()


def test_exit_within_the_exit_grace_owes_nothing(api, at, operator, car_park, booking):
    check_in(api, at, operator, booking)
    at(booking.end + timedelta(minutes=10))
    response = api(operator).post(exits(car_park), {"plate": PLATE}, format="json")
    assert response.status_code == 201
    assert response.json()["overstay"] is None
    assert GateEvent.objects.get(kind="exit").overstay_minor == 0


def test_overstay_is_priced_at_the_car_parks_rate_and_opened_for_the_app(api, at, operator, car_park, booking):
    check_in(api, at, operator, booking)
    left = booking.end + timedelta(minutes=50)
    at(left)
    response = api(operator).post(exits(car_park), {"plate": PLATE}, format="json")
    assert response.status_code == 201, response.content
    expected = quote_for_window(car_park, booking.end, left).amount_minor
    assert expected == 208  # 50 minutes at the default 2.50/h
    payment = Payment.objects.get(kind=PaymentKind.OVERSTAY)
    assert response.json()["overstay"] == {
        "minutes": 50,
        "amount_minor": 208,
        "currency": "GBP",
        "payment": {"id": str(payment.pk), "status": "pending"},
    }
    assert (payment.booking_id, payment.amount_minor, payment.currency, payment.status) == (
        booking.pk,
        208,
        "GBP",
        PaymentStatus.PENDING,
    )
    assert payment.provider_payment_id
    assert payment.client_secret  # the driver's app pays it
    assert GateEvent.objects.get(kind="exit").overstay_minor == 208
    assert Booking.objects.get().status == BookingStatus.COMPLETED


def test_an_overstay_within_a_day_already_at_its_maximum_owes_nothing(api, at, operator, driver, car_park):
    RateCard.objects.create(car_park=car_park, hourly_rate=Decimal("2.50"), daily_maximum=Decimal("20.00"))
    VehicleFactory(owner=driver, plate=PLATE)
    start, end = future_window(hours=10, start_hour=6)
    booking = confirmed(driver, car_park, start, end)
    assert booking.amount_minor == 2000  # 10 h at 2.50 capped at 20.00
    check_in(api, at, operator, booking)
    at(end + timedelta(hours=2))

    response = api(operator).post(exits(car_park), {"plate": PLATE}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["overstay"] is None
    assert not Payment.objects.filter(kind=PaymentKind.OVERSTAY).exists()


def test_overstay_is_charged_to_a_saved_card(api, at, operator, driver, car_park, booking):
    SavedCard.objects.create(driver=driver, provider="offline", customer_ref="cus_1", payment_method_ref="pm_card_visa")
    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=1))
    response = api(operator).post(exits(car_park), {"code": booking.code}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["overstay"]["amount_minor"] == 250
    assert response.json()["overstay"]["payment"]["status"] == "succeeded"
    payment = Payment.objects.get(kind=PaymentKind.OVERSTAY)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.provider_payment_id
    assert payment.client_secret == ""


def test_a_declined_saved_card_leaves_the_overstay_for_the_app(api, at, operator, driver, car_park, booking):
    SavedCard.objects.create(
        driver=driver, provider="offline", customer_ref="cus_1", payment_method_ref="pm_card_chargeDeclined"
    )
    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=1))
    response = api(operator).post(exits(car_park), {"code": booking.code}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["open_gate"] is True
    payment = Payment.objects.get(kind=PaymentKind.OVERSTAY)
    assert (payment.status, payment.failure_code) == (PaymentStatus.PENDING, "card_declined")
    assert payment.client_secret


@pytest.fixture
def provider_down(monkeypatch):
    """The payment provider refuses every new payment until ``provider_down.recover()``."""
    from bookings.payments.offline_provider import OfflineProvider
    from bookings.payments.providers import PaymentGatewayError

    real_create = OfflineProvider.create_payment

    def refuse(self, **kwargs):
        raise PaymentGatewayError("provider unreachable", code="api_connection_error")

    monkeypatch.setattr(OfflineProvider, "create_payment", refuse)

    class Switch:
        @staticmethod
        def recover() -> None:
            monkeypatch.setattr(OfflineProvider, "create_payment", real_create)

    return Switch


@pytest.mark.django_db(transaction=True)  # the e-mail is sent on commit
def test_an_overstay_the_provider_could_not_take_is_opened_by_the_sweep_and_told_once(
    api, at, operator, driver, car_park, booking, provider_down
):
    from django.core import mail

    from bookings import tasks

    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=1))
    response = api(operator).post(exits(car_park), {"plate": PLATE}, format="json")
    assert response.status_code == 201  # the gate opens whatever the provider does
    payment = Payment.objects.get(kind=PaymentKind.OVERSTAY)
    assert (payment.status, payment.provider_payment_id, payment.client_secret) == (PaymentStatus.PENDING, None, "")
    mail.outbox.clear()

    at(booking.end + timedelta(hours=1, seconds=30))
    provider_down.recover()
    assert tasks.retry_overstay_payments() == 0  # too fresh: the exit may still be charging it
    at(booking.end + timedelta(hours=1, minutes=5))
    assert tasks.retry_overstay_payments() == 1
    assert tasks.retry_overstay_payments() == 0
    payment.refresh_from_db()
    assert (payment.status, payment.amount_minor) == (PaymentStatus.PENDING, 250)
    assert payment.provider_payment_id  # the app can pay it now
    assert payment.client_secret
    assert [m.subject for m in mail.outbox] == [f"Extra time at {car_park.name}"]
    assert "pay it in the app" in mail.outbox[0].body
    assert "2.50 GBP" in mail.outbox[0].body


@pytest.mark.django_db(transaction=True)
def test_an_overstay_paid_by_the_saved_card_is_told_as_paid(api, at, operator, driver, car_park, booking):
    from django.core import mail

    SavedCard.objects.create(driver=driver, provider="offline", customer_ref="cus_1", payment_method_ref="pm_card_visa")
    check_in(api, at, operator, booking)
    mail.outbox.clear()
    at(booking.end + timedelta(hours=1))
    assert api(operator).post(exits(car_park), {"plate": PLATE}, format="json").status_code == 201
    assert [m.subject for m in mail.outbox] == [f"Extra time at {car_park.name}"]
    assert "charged to the card you saved" in mail.outbox[0].body


@pytest.mark.django_db(transaction=True)
def test_a_saved_card_charge_whose_answer_was_lost_is_retried_as_such_never_opened_for_the_app(
    api, at, operator, driver, car_park, booking, monkeypatch
):
    """The off-session charge may have gone through: opening an app payment as well could charge
    twice, so the sweep repeats the same charge (same idempotency key) instead."""
    from bookings import tasks
    from bookings.payments.offline_provider import OfflineProvider
    from bookings.payments.providers import PaymentGatewayError

    SavedCard.objects.create(driver=driver, provider="offline", customer_ref="cus_1", payment_method_ref="pm_card_visa")
    real_charge, opened = OfflineProvider.charge_off_session, []
    monkeypatch.setattr(OfflineProvider, "create_payment", lambda self, **kw: opened.append(kw))

    def lost_answer(self, **kwargs):
        raise PaymentGatewayError("read timed out", code="api_connection_error")

    monkeypatch.setattr(OfflineProvider, "charge_off_session", lost_answer)
    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=1))
    assert api(operator).post(exits(car_park), {"plate": PLATE}, format="json").status_code == 201
    payment = Payment.objects.get(kind=PaymentKind.OVERSTAY)
    assert (payment.status, payment.provider_payment_id, payment.open_attempts) == (PaymentStatus.PENDING, None, 1)

    monkeypatch.setattr(OfflineProvider, "charge_off_session", real_charge)
    SavedCard.objects.all().delete()  # the driver removes the card meanwhile: the retry is the same charge
    at(booking.end + timedelta(hours=1, minutes=3))
    assert tasks.retry_overstay_payments() == 1
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert opened == []  # no app payment was ever opened


def test_an_overstay_the_provider_refuses_for_good_is_failed_and_not_retried(
    api, at, operator, car_park, booking, monkeypatch, caplog
):
    from bookings import tasks
    from bookings.payments.offline_provider import OfflineProvider
    from bookings.payments.providers import PaymentConfigurationError

    calls = []

    def refuse(self, **kwargs):
        calls.append(kwargs)
        raise PaymentConfigurationError("Amount must be at least 30 pence", code="amount_too_small")

    monkeypatch.setattr(OfflineProvider, "create_payment", refuse)
    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=1))
    with caplog.at_level(logging.ERROR, logger="bookings.gate"):
        assert api(operator).post(exits(car_park), {"plate": PLATE}, format="json").status_code == 201
    payment = Payment.objects.get(kind=PaymentKind.OVERSTAY)
    assert (payment.status, payment.failure_code, payment.retry_open_at) == (
        PaymentStatus.FAILED,
        "amount_too_small",
        None,
    )
    assert "collect it by hand" in caplog.text
    at(booking.end + timedelta(days=1))
    assert tasks.retry_overstay_payments() == 0
    assert len(calls) == 1


def test_a_saved_card_the_provider_refuses_for_good_falls_back_to_the_app(
    api, at, operator, driver, car_park, booking, monkeypatch
):
    from bookings.payments.offline_provider import OfflineProvider
    from bookings.payments.providers import PaymentConfigurationError

    def detached(self, **kwargs):
        raise PaymentConfigurationError("No such PaymentMethod: 'pm_gone'", code="resource_missing")

    monkeypatch.setattr(OfflineProvider, "charge_off_session", detached)
    SavedCard.objects.create(driver=driver, provider="offline", customer_ref="cus_1", payment_method_ref="pm_gone")
    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=1))
    assert api(operator).post(exits(car_park), {"plate": PLATE}, format="json").status_code == 201
    payment = Payment.objects.get(kind=PaymentKind.OVERSTAY)
    assert (payment.status, payment.failure_code) == (PaymentStatus.PENDING, "resource_missing")
    assert payment.client_secret  # opened for the app


def test_an_overstay_left_by_an_older_release_without_a_lease_is_retried(api, at, operator, car_park, booking):
    from bookings import tasks

    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=1))
    api(operator).post(exits(car_park), {"plate": PLATE}, format="json")
    Payment.objects.filter(kind=PaymentKind.OVERSTAY).update(
        provider_payment_id=None, client_secret="", retry_open_at=None
    )
    assert tasks.retry_overstay_payments() == 1
    assert Payment.objects.get(kind=PaymentKind.OVERSTAY).client_secret


def test_the_back_off_stops_growing_at_two_hours(api, at, operator, car_park, booking, provider_down):
    from bookings import tasks

    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=1))
    api(operator).post(exits(car_park), {"plate": PLATE}, format="json")
    Payment.objects.filter(kind=PaymentKind.OVERSTAY).update(open_attempts=60)  # days of outage
    payment = Payment.objects.get(kind=PaymentKind.OVERSTAY)
    at(payment.retry_open_at)
    assert tasks.retry_overstay_payments() == 0
    payment.refresh_from_db()
    assert payment.open_attempts == 61
    assert payment.retry_open_at - clock.now() == timedelta(hours=2)


def test_retries_back_off(api, at, operator, car_park, booking, provider_down):
    from bookings import tasks

    check_in(api, at, operator, booking)
    left = booking.end + timedelta(hours=1)
    at(left)
    api(operator).post(exits(car_park), {"plate": PLATE}, format="json")
    payment = Payment.objects.get(kind=PaymentKind.OVERSTAY)
    waits = []
    for _ in range(4):
        payment.refresh_from_db()
        at(payment.retry_open_at)
        waits.append(payment.retry_open_at)
        assert tasks.retry_overstay_payments() == 0  # still down
    payment.refresh_from_db()
    gaps = [later - earlier for earlier, later in zip([left, *waits], waits, strict=False)]
    assert gaps == [timedelta(minutes=2), timedelta(minutes=4), timedelta(minutes=8), timedelta(minutes=16)]
    assert payment.open_attempts == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_charge_an_overstay_once(api, at, operator, car_park, booking, provider_down, monkeypatch):
    from bookings import gate as gate_module
    from bookings import tasks
    from bookings.payments.offline_provider import OfflineProvider

    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=1))
    api(operator).post(exits(car_park), {"plate": PLATE}, format="json")
    provider_down.recover()
    real_create, calls = OfflineProvider.create_payment, []

    def slow_create(self, **kwargs):
        calls.append(kwargs["idempotency_key"])
        threading.Event().wait(0.3)  # both sweeps are in flight together
        return real_create(self, **kwargs)

    monkeypatch.setattr(OfflineProvider, "create_payment", slow_create)
    at(booking.end + timedelta(hours=1, minutes=10))
    both_read = threading.Barrier(2)
    real_claim = gate_module._claim_overstay

    def claim_after_both_read(*args, **kwargs):
        both_read.wait(5)  # each sweep has read the payment as due before either claims it
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(gate_module, "_claim_overstay", claim_after_both_read)

    def sweep() -> int:
        try:
            return tasks.retry_overstay_payments()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = sorted(pool.map(lambda _: sweep(), range(2)))
    assert results == [0, 1]
    assert len(calls) == 1


def test_a_hold_the_provider_cannot_take_leaves_no_pending_payment(api, driver, car_park, provider_down):
    from tests.bookings.helpers import post_booking

    response = post_booking(api(driver), driver, car_park, *future_window())
    assert (response.status_code, response.json()["code"]) == (503, "payment_provider_unavailable")
    assert Booking.objects.get().status == BookingStatus.EXPIRED
    assert list(Payment.objects.values_list("status", flat=True)) == [PaymentStatus.CANCELLED]


# --- exits the gate never reported --------------------------------------------------------------


def _gate_hours(recorded) -> dict:
    return {hour: value for _, source, hours in recorded if source == "gate" for hour, value in hours.items()}


@pytest.fixture
def unreported(api, at, operator, booking, recorded, settings):
    """The booking's car checked in, then no exit reported; the sweep has run once it was due."""
    from bookings import tasks

    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=settings.BOOKING_UNREPORTED_EXIT_HOURS - 1))
    assert tasks.infer_unreported_exits() == 0  # maybe still inside, overstaying: wait
    at(booking.end + timedelta(hours=settings.BOOKING_UNREPORTED_EXIT_HOURS, minutes=1))
    assert tasks.infer_unreported_exits() == 1
    assert tasks.infer_unreported_exits() == 0
    return booking


def test_a_car_with_no_exit_long_after_its_end_stops_counting_as_inside(car_park, unreported, recorded, settings):
    booking = unreported
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CHECKED_IN  # nobody knows yet whether it left
    exit_event = GateEvent.objects.get(kind="exit")
    assert (exit_event.is_inferred, exit_event.occurred_at, exit_event.overstay_minor) == (True, booking.end, 0)
    assert not Payment.objects.filter(kind=PaymentKind.OVERSTAY).exists()
    # Every hour since its end is handed to pricing again, without the car; its stay still counts.
    gate_hours = _gate_hours(recorded)
    assert min(gate_hours) == booking.end
    assert len(gate_hours) == settings.BOOKING_UNREPORTED_EXIT_HOURS + 1
    assert set(gate_hours.values()) == {0}
    during_stay = occupancy._gate_intervals(car_park.pk, booking.start, booking.end)
    assert occupancy.mean_presence(during_stay, [booking.start]) == {booking.start: 1}


def test_a_car_still_there_pays_its_whole_overstay_when_it_leaves(
    api, at, operator, driver, car_park, unreported, recorded, django_capture_on_commit_callbacks
):
    booking = unreported
    SavedCard.objects.create(driver=driver, provider="offline", customer_ref="cus_1", payment_method_ref="pm_card_visa")
    left = booking.end + timedelta(hours=30)
    at(left)
    recorded.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = api(operator).post(exits(car_park), {"code": booking.code}, format="json")  # the QR still works
    assert response.status_code == 201, response.content
    expected = quote_for_window(car_park, booking.end, left).amount_minor
    assert response.json()["overstay"]["amount_minor"] == expected > 0
    overstay = Payment.objects.get(kind=PaymentKind.OVERSTAY)
    assert overstay.amount_minor == expected
    # Taken as gone for days: maybe it left and came back unseen, so it is asked in the app, not
    # charged to the saved card.
    assert (overstay.status, overstay.off_session_method_ref) == (PaymentStatus.PENDING, "")
    assert overstay.client_secret
    assert list(GateEvent.objects.filter(kind="exit").values_list("is_inferred", "occurred_at")) == [(False, left)]
    booking.refresh_from_db()
    assert (booking.status, booking.checked_out_at) == (BookingStatus.COMPLETED, left)
    # The hours it was taken as gone count it again.
    gate_hours = _gate_hours(recorded)
    assert gate_hours[booking.end + timedelta(hours=2)] == 1


def test_a_car_entering_again_completes_its_stale_stay_without_a_charge(
    api, at, operator, car_park, unreported, settings
):
    booking = unreported
    at(booking.end + timedelta(days=3))
    response = api(operator).post(entries(car_park), {"plate": PLATE}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["drive_up"] is True
    booking.refresh_from_db()
    assert (booking.status, booking.checked_out_at) == (BookingStatus.COMPLETED, booking.end)
    assert reserved_over(booking) == [0] * 8
    assert not Payment.objects.filter(kind=PaymentKind.OVERSTAY).exists()
    assert GateEvent.objects.filter(booking=booking, kind="exit", is_inferred=True).count() == 1
    # Its later exit is the drive-up's, not an overstay of the old booking.
    at(booking.end + timedelta(days=3, hours=2))
    leaving = api(operator).post(exits(car_park), {"plate": PLATE}, format="json")
    assert (leaving.json()["drive_up"], leaving.json()["overstay"]) == (True, None)


def test_a_car_entering_again_before_the_sweep_also_closes_its_stay(api, at, operator, car_park, booking):
    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=5))
    assert api(operator).post(entries(car_park), {"plate": PLATE}, format="json").status_code == 201
    booking.refresh_from_db()
    assert booking.status == BookingStatus.COMPLETED
    assert GateEvent.objects.filter(booking=booking, kind="exit", is_inferred=True).exists()


def test_a_car_seen_leaving_before_the_sweep_keeps_its_real_exit(api, at, operator, car_park, booking, settings):
    from bookings import tasks

    check_in(api, at, operator, booking)
    at(booking.end + timedelta(hours=3))
    assert api(operator).post(exits(car_park), {"plate": PLATE}, format="json").status_code == 201
    at(booking.end + timedelta(hours=settings.BOOKING_UNREPORTED_EXIT_HOURS + 1))
    assert tasks.infer_unreported_exits() == 0
    assert not GateEvent.objects.filter(is_inferred=True).exists()


def test_exit_of_a_booking_not_inside_is_refused(api, at, operator, car_park, booking):
    at(booking.start + timedelta(minutes=5))
    response = api(operator).post(exits(car_park), {"code": booking.code}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "not_inside")
    assert Booking.objects.get().status == BookingStatus.CONFIRMED
    assert reserved_over(booking) == [1] * 8
    assert not GateEvent.objects.exists()


def test_exit_by_plate_without_a_booking_inside_is_a_drive_up(api, at, operator, car_park, booking):
    at(booking.start + timedelta(minutes=5))
    response = api(operator).post(exits(car_park), {"plate": PLATE}, format="json")
    assert response.status_code == 201
    assert (response.json()["drive_up"], response.json()["booking"]) == (True, None)
    assert Booking.objects.get().status == BookingStatus.CONFIRMED


# --- who may open the gate -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [entries, exits])
@pytest.mark.parametrize(
    ("who", "status", "code"),
    [
        ("driver", 403, "permission_denied"),
        ("marketing", 403, "permission_denied"),
        ("other_operator", 404, "not_found"),
    ],
)
def test_only_the_car_parks_operator_staff_may_call_the_gate(request, api, car_park, path, who, status, code):
    response = api(request.getfixturevalue(who)).post(path(car_park), {"plate": PLATE}, format="json")
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert not GateEvent.objects.exists()


def test_anonymous_callers_get_401(anon, car_park):
    response = anon.post(entries(car_park), {"plate": PLATE}, format="json")
    assert response.status_code == 401
    assert not GateEvent.objects.exists()


def test_a_device_token_opens_its_car_parks_gate(api, at, operator, car_park, booking):
    at(booking.start)
    token = device_token(api, operator, car_park)
    response = device_client(token).post(entries(car_park), {"code": booking.code}, format="json")
    assert response.status_code == 201, response.content
    device = GateDevice.objects.get()
    event = GateEvent.objects.get()
    assert (event.device_id, event.staff_id) == (device.pk, None)
    assert device.last_used_at == booking.start


def test_a_revoked_device_token_is_401(api, operator, car_park):
    token = device_token(api, operator, car_park)
    device = GateDevice.objects.get()
    assert api(operator).delete(f"{devices(car_park)}/{device.pk}").status_code == 204
    response = device_client(token).post(entries(car_park), {"plate": PLATE}, format="json")
    assert (response.status_code, response.json()["code"]) == (401, "device_token_revoked")
    unknown = device_client("not-a-token").post(entries(car_park), {"plate": PLATE}, format="json")
    assert (unknown.status_code, unknown.json()["code"]) == (401, "device_token_invalid")
    assert not GateEvent.objects.exists()


def test_a_device_of_another_car_park_is_403(api, operator, other_operator, car_park, other_car_park):
    token = device_token(api, other_operator, other_car_park)
    response = device_client(token).post(exits(car_park), {"plate": PLATE}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "wrong_car_park")
    assert not GateEvent.objects.exists()


# --- gate devices --------------------------------------------------------------------------------


def test_a_device_token_is_shown_once_and_only_its_hash_is_kept(api, operator, car_park):
    response = api(operator).post(devices(car_park), {"name": "North barrier"}, format="json")
    assert response.status_code == 201
    body = response.json()
    device = GateDevice.objects.get()
    assert device.token_hash == hashlib.sha256(body["token"].encode()).hexdigest()
    assert device.token_prefix == body["token"][:8] == body["token_prefix"]
    assert len(body["token"]) >= 40
    listed = api(operator).get(devices(car_park)).json()["results"]
    assert [row["name"] for row in listed] == ["North barrier"]
    assert "token" not in listed[0]


def test_revoking_twice_keeps_the_first_time(api, operator, car_park):
    device_token(api, operator, car_park)
    device = GateDevice.objects.get()
    url = f"{devices(car_park)}/{device.pk}"
    assert api(operator).delete(url).status_code == 204
    first = GateDevice.objects.get().revoked_at
    assert api(operator).delete(url).status_code == 204
    assert GateDevice.objects.get().revoked_at == first is not None


@pytest.mark.parametrize(("who", "status"), [("driver", 403), ("marketing", 403), ("other_operator", 404)])
def test_only_the_car_parks_operators_manage_devices(request, api, operator, car_park, who, status):
    device_token(api, operator, car_park)
    device = GateDevice.objects.get()
    client = api(request.getfixturevalue(who))
    assert client.get(devices(car_park)).status_code == status
    assert client.post(devices(car_park), {"name": "Mine"}, format="json").status_code == status
    assert client.delete(f"{devices(car_park)}/{device.pk}").status_code == status
    assert GateDevice.objects.get().revoked_at is None
    assert GateDevice.objects.count() == 1


def test_a_device_token_cannot_manage_devices(api, operator, car_park):
    token = device_token(api, operator, car_park)
    assert device_client(token).get(devices(car_park)).status_code == 401


def test_check_in_and_out_publish_booked_and_gate_occupancy(
    api, at, operator, car_park, booking, recorded, django_capture_on_commit_callbacks
):
    at(booking.start)
    with django_capture_on_commit_callbacks(execute=True):
        api(operator).post(entries(car_park), {"code": booking.code}, format="json")
    at(booking.start + timedelta(minutes=30))
    with django_capture_on_commit_callbacks(execute=True):
        api(operator).post(exits(car_park), {"code": booking.code}, format="json")
    assert sorted(source for _, source, _ in recorded) == ["bookings", "bookings", "gate", "gate"]
    gate_hours = [hours for _, source, hours in recorded if source == "gate"]
    assert gate_hours[-1] == {booking.start: Decimal("0.50")}


def race(calls, threads: int = 8) -> list:
    """Start ``calls`` together on their own threads (each with its own database connection)."""
    barrier = threading.Barrier(len(calls))

    def worker(call):
        barrier.wait()
        try:
            return call()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(worker, calls))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_reads_of_one_booking_enter_once_and_leave_once(api, at, operator, car_park, booking, recorded):
    at(booking.start)
    clients = [api(operator) for _ in range(8)]
    entered = race([lambda c=c: c.post(entries(car_park), {"code": booking.code}, format="json") for c in clients])
    assert Counter(r.status_code for r in entered) == {201: 1, 409: 7}
    assert {r.json()["code"] for r in entered if r.status_code == 409} == {"already_inside"}

    at(booking.end + timedelta(hours=1))
    clients = [api(operator) for _ in range(8)]
    left = race([lambda c=c: c.post(exits(car_park), {"plate": PLATE}, format="json") for c in clients])
    statuses = Counter((r.status_code, r.json()["drive_up"]) for r in left)
    # One exit completes the booking; the others find nobody inside under that plate: drive-up exits.
    assert statuses == {(201, False): 1, (201, True): 7}
    assert Payment.objects.filter(kind=PaymentKind.OVERSTAY).count() == 1
    assert GateEvent.objects.filter(booking=booking).count() == 2
    assert reserved_over(booking) == [0] * 8


# --- what the gate saw, who is inside (operator staff) ---------------------------------------------


def gate_events(car_park) -> str:
    return f"/api/v1/carparks/{car_park.pk}/gate-events"


def occupancy_of(car_park) -> str:
    return f"/api/v1/carparks/{car_park.pk}/occupancy"


@pytest.fixture
def busy_gate(api, at, operator, car_park, booking):
    """At the booking's start + 1 h: its car inside, drive-up XY99 ZZZ inside, drive-up CD34 EFG gone."""
    check_in(api, at, operator, booking)
    assert api(operator).post(entries(car_park), {"plate": "xy99 zzz"}, format="json").status_code == 201
    at(booking.start + timedelta(minutes=10))
    assert api(operator).post(entries(car_park), {"plate": "CD34EFG"}, format="json").status_code == 201
    at(booking.start + timedelta(minutes=40))
    assert api(operator).post(exits(car_park), {"plate": "CD34 EFG"}, format="json").status_code == 201
    at(booking.start + timedelta(hours=1))
    return booking


def test_operator_lists_what_the_gate_saw_newest_first(api, operator, car_park, busy_gate):
    body = api(operator).get(gate_events(car_park)).json()
    assert body["count"] == 4
    rows = body["results"]
    assert [(row["kind"], row["plate"], row["drive_up"]) for row in rows] == [
        ("exit", "CD34EFG", True),
        ("entry", "CD34EFG", True),
        ("entry", "XY99ZZZ", True),
        ("entry", PLATE, False),
    ]
    checked_in = rows[-1]
    assert checked_in["booking"] == busy_gate.pk
    assert checked_in["occurred_at"] == busy_gate.start.isoformat().replace("+00:00", "Z")
    assert (checked_in["inferred"], checked_in["overstay_minor"], checked_in["currency"]) == (False, 0, "GBP")
    assert checked_in["recorded_by"] == {"type": "staff", "name": operator.email}


def test_gate_events_filter_by_kind_plate_and_time(api, operator, car_park, busy_gate):
    staff = api(operator)

    def plates(**params):
        response = staff.get(gate_events(car_park), params)
        assert response.status_code == 200, response.content
        return [(row["kind"], row["plate"]) for row in response.json()["results"]]

    assert plates(kind="exit") == [("exit", "CD34EFG")]
    assert plates(plate="cd34-efg") == [("exit", "CD34EFG"), ("entry", "CD34EFG")]
    assert plates(drive_up="false") == [("entry", PLATE)]
    since = (busy_gate.start + timedelta(minutes=5)).isoformat()
    until = (busy_gate.start + timedelta(minutes=30)).isoformat()
    assert plates(since=since, until=until) == [("entry", "CD34EFG")]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-12-01T08:00:00"}, "since"),  # naive: no offset
        ({"since": "2026-02-30T08:00:00Z"}, "since"),  # well formed, no such day
        ({"until": "2026-12-01T25:00:00Z"}, "until"),
        ({"until": "yesterday"}, "until"),
        ({"kind": "reverse"}, "kind"),
        ({"inferred": "maybe"}, "inferred"),
        ({"plate": "AB12!"}, "plate"),
    ],
)
def test_bad_gate_event_filters_are_400_with_the_field(api, operator, car_park, params, field):
    response = api(operator).get(gate_events(car_park), params)
    assert response.status_code == 400, response.content
    assert field in str(response.json())


def test_inferred_exits_are_listed_and_stop_counting_as_inside(api, operator, car_park, unreported):
    staff = api(operator)
    inferred = staff.get(gate_events(car_park), {"inferred": "true"}).json()["results"]
    assert [(row["kind"], row["booking"], row["recorded_by"]["type"]) for row in inferred] == [
        ("exit", unreported.pk, "platform")
    ]
    assert inferred[0]["occurred_at"] == unreported.end.isoformat().replace("+00:00", "Z")
    assert staff.get(occupancy_of(car_park)).json()["inside"]["total"] == 0


@pytest.fixture
def late_arrival(other_driver, car_park, booking) -> Booking:
    """Another paid booking for the same window, whose car never comes."""
    VehicleFactory(owner=other_driver, plate="LATE123")
    return confirmed(other_driver, car_park, booking.start, booking.end)


def test_occupancy_counts_vehicles_inside_and_bookings_still_to_arrive(
    api, operator, car_park, late_arrival, busy_gate
):
    body = api(operator).get(occupancy_of(car_park)).json()
    assert body == {
        "car_park": car_park.pk,
        "at": (busy_gate.start + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "capacity": 100,
        "inside": {"total": 2, "booked": 1, "drive_up": 1},
        "booked_not_arrived": 1,
        "open_now": True,
        "free_for_drive_up": 97,
    }
    late_arrival.refresh_from_db()
    assert late_arrival.status == BookingStatus.CONFIRMED


def test_nothing_is_free_for_drive_ups_while_a_closure_is_in_effect(api, at, operator, car_park):
    now = clock.now()
    Closure.objects.create(car_park=car_park, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1))
    body = api(operator).get(occupancy_of(car_park)).json()
    assert (body["open_now"], body["free_for_drive_up"]) == (False, 0)
    at(now + timedelta(hours=2))
    body = api(operator).get(occupancy_of(car_park)).json()
    assert (body["open_now"], body["free_for_drive_up"]) == (True, 100)


@pytest.mark.parametrize("path", [gate_events, occupancy_of])
@pytest.mark.parametrize(("who", "status"), [("driver", 403), ("marketing", 403), ("other_operator", 404)])
def test_only_the_car_parks_operator_staff_see_its_gate(request, api, car_park, path, who, status):
    assert api(request.getfixturevalue(who)).get(path(car_park)).status_code == status


def test_a_plate_read_twice_on_the_way_in_is_one_car_inside(api, at, operator, car_park, booking):
    at(booking.start)
    for _ in range(2):  # a double read at the barrier
        assert api(operator).post(entries(car_park), {"plate": "ZZ11ZZZ"}, format="json").status_code == 201
    assert api(operator).get(occupancy_of(car_park)).json()["inside"] == {"total": 1, "booked": 0, "drive_up": 1}
    assert api(operator).post(exits(car_park), {"plate": "ZZ11ZZZ"}, format="json").status_code == 201
    assert api(operator).get(occupancy_of(car_park)).json()["inside"]["total"] == 0


def test_a_car_in_before_its_entry_window_counts_once_then_leaves_for_good(api, at, operator, car_park, booking):
    at(booking.start - timedelta(minutes=30))  # before the 15-minute grace: counted as a drive-up
    early = api(operator).post(entries(car_park), {"plate": PLATE}, format="json").json()
    assert (early["drive_up"], early["booking"]) == (True, None)
    at(booking.start + timedelta(minutes=10))  # under way, the car is inside: not still to arrive
    body = api(operator).get(occupancy_of(car_park)).json()
    assert (body["inside"], body["booked_not_arrived"], body["free_for_drive_up"]) == (
        {"total": 1, "booked": 0, "drive_up": 1},
        0,
        99,
    )
    checked_in = api(operator).post(entries(car_park), {"code": booking.code}, format="json")  # staff at the desk
    assert checked_in.status_code == 201
    assert api(operator).get(occupancy_of(car_park)).json()["inside"] == {"total": 1, "booked": 1, "drive_up": 0}
    at(booking.end - timedelta(minutes=5))
    assert api(operator).post(exits(car_park), {"plate": PLATE}, format="json").json()["booking"]["status"] == (
        "completed"
    )
    assert api(operator).get(occupancy_of(car_park)).json()["inside"]["total"] == 0


def test_who_is_inside_agrees_with_the_stays_that_feed_pricing(car_park):
    """The database's answer (latest event per plate) and the Python pairing never disagree."""
    rng = random.Random(7)
    start = clock.now() - timedelta(days=2)
    moments = sorted(start + timedelta(minutes=rng.randint(0, 2 * 24 * 60)) for _ in range(120))
    for moment in moments:
        GateEvent.objects.create(
            car_park=car_park,
            kind=rng.choice(["entry", "entry", "exit"]),
            occurred_at=moment,
            plate=rng.choice(["AA11AAA", "BB22BBB", "CC33CCC", "DD44DDD"]),
            is_drive_up=True,
        )
    for at in [*moments[::7], clock.now()]:
        stays = occupancy.gate_stays(car_park.pk, at, at + timedelta(microseconds=1))
        expected = sorted((stay.plate, stay.entered_at) for stay in stays if stay.left_at is None)
        assert sorted((stay.plate, stay.entered_at) for stay in occupancy.vehicles_inside(car_park.pk, at)) == expected
