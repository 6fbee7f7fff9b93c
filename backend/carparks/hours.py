"""Opening hours as absolute intervals: local wall-clock periods turned into UTC spans (DST-aware)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Period:
    weekday: int  # Monday = 0
    opens: time
    closes: time
    overnight: bool


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    # A wall-clock time that falls in a DST gap resolves forwards (fold=0 maps through the old offset).
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def open_spans(
    periods: Sequence[Period], zone: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Merged UTC intervals when the car park is open, covering at least ``[start, end)``."""
    by_weekday = {period.weekday: period for period in periods}
    first_day = start.astimezone(zone).date() - timedelta(days=1)  # yesterday's overnight period may reach today
    last_day = end.astimezone(zone).date()
    spans: list[tuple[datetime, datetime]] = []
    day = first_day
    while day <= last_day:
        period = by_weekday.get(day.weekday())
        if period is not None:
            span_start = _local(day, period.opens, zone)
            span_end = _local(day + timedelta(days=1) if period.overnight else day, period.closes, zone)
            if span_end > start and span_start < end:
                spans.append((span_start, span_end))
        day += timedelta(days=1)
    return _merge(spans)


def _merge(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for span_start, span_end in sorted(spans):
        if merged and span_start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], span_end))
        else:
            merged.append((span_start, span_end))
    return merged


def is_open_throughout(periods: Sequence[Period], zone: ZoneInfo, start: datetime, end: datetime) -> bool:
    """True when ``[start, end)`` lies inside one continuous open interval."""
    return any(
        span_start <= start and end <= span_end for span_start, span_end in open_spans(periods, zone, start, end)
    )
