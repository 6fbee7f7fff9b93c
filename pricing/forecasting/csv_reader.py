"""Import of car-park occupancy readings in the Birmingham CSV format, with a data-quality report.

Format (UCI "Parking Birmingham"): header ``SystemCodeNumber,Capacity,Occupancy,LastUpdated``;
``LastUpdated`` is ``YYYY-MM-DD HH:MM:SS`` LOCAL wall-clock time of the car park's zone.

Cleaning, in this order (each row is counted under the first rule that applies):

1. ``unparseable``: wrong number of fields, non-numeric capacity/occupancy, capacity <= 0, or a bad
   timestamp. Counted, never raised, so one corrupt line cannot block an import.
2. ``duplicate``: an exact repeat of an earlier row (same car park, timestamp, capacity and
   occupancy). Each extra copy is counted once and dropped.
3. ``negative``: occupancy < 0 is a counter error; the row is dropped.
4. above capacity: occupancy > capacity (counter drift or overflow parking). With
   ``over_capacity="clip"`` the occupancy is clipped to the capacity and the row kept
   (``clipped_above_capacity``); with ``"drop"`` the row is dropped (``dropped["above_capacity"]``).
   ``above_capacity`` counts these rows in both modes.

The kept readings are then averaged per car park and LOCAL hour: an hour's occupancy is the mean of
the readings whose local time lies in ``[h, h + 1)``.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np

from .series import CarParkSeries

__all__ = ["DataQualityReport", "ImportResult", "read_occupancy_csv"]

OverCapacityPolicy = Literal["clip", "drop"]
_HEADER = ("systemcodenumber", "capacity", "occupancy", "lastupdated")


@dataclass(frozen=True)
class DataQualityReport:
    """What the import found and did. All counts are numbers of CSV data rows (header excluded).

    Invariant: ``rows_read == rows_kept + sum(dropped.values())``.
    ``gaps_by_car_park`` maps a car park to the local dates missing inside its own first..last
    date; ``days_missing_for_all`` are dates inside the file's overall range with no reading for
    any car park (those dates are therefore also listed for every car park that spans them).
    """

    rows_read: int
    rows_kept: int
    dropped: dict[str, int]
    over_capacity_policy: str
    above_capacity: int
    clipped_above_capacity: int
    negative: int
    duplicates: int
    conflicting_timestamps: int
    car_parks: int
    hourly_points: int
    first_reading: datetime | None
    last_reading: datetime | None
    gaps_by_car_park: dict[str, tuple[date, ...]] = field(default_factory=dict)
    days_missing_for_all: tuple[date, ...] = ()
    unparseable_lines: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (dates as ISO strings)."""
        return {
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "dropped": dict(self.dropped),
            "over_capacity_policy": self.over_capacity_policy,
            "above_capacity": self.above_capacity,
            "clipped_above_capacity": self.clipped_above_capacity,
            "negative": self.negative,
            "duplicates": self.duplicates,
            "conflicting_timestamps": self.conflicting_timestamps,
            "car_parks": self.car_parks,
            "hourly_points": self.hourly_points,
            "first_reading": None if self.first_reading is None else self.first_reading.isoformat(),
            "last_reading": None if self.last_reading is None else self.last_reading.isoformat(),
            "gaps": {
                "by_car_park": {code: [d.isoformat() for d in days] for code, days in self.gaps_by_car_park.items()},
                "missing_for_all_car_parks": [d.isoformat() for d in self.days_missing_for_all],
            },
            "unparseable_lines": list(self.unparseable_lines),
        }


@dataclass(frozen=True)
class ImportResult:
    """Hourly series per car park (sorted by code) plus the data-quality report."""

    series: tuple[CarParkSeries, ...]
    report: DataQualityReport
    tz: str

    def by_code(self) -> dict[str, CarParkSeries]:
        """Series keyed by car-park code."""
        return {s.code: s for s in self.series}


