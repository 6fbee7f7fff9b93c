"""Pricing simulation (pricing.simulation) and the simulate_pricing command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from threadpoolctl import threadpool_limits

from pricing.forecasting import CarParkSeries, ModelConfig
from pricing.simulation import POLICY_NAMES, SimulationConfig, simulate_pricing
from tests.factories import CarParkFactory
from tests.pricing.occupancy_data import write_history
from tests.shared_data import BIRMINGHAM

TZ = "Europe/London"
SMALL_MODEL = ModelConfig(n_models=1, max_iter=20)
START = date(2024, 4, 1)  # a Monday, no DST change in the following weeks
# Five weeks before the period: every model input (up to the 28-day lag) has training values.
HISTORY_DAYS = 35


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # scikit-learn's OpenMP threads fight over the cores when test workers run in parallel.
    with threadpool_limits(limits=1):
        yield


def _series(code: str, capacity: int, days: int, occupied_by_hour: dict[int, float]) -> CarParkSeries:
    """The same occupied count at each listed local hour of every day from START."""
    hours, occupied = [], []
    for d in range(days):
        day = START + timedelta(days=d)
        for hour, count in sorted(occupied_by_hour.items()):
            hours.append(datetime(day.year, day.month, day.day, hour))  # noqa: DTZ001 (naive local)
            occupied.append(count)
    return CarParkSeries.from_arrays(code, capacity, TZ, hours, occupied)


def _config(**changes: object) -> SimulationConfig:
    values: dict[str, object] = {"weeks": 1, "forecast_config": SMALL_MODEL}
    values.update(changes)
    return SimulationConfig(**values)  # type: ignore[arg-type]


def test_static_base_scores_match_hand_computation() -> None:
    # Capacity 100; at 2.00 (the historic price) demand is what history recorded: 50, 80 and a
    # full hour whose censored demand is 100 x 1.10 = 110. Whatever e_true is, P = P0 leaves it.
    series = _series("A", 100, HISTORY_DAYS + 7, {9: 50, 10: 80, 11: 100})

    result = simulate_pricing([series], _config())

    score = result.policies["static_base"]
    assert score.hours == 21
    assert score.revenue == pytest.approx(7 * (50 + 80 + 100) * 2.0)  # 3,220.00
    assert score.turned_away == pytest.approx(7 * 10.0)  # 110 wanted, 100 served
    assert score.in_band_share == pytest.approx(1 / 3)  # only 10:00 (80%) is in 70-85%
    assert result.period_start == START + timedelta(days=HISTORY_DAYS)
    assert result.period_end == START + timedelta(days=HISTORY_DAYS + 6)
    assert np.nanmax(result.prices["static_base"]) == np.nanmin(result.prices["static_base"]) == 2.0


def test_best_flat_price_maximises_in_band_hours_in_hindsight() -> None:
    # e_true fixed at -0.5: 60 at 2.00 needs P <= 2 * (0.70 / 0.60) ** -2 = 1.469 for 70%.
    series = _series("A", 100, HISTORY_DAYS + 7, {9: 60})

    result = simulate_pricing([series], _config(elasticity_range=(-0.5, -0.5)))

    assert result.policies["static_best_flat"].in_band_share == 1.0
    # Ties in band share go to the higher revenue: the highest grid price still in band.
    assert np.nanmax(result.prices["static_best_flat"]) == pytest.approx(1.4)


def test_reactive_rule_steps_weekly_per_time_band() -> None:
    # Morning (09:00) at 90% is above the band: +0.20 a week while it stays above; midday
    # (12:00) at 30% is below: -0.20 a week. e_true = -0.2 keeps 09:00 above 85% at 2.20.
    series = _series("A", 100, HISTORY_DAYS + 14, {9: 90, 12: 30})

    result = simulate_pricing([series], _config(weeks=2, elasticity_range=(-0.2, -0.2)))

    prices = result.prices["reactive_sfpark"][0]
    assert prices[:7, 9].tolist() == [2.2] * 7  # week 1 reacts to the week before the period
    assert prices[7:, 9].tolist() == [2.4] * 7  # 90 x 1.1 ** -0.2 = 88.3 > 85: up again
    assert prices[:7, 12].tolist() == [1.8] * 7
    assert prices[7:, 12].tolist() == [1.6] * 7
    assert np.isnan(prices[:, 10]).all()  # hours without history are not simulated


def test_reactive_rule_stays_within_bounds() -> None:
    series = _series("A", 100, HISTORY_DAYS + 14, {12: 10})
    bounds = SimulationConfig().bounds
    config = _config(weeks=2, reactive_step=Decimal("0.80"))

    result = simulate_pricing([series], config)

    assert np.nanmin(result.prices["reactive_sfpark"]) == float(bounds.minimum)


def test_same_seed_gives_the_same_result_and_another_seed_other_elasticities() -> None:
    series = [
        _series("A", 100, HISTORY_DAYS + 14, {9: 40, 12: 95}),
        _series("B", 300, HISTORY_DAYS + 14, {9: 200, 12: 290}),
    ]

    first = simulate_pricing(series, _config(weeks=2, seed=3)).to_dict()
    again = simulate_pricing(series, _config(weeks=2, seed=3)).to_dict()
    other = simulate_pricing(series, _config(weeks=2, seed=4)).to_dict()

    assert first == again
    assert first["true_elasticity"] != other["true_elasticity"]
    assert all(-0.6 <= e <= -0.2 for e in first["true_elasticity"].values())


def test_too_little_history_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one week of history"):
        simulate_pricing([_series("A", 100, 10, {9: 50})], _config(weeks=1))


@pytest.mark.django_db
def test_command_prints_one_json_line_with_every_policy(tmp_path: Path) -> None:
    car_parks = CarParkFactory.create_batch(2)
    write_history(car_parks, start=START, days=HISTORY_DAYS + 14)
    out, err = StringIO(), StringIO()

    call_command("simulate_pricing", "--json", "--weeks", "2", "--plot-dir", str(tmp_path), stdout=out, stderr=err)

    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert list(result["policies"]) == list(POLICY_NAMES)
    for score in result["policies"].values():
        assert set(score) == {"in_band_share", "revenue", "turned_away"}
        assert 0 <= score["in_band_share"] <= 1
    assert result["history"] == "database:all"
    assert {"demand", "true_elasticity", "reactive_sfpark", "ours"} <= set(result["assumptions"])
    assert len(result["plots"]) == 2
    assert all(Path(p).is_file() and Path(p).parent == tmp_path for p in result["plots"])
    assert "Simulating 2 car parks" in err.getvalue()


@pytest.mark.skipif(not BIRMINGHAM.exists(), reason="Birmingham CSV not available")
def test_birmingham_ours_beats_static_and_reactive_pricing() -> None:
    out = StringIO()

    call_command("simulate_pricing", "--json", "--csv", str(BIRMINGHAM), "--no-plot", stdout=out, stderr=StringIO())

    policies = json.loads(out.getvalue())["policies"]
    others = ("static_base", "static_best_flat", "reactive_sfpark")
    for name in others:
        assert policies["ours_band"]["in_band_share"] > policies[name]["in_band_share"], name
        assert policies["ours_revenue"]["revenue"] > policies[name]["revenue"], name
    assert policies["ours_revenue"]["turned_away"] <= policies["static_base"]["turned_away"]
    assert policies["ours_revenue"]["turned_away"] <= policies["static_best_flat"]["turned_away"]
