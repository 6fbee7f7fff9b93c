"""Demo pricing data for ``make run``: hourly occupancy history, rate rules, a model, published rates.

The demo's car parks are new, so they have no history for the pricing service to learn from.
This writes a plausible one (weekly shapes by kind of car park, seeded noise), so that the demo
shows dynamic rates in quotes, and forecasts and charts with something in them. Nothing here runs
outside the demo command.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings

from backend.carparks.hours import Period, open_spans
from backend.carparks.models import CarPark
from backend.carparks.selectors import periods_of
from backend.core import clock
from pricing.models import DemandModelVersion, OccupancyHour, OccupancySource, RateRule
from pricing.rates import active_model_version, default_rule, publish_rates
from pricing.services import hour_start_utc, occupancy_record
from pricing.training import demand_model_train

HOUR = timedelta(hours=1)
QUARTER_HOUR = timedelta(minutes=15)  # every zone's offset is a multiple of it
MAX_RATE = Decimal("999999.99")  # RateRule's money columns: 8 digits, 2 decimals
MIN_WEEKS = 6  # training's evaluation: 4 weeks to learn, 2 held out
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DemoSummary:
    car_parks_with_new_history: int
    hours_written: int
    rules_created: int
    model_version: int | None
    model_status: str
    rates_published: int


def _bump(hour: float, centre: float, width: float) -> float:
    """A bell around ``centre`` on the 24-hour clock (an evening peak reaches past midnight)."""
    distance = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-((distance / width) ** 2) / 2)


def _kind_of(periods: list[Period]) -> str:
    """``24/7``, ``night`` (open past midnight on some days) or ``day``."""
    if len(periods) == 7 and all(p.overnight and p.opens == p.closes for p in periods):
        return "24/7"
    return "night" if any(p.overnight for p in periods) else "day"


def demand_share(kind: str, weekday: int, hour: float) -> float:
    """The usual share of bays taken at a local hour: offices and shops by day, evenings out on
    Fridays and Saturdays, commuters at stations (a made-up but plausible weekly shape)."""
    weekend = weekday >= 5
    if kind == "24/7":
        if weekend:
            return 0.12 + 0.45 * _bump(hour, 14, 3)
        return 0.12 + 0.7 * _bump(hour, 12.5, 4.2)
    if kind == "night":
        evening = 0.85 if weekday in (4, 5) else 0.3
        return 0.08 + (0.3 if weekend else 0.45) * _bump(hour, 13, 3) + evening * _bump(hour, 21, 2.2)
    if weekday == 6:
        return 0.05 + 0.5 * _bump(hour, 14, 2.5)
    return 0.1 + (0.8 if weekday == 5 else 0.72) * _bump(hour, 13, 3.2)


def _open_fraction(spans: list[tuple[datetime, datetime]], hour_start: datetime) -> float:
    hour_end = hour_start + HOUR
    seconds = sum(max(0.0, (min(end, hour_end) - max(start, hour_start)).total_seconds()) for start, end in spans)
    return min(seconds / 3600, 1.0)


def history_for(car_park: CarPark, *, start: datetime, end: datetime, rng: random.Random) -> dict[datetime, Decimal]:
    """Mean occupied bays for each local hour of ``[start, end)`` (keyed by the UTC instant it
    starts, as ``occupancy_record`` stores it): 0 while the car park is closed."""
    zone = ZoneInfo(car_park.timezone)
    periods = periods_of(car_park)
    kind = _kind_of(periods)
    spans = open_spans(periods, zone, start, end)
    scale = rng.uniform(0.8, 1.05)
    hours: dict[datetime, Decimal] = {}
    # Walk in quarter hours and keep each local hour once: with half-hour offsets or a 30-minute
    # DST shift (Lord Howe), stepping from hour start to hour start could stall or skip one.
    moment = start
    while moment < end:
        hour_start = hour_start_utc(moment, car_park.timezone)
        if hour_start not in hours and hour_start >= start:
            local = hour_start.astimezone(zone)
            share = demand_share(kind, local.weekday(), local.hour + 0.5) * scale + rng.gauss(0, 0.035)
            share = min(max(share, 0.0), 0.98) * _open_fraction(spans, hour_start)
            hours[hour_start] = Decimal(share * car_park.total_capacity).quantize(Decimal("0.01"))
        moment += QUARTER_HOUR
    return hours


def _to_step(value: Decimal) -> Decimal:
    return (value * 10).quantize(Decimal(1), rounding=ROUND_HALF_UP) / 10


def dynamic_rule_for(car_park: CarPark) -> RateRule:
    """The platform's default rule made dynamic: 0.6 to 1.8 times the base rate (to 10p), always
    around the base rate and inside the column's range, whatever the rate card says."""
    rule = default_rule(car_park)
    base = rule.base_rate
    rule.is_dynamic = True
    rule.minimum = min(_to_step(base * Decimal("0.6")), base)
    rule.maximum = min(max(_to_step(base * Decimal("1.8")), base), MAX_RATE)
    rule.max_daily_change = max(_to_step(base * Decimal("0.2")), Decimal("0.10"))
    return rule


