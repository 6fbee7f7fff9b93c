"""bookings.ledger: slot rows created on demand (one SQL statement on PostgreSQL, the ORM on SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from backend.carparks.models import Closure
from bookings import ledger, services
from bookings.models import CapacitySlot
from tests.bookings.helpers import future_window, hold

pytestmark = pytest.mark.django_db


def test_missing_slots_are_created_with_no_capacity_where_a_closure_overlaps(car_park) -> None:
    start, _ = future_window(days=3, start_hour=9)
    start += timedelta(minutes=30)  # 09:30
    # Shut from 10:05 to 10:20: the 10:00 and 10:15 slots are touched, so they sell nothing.
    Closure.objects.create(
        car_park=car_park,
        starts_at=start + timedelta(minutes=35),
        ends_at=start + timedelta(minutes=50),
        reason="Barrier repair",
    )
    CapacitySlot.objects.create(car_park=car_park, bay_type="standard", starts_at=start, capacity=90, reserved=3)

    assert ledger.ensure_slots(car_park, "standard", start, start + timedelta(minutes=90)) == 6

    slots = CapacitySlot.objects.filter(car_park=car_park, bay_type="standard").order_by("starts_at")
    assert [(slot.starts_at - start, slot.capacity, slot.reserved) for slot in slots] == [
        (timedelta(minutes=0), 90, 3),  # already there: left as it was
        (timedelta(minutes=15), 90, 0),
        (timedelta(minutes=30), 0, 0),
        (timedelta(minutes=45), 0, 0),
        (timedelta(minutes=60), 90, 0),
        (timedelta(minutes=75), 90, 0),
    ]


def test_each_bay_type_gets_its_own_rows_at_its_own_count(car_park) -> None:
    start, end = future_window(days=4, hours=0.5)
    for bay_type in ("standard", "accessible", "ev_charging"):
        ledger.ensure_slots(car_park, bay_type, start, end)
    capacities = {
        (slot.bay_type, slot.starts_at - start): slot.capacity
        for slot in CapacitySlot.objects.filter(car_park=car_park)
    }
    assert capacities == {
        ("standard", timedelta(0)): 90,
        ("standard", timedelta(minutes=15)): 90,
        ("accessible", timedelta(0)): 5,
        ("accessible", timedelta(minutes=15)): 5,
        ("ev_charging", timedelta(0)): 5,
        ("ev_charging", timedelta(minutes=15)): 5,
    }


def test_slots_step_in_real_time_across_a_dst_change() -> None:
    london = ZoneInfo("Europe/London")
    # 00:30 to 02:30 local on the night the clocks go forward is one real hour.
    start, end = datetime(2027, 3, 28, 0, 30, tzinfo=london), datetime(2027, 3, 28, 2, 30, tzinfo=london)
    ledger_start, ledger_end = ledger.ledger_range(start, end)
    assert ledger_start.utcoffset() == timedelta(0)
    assert ledger.slot_starts(ledger_start, ledger_end) == [
        datetime(2027, 3, 28, 0, 30, tzinfo=UTC) + timedelta(minutes=15 * n) for n in range(4)
    ]


def test_overdue_holds_are_found_whatever_the_offset_of_now(driver, car_park) -> None:
    booking = hold(driver, car_park, *future_window(days=3))
    expires = booking.hold_expires_at
    just_before = (expires - timedelta(minutes=1)).astimezone(ZoneInfo("Asia/Tokyo"))
    just_after = (expires + timedelta(minutes=1)).astimezone(ZoneInfo("America/New_York"))
    assert services.holds_expire(now=just_before, car_park_id=car_park.pk) == 0
    assert services.holds_expire(now=just_after, car_park_id=car_park.pk) == 1
