"""Hourly occupancy handed to the pricing app: what is booked, and what the gate saw.

``bookings`` source: bays held by confirmed, checked-in and completed bookings (mean over the
hour). ``gate`` source: vehicles actually inside, booked or drive-up, from entry and exit events.
Both are handed over through ``pricing.services.occupancy_record`` (the pricing app owns its
history and never imports this app).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import F, Window
from django.db.models.functions import FirstValue, RowNumber

from backend.carparks.models import CarPark
from backend.core import clock
from bookings.models import Booking, BookingStatus, GateEvent, GateEventKind

HOUR = timedelta(hours=1)
MAX_SPAN = timedelta(days=35)
LONGEST_GATE_STAY = timedelta(days=31)  # older entries without an exit are not still inside
OCCUPYING_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN, BookingStatus.COMPLETED)


def local_hour_starts(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    """UTC instants where the car park's local hours touching ``[start, end)`` begin (DST-safe:
    stepping in UTC visits the repeated autumn hour twice and skips the missing spring hour)."""
    local = start.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    moment = local.astimezone(ZoneInfo("UTC"))
    hours = []
    while moment < end:
        hours.append(moment)
        moment += HOUR
    return hours


def mean_presence(intervals: Iterable[tuple[datetime, datetime]], hours: list[datetime]) -> dict[datetime, Decimal]:
    """Mean number of intervals covering each hour (vehicle-hours / hour)."""
    totals = dict.fromkeys(hours, 0.0)
    spans = list(intervals)
    for hour in hours:
        hour_end = hour + HOUR
        for begin, finish in spans:
            overlap = (min(finish, hour_end) - max(begin, hour)).total_seconds()
            if overlap > 0:
                totals[hour] += overlap / 3600
    return {hour: Decimal(str(round(value, 2))) for hour, value in totals.items()}


def _booked_intervals(car_park_id: int, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    rows = Booking.objects.filter(
        car_park_id=car_park_id, status__in=OCCUPYING_STATUSES, start__lt=end, end__gt=start
    ).values_list("start", "end")
    return list(rows)


@dataclass(frozen=True, slots=True)
class GateStay:
    """One vehicle's stay as the gate saw it: an entry and the next exit of the same plate."""

    plate: str
    entered_at: datetime
    left_at: datetime | None  # None: no exit yet (still inside)
    booking_id: int | None
    is_drive_up: bool


def gate_stays(car_park_id: int, start: datetime, end: datetime) -> list[GateStay]:
    """Stays that reach into ``[start, end)``: entries before ``end`` (at most ``LONGEST_GATE_STAY``
    before ``start``), each ended by the next exit of its plate before ``end``.

    A plate has one stay at a time: an entry of a plate already inside ends its earlier stay there
    (a missed exit, a double read, or a car that came in before its booking's entry window and
    was then checked in by code), so one car is never counted twice.
    """
    events = GateEvent.objects.filter(
        car_park_id=car_park_id, occurred_at__lt=end, occurred_at__gte=start - LONGEST_GATE_STAY
    ).order_by("occurred_at", "pk")
    open_stays: dict[str, GateStay] = {}
    stays: list[GateStay] = []

    def close(stay: GateStay, at: datetime) -> None:
        if at > start:
            stays.append(replace(stay, left_at=at))

    rows = events.values_list("kind", "plate", "occurred_at", "booking_id", "is_drive_up")
    for kind, plate, occurred_at, booking_id, is_drive_up in rows:
        current = open_stays.pop(plate, None)
        if current is not None:
            close(current, occurred_at)
        if kind == GateEventKind.ENTRY:
            open_stays[plate] = GateStay(plate, occurred_at, None, booking_id, is_drive_up)
    stays.extend(open_stays.values())
    return stays


def _gate_intervals(car_park_id: int, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Presence from entries to the matching exit of the same plate (or now, if still inside)."""
    now = clock.now()
    return [
        (stay.entered_at, stay.left_at or max(now, stay.entered_at)) for stay in gate_stays(car_park_id, start, end)
    ]


def vehicles_inside(car_park_id: int, at: datetime) -> list[GateStay]:
    """The vehicles inside at ``at`` by the gate's count (inferred exits count as exits): the
    plates whose latest event is an entry, the same answer as ``gate_stays`` gives for ``at``.

    Found by the database (latest event per plate), so a dashboard polling a busy car park does
    not read a month of gate events into Python each time.
    """
    latest_first = [F("occurred_at").desc(), F("pk").desc()]
    rows = (
        GateEvent.objects.filter(car_park_id=car_park_id, occurred_at__lte=at, occurred_at__gte=at - LONGEST_GATE_STAY)
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("plate")], order_by=latest_first),
            # A window value too: a plain ``kind=`` filter would apply before the ranking.
            last_kind=Window(FirstValue("kind"), partition_by=[F("plate")], order_by=latest_first),
        )
        .filter(rank=1, last_kind=GateEventKind.ENTRY)
        .order_by("occurred_at", "pk")
        .values_list("plate", "occurred_at", "booking_id", "is_drive_up")
    )
    return [
        GateStay(plate, entered_at, None, booking_id, is_drive_up)
        for plate, entered_at, booking_id, is_drive_up in rows
    ]


def _record(car_park: CarPark, source: str, hours: dict[datetime, Decimal]) -> int:
    from pricing.services import occupancy_record

    return occupancy_record(car_park_id=car_park.pk, source=source, hours=hours, capacity=car_park.total_capacity)


def publish_for_window(car_park: CarPark, start: datetime, end: datetime) -> int:
    end = min(end, start + MAX_SPAN)
    hours = local_hour_starts(start, end, ZoneInfo(car_park.timezone))
    if not hours:
        return 0
    span_start, span_end = hours[0], hours[-1] + HOUR
    booked = mean_presence(_booked_intervals(car_park.pk, span_start, span_end), hours)
    return _record(car_park, "bookings", booked)


def publish_for_booking(booking_id: int) -> int:
    booking = Booking.objects.select_related("car_park").filter(pk=booking_id).first()
    if booking is None:
        return 0
    return publish_for_window(booking.car_park, booking.start, booking.end)


def publish_gate_hour(car_park: CarPark, moment: datetime) -> int:
    """Real occupancy of the local hour holding ``moment``, from gate events."""
    return publish_gate_span(car_park, moment, moment + timedelta(seconds=1))


def publish_gate_span(car_park: CarPark, start: datetime, end: datetime) -> int:
    """Real occupancy of every local hour touching ``[start, end)`` (at most ``MAX_SPAN``), from
    gate events read once for the whole span."""
    hours = local_hour_starts(start, min(end, start + MAX_SPAN), ZoneInfo(car_park.timezone))
    if not hours:
        return 0
    present = mean_presence(_gate_intervals(car_park.pk, hours[0], hours[-1] + HOUR), hours)
    return _record(car_park, "gate", present)
