"""Pricing's periodic work: thin Celery tasks that take ids and call a service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from backend.carparks.models import CarPark
from pricing.rates import elasticities_estimate, publish_rates


@shared_task
def publish_rates_task(car_park_ids: list[int] | None = None, days: int | None = None) -> dict[str, object]:
    """Republish the next ``days`` of hourly rates (all car parks with a rule, or the given ones).

    Safe to run twice: each run replaces future hours and leaves past ones alone.
    """
    car_parks = None if car_park_ids is None else list(CarPark.objects.filter(pk__in=car_park_ids))
    summary = publish_rates(car_parks, days=days or settings.PRICING_PUBLISH_DAYS)
    return {
        "car_parks": summary.car_parks,
        "rows": summary.rows,
        "failed_car_park_ids": summary.failed_car_park_ids,
        "model_version": summary.model_version,
    }


@shared_task
def estimate_elasticities_task() -> int:
    """Re-estimate each rate rule's price elasticity from the published rates and actual occupancy."""
    return elasticities_estimate()


@shared_task
def train_demand_model(holdout_weeks: int = 2, seed: int = 0) -> dict[str, object]:
    """Nightly: train, evaluate against the seasonal-naive baseline, promote only if better.

    Never raises for a training problem: a failed run is recorded (status ``failed``) and the
    active model keeps serving. Running it twice just records two versions.
    """
    from pricing.training import demand_model_train

    row = demand_model_train(holdout_weeks=holdout_weeks, seed=seed)
    return {"version": row.version, "status": row.status, "ratio": row.metrics.get("ratio"), "error": row.error}
