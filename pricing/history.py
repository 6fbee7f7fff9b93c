"""Occupancy history from the database as forecasting series (reads only).

``OccupancyHour`` keeps one row per car park, UTC hour start and source. The forecaster wants one
series per car park on LOCAL hours. This module does that conversion in bulk: one SQL query for
all car parks, numpy for the rest, because forecasting 1,000 car parks must not cost 1,000
queries or millions of model instances.

How sources are merged: for each car park and hour the row of the best source wins, in the order
gate counts, imported counts, bookings. Gate and imported counts measure every parked car;
bookings only see pre-booked ones (a floor), so they fill hours that nothing better covers.
Where two UTC hours share one local hour (the repeated hour of a DST fall-back day) their
occupancy is averaged, weighted by readings, as :mod:`pricing.forecasting.series` defines local hours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from django.db import connection

from backend.carparks.models import CarPark
from pricing.forecasting import CarParkSeries
from pricing.models import ExternalCarPark, OccupancyHour, OccupancySource

__all__ = [
    "SOURCE_PRIORITY",
    "HistoryArrays",
    "history_by_car_park",
    "history_rows",
    "in_one_zone",
    "series_code",
    "series_from_db",
    "utc_hours_to_local",
]

# Best first: gate and imported counts see every car, bookings only pre-booked ones.
SOURCE_PRIORITY: tuple[str, ...] = (OccupancySource.GATE, OccupancySource.IMPORT, OccupancySource.BOOKINGS)


@dataclass(frozen=True, eq=False)
class HistoryArrays:
    """Raw ``OccupancyHour`` rows as parallel arrays (one entry per row, unsorted).

    ``utc_hour`` is whole hours since the Unix epoch (UTC); ``occupied`` the mean occupied bays as
    float (see :func:`_exact_means`), ``capacity`` the capacity recorded on the row.
    """

    car_park_id: np.ndarray
    utc_hour: np.ndarray
    priority: np.ndarray
    occupied: np.ndarray
    capacity: np.ndarray
    readings: np.ndarray

    def __len__(self) -> int:
        return len(self.car_park_id)


def _epoch_hours_sql() -> str:
    # Whole UTC hours since the epoch, computed by the database so that no datetime objects are
    # built per row (the bulk path reads about a million rows).
    if connection.vendor == "postgresql":
        return "CAST(FLOOR(EXTRACT(EPOCH FROM hour_start) / 3600) AS BIGINT)"
    if connection.vendor == "sqlite":
        return "CAST(strftime('%%s', hour_start) AS INTEGER) / 3600"
    raise NotImplementedError(f"occupancy history is not implemented for {connection.vendor}")


def history_rows(
    *,
    car_park_ids: Iterable[int] | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> HistoryArrays:
    """Fetch ``OccupancyHour`` rows in ONE query as arrays.

    Filters: car parks (None = all), one source (None = all), ``since <= hour_start < until``
    (aware datetimes; None = open). Raises ValueError for an unknown source or naive bounds.
    """
    table = OccupancyHour._meta.db_table
    where: list[str] = []
    params: list[str | int | datetime] = []
    if car_park_ids is not None:
        ids = sorted({int(i) for i in car_park_ids})
        if not ids:
            return _empty_history()
        where.append(f"car_park_id IN ({', '.join(['%s'] * len(ids))})")
        params.extend(ids)
    if source is not None:
        if source not in OccupancySource.values:
            raise ValueError(f"unknown occupancy source {source!r}")
        where.append("source = %s")
        params.append(source)
    for bound, op in ((since, ">="), (until, "<")):
        if bound is None:
            continue
        if bound.tzinfo is None:
            raise ValueError("history bounds must be timezone-aware")
        where.append(f"hour_start {op} %s")
        adapted = connection.ops.adapt_datetimefield_value(bound)  # the backend's own format
        params.append(bound if adapted is None else adapted)
    # The source's rank is computed by the database (an int is cheaper to fetch than a string).
    rank_sql = "CASE source " + " ".join("WHEN %s THEN %s" for _ in SOURCE_PRIORITY) + " ELSE %s END"
    rank_params: list[str | int] = [v for i, name in enumerate(SOURCE_PRIORITY) for v in (str(name), i)]
    # DOUBLE PRECISION, not REAL (4 bytes on PostgreSQL): the exact-mean recovery needs the digits.
    # Floats are fine here: occupancy is a model input, not money.
    sql = (
        f"SELECT car_park_id, {_epoch_hours_sql()}, {rank_sql}, CAST(occupied AS DOUBLE PRECISION), "  # noqa: S608
        f"capacity, readings FROM {table}" + (f" WHERE {' AND '.join(where)}" if where else "")
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*rank_params, len(SOURCE_PRIORITY), *params])
        rows = cursor.fetchall()
    if not rows:
        return _empty_history()
    # All columns are numbers: one 2-D array is the cheapest way out of a million tuples. Epoch
    # hours and counts are far below 2**53, so float64 holds them exactly.
    table_values = np.array(rows, dtype=np.float64)
    counts = table_values[:, 5].astype(np.int64)
    return HistoryArrays(
        car_park_id=table_values[:, 0].astype(np.int64),
        utc_hour=table_values[:, 1].astype(np.int64),
        priority=table_values[:, 2].astype(np.int64),
        occupied=_exact_means(table_values[:, 3], counts),
        capacity=table_values[:, 4].astype(np.int64),
        readings=counts,
    )


def _exact_means(occupied: np.ndarray, readings: np.ndarray) -> np.ndarray:
    """Undo the 0.01 rounding of stored means of whole car counts.

    ``occupied`` is stored as a Decimal with 2 places, the mean of ``readings`` counts. Counts of
    cars (CSV, gate counters) sum to a whole number, so where ``occupied * readings`` lies within
    the rounding error (0.005 per reading) of an integer, that integer / readings is the exact
    mean, bit for bit the value the import computed. This matters: the boosted trees are
    sensitive enough that rounding the means to 0.01 moves the Birmingham hold-out ratio from
    0.854 to 0.855. A mean that is not of whole counts (e.g. 2.75 from one reading) is left alone.
    """
    n = np.maximum(readings, 1).astype(float)
    total = occupied * n
    whole = np.round(total)
    snap = np.abs(total - whole) <= 0.005 * n + 1e-9
    return np.where(snap, whole / n, occupied)


def _empty_history() -> HistoryArrays:
    empty_i = np.empty(0, dtype=np.int64)
    return HistoryArrays(empty_i, empty_i, empty_i, np.empty(0), empty_i, empty_i)


def utc_hours_to_local(utc_hours: np.ndarray, tz: str) -> np.ndarray:
    """Map UTC hour starts (epoch hours or ``datetime64[h]``) to naive local ``datetime64[h]``.

    The zone is asked once per distinct hour. Offsets are whole hours in the zones we serve (UK,
    EU); a fractional offset would be truncated, as in :func:`forecasting.series.local_hours_to_utc`.
    """
    hours = np.asarray(utc_hours).astype("datetime64[h]")
    if hours.size == 0:
        return hours.copy()
    zone = ZoneInfo(tz)
    uniq, inverse = np.unique(hours, return_inverse=True)
    offsets = np.empty(uniq.size, dtype="timedelta64[h]")
    for i, value in enumerate(uniq.astype("datetime64[s]").astype(datetime)):
        offset = value.replace(tzinfo=UTC).astimezone(zone).utcoffset() or timedelta(0)
        offsets[i] = np.timedelta64(int(offset.total_seconds() // 3600), "h")
    return (uniq + offsets)[inverse]


def _best_source_per_hour(rows: HistoryArrays) -> HistoryArrays:
    """Keep one row per (car park, UTC hour): the one whose source ranks best."""
    order = np.lexsort((rows.priority, rows.utc_hour, rows.car_park_id))
    cp, hour = rows.car_park_id[order], rows.utc_hour[order]
    first = np.r_[True, (cp[1:] != cp[:-1]) | (hour[1:] != hour[:-1])]
    keep = order[first]
    return HistoryArrays(
        car_park_id=rows.car_park_id[keep],
        utc_hour=rows.utc_hour[keep],
        priority=rows.priority[keep],
        occupied=rows.occupied[keep],
        capacity=rows.capacity[keep],
        readings=rows.readings[keep],
    )


def _series_for(code: str, tz: str, capacity: int, rows: HistoryArrays, local: np.ndarray, idx: slice) -> CarParkSeries:
    """One car park's rows (``idx``) as a series on local hours, occupancy on ``capacity``."""
    local = local[idx]
    row_capacity = rows.capacity[idx]
    occupied = rows.occupied[idx]
    # Rows recorded under another capacity keep their rate; with equal capacities the value is
    # left untouched (no divide-then-multiply) so an import round-trips exactly.
    rescale = (row_capacity != capacity) & (row_capacity > 0)
    if rescale.any():
        occupied = np.where(rescale, occupied * capacity / np.where(rescale, row_capacity, 1), occupied)
    occupied = np.clip(occupied, 0.0, float(capacity))  # over-capacity counts are clipped, as the CSV import does
    readings = rows.readings[idx]
    # Rows come sorted by UTC hour, so local hours never decrease; a fall-back day repeats one.
    starts = np.flatnonzero(np.r_[True, local[1:] != local[:-1]])
    if len(starts) != len(local):
        # The repeated local hour of a fall-back day: one local hour, weighted by readings.
        weight = np.maximum(readings, 1).astype(float)
        occupied = np.add.reduceat(occupied * weight, starts) / np.add.reduceat(weight, starts)
        readings = np.add.reduceat(readings, starts)
        local = local[starts]
    return CarParkSeries(
        code=code,
        capacity=capacity,
        tz=tz,
        local_hour=local,
        occupied=occupied,
        n_readings=readings.astype(np.int64),
    )


