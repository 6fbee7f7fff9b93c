"""Training with little history (a fresh install): the model copes, a run is refused cleanly."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import cast

import numpy as np
import pytest

from backend.carparks.models import CarPark
from pricing import training
from pricing.forecast_service import active_model
from pricing.forecasting import CarParkSeries, ForecastRequest, NotEnoughHistory, OccupancyForecaster, evaluate_forecast
from pricing.models import DemandModelStatus, DemandModelVersion
from tests.factories import CarParkFactory
from tests.pricing.occupancy_data import synthetic_rates, write_history

START = date(2026, 2, 16)
NOW = datetime(2026, 2, 26, 12, tzinfo=UTC)  # after 10 days of synthetic history from 16 February

pytestmark = pytest.mark.usefixtures("model_sandbox")


def synthetic_series(code: str, days: int, *, seed: int) -> CarParkSeries:
    rows = synthetic_rates(days, seed=seed, start=START)
    hours = np.array([np.datetime64(datetime(d.year, d.month, d.day, h), "h") for d, h, _ in rows])  # noqa: DTZ001
    return CarParkSeries.from_arrays(code, 200, "Europe/London", hours, [rate for _, _, rate in rows])


@pytest.mark.django_db
def test_training_on_ten_days_of_history_is_rejected_as_not_enough_history() -> None:
    serving = DemandModelVersion.objects.create(version=1, status="promoted", is_active=True, promoted_at=NOW)
    car_parks = [cast(CarPark, CarParkFactory(standard_bays=190 + 100 * i)) for i in range(2)]
    write_history(car_parks, start=START, days=10)

    row = training.demand_model_train(holdout_weeks=2, seed=0)

    row.refresh_from_db()
    assert (row.version, row.status, row.is_active) == (2, DemandModelStatus.REJECTED, False)
    assert row.error == "not enough history: 10 days, need 42 (the hold-out covers the whole data set)"
    assert row.metrics == {"history_days": 10, "history_days_needed": 42, "car_parks": 2}
    assert row.finished_at == NOW
    assert row.artefact_path == ""
    serving.refresh_from_db()
    assert serving.is_active
    assert DemandModelVersion.objects.get(is_active=True).pk == serving.pk


@pytest.mark.django_db
def test_training_on_ten_days_without_a_serving_model_leaves_none_active() -> None:
    write_history([cast(CarPark, CarParkFactory())], start=START, days=10)

    row = training.demand_model_train()

    assert row.status == DemandModelStatus.REJECTED
    assert row.error.startswith("not enough history: 10 days, need 42")
    assert active_model() is None


def test_evaluation_refuses_history_without_four_training_weeks_before_fitting() -> None:
    series = [synthetic_series(f"P{i}", 30, seed=i) for i in range(2)]

    with pytest.raises(NotEnoughHistory) as refused:
        evaluate_forecast(series, holdout_days=14)

    assert (refused.value.days, refused.value.needed) == (30, 42)
    assert (
        str(refused.value) == "not enough history: 30 days, need 42 (no car park has 28 training days; the most is 16)"
    )


def test_model_fits_and_forecasts_from_ten_days_of_history() -> None:
    # Ten days: the 14-, 21- and 28-day lags and the week-before trend have no value in any
    # training hour; the fit used to crash on those empty inputs.
    series = [synthetic_series(f"P{i}", 10, seed=i) for i in range(2)]

    model = OccupancyForecaster(tz="Europe/London", seed=0).fit(series)
    hours = [datetime(2026, 2, 26, hour) for hour in range(7, 19)]  # noqa: DTZ001 (local wall clock)
    forecasts = model.predict(series, [ForecastRequest("P0", hours), ForecastRequest("P1", hours)])

    assert "lag28_vs_anchor" in model.feature_names
    for forecast in forecasts:
        assert forecast.rate.shape == (12,)
        assert np.isfinite(forecast.rate).all()
        assert ((forecast.rate >= 0) & (forecast.rate <= 1)).all()


def test_evaluation_at_exactly_four_training_weeks_scores_the_model() -> None:
    # 42 days = 28 training days + 14 hold-out days: the 28-day lag is still empty in training.
    series = [synthetic_series(f"P{i}", 42, seed=i) for i in range(2)]

    result = evaluate_forecast(series, holdout_days=14, seed=0)

    assert result.not_scored == {}
    assert result.hours_scored == 2 * 14 * 12
    assert 0 < result.ratio < 1
