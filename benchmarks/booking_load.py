"""Load test: search, quote and booking against gunicorn on PostgreSQL, next to a trivial endpoint.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/parking python benchmarks/booking_load.py --json

Not run in CI. Works in its own database, ``<dbname>_bench`` derived from DATABASE_URL (created
if missing, migrated, dropped and re-seeded unless ``--reuse-data``), so dev data is never touched.
Seeds with SQL (``INSERT ... SELECT generate_series``): 2,000 car parks open 24/7 around
Birmingham, a few thousand drivers owning 1,000,000 past and future bookings, and a capacity
ledger that matches the live ones. Then it starts gunicorn (``deploy/gunicorn.conf.py``) on
127.0.0.1, signs in one bench driver per client, and drives ``--clients`` concurrent aiohttp
clients through four phases of ``--duration`` seconds each, on the same server:

* ``trivial``: ``GET /api/v1/me`` (authenticated, one database read), the yardstick;
* ``search``: ``GET /api/v1/carparks?lat&lng&radius_km=2&start&end`` (availability and quotes);
* ``quote``: ``GET /api/v1/carparks/{id}/quote?start&end``;
* ``booking``: ``POST /api/v1/bookings`` with a fresh ``Idempotency-Key`` (a hold, 201).

After the search phase, ``search_1_client`` repeats the search with one client for
``--probe-seconds``: its latency is the service time, without queueing behind the other clients.
Then ``search_paced`` has the 16 clients search on a fixed schedule adding up to ``--paced-rps``
(default 50/s): the latency below saturation, where a closed loop only measures queueing.

It prints one JSON line (stdout) with requests per second and p50/p95/p99 latency per phase,
``booking_to_trivial_ratio`` (201s per second over the trivial endpoint's requests per second) and
``oversold`` (ledger rows over capacity plus slots where live bookings exceed capacity, on every
car park the run booked into; must be 0). Progress goes to stderr.
Goals: ``booking_to_trivial_ratio >= 0.5`` and search p95 under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
CITY_CENTRE = (52.4797, -1.9026)
CAR_PARK_SPREAD_KM = 15.0
SEARCH_SPREAD_KM = 12.0
SEARCH_RADIUS_KM = 2
KM_PER_DEGREE_LAT = 111.32
SLOT = timedelta(minutes=15)
BENCH_PASSWORD = "bench-load-2026-password"
BENCH_EMAIL = "bench-driver-{index}@bench.parking"
SEED_EMAIL_DOMAIN = "seed.parking"
BENCH_DOMAIN = "bench.parking"
LIVE = ("held", "confirmed", "checked_in")
HIGH_THROTTLE = "100000000/hour"
MAX_UNPAID_HOLDS = 1_000_000
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "postgis"}
PHASES = ("trivial", "search", "quote", "booking")

_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# --- options ------------------------------------------------------------------------------


def default_workers() -> int:
    return (os.cpu_count() or 1) * 2 + 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load test of search, quote and booking on gunicorn + PostgreSQL (not run in CI).",
        epilog="Needs DATABASE_URL pointing at PostgreSQL; works in <dbname>_bench, never in that database itself.",
    )
    parser.add_argument("--car-parks", type=int, default=2000, help="car parks to seed (default 2000)")
    parser.add_argument("--bookings", type=int, default=1_000_000, help="historical/future bookings to seed")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients, one driver each (default 16)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase (default 20)")
    parser.add_argument(
        "--probe-seconds",
        type=float,
        default=10.0,
        help="after the search phase, search with a single client for this long (service time; 0: skip)",
    )
    parser.add_argument(
        "--paced-rps",
        type=float,
        default=50.0,
        help="after the search phase, the same clients search at this total rate for --duration seconds "
        "(latency below saturation; 0: skip; default 50)",
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds before the phases (default 3)")
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="gunicorn workers (default 2 x cores + 1)"
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (gthread; default 4)")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 for gunicorn (default 8765)")
    parser.add_argument(
        "--reuse-data", action="store_true", help="keep the bench database if already seeded with these sizes"
    )
    parser.add_argument("--seed", type=int, default=20260601, help="random seed of the load clients")
    parser.add_argument("--json", action="store_true", help="print only the JSON line on stdout")
    args = parser.parse_args(argv)
    for name in ("car_parks", "bookings", "clients", "workers", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.duration <= 0:
        parser.error("--duration must be positive")
    if args.paced_rps < 0:
        parser.error("--paced-rps must be 0 or more")
    return args


# --- the bench database -------------------------------------------------------------------


@dataclass(frozen=True)
class BenchDatabase:
    source_url: str  # DATABASE_URL as given: used only to create/drop the bench database
    url: str  # the bench database, for Django (DATABASE_URL of the subprocesses)
    name: str

    @property
    def conninfo(self) -> str:
        return _psycopg_url(self.url)

    @property
    def source_conninfo(self) -> str:
        return _psycopg_url(self.source_url)


def _psycopg_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


def bench_database(database_url: str | None) -> BenchDatabase:
    """``<dbname>_bench`` on the server of DATABASE_URL; exits with a message for anything but PostgreSQL."""
    if not database_url:
        sys.exit(
            "booking_load: set DATABASE_URL to a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/test"
        )
    parts = urlsplit(database_url)
    if parts.scheme not in POSTGRES_SCHEMES:
        sys.exit(
            f"booking_load: DATABASE_URL uses {parts.scheme or 'no scheme'!r}; this benchmark needs PostgreSQL "
            "(SQLite cannot show concurrent booking throughput). Example: postgres://postgres@127.0.0.1:5432/test"
        )
    source_name = parts.path.lstrip("/") or "postgres"
    name = source_name if source_name.endswith("_bench") else f"{source_name}_bench"
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    return BenchDatabase(source_url=database_url, url=url, name=name)


def database_exists(db: BenchDatabase) -> bool:
    with psycopg.connect(db.source_conninfo, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db.name]).fetchone() is not None


def recreate_database(db: BenchDatabase, *, drop: bool) -> None:
    if not db.name.endswith("_bench"):  # never drop anything that is not a bench database
        raise RuntimeError(f"refusing to touch {db.name!r}")
    ident = sql.Identifier(db.name)
    with psycopg.connect(db.source_conninfo, autocommit=True) as conn:
        if drop:
            log(f"dropping database {db.name}")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db.name]).fetchone() is None:
            log(f"creating database {db.name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))


def django_env(db: BenchDatabase, var_dir: Path) -> dict[str, str]:
    """Environment of every Django subprocess: the bench database, a throw-away VAR_DIR."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": db.url,
            "DJANGO_ENV": "development",
            "DEBUG": "false",
            "DJANGO_TESTING": "0",
            "VAR_DIR": str(var_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def migrate(env: dict[str, str]) -> None:
    log("manage.py migrate on the bench database")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        sys.exit("booking_load: migrate failed")
    log(f"migrated in {time.perf_counter() - started:.1f}s")


# --- seeding ------------------------------------------------------------------------------


@contextmanager
def step(title: str) -> Iterator[None]:
    log(f"{title} ...")
    started = time.perf_counter()
    yield
    log(f"{title}: {time.perf_counter() - started:.1f}s")


def password_hash() -> str:
    """A hash from the project's default hasher, computed once (every seeded user shares it)."""
    from django.conf import settings

    if not settings.configured:
        settings.configure()
    from django.contrib.auth.hashers import make_password

    return make_password(BENCH_PASSWORD)


def fetch_one(conn: psycopg.Connection, query: Any, params: Any = None) -> tuple[Any, ...]:
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r}")
    return row


