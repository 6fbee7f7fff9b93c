"""Publishing rates: forecasts -> policy -> PublishedRate rows; quotes read them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from backend.carparks.models import CarPark
from pricing import rates
from pricing.models import DemandModelVersion, PublishedRate, RateOverride, RateRule
from pricing.selectors import quote_for_window, quotes_for_window
from tests.factories import CarParkFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)


def make_rule(car_park: CarPark, **fields: Any) -> RateRule:
    values: dict[str, Any] = {
        "base_rate": Decimal("2.00"),
        "minimum": Decimal("1.00"),
        "maximum": Decimal("6.00"),
        "max_daily_change": Decimal("0.50"),
        "step": Decimal("0.10"),
        **fields,
    }
    return RateRule.objects.create(car_park=car_park, **values)


def fixed_forecast(value: float | None) -> Callable[[list[CarPark], list[datetime]], rates.Forecasts]:
    def forecast(car_parks: list[CarPark], hour_starts: list[datetime]) -> rates.Forecasts:
        return {car_park.pk: [value] * len(hour_starts) for car_park in car_parks}

    return forecast


@pytest.fixture
def forecast(monkeypatch: pytest.MonkeyPatch) -> Callable[[float | None], None]:
    def use(value: float | None) -> None:
        monkeypatch.setattr(rates, "_forecasts", fixed_forecast(value))

    return use


def active_model(version: int = 1) -> DemandModelVersion:
    return DemandModelVersion.objects.create(version=version, status="promoted", is_active=True, promoted_at=NOW)


def published(car_park: CarPark) -> list[PublishedRate]:
    return list(PublishedRate.objects.filter(car_park=car_park).order_by("hour_start"))


def test_publishes_seven_days_of_hourly_rates_with_reasons(car_park: CarPark, forecast: Callable) -> None:
    make_rule(car_park)
    active_model(3)
    forecast(0.95)
    summary = rates.publish_rates(now=NOW)
    rows = published(car_park)
    assert summary.rows == len(rows) == 168
    assert summary.model_version == 3
    assert rows[0].hour_start == datetime(2026, 6, 1, 10, tzinfo=UTC)  # the hour under way keeps its rate
    first = rows[0]
    assert first.rate == Decimal("2.70")  # 2.00 x (0.85 / 0.95) ^ (1 / -0.4) = 2.64, rounded up to the step
    assert first.reason["model_version"] == 3
    assert first.reason["elasticity"] == -0.4
    assert first.reason["elasticity_source"] == "default"
    assert first.reason["forecast_occupancy"] == 0.95
    assert first.currency == "GBP"
    for row in rows:
        assert Decimal("1.00") <= row.rate <= Decimal("6.00")
        assert row.rate % Decimal("0.10") == 0
    for earlier, later in zip(rows, rows[24:], strict=False):
        assert abs(later.rate - earlier.rate) <= Decimal("0.50")


def test_new_car_park_without_history_gets_the_base_rate_with_that_reason(
    car_park: CarPark, forecast: Callable
) -> None:
    make_rule(car_park, base_rate=Decimal("2.30"))
    forecast(None)
    rates.publish_rates(now=NOW)
    rows = published(car_park)
    assert {row.rate for row in rows} == {Decimal("2.30")}
    assert {row.reason["policy"] for row in rows} == {"no_history"}
    assert {row.reason["model_version"] for row in rows} == {None}


def test_dynamic_off_publishes_the_base_rate_and_overrides_still_win(car_park: CarPark, forecast: Callable) -> None:
    make_rule(car_park, is_dynamic=False, base_rate=Decimal("3.00"))
    RateOverride.objects.create(
        car_park=car_park,
        starts_at=datetime(2026, 6, 2, 8, tzinfo=UTC),
        ends_at=datetime(2026, 6, 2, 10, tzinfo=UTC),
        rate=Decimal("5.50"),
    )
    forecast(0.99)
    rates.publish_rates(now=NOW)
    by_hour = {row.hour_start: row for row in published(car_park)}
    assert by_hour[datetime(2026, 6, 2, 8, tzinfo=UTC)].rate == Decimal("5.50")
    assert by_hour[datetime(2026, 6, 2, 9, tzinfo=UTC)].reason["policy"] == "override"
    assert by_hour[datetime(2026, 6, 2, 10, tzinfo=UTC)].rate == Decimal("3.00")
    assert by_hour[datetime(2026, 6, 2, 10, tzinfo=UTC)].reason["policy"] == "dynamic_off"


def test_override_wins_over_dynamic_rate_and_daily_limit(car_park: CarPark, forecast: Callable) -> None:
    make_rule(car_park, max_daily_change=Decimal("0.10"))
    RateOverride.objects.create(
        car_park=car_park,
        starts_at=datetime(2026, 6, 3, 18, tzinfo=UTC),
        ends_at=datetime(2026, 6, 3, 19, tzinfo=UTC),
        rate=Decimal("6.00"),
    )
    forecast(0.75)
    rates.publish_rates(now=NOW)
    by_hour = {row.hour_start: row for row in published(car_park)}
    event = by_hour[datetime(2026, 6, 3, 18, tzinfo=UTC)]
    assert event.rate == Decimal("6.00")
    assert event.reason["bound_applied"] == "override"
    assert by_hour[datetime(2026, 6, 4, 18, tzinfo=UTC)].rate == Decimal("2.00")


def local_hours_on(rows: list[PublishedRate], car_park: CarPark, day: date) -> list[int]:
    return [
        row.hour_start.astimezone(car_park.zone).hour
        for row in rows
        if row.hour_start.astimezone(car_park.zone).date() == day
    ]


@pytest.mark.parametrize(
    ("now", "day", "expected_hours"),
    [
        (datetime(2026, 3, 27, 12, tzinfo=UTC), date(2026, 3, 29), [0, *range(2, 24)]),  # 23 hours
        (datetime(2026, 10, 23, 12, tzinfo=UTC), date(2026, 10, 25), [0, 1, 1, *range(2, 24)]),  # 25 hours
    ],
)
def test_dst_days_publish_23_and_25_local_hours_within_the_daily_limit(
    car_park: CarPark, forecast: Callable, now: datetime, day: date, expected_hours: list[int]
) -> None:
    make_rule(car_park, max_daily_change=Decimal("0.20"))
    forecast(1.0)  # pushes every hour up against the daily limit
    rates.publish_rates(now=now)
    rows = published(car_park)
    assert len(rows) == 168
    assert local_hours_on(rows, car_park, day) == expected_hours
    first_by_local: dict[tuple[date, int], Decimal] = {}
    for row in rows:
        local = row.hour_start.astimezone(car_park.zone)
        first_by_local.setdefault((local.date(), local.hour), row.rate)
    for (local_day, hour), rate in first_by_local.items():
        previous = first_by_local.get((local_day - timedelta(days=1), hour)) or first_by_local.get(
            (local_day - timedelta(days=2), hour)
        )
        if previous is not None:
            assert abs(rate - previous) <= Decimal("0.20")


@pytest.mark.parametrize("zone", ["America/New_York", "Australia/Sydney", "Asia/Kolkata", "Asia/Kathmandu"])
def test_car_park_in_another_time_zone_publishes_its_local_hours(forecast: Callable, company: Any, zone: str) -> None:
    car_park = CarParkFactory(company=company, timezone=zone, currency="USD" if "New_York" in zone else "AUD")
    make_rule(car_park)
    forecast(0.5)
    rates.publish_rates(now=NOW)
    rows = published(car_park)
    assert len(rows) == 168
    local_starts = [row.hour_start.astimezone(car_park.zone) for row in rows]
    assert all(moment.minute == 0 for moment in local_starts)
    assert rows[0].currency == car_park.currency
    # Day 2 is compared with the same local hour of day 1, whatever the UTC offset.
    assert rows[24].reason["previous_rate"] == str(rows[0].rate)


def test_half_hour_zone_quotes_read_the_published_rates_and_overrides(forecast: Callable, company: Any) -> None:
    car_park = CarParkFactory(company=company, timezone="Asia/Kolkata", currency="INR")  # UTC+05:30
    make_rule(car_park, is_dynamic=False, base_rate=Decimal("5.00"))
    RateOverride.objects.create(  # 10:00-12:00 IST
        car_park=car_park,
        starts_at=datetime(2026, 6, 2, 4, 30, tzinfo=UTC),
        ends_at=datetime(2026, 6, 2, 6, 30, tzinfo=UTC),
        rate=Decimal("9.00"),
    )
    forecast(None)
    rates.publish_rates(now=NOW)

    plain = quote_for_window(car_park, datetime(2026, 6, 3, 4, 30, tzinfo=UTC), datetime(2026, 6, 3, 6, 30, tzinfo=UTC))
    event = quote_for_window(car_park, datetime(2026, 6, 2, 4, 30, tzinfo=UTC), datetime(2026, 6, 2, 6, 30, tzinfo=UTC))

    assert (plain.rate_source, plain.amount_minor) == ("published", 1000)
    assert (event.rate_source, event.amount_minor) == ("published", 1800)


def test_failed_forecast_keeps_the_last_published_rates(
    car_park: CarPark, forecast: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_rule(car_park)
    forecast(0.95)
    rates.publish_rates(now=NOW)
    before = [(row.hour_start, row.rate, row.reason) for row in published(car_park)]

    def broken(car_parks: list[CarPark], hour_starts: list[datetime]) -> rates.Forecasts:
        raise RuntimeError("model file is corrupt")

    monkeypatch.setattr(rates, "_forecasts", broken)
    summary = rates.publish_rates(now=NOW + timedelta(minutes=5))
    assert summary.failed_car_park_ids == [car_park.pk]
    assert summary.rows == 0
    assert [(row.hour_start, row.rate, row.reason) for row in published(car_park)] == before


def test_failed_training_run_keeps_the_last_good_model_in_the_reason(car_park: CarPark, forecast: Callable) -> None:
    make_rule(car_park)
    active_model(1)
    DemandModelVersion.objects.create(version=2, status="failed", error="training diverged")
    forecast(0.8)
    rates.publish_rates(now=NOW)
    assert {row.reason["model_version"] for row in published(car_park)} == {1}


def test_republishing_replaces_future_hours_and_keeps_past_ones(car_park: CarPark, forecast: Callable) -> None:
    make_rule(car_park)
    forecast(0.95)
    rates.publish_rates(now=NOW)
    first_hour = published(car_park)[0]
    forecast(0.2)
    rates.publish_rates(now=NOW + timedelta(hours=1))
    rows = published(car_park)
    assert rows[0].hour_start == first_hour.hour_start
    assert rows[0].rate == first_hour.rate  # that hour has started: it keeps its rate
    assert len(rows) == 169
    assert PublishedRate.objects.filter(car_park=car_park).values("hour_start").distinct().count() == 169


def test_quote_reads_published_rates_and_a_held_quote_never_changes(
    car_park: CarPark, forecast: Callable, time_machine: Any
) -> None:
    time_machine.move_to(NOW, tick=False)
    make_rule(car_park, max_daily_change=None)
    forecast(0.99)
    rates.publish_rates(now=NOW)
    start = datetime(2026, 6, 2, 8, tzinfo=UTC)
    held = quote_for_window(car_park, start, start + timedelta(hours=2))
    expected = sum(row.rate for row in published(car_park) if start <= row.hour_start < start + timedelta(hours=2))
    assert held.total.amount == expected
    assert held.rate_source == "published"
    assert "published hourly rates" in held.lines[0].description
    total_when_held = held.total

    forecast(0.3)
    rates.publish_rates(now=NOW)
    again = quote_for_window(car_park, start, start + timedelta(hours=2))
    assert again.total != total_when_held  # new quotes see the new rates ...
    assert held.total == total_when_held  # ... the held one (frozen, stored with the booking) does not


def test_quote_falls_back_to_the_rate_card_for_unpublished_hours(car_park: CarPark, forecast: Callable) -> None:
    make_rule(car_park)
    forecast(0.99)
    rates.publish_rates(now=NOW, days=1)
    last = published(car_park)[-1].hour_start
    quote = quote_for_window(car_park, last, last + timedelta(hours=2))
    assert quote.rate_source == "published+platform_default"
    assert quote.total.amount == published(car_park)[-1].rate + Decimal("2.50")


def test_bulk_quotes_read_every_rate_card_and_published_rate_in_one_query(
    company: Any, forecast: Callable, django_assert_num_queries: Any
) -> None:
    car_parks = [CarParkFactory(company=company) for _ in range(5)]
    for car_park in car_parks:
        make_rule(car_park)
    forecast(0.99)
    rates.publish_rates(now=NOW)
    start = datetime(2026, 6, 2, 8, tzinfo=UTC)
    car_parks.append(CarParkFactory(company=company))  # no card, no published rates: the default
    with django_assert_num_queries(1):
        quotes = quotes_for_window(car_parks, start, start + timedelta(hours=3))
    assert [quotes[car_park.pk].rate_source for car_park in car_parks] == ["published"] * 5 + ["platform_default"]


def test_publish_task_runs_the_service(car_park: CarPark, forecast: Callable) -> None:
    from pricing.tasks import publish_rates_task

    make_rule(car_park)
    forecast(None)
    result = publish_rates_task.delay(car_park_ids=[car_park.pk]).get()
    assert result["car_parks"] == 1
    assert result["rows"] == 168


def test_estimated_elasticity_is_stored_and_then_used(car_park: CarPark, forecast: Callable) -> None:
    import numpy as np

    from pricing.models import OccupancyHour

    rule = make_rule(car_park)
    rng = np.random.default_rng(5)
    start = NOW - timedelta(weeks=6)
    baseline = rng.uniform(0.3, 0.7, 168)
    published_rows, occupancy_rows = [], []
    for index in range(24 * 7 * 6):
        moment = (start + timedelta(hours=index)).replace(minute=0)
        price = Decimal(str(rng.choice([1.5, 2.0, 2.5, 3.0])))
        value = baseline[index % 168] * (float(price) / 2.0) ** -0.8 * float(np.exp(rng.normal(0, 0.05)))
        published_rows.append(
            PublishedRate(car_park=car_park, hour_start=moment, rate=price, currency="GBP", published_at=moment)
        )
        occupancy_rows.append(
            OccupancyHour(
                car_park=car_park,
                hour_start=moment,
                source="gate",
                occupied=Decimal(f"{value * 100:.2f}"),
                capacity=100,
            )
        )
    PublishedRate.objects.bulk_create(published_rows)
    OccupancyHour.objects.bulk_create(occupancy_rows)
    assert rates.elasticities_estimate(now=NOW) == 1
    rule.refresh_from_db()
    assert rule.estimated_elasticity == pytest.approx(-0.8, abs=0.05)
    assert rates.elasticity_of(rule) == (rule.estimated_elasticity, "estimated")
