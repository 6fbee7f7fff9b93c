"""Reads other apps use: quotes for a window, one car park or many at once.

Quotes read published hourly rates (``pricing.rates`` writes them) and fall back to the rate card
for hours without one; no model runs at request time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import FilteredRelation, Q

from backend.carparks.models import CarPark
from backend.core import clock
from pricing.models import PublishedRate, RateCard
from pricing.quotes import HOUR, CancellationPolicy, Quote, QuoteLine, Tariff, price_stay


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


def published_rates_for(
    car_park_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, dict[datetime, Decimal]]:
    """Published hourly rates covering ``[start, end)`` per car park, in one query (UTC keys)."""
    found: dict[int, dict[datetime, Decimal]] = defaultdict(dict)
    if not car_park_ids:
        return found
    # order_by(): the model's default ordering joins the car park to sort by its name; a dict
    # needs no order.
    rows = (
        PublishedRate.objects.filter(car_park_id__in=car_park_ids, hour_start__gt=start - HOUR, hour_start__lt=end)
        .order_by()
        .values_list("car_park_id", "hour_start", "rate")
    )
    for car_park_id, hour_start, rate in rows:
        found[car_park_id][hour_start.astimezone(UTC)] = rate
    return found


def _card_and_rates(car_park: CarPark, start: datetime, end: datetime) -> tuple[RateCard, dict[datetime, Decimal]]:
    """The car park's rate card (or the platform default) and its published rates for the window.

    One query: the car park row LEFT JOINed to its rate card (one-to-one) and to the published
    rates of the window, so a car park with neither still yields one row of NULLs.
    """
    rows = (
        CarPark.objects.filter(pk=car_park.pk)
        .order_by()
        .annotate(
            window_rate=FilteredRelation(
                "published_rates",
                condition=Q(published_rates__hour_start__gt=start - HOUR, published_rates__hour_start__lt=end),
            )
        )
        .values_list(
            "rate_card__id",
            "rate_card__hourly_rate",
            "rate_card__daily_maximum",
            "rate_card__minimum_charge",
            "rate_card__tax_rate",
            "window_rate__hour_start",
            "window_rate__rate",
        )
    )
    card: RateCard | None = None
    published: dict[datetime, Decimal] = {}
    for card_id, hourly_rate, daily_maximum, minimum_charge, tax_rate, hour_start, rate in rows:
        if card is None and card_id is not None:
            card = RateCard(
                id=card_id,
                car_park=car_park,
                hourly_rate=hourly_rate,
                daily_maximum=daily_maximum,
                minimum_charge=minimum_charge,
                tax_rate=tax_rate,
            )
        if hour_start is not None:
            published[hour_start.astimezone(UTC)] = rate
    return card or default_rate_card(car_park), published


def _source_label(published_hours: int, all_hours: int, fallback: str) -> str:
    if published_hours == 0:
        return fallback
    return "published" if published_hours == all_hours else f"published+{fallback}"


_SOURCE_TEXT = {
    "published": "published hourly rates",
    "rate_card": "rate card",
    "platform_default": "platform default rate",
}


def _describe_source(label: str) -> str:
    return " and ".join(_SOURCE_TEXT[part] for part in label.split("+"))


def _quote(
    car_park: CarPark,
    card: RateCard,
    start: datetime,
    end: datetime,
    now: datetime,
    published: Mapping[datetime, Decimal] | None = None,
) -> Quote:
    """Price the stay: each local hour at its published rate when there is one, else the card's.

    ``published`` maps UTC hour starts to rates (see ``published_rates_for``); the quote's
    ``rate_source`` and each parking line say which applied.
    """
    card_rate = card.hourly_rate
    fallback = "rate_card" if card.pk else "platform_default"
    # The local hour start of every priced segment, in the order price_stay asks for them.
    hours: list[datetime] = []

    def rate_at(hour_start: datetime) -> Decimal:
        hours.append(hour_start)
        return published.get(hour_start, card_rate) if published else card_rate

    quote = price_stay(
        car_park_id=car_park.pk,
        start=start,
        end=end,
        zone=car_park.zone,
        rate_at=rate_at,
        tariff=Tariff(
            currency=car_park.currency,
            daily_maximum=card.daily_maximum,
            minimum_charge=card.minimum_charge,
            tax_rate=card.tax_rate,
        ),
        policy=cancellation_policy_of(car_park),
        now=now,
        rate_source=fallback,
    )
    if not published:
        return quote
    seen = set(hours)
    source = _source_label(sum(hour in published for hour in seen), len(seen), fallback)
    if source == fallback:
        return quote
    segment_hours = [(segment_start, hour) for (segment_start, _), hour in zip(quote.hourly_rates, hours, strict=True)]
    return replace(
        quote,
        rate_source=source,
        lines=tuple(_label_line(line, segment_hours, published, fallback) for line in quote.lines),
    )


def _label_line(
    line: QuoteLine,
    segment_hours: Sequence[tuple[datetime, datetime]],
    published: Mapping[datetime, Decimal],
    fallback: str,
) -> QuoteLine:
    """Name the rate source of a parking line; ``segment_hours`` pairs segment starts with local hour starts."""
    if line.kind != "parking" or line.starts_at is None or line.ends_at is None:
        return line
    hours = {hour for segment_start, hour in segment_hours if line.starts_at <= segment_start < line.ends_at}
    label = _source_label(sum(hour in published for hour in hours), len(hours), fallback)
    return replace(line, description=f"{line.description} ({_describe_source(label)})")


def quote_for_window(car_park: CarPark, start: datetime, end: datetime) -> Quote:
    """The price of parking at ``car_park`` over ``[start, end)``, computed on the server.

    Reads published rates only (one query: the rate card and the window's rates): no model
    runs here.
    """
    card, published = _card_and_rates(car_park, start, end)
    return _quote(car_park, card, start, end, clock.now(), published)


def quotes_for_window(car_parks: Iterable[CarPark], start: datetime, end: datetime) -> dict[int, Quote]:
    """Bulk form for search: one query for all rate cards and one for all published rates."""
    car_parks = list(car_parks)
    cards = {card.car_park_id: card for card in RateCard.objects.filter(car_park__in=car_parks)}
    published = published_rates_for([car_park.pk for car_park in car_parks], start, end)
    now = clock.now()
    return {
        car_park.pk: _quote(
            car_park, cards.get(car_park.pk) or default_rate_card(car_park), start, end, now, published.get(car_park.pk)
        )
        for car_park in car_parks
    }