def pricing_demo_seed(
    *, company: str, weeks: int = 8, seed: int = 2026, retrain: bool = False, progress: Progress
) -> DemoSummary:
    """Give each live car park of ``company`` without imported history ``weeks`` of it and a dynamic
    rate rule, train a model if none was ever tried (or ``retrain``), then publish the coming
    week's rates. Idempotent. Refused in production: made-up history is for the demo only."""
    if settings.IS_PRODUCTION:
        raise ValueError("demo data is never written in production (DJANGO_ENV=production)")
    if weeks < MIN_WEEKS:
        raise ValueError(f"weeks must be at least {MIN_WEEKS} (the model learns on 4 and is judged on the last 2)")
    end = clock.now().replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(weeks=weeks)
    car_parks = list(CarPark.objects.live().filter(company__name=company).order_by("pk"))
    if not car_parks:
        raise ValueError(f"no live car parks of {company!r}: run seed_demo first")
    # Only an import counts as history here: a demo car park whose gate has seen a car is still new.
    with_history = set(
        OccupancyHour.objects.filter(car_park__in=car_parks, source=OccupancySource.IMPORT)
        .values_list("car_park_id", flat=True)
        .distinct()
    )
    written = new = 0
    for index, car_park in enumerate(car_parks, start=1):
        if car_park.pk in with_history:
            continue
        rng = random.Random(f"{seed}-{car_park.pk}")  # noqa: S311 - demo data, reproducible on purpose
        hours = history_for(car_park, start=start, end=end, rng=rng)
        written += occupancy_record(
            car_park_id=car_park.pk,
            source=OccupancySource.IMPORT,
            hours=hours,
            capacity=car_park.total_capacity,
        )
        new += 1
        progress(f"history {index}/{len(car_parks)}: {car_park.name}, {len(hours)} hours")
    ruled = set(RateRule.objects.filter(car_park__in=car_parks).values_list("car_park_id", flat=True))
    missing_rules = [dynamic_rule_for(car_park) for car_park in car_parks if car_park.pk not in ruled]
    RateRule.objects.bulk_create(missing_rules)
    progress(f"rate rules: {len(missing_rules)} created")
    version = active_model_version()
    # A run the model did not pass (or that failed) is not repeated on every make run.
    if retrain or (version is None and not DemandModelVersion.objects.exists()):
        progress("training the demand model (a minute at most)")
        status = str(demand_model_train(progress=progress).status)
        version = active_model_version()  # the new one if promoted, else the one that served before
    elif version is None:
        status = "none (the last training was not promoted; --retrain tries again)"
    else:
        status = "active"
    summary = publish_rates(car_parks)
    model = f"model v{summary.model_version}" if summary.model_version else "no model: base rates"
    progress(f"published {summary.rows} hourly rates for {summary.car_parks} car parks ({model})")
    return DemoSummary(
        car_parks_with_new_history=new,
        hours_written=written,
        rules_created=len(missing_rules),
        model_version=version,
        model_status=status,
        rates_published=summary.rows,
    )
