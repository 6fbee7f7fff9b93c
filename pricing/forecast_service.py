"""Occupancy forecasts from the active demand model, in bulk.

:func:`forecast_occupancy` answers for many car parks and hours at once: one query for all the
history it needs, one model call per time zone, no per-car-park work outside numpy. The model
artefact is loaded once per version and kept in memory (per process); a newly promoted version
is picked up on the next call.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from backend.carparks.models import CarPark
from backend.core import clock
from pricing.forecasting import CarParkSeries, ForecastRequest, OccupancyForecaster
from pricing.history import history_by_car_park, utc_hours_to_local
from pricing.models import DemandModelVersion
from pricing.training import ArtefactError, artefact_load

__all__ = ["active_model", "clear_model_cache", "forecast_occupancy"]

logger = logging.getLogger(__name__)

# Extra days of history beyond what the features reach, so the car park's running mean (a
# feature over all loaded history) rests on more than the lookback window itself.
_EXTRA_HISTORY_DAYS = 14

_cache_lock = threading.Lock()
_cache: dict[tuple[int, str], OccupancyForecaster] = {}


def clear_model_cache() -> None:
    """Forget loaded models (tests; a process normally keeps the active one)."""
    with _cache_lock:
        _cache.clear()


def active_model() -> tuple[DemandModelVersion, OccupancyForecaster] | None:
    """The active version and its fitted model, or None if there is none or it cannot be loaded.

    A broken artefact (missing, altered) is logged and treated as no model, so forecasts degrade
    to "unknown" instead of failing the caller.
    """
    row = DemandModelVersion.objects.filter(is_active=True).first()
    if row is None:
        return None
    key = (row.pk, row.artefact_sha256)
    with _cache_lock:
        model = _cache.get(key)
        if model is None:
            try:
                model = artefact_load(row)
            except ArtefactError:
                logger.exception("active demand model v%s cannot be loaded", row.version)
                return None
            _cache.clear()  # only the active version is needed; drop the one it replaced
            _cache[key] = model
    return row, model


def _utc_hours(hour_starts: Sequence[datetime]) -> np.ndarray:
    """Aware datetimes as UTC ``datetime64[h]`` (truncated to the hour). Raises ValueError if naive."""
    values = []
    for moment in hour_starts:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"hour starts must be timezone-aware, got {moment!r}")
        values.append(moment.astimezone(UTC).replace(tzinfo=None))
    return np.array(values, dtype="datetime64[h]")


def forecast_occupancy(car_parks: Sequence[CarPark], hour_starts: Sequence[datetime]) -> dict[int, list[float | None]]:
    """Forecast occupancy RATE (occupied / capacity, 0..1) per car park id and hour.

    ``hour_starts`` are aware datetimes (UTC instants of hour starts); the result lists one value
    per hour, in the same order, ``None`` where the model has no usable history for that car park
    (a new car park) or there is no active model. History is read from the database up to now,
    for all car parks in one query; each forecast uses only history at least 24 h older than its
    hour. Raises ValueError for a naive datetime.
    """
    utc = _utc_hours(hour_starts)
    result: dict[int, list[float | None]] = {cp.pk: [None] * len(utc) for cp in car_parks}
    if not result or not len(utc):
        return result
    loaded = active_model()
    if loaded is None:
        return result
    _, model = loaded
    first = utc.min().astype("datetime64[s]").astype(datetime).replace(tzinfo=UTC)
    since = first - timedelta(days=model.config.features.lookback_days + _EXTRA_HISTORY_DAYS)
    history = history_by_car_park(car_park_ids=list(result), since=since, until=clock.now())
    by_zone: dict[str, list[int]] = defaultdict(list)
    seen: set[int] = set()
    for cp in car_parks:
        if cp.pk in history and cp.pk not in seen:
            seen.add(cp.pk)
            by_zone[cp.timezone].append(cp.pk)
    for tz, ids in by_zone.items():
        rates = _forecast_zone(model, tz, [history[i] for i in ids], utc_hours_to_local(utc, tz))
        for cp_id, values in zip(ids, rates, strict=True):
            result[cp_id] = [None if np.isnan(v) else float(v) for v in values]
    return result


def _forecast_zone(
    model: OccupancyForecaster, tz: str, history: list[CarParkSeries], local_hours: np.ndarray
) -> list[np.ndarray]:
    """Rates for every series in one zone at ``local_hours`` (one model call)."""
    # The features are local wall-clock time, so one fitted model serves every zone; only the
    # zone used for the UTC cut-off grid changes (a shallow copy shares the fitted estimators).
    zoned = model if model.tz == tz else copy.copy(model)
    zoned.tz = tz
    requests = [ForecastRequest(code=s.code, hours=local_hours) for s in history]
    return [f.rate for f in zoned.predict(history, requests)]
