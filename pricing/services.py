"""Writes to pricing's occupancy history: hourly rows handed over by bookings, gates and imports.

Rate publishing lives in :mod:`pricing.rates`; training the demand model in
:mod:`pricing.training`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import numpy as np
from django.db import transaction

from backend.accounts.models import Company
from backend.audit.services import audit_record
from backend.carparks.models import CarPark, OpeningPeriod
from backend.carparks.selectors import carpark_snapshot
from pricing.forecasting import CarParkSeries, ImportResult
from pricing.models import ExternalCarPark, OccupancyHour, OccupancyImport, OccupancySource

__all__ = [
    "ImportSummary",
    "NewCarParkDefaults",
    "hour_start_utc",
    "occupancy_import",
    "occupancy_import_series",
    "occupancy_record",
]

_CENT = Decimal("0.01")
_UPSERT_BATCH = 2000
_UPDATED_FIELDS = ["occupied", "capacity", "readings", "updated_at"]


def hour_start_utc(moment: datetime, tz: str) -> datetime:
    """UTC instant where the local hour (in ``tz``) containing ``moment`` starts.

    ``moment`` must be timezone-aware (ValueError otherwise). On a fall-back day the two local
    01:00 hours are distinct instants, so both are kept apart (a 25-hour day has 25 rows).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"occupancy hours must be timezone-aware, got {moment!r}")
    local = moment.astimezone(ZoneInfo(tz))
    # replace() keeps ``fold``, so the second 01:00 of a fall-back day stays the second one.
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def _as_occupied(value: Decimal | float | int) -> Decimal:
    occupied = value if isinstance(value, Decimal) else Decimal(str(value))
    if not occupied.is_finite():
        raise ValueError(f"occupancy must be a finite number, got {value!r}")
    if occupied < 0:
        raise ValueError(f"occupancy cannot be negative, got {value!r}")
    return occupied.quantize(_CENT, rounding=ROUND_HALF_UP)


def _upsert(rows: Sequence[OccupancyHour]) -> int:
    """Insert or update rows on (car park, hour, source), in batches; returns rows written."""
    for start in range(0, len(rows), _UPSERT_BATCH):
        OccupancyHour.objects.bulk_create(
            rows[start : start + _UPSERT_BATCH],
            update_conflicts=True,
            unique_fields=["car_park", "hour_start", "source"],
            update_fields=_UPDATED_FIELDS,
        )
    return len(rows)


@transaction.atomic
def occupancy_record(
    *,
    car_park_id: int,
    source: str,
    hours: Mapping[datetime, Decimal | float | int],
    capacity: int,
    readings: int = 1,
) -> int:
    """Store (insert or replace) one source's mean occupancy for some hours of one car park.

    ``hours`` maps an aware datetime inside an hour to the mean occupied bays in that hour; the
    row's ``hour_start`` is the UTC instant where the car park's LOCAL hour starts. Give the two
    hours of a fall-back day as UTC instants: aware datetimes sharing one ZoneInfo compare (and
    hash) equal whatever their ``fold``, so a Mapping cannot hold both in local time. Writing the same
    hours again replaces the values (idempotent hand-over from bookings on commit).
    Returns the number of rows written. Raises ValueError for an unknown source, a naive
    datetime, two keys in one local hour, a negative occupancy or a non-positive capacity, and
    ``CarPark.DoesNotExist`` for an unknown car park; nothing is written then.
    """
    if source not in OccupancySource.values:
        raise ValueError(f"unknown occupancy source {source!r}")
    if capacity <= 0:
        raise ValueError("capacity must be positive")
    if readings < 0:
        raise ValueError("readings cannot be negative")
    tz = CarPark.objects.only("timezone").get(pk=car_park_id).timezone
    by_hour: dict[datetime, Decimal] = {}
    for moment, value in hours.items():
        start = hour_start_utc(moment, tz)
        if start in by_hour:
            raise ValueError(f"two values given for the local hour starting {start.isoformat()}")
        by_hour[start] = _as_occupied(value)
    rows = [
        OccupancyHour(
            car_park_id=car_park_id,
            hour_start=start,
            source=source,
            occupied=occupied,
            capacity=capacity,
            readings=readings,
        )
        for start, occupied in sorted(by_hour.items())
    ]
    return _upsert(rows)


