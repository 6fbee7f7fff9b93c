"""Publishing hourly rates: forecast -> policy -> ``PublishedRate`` rows, in bulk.

Quotes read only what is published here, so no model runs at request time. Publishing is
idempotent: it replaces the future hours of each car park it covers and leaves past hours
(the rates that applied) alone.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction

from backend.accounts.models import User
from backend.api.errors import Conflict, InvalidInput
from backend.audit.services import audit_record
from backend.carparks.models import CarPark
from backend.core import clock
from pricing import policy
from pricing.models import DemandModelVersion, OccupancyHour, PublishedRate, RateCard, RateOverride, RateRule
from pricing.policy import PlanHour, RateBounds, RateDecision, TargetBand
from pricing.quotes import local_hour_segments
from pricing.selectors import default_rate_card

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
CHUNK_SIZE = 100
"""Car parks per transaction: bounds memory and lock time, and lets one chunk fail alone."""
REASON_DYNAMIC_OFF = "dynamic_off"

Forecasts = dict[int, list[float | None]]


@dataclass(slots=True)
class PublishSummary:
    car_parks: int = 0
    rows: int = 0
    failed_car_park_ids: list[int] = field(default_factory=list)
    model_version: int | None = None
    seconds: float = 0.0


# --- Inputs ------------------------------------------------------------------------------------


def local_hour_starts(now: datetime, days: int, zone: ZoneInfo) -> list[datetime]:
    """The next ``days * 24`` starts of local hours after ``now``, in UTC: the very instants quotes
    look rates up at (:func:`pricing.quotes.local_hour_segments`).

    Whole UTC hours in whole-hour zones; half past in Asia/Kolkata. The hour under way keeps its
    rate: a driver who looked at it a minute ago sees the same price.
    """
    count = days * 24
    segments = local_hour_segments(now, now + HOUR * (count + 1), zone)
    return [hour_start for _, _, hour_start in segments if hour_start > now][:count]


def bounds_of(rule: RateRule) -> RateBounds:
    return RateBounds(
        minimum=rule.minimum, maximum=rule.maximum, max_daily_change=rule.max_daily_change, step=rule.step
    )


def band_of(rule: RateRule) -> TargetBand:
    return TargetBand(low=float(rule.band_low), high=float(rule.band_high))


def elasticity_of(rule: RateRule) -> tuple[float, policy.ElasticitySource]:
    operator_value = float(rule.elasticity) if rule.elasticity is not None else None
    return policy.resolve_elasticity(rule.estimated_elasticity, operator_value, settings.PRICING_DEFAULT_ELASTICITY)


def active_model_version() -> int | None:
    return DemandModelVersion.objects.filter(is_active=True).values_list("version", flat=True).first()


def _forecasts(car_parks: Sequence[CarPark], hour_starts: list[datetime]) -> Forecasts:
    """Forecast occupancy per car park and hour; all None when no forecaster is installed."""
    try:
        from pricing.forecast_service import forecast_occupancy
    except ImportError:
        logger.warning("pricing.forecast_service is not available: publishing without forecasts")
        return {car_park.pk: [None] * len(hour_starts) for car_park in car_parks}
    return forecast_occupancy(list(car_parks), hour_starts)


def overrides_by_hour(
    car_park_ids: Sequence[int], hour_starts: Sequence[datetime]
) -> dict[int, dict[datetime, Decimal]]:
    """The override rate of each of ``hour_starts`` an override covers; the latest override wins."""
    found: dict[int, dict[datetime, Decimal]] = defaultdict(dict)
    start, end = hour_starts[0], hour_starts[-1] + HOUR
    rows = RateOverride.objects.filter(car_park_id__in=car_park_ids, starts_at__lt=end, ends_at__gt=start).order_by(
        "created_at", "id"
    )
    for override in rows:
        for hour_start in hour_starts:
            if override.starts_at <= hour_start < override.ends_at:
                found[override.car_park_id][hour_start] = override.rate
    return found


def previous_rates_for(car_parks: Sequence[CarPark], start: datetime) -> dict[int, dict[policy.HourKey, Decimal]]:
    """Published rates of the two days before ``start``, keyed by local (date, hour).

    Two days because after a 23-hour day the missing hour is found one more day back. Override
    hours contribute the rate the policy would have chosen, so an event does not drag the next day.
    """
    zones = {car_park.pk: car_park.zone for car_park in car_parks}
    found: dict[int, dict[policy.HourKey, Decimal]] = defaultdict(dict)
    rows = PublishedRate.objects.filter(
        car_park_id__in=list(zones), hour_start__gte=start - timedelta(days=2), hour_start__lt=start
    ).values_list("car_park_id", "hour_start", "rate", "reason")
    for car_park_id, hour_start, rate, reason in rows.order_by("hour_start"):
        local = hour_start.astimezone(zones[car_park_id])
        anchor = reason.get("policy_rate") if isinstance(reason, dict) else None
        found[car_park_id].setdefault((local.date(), local.hour), Decimal(anchor) if anchor else rate)
    return found


# --- Planning one car park ------------------------------------------------------------------------


def plan_car_park(
    car_park: CarPark,
    rule: RateRule,
    hour_starts: list[datetime],
    forecast: Sequence[float | None],
    *,
    previous: Mapping[policy.HourKey, Decimal],
    overrides: Mapping[datetime, Decimal],
) -> list[RateDecision]:
    zone = car_park.zone
    elasticity, source = elasticity_of(rule)
    dynamic = rule.is_dynamic
    hours = [
        PlanHour(start=moment.astimezone(zone), predicted_occupancy=occupancy if dynamic else None)
        for moment, occupancy in zip(hour_starts, forecast, strict=True)
    ]
    if not dynamic:
        # Dynamic pricing off: the base rate every hour, overrides still win; no daily limit.
        return [_static_decision(hour, rule, overrides, elasticity, source) for hour in hours]
    return policy.plan_rates(
        hours,
        base_rate=rule.base_rate,
        bounds=bounds_of(rule),
        band=band_of(rule),
        elasticity=elasticity,
        mode=rule.mode,  # type: ignore[arg-type]
        previous_rates=previous,
        overrides=overrides,
        elasticity_source=source,
    )


def _static_decision(
    hour: PlanHour,
    rule: RateRule,
    overrides: Mapping[datetime, Decimal],
    elasticity: float,
    source: policy.ElasticitySource,
) -> RateDecision:
    override = overrides.get(hour.start.astimezone(UTC))
    return RateDecision(
        rate=override if override is not None else rule.base_rate,
        predicted_occupancy_at_rate=None,
        reason=policy.REASON_OVERRIDE if override is not None else REASON_DYNAMIC_OFF,
        bound_applied="override" if override is not None else None,
        elasticity_source=source,
        elasticity=elasticity,
        policy_rate=rule.base_rate,
        start=hour.start,
    )


def reason_of(
    decision: RateDecision, rule: RateRule, forecast: float | None, model_version: int | None
) -> dict[str, Any]:
    """What a published rate keeps to explain itself (JSON: money as strings)."""
    return {
        "policy": decision.reason,
        "forecast_occupancy": None if forecast is None else round(forecast, 4),
        "predicted_occupancy": (
            None if decision.predicted_occupancy_at_rate is None else round(decision.predicted_occupancy_at_rate, 4)
        ),
        "reference_rate": str(rule.base_rate),
        "model_version": model_version if forecast is not None else None,
        "bound_applied": decision.bound_applied,
        "elasticity": round(decision.elasticity, 4),
        "elasticity_source": decision.elasticity_source,
        "mode": rule.mode,
        "dynamic": rule.is_dynamic,
        "band": [str(rule.band_low), str(rule.band_high)],
        "previous_rate": None if decision.previous_rate is None else str(decision.previous_rate),
        "policy_rate": None if decision.policy_rate is None else str(decision.policy_rate),
    }


# --- Publishing ---------------------------------------------------------------------------------------


def publish_rates(
    car_parks: Iterable[CarPark] | None = None, *, days: int = 7, now: datetime | None = None
) -> PublishSummary:
    """Forecast, plan and publish ``days`` x 24 hourly rates for each car park with a rate rule.

    Runs one transaction per chunk of car parks. A chunk whose forecast raises keeps its last
    published rates (logged, listed in ``failed_car_park_ids``); the other chunks still publish.
    """
    started = time.perf_counter()
    now = now or clock.now()
    summary = PublishSummary(model_version=active_model_version())
    for chunk, hour_starts in _chunks_by_local_hours(_with_rules(car_parks), now, days):
        try:
            forecasts = _forecasts([car_park for car_park, _ in chunk], hour_starts)
        except Exception:  # any forecaster failure must leave the last good rates in place
            logger.exception("forecast failed for car parks %s: keeping their last published rates", _ids(chunk))
            summary.failed_car_park_ids.extend(_ids(chunk))
            continue
        summary.rows += _publish_chunk(chunk, hour_starts, forecasts, summary.model_version, now)
        summary.car_parks += len(chunk)
    summary.seconds = time.perf_counter() - started
    logger.info(
        "published %s rates for %s car parks (model v%s) in %.1fs; failed: %s",
        summary.rows,
        summary.car_parks,
        summary.model_version,
        summary.seconds,
        summary.failed_car_park_ids,
    )
    return summary


def _chunks_by_local_hours(
    selected: Sequence[tuple[CarPark, RateRule]], now: datetime, days: int
) -> Iterator[tuple[Sequence[tuple[CarPark, RateRule]], list[datetime]]]:
    """Chunks of car parks sharing a time zone, each with the hour starts to publish for that zone."""
    by_zone: dict[str, list[tuple[CarPark, RateRule]]] = defaultdict(list)
    for car_park, rule in selected:
        by_zone[car_park.timezone].append((car_park, rule))
    for zone_name, in_zone in by_zone.items():
        hour_starts = local_hour_starts(now, days, ZoneInfo(zone_name))
        for offset in range(0, len(in_zone), CHUNK_SIZE):
            yield in_zone[offset : offset + CHUNK_SIZE], hour_starts


def _ids(chunk: Sequence[tuple[CarPark, RateRule]]) -> list[int]:
    return [car_park.pk for car_park, _ in chunk]


def _with_rules(car_parks: Iterable[CarPark] | None) -> list[tuple[CarPark, RateRule]]:
    rules = RateRule.objects.select_related("car_park").filter(car_park__archived_at__isnull=True)
    if car_parks is not None:
        rules = rules.filter(car_park__in=[car_park.pk for car_park in car_parks])
    return [(rule.car_park, rule) for rule in rules.order_by("car_park_id")]


def _publish_chunk(
    chunk: Sequence[tuple[CarPark, RateRule]],
    hour_starts: list[datetime],
    forecasts: Forecasts,
    model_version: int | None,
    now: datetime,
) -> int:
    start = hour_starts[0]
    car_parks = [car_park for car_park, _ in chunk]
    previous = previous_rates_for(car_parks, start)
    overrides = overrides_by_hour([car_park.pk for car_park in car_parks], hour_starts)
    rows: list[tuple[Any, ...]] = []
    for car_park, rule in chunk:
        forecast = forecasts.get(car_park.pk) or [None] * len(hour_starts)
        decisions = plan_car_park(
            car_park,
            rule,
            hour_starts,
            forecast,
            previous=previous.get(car_park.pk, {}),
            overrides=overrides.get(car_park.pk, {}),
        )
        for moment, occupancy, decision in zip(hour_starts, forecast, decisions, strict=True):
            used = occupancy if rule.is_dynamic else None
            reason = reason_of(decision, rule, used, model_version)
            rows.append(
                (
                    car_park.pk,
                    moment,
                    decision.rate,
                    car_park.currency,
                    used,
                    decision.predicted_occupancy_at_rate,
                    reason,
                )
            )
    with transaction.atomic():
        # Delete + insert rather than upsert: same cost on SQLite and PostgreSQL, and a car park
        # whose horizon shrank (days changed) loses its stale tail.
        PublishedRate.objects.filter(car_park__in=car_parks, hour_start__gte=start).delete()
        _insert_rows(rows, now)
    return len(rows)


_COLUMNS = (
    "car_park_id",
    "hour_start",
    "rate",
    "currency",
    "forecast_occupancy",
    "predicted_occupancy",
    "reason",
    "published_at",
)


def _insert_rows(rows: Sequence[tuple[Any, ...]], now: datetime) -> None:
    """Insert published rows with ``executemany``: model instances and ``bulk_create``'s per-field
    preparation cost more than the planning itself at 168k rows. Values go through the backend's
    own adapters, so SQLite and PostgreSQL store exactly what the ORM would.
    """
    ops = connection.ops
    quote = ops.quote_name
    # Identifiers are our own constants and every value is a parameter.
    sql = (
        f"INSERT INTO {quote(PublishedRate._meta.db_table)} ({', '.join(quote(name) for name in _COLUMNS)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
    )
    published_at = ops.adapt_datetimefield_value(now)
    params = [
        (
            car_park_id,
            ops.adapt_datetimefield_value(hour_start),
            ops.adapt_decimalfield_value(rate, 8, 2),
            currency,
            forecast,
            predicted,
            ops.adapt_json_value(reason, None),
            published_at,
        )
        for car_park_id, hour_start, rate, currency, forecast, predicted, reason in rows
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY streams the rows in one round trip: executemany spent most of a 168k-row publish
            # waiting on the database.
            columns = ", ".join(quote(name) for name in _COLUMNS)
            with cursor.cursor.copy(f"COPY {quote(PublishedRate._meta.db_table)} ({columns}) FROM STDIN") as copy:
                for row in params:
                    copy.write_row(row)
            return
        for offset in range(0, len(params), 5000):
            cursor.executemany(sql, params[offset : offset + 5000])


# --- Elasticity from history -------------------------------------------------------------------------


def elasticities_estimate(
    car_parks: Iterable[CarPark] | None = None, *, weeks: int = 8, now: datetime | None = None
) -> int:
    """Re-estimate each rule's elasticity from past published rates and actual occupancy.

    Returns how many rules got an estimate; a rule whose prices did not vary keeps none (and
    plans with the operator's value or the default).
    """
    now = now or clock.now()
    since = now - timedelta(weeks=weeks)
    estimated = 0
    for car_park, rule in _with_rules(car_parks):
        actual = actual_occupancy(car_park, since, now)
        prices, occupancy, groups = [], [], []
        for hour_start, rate in PublishedRate.objects.filter(
            car_park=car_park, hour_start__gte=since, hour_start__lt=now
        ).values_list("hour_start", "rate"):
            if hour_start in actual:
                local = hour_start.astimezone(car_park.zone)
                prices.append(rate)
                occupancy.append(actual[hour_start])
                groups.append((local.weekday(), local.hour))
        result = policy.estimate_elasticity(prices, occupancy, groups)
        rule.estimated_elasticity = result.elasticity if result else None
        rule.estimated_elasticity_stderr = result.stderr if result else None
        rule.estimated_elasticity_n = result.n if result else None
        rule.estimated_at = now
        rule.save(
            update_fields=[
                "estimated_elasticity",
                "estimated_elasticity_stderr",
                "estimated_elasticity_n",
                "estimated_at",
                "updated_at",
            ]
        )
        estimated += result is not None
    return estimated


# Gate counts are measured; imports are someone else's measurement; bookings miss drive-ups.
_SOURCE_PREFERENCE = {"gate": 0, "import": 1, "bookings": 2}


def actual_occupancy(car_park: CarPark, start: datetime, end: datetime) -> dict[datetime, float]:
    """Observed occupancy (0-1) per hour start in ``[start, end)``, best source per hour."""
    best: dict[datetime, tuple[int, float]] = {}
    rows = OccupancyHour.objects.filter(car_park=car_park, hour_start__gte=start, hour_start__lt=end).values_list(
        "hour_start", "source", "occupied", "capacity"
    )
    for hour_start, source, occupied, capacity in rows:
        rank = _SOURCE_PREFERENCE.get(source, 9)
        if capacity and (hour_start not in best or rank < best[hour_start][0]):
            best[hour_start] = (rank, min(1.0, float(occupied) / capacity))
    return {hour_start: value for hour_start, (_, value) in best.items()}


# --- Operator writes: rules and overrides (audited, republished on commit) ----------------------------

RULE_FIELDS = (
    "is_dynamic",
    "base_rate",
    "minimum",
    "maximum",
    "max_daily_change",
    "step",
    "band_low",
    "band_high",
    "elasticity",
    "mode",
)


def rule_snapshot(rule: RateRule) -> dict[str, Any]:
    return {
        name: (str(value) if isinstance(value, Decimal) else value)
        for name in ("car_park_id", *RULE_FIELDS)
        for value in [getattr(rule, name)]
    }


def override_snapshot(override: RateOverride) -> dict[str, Any]:
    return {
        "car_park_id": override.car_park_id,
        "starts_at": override.starts_at.isoformat(),
        "ends_at": override.ends_at.isoformat(),
        "rate": str(override.rate),
        "reason": override.reason,
    }


def default_rule(car_park: CarPark) -> RateRule:
    """An unsaved rule a car park starts from: static at its rate card's (or the platform's) rate."""
    card = RateCard.objects.filter(car_park=car_park).first() or default_rate_card(car_park)
    low, high = settings.PRICING_DEFAULT_BAND
    return RateRule(
        car_park=car_park,
        is_dynamic=False,
        base_rate=card.hourly_rate,
        minimum=card.hourly_rate,
        maximum=card.hourly_rate,
        band_low=Decimal(str(low)),
        band_high=Decimal(str(high)),
    )


def _republish_on_commit(car_park: CarPark) -> None:
    from pricing.tasks import publish_rates_task  # tasks import this module

    car_park_id = car_park.pk
    transaction.on_commit(lambda: publish_rates_task.delay(car_park_ids=[car_park_id]))


@transaction.atomic
def rate_rule_save(*, actor: User, car_park: CarPark, fields: Mapping[str, Any]) -> RateRule:
    """Create or change the car park's rate rule; the model's constraints are the last check.

    Raises ``django.core.exceptions.ValidationError`` (400) when the result breaks a constraint.
    """
    rule = RateRule.objects.select_for_update().filter(car_park=car_park).first()
    before = rule_snapshot(rule) if rule else None
    if rule is None:
        rule = default_rule(car_park)
    for name, value in fields.items():
        if name in RULE_FIELDS:
            setattr(rule, name, value)
    rule.full_clean(exclude=["car_park"])
    rule.save()
    after = rule_snapshot(rule)
    audit_record(
        actor=actor,
        action="raterule.create" if before is None else "raterule.update",
        target=rule,
        before=before,
        after=after,
        company=car_park.company,
    )
    _republish_on_commit(car_park)
    return rule


@transaction.atomic
def rate_override_create(
    *, actor: User, car_park: CarPark, starts_at: datetime, ends_at: datetime, rate: Decimal, reason: str = ""
) -> RateOverride:
    """Fix the rate for ``[starts_at, ends_at)``; it must lie within the rule's minimum and maximum.

    Raises ``Conflict`` without a rate rule, ``InvalidInput`` for a rate outside the bounds.
    """
    rule = RateRule.objects.filter(car_park=car_park).first()
    if rule is None:
        raise Conflict("Set a rate rule (minimum and maximum) before overriding rates.", code="no_rate_rule")
    if not rule.minimum <= rate <= rule.maximum:
        raise InvalidInput(
            "rate",
            f"An override must lie within the rule's minimum {rule.minimum} and maximum {rule.maximum}.",
            code="outside_bounds",
        )
    override = RateOverride(
        car_park=car_park, starts_at=starts_at, ends_at=ends_at, rate=rate, reason=reason, created_by=actor
    )
    override.full_clean(exclude=["car_park", "created_by"])
    override.save()
    audit_record(
        actor=actor,
        action="rateoverride.create",
        target=override,
        before=None,
        after=override_snapshot(override),
        company=car_park.company,
    )
    _republish_on_commit(car_park)
    return override


@transaction.atomic
def rate_override_delete(*, actor: User, override: RateOverride) -> None:
    car_park = override.car_park
    before = override_snapshot(override)
    audit_record(
        actor=actor, action="rateoverride.delete", target=override, before=before, after=None, company=car_park.company
    )
    override.delete()
    _republish_on_commit(car_park)
