"""Occupancy model: no look-ahead past the 24 h origin (incl. DST), determinism, optional inputs."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from pricing.forecasting import CarParkSeries, ForecastRequest, OccupancyForecaster, read_occupancy_csv
from pricing.forecasting.features import build_features, build_panel
from tests.shared_data import BIRMINGHAM

TZ = "Europe/London"


def local(*args: int) -> datetime:
    """A naive LOCAL wall-clock datetime (the convention of the CSV and of the model's hours)."""
    return datetime(*args)  # noqa: DTZ001 - naive on purpose


def synthetic_series(
    code: str,
    first: date,
    days: int,
    *,
    capacity: int = 400,
    hours: range = range(8, 17),
    seed: int = 0,
    extras: bool = False,
) -> CarParkSeries:
    """Weekly pattern + slow trend + noise on local hours ``hours`` of ``days`` days."""
    rng = np.random.default_rng(seed)
    stamps, occupied = [], []
    for i in range(days):
        day = first + timedelta(days=i)
        weekday_level = 0.35 if day.weekday() >= 5 else 0.6
        for h in hours:
            shape = np.sin(np.pi * (h - 7) / 11)
            rate = weekday_level * shape + 0.002 * i + rng.normal(0, 0.03)
            stamps.append(np.datetime64(f"{day.isoformat()}T{h:02d}", "h"))
            occupied.append(float(np.clip(rate, 0, 1)) * capacity)
    n = len(stamps)
    return CarParkSeries.from_arrays(
        code,
        capacity,
        TZ,
        np.array(stamps, dtype="datetime64[h]"),
        occupied,
        booked_rate=rng.uniform(0, 0.3, n) if extras else None,
        price=[Decimal("2.50")] * n if extras else None,
    )


def _perturb_after(series: list[CarParkSeries], cutoff_utc: np.datetime64, seed: int) -> list[CarParkSeries]:
    """Copy of ``series`` with every hour whose UTC start is after ``cutoff_utc`` scrambled."""
    rng = np.random.default_rng(seed)
    out = []
    for s in series:
        occ = s.occupied.copy()
        late = s.utc_hour > cutoff_utc
        occ[late] = rng.uniform(0, s.capacity, late.sum())
        out.append(CarParkSeries(s.code, s.capacity, s.tz, s.local_hour, occ, s.n_readings))
    return out


@pytest.mark.skipif(not BIRMINGHAM.exists(), reason="Birmingham CSV not available")
def test_no_leakage_on_real_data() -> None:
    """Changing any actual newer than target - 24 h (incl. the target itself) changes nothing."""
    history = list(read_occupancy_csv(BIRMINGHAM, tz=TZ).series)
    model = OccupancyForecaster(tz=TZ, seed=0).fit(history, end=date(2016, 12, 6))
    targets = [
        ("Bull Ring", local(2016, 12, 14, 8)),
        ("BHMBCCMKT01", local(2016, 12, 17, 12)),
        ("Others-CCCPS119a", local(2016, 12, 19, 16)),
        ("NIA South", local(2016, 12, 14, 10)),
    ]
    for i, (code, hour) in enumerate(targets):
        request = [ForecastRequest(code, [hour])]
        original = model.predict(history, request)[0].rate
        # Target 10:00 GMT in December = 10:00 UTC; allowed data starts at or before 10:00 UTC - 24 h.
        cutoff = np.datetime64(hour - timedelta(hours=24), "h")
        scrambled = model.predict(_perturb_after(history, cutoff, seed=i), request)[0].rate
        assert np.isfinite(original[0])
        assert scrambled[0] == original[0], (code, hour)
        # Sanity check of the test itself: data at the cut-off hour IS used.
        moved = model.predict(_perturb_after(history, cutoff - np.timedelta64(1, "h"), seed=i), request)
        assert moved[0].rate[0] != original[0]


def test_no_leakage_across_spring_forward() -> None:
    """On 2017-03-26 (GMT -> BST) the same local hour yesterday is only 23 h earlier: not used."""
    series = [synthetic_series(f"P{i}", date(2017, 1, 30), 60, seed=i, hours=range(0, 24)) for i in range(3)]
    model = OccupancyForecaster(tz=TZ, seed=0).fit(series, end=date(2017, 3, 20))
    target = local(2017, 3, 26, 10)  # 10:00 BST = 09:00 UTC
    request = [ForecastRequest("P0", [target])]
    base = model.predict(series, request)[0].rate[0]
    # 2017-03-25 10:00 GMT = 10:00 UTC is 23 h before the target: must be ignored ...
    bumped = [
        CarParkSeries(
            s.code,
            s.capacity,
            s.tz,
            s.local_hour,
            np.where(s.local_hour == np.datetime64("2017-03-25T10"), 0.0, s.occupied),
            s.n_readings,
        )
        for s in series
    ]
    assert model.predict(bumped, request)[0].rate[0] == base
    # ... and so is everything after the 24 h cut-off (2017-03-25 09:00 UTC).
    assert model.predict(_perturb_after(series, np.datetime64("2017-03-25T09"), seed=1), request)[0].rate[0] == base
    # The panel-level feature check: lag1 is NaN for that target (hour existed, but too recent).
    panel = build_panel(series, tz=TZ)
    d, h = panel.day_index(np.array([np.datetime64("2017-03-26T10")]))
    fm = build_features(panel, np.array([0]), d, h, country="GB", subdiv="ENG")
    assert np.isnan(fm.X[0, fm.names.index("lag1_vs_anchor")])
    d2, h2 = panel.day_index(np.array([np.datetime64("2017-03-27T10")]))  # both days BST: 24 h
    fm2 = build_features(panel, np.array([0]), d2, h2, country="GB", subdiv="ENG")
    assert np.isfinite(fm2.X[0, fm2.names.index("lag1_vs_anchor")])


def test_deterministic_with_seed() -> None:
    series = [synthetic_series(f"P{i}", date(2016, 9, 1), 49, seed=i) for i in range(4)]
    hours = [local(2016, 10, 19, h) for h in range(8, 17)]
    requests = [ForecastRequest(s.code, hours) for s in series]

    def run(seed: int) -> np.ndarray:
        model = OccupancyForecaster(tz=TZ, seed=seed).fit(series, end=date(2016, 10, 13))
        return np.concatenate([f.rate for f in model.predict(series, requests)])

    first, second = run(0), run(0)
    assert np.all(np.isfinite(first))
    np.testing.assert_array_equal(first, second)


def test_optional_booked_rate_and_price() -> None:
    series = [synthetic_series(f"P{i}", date(2016, 9, 1), 42, seed=i, extras=True) for i in range(3)]
    model = OccupancyForecaster(tz=TZ, seed=0).fit(series)
    assert model.extras == ("booked_rate", "price")
    assert {"booked_rate", "price"} <= set(model.feature_names)
    hours = [local(2016, 10, 13, h) for h in range(8, 17)]
    with_inputs = model.predict(
        series, [ForecastRequest("P0", hours, booked_rate=[0.2] * 9, price=[Decimal("3.10")] * 9)]
    )[0]
    without = model.predict(series, [ForecastRequest("P0", hours)])[0]  # unknown -> NaN inputs
    assert np.all(np.isfinite(with_inputs.rate))
    assert np.all(np.isfinite(without.rate))
    assert np.all((with_inputs.rate >= 0) & (with_inputs.rate <= 1))

    plain = OccupancyForecaster(tz=TZ, seed=0).fit([synthetic_series("Q", date(2016, 9, 1), 42)])
    assert plain.extras == ()
    assert "price" not in plain.feature_names


def test_predict_unknown_car_park_and_aware_hours() -> None:
    series = [synthetic_series("P0", date(2016, 9, 1), 42)]
    model = OccupancyForecaster(tz=TZ, seed=0).fit(series)
    aware = datetime(2016, 10, 13, 9, tzinfo=ZoneInfo("UTC"))  # = 10:00 BST
    out = model.predict(series, [ForecastRequest("P0", [aware]), ForecastRequest("nope", [aware])])
    assert out[0].local_hour[0] == np.datetime64("2016-10-13T10")
    assert np.isfinite(out[0].rate[0])
    assert np.isnan(out[1].rate[0])