def _parse_number(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise ValueError("not finite")
    return value


def _parse_row(fields: list[str], zone: ZoneInfo) -> tuple[str, int, float, datetime]:
    """Parse one data row or raise ValueError.

    Field splitting is done from the right so that an (unquoted) id containing a comma still works;
    ids with spaces are kept verbatim apart from surrounding whitespace.
    """
    if len(fields) < 4:
        raise ValueError("too few fields")
    code = ",".join(fields[:-3]).strip()
    if not code:
        raise ValueError("empty car-park id")
    capacity_f = _parse_number(fields[-3].strip())
    if capacity_f <= 0 or capacity_f != int(capacity_f):
        raise ValueError("capacity must be a positive whole number")
    occupancy = _parse_number(fields[-2].strip())
    stamp = datetime.fromisoformat(fields[-1].strip())
    if stamp.tzinfo is not None:
        # An explicit offset wins over the wall-clock convention; bring it to local time.
        stamp = stamp.astimezone(zone).replace(tzinfo=None)
    return code, int(capacity_f), occupancy, stamp


def read_occupancy_csv(path: str | Path, *, tz: str, over_capacity: OverCapacityPolicy = "clip") -> ImportResult:
    """Read a Birmingham-format CSV, clean it and aggregate it to hourly occupancy per car park.

    ``tz`` is the IANA zone of the wall-clock timestamps (e.g. ``"Europe/London"``).
    ``over_capacity`` is ``"clip"`` (keep, clipped to capacity) or ``"drop"``.
    Never raises on bad rows (they are counted as ``unparseable``); raises ``ValueError`` for an
    unknown policy and ``OSError`` if the file cannot be opened.
    """
    if over_capacity not in ("clip", "drop"):
        raise ValueError(f"over_capacity must be 'clip' or 'drop', not {over_capacity!r}")
    zone = ZoneInfo(tz)
    dropped = {"duplicate": 0, "negative": 0, "unparseable": 0}
    if over_capacity == "drop":
        dropped["above_capacity"] = 0
    above = clipped = 0
    rows_read = 0
    unparseable_lines: list[int] = []
    seen: set[tuple[str, int, float, datetime]] = set()
    value_at: dict[tuple[str, datetime], float] = {}
    conflicting = 0
    # Per car park: local hour start -> [sum of occupancy, number of readings]
    sums: dict[str, dict[datetime, list[float]]] = defaultdict(dict)
    capacity_of: dict[str, int] = {}
    first: datetime | None = None
    last: datetime | None = None

    with open(path, newline="", encoding="utf-8-sig") as handle:
        for line_no, fields in enumerate(csv.reader(handle), start=1):
            if not fields or all(not f.strip() for f in fields):
                continue  # blank line: not a data row
            if line_no == 1 and tuple(f.strip().lower() for f in fields) == _HEADER:
                continue
            rows_read += 1
            try:
                row = _parse_row(fields, zone)
            except ValueError:
                dropped["unparseable"] += 1
                if len(unparseable_lines) < 20:  # keep the report small on a badly broken file
                    unparseable_lines.append(line_no)
                continue
            if row in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(row)
            code, capacity, occupancy, stamp = row
            if occupancy < 0:
                dropped["negative"] += 1
                continue
            if occupancy > capacity:
                above += 1
                if over_capacity == "drop":
                    dropped["above_capacity"] += 1
                    continue
                clipped += 1
                occupancy = float(capacity)
            previous = value_at.setdefault((code, stamp), occupancy)
            if previous != occupancy:
                # Same instant, different value: both readings are kept and averaged in the hour.
                conflicting += 1
            # Capacity is documented as constant per car park; if it ever changes, the latest wins.
            capacity_of[code] = capacity
            hour = stamp.replace(minute=0, second=0, microsecond=0)
            bucket = sums[code].setdefault(hour, [0.0, 0])
            bucket[0] += occupancy
            bucket[1] += 1
            first = stamp if first is None or stamp < first else first
            last = stamp if last is None or stamp > last else last

    series = []
    for code in sorted(sums):
        hours = sorted(sums[code])
        totals = np.array([sums[code][h] for h in hours], dtype=float).reshape(-1, 2)
        series.append(
            CarParkSeries.from_arrays(
                code,
                capacity_of[code],
                tz,
                np.array(hours, dtype="datetime64[h]"),
                totals[:, 0] / totals[:, 1],
                totals[:, 1].astype(np.int64),
            )
        )

    gaps, missing_all = _find_gaps(series)
    rows_kept = rows_read - sum(dropped.values())
    report = DataQualityReport(
        rows_read=rows_read,
        rows_kept=rows_kept,
        dropped=dropped,
        over_capacity_policy=over_capacity,
        above_capacity=above,
        clipped_above_capacity=clipped,
        negative=dropped["negative"],
        duplicates=dropped["duplicate"],
        conflicting_timestamps=conflicting,
        car_parks=len(series),
        hourly_points=sum(len(s.local_hour) for s in series),
        first_reading=first,
        last_reading=last,
        gaps_by_car_park=gaps,
        days_missing_for_all=missing_all,
        unparseable_lines=tuple(unparseable_lines),
    )
    return ImportResult(series=tuple(series), report=report, tz=tz)


def _date_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _find_gaps(series: list[CarParkSeries]) -> tuple[dict[str, tuple[date, ...]], tuple[date, ...]]:
    """Missing local dates per car park (inside its own span) and dates missing for all car parks."""
    gaps: dict[str, tuple[date, ...]] = {}
    all_dates: set[date] = set()
    for s in series:
        present = {d.item() for d in s.dates()}
        all_dates |= present
        span = _date_range(min(present), max(present))
        gaps[s.code] = tuple(d for d in span if d not in present)
    if not all_dates:
        return gaps, ()
    missing_all = tuple(d for d in _date_range(min(all_dates), max(all_dates)) if d not in all_dates)
    return gaps, missing_all
