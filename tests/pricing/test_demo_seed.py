"""pricing.demo / seed_pricing_demo: the demo's history, rules, model and published rates."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pricing.demo import history_for, pricing_demo_seed
from pricing.models import DemandModelVersion, OccupancyHour, PublishedRate, RateRule
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

    first = pricing_demo_seed(weeks=6, progress=messages.append)

    assert (first.car_parks_with_new_history, first.rules_created) == (2, 2)
    assert first.hours_written == OccupancyHour.objects.count() == 2 * 6 * 7 * 24
    assert first.model_status == "promoted"
    assert first.rates_published == PublishedRate.objects.count() == 2 * 7 * 24
    rule = RateRule.objects.get(car_park=car_parks[0])
    assert (rule.is_dynamic, rule.base_rate, rule.minimum, rule.maximum) == (True, 2.5, 1.5, 4.5)
    assert any("training" in message for message in messages)

    again = pricing_demo_seed(weeks=6, progress=messages.append)
    assert (again.car_parks_with_new_history, again.hours_written, again.rules_created) == (0, 0, 0)
    assert (again.model_status, again.model_version) == ("active", first.model_version)
    assert DemandModelVersion.objects.count() == 1


def test_command_reports_and_refuses_too_little_history(company: Any) -> None:
    with pytest.raises(CommandError, match="at least 6"):
        call_command("seed_pricing_demo", weeks=5, quiet=True)
    out = StringIO()
    CarParkFactory(company=company)
    call_command("seed_pricing_demo", weeks=6, quiet=True, stdout=out)
    assert "history for 1 car parks" in out.getvalue()
    assert "rates published" in out.getvalue()
