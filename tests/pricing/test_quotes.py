"""Quotes: each local hour at its published rate, else the rate card's; one query per quote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from backend.carparks.models import CarPark
from backend.core.money import Money
from pricing.models import PublishedRate, RateCard
from pricing.selectors import quote_for_window

pytestmark = pytest.mark.django_db

PUBLISHED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def publish(car_park: CarPark, rates: dict[datetime, str]) -> None:
    PublishedRate.objects.bulk_create(
        PublishedRate(
            car_park=car_park,
            hour_start=hour_start,
            rate=Decimal(rate),
            currency=car_park.currency,
            reason={},
            published_at=PUBLISHED_AT,
        )
        for hour_start, rate in rates.items()
    )


def rate_card(car_park: CarPark, *, hourly_rate: str, daily_maximum: str | None) -> RateCard:
    return RateCard.objects.create(
        car_park=car_park,
        hourly_rate=Decimal(hourly_rate),
        daily_maximum=None if daily_maximum is None else Decimal(daily_maximum),
        minimum_charge=Decimal("1.00"),
        tax_rate=Decimal("0.2000"),
    )


def test_quote_reads_the_card_and_the_published_rates_in_one_query(
    car_park: CarPark, django_assert_num_queries: Any
) -> None:
    rate_card(car_park, hourly_rate="2.00", daily_maximum=None)
    start = datetime(2026, 6, 2, 8, tzinfo=UTC)
    publish(car_park, {start: "3.00"})

    with django_assert_num_queries(1):
        quote = quote_for_window(car_park, start, start + timedelta(hours=2))

    assert quote.total == Money(Decimal("5.00"), "GBP")
    assert quote.rate_source == "published+rate_card"
    assert quote.hourly_rates == ((start, Decimal("3.00")), (start + timedelta(hours=1), Decimal("2.00")))


def test_quote_without_card_or_published_rates_uses_the_platform_default(
    car_park: CarPark, django_assert_num_queries: Any
) -> None:
    start = datetime(2026, 6, 2, 8, 30, tzinfo=UTC)

    with django_assert_num_queries(1):
        quote = quote_for_window(car_park, start, start + timedelta(hours=3))

    assert quote.total == Money(Decimal("7.50"), "GBP")  # 3 h at the default 2.50
    assert quote.rate_source == "platform_default"
    assert [line.description for line in quote.lines] == ["Parking 3 h", "Tax 20% included"]
    assert quote.tax == Money(Decimal("1.25"), "GBP")


def test_three_day_stay_prices_published_hours_then_the_card_and_caps_each_24_hours(car_park: CarPark) -> None:
    rate_card(car_park, hourly_rate="2.00", daily_maximum="30.00")
    start = datetime(2026, 6, 2, 8, 15, tzinfo=UTC)
    first_hour = datetime(2026, 6, 2, 8, tzinfo=UTC)
    publish(car_park, {first_hour + timedelta(hours=k): "3.00" for k in range(24)})  # 08:00 to 07:00 next day

    quote = quote_for_window(car_park, start, start + timedelta(days=3))

    # First 24 h: 45 min + 23 h published at 3.00, the last 15 min at the card's 2.00: 71.75, capped.
    assert [(line.kind, line.description, line.amount.amount) for line in quote.lines] == [
        ("parking", "Parking 24 h (published hourly rates and rate card)", Decimal("71.75")),
        ("daily_maximum", "Daily maximum 30.00 GBP", Decimal("-41.75")),
        ("parking", "Parking 24 h (rate card)", Decimal("48.00")),
        ("daily_maximum", "Daily maximum 30.00 GBP", Decimal("-18.00")),
        ("parking", "Parking 24 h (rate card)", Decimal("48.00")),
        ("daily_maximum", "Daily maximum 30.00 GBP", Decimal("-18.00")),
        ("tax_included", "Tax 20% included", Decimal("15.00")),
    ]
    assert quote.total == Money(Decimal("90.00"), "GBP")
    assert quote.rate_source == "published+rate_card"
    assert len(quote.hourly_rates) == 3 * 25  # each 24 h block: 45 min, 23 h, 15 min
    assert quote.hourly_rates[0] == (start, Decimal("3.00"))


def test_quote_on_the_spring_forward_day_uses_the_local_hours_that_exist(car_park: CarPark) -> None:
    # Europe/London, 29 March 2026: 01:00 GMT becomes 02:00 BST; local hours 00, 02, 03 start at
    # 00:00, 01:00 and 02:00 UTC.
    start = datetime(2026, 3, 29, 0, tzinfo=UTC)
    publish(car_park, {start: "1.00", start + timedelta(hours=1): "2.00", start + timedelta(hours=2): "4.00"})

    quote = quote_for_window(car_park, start, start + timedelta(hours=3))

    assert quote.total == Money(Decimal("7.00"), "GBP")
    assert quote.rate_source == "published"


def test_quote_in_a_half_hour_zone_reads_the_rate_of_each_local_hour(car_park: CarPark) -> None:
    car_park.timezone = "Asia/Kolkata"  # UTC+05:30: local hours start at half past, UTC
    car_park.save(update_fields=["timezone"])
    publish(
        car_park,
        {
            datetime(2026, 6, 2, 9, 30, tzinfo=UTC): "2.00",  # 15:00 IST, before the start
            datetime(2026, 6, 2, 10, 30, tzinfo=UTC): "4.00",
            datetime(2026, 6, 2, 11, 30, tzinfo=UTC): "6.00",
        },
    )
    start = datetime(2026, 6, 2, 10, tzinfo=UTC)  # 15:30 IST

    quote = quote_for_window(car_park, start, start + timedelta(hours=2))

    assert quote.total == Money(Decimal("8.00"), "GBP")  # 30 min at 2.00 + 1 h at 4.00 + 30 min at 6.00
    assert quote.rate_source == "published"
