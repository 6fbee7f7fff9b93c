"""The capacity ledger: per car park, bay type and 15-minute slot, ``capacity`` and ``reserved``.

Taking capacity locks the window's rows in time order (so overlapping holds cannot deadlock) and
adds one to ``reserved`` only where ``reserved < capacity``; if any slot is full, the caller's
transaction is rolled back. On PostgreSQL the lock, the check and the update are one statement
that takes every slot or none; releases lock in the same order. A CHECK constraint
``reserved <= capacity`` backs it in the database.

A slot row is created on first use; a missing row means "every bay of that type is free".
Closures set the capacity of their slots to 0 (rows created as needed).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import Count, F, Min, Q, QuerySet

from backend.carparks.models import BAY_COUNT_FIELDS, CarPark, Closure
from backend.core import clock
from bookings.models import SLOT, CapacitySlot

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class WindowFull(Exception):
    """Some slot of the window has no free bay left."""


def slot_floor(moment: datetime) -> datetime:
    """The start of the 15-minute slot holding ``moment``, in UTC (offsets are multiples of 15 min).

    UTC, so that stepping by ``SLOT`` from it is real time: Python adds a timedelta to a datetime
    in a named zone on the wall clock, which would disagree with the database across a DST change.
    """
    moment = moment.astimezone(UTC)
    return moment - (moment - _EPOCH) % SLOT


def slot_ceil(moment: datetime) -> datetime:
    floor = slot_floor(moment)
    return floor if floor == moment else floor + SLOT


def ledger_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The slot-aligned span a stay of ``[start, end)`` occupies."""
    return slot_floor(start), slot_ceil(end)


def slot_starts(ledger_start: datetime, ledger_end: datetime) -> list[datetime]:
    count = int((ledger_end - ledger_start) / SLOT)
    return [ledger_start + SLOT * index for index in range(count)]


def _in_closure(moment: datetime, closures: Sequence[Closure]) -> bool:
    return any(closure.starts_at < moment + SLOT and closure.ends_at > moment for closure in closures)


def _slots(car_park_id: int, bay_type: str, ledger_start: datetime, ledger_end: datetime) -> QuerySet[CapacitySlot]:
    return CapacitySlot.objects.filter(
        car_park_id=car_park_id, bay_type=bay_type, starts_at__gte=ledger_start, starts_at__lt=ledger_end
    )


def ensure_slots(car_park: CarPark, bay_type: str, ledger_start: datetime, ledger_end: datetime) -> int:
    """Create the window's missing slot rows (capacity = bays, or 0 inside a closure); return the slot count."""
    expected = len(slot_starts(ledger_start, ledger_end))
    if _slots(car_park.pk, bay_type, ledger_start, ledger_end).count() < expected:
        _create_slots(car_park, bay_type, ledger_start, ledger_end)
    return expected


def _create_slots(car_park: CarPark, bay_type: str, ledger_start: datetime, ledger_end: datetime) -> None:
    """Insert the window's slot rows that do not exist yet (a concurrent hold may create some too)."""
    if connection.vendor == "postgresql":  # one statement, rather than reading closures then inserting
        params = _window_params(car_park.pk, bay_type, ledger_start, ledger_end)
        params.update(slot=SLOT, bays=car_park.bays_of(bay_type))
        with connection.cursor() as cursor:
            cursor.execute(_CREATE_MISSING_SLOTS, params)
        return
    closures = list(car_park.closures.filter(starts_at__lt=ledger_end, ends_at__gt=ledger_start))
    bays = car_park.bays_of(bay_type)
    CapacitySlot.objects.bulk_create(
        [
            CapacitySlot(
                car_park=car_park,
                bay_type=bay_type,
                starts_at=starts_at,
                capacity=0 if _in_closure(starts_at, closures) else bays,
            )
            for starts_at in slot_starts(ledger_start, ledger_end)
        ],
        ignore_conflicts=True,
        batch_size=500,
    )


def reserve(car_park: CarPark, bay_type: str, ledger_start: datetime, ledger_end: datetime) -> None:
    """Take one bay for every slot of the window, or raise ``WindowFull``. Call inside a transaction."""
    if connection.vendor == "postgresql":
        outcome = _take_all_or_nothing(car_park.pk, bay_type, ledger_start, ledger_end)
        if outcome is _Take.ROWS_MISSING:  # nobody has booked some of these slots yet
            _create_slots(car_park, bay_type, ledger_start, ledger_end)
            outcome = _take_all_or_nothing(car_park.pk, bay_type, ledger_start, ledger_end)
        if outcome is not _Take.TAKEN:
            raise WindowFull
        return
    # SQLite runs one writer at a time: no lock order to keep, nothing to race.
    expected = ensure_slots(car_park, bay_type, ledger_start, ledger_end)
    window = _slots(car_park.pk, bay_type, ledger_start, ledger_end)
    updated = window.filter(reserved__lt=F("capacity")).update(reserved=F("reserved") + 1)
    if updated != expected:
        raise WindowFull


class _Take(enum.Enum):
    TAKEN = "taken"
    FULL = "full"
    ROWS_MISSING = "rows_missing"


