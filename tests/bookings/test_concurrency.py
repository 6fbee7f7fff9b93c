"""Capacity under real concurrent transactions on PostgreSQL: threads, each with its own connection.

Every test commits for real (``transaction=True``) and releases its threads together, so the
requests truly race in the database.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import F

from backend.accounts.models import User
from backend.carparks.models import CarPark
from bookings import ledger, services
from bookings.models import LIVE_STATUSES, Booking, CapacitySlot
from tests.bookings.helpers import future_window, post_booking, vehicle_of
from tests.conftest import client_for
from tests.factories import CarParkFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 32


def race(calls: list[Callable[[], Any]], threads: int = THREADS) -> list[Any]:
    """Run ``calls`` on ``threads`` threads that all start together; each closes its connection."""
    gate = threading.Barrier(min(threads, len(calls)))

    def worker(call: Callable[[], Any], index: int) -> Any:
        if index < gate.parties:
            gate.wait()
        try:
            return call()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(worker, calls, range(len(calls))))


def drivers(count: int) -> list[User]:
    users = [UserFactory(email=f"racer{index}@example.test") for index in range(count)]
    for user in users:
        vehicle_of(user)
    return users


def booking_call(
    driver: User, car_park: CarPark, start: datetime, end: datetime, key: str | None = None
) -> Callable[[], int]:
    client = client_for(driver)
    return lambda: post_booking(client, driver, car_park, start, end, key=key).status_code


def random_windows(
    day_start: datetime, count: int, *, seed: int, offsets: tuple[int, int], lengths: tuple[int, int]
) -> list[tuple[datetime, datetime]]:
    """``count`` windows starting ``offsets`` slots after ``day_start`` and lasting ``lengths`` slots."""
    rng = random.Random(seed)
    windows = []
    for _ in range(count):
        begin = day_start + ledger.SLOT * rng.randrange(*offsets)
        windows.append((begin, begin + ledger.SLOT * rng.randrange(*lengths)))
    return windows


def racing_holds(car_park: CarPark, windows: list[tuple[datetime, datetime]]) -> list[Callable[[], int]]:
    """One hold per window, each by its own driver."""
    racers = drivers(len(windows))
    return [booking_call(driver, car_park, *window) for driver, window in zip(racers, windows, strict=True)]


def assert_ledger_matches_live_bookings(car_park: CarPark) -> None:
    live = Booking.objects.filter(car_park=car_park, status__in=LIVE_STATUSES)
    expected = ledger.expected_reserved(live.values_list("car_park_id", "bay_type", "ledger_start", "ledger_end"))
    actual = {
        (slot.car_park_id, slot.bay_type, slot.starts_at): slot.reserved
        for slot in CapacitySlot.objects.filter(car_park=car_park, reserved__gt=0)
    }
    assert actual == expected
    assert not CapacitySlot.objects.filter(car_park=car_park, reserved__gt=F("capacity")).exists()


def test_100_holds_from_32_threads_for_5_bays_sell_exactly_5():
    car_park = CarParkFactory(standard_bays=5)
    start, end = future_window()
    calls = [booking_call(driver, car_park, start, end) for driver in drivers(100)]
    statuses = Counter(race(calls))
    assert statuses == {201: 5, 409: 95}
    assert Booking.objects.filter(car_park=car_park, status__in=LIVE_STATUSES).count() == 5
    assert_ledger_matches_live_bookings(car_park)


def test_overlapping_windows_of_different_spans_never_oversell():
    car_park = CarParkFactory(standard_bays=5)
    day_start, _ = future_window(start_hour=6)
    windows = random_windows(day_start, 100, seed=7, offsets=(0, 32), lengths=(1, 24))
    statuses = Counter(race(racing_holds(car_park, windows)))
    assert set(statuses) <= {201, 409}
    assert statuses[201] >= 5
    live = list(Booking.objects.filter(car_park=car_park, status__in=LIVE_STATUSES))
    for slot in ledger.slot_starts(day_start, day_start + timedelta(hours=14)):
        assert sum(1 for b in live if b.start < slot + ledger.SLOT and b.end > slot) <= 5
    assert_ledger_matches_live_bookings(car_park)


def test_overlapping_windows_over_a_ledger_with_some_slots_already_created_never_oversell_nor_deadlock():
    """Some slot rows exist (earlier bookings) and others not: holds that create missing rows race
    holds that lock existing ones. Every request is a 201 or a 409, never a deadlock (500)."""
    car_park = CarParkFactory(standard_bays=4)
    day_start, _ = future_window(start_hour=6)
    for index, offset in enumerate((2, 7, 13, 21, 30)):  # scattered rows, each with one bay already sold
        early = UserFactory(email=f"early{index}@example.test")
        begin = day_start + timedelta(minutes=15 * offset)
        assert post_booking(client_for(early), early, car_park, begin, begin + ledger.SLOT).status_code == 201
    windows = random_windows(day_start, 96, seed=11, offsets=(0, 34), lengths=(2, 16))
    statuses = Counter(race(racing_holds(car_park, windows)))
    assert set(statuses) <= {201, 409}, statuses
    assert statuses[201] >= 4
    assert_ledger_matches_live_bookings(car_park)


def _hold_waiting_behind(change: Callable[[], None], car_park: CarPark, window: tuple[datetime, datetime]) -> int:
    """Run ``change`` in a transaction that stays open while a hold of ``window`` queues behind its
    row locks, then commit it; return the hold's status code."""
    changed, commit = threading.Event(), threading.Event()
    result: dict[str, Any] = {}
    (racer,) = drivers(1)

    def change_then_wait() -> None:
        try:
            with transaction.atomic():
                change()
                changed.set()
                commit.wait(10)
        finally:
            connection.close()

    def hold_now() -> None:
        try:
            result["status"] = booking_call(racer, car_park, *window)()
        finally:
            connection.close()

    changer = threading.Thread(target=change_then_wait)
    changer.start()
    assert changed.wait(10)
    holder = threading.Thread(target=hold_now)
    holder.start()
    time.sleep(0.5)  # the hold now waits on the slot rows the change has locked
    commit.set()
    changer.join()
    holder.join()
    return result["status"]