@transaction.atomic
def occupancy_import_series(*, car_park_id: int, series: CarParkSeries) -> int:
    """Store an imported hourly series (source ``import``) for one car park; returns rows written.

    The series' local hours map to UTC as the forecasting package defines it (``fold=0``, which
    is also where the CSV reader put readings of the repeated fall-back hour). Occupancy is
    rounded to 0.01 bays; readings and capacity are kept per hour. Re-importing replaces rows.
    """
    utc = series.utc_hour.astype("datetime64[s]").astype(datetime)
    occupied = np.round(series.occupied, 2)
    rows = [
        OccupancyHour(
            car_park_id=car_park_id,
            hour_start=utc[i].replace(tzinfo=UTC),
            source=OccupancySource.IMPORT,
            occupied=Decimal(f"{occupied[i]:.2f}"),
            capacity=series.capacity,
            readings=int(series.n_readings[i]),
        )
        for i in range(len(utc))
    ]
    return _upsert(rows)


@dataclass(frozen=True)
class NewCarParkDefaults:
    """What an import needs to create car parks for codes it does not know (the file lacks it).

    Car parks are placed around ``near`` (lat, lng) on a deterministic spiral, by the code's
    position in the sorted list of the file's codes, so re-creating them gives the same places.
    """

    operator: str
    timezone: str
    currency: str
    near: tuple[float, float]


@dataclass(frozen=True)
class ImportSummary:
    """Outcome of :func:`occupancy_import`. ``skipped`` maps a code to why it was not imported."""

    import_id: int
    source_name: str
    rows_written: int
    car_parks_created: list[str]
    mapped: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# Spacing of created car parks: about 200 m between neighbours, 30 car parks within ~1.5 km.
_SPIRAL_STEP_DEG = 0.0025
_GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))


def _spread(near: tuple[float, float], index: int) -> tuple[float, float]:
    """Deterministic position ``index`` on a sunflower spiral around ``near`` (lat, lng)."""
    lat, lng = near
    radius = _SPIRAL_STEP_DEG * math.sqrt(index + 0.5)
    angle = index * _GOLDEN_ANGLE
    d_lat = radius * math.sin(angle)
    # A degree of longitude shrinks with latitude; scale so the spread is round on the ground.
    d_lng = radius * math.cos(angle) / max(math.cos(math.radians(lat)), 0.1)
    return round(min(max(lat + d_lat, -90.0), 90.0), 6), round(((lng + d_lng + 180.0) % 360.0) - 180.0, 6)


def _create_car_park(
    *, code: str, capacity: int, index: int, company: Company, defaults: NewCarParkDefaults, source_name: str
) -> CarPark:
    latitude, longitude = _spread(defaults.near, index)
    car_park = CarPark(
        company=company,
        name=code[:200],
        address=f"Imported from {source_name} ({code})"[:500],
        latitude=latitude,
        longitude=longitude,
        timezone=defaults.timezone,
        currency=defaults.currency,
        standard_bays=capacity,
        internal_notes=f"Created by import_occupancy for code {code!r} of source {source_name!r}.",
    )
    car_park.full_clean(exclude=["company"])
    car_park.save()
    # The file says nothing about opening hours; open 24/7, as for a car park created without hours.
    OpeningPeriod.objects.bulk_create(
        OpeningPeriod(car_park=car_park, weekday=day, opens=time(0), closes=time(0), overnight=True) for day in range(7)
    )
    car_park.refresh_from_db()
    audit_record(
        actor=None,
        action="carpark.create",
        target=car_park,
        before=None,
        after=carpark_snapshot(car_park),
        company=company,
    )
    ExternalCarPark.objects.create(source_name=source_name, code=code, car_park=car_park)
    return car_park