def read_meta(conn: psycopg.Connection) -> dict[str, Any] | None:
    exists = conn.execute("SELECT to_regclass('bench_meta') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute("SELECT value FROM bench_meta WHERE key = 'seed'").fetchone()
    return row[0] if row else None


def write_meta(conn: psycopg.Connection, meta: dict[str, Any]) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value jsonb NOT NULL)")
    conn.execute(
        "INSERT INTO bench_meta (key, value) VALUES ('seed', %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        [Jsonb(meta)],
    )


def seed_company(conn: psycopg.Connection, hashed: str) -> int:
    company_id = int(
        fetch_one(
            conn,
            "INSERT INTO accounts_company (name, country, created_at) VALUES ('Bench Parking Ltd', 'GB', now()) "
            "RETURNING id",
        )[0]
    )
    conn.execute(
        """
        INSERT INTO accounts_user (password, is_superuser, first_name, last_name, is_staff, is_active, date_joined,
                                   email, phone, role, is_company_admin, company_id)
        VALUES (%s, false, 'Bench', 'Operator', false, true, now(), %s, '', 'operator', true, %s)
        """,
        [hashed, f"operator@{BENCH_DOMAIN}", company_id],
    )
    return company_id


def seed_car_parks(conn: psycopg.Connection, company_id: int, count: int) -> None:
    """``count`` car parks uniformly over a disc around the centre, open 24/7, half with a rate card."""
    lat0, lng0 = CITY_CENTRE
    lat_km = 1 / KM_PER_DEGREE_LAT
    lng_km = 1 / (KM_PER_DEGREE_LAT * math.cos(math.radians(lat0)))
    conn.execute(
        """
        INSERT INTO carparks_carpark (name, address, latitude, longitude, timezone, currency, standard_bays,
            accessible_bays, ev_charging_bays, covered, height_limit_m, internal_notes, created_at, updated_at,
            archived_at, company_id, entry_grace_minutes, free_cancellation_hours, late_cancellation_refund_percent)
        SELECT 'Bench car park ' || g, g || ' Bench Street, Birmingham',
               %(lat0)s + r * sin(theta) * %(lat_km)s, %(lng0)s + r * cos(theta) * %(lng_km)s,
               'Europe/London', 'GBP', 60 + (random() * 340)::int, 5 + (random() * 15)::int,
               (random() * 20)::int + 5, random() < 0.4, CASE WHEN random() < 0.4 THEN 2.00 END, '', now(), now(),
               NULL, %(company)s, 15, 24, 50
        FROM (SELECT g, %(spread)s * sqrt(random()) AS r, 2 * pi() * random() AS theta
              FROM generate_series(1, %(count)s::int) g) p
        """,
        {
            "lat0": lat0,
            "lng0": lng0,
            "lat_km": lat_km,
            "lng_km": lng_km,
            "company": company_id,
            "spread": CAR_PARK_SPREAD_KM,
            "count": count,
        },
    )
    conn.execute(
        """
        INSERT INTO carparks_openingperiod (weekday, opens, closes, overnight, car_park_id)
        SELECT d, '00:00', '00:00', true, c.id FROM carparks_carpark c CROSS JOIN generate_series(0, 6) d
        """
    )
    conn.execute(
        """
        INSERT INTO pricing_ratecard (hourly_rate, daily_maximum, minimum_charge, tax_rate, updated_at, car_park_id)
        SELECT round((1.50 + random() * 2.50)::numeric, 2), 20.00, 1.00, 0.2000, now(), c.id
        FROM carparks_carpark c WHERE c.id % 2 = 0
        """
    )


