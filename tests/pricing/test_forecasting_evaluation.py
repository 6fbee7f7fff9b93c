"""Hold-out evaluation: baseline fallback, protocol details, the Birmingham target, determinism."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from pricing.forecasting import CarParkSeries, evaluate_forecast, plot_forecasts, read_occupancy_csv
from pricing.forecasting.features import build_panel, seasonal_naive
from tests.shared_data import BIRMINGHAM

from .test_forecasting_model import TZ, synthetic_series

needs_data = pytest.mark.skipif(not BIRMINGHAM.exists(), reason="Birmingham CSV not available")


def _drop_hours(series: CarParkSeries, hours: list[str]) -> CarParkSeries:
    keep = ~np.isin(series.local_hour, np.array(hours, dtype="datetime64[h]"))
    return CarParkSeries(
        series.code, series.capacity, series.tz, series.local_hour[keep], series.occupied[keep], series.n_readings[keep]
    )


def test_seasonal_naive_falls_back_to_most_recent_same_weekday_hour() -> None:
    s = synthetic_series("P", date(2016, 10, 3), 28)  # Mon 3 Oct .. Sun 30 Oct
    # Target Mon 24 Oct 10:00: last week's hour (17 Oct) is missing, and so is 10 Oct's.
    s = _drop_hours(s, ["2016-10-17T10", "2016-10-10T10"])
    panel = build_panel([s], tz=TZ)
    naive = seasonal_naive(panel.rate, max_weeks=10)
    d, h = panel.day_index(np.array(["2016-10-24T10", "2016-10-24T11", "2016-10-09T10"], dtype="datetime64[h]"))
    rate_at = dict(zip(s.local_hour.astype(str), s.rate, strict=True))
    assert naive[0, d[0], h[0]] == rate_at["2016-10-03T10"]  # three weeks back
    assert naive[0, d[1], h[1]] == rate_at["2016-10-17T11"]  # normal case: one week back
    assert np.isnan(naive[0, d[2], h[2]])  # first week: nothing a week or more before


def test_evaluate_protocol_on_synthetic_data() -> None:
    first = date(2016, 9, 5)  # Monday; 49 days -> last day Sun 23 Oct
    parks = [synthetic_series(f"P{i}", first, 49, seed=i) for i in range(3)]
    # Missing baseline hour: the hold-out starts Mon 17 Oct; drop Mon 10 Oct 12:00 of P0.
    parks[0] = _drop_hours(parks[0], ["2016-10-10T12"])
    # Short history: P9 only starts 10 days before the hold-out -> not scored.
    parks.append(synthetic_series("P9", date(2016, 10, 7), 17, seed=9))
    result = evaluate_forecast(parks, holdout_days=7, seed=0)
    assert (result.holdout_start, result.holdout_end) == ("2016-10-17", "2016-10-23")
    assert set(result.per_car_park) == {"P0", "P1", "P2"}
    assert "P9" in result.not_scored
    assert "10 training days" in result.not_scored["P9"]
    # 7 days x 9 hours per scored car park, every one with a baseline (P0 via the fallback).
    assert result.hours_scored == 3 * 63
    assert all(p.hours_scored == 63 for p in result.per_car_park.values())
    f = result.forecasts["P0"]
    i = int(np.flatnonzero(f["local_hour"] == np.datetime64("2016-10-17T12"))[0])
    p0 = dict(zip(parks[0].local_hour.astype(str), parks[0].rate, strict=True))
    assert f["baseline"][i] == p0["2016-10-03T12"]
    # Totals are over exactly the scored hours of model and baseline.
    actual = np.concatenate([result.forecasts[k]["actual"] for k in result.per_car_park])
    model = np.concatenate([result.forecasts[k]["forecast"] for k in result.per_car_park])
    base = np.concatenate([result.forecasts[k]["baseline"] for k in result.per_car_park])
    assert result.mae == pytest.approx(np.mean(np.abs(model - actual)))
    assert result.baseline_mae == pytest.approx(np.mean(np.abs(base - actual)))
    assert result.ratio == pytest.approx(result.mae / result.baseline_mae)


def test_holdout_values_are_used_only_when_24h_old() -> None:
    """Scrambling hold-out actuals after a day changes no forecast for that day."""
    parks = [synthetic_series(f"P{i}", date(2016, 9, 5), 49, seed=i) for i in range(3)]
    day = np.datetime64("2016-10-19")
    ref = evaluate_forecast(parks, holdout_days=7, seed=0)
    rng = np.random.default_rng(3)
    scrambled = []
    for s in parks:
        occ = s.occupied.copy()
        later = s.local_hour >= (day + 1).astype("datetime64[h]")
        occ[later] = rng.uniform(0, s.capacity, later.sum())
        scrambled.append(CarParkSeries(s.code, s.capacity, s.tz, s.local_hour, occ, s.n_readings))
    other = evaluate_forecast(scrambled, holdout_days=7, seed=0)
    for code in ref.forecasts:
        a, b = ref.forecasts[code], other.forecasts[code]
        # Same day: a forecast for day D only sees D-1 and older.
        on_day = a["local_hour"].astype("datetime64[D]") == day
        np.testing.assert_array_equal(a["forecast"][on_day], b["forecast"][on_day])
        np.testing.assert_array_equal(a["baseline"][on_day], b["baseline"][on_day])


@pytest.fixture(scope="module")
def birmingham_result():
    return evaluate_forecast(read_occupancy_csv(BIRMINGHAM, tz=TZ), holdout_days=14, seed=0)


@needs_data
def test_birmingham_beats_seasonal_naive(birmingham_result, tmp_path: Path) -> None:
    result = birmingham_result
    assert result.ratio <= 0.90
    assert result.hours_scored > 3000
    assert (result.holdout_start, result.holdout_end) == ("2016-12-06", "2016-12-19")
    assert set(result.not_scored) == {"BHMBRTARC01", "NIA North"}
    assert len(result.per_car_park) == 28
    assert all(p.train_days >= 28 for p in result.per_car_park.values())
    assert sum(p.hours_scored for p in result.per_car_park.values()) == result.hours_scored
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["ratio"] == result.ratio
    assert "373" in payload["data_handling"]
    assert "216" in payload["data_handling"]
    png = plot_forecasts(result, tmp_path / "forecast.png", car_parks=["BHMBCCMKT01", "Bull Ring"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_data
def test_birmingham_evaluation_is_deterministic(birmingham_result) -> None:
    again = evaluate_forecast(read_occupancy_csv(BIRMINGHAM, tz=TZ), holdout_days=14, seed=0)
    assert again.to_dict() == birmingham_result.to_dict()


def test_evaluate_rejects_degenerate_input() -> None:
    s = synthetic_series("P", date(2016, 10, 3), 5)
    with pytest.raises(ValueError, match="hold-out covers the whole data set"):
        evaluate_forecast([s], holdout_days=14)
    with pytest.raises(ValueError, match="no data"):
        evaluate_forecast([])
