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
from pricing.models import OccupancyHour, OccupancySource, RateCard, RateRule
from pricing.rates import active_model_version, publish_rates
from pricing.services import occupancy_record
from pricing.training import demand_model_train

HOUR = timedelta(hours=1)
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
    return math.exp(-(((hour - centre) / width) ** 2) / 2)


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
    """Mean occupied bays for each UTC hour of ``[start, end)``: none while closed."""
    zone = ZoneInfo(car_park.timezone)
    periods = periods_of(car_park)
    kind = _kind_of(periods)
    spans = open_spans(periods, zone, start, end)
    scale = rng.uniform(0.8, 1.05)
    hours: dict[datetime, Decimal] = {}
    moment = start
    while moment < end:
        local = moment.astimezone(zone)
        share = demand_share(kind, local.weekday(), local.hour + 0.5) * scale + rng.gauss(0, 0.035)
        share = min(max(share, 0.0), 0.98) * _open_fraction(spans, moment)
        hours[moment] = Decimal(share * car_park.total_capacity).quantize(Decimal("0.01"))
        moment += HOUR
    return hours


def _to_step(value: Decimal) -> Decimal:
    return (value * 10).quantize(Decimal(1), rounding=ROUND_HALF_UP) / 10


def _rule_for(car_park: CarPark) -> RateRule:
    card = RateCard.objects.filter(car_park=car_park).first()
    base = card.hourly_rate if card else Decimal(settings.PRICING_DEFAULT_RATE_CARD["hourly_rate"])
    return RateRule(
        car_park=car_park,
        base_rate=base,
        minimum=_to_step(base * Decimal("0.6")),
        maximum=_to_step(base * Decimal("1.8")),
        max_daily_change=Decimal("0.50"),
    )


def pricing_demo_seed(*, weeks: int = 8, seed: int = 2026, retrain: bool = False, progress: Progress) -> DemoSummary:
    """Give every live car park without imported history ``weeks`` of it and a dynamic rate rule, train a
    model if none serves (or ``retrain``), then publish the coming week's rates. Idempotent."""
    if weeks < MIN_WEEKS:
        raise ValueError(f"weeks must be at least {MIN_WEEKS} (the model learns on 4 and is judged on the last 2)")
    end = clock.now().replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(weeks=weeks)
    car_parks = list(CarPark.objects.live().order_by("pk"))
    # Only an import counts as history here: a demo car park whose gate has seen a car is still new.
    with_history = set(
        OccupancyHour.objects.filter(car_park__in=car_parks, source=OccupancySource.IMPORT)
        .values_list("car_park_id", flat=True)
        .distinct()
    )
    rng = random.Random(seed)  # noqa: S311 - demo data, reproducible on purpose
    written = new = 0
    for index, car_park in enumerate(car_parks, start=1):
        if car_park.pk in with_history:
            continue
        hours = history_for(car_park, start=start, end=end, rng=rng)
        written += occupancy_record(
            car_park_id=car_park.pk,
            source=OccupancySource.IMPORT,
            hours=hours,
            capacity=car_park.total_capacity,
        )
        new += 1
        progress(f"history {index}/{len(car_parks)}: {car_park.name}, {len(hours)} hours")
    missing_rules = [
        _rule_for(car_park) for car_park in car_parks if not RateRule.objects.filter(car_park=car_park).exists()
    ]
    RateRule.objects.bulk_create(missing_rules)
    progress(f"rate rules: {len(missing_rules)} created")
    version, status = active_model_version(), "active"
    if version is None or retrain:
        progress("training the demand model (a minute at most)")
        row = demand_model_train(progress=progress)
        version, status = (row.version if row.is_active else active_model_version()), str(row.status)
    summary = publish_rates(car_parks)
    progress(
        f"published {summary.rows} hourly rates for {summary.car_parks} car parks (model v{summary.model_version})"
    )
    return DemoSummary(
        car_parks_with_new_history=new,
        hours_written=written,
        rules_created=len(missing_rules),
        model_version=version,
        model_status=status,
        rates_published=summary.rows,
    )