def seed_published_rates(conn: psycopg.Connection, now: datetime) -> None:
    """What the pricing service publishes: hourly rates for the next 7 days of every car park."""
    conn.execute(
        """
        INSERT INTO pricing_publishedrate (hour_start, rate, currency, forecast_occupancy, predicted_occupancy,
                                           reason, published_at, car_park_id)
        SELECT date_trunc('hour', %(now)s::timestamptz) + h * interval '1 hour',
               round((1.00 + random() * 4.00)::numeric, 2), 'GBP', 0.6, 0.6, '{"source": "bench"}'::jsonb,
               %(now)s, c.id
        FROM carparks_carpark c CROSS JOIN generate_series(0, 7 * 24 - 1) h
        """,
        {"now": now},
    )


def seed_drivers(conn: psycopg.Connection, count: int, hashed: str) -> None:
    """``count`` drivers with one vehicle each, numbered in a temp-free way by their e-mail."""
    conn.execute(
        """
        INSERT INTO accounts_user (password, is_superuser, first_name, last_name, is_staff, is_active, date_joined,
                                   email, phone, role, is_company_admin, company_id)
        SELECT %s, false, 'Seed', 'Driver ' || g, false, true, now() - interval '400 days',
               'seed-driver-' || g || '@' || %s, '', 'driver', false, NULL
        FROM generate_series(1, %s::int) g
        """,
        [hashed, SEED_EMAIL_DOMAIN, count],
    )
    conn.execute(
        """
        INSERT INTO accounts_vehicle (plate, created_at, owner_id)
        SELECT 'SD' || u.id, now(), u.id FROM accounts_user u WHERE u.email LIKE %s
        """,
        [f"%@{SEED_EMAIL_DOMAIN}"],
    )


def ensure_bench_drivers(conn: psycopg.Connection, clients: int, hashed: str) -> list[tuple[int, str, int]]:
    """One driver and vehicle per client (created if missing): [(user id, e-mail, vehicle id)]."""
    drivers = []
    for index in range(1, clients + 1):
        email = BENCH_EMAIL.format(index=index)
        conn.execute(
            """
            INSERT INTO accounts_user (password, is_superuser, first_name, last_name, is_staff, is_active,
                                       date_joined, email, phone, role, is_company_admin, company_id)
            VALUES (%s, false, 'Bench', %s, false, true, now(), %s, '', 'driver', false, NULL)
            ON CONFLICT (email) DO UPDATE SET password = EXCLUDED.password
            """,
            [hashed, f"Driver {index}", email],
        )
        user_id = int(fetch_one(conn, "SELECT id FROM accounts_user WHERE email = %s", [email])[0])
        conn.execute(
            "INSERT INTO accounts_vehicle (plate, created_at, owner_id) VALUES (%s, now(), %s) "
            "ON CONFLICT ON CONSTRAINT vehicle_plate_unique_per_owner DO NOTHING",
            [f"BN{index:04d}", user_id],
        )
        vehicle = fetch_one(
            conn, "SELECT id FROM accounts_vehicle WHERE owner_id = %s AND plate = %s", [user_id, f"BN{index:04d}"]
        )
        drivers.append((user_id, email, int(vehicle[0])))
    return drivers


