"""Benchmark: forecast + publish hourly rates for 1,000 car parks x 7 days x 24 hours, and quote latency.

    python benchmarks/pricing_batch.py --json

Runs in its own throw-away database (Django's test database machinery): PostgreSQL when
DATABASE_URL is set, else a temporary SQLite file; ``VAR_DIR`` (model artefacts) is a temporary
folder too. By default it measures the REAL forecast path:

1. seed (``seed_seconds``): 1,000 car parks with rate rules and ``--history-weeks`` (6) weeks of
   synthetic hourly ``OccupancyHour`` rows each (about 1M rows; daily/weekly shape, a per-car-park
   level, a day-to-day drift and noise, fixed seed), inserted with ``executemany`` (SQLite) or COPY
   (PostgreSQL);
2. train (``train_seconds``): ``pricing.training.demand_model_train`` (evaluate against the
   seasonal-naive baseline, refit, promote). With ``--train-car-parks N`` (default 200; 0 = all)
   only the first N car parks' history is in the database while it trains (the rest is seeded after): the model is one
   across car parks, so it forecasts all of them;
3. time (``forecast_publish_seconds``): ``pricing.rates.publish_rates`` for every car park x 168
   hours with the real ``forecast_occupancy`` (includes loading the model artefact, as a fresh
   worker would). ``peak_memory_mb`` is the process's peak RSS during that phase (Linux VmHWM reset
   just before it; ``peak_memory_method`` says which measure was used).

``--synthetic-forecaster`` keeps the old behaviour: no history, no model, an hour-of-week profile.
Quotes as before: ``quote_p50_ms``/``quote_p95_ms`` (in-process ``quote_for_window`` over
``QUOTE_MIX``: 1-4 h stays, some 8.5 h and 3-day ones, after a short warm-up) and ``quote_queries``
(SQL queries one quote makes, the most over the mix; ``quote_queries_by_length`` per stay length).
Progress goes to stderr. Not run in CI. Goals: publish under 60 s on 2 cores, a quote under 5 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CAR_PARKS = 1000
HISTORY_WEEKS = 6
# Training is not what this benchmark times and grows with the rows (~34 s for 100 car parks x 6
# weeks here, so ~6 min for all 1,000): by default the model learns from a sample of 200.
TRAIN_CAR_PARKS = 200
NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
ZONES = ["Europe/London", "Europe/Paris", "America/New_York", "Australia/Sydney"]
HISTORY_SEED = 20260601


def say(message: str) -> None:
    print(f"[pricing_batch] {message}", file=sys.stderr, flush=True)


def _setup_django(work_dir: str) -> None:
    """Point Django at a throw-away VAR_DIR (and SQLite file unless DATABASE_URL is set)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    os.environ.setdefault("DJANGO_TESTING", "1")
    # Forced, not defaulted: training writes demand-model-vN.joblib under VAR_DIR/models.
    os.environ["VAR_DIR"] = work_dir
    if "DATABASE_URL" not in os.environ:
        os.environ["DATABASE_URL"] = f"sqlite:///{work_dir}/bench.sqlite3"
    import django

    django.setup()


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


# --- Synthetic occupancy history ------------------------------------------------------------------


def _local_calendar(hour_starts: list[datetime], zone: str) -> tuple[Any, Any, Any]:
    """(local hour of day, weekend flag, local day index) of each UTC hour start in ``zone``."""
    from zoneinfo import ZoneInfo

    import numpy as np

    tz = ZoneInfo(zone)
    local = [moment.astimezone(tz) for moment in hour_starts]
    first = local[0].date()
    return (
        np.array([moment.hour for moment in local]),
        np.array([moment.weekday() >= 5 for moment in local]),
        np.array([(moment.date() - first).days for moment in local]),
    )


