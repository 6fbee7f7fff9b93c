"""Demand model registry: training records a version; promoted only if it beats the baseline."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, date, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from backend.carparks.models import CarPark
from pricing import tasks, training
from pricing.forecast_service import active_model
from pricing.models import DemandModelStatus, DemandModelVersion
from tests.factories import CarParkFactory
from tests.pricing.occupancy_data import write_history

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)  # after 7 weeks of synthetic history from 5 January

pytestmark = pytest.mark.usefixtures("model_sandbox")


@pytest.fixture
def history(db: Any) -> list[CarPark]:
    car_parks = [CarParkFactory(standard_bays=190 + 100 * i) for i in range(2)]
    write_history(car_parks, start=date(2026, 1, 5), days=49)
    return car_parks


def _forced_ratio(monkeypatch: pytest.MonkeyPatch, ratio: float) -> None:
    """Make the evaluation report ``ratio`` (the real model is still fitted and scored)."""
    real = training.evaluate_forecast

    def evaluate(*args: Any, **kwargs: Any) -> Any:
        return dataclasses.replace(real(*args, **kwargs), ratio=ratio)

    monkeypatch.setattr(training, "evaluate_forecast", evaluate)


@pytest.mark.django_db
def test_training_promotes_a_model_that_beats_the_baseline(history: list[CarPark]) -> None:
    row = training.demand_model_train(holdout_weeks=2, seed=0)

    row.refresh_from_db()
    assert row.status == DemandModelStatus.PROMOTED
    assert row.is_active
    assert row.promoted_at == NOW
    assert row.version == 1
    assert row.metrics["ratio"] < 1
    assert row.metrics["ratio"] == pytest.approx(row.metrics["mae"] / row.metrics["baseline_mae"])
    assert row.metrics["hours_scored"] == 2 * 14 * 12
    assert set(row.metrics["per_car_park"]) == {str(cp.pk) for cp in history}
    assert {"anchor", "yday_wow", "log_capacity"} <= set(row.features)
    assert row.train_start == datetime(2026, 1, 5, 7, tzinfo=UTC)
    assert row.train_end == datetime(2026, 2, 22, 19, tzinfo=UTC)
    assert row.params == {
        "holdout_weeks": 2,
        "seed": 0,
        "tz": "Europe/London",
        "country": "GB",
        "subdiv": "ENG",
    }
    artefact = Path(row.artefact_path)
    assert artefact.parent == Path(settings.VAR_DIR) / "models"
    assert hashlib.sha256(artefact.read_bytes()).hexdigest() == row.artefact_sha256
    served = active_model()
    assert served is not None
    assert served[0].pk == row.pk


@pytest.mark.django_db
def test_training_rejects_a_model_that_does_not_beat_the_baseline(
    history: list[CarPark], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = training.demand_model_train()
    _forced_ratio(monkeypatch, 1.02)

    row = training.demand_model_train()

    assert (row.version, row.status, row.is_active) == (2, DemandModelStatus.REJECTED, False)
    assert row.metrics["ratio"] == 1.02
    assert row.artefact_path == ""  # a rejected model is not refitted or saved
    good.refresh_from_db()
    assert good.is_active
    assert DemandModelVersion.objects.get(is_active=True).pk == good.pk


@pytest.mark.django_db
def test_failed_training_keeps_the_last_good_model(history: list[CarPark], monkeypatch: pytest.MonkeyPatch) -> None:
    good = training.demand_model_train()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(training, "evaluate_forecast", broken)
    row = training.demand_model_train()

    row.refresh_from_db()
    assert (row.version, row.status, row.is_active) == (2, DemandModelStatus.FAILED, False)
    assert row.error == "RuntimeError: disk full"
    assert row.finished_at == NOW
    served = active_model()
    assert served is not None
    assert served[0].pk == good.pk


@pytest.mark.django_db
def test_training_without_history_fails_and_records_why() -> None:
    row = training.demand_model_train()

    assert row.status == DemandModelStatus.FAILED
    assert "no occupancy history" in row.error
    assert active_model() is None


@pytest.mark.django_db
def test_only_one_model_can_be_active() -> None:
    DemandModelVersion.objects.create(version=1, status="promoted", is_active=True, promoted_at=NOW)
    with pytest.raises(IntegrityError), transaction.atomic():
        DemandModelVersion.objects.create(version=2, status="promoted", is_active=True, promoted_at=NOW)
    with pytest.raises(IntegrityError), transaction.atomic():
        DemandModelVersion.objects.create(version=3, status="rejected", is_active=True, promoted_at=NOW)
    assert DemandModelVersion.objects.count() == 1


@pytest.mark.django_db
def test_nightly_task_is_scheduled_and_records_a_version(
    history: list[CarPark], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["pricing-train-demand-model"]
    assert entry["task"] == "pricing.tasks.train_demand_model"
    _forced_ratio(monkeypatch, 1.5)  # keep the task quick: no refit

    summary = tasks.train_demand_model.delay(holdout_weeks=2).get()

    assert summary == {"version": 1, "status": "rejected", "ratio": 1.5, "error": ""}


@pytest.mark.django_db
def test_command_prints_the_version_and_fails_loudly() -> None:
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="training failed"):
        call_command("train_pricing_model", "--json", stdout=out, stderr=err)

    summary = json.loads(out.getvalue())
    assert summary["status"] == "failed"
    assert summary["version"] == 1
    assert "loading history" in err.getvalue()