def test_a_hold_queued_behind_the_release_of_the_last_bay_gets_it():
    """Under READ COMMITTED the hold's statement started while the slot was full; it must take the
    freed bay (201), not break the CHECK on the row version it first saw (500)."""
    car_park = CarParkFactory(standard_bays=1)
    window = future_window()
    first = UserFactory(email="first@example.test")
    assert post_booking(client_for(first), first, car_park, *window).status_code == 201
    booked = Booking.objects.get(car_park=car_park)
    assert _hold_waiting_behind(lambda: services.booking_cancel(booking_id=booked.pk), car_park, window) == 201
    assert_ledger_matches_live_bookings(car_park)


def test_a_hold_queued_behind_a_capacity_raise_gets_a_new_bay():
    car_park = CarParkFactory(standard_bays=1)
    window = future_window()
    first = UserFactory(email="first@example.test")
    assert post_booking(client_for(first), first, car_park, *window).status_code == 201

    def raise_capacity() -> None:
        CapacitySlot.objects.filter(car_park=car_park).update(capacity=3)

    assert _hold_waiting_behind(raise_capacity, car_park, window) == 201
    assert_ledger_matches_live_bookings(car_park)


def test_control_the_same_race_oversells_with_a_naive_check_then_insert(monkeypatch):
    """Without the guarded UPDATE (count what is sold, then sell), the race oversells."""

    def naive_reserve(car_park: CarPark, bay_type: str, ledger_start: datetime, ledger_end: datetime) -> None:
        sold = Booking.objects.filter(
            car_park=car_park, status__in=LIVE_STATUSES, ledger_start__lt=ledger_end, ledger_end__gt=ledger_start
        ).count()  # includes this transaction's own new booking
        time.sleep(0.2)  # the gap between the check and the commit that every such guard has
        if sold > car_park.bays_of(bay_type):
            raise ledger.WindowFull

    monkeypatch.setattr(ledger, "reserve", naive_reserve)
    car_park = CarParkFactory(standard_bays=5)
    start, end = future_window()
    calls = [booking_call(driver, car_park, start, end) for driver in drivers(100)]
    statuses = Counter(race(calls))
    assert statuses[201] > 5
    assert Booking.objects.filter(car_park=car_park, status__in=LIVE_STATUSES).count() > 5


def test_20_concurrent_holds_from_one_driver_respect_the_unpaid_hold_limit(settings):
    car_park = CarParkFactory(standard_bays=50)
    (driver,) = drivers(1)
    calls = []
    for index in range(20):
        start, end = future_window(days=2 + index)
        calls.append(booking_call(driver, car_park, start, end))
    statuses = Counter(race(calls, threads=20))
    assert statuses == {201: settings.BOOKING_MAX_UNPAID_HOLDS, 409: 20 - settings.BOOKING_MAX_UNPAID_HOLDS}
    assert Booking.objects.filter(driver=driver).count() == settings.BOOKING_MAX_UNPAID_HOLDS


def test_the_same_request_10_times_at_once_with_one_key_makes_one_booking():
    car_park = CarParkFactory(standard_bays=5)
    (driver,) = drivers(1)
    start, end = future_window()
    client = client_for(driver)

    def send() -> tuple[int, bytes]:
        response = post_booking(client, driver, car_park, start, end, key="same-key-10")
        return response.status_code, response.content

    answers = race([send] * 10, threads=10)
    assert Booking.objects.count() == 1
    assert {status for status, _ in answers} == {201}
    assert len({content for _, content in answers}) == 1
    assert_ledger_matches_live_bookings(car_park)
