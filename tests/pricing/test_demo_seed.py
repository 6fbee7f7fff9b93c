"""pricing.demo / seed_pricing_demo: the demo's history, rules, model and published rates."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pricing.demo import dynamic_rule_for, history_for, pricing_demo_seed
from pricing.models import DemandModelVersion, OccupancyHour, PublishedRate, RateCard, RateRule
from pricing.services import occupancy_record
from tests.factories import CarParkFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("model_sandbox")]

NOW = datetime(2026, 6, 3, 9, 30, tzinfo=UTC)
DAY_HOURS = [(day, time(7), time(22), False) for day in range(6)] + [(6, time(9), time(18), False)]


def test_history_follows_opening_hours_and_a_weekday_shape(company: Any) -> None:
    car_park = CarParkFactory(company=company, hours=DAY_HOURS)  # 100 bays, closed at night
    start = datetime(2026, 5, 4, tzinfo=UTC)  # a Monday
    hours = history_for(car_park, start=start, end=start + timedelta(weeks=1), rng=random.Random(1))
    assert len(hours) == 7 * 24
    assert all(0 <= value <= 98 for value in hours.values())
    london_3am = datetime(2026, 5, 5, 2, tzinfo=UTC)  # 03:00 BST: closed
    london_1pm = datetime(2026, 5, 5, 12, tzinfo=UTC)  # 13:00 BST: the weekday peak
    assert hours[london_3am] == 0
    assert hours[london_1pm] > 50
    assert history_for(car_park, start=start, end=start + timedelta(weeks=1), rng=random.Random(1)) == hours


def test_seeds_history_rules_a_model_and_rates_once(company: Any) -> None:
    car_parks = [CarParkFactory(company=company, hours=DAY_HOURS), CarParkFactory(company=company)]
    messages: list[str] = []

    first = pricing_demo_seed(company=company.name, weeks=6, progress=messages.append)

    assert (first.car_parks_with_new_history, first.rules_created) == (2, 2)
    assert first.hours_written == OccupancyHour.objects.count() == 2 * 6 * 7 * 24
    assert first.model_status == "promoted"
    assert first.rates_published == PublishedRate.objects.count() == 2 * 7 * 24
    rule = RateRule.objects.get(car_park=car_parks[0])
    assert (rule.is_dynamic, rule.base_rate, rule.minimum, rule.maximum) == (True, 2.5, 1.5, 4.5)
    assert (rule.band_low, rule.band_high, rule.max_daily_change) == (Decimal("0.7"), Decimal("0.85"), Decimal("0.5"))
    assert any("training" in message for message in messages)

    again = pricing_demo_seed(company=company.name, weeks=6, progress=messages.append)
    assert (again.car_parks_with_new_history, again.hours_written, again.rules_created) == (0, 0, 0)
    assert (again.model_status, again.model_version) == ("active", first.model_version)
    assert DemandModelVersion.objects.count() == 1


def test_command_reports_and_refuses_too_little_history(company: Any) -> None:
    CarParkFactory(company=company)
    with pytest.raises(CommandError, match="at least 6"):
        call_command("seed_pricing_demo", company=company.name, weeks=5, quiet=True)
    out = StringIO()
    call_command("seed_pricing_demo", company=company.name, weeks=6, quiet=True, stdout=out)
    assert "history for 1 car parks" in out.getvalue()
    assert "rates published" in out.getvalue()


@pytest.mark.parametrize("hourly", ["0.00", "0.01", "0.09", "2.37", "99.99", "555555.56", "999999.99"])
def test_the_demo_rule_keeps_its_base_rate_inside_its_bounds(company: Any, hourly: str) -> None:
    car_park = CarParkFactory(company=company)
    RateCard.objects.create(car_park=car_park, hourly_rate=Decimal(hourly), minimum_charge=0, tax_rate=Decimal("0.2"))
    rule = dynamic_rule_for(car_park)
    rule.save()  # the database's CHECK constraints agree
    assert rule.minimum <= rule.base_rate == Decimal(hourly) <= rule.maximum <= Decimal("999999.99")


def test_only_the_named_companys_car_parks_and_never_in_production(
    company: Any, other_company: Any, settings: Any
) -> None:
    ours, theirs = CarParkFactory(company=company), CarParkFactory(company=other_company)
    pricing_demo_seed(company=company.name, weeks=6, progress=lambda message: None)
    assert OccupancyHour.objects.filter(car_park=ours).exists()
    assert not OccupancyHour.objects.filter(car_park=theirs).exists()
    assert not RateRule.objects.filter(car_park=theirs).exists()
    with pytest.raises(ValueError, match="no live car parks"):
        pricing_demo_seed(company="Nobody Ltd", progress=lambda message: None)
    settings.IS_PRODUCTION = True
    with pytest.raises(ValueError, match="production"):
        pricing_demo_seed(company=company.name, progress=lambda message: None)


def test_a_model_that_was_not_promoted_is_not_retrained_on_every_run(company: Any) -> None:
    CarParkFactory(company=company)
    DemandModelVersion.objects.create(version=1, status="rejected", error="did not beat the baseline")
    summary = pricing_demo_seed(company=company.name, weeks=6, progress=lambda message: None)
    assert summary.model_version is None
    assert "retrain" in summary.model_status
    assert DemandModelVersion.objects.count() == 1


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Australia/Lord_Howe"])
def test_history_is_keyed_by_local_hour_starts_in_any_zone(company: Any, zone: str) -> None:
    car_park = CarParkFactory(company=company, timezone=zone)
    start = datetime(2026, 4, 1, tzinfo=UTC)  # Lord Howe leaves its 30-minute DST on 5 April
    hours = history_for(car_park, start=start, end=start + timedelta(days=10), rng=random.Random(3))
    local_starts = {moment.astimezone(ZoneInfo(zone)) for moment in hours}
    assert all((moment.minute, moment.second) == (0, 0) for moment in local_starts)
    assert len(local_starts) == len(hours)
    occupancy_record(car_park_id=car_park.pk, source="import", hours=hours, capacity=car_park.total_capacity)