BOOKINGS_SQL = """
INSERT INTO bookings_booking (plate, bay_type, start, "end", ledger_start, ledger_end, status, amount_minor, currency,
    tax_minor, tax_rate, price_lines, hold_expires_at, code, created_at, confirmed_at, checked_in_at, checked_out_at,
    cancelled_at, expired_at, cancellation_reason, car_park_id, driver_id, vehicle_id)
SELECT v.plate, b.bay_type, b.start, b.start + b.duration, b.slot, b.slot + b.duration + b.pad,
       b.status, b.amount, 'GBP', b.amount / 6, 0.2000, '[]'::jsonb, NULL,
       CASE WHEN b.status IN ('confirmed', 'checked_in', 'completed', 'no_show')
            THEN 'S' || lpad(to_hex(b.g), 8, '0') END,
       b.created,
       CASE WHEN b.status IN ('confirmed', 'checked_in', 'completed', 'no_show')
            THEN b.created + interval '3 minutes' END,
       CASE WHEN b.status IN ('checked_in', 'completed') THEN b.start END,
       CASE WHEN b.status = 'completed' THEN b.start + b.duration END,
       CASE WHEN b.status = 'cancelled' THEN b.created + interval '1 hour' END,
       NULL, '', c.id, v.owner_id, v.id
FROM (
    SELECT s.*,
           s.slot + s.minutes * interval '1 minute' AS start,
           CASE WHEN s.minutes > 0 THEN interval '15 minutes' ELSE interval '0' END AS pad,
           (250 * extract(epoch FROM s.duration) / 3600)::int AS amount,
           least(s.slot - (1 + s.r_created * 13) * interval '1 day', %(now)s) AS created,
           CASE
               WHEN s.slot + s.duration <= %(now)s THEN
                   CASE WHEN s.r_status < 0.90 THEN 'completed' WHEN s.r_status < 0.95 THEN 'cancelled'
                        ELSE 'no_show' END
               WHEN s.slot <= %(now)s THEN 'checked_in'
               ELSE CASE WHEN s.r_status < 0.90 THEN 'confirmed' ELSE 'cancelled' END
           END AS status
    FROM (
        SELECT g,
               %(now)s + (floor(random() * %(span_slots)s) - %(half_slots)s) * interval '15 minutes' AS slot,
               CASE WHEN random() < 0.7 THEN 0 ELSE 1 + floor(random() * 14)::int END AS minutes,
               (4 + floor(random() * 13)::int) * interval '15 minutes' AS duration,
               CASE WHEN random() < 0.9 THEN 'standard' WHEN random() < 0.5 THEN 'accessible' ELSE 'ev_charging' END
                   AS bay_type,
               1 + floor(random() * %(car_parks)s)::int AS cp_index,
               1 + (g * 7919) %% %(drivers)s AS driver_index,
               random() AS r_status, random() AS r_created
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) g
    ) s
) b
JOIN bench_car_parks c ON c.idx = b.cp_index
JOIN bench_vehicles v ON v.idx = b.driver_index
"""


def seed_bookings(conn: psycopg.Connection, count: int, now: datetime, chunk: int = 100_000) -> None:
    """``count`` bookings over the past and next 60 days: completed, cancelled, no-show, checked in, confirmed."""
    conn.execute(
        "CREATE TEMP TABLE bench_car_parks AS SELECT row_number() OVER (ORDER BY id) AS idx, id FROM carparks_carpark"
    )
    conn.execute(
        "CREATE TEMP TABLE bench_vehicles AS SELECT row_number() OVER (ORDER BY v.id) AS idx, v.id, v.owner_id, "
        "v.plate FROM accounts_vehicle v JOIN accounts_user u ON u.id = v.owner_id WHERE u.email LIKE %s",
        [f"%@{SEED_EMAIL_DOMAIN}"],
    )
    for table in ("bench_car_parks", "bench_vehicles"):
        conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} (idx)").format(sql.Identifier(table)))
    car_parks = fetch_one(conn, "SELECT count(*) FROM bench_car_parks")[0]
    drivers = fetch_one(conn, "SELECT count(*) FROM bench_vehicles")[0]
    half_slots = 60 * 24 * 4
    for first in range(1, count + 1, chunk):
        last = min(first + chunk - 1, count)
        conn.execute(
            BOOKINGS_SQL,
            {
                "now": now,
                "span_slots": 2 * half_slots,
                "half_slots": half_slots,
                "car_parks": car_parks,
                "drivers": drivers,
                "first": first,
                "last": last,
            },
        )
        log(f"  bookings {last:,}/{count:,}")


LEDGER_SQL = """
INSERT INTO bookings_capacityslot (car_park_id, bay_type, starts_at, capacity, reserved)
SELECT l.car_park_id, l.bay_type, l.slot,
       CASE l.bay_type WHEN 'standard' THEN c.standard_bays WHEN 'accessible' THEN c.accessible_bays
                       ELSE c.ev_charging_bays END,
       l.n
FROM (
    SELECT b.car_park_id, b.bay_type, s.slot, count(*) AS n
    FROM bookings_booking b
    CROSS JOIN LATERAL generate_series(b.ledger_start, b.ledger_end - interval '15 minutes',
                                       interval '15 minutes') s(slot)
    WHERE b.status IN ('held', 'confirmed', 'checked_in')
    GROUP BY 1, 2, 3
) l
JOIN carparks_carpark c ON c.id = l.car_park_id
"""


def build_ledger(conn: psycopg.Connection) -> int:
    """CapacitySlot rows for every slot a live booking occupies: reserved = live bookings, capacity = bays."""
    try:
        with conn.transaction():
            cursor = conn.execute(LEDGER_SQL)
    except psycopg.errors.CheckViolation:
        sys.exit(
            "booking_load: some slot would hold more live bookings than bays; seed fewer bookings per car park "
            "(--bookings / --car-parks) or more car parks"
        )
    return cursor.rowcount


