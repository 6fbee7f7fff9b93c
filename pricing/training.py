"""Training, evaluating and promoting the demand (occupancy) model; loading its artefact.

One run (:func:`demand_model_train`) records a :class:`DemandModelVersion`:

1. a ``candidate`` row is written first, so even a crash leaves a trace;
2. the model is evaluated on the last ``holdout_weeks`` weeks against the seasonal-naive baseline
   (fitted on the weeks before, forecasting each hour from 24 h before it);
3. if it beats the baseline (ratio < 1) it is refitted on ALL history, saved with joblib under
   ``VAR_DIR/models/`` (path and SHA-256 recorded) and promoted: it becomes the one active model;
   otherwise it is ``rejected`` and the active model stays;
4. any exception marks the run ``failed`` with the error; the active model keeps serving.

Too little history to evaluate (a fresh install: fewer than ``holdout_weeks`` + 4 weeks, see
:class:`~pricing.forecasting.NotEnoughHistory`) is not a failure but an expected state that fixes
itself as data accumulates: the run is ``rejected`` without fitting anything, ``error`` says
``"not enough history: N days, need M ..."`` and ``metrics`` holds ``history_days`` and
``history_days_needed``. The nightly run then stops reporting failures for it. (``rejected``,
not a new ``skipped`` status: both mean "not promoted, the active model stays", and callers that
alert on ``failed`` keep meaning a real error.)
"""

from __future__ import annotations

import logging
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from backend.carparks.models import CarPark
from backend.core import clock
from backend.core.files import file_sha256
from pricing.forecasting import (
    CarParkSeries,
    EvaluationResult,
    NotEnoughHistory,
    OccupancyForecaster,
    evaluate_forecast,
)
from pricing.history import history_by_car_park, in_one_zone
from pricing.models import DemandModelStatus, DemandModelVersion

__all__ = ["ARTEFACT_FORMAT", "ArtefactError", "artefact_load", "demand_model_train"]

logger = logging.getLogger(__name__)

ARTEFACT_FORMAT = 1
# Sub-national holiday calendars we know for a company country; others use national holidays.
_SUBDIVISIONS = {"GB": "ENG"}

Progress = Callable[[str], None]


class ArtefactError(Exception):
    """The model file is missing, altered (SHA-256 mismatch) or not a model of this format."""


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)
    else:  # a worker has no one watching: the log is the progress report
        logger.info("demand model: %s", message)


def _start(params: dict[str, Any]) -> DemandModelVersion:
    with transaction.atomic():
        latest = DemandModelVersion.objects.aggregate(latest=Max("version"))["latest"] or 0
        return DemandModelVersion.objects.create(
            version=latest + 1,
            label=f"v{latest + 1} {clock.now():%Y-%m-%d}",
            status=DemandModelStatus.CANDIDATE,
            params=params,
        )


def _country(car_park_ids: list[int]) -> str:
    """Most common company country of the car parks (public holidays), GB if unknown."""
    countries = Counter(CarPark.objects.filter(pk__in=car_park_ids).values_list("company__country", flat=True))
    return max(sorted(countries), key=lambda c: countries[c]) if countries else "GB"


def _utc_range(series: list[CarParkSeries]) -> tuple[datetime, datetime]:
    first = min(s.utc_hour.min() for s in series)
    last = max(s.utc_hour.max() for s in series) + np.timedelta64(1, "h")
    as_dt = [v.astype("datetime64[s]").astype(datetime).replace(tzinfo=UTC) for v in (first, last)]
    return as_dt[0], as_dt[1]


def _metrics(result: EvaluationResult, series: list[CarParkSeries]) -> dict[str, Any]:
    summary = result.to_dict()
    summary.pop("features", None)  # kept in their own field
    summary.pop("data_handling", None)
    summary["car_parks"] = len(series)
    summary["train_hours"] = int(sum(len(s.local_hour) for s in series))
    return summary


def _save_artefact(model: OccupancyForecaster, version: int) -> tuple[str, str]:
    """Write the fitted model; return (path, SHA-256 of the file)."""
    folder = Path(settings.VAR_DIR) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"demand-model-v{version}.joblib"
    joblib.dump({"format": ARTEFACT_FORMAT, "version": version, "model": model}, path, compress=3)
    return str(path), file_sha256(path)