# The window's rows are locked in time order (so overlapping holds queue instead of deadlocking);
# under READ COMMITTED a row locked after a wait is re-read, so ``verdict`` sees what is sold now.
# Nothing is updated unless every slot of the window has a row and a free bay. When rows are
# missing, nothing is locked either: the caller then creates them while holding no slot lock
# (creations wait on each other in time order only) and takes again.
_TAKE_ALL_OR_NOTHING = """
WITH present AS (
    SELECT count(*) AS existing FROM bookings_capacityslot
    WHERE car_park_id = %(car_park)s AND bay_type = %(bay_type)s
      AND starts_at >= %(start)s AND starts_at < %(end)s
), window_slots AS (
    SELECT id, reserved, capacity FROM bookings_capacityslot
    WHERE car_park_id = %(car_park)s AND bay_type = %(bay_type)s
      AND starts_at >= %(start)s AND starts_at < %(end)s
      AND (SELECT existing FROM present) = %(slots)s
    ORDER BY starts_at
    FOR UPDATE
), verdict AS (
    SELECT count(*) = %(slots)s AS all_present, coalesce(bool_and(reserved < capacity), true) AS all_free
    FROM window_slots
), taken AS (
    -- The new values come from the locked rows, not from ``slot``: PostgreSQL checks constraints on
    -- the row version this statement's snapshot saw before it finds that a concurrent release or
    -- capacity change replaced it, so ``slot.reserved + 1`` could break the CHECK on a bay just freed.
    UPDATE bookings_capacityslot AS slot
    SET reserved = window_slots.reserved + 1, capacity = window_slots.capacity
    FROM window_slots, verdict
    WHERE slot.id = window_slots.id AND verdict.all_present AND verdict.all_free
    RETURNING slot.id
)
SELECT verdict.all_present, verdict.all_free, (SELECT count(*) FROM taken) FROM verdict
"""


# Release locks the same rows in the same order as a hold, so the two never deadlock.
# As in a take, the new values come from the locked (current) rows.
_RELEASE_IN_ORDER = """
WITH window_slots AS (
    SELECT id, reserved, capacity FROM bookings_capacityslot
    WHERE car_park_id = %(car_park)s AND bay_type = %(bay_type)s
      AND starts_at >= %(start)s AND starts_at < %(end)s
    ORDER BY starts_at
    FOR UPDATE
)
UPDATE bookings_capacityslot AS slot
SET reserved = window_slots.reserved - 1, capacity = window_slots.capacity
FROM window_slots
WHERE slot.id = window_slots.id AND window_slots.reserved > 0
"""


# The missing rows of a window in one statement (capacity 0 where a closure overlaps the slot),
# inserted in time order like every other lock on slots; a concurrent creator waits, then skips.
_CREATE_MISSING_SLOTS = """
INSERT INTO bookings_capacityslot (car_park_id, bay_type, starts_at, capacity, reserved)
SELECT %(car_park)s, %(bay_type)s, slot_start,
       CASE WHEN EXISTS (
           SELECT 1 FROM carparks_closure AS closure
           WHERE closure.car_park_id = %(car_park)s
             AND closure.starts_at < slot_start + %(slot)s AND closure.ends_at > slot_start
       ) THEN 0 ELSE %(bays)s END,
       0
FROM generate_series(%(start)s, %(end)s - %(slot)s, %(slot)s) AS slot_start
ORDER BY slot_start
ON CONFLICT (car_park_id, bay_type, starts_at) DO NOTHING
"""


def _window_params(car_park_id: int, bay_type: str, ledger_start: datetime, ledger_end: datetime) -> dict[str, Any]:
    return {"car_park": car_park_id, "bay_type": bay_type, "start": ledger_start, "end": ledger_end}


def _take_all_or_nothing(car_park_id: int, bay_type: str, ledger_start: datetime, ledger_end: datetime) -> _Take:
    """PostgreSQL: one bay of every slot of the window in one statement, or nothing."""
    params = _window_params(car_park_id, bay_type, ledger_start, ledger_end)
    params["slots"] = len(slot_starts(ledger_start, ledger_end))
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_ALL_OR_NOTHING, params)
        all_present, all_free, taken = cursor.fetchone()
    if taken == params["slots"]:
        return _Take.TAKEN
    return _Take.FULL if all_present or not all_free else _Take.ROWS_MISSING