def history_by_car_park(
    *,
    car_park_ids: Iterable[int] | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[int, CarParkSeries]:
    """Hourly series per car park id (series code = ``str(id)``), sources merged by priority.

    Car parks without rows are absent. The series capacity is the capacity recorded on the car
    park's latest row (what the car park holds now, as far as history knows); occupancy recorded
    under another capacity is rescaled to keep its rate.
    """
    rows = history_rows(car_park_ids=car_park_ids, source=source, since=since, until=until)
    if not len(rows):
        return {}
    rows = _best_source_per_hour(rows)  # sorted by car park, then UTC hour
    ids = np.unique(rows.car_park_id)
    zone_of = dict(CarPark.objects.filter(pk__in=ids.tolist()).values_list("id", "timezone"))
    # Local hours per zone in one call each: the zone is asked once per distinct hour, not once
    # per car park and hour.
    row_zone = np.array([zone_of.get(i, "") for i in ids.tolist()], dtype=object)[
        np.searchsorted(ids, rows.car_park_id)
    ]
    local = np.empty(len(rows), dtype="datetime64[h]")
    for zone in set(zone_of.values()):
        mask = row_zone == zone
        local[mask] = utc_hours_to_local(rows.utc_hour[mask], zone)
    bounds = np.searchsorted(rows.car_park_id, ids, side="left")
    ends = np.r_[bounds[1:], len(rows)]
    out: dict[int, CarParkSeries] = {}
    for cp_id, lo, hi in zip(ids.tolist(), bounds.tolist(), ends.tolist(), strict=True):
        tz = zone_of.get(cp_id)
        capacity = int(rows.capacity[hi - 1])
        if tz is None or capacity <= 0:  # car park deleted between the two queries
            continue
        out[cp_id] = _series_for(str(cp_id), tz, capacity, rows, local, slice(lo, hi))
    return out


def series_code(car_park_id: int, external_codes: dict[int, str]) -> str:
    """Name of a car park's series: its external code when imported, else ``car-park-<id>``."""
    return external_codes.get(car_park_id, f"car-park-{car_park_id}")


def series_from_db(
    *, car_park_ids: Iterable[int] | None = None, source: str | None = None, until: datetime | None = None
) -> tuple[CarParkSeries, ...]:
    """All stored occupancy history as forecasting series, sorted by code.

    Sources are merged per hour (gate > import > bookings; see the module docstring) unless
    ``source`` picks one. A car park mapped from an external source is named by its external code
    (so an evaluation reports ``BHMBCCMKT01``, not an id); other car parks are ``car-park-<id>``.
    ``until`` (aware) leaves out hours starting at or after it, e.g. future booked hours.
    """
    by_id = history_by_car_park(car_park_ids=car_park_ids, source=source, until=until)
    codes: dict[int, str] = {}
    for cp_id, code in (
        ExternalCarPark.objects.filter(car_park_id__in=list(by_id))
        .order_by("-source_name", "-code")
        .values_list("car_park_id", "code")
    ):
        codes[cp_id] = code  # with several mappings the first by source name, then code, wins
    named = [replace(series, code=series_code(cp_id, codes)) for cp_id, series in by_id.items()]
    return tuple(sorted(named, key=lambda s: s.code))


def in_one_zone(series: Sequence[CarParkSeries]) -> tuple[str, list[CarParkSeries]]:
    """Relabel series of several zones to the most common zone, for one model across zones.

    The features are local wall-clock time, so a car park keeps its local hours; only the UTC grid
    that enforces the 24-hour information cut-off moves, by the offset difference, on another
    zone's DST change days. Returns the zone and the (relabelled) series.
    Raises ValueError for an empty sequence.
    """
    if not series:
        raise ValueError("no series")
    counts = Counter(s.tz for s in series)
    tz = max(sorted(counts), key=lambda z: counts[z])
    return tz, [s if s.tz == tz else replace(s, tz=tz) for s in series]