def artefact_load(row: DemandModelVersion) -> OccupancyForecaster:
    """Load a version's model after checking the file's SHA-256 against the recorded one.

    joblib files are pickles, so an altered file is refused before it is unpickled.
    Raises :class:`ArtefactError`.
    """
    path = Path(row.artefact_path)
    if not row.artefact_path or not path.is_file():
        raise ArtefactError(f"model v{row.version}: artefact {row.artefact_path!r} not found")
    if file_sha256(path) != row.artefact_sha256:
        raise ArtefactError(f"model v{row.version}: artefact {path} does not match its recorded SHA-256")
    payload = joblib.load(path)
    if not isinstance(payload, dict) or payload.get("format") != ARTEFACT_FORMAT:
        raise ArtefactError(f"model v{row.version}: unknown artefact format")
    model = payload["model"]
    if not isinstance(model, OccupancyForecaster):
        raise ArtefactError(f"model v{row.version}: artefact holds {type(model).__name__}")
    return model


def _promote(row: DemandModelVersion) -> None:
    """Make ``row`` the one active model (the old one is switched off first: partial unique index)."""
    with transaction.atomic():
        current = list(DemandModelVersion.objects.select_for_update().filter(is_active=True))
        for old in current:
            old.is_active = False
            old.save(update_fields=["is_active"])
        row.status = DemandModelStatus.PROMOTED
        row.is_active = True
        row.promoted_at = clock.now()
        row.finished_at = row.promoted_at
        row.save()


def _train(row: DemandModelVersion, *, holdout_weeks: int, seed: int, progress: Progress | None) -> None:
    """The body of a run; raises on any problem (the caller records the failure)."""
    _say(progress, f"v{row.version}: loading history")
    by_id = history_by_car_park(until=clock.now())  # never future rows (e.g. booked hours to come)
    if not by_id:
        raise ValueError("no occupancy history to train on")
    tz, series = in_one_zone([by_id[k] for k in sorted(by_id)])
    country = _country(list(by_id))
    subdiv = _SUBDIVISIONS.get(country)
    row.params = {**row.params, "tz": tz, "country": country, "subdiv": subdiv}
    row.train_start, row.train_end = _utc_range(series)
    hours = sum(len(s.local_hour) for s in series)
    _say(progress, f"v{row.version}: {len(series)} car parks, {hours} hours; evaluating on {holdout_weeks} weeks")
    try:
        result = evaluate_forecast(series, holdout_days=7 * holdout_weeks, seed=seed, country=country, subdiv=subdiv)
    except NotEnoughHistory as short:
        row.status = DemandModelStatus.REJECTED
        row.error = str(short)
        row.metrics = {"history_days": short.days, "history_days_needed": short.needed, "car_parks": len(series)}
        row.finished_at = clock.now()
        row.save()
        _say(progress, f"v{row.version}: rejected ({short}); the active model stays")
        return
    row.features = list(result.feature_names)
    row.metrics = _metrics(result, series)
    _say(
        progress,
        f"v{row.version}: MAE {result.mae:.4f} vs baseline {result.baseline_mae:.4f} "
        f"(ratio {result.ratio:.3f}, {result.hours_scored} hours)",
    )
    if not result.ratio < 1:
        row.status = DemandModelStatus.REJECTED
        row.finished_at = clock.now()
        row.save()
        _say(progress, f"v{row.version}: rejected (does not beat the baseline); the active model stays")
        return
    _say(progress, f"v{row.version}: refitting on all history")
    model = OccupancyForecaster(tz=tz, country=country, subdiv=subdiv, seed=seed).fit(series)
    row.artefact_path, row.artefact_sha256 = _save_artefact(model, row.version)
    _promote(row)
    _say(progress, f"v{row.version}: promoted ({row.artefact_path})")


def demand_model_train(
    *, holdout_weeks: int = 2, seed: int = 0, progress: Progress | None = None
) -> DemandModelVersion:
    """Train, evaluate and (if it beats the baseline) promote a new demand model version.

    Never raises for a training problem: the returned row says ``promoted``, ``rejected`` (did not
    beat the baseline, or not enough history: then ``error`` says why) or ``failed`` (with
    ``error``). Raises ValueError only for invalid arguments.
    """
    if holdout_weeks < 1:
        raise ValueError("holdout_weeks must be at least 1")
    row = _start({"holdout_weeks": holdout_weeks, "seed": seed})
    try:
        _train(row, holdout_weeks=holdout_weeks, seed=seed, progress=progress)
    except Exception as exc:
        # Any failure, including bad data or a full disk, must leave the serving model alone.
        logger.exception("demand model v%s failed", row.version)
        row.status = DemandModelStatus.FAILED
        row.is_active = False
        row.error = "".join(traceback.format_exception_only(exc)).strip()[:5000]
        row.finished_at = clock.now()
        row.save()
        _say(progress, f"v{row.version}: failed: {row.error}")
    return row