def release(car_park_id: int, bay_type: str, ledger_start: datetime, ledger_end: datetime) -> int:
    """Give back one bay for every slot of the window. Call inside the transaction that ends the booking."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_RELEASE_IN_ORDER, _window_params(car_park_id, bay_type, ledger_start, ledger_end))
            return cursor.rowcount
    return (
        _slots(car_park_id, bay_type, ledger_start, ledger_end)
        .filter(reserved__gt=0)
        .update(reserved=F("reserved") - 1)
    )


@dataclass(frozen=True, slots=True)
class Availability:
    capacity: int
    available: int


def availability(car_park: CarPark, bay_type: str, start: datetime, end: datetime) -> Availability:
    """Free bays for the whole of ``[start, end)``: the minimum over its slots."""
    return availability_bulk([car_park], bay_type, start, end)[car_park.pk]


def availability_bulk(
    car_parks: Iterable[CarPark], bay_type: str, start: datetime, end: datetime
) -> dict[int, Availability]:
    """Availability of many car parks in one query (for search)."""
    car_parks = list(car_parks)
    ledger_start, ledger_end = ledger_range(start, end)
    expected = len(slot_starts(ledger_start, ledger_end))
    rows = (
        CapacitySlot.objects.filter(
            car_park__in=car_parks, bay_type=bay_type, starts_at__gte=ledger_start, starts_at__lt=ledger_end
        )
        .values("car_park_id")
        .annotate(free=Min(F("capacity") - F("reserved")), slots=Count("id"))
    )
    by_car_park = {row["car_park_id"]: row for row in rows}
    result = {}
    for car_park in car_parks:
        bays = car_park.bays_of(bay_type)
        row = by_car_park.get(car_park.pk)
        free = bays
        if row is not None:
            free = row["free"] if row["slots"] == expected else min(row["free"], bays)
        result[car_park.pk] = Availability(capacity=bays, available=max(free, 0))
    return result


@dataclass(frozen=True, slots=True)
class Shortfall:
    bay_type: str
    starts_at: datetime
    reserved: int
    new_capacity: int


def capacity_shortfalls(car_park: CarPark, *, since: datetime) -> list[Shortfall]:
    """Future slots where more bays are sold than the car park's current bay counts allow."""
    closures = list(car_park.closures.filter(ends_at__gt=since))
    shortfalls: list[Shortfall] = []
    for bay_type, field in BAY_COUNT_FIELDS.items():
        bays = getattr(car_park, field)
        over = CapacitySlot.objects.filter(
            car_park=car_park, bay_type=bay_type, starts_at__gte=slot_floor(since), reserved__gt=bays
        ).order_by("starts_at")
        shortfalls.extend(
            Shortfall(bay_type, slot.starts_at, slot.reserved, bays)
            for slot in over
            if not _in_closure(slot.starts_at, closures)
        )
    return shortfalls


def apply_capacity(car_park: CarPark, *, since: datetime) -> None:
    """Set future slots to the car park's bay counts, except inside closures (capacity 0)."""
    closures = list(car_park.closures.filter(ends_at__gt=since))
    closed = Q()
    for closure in closures:
        closed |= Q(starts_at__lt=closure.ends_at, starts_at__gte=slot_floor(closure.starts_at))
    for bay_type, field in BAY_COUNT_FIELDS.items():
        future = CapacitySlot.objects.filter(car_park=car_park, bay_type=bay_type, starts_at__gte=slot_floor(since))
        if closures:
            future = future.exclude(closed)
        future.update(capacity=getattr(car_park, field))


def close_slots(car_park: CarPark, closure: Closure) -> None:
    """Capacity 0 for every bay type over the closure. Raises IntegrityError if bays are still sold there."""
    ledger_start, ledger_end = ledger_range(closure.starts_at, closure.ends_at)
    ledger_start = max(ledger_start, slot_floor(clock.now()))  # slots already past sell nothing more
    for bay_type in BAY_COUNT_FIELDS:
        ensure_slots(car_park, bay_type, ledger_start, ledger_end)
        _slots(car_park.pk, bay_type, ledger_start, ledger_end).update(capacity=0)


def reopen_slots(car_park: CarPark, starts_at: datetime, ends_at: datetime) -> None:
    """After a closure is removed: its slots get the bay counts back, unless another closure covers them."""
    ledger_start, ledger_end = ledger_range(starts_at, ends_at)
    closures = list(car_park.closures.filter(starts_at__lt=ledger_end, ends_at__gt=ledger_start))
    for bay_type, field in BAY_COUNT_FIELDS.items():
        for slot in _slots(car_park.pk, bay_type, ledger_start, ledger_end):
            if not _in_closure(slot.starts_at, closures):
                CapacitySlot.objects.filter(pk=slot.pk).update(capacity=getattr(car_park, field))


def expected_reserved(bookings: Iterable[tuple[int, str, datetime, datetime]]) -> dict[tuple[int, str, datetime], int]:
    """What the ledger should hold given live (car_park_id, bay_type, ledger_start, ledger_end) spans."""
    counts: dict[tuple[int, str, datetime], int] = {}
    for car_park_id, bay_type, ledger_start, ledger_end in bookings:
        for starts_at in slot_starts(ledger_start, ledger_end):
            key = (car_park_id, bay_type, starts_at)
            counts[key] = counts.get(key, 0) + 1
    return counts


__all__ = [
    "Availability",
    "Shortfall",
    "WindowFull",
    "apply_capacity",
    "availability",
    "availability_bulk",
    "capacity_shortfalls",
    "close_slots",
    "ensure_slots",
    "expected_reserved",
    "ledger_range",
    "release",
    "reopen_slots",
    "reserve",
    "slot_ceil",
    "slot_floor",
    "slot_starts",
]
