"""Reads other apps use: quotes for a window, one car park or many at once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.conf import settings

from backend.carparks.models import CarPark
from backend.core import clock
from pricing.models import RateCard
from pricing.quotes import CancellationPolicy, Quote, Tariff, price_stay


def default_rate_card(car_park: CarPark) -> RateCard:
    """The platform's tariff for a car park whose operator has not set one yet (unsaved)."""
    defaults = settings.PRICING_DEFAULT_RATE_CARD
    return RateCard(
        car_park=car_park,
        hourly_rate=Decimal(defaults["hourly_rate"]),
        daily_maximum=Decimal(defaults["daily_maximum"]),
        minimum_charge=Decimal(defaults["minimum_charge"]),
        tax_rate=Decimal(defaults["tax_rate"]),
    )


def cancellation_policy_of(car_park: CarPark) -> CancellationPolicy:
    return CancellationPolicy(
        free_until_hours_before_start=car_park.free_cancellation_hours,
        late_refund_percent=car_park.late_cancellation_refund_percent,
    )


def _quote(car_park: CarPark, card: RateCard, start: datetime, end: datetime, now: datetime) -> Quote:
    hourly_rate = card.hourly_rate
    return price_stay(
        car_park_id=car_park.pk,
        start=start,
        end=end,
        zone=car_park.zone,
        rate_at=lambda _hour: hourly_rate,
        tariff=Tariff(
            currency=car_park.currency,
            daily_maximum=card.daily_maximum,
            minimum_charge=card.minimum_charge,
            tax_rate=card.tax_rate,
        ),
        policy=cancellation_policy_of(car_park),
        now=now,
        rate_source="rate_card" if card.pk else "platform_default",
    )


def quote_for_window(car_park: CarPark, start: datetime, end: datetime) -> Quote:
    """The price of parking at ``car_park`` over ``[start, end)``, computed on the server."""
    card = RateCard.objects.filter(car_park=car_park).first() or default_rate_card(car_park)
    return _quote(car_park, card, start, end, clock.now())


def quotes_for_window(car_parks: Iterable[CarPark], start: datetime, end: datetime) -> dict[int, Quote]:
    """Bulk form for search: one query for all rate cards, whatever the number of car parks."""
    car_parks = list(car_parks)
    cards = {card.car_park_id: card for card in RateCard.objects.filter(car_park__in=car_parks)}
    now = clock.now()
    return {
        car_park.pk: _quote(car_park, cards.get(car_park.pk) or default_rate_card(car_park), start, end, now)
        for car_park in car_parks
    }