def synthetic_occupancy(n_car_parks: int, zone_of: list[str], hour_starts: list[datetime], seed: int) -> Any:
    """Occupancy rates ``[car_park, hour]`` (0..1): what a year of real gate counts roughly looks like.

    Each car park is a commuter site (weekday peak 08-18) or a retail/leisure one (afternoon and
    weekend peak), at its own level (45-95 % at peak), times a day level that drifts (AR(1): what
    yesterday tells a day-ahead model and last week cannot), plus hourly noise. Nights stay low.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    hours = np.arange(24)
    commuter_day = np.clip(np.sin(np.pi * (hours - 6) / 13), 0, None) ** 0.7
    retail_day = np.clip(np.sin(np.pi * (hours - 9) / 12), 0, None) ** 0.9
    calendars = {zone: _local_calendar(hour_starts, zone) for zone in set(zone_of)}
    n_days = max(int(cal[2].max()) for cal in calendars.values()) + 1
    out = np.empty((n_car_parks, len(hour_starts)))
    for index in range(n_car_parks):
        hour, weekend, day = calendars[zone_of[index]]
        commuter = rng.random() < 0.6
        if commuter:
            shape = np.where(weekend, 0.35, 1.0) * commuter_day[hour]
        else:
            shape = np.where(weekend, 1.0, 0.7) * retail_day[hour]
        peak = rng.uniform(0.45, 0.95)
        drift = np.empty(n_days)
        level = 0.0
        for d in range(n_days):
            level = 0.8 * level + rng.normal(0, 0.08)
            drift[d] = level
        rate = 0.04 + peak * shape * (1 + drift[day]) + rng.normal(0, 0.025, len(hour_starts))
        out[index] = np.clip(rate, 0.0, 1.0)
    return out


def seed_history(car_parks: list[tuple[int, str, int]], occupancy: Any, hour_starts: list[datetime]) -> int:
    """Insert ``OccupancyHour`` rows (source gate, 4 readings per hour) for ``car_parks``.

    ``car_parks`` are (id, zone, capacity), ``occupancy`` their rates ``[car_park, hour]``. Same
    raw SQL as ``pricing.rates._insert_rows``: ``executemany`` on SQLite, COPY on PostgreSQL,
    values through the backend's own adapters (model instances would cost more than the insert).
    """
    import numpy as np
    from django.db import connection, transaction

    from pricing.models import OccupancyHour

    ops = connection.ops
    quote = ops.quote_name
    table = quote(OccupancyHour._meta.db_table)
    columns = ("car_park_id", "hour_start", "source", "occupied", "capacity", "readings", "updated_at")
    column_sql = ", ".join(quote(name) for name in columns)
    insert_sql = f"INSERT INTO {table} ({column_sql}) VALUES ({', '.join(['%s'] * len(columns))})"  # noqa: S608
    adapted_hours = [ops.adapt_datetimefield_value(moment) for moment in hour_starts]
    updated_at = ops.adapt_datetimefield_value(NOW)
    written = 0
    batch = 50
    for start in range(0, len(car_parks), batch):
        part = car_parks[start : start + batch]
        rates = occupancy[start : start + batch]
        rows = []
        for (car_park_id, _, capacity), row_rates in zip(part, rates, strict=True):
            occupied = np.rint(row_rates * capacity).astype(np.int64).tolist()
            rows.extend(
                (car_park_id, moment, "gate", count, capacity, 4, updated_at)
                for moment, count in zip(adapted_hours, occupied, strict=True)
            )
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {table} ({column_sql}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(insert_sql, rows)
        written += len(rows)
        say(f"seeded {start + len(part):,}/{len(car_parks):,} car parks ({written:,} rows)")
    return written


# --- Forecasters --------------------------------------------------------------------------------


def synthetic_forecaster() -> object:
    """An hour-of-week occupancy profile per car park (``--synthetic-forecaster``): no model at all."""
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


def train_model(holdout_weeks: int) -> Any:
    """Train, evaluate and promote with the project's own service; exit if it is not promoted."""
    from pricing.training import demand_model_train

    row = demand_model_train(holdout_weeks=holdout_weeks, seed=0, progress=say)
    if not row.is_active:
        raise SystemExit(f"demand model v{row.version} was not promoted ({row.status}): {row.error or row.metrics}")
    return row


# --- Memory -------------------------------------------------------------------------------------


