"""Benchmark: forecast + publish hourly rates for 1,000 car parks x 7 days x 24 hours, and quote latency.

    python benchmarks/pricing_batch.py --json

Runs in its own throw-away database (Django's test database machinery): PostgreSQL when
DATABASE_URL is set, else a temporary SQLite file. Prints one JSON line with
``forecast_publish_seconds``, ``peak_memory_mb`` (peak RSS of the process), ``quote_p50_ms`` and
``quote_p95_ms`` (in-process ``quote_for_window`` over ``QUOTE_MIX``: 1-4 h stays, some 8.5 h and
3-day ones, after a short warm-up) and ``quote_queries`` (SQL queries one quote makes, the most over
the mix; ``quote_queries_by_length`` per stay length).
Not run in CI. Goals: publish under 60 s on 2 cores, a quote under 5 ms in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
os.environ.setdefault("DJANGO_TESTING", "1")
if "DATABASE_URL" not in os.environ:
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='pricing-bench-')}/bench.sqlite3"

import django

django.setup()

from django.db import connection  # noqa: E402

CAR_PARKS = 1000
NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
ZONES = ["Europe/London", "Europe/Paris", "America/New_York", "Australia/Sydney"]


def build_fixtures(count: int) -> list[int]:
    from backend.accounts.models import Company
    from backend.carparks.models import CarPark
    from pricing.models import RateRule

    company = Company.objects.create(name="Benchmark Parking", country="GB")
    car_parks = CarPark.objects.bulk_create(
        CarPark(
            company=company,
            name=f"Bench {index}",
            address="1 Bench Street",
            latitude=51.5 + index * 1e-4,
            longitude=-0.12,
            timezone=ZONES[index % len(ZONES)],
            currency="GBP",
            standard_bays=200,
        )
        for index in range(count)
    )
    RateRule.objects.bulk_create(
        RateRule(
            car_park=car_park,
            base_rate=Decimal("2.50"),
            minimum=Decimal("1.00"),
            maximum=Decimal("6.00"),
            max_daily_change=Decimal("0.50"),
            step=Decimal("0.10"),
            mode="revenue" if index % 5 == 0 else "band",
        )
        for index, car_park in enumerate(car_parks)
    )
    return [car_park.pk for car_park in car_parks]


def synthetic_forecaster() -> object:
    """An hour-of-week occupancy profile per car park: stands in until a trained model is active."""
    import numpy as np

    rng = np.random.default_rng(11)
    weekly = 0.55 + 0.35 * np.sin(np.linspace(0, 14 * np.pi, 168)) ** 2

    def forecast(car_parks: list, hour_starts: list[datetime]) -> dict[int, list[float | None]]:
        hour_of_week = np.array([(moment.weekday() * 24 + moment.hour) for moment in hour_starts])
        result = {}
        for car_park in car_parks:
            noise = rng.normal(0, 0.05, len(hour_starts))
            result[car_park.pk] = list(np.clip(weekly[hour_of_week] + noise, 0, 1.1))
        return result

    return forecast


def forecaster_in_use() -> str:
    """Use the real forecast service when it exists and a model is active; else the synthetic one."""
    from pricing import rates
    from pricing.models import DemandModelVersion

    try:
        import pricing.forecast_service  # noqa: F401
    except ImportError:
        pass
    else:
        if DemandModelVersion.objects.filter(is_active=True).exists():
            return "forecast_service"
    rates._forecasts = synthetic_forecaster()  # type: ignore[assignment]
    return "synthetic (no active demand model in the benchmark database)"


# What drivers ask for (share of quotes, stay length): mostly a few hours, some whole days, a
# few multi-day stays (airport, hotel). Starts fall on quarter hours 2 h to ~6 days ahead.
QUOTE_MIX: tuple[tuple[float, timedelta], ...] = (
    (0.25, timedelta(hours=1)),
    (0.25, timedelta(hours=2)),
    (0.20, timedelta(hours=3)),
    (0.15, timedelta(hours=4)),
    (0.10, timedelta(hours=8, minutes=30)),
    (0.05, timedelta(days=3)),
)
WARM_UP_QUOTES = 20


def _windows(samples: int, rng: random.Random) -> list[tuple[datetime, datetime]]:
    weights = [share for share, _ in QUOTE_MIX]
    lengths = rng.choices([length for _, length in QUOTE_MIX], weights=weights, k=samples)
    windows = []
    for length in lengths:
        start = NOW.replace(minute=0) + timedelta(minutes=15 * rng.randint(8, 600))
        windows.append((start, start + length))
    return windows


def measure_quotes(car_park_ids: list[int], samples: int) -> dict[str, object]:
    """Time ``quote_for_window`` over the quote mix; count the queries one quote of each length makes."""
    from django.test.utils import CaptureQueriesContext

    from backend.carparks.models import CarPark
    from pricing.selectors import quote_for_window

    rng = random.Random(7)
    car_parks = list(CarPark.objects.filter(pk__in=rng.sample(car_park_ids, min(samples, len(car_park_ids)))))
    for index, (start, end) in enumerate(_windows(WARM_UP_QUOTES, rng)):  # first-call costs are not latency
        quote_for_window(car_parks[index % len(car_parks)], start, end)
    timings = []
    for index, (start, end) in enumerate(_windows(samples, rng)):
        car_park = car_parks[index % len(car_parks)]
        began = time.perf_counter()
        quote_for_window(car_park, start, end)
        timings.append((time.perf_counter() - began) * 1000)
    queries = {}
    for _, length in QUOTE_MIX:
        start = NOW + timedelta(hours=26)
        with CaptureQueriesContext(connection) as captured:
            quote_for_window(car_parks[0], start, start + length)
        queries[f"{length.total_seconds() / 3600:g}h"] = len(captured.captured_queries)
    cuts = statistics.quantiles(timings, n=100)
    return {
        "quote_p50_ms": round(cuts[49], 3),
        "quote_p95_ms": round(cuts[94], 3),
        "quote_queries": max(queries.values()),
        "quote_queries_by_length": queries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--car-parks", type=int, default=CAR_PARKS)
    parser.add_argument("--quotes", type=int, default=500)
    args = parser.parse_args()

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from pricing.rates import publish_rates

        ids = build_fixtures(args.car_parks)
        forecaster = forecaster_in_use()
        began = time.perf_counter()
        summary = publish_rates(now=NOW, days=7)
        publish_seconds = time.perf_counter() - began
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        quotes = measure_quotes(ids, args.quotes)
        result = {
            "forecast_publish_seconds": round(publish_seconds, 2),
            "peak_memory_mb": round(peak_mb, 1),
            **quotes,
            "rows": summary.rows,
            "car_parks": summary.car_parks,
            "database": connection.vendor,
            "forecaster": forecaster,
        }
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
