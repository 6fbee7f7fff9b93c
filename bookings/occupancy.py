"""Hourly occupancy handed to the pricing app: what is booked, and what the gate saw.

``bookings`` source: bays held by confirmed, checked-in and completed bookings (mean over the
hour). ``gate`` source: vehicles actually inside, booked or drive-up, from entry and exit events.
Both are handed over through ``pricing.services.occupancy_record`` (the pricing app owns its
history and never imports this app).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

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
    before ``start``), each paired with the next exit of its plate before ``end``; first in, first out."""
    events = GateEvent.objects.filter(
        car_park_id=car_park_id, occurred_at__lt=end, occurred_at__gte=start - LONGEST_GATE_STAY
    ).order_by("occurred_at", "pk")
    inside: dict[str, list[tuple[datetime, int | None, bool]]] = {}
    stays: list[GateStay] = []
    rows = events.values_list("kind", "plate", "occurred_at", "booking_id", "is_drive_up")
    for kind, plate, occurred_at, booking_id, is_drive_up in rows:
        if kind == GateEventKind.ENTRY:
            inside.setdefault(plate, []).append((occurred_at, booking_id, is_drive_up))
        elif inside.get(plate):
            entered_at, entry_booking, entry_drive_up = inside[plate].pop(0)
            if occurred_at > start:
                stays.append(GateStay(plate, entered_at, occurred_at, entry_booking, entry_drive_up))
    stays.extend(
        GateStay(plate, entered_at, None, booking_id, is_drive_up)
        for plate, entries in inside.items()
        for entered_at, booking_id, is_drive_up in entries
    )
    return stays


def _gate_intervals(car_park_id: int, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Presence from entries to the matching exit of the same plate (or now, if still inside)."""
    now = clock.now()
    return [
        (stay.entered_at, stay.left_at or max(now, stay.entered_at)) for stay in gate_stays(car_park_id, start, end)
    ]


def vehicles_inside(car_park_id: int, at: datetime) -> list[GateStay]:
    """The vehicles inside at ``at`` by the gate's count (inferred exits count as exits)."""
    return [stay for stay in gate_stays(car_park_id, at, at + timedelta(microseconds=1)) if stay.left_at is None]


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