def _vm_hwm_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _vm_rss_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> str:
    """Give freed memory back and reset the peak-RSS mark (Linux); return the method in use.

    Seeding and training peak far above publishing, so a whole-process ``ru_maxrss`` would report
    them. Linux resets VmHWM to the current RSS when "5" is written to /proc/self/clear_refs.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return "ru_maxrss (whole process: includes seeding and training)"
    return "VmHWM reset before the phase (process peak RSS during forecast+publish)"


def peak_rss_mb(method: str) -> float:
    hwm = _vm_hwm_kb() if method.startswith("VmHWM") else None
    if hwm is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return hwm / 1024


# --- Quotes -------------------------------------------------------------------------------------

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
    from django.db import connection
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


# --- Run ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connection

    from backend.carparks.models import CarPark
    from pricing import rates
    from pricing.models import PublishedRate

    notes: list[str] = []
    extra: dict[str, Any] = {}
    began = time.perf_counter()
    ids = build_fixtures(args.car_parks)
    fixture_seconds = time.perf_counter() - began
    seed_seconds = fixture_seconds
    train_seconds = None
    history_rows = 0
    if args.synthetic_forecaster:
        rates._forecasts = synthetic_forecaster()  # type: ignore[assignment]
        forecaster = "synthetic hour-of-week profile (--synthetic-forecaster; no history, no model)"
    else:
        hours = args.history_weeks * 7 * 24
        last = NOW.replace(minute=0, second=0, microsecond=0)  # the hour under way is not history yet
        hour_starts = [last - timedelta(hours=hours - index) for index in range(hours)]
        info = list(CarPark.objects.filter(pk__in=ids).order_by("pk").values_list("pk", "timezone", "total_capacity"))
        began = time.perf_counter()
        occupancy = synthetic_occupancy(len(info), [zone for _, zone, _ in info], hour_starts, HISTORY_SEED)
        train_count = min(args.train_car_parks or len(info), len(info))
        say(f"seeding {train_count:,} car parks x {hours:,} hours of history")
        history_rows += seed_history(info[:train_count], occupancy[:train_count], hour_starts)
        seed_seconds += time.perf_counter() - began
        say("training the demand model (pricing.training.demand_model_train)")
        began = time.perf_counter()
        row = train_model(args.holdout_weeks)
        train_seconds = time.perf_counter() - began
        if train_count < len(info):
            say(f"seeding the other {len(info) - train_count:,} car parks")
            began = time.perf_counter()
            history_rows += seed_history(info[train_count:], occupancy[train_count:], hour_starts)
            seed_seconds += time.perf_counter() - began
            notes.append(
                f"model trained on the first {train_count} of {len(info)} car parks (their history only was in "
                "the database while training; the rest was seeded after): one model serves all car parks"
            )
        del occupancy
        forecaster = f"demand model v{row.version}"
        metrics = row.metrics or {}
        extra["model"] = {
            "version": row.version,
            "mae": metrics.get("mae"),
            "baseline_mae": metrics.get("baseline_mae"),
            "ratio": metrics.get("ratio"),
            "train_car_parks": metrics.get("car_parks"),
            "train_hours": metrics.get("train_hours"),
        }
        notes.append(
            f"history: {args.history_weeks} weeks x 24 h of synthetic gate counts per car park "
            f"(seed {HISTORY_SEED}), ending at {last:%Y-%m-%d %H:%M} UTC"
        )

    method = reset_peak_rss()
    rss_before = _vm_rss_kb()
    say(f"timing publish_rates for {len(ids):,} car parks x 7 days x 24 hours")
    began = time.perf_counter()
    summary = rates.publish_rates(now=NOW, days=7)
    publish_seconds = time.perf_counter() - began
    peak_mb = peak_rss_mb(method)
    with_forecast = PublishedRate.objects.filter(forecast_occupancy__isnull=False).count()
    say("timing quotes")
    quotes = measure_quotes(ids, args.quotes)
    if summary.failed_car_park_ids:
        notes.append(f"{len(summary.failed_car_park_ids)} car parks failed to forecast (kept no rates)")
    result = {
        "forecast_publish_seconds": round(publish_seconds, 2),
        "peak_memory_mb": round(peak_mb, 1),
        "peak_memory_method": method,
        "rss_before_publish_mb": None if rss_before is None else round(rss_before / 1024, 1),
        **quotes,
        "rows": summary.rows,
        "rows_with_forecast": with_forecast,
        "car_parks": summary.car_parks,
        "failed_car_parks": len(summary.failed_car_park_ids),
        "database": connection.vendor,
        "forecaster": forecaster,
        "seed_seconds": round(seed_seconds, 2),
        "train_seconds": None if train_seconds is None else round(train_seconds, 2),
        "history_rows": history_rows,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        **extra,
        "notes": notes,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--car-parks", type=int, default=CAR_PARKS)
    parser.add_argument("--quotes", type=int, default=500)
    parser.add_argument("--history-weeks", type=int, default=HISTORY_WEEKS, help="weeks of hourly history to seed")
    parser.add_argument("--holdout-weeks", type=int, default=2, help="passed to demand_model_train")
    parser.add_argument(
        "--train-car-parks",
        type=int,
        default=TRAIN_CAR_PARKS,
        help=f"train on the first N car parks' history (default {TRAIN_CAR_PARKS}; 0 = all)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS (and OPENBLAS/MKL), set before numpy/sklearn load; 0 leaves them unset (default 1)",
    )
    parser.add_argument(
        "--synthetic-forecaster",
        action="store_true",
        help="old behaviour: an hour-of-week profile instead of history + a trained model",
    )
    args = parser.parse_args()
    # sklearn's boosted trees use OpenMP. On this 2-core machine 2 threads made a 20k-row fit ~8x
    # slower than 1 (thread synchronisation per split dwarfs the work), so the default is 1.
    if args.threads:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)

    work_dir = tempfile.mkdtemp(prefix="pricing-bench-")
    try:
        _setup_django(work_dir)
        from django.db import connection

        old_name = connection.settings_dict["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            result = run(args)
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