def seed(db: BenchDatabase, args: argparse.Namespace, hashed: str) -> dict[str, Any]:
    now = _slot_floor(datetime.now(UTC))
    drivers = max(200, min(5000, args.bookings // 200))
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        try:  # skip FK triggers while bulk loading (the SQL keeps references right); needs superuser
            conn.execute("SET session_replication_role = replica")
        except psycopg.Error:
            log("not a superuser: foreign keys checked row by row (slower)")
        conn.execute("SET synchronous_commit = off")
        with step("company, operator"):
            company_id = seed_company(conn, hashed)
        with step(f"{args.car_parks:,} car parks (24/7, rate cards on half)"):
            seed_car_parks(conn, company_id, args.car_parks)
        with step("published rates (7 days x 24 h per car park)"):
            seed_published_rates(conn, now)
        with step(f"{drivers:,} seed drivers with a vehicle each"):
            seed_drivers(conn, drivers, hashed)
        with step(f"{args.bookings:,} bookings"):
            seed_bookings(conn, args.bookings, now)
        with step("capacity ledger from the live bookings"):
            slots = build_ledger(conn)
            log(f"  {slots:,} capacity slots")
        conn.execute("SET session_replication_role = DEFAULT")
        with step("VACUUM ANALYZE"):
            conn.execute("VACUUM ANALYZE")
        meta = {
            "car_parks": args.car_parks,
            "bookings": args.bookings,
            "seed_drivers": drivers,
            "capacity_slots": slots,
            "seeded_at": now.isoformat(),
        }
        write_meta(conn, meta)
    return meta


def _slot_floor(moment: datetime) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return moment - (moment - epoch) % SLOT


def forget_previous_runs(conn: psycopg.Connection) -> None:
    """With --reuse-data: remove what earlier runs' bench drivers booked, giving their slots back."""
    bench = f"%@{BENCH_DOMAIN}"
    with conn.transaction():
        conn.execute(
            """
            CREATE TEMP TABLE old_runs ON COMMIT DROP AS
            SELECT b.id, b.car_park_id, b.bay_type, b.ledger_start, b.ledger_end, b.status
            FROM bookings_booking b JOIN accounts_user u ON u.id = b.driver_id
            WHERE u.email LIKE %s AND u.role = 'driver'
            """,
            [bench],
        )
        count = fetch_one(conn, "SELECT count(*) FROM old_runs")[0]
        if not count:
            return
        conn.execute(
            """
            UPDATE bookings_capacityslot s SET reserved = s.reserved - o.n
            FROM (SELECT car_park_id, bay_type, slot, count(*) AS n FROM old_runs
                  CROSS JOIN LATERAL generate_series(ledger_start, ledger_end - interval '15 minutes',
                                                     interval '15 minutes') g(slot)
                  WHERE status IN ('held', 'confirmed', 'checked_in') GROUP BY 1, 2, 3) o
            WHERE (s.car_park_id, s.bay_type, s.starts_at) = (o.car_park_id, o.bay_type, o.slot)
            """
        )
        conn.execute(
            "DELETE FROM bookings_refund WHERE payment_id IN "
            "(SELECT id FROM bookings_payment WHERE booking_id IN (SELECT id FROM old_runs))"
        )
        for table in ("bookings_payment", "bookings_bookingextension", "bookings_drivermessage"):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE booking_id IN (SELECT id FROM old_runs)").format(sql.Identifier(table))
            )
        conn.execute("DELETE FROM bookings_booking WHERE id IN (SELECT id FROM old_runs)")
        conn.execute(
            "DELETE FROM bookings_idempotencyrecord WHERE user_id IN "
            "(SELECT id FROM accounts_user WHERE email LIKE %s)",
            [bench],
        )
    log(f"removed {count:,} bookings of earlier runs (ledger given back)")


def prepare_data(db: BenchDatabase, args: argparse.Namespace, env: dict[str, str], hashed: str) -> dict[str, Any]:
    """Create, migrate and seed the bench database (or reuse it); returns the seed's metadata."""
    wanted = {"car_parks": args.car_parks, "bookings": args.bookings}
    if args.reuse_data and database_exists(db):
        migrate(env)
        with psycopg.connect(db.conninfo, autocommit=True) as conn:
            meta = read_meta(conn)
            if meta and all(meta.get(key) == value for key, value in wanted.items()):
                log(f"reusing {db.name}: seeded {meta['seeded_at']} with {meta}")
                forget_previous_runs(conn)
                return meta
        log(f"{db.name} holds other sizes ({meta}); seeding again")
    recreate_database(db, drop=True)
    migrate(env)
    return seed(db, args, hashed)


# --- gunicorn -------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def server_env(db: BenchDatabase, var_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    env = django_env(db, var_dir)
    env.update(
        {
            "THROTTLE_USER": HIGH_THROTTLE,
            "THROTTLE_ANON": HIGH_THROTTLE,
            "THROTTLE_AUTH": HIGH_THROTTLE,
            "BOOKING_MAX_UNPAID_HOLDS": str(MAX_UNPAID_HOLDS),
            "JWT_ACCESS_MINUTES": "600",
            "PAYMENT_PROVIDER": "offline",
            "STRIPE_SECRET_KEY": "",
            "LOG_LEVEL": "WARNING",
            "WEB_CONCURRENCY": str(args.workers),
            "WEB_THREADS": str(args.threads),
            "BIND": f"127.0.0.1:{args.port}",
            "CACHE_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",  # fresh throttle counters if REDIS_URL is set
        }
    )
    return env


def gunicorn_binary() -> str:
    local = Path(sys.executable).parent / "gunicorn"
    found = str(local) if local.exists() else shutil.which("gunicorn")
    if not found:
        sys.exit("booking_load: gunicorn is not installed (pip install -e '.[dev]')")
    return found


def start_gunicorn(env: dict[str, str], args: argparse.Namespace, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        gunicorn_binary(),
        "-c",
        str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{args.port}",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--max-requests",
        "0",  # no worker recycling mid-phase: it would charge Django start-up to whichever phase it hit
        "backend.wsgi:application",
    ]
    log(f"starting gunicorn: {args.workers} workers x {args.threads} threads (log {log_path})")
    with log_path.open("wb") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_healthy(base_url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
            sys.exit("booking_load: gunicorn exited while starting")
        try:
            with urllib.request.urlopen(f"{base_url}/api/v1/health", timeout=2) as response:
                if response.status == 200:
                    log("gunicorn is healthy")
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
    sys.exit("booking_load: /api/v1/health did not answer in time")


def stop_gunicorn(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    log("stopping gunicorn")
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# --- load -----------------------------------------------------------------------------------


@dataclass
class Client:
    email: str
    vehicle_id: int
    token: str = ""
    rng: random.Random = field(default_factory=random.Random)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class PhaseResult:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    wall_seconds: float = 0.0
    load_before: float = 0.0  # 1-minute load average: other work on the machine skews the numbers


Request = Callable[["Any", Client], Awaitable[str]]


def _future_window(rng: random.Random, min_days: float, max_days: float) -> tuple[str, str]:
    """A window of 1-4 h on 15-minute boundaries starting ``min_days``-``max_days`` ahead (UTC, ISO)."""
    now = _slot_floor(datetime.now(UTC))
    slots_ahead = rng.randint(int(min_days * 96), int(max_days * 96))
    start = now + SLOT * slots_ahead
    end = start + SLOT * rng.randint(4, 16)
    return start.isoformat(), end.isoformat()


def _random_point(rng: random.Random) -> tuple[float, float]:
    lat0, lng0 = CITY_CENTRE
    radius = SEARCH_SPREAD_KM * math.sqrt(rng.random())
    theta = 2 * math.pi * rng.random()
    lat = lat0 + radius * math.sin(theta) / KM_PER_DEGREE_LAT
    lng = lng0 + radius * math.cos(theta) / (KM_PER_DEGREE_LAT * math.cos(math.radians(lat0)))
    return round(lat, 5), round(lng, 5)


async def _status_of(response: Any, expected: int) -> str:
    body = await response.read()
    if response.status == expected:
        return str(response.status)
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        code = None
    return f"{response.status}:{code}" if code else str(response.status)


def make_requests(base_url: str, car_park_ids: list[int]) -> dict[str, Request]:
    async def trivial(session: Any, client: Client) -> str:
        async with session.get(f"{base_url}/api/v1/me", headers=client.headers) as response:
            return await _status_of(response, 200)

    async def search(session: Any, client: Client) -> str:
        lat, lng = _random_point(client.rng)
        start, end = _future_window(client.rng, 1, 14)
        params = {"lat": lat, "lng": lng, "radius_km": SEARCH_RADIUS_KM, "start": start, "end": end}
        async with session.get(f"{base_url}/api/v1/carparks", params=params, headers=client.headers) as response:
            return await _status_of(response, 200)

    async def quote(session: Any, client: Client) -> str:
        car_park = client.rng.choice(car_park_ids)
        start, end = _future_window(client.rng, 1, 14)
        url = f"{base_url}/api/v1/carparks/{car_park}/quote"
        async with session.get(url, params={"start": start, "end": end}, headers=client.headers) as response:
            return await _status_of(response, 200)

    async def booking(session: Any, client: Client) -> str:
        start, end = _future_window(client.rng, 2, 30)
        body = {"car_park": client.rng.choice(car_park_ids), "vehicle": client.vehicle_id, "start": start, "end": end}
        headers = {**client.headers, "Idempotency-Key": uuid.uuid4().hex}
        async with session.post(f"{base_url}/api/v1/bookings", json=body, headers=headers) as response:
            return await _status_of(response, 201)

    return {"trivial": trivial, "search": search, "quote": quote, "booking": booking}


async def sign_in(session: Any, base_url: str, clients: list[Client]) -> None:
    async def one(client: Client) -> None:
        payload = {"email": client.email, "password": BENCH_PASSWORD}
        async with session.post(f"{base_url}/api/v1/auth/token", json=payload) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                raise RuntimeError(f"sign-in of {client.email} failed: {response.status} {body}")
            client.token = body["access"]

    await asyncio.gather(*(one(client) for client in clients))


async def run_phase(
    session: Any, clients: list[Client], request: Request, seconds: float, total_rps: float = 0.0
) -> PhaseResult:
    """Every client sends ``request`` back to back for ``seconds`` (closed loop); with ``total_rps``,
    the clients instead send on a fixed schedule that adds up to that rate (an offered load that does
    not slow down when the server does). The latency of each request is recorded."""
    result = PhaseResult(load_before=os.getloadavg()[0])
    started = time.perf_counter()
    deadline = started + seconds
    interval = len(clients) / total_rps if total_rps else 0.0

    async def loop(client: Client, index: int) -> None:
        next_send = started + interval * index / len(clients)
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            if interval:
                # Latency counts from when the request was due, not when a slow answer let this
                # client send it: otherwise queueing hides in the gaps (coordinated omission).
                await asyncio.sleep(max(0.0, next_send - sent))
                sent, next_send = next_send, next_send + interval
                if time.perf_counter() >= deadline:
                    break
            try:
                status = await request(session, client)
            except Exception as exc:  # noqa: BLE001 - a failed request is a data point, not a crash
                status = f"exception:{type(exc).__name__}"
            result.latencies.append(time.perf_counter() - sent)
            result.statuses[status] += 1

    await asyncio.gather(*(loop(client, index) for index, client in enumerate(clients)))
    result.wall_seconds = time.perf_counter() - started
    return result


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = max(0, math.ceil(pct / 100 * len(sorted_values)) - 1)
    return sorted_values[index]


def summarise(result: PhaseResult, expected: set[str]) -> dict[str, Any]:
    values = sorted(result.latencies)
    requests = len(values)
    return {
        "rps": round(requests / result.wall_seconds, 1) if result.wall_seconds else 0.0,
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p95_ms": round(percentile(values, 95) * 1000, 1),
        "p99_ms": round(percentile(values, 99) * 1000, 1),
        "requests": requests,
        "errors": sum(n for status, n in result.statuses.items() if status not in expected),
        "seconds": round(result.wall_seconds, 2),
        "loadavg_1m_before": round(result.load_before, 2),
    }


async def drive_load(
    base_url: str, clients: list[Client], car_park_ids: list[int], args: argparse.Namespace
) -> dict[str, PhaseResult]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=len(clients) * 2)
    timeout = aiohttp.ClientTimeout(total=60)
    requests = make_requests(base_url, car_park_ids)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        log(f"signing in {len(clients)} bench drivers")
        await sign_in(session, base_url, clients)
        if args.warmup > 0:
            log(f"warm-up {args.warmup:.0f}s (not recorded): every endpoint")
            for name in ("trivial", "search", "quote"):
                await run_phase(session, clients, requests[name], args.warmup / 3)
        results = {}
        for name in PHASES:
            log(f"phase {name}: {len(clients)} clients for {args.duration:.0f}s")
            results[name] = await run_phase(session, clients, requests[name], args.duration)
            log(f"  {name}: {sum(results[name].statuses.values())} requests {dict(results[name].statuses)}")
            if name == "search" and args.probe_seconds > 0:
                log(f"probe search_1_client: 1 client for {args.probe_seconds:.0f}s (no queueing)")
                results["search_1_client"] = await run_phase(
                    session, clients[:1], requests["search"], args.probe_seconds
                )
            if name == "search" and args.paced_rps > 0:
                log(f"phase search_paced: {len(clients)} clients at {args.paced_rps:g} searches/s in all")
                results["search_paced"] = await run_phase(
                    session, clients, requests["search"], args.duration, total_rps=args.paced_rps
                )
    return results


# --- after the load ------------------------------------------------------------------------

OVERSOLD_SQL = """
WITH touched AS (
    SELECT DISTINCT b.car_park_id FROM bookings_booking b
    WHERE b.driver_id = ANY(%(drivers)s) AND b.created_at >= %(since)s
),
live AS (
    SELECT b.car_park_id, b.bay_type, s.slot, count(*) AS n
    FROM bookings_booking b
    JOIN touched t ON t.car_park_id = b.car_park_id
    CROSS JOIN LATERAL generate_series(b.ledger_start, b.ledger_end - interval '15 minutes',
                                       interval '15 minutes') s(slot)
    WHERE b.status IN ('held', 'confirmed', 'checked_in')
    GROUP BY 1, 2, 3
),
ledger AS (
    SELECT cs.* FROM bookings_capacityslot cs JOIN touched t ON t.car_park_id = cs.car_park_id
)
SELECT
    (SELECT count(*) FROM touched) AS touched,
    (SELECT count(*) FROM ledger WHERE reserved > capacity) AS ledger_over,
    (SELECT count(*) FROM live l
        JOIN carparks_carpark c ON c.id = l.car_park_id
        LEFT JOIN ledger cs ON (cs.car_park_id, cs.bay_type, cs.starts_at) = (l.car_park_id, l.bay_type, l.slot)
        WHERE l.n > coalesce(cs.capacity, CASE l.bay_type WHEN 'standard' THEN c.standard_bays
                                                         WHEN 'accessible' THEN c.accessible_bays
                                                         ELSE c.ev_charging_bays END)) AS live_over,
    (SELECT count(*) FROM live l
        FULL JOIN (SELECT * FROM ledger WHERE reserved > 0) cs
          ON (cs.car_park_id, cs.bay_type, cs.starts_at) = (l.car_park_id, l.bay_type, l.slot)
        WHERE coalesce(l.n, 0) <> coalesce(cs.reserved, 0)) AS mismatched
"""


def check_oversold(db: BenchDatabase, driver_ids: list[int], since: datetime) -> dict[str, int]:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        row = fetch_one(conn, OVERSOLD_SQL, {"drivers": driver_ids, "since": since})
        created = fetch_one(
            conn,
            "SELECT count(*) FROM bookings_booking WHERE driver_id = ANY(%s) AND created_at >= %s",
            [driver_ids, since],
        )
    touched, ledger_over, live_over, mismatched = (int(value) for value in row)
    return {
        "touched_car_parks": touched,
        "ledger_over_capacity": ledger_over,
        "live_over_capacity": live_over,
        "ledger_mismatches": mismatched,
        "bookings_in_db": int(created[0]),
    }


def car_park_ids(db: BenchDatabase) -> list[int]:
    with psycopg.connect(db.conninfo) as conn:
        return [int(row[0]) for row in conn.execute("SELECT id FROM carparks_carpark WHERE archived_at IS NULL")]


def report(
    results: dict[str, PhaseResult], check: dict[str, int], meta: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    out: dict[str, Any] = {name: summarise(results[name], {"200"}) for name in ("trivial", "search", "quote")}
    if "search_1_client" in results:
        out["search_1_client"] = summarise(results["search_1_client"], {"200"})
    if "search_paced" in results:
        out["search_paced"] = {**summarise(results["search_paced"], {"200"}), "offered_rps": args.paced_rps}
    booking = results["booking"]
    created = booking.statuses.get("201", 0)
    out["booking"] = {
        **summarise(booking, {"201", "409:window_full"}),
        "created": created,
        "created_per_second": round(created / booking.wall_seconds, 1),
        "status_counts": dict(sorted(booking.statuses.items())),
    }
    trivial_rps = out["trivial"]["rps"]
    out["booking_to_trivial_ratio"] = round(out["booking"]["created_per_second"] / trivial_rps, 3) if trivial_rps else 0
    out["oversold"] = check["ledger_over_capacity"] + check["live_over_capacity"]
    out["ledger_check"] = check
    out["goals"] = {
        "booking_to_trivial_ratio_at_least_0_5": out["booking_to_trivial_ratio"] >= 0.5,
        "search_p95_under_50ms": out["search"]["p95_ms"] < 50,
        "search_p95_under_50ms_1_client": out.get("search_1_client", {}).get("p95_ms", math.inf) < 50,
        "search_p95_under_50ms_paced": out.get("search_paced", {}).get("p95_ms", math.inf) < 50,
        "oversold_zero": out["oversold"] == 0,
    }
    out.update(
        {
            "car_parks": meta["car_parks"],
            "bookings_seeded": meta["bookings"],
            "capacity_slots_seeded": meta.get("capacity_slots"),
            "clients": args.clients,
            "duration_s": args.duration,
            "gunicorn_workers": args.workers,
            "gunicorn_threads": args.threads,
            "cpu_count": os.cpu_count(),
            "notes": [
                f"per-driver unpaid-hold limit raised for the load test: BOOKING_MAX_UNPAID_HOLDS={MAX_UNPAID_HOLDS} "
                "(each client books as one driver; bookings stay unpaid holds)",
                f"throttles raised: THROTTLE_USER/THROTTLE_ANON/THROTTLE_AUTH={HIGH_THROTTLE}",
                "gunicorn: deploy/gunicorn.conf.py (gthread) with --max-requests 0 (no worker recycling mid-phase)",
                "DJANGO_ENV=development, DEBUG=false, offline payment provider, LOG_LEVEL=WARNING, access log on",
                f"load client (aiohttp, one process), gunicorn and PostgreSQL share the same {os.cpu_count()} CPUs; "
                "loadavg_1m_before well above the CPU count at a phase start means other work was competing",
                f"search: random point within {SEARCH_SPREAD_KM:.0f} km of the centre, radius_km={SEARCH_RADIUS_KM}, "
                "window 1-14 days ahead, 1-4 h; quote: random car park, same windows; booking: random car park, "
                "standard bay, 1-4 h, 2-30 days ahead, fresh Idempotency-Key",
                "rps = completed requests / phase wall time; booking_to_trivial_ratio counts only 201s",
                "the phases are closed loops of --clients clients: p95 there includes queueing for the CPUs; "
                "search_1_client is the same search with one client (the service time without queueing)",
                "search_paced: the same 16 clients send searches on a fixed schedule adding up to offered_rps "
                "(an open-loop load below saturation: the latency a user sees when the server is not overloaded)",
                "oversold = ledger rows with reserved > capacity + slots where live bookings exceed capacity, "
                "over every car park the run booked into",
            ],
        }
    )
    return out


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db = bench_database(os.environ.get("DATABASE_URL"))
    if not port_is_free(args.port):
        sys.exit(f"booking_load: port {args.port} is in use; pass --port")
    log(f"bench database {db.name} (from DATABASE_URL); {os.cpu_count()} CPUs")
    var_dir = Path(tempfile.mkdtemp(prefix="booking-load-"))
    hashed = password_hash()
    meta = prepare_data(db, args, django_env(db, var_dir), hashed)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        drivers = ensure_bench_drivers(conn, args.clients, hashed)
    ids = car_park_ids(db)
    rng = random.Random(args.seed)
    clients = [
        Client(email=email, vehicle_id=vehicle, rng=random.Random(rng.random())) for _, email, vehicle in drivers
    ]
    base_url = f"http://127.0.0.1:{args.port}"
    log_path = var_dir / "gunicorn.log"
    since = datetime.now(UTC)
    process = start_gunicorn(server_env(db, var_dir, args), args, log_path)
    try:
        wait_healthy(base_url, process, log_path)
        results = asyncio.run(drive_load(base_url, clients, ids, args))
    finally:
        stop_gunicorn(process)
    log("checking the ledger (oversold)")
    check = check_oversold(db, [user_id for user_id, _, _ in drivers], since)
    out = report(results, check, meta, args)
    line = json.dumps(out, separators=(",", ":"))
    if not args.json:
        log("result:")
        print(json.dumps(out, indent=2), file=sys.stderr)
    print(line, flush=True)
    shutil.rmtree(var_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