def _resolve_car_parks(
    *, imported: ImportResult, source_name: str, defaults: NewCarParkDefaults | None
) -> tuple[dict[str, CarPark], list[str], dict[str, str]]:
    """Car park per code (existing mapping, else created with ``defaults``), created codes, skips."""
    codes = [s.code for s in imported.series]
    existing = {
        m.code: m.car_park
        for m in ExternalCarPark.objects.select_related("car_park").filter(source_name=source_name, code__in=codes)
    }
    company = None
    if defaults is not None and any(code not in existing for code in codes):
        company, _ = Company.objects.get_or_create(name=defaults.operator)
    by_code: dict[str, CarPark] = {}
    created: list[str] = []
    skipped: dict[str, str] = {}
    for index, series in enumerate(imported.series):  # sorted by code: stable spiral positions
        car_park = existing.get(series.code)
        if car_park is None and company is not None and defaults is not None:
            car_park = _create_car_park(
                code=series.code,
                capacity=series.capacity,
                index=index,
                company=company,
                defaults=defaults,
                source_name=source_name,
            )
            created.append(series.code)
        if car_park is None:
            skipped[series.code] = "unknown code (no car park mapped; use --create-carparks)"
        elif car_park.timezone != imported.tz:
            skipped[series.code] = (
                f"car park {car_park.pk} is in {car_park.timezone}, the file was read as {imported.tz}"
            )
        else:
            by_code[series.code] = car_park
    return by_code, created, skipped


@transaction.atomic
def occupancy_import(
    *,
    imported: ImportResult,
    source_name: str,
    file_name: str,
    file_sha256: str,
    create_car_parks: NewCarParkDefaults | None = None,
    progress: Callable[[str], None] | None = None,
) -> ImportSummary:
    """Store an imported CSV's hourly occupancy (source ``import``) against our car parks.

    Codes map to car parks through :class:`ExternalCarPark` (``source_name`` + code). Unknown codes
    are skipped and reported, unless ``create_car_parks`` is given: then a car park (and the
    operator company, if missing) is created for each. Re-running with the same file writes the
    same rows (upsert) and creates nothing. One transaction: a failure leaves nothing behind.
    The run and its data-quality report are recorded as an :class:`OccupancyImport`.
    """
    by_code, created, skipped = _resolve_car_parks(
        imported=imported, source_name=source_name, defaults=create_car_parks
    )
    notes: list[str] = []
    written = 0
    todo = [s for s in imported.series if s.code in by_code]
    for position, series in enumerate(todo, start=1):
        car_park = by_code[series.code]
        if car_park.total_capacity != series.capacity:
            notes.append(
                f"{series.code}: file capacity {series.capacity}, car park {car_park.pk} has "
                f"{car_park.total_capacity}; rows keep the file's capacity"
            )
        rows = occupancy_import_series(car_park_id=car_park.pk, series=series)
        written += rows
        if progress is not None:
            progress(f"[{position}/{len(todo)}] {series.code} -> car park {car_park.pk}: {rows} hours")
    record = OccupancyImport.objects.create(
        source_name=source_name,
        file_name=file_name,
        file_sha256=file_sha256,
        timezone=imported.tz,
        over_capacity=imported.report.over_capacity_policy,
        report=imported.report.to_dict(),
        car_parks_created=len(created),
        rows_written=written,
        skipped_codes=sorted(skipped),
    )
    return ImportSummary(
        import_id=record.pk,
        source_name=source_name,
        rows_written=written,
        car_parks_created=created,
        mapped={code: cp.pk for code, cp in by_code.items()},
        skipped=skipped,
        notes=notes,
    )
