"""Synthetic occupancy history for the pricing tests (small, deterministic, fast to fit).

Each car park follows a weekday/weekend daily shape (07:00-18:00 local) scaled by a day level
that drifts from day to day (AR(1)). The drift is what a day-ahead model can read from yesterday
and the seasonal-naive baseline (same hour last week) cannot, so a model trained on it beats the
baseline (ratio about 0.75 with seed 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np

from backend.carparks.models import CarPark
from pricing.models import OccupancyHour

OPEN_HOURS = range(7, 19)


def synthetic_rates(days: int, *, seed: int, start: date) -> list[tuple[date, int, float]]:
    """(local date, local hour, occupancy rate) for ``days`` days from ``start``."""
    rng = np.random.default_rng(seed)
    level = 0.0
    out = []
    for d in range(days):
        day = start + timedelta(days=d)
        level = 0.8 * level + rng.normal(0, 0.12)
        weekly = 0.6 if day.weekday() < 5 else 0.35
        for hour in OPEN_HOURS:
            shape = float(np.sin(np.pi * (hour - 6) / 13))
            rate = float(np.clip(weekly * shape + level * shape + rng.normal(0, 0.01), 0, 1))
            out.append((day, hour, rate))
    return out


def write_history(car_parks: Sequence[CarPark], *, start: date, days: int, seed: int = 0, source: str = "gate") -> int:
    """Store synthetic hourly rows for each car park (its own zone); returns rows written."""
    rows = []
    for offset, car_park in enumerate(car_parks):
        zone = ZoneInfo(car_park.timezone)
        capacity = car_park.total_capacity
        for day, hour, rate in synthetic_rates(days, seed=seed + offset, start=start):
            local = datetime(day.year, day.month, day.day, hour, tzinfo=zone)
            rows.append(
                OccupancyHour(
                    car_park=car_park,
                    hour_start=local.astimezone(UTC),
                    source=source,
                    occupied=Decimal(round(rate * capacity)),
                    capacity=capacity,
                    readings=2,
                )
            )
    OccupancyHour.objects.bulk_create(rows, batch_size=2000)
    return len(rows)
