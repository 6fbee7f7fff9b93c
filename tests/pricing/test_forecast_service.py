"""forecast_occupancy: the active model over database history, in bulk."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import joblib
import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from threadpoolctl import threadpool_limits

from backend.carparks.models import CarPark
from pricing import forecast_service, training
from pricing.forecast_service import clear_model_cache, forecast_occupancy
from pricing.forecasting import CarParkSeries, OccupancyForecaster
from pricing.models import DemandModelVersion
from pricing.services import occupancy_record
from tests.factories import CarParkFactory
from tests.pricing.occupancy_data import synthetic_rates, write_history

NOW = datetime(2026, 2, 23, 6, tzinfo=UTC)  # Monday morning after 7 weeks of history
TARGETS = [datetime(2026, 2, 24, 0, tzinfo=UTC) + timedelta(hours=h) for h in range(48)]  # Tue and Wed


@pytest.fixture(scope="session")
def artefact(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A model fitted once on synthetic series (no database), saved as training saves it."""
    series = []
    for seed, capacity in ((0, 200), (1, 300)):
        rates = synthetic_rates(49, seed=seed, start=date(2026, 1, 5))
        hours = [datetime(d.year, d.month, d.day, h) for d, h, _ in rates]  # noqa: DTZ001 - local wall clock
        series.append(
            CarParkSeries.from_arrays(f"s{seed}", capacity, "Europe/London", hours, [r * capacity for *_, r in rates])
        )
    with threadpool_limits(limits=1):
        model = OccupancyForecaster(tz="Europe/London", seed=0).fit(series)
    path = tmp_path_factory.mktemp("models") / "demand-model-test.joblib"
    joblib.dump({"format": training.ARTEFACT_FORMAT, "version": 1, "model": model}, path)
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    clear_model_cache()
    with threadpool_limits(limits=1), time_machine.travel(NOW, tick=False):
        yield
    clear_model_cache()


def _activate(artefact: tuple[str, str], version: int = 1) -> DemandModelVersion:
    DemandModelVersion.objects.filter(is_active=True).update(is_active=False)
    path, sha = artefact
    return DemandModelVersion.objects.create(
        version=version, status="promoted", is_active=True, promoted_at=NOW, artefact_path=path, artefact_sha256=sha
    )


@pytest.fixture
def car_parks(db: Any) -> list[CarPark]:
    """Two car parks with 7 weeks of history (one in Paris) and a new one without any."""
    with_history = [CarParkFactory(), CarParkFactory(timezone="Europe/Paris")]
    write_history(with_history, start=date(2026, 1, 5), days=49)
    return [*with_history, CarParkFactory(name="Brand new")]


@pytest.mark.django_db
def test_no_active_model_gives_none_everywhere(car_parks: list[CarPark]) -> None:
    result = forecast_occupancy(car_parks, TARGETS)

    assert result == {cp.pk: [None] * len(TARGETS) for cp in car_parks}


@pytest.mark.django_db
def test_forecasts_rates_for_car_parks_with_history_and_none_for_new_ones(
    car_parks: list[CarPark], artefact: tuple[str, str]
) -> None:
    _activate(artefact)
    london, paris, new = car_parks

    result = forecast_occupancy(car_parks, TARGETS)

    assert list(result) == [london.pk, paris.pk, new.pk]
    assert result[new.pk] == [None] * len(TARGETS)
    for car_park in (london, paris):
        values = result[car_park.pk]
        assert len(values) == len(TARGETS)
        # The history covers 07:00-18:00 local: open hours are forecast (nights are the model's call).
        local_hours = [t.astimezone(car_park.zone).hour for t in TARGETS]
        known = [v for v, h in zip(values, local_hours, strict=True) if 8 <= h <= 17]
        assert all(v is not None and 0.0 <= v <= 1.0 for v in known)
        midday = values[local_hours.index(13)]
        early = values[local_hours.index(8)]
        assert midday is not None
        assert early is not None
        assert midday > early


@pytest.mark.django_db
def test_query_count_does_not_grow_with_car_parks(car_parks: list[CarPark], artefact: tuple[str, str]) -> None:
    _activate(artefact)
    forecast_occupancy(car_parks[:1], TARGETS)  # load the model once
    with CaptureQueriesContext(connection) as one:
        forecast_occupancy(car_parks[:1], TARGETS)
    with CaptureQueriesContext(connection) as three:
        forecast_occupancy(car_parks, TARGETS)

    assert len(one) == len(three) == 3  # active version, history, car-park zones


@pytest.mark.django_db
def test_model_is_loaded_once_per_version(
    car_parks: list[CarPark], artefact: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[int] = []
    real = forecast_service.artefact_load

    def counting(row: DemandModelVersion) -> OccupancyForecaster:
        loads.append(row.version)
        return real(row)

    monkeypatch.setattr(forecast_service, "artefact_load", counting)
    _activate(artefact, version=1)
    forecast_occupancy(car_parks, TARGETS)
    forecast_occupancy(car_parks, TARGETS)
    _activate(artefact, version=2)
    forecast_occupancy(car_parks, TARGETS)

    assert loads == [1, 2]


@pytest.mark.django_db
def test_altered_artefact_is_refused(
    car_parks: list[CarPark], artefact: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _activate((artefact[0], "0" * 64))

    with caplog.at_level(logging.ERROR, logger="pricing.forecast_service"):
        result = forecast_occupancy(car_parks, TARGETS)

    assert all(v is None for values in result.values() for v in values)
    assert "does not match its recorded SHA-256" in caplog.text


@pytest.mark.django_db
def test_future_rows_are_not_read_as_history(car_parks: list[CarPark], artefact: tuple[str, str]) -> None:
    _activate(artefact)
    london = car_parks[0]
    before = forecast_occupancy([london], TARGETS)[london.pk]
    # Booked occupancy for hours still to come must not count as what happened.
    occupancy_record(
        car_park_id=london.pk, source="gate", hours=dict.fromkeys(TARGETS[:24], 0), capacity=london.total_capacity
    )

    assert forecast_occupancy([london], TARGETS)[london.pk] == before


@pytest.mark.django_db
def test_naive_hours_are_refused(car_parks: list[CarPark]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        forecast_occupancy(car_parks, [datetime(2026, 2, 24, 9)])  # noqa: DTZ001 - the naive value is the point


@pytest.mark.django_db
def test_values_follow_the_order_of_the_hours(car_parks: list[CarPark], artefact: tuple[str, str]) -> None:
    _activate(artefact)
    london = car_parks[0]

    forward = forecast_occupancy([london], TARGETS)[london.pk]
    backward = forecast_occupancy([london], TARGETS[::-1])[london.pk]

    assert backward == forward[::-1]
