"""Periodic sweeps and on-commit work: expiry, no-shows, reminders, e-mails once, occupancy to pricing."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from backend.core import clock
from bookings import occupancy, services, tasks
from bookings.gate import gate_entry_record
from bookings.models import Booking, BookingStatus, CapacitySlot, DriverMessage, IdempotencyRecord
from pricing.models import OccupancyHour
from tests.bookings.helpers import confirmed, future_window, hold, post_booking

pytestmark = pytest.mark.django_db


def test_the_sweep_expires_overdue_holds_and_frees_their_bays(driver, car_park, time_machine):
    start, end = future_window()
    hold(driver, car_park, start, end)
    assert tasks.expire_holds() == 0
    time_machine.move_to(start - timedelta(days=1), tick=False)
    assert tasks.expire_holds() == 1
    assert Booking.objects.get().status == BookingStatus.EXPIRED
    assert not CapacitySlot.objects.filter(reserved__gt=0).exists()


def test_a_booking_never_checked_in_becomes_a_no_show_and_frees_its_bays(driver, car_park, time_machine):
    start, end = future_window()
    confirmed(driver, car_park, start, end)
    time_machine.move_to(end - timedelta(minutes=1), tick=False)
    assert tasks.mark_no_shows() == 0
    time_machine.move_to(end + timedelta(minutes=1), tick=False)
    assert tasks.mark_no_shows() == 1
    assert Booking.objects.get().status == BookingStatus.NO_SHOW
    assert not CapacitySlot.objects.filter(reserved__gt=0).exists()


def test_a_message_is_sent_once_however_often_the_task_runs(driver, car_park):
    start, end = future_window()
    booking = confirmed(driver, car_park, start, end)
    results = [tasks.send_driver_message(booking.pk, "confirmation") for _ in range(3)]
    assert results == [1, 0, 0]
    assert len(mail.outbox) == 1
    assert booking.code in mail.outbox[0].body
    assert mail.outbox[0].to == [driver.email]
    assert DriverMessage.objects.get().sent_at is not None


def test_reminders_go_once_shortly_before_the_start(driver, car_park, time_machine):
    start, end = future_window()
    confirmed(driver, car_park, start, end)
    assert tasks.send_reminders() == 0
    time_machine.move_to(start - timedelta(hours=1), tick=False)
    assert tasks.send_reminders() == 1
    assert tasks.send_reminders() == 0
    assert [m.subject for m in mail.outbox] == [f"Your parking at {car_park.name} starts soon"]


def test_confirmed_occupancy_is_handed_to_pricing_per_local_hour(driver, other_driver, car_park):
    start, end = future_window(hours=2)
    confirmed(driver, car_park, start, end)
    confirmed(other_driver, car_park, start + timedelta(minutes=30), start + timedelta(hours=1))
    hold(driver, car_park, start, end)  # unpaid holds are not occupancy
    occupancy.publish_for_window(car_park, start, end)
    rows = {row.hour_start: row.occupied for row in OccupancyHour.objects.filter(car_park=car_park, source="bookings")}
    assert rows == {start: Decimal("1.50"), start + timedelta(hours=1): Decimal("1.00")}


def test_local_hours_across_the_autumn_change_are_25(car_park):
    zone = ZoneInfo("Europe/London")
    day = datetime(2026, 10, 25, tzinfo=zone)
    hours = occupancy.local_hour_starts(day, day + timedelta(days=1), zone)
    assert len(hours) == 25
    spring = datetime(2026, 3, 29, tzinfo=zone)
    assert len(occupancy.local_hour_starts(spring, spring + timedelta(days=1), zone)) == 23


def test_old_idempotency_records_are_purged(api, driver, car_park, time_machine):
    start, end = future_window()
    post_booking(api(driver), driver, car_park, start, end, key="old")
    time_machine.move_to(start, tick=False)
    assert tasks.purge_idempotency_records() == 1
    assert not IdempotencyRecord.objects.exists()


def test_gate_occupancy_counts_a_drive_up_in_every_hour_it_stays(operator, car_park, time_machine):
    hour = (clock.now() + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    time_machine.move_to(hour + timedelta(minutes=30), tick=False)
    gate_entry_record(car_park=car_park, plate="AB12CDE", occurred_at=clock.now(), staff=operator)
    time_machine.move_to(hour + timedelta(hours=2, minutes=5), tick=False)
    assert tasks.publish_gate_occupancy() == 2
    rows = {row.hour_start: row.occupied for row in OccupancyHour.objects.filter(car_park=car_park, source="gate")}
    assert rows[hour + timedelta(hours=1)] == Decimal("1.00")
    assert rows[hour + timedelta(hours=2)] == Decimal("0.08")


def test_the_payment_secret_is_shown_to_the_paying_driver_only(api, driver, operator, car_park):
    start, end = future_window()
    booking = hold(driver, car_park, start, end)
    mine = api(driver).get(f"/api/v1/bookings/{booking.pk}").json()
    staff = api(operator).get(f"/api/v1/bookings/{booking.pk}").json()
    assert mine["payment"]["client_secret"]
    assert [p["kind"] for p in mine["payments"]] == ["booking"]
    assert staff["payment"]["client_secret"] is None
    assert staff["payments"][0]["client_secret"] is None


def test_every_periodic_task_in_the_beat_schedule_is_a_registered_task(settings):
    from backend.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"bookings.tasks.retry_overstay_payments", "bookings.tasks.infer_unreported_exits"} <= scheduled
    assert scheduled <= set(app.tasks), scheduled - set(app.tasks)


def test_a_refund_whose_task_was_lost_is_sent_by_the_sweep_once(driver, car_park, time_machine):
    # In a test transaction on_commit never runs: exactly a refund whose task never reached the broker.
    booking = confirmed(driver, car_park, *future_window(days=3))
    payment = booking.payments.get()
    lost = services.refund_create(payment=payment, amount_minor=payment.amount_minor, reason="requested")
    assert lost is not None
    assert tasks.resend_unsent_refunds() == 0  # it may still be on its way

    time_machine.move_to(clock.now() + timedelta(minutes=11), tick=False)
    assert tasks.resend_unsent_refunds() == 1

    lost.refresh_from_db()
    assert (lost.status, bool(lost.provider_refund_id)) == ("succeeded", True)
    assert tasks.resend_unsent_refunds() == 0


def test_a_refund_lost_for_a_day_is_left_for_a_person_not_resent(driver, car_park, time_machine, caplog):
    booking = confirmed(driver, car_park, *future_window(days=3))
    payment = booking.payments.get()
    lost = services.refund_create(payment=payment, amount_minor=100, reason="requested")
    assert lost is not None

    time_machine.move_to(clock.now() + timedelta(hours=24), tick=False)

    assert tasks.resend_unsent_refunds() == 0
    lost.refresh_from_db()
    assert lost.status == "pending"
    assert "settle them by hand" in caplog.text
