"""Prices for a stay, computed from hourly rates: per-minute within each local hour, capped per 24 h.

Pure functions over a rate lookup, so the static rate card and published dynamic rates share
the same arithmetic. All money is ``Decimal``; lines are rounded to minor units and the total is
their sum, so a receipt always adds up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from backend.core.money import Money

HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)
_SECONDS_PER_HOUR = Decimal(3600)

RateLookup = Callable[[datetime], Decimal]
"""The hourly rate for the local hour that starts at the given UTC instant.

:func:`price_stay` calls it once per segment, in order, with the segment's local hour start.
"""


@dataclass(frozen=True, slots=True)
class QuoteLine:
    kind: str  # parking | daily_maximum | minimum_charge | tax_included
    description: str
    amount: Money
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "description": self.description,
            "amount_minor": self.amount.to_minor(),
            "starts_at": self.starts_at.isoformat() if self.starts_at else None,
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
        }


@dataclass(frozen=True, slots=True)
class CancellationPolicy:
    free_until_hours_before_start: int
    late_refund_percent: int

    def refund_for(self, paid: Money, *, now: datetime, start: datetime) -> Money:
        """What a cancellation at ``now`` refunds of ``paid``."""
        if now <= start - timedelta(hours=self.free_until_hours_before_start):
            return paid
        if now >= start:
            return Money.zero(paid.currency)
        return (paid * Decimal(self.late_refund_percent) * Decimal("0.01")).rounded()

    def as_dict(self) -> dict[str, object]:
        return {
            "free_cancellation_hours": self.free_until_hours_before_start,
            "late_cancellation_refund_percent": self.late_refund_percent,
            "description": (
                f"Free cancellation until {self.free_until_hours_before_start} h before the start; "
                f"after that {self.late_refund_percent}% is refunded until the start, nothing once it has started."
            ),
        }


@dataclass(frozen=True, slots=True)
class Tariff:
    """What, besides hourly rates, shapes a price. Amounts in the car park's currency."""

    currency: str
    daily_maximum: Decimal | None
    minimum_charge: Decimal
    tax_rate: Decimal


@dataclass(frozen=True, slots=True)
class Quote:
    car_park_id: int
    start: datetime
    end: datetime
    total: Money
    lines: tuple[QuoteLine, ...]
    tax: Money
    tax_rate: Decimal
    cancellation_policy: CancellationPolicy
    valid_until: datetime
    rate_source: str = "rate_card"
    hourly_rates: tuple[tuple[datetime, Decimal], ...] = field(default=())

    @property
    def amount_minor(self) -> int:
        return self.total.to_minor()

    @property
    def currency(self) -> str:
        return self.total.currency


def hour_segments(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut at local hour boundaries (UTC datetimes).

    Works from seconds into the local hour rather than wall-clock arithmetic, so 23- and
    25-hour days and half-hour offsets (Asia/Kolkata) come out right.
    """
    return [(segment_start, segment_end) for segment_start, segment_end, _ in local_hour_segments(start, end, zone)]


def local_hour_segments(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, datetime, datetime]]:
    """:func:`hour_segments` with, for each segment, the UTC instant where its local hour starts.

    One zone conversion per segment: the hour start falls out of the same arithmetic that finds
    the segment's end, so callers need not convert each segment again.
    """
    segments: list[tuple[datetime, datetime, datetime]] = []
    cursor = start
    while cursor < end:
        local = cursor.astimezone(zone)
        hour_start = cursor - timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
        boundary = min(hour_start + HOUR, end)
        segments.append((cursor, boundary, hour_start.astimezone(UTC)))
        cursor = boundary
    return segments


def _describe(duration: timedelta) -> str:
    minutes = int(duration.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def price_stay(
    *,
    car_park_id: int,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    rate_at: RateLookup,
    tariff: Tariff,
    policy: CancellationPolicy,
    now: datetime,
    valid_for: timedelta = timedelta(minutes=10),
    rate_source: str = "rate_card",
) -> Quote:
    """Price ``[start, end)``: each local hour at its rate, pro rata by the minute.

    Each 24 hours from the start is capped at the daily maximum; the whole stay costs at least
    the minimum charge. Tax is included in the prices and shown as a line of its own.
    """
    currency = tariff.currency
    lines: list[QuoteLine] = []
    hourly: list[tuple[datetime, Decimal]] = []
    block_start = start
    while block_start < end:
        block_end = min(block_start + DAY, end)
        raw = Decimal(0)
        for segment_start, segment_end, hour_start in local_hour_segments(block_start, block_end, zone):
            rate = rate_at(hour_start)
            hourly.append((segment_start, rate))
            duration = segment_end - segment_start
            # A whole hour costs exactly its rate (rate * 3600 / 3600 is exact); skip the arithmetic.
            raw += rate if duration == HOUR else rate * Decimal(duration.total_seconds()) / _SECONDS_PER_HOUR
        charged = Money(raw, currency).rounded()
        lines.append(
            QuoteLine("parking", f"Parking {_describe(block_end - block_start)}", charged, block_start, block_end)
        )
        if tariff.daily_maximum is not None and charged.amount > tariff.daily_maximum:
            cap = Money(tariff.daily_maximum, currency).rounded()
            lines.append(QuoteLine("daily_maximum", f"Daily maximum {cap}", cap - charged, block_start, block_end))
        block_start = block_end

    subtotal = sum((line.amount for line in lines), Money.zero(currency))
    minimum = Money(tariff.minimum_charge, currency).rounded()
    if subtotal < minimum:
        lines.append(QuoteLine("minimum_charge", f"Minimum charge {minimum}", minimum - subtotal))
        subtotal = minimum
    tax = subtotal.tax_included(tariff.tax_rate)
    percent = (tariff.tax_rate * 100).normalize()
    lines.append(QuoteLine("tax_included", f"Tax {percent:f}% included", tax))
    return Quote(
        car_park_id=car_park_id,
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
        total=subtotal,
        lines=tuple(lines),
        tax=tax,
        tax_rate=tariff.tax_rate,
        cancellation_policy=policy,
        valid_until=now + valid_for,
        rate_source=rate_source,
        hourly_rates=tuple(hourly),
    )
