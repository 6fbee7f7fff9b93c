"""The pure rate policy: property tests for bounds, daily limit, step and overrides; DST; elasticity."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.policy import (
    DEFAULT_ELASTICITY,
    PlanHour,
    RateBounds,
    RateDecision,
    TargetBand,
    estimate_elasticity,
    occupancy_at,
    plan_rates,
    resolve_elasticity,
)

LONDON = ZoneInfo("Europe/London")
STEP = Decimal("0.10")


def hours_from(start_utc: datetime, occupancies: list[float | None], zone: ZoneInfo = LONDON) -> list[PlanHour]:
    return [
        PlanHour(start=(start_utc + timedelta(hours=index)).astimezone(zone), predicted_occupancy=occupancy)
        for index, occupancy in enumerate(occupancies)
    ]


def previous_day_rate(decisions: list[RateDecision], index: int, hours: list[PlanHour]) -> Decimal | None:
    """What the daily limit is measured against: the same local hour a day (or two) before."""
    first_seen: dict[tuple[object, int], Decimal] = {}
    for earlier in range(index):
        key = hours[earlier].key
        decision = decisions[earlier]
        first_seen.setdefault(key, decision.policy_rate if decision.policy_rate is not None else decision.rate)
    day, hour = hours[index].key
    for back in (1, 2):
        found = first_seen.get((day - timedelta(days=back), hour))
        if found is not None:
            return found
    return None


money_units = st.integers(min_value=0, max_value=200)  # in steps of 0.10: 0.00 .. 20.00


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    low_units = draw(money_units)
    high_units = draw(st.integers(min_value=low_units, max_value=low_units + 150))
    minimum, maximum = STEP * low_units, STEP * high_units
    base = STEP * draw(st.integers(min_value=low_units, max_value=high_units))
    limit = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=30).map(lambda units: STEP * units)))
    band_low = draw(st.floats(min_value=0.05, max_value=0.9))
    band_high = draw(st.floats(min_value=band_low + 0.02, max_value=1.0))
    start = datetime(2026, 3, 27, 0, tzinfo=UTC) + timedelta(hours=draw(st.integers(0, 24 * 220)))
    count = draw(st.integers(min_value=24, max_value=24 * 4))
    occupancies = draw(
        st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=1.2)), min_size=count, max_size=count)
    )
    overridden = draw(st.sets(st.integers(min_value=0, max_value=count - 1), max_size=6))
    override_rate = {
        index: STEP * draw(st.integers(min_value=low_units, max_value=high_units)) for index in sorted(overridden)
    }
    return {
        "bounds": RateBounds(minimum, maximum, limit, STEP),
        "band": TargetBand(band_low, band_high),
        "base": base,
        "elasticity": draw(st.floats(min_value=-2.5, max_value=-0.05)),
        "mode": draw(st.sampled_from(["band", "revenue"])),
        "hours": hours_from(start, occupancies, draw(st.sampled_from([LONDON, ZoneInfo("America/New_York")]))),
        "override_rate": override_rate,
    }


def run(scenario: dict[str, object]) -> tuple[list[PlanHour], list[RateDecision]]:
    hours: list[PlanHour] = scenario["hours"]  # type: ignore[assignment]
    overrides = {hours[index].start: rate for index, rate in scenario["override_rate"].items()}  # type: ignore[attr-defined]
    decisions = plan_rates(
        hours,
        base_rate=scenario["base"],  # type: ignore[arg-type]
        bounds=scenario["bounds"],  # type: ignore[arg-type]
        band=scenario["band"],  # type: ignore[arg-type]
        elasticity=scenario["elasticity"],  # type: ignore[arg-type]
        mode=scenario["mode"],  # type: ignore[arg-type]
        overrides=overrides,
    )
    return hours, decisions


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_published_rate_stays_within_bounds_limit_and_step_and_overrides_win(scenario: dict[str, object]) -> None:
    hours, decisions = run(scenario)
    bounds: RateBounds = scenario["bounds"]  # type: ignore[assignment]
    override_rate: dict[int, Decimal] = scenario["override_rate"]  # type: ignore[assignment]
    assert len(decisions) == len(hours)
    for index, decision in enumerate(decisions):
        assert bounds.minimum <= decision.rate <= bounds.maximum
        if index in override_rate:
            assert decision.rate == override_rate[index]
            assert decision.bound_applied == "override"
            continue
        assert decision.rate % STEP == 0
        previous = previous_day_rate(decisions, index, hours)
        assert decision.previous_rate == previous
        if previous is not None and bounds.max_daily_change is not None:
            assert abs(decision.rate - previous) <= bounds.max_daily_change


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_band_mode_moves_occupancy_to_the_band_edge_when_no_limit_binds(scenario: dict[str, object]) -> None:
    scenario = {**scenario, "mode": "band", "override_rate": {}}
    hours, decisions = run(scenario)
    band: TargetBand = scenario["band"]  # type: ignore[assignment]
    for hour, decision in zip(hours, decisions, strict=True):
        if hour.predicted_occupancy is None or decision.bound_applied is not None:
            continue
        predicted = decision.predicted_occupancy_at_rate
        assert predicted is not None
        if decision.reason == "raise_to_band":
            assert predicted <= band.high + 1e-6  # rounded up: never left above the band
        elif decision.reason == "lower_to_band" and hour.predicted_occupancy > 0:
            assert predicted >= band.low - 1e-6  # rounded down: never left below the band


def test_occupancy_response_is_constant_elasticity_and_capped() -> None:
    assert occupancy_at(Decimal("2.20"), Decimal("2.00"), 0.8, -0.4) == pytest.approx(0.8 * 1.1**-0.4)
    assert occupancy_at(Decimal("1.00"), Decimal("2.00"), 0.95, -2.0) == 1.0
    assert occupancy_at(Decimal("0"), Decimal("2.00"), 0.5, -0.4) == 1.0
    assert occupancy_at(Decimal("3.00"), Decimal("0"), 0.5, -0.4) == 0.5


def test_overfull_hour_is_priced_up_to_the_top_of_the_band() -> None:
    hours = hours_from(datetime(2026, 6, 1, 8, tzinfo=UTC), [0.95])
    bounds = RateBounds(Decimal("1.00"), Decimal("10.00"), None, STEP)
    [decision] = plan_rates(hours, base_rate=Decimal("2.00"), bounds=bounds, band=TargetBand(), elasticity=-0.4)
    # 0.95 * (p / 2) ** -0.4 = 0.85  ->  p = 2 * (0.85 / 0.95) ** -2.5 = 2.64 -> rounded up to 2.70
    assert decision.rate == Decimal("2.70")
    assert decision.reason == "raise_to_band"
    assert decision.bound_applied is None
    assert decision.predicted_occupancy_at_rate is not None
    assert decision.predicted_occupancy_at_rate <= 0.85


def test_maximum_and_daily_limit_are_reported_as_the_bound_that_applied() -> None:
    start = datetime(2026, 6, 1, 8, tzinfo=UTC)
    hours = hours_from(start, [1.0] * 48)
    bounds = RateBounds(Decimal("1.00"), Decimal("3.00"), Decimal("0.30"), STEP)
    decisions = plan_rates(hours, base_rate=Decimal("2.00"), bounds=bounds, band=TargetBand(), elasticity=-0.4)
    assert decisions[0].rate == Decimal("3.00")
    assert decisions[0].bound_applied == "maximum"
    previous = {(hours[0].start.date(), hours[0].start.hour): Decimal("2.00")}
    decisions = plan_rates(
        hours[24:25],
        base_rate=Decimal("2.00"),
        bounds=bounds,
        band=TargetBand(),
        elasticity=-0.4,
        previous_rates=previous,
    )
    assert decisions[0].rate == Decimal("2.30")
    assert decisions[0].bound_applied == "daily_change"


def test_no_history_gives_the_base_rate_with_that_reason() -> None:
    hours = hours_from(datetime(2026, 6, 1, tzinfo=UTC), [None] * 24)
    bounds = RateBounds(Decimal("1.00"), Decimal("5.00"), Decimal("0.50"), STEP)
    decisions = plan_rates(hours, base_rate=Decimal("2.50"), bounds=bounds, band=TargetBand(), elasticity=-0.4)
    assert {decision.rate for decision in decisions} == {Decimal("2.50")}
    assert {decision.reason for decision in decisions} == {"no_history"}
    assert {decision.predicted_occupancy_at_rate for decision in decisions} == {None}


def test_override_is_exempt_from_daily_limit_and_the_next_day_chains_from_the_policy_rate() -> None:
    start = datetime(2026, 6, 1, 18, tzinfo=UTC)
    hours = hours_from(start, [0.75] * 48)
    bounds = RateBounds(Decimal("1.00"), Decimal("9.00"), Decimal("0.20"), STEP)
    event = {hours[0].start: Decimal("8.00")}
    decisions = plan_rates(
        hours, base_rate=Decimal("2.00"), bounds=bounds, band=TargetBand(), elasticity=-0.4, overrides=event
    )
    assert decisions[0].rate == Decimal("8.00")
    assert decisions[0].policy_rate == Decimal("2.00")
    assert decisions[24].previous_rate == Decimal("2.00")
    assert decisions[24].rate == Decimal("2.00")


def test_dst_days_have_23_and_25_hours_and_compare_with_the_same_local_hour() -> None:
    # Europe/London: 2026-03-29 has 23 hours (01:00 missing), 2026-10-25 has 25 (01:00 twice).
    bounds = RateBounds(Decimal("1.00"), Decimal("9.00"), Decimal("0.20"), STEP)
    for day_start, hours_in_day in (
        (datetime(2026, 3, 29, 0, tzinfo=UTC), 23),
        (datetime(2026, 10, 24, 23, tzinfo=UTC), 25),
    ):
        start = day_start - timedelta(days=1)
        hours = hours_from(start, [1.0] * (24 + hours_in_day + 24))
        local_day = day_start.astimezone(LONDON).date()
        assert sum(hour.start.date() == local_day for hour in hours) == hours_in_day
        decisions = plan_rates(hours, base_rate=Decimal("2.00"), bounds=bounds, band=TargetBand(), elasticity=-0.4)
        for index, (hour, decision) in enumerate(zip(hours, decisions, strict=True)):
            assert decision.previous_rate == previous_day_rate(decisions, index, hours)
            if decision.previous_rate is not None:
                assert abs(decision.rate - decision.previous_rate) <= Decimal("0.20")
            if hour.start.date() > local_day and hour.start.hour == 1:
                assert decision.previous_rate is not None  # found a day further back after the 23-hour day


def test_naive_hour_is_refused() -> None:
    bounds = RateBounds(Decimal("1.00"), Decimal("9.00"), None, STEP)
    with pytest.raises(ValueError, match="aware"):
        plan_rates(
            [PlanHour(start=datetime(2026, 6, 1, 8, tzinfo=UTC), predicted_occupancy=0.5)],
            base_rate=Decimal("2.00"),
            bounds=bounds,
            band=TargetBand(),
            elasticity=-0.4,
            overrides={datetime(2026, 6, 1, 8): Decimal("3.00")},  # noqa: DTZ001 -- the point of the test
        )


def test_estimator_recovers_a_planted_elasticity() -> None:
    rng = np.random.default_rng(7)
    hours_of_week = 168
    baseline = rng.uniform(0.3, 0.8, hours_of_week)
    group = rng.integers(0, hours_of_week, 4000)
    price = rng.choice([1.5, 2.0, 2.5, 3.0, 3.5], 4000)
    planted = -0.55
    occupancy = baseline[group] * (price / 2.5) ** planted * np.exp(rng.normal(0, 0.08, 4000))
    estimate = estimate_elasticity([Decimal(str(p)) for p in price], list(occupancy), list(group))
    assert estimate is not None
    assert estimate.elasticity == pytest.approx(planted, abs=3 * estimate.stderr + 0.01)
    assert estimate.stderr < 0.02
    assert estimate.n == 4000


def test_estimator_declines_when_prices_did_not_vary() -> None:
    rng = np.random.default_rng(3)
    occupancy = list(rng.uniform(0.2, 0.9, 500))
    assert estimate_elasticity([Decimal("2.50")] * 500, occupancy, [i % 168 for i in range(500)]) is None
    assert estimate_elasticity([Decimal("2.50")] * 10, occupancy[:10], list(range(10))) is None


def test_elasticity_source_order_is_estimate_then_operator_then_default() -> None:
    assert resolve_elasticity(-0.7, -0.3) == (-0.7, "estimated")
    assert resolve_elasticity(0.2, -0.3) == (-0.3, "operator")  # a positive estimate is confounded
    assert resolve_elasticity(None, None) == (DEFAULT_ELASTICITY, "default")
    assert DEFAULT_ELASTICITY == -0.4


def test_revenue_mode_prices_an_hour_below_the_band_even_at_the_minimum_at_the_maximum() -> None:
    bounds = RateBounds(minimum=Decimal("1.00"), maximum=Decimal("6.00"), max_daily_change=Decimal("1.00"), step=STEP)
    quiet = PlanHour(start=datetime(2026, 6, 2, 6, tzinfo=LONDON), predicted_occupancy=0.2, reference_price=None)
    (decision,) = plan_rates(
        [quiet],
        base_rate=Decimal("2.00"),
        bounds=bounds,
        band=TargetBand(),
        elasticity=-0.4,
        mode="revenue",
        previous_rates={(date(2026, 6, 1), 6): Decimal("2.00")},
    )
    assert decision.reason == "revenue_max_band_unreachable"
    assert decision.rate == Decimal("3.00")  # towards the maximum, no faster than the daily limit
    assert decision.bound_applied == "daily_change"
