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
from pricing.models import RateCard
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


def _cards_and_rates(
    car_parks: Sequence[CarPark], start: datetime, end: datetime
) -> dict[int, tuple[RateCard, dict[datetime, Decimal]]]:
    """Each car park's rate card (or the platform default) and its published rates for the window
    (UTC hour starts), for any number of car parks in one query.

    The car park rows LEFT JOINed to their rate card (one-to-one) and to the published rates of
    the window, so a car park with neither still yields one row of NULLs.
    """
    by_id = {car_park.pk: car_park for car_park in car_parks}
    rows = (
        CarPark.objects.filter(pk__in=by_id)
        .order_by()
        .annotate(
            window_rate=FilteredRelation(
                "published_rates",
                condition=Q(published_rates__hour_start__gt=start - HOUR, published_rates__hour_start__lt=end),
            )
        )
        .values_list(
            "pk",
            "rate_card__id",
            "rate_card__hourly_rate",
            "rate_card__daily_maximum",
            "rate_card__minimum_charge",
            "rate_card__tax_rate",
            "window_rate__hour_start",
            "window_rate__rate",
        )
    )
    cards: dict[int, RateCard] = {}
    published: dict[int, dict[datetime, Decimal]] = defaultdict(dict)
    for car_park_id, card_id, hourly_rate, daily_maximum, minimum_charge, tax_rate, hour_start, rate in rows:
        if card_id is not None and car_park_id not in cards:
            cards[car_park_id] = RateCard(
                id=card_id,
                car_park=by_id[car_park_id],
                hourly_rate=hourly_rate,
                daily_maximum=daily_maximum,
                minimum_charge=minimum_charge,
                tax_rate=tax_rate,
            )
        if hour_start is not None:
            published[car_park_id][hour_start.astimezone(UTC)] = rate
    return {
        car_park_id: (cards.get(car_park_id) or default_rate_card(car_park), published.get(car_park_id, {}))
        for car_park_id, car_park in by_id.items()
    }


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
    published: Mapping[datetime, Decimal],
    start: datetime,
    end: datetime,
    now: datetime,
) -> Quote:
    """Price the stay: each local hour at its published rate when there is one, else the card's.

    ``published`` maps UTC hour starts to rates (see ``_cards_and_rates``); the quote's
    ``rate_source`` and each parking line say which applied.
    """
    card_rate = card.hourly_rate
    fallback = "rate_card" if card.pk else "platform_default"
    # The local hour start of every priced segment, in the order price_stay asks for them.
    hours: list[datetime] = []

    def rate_at(hour_start: datetime) -> Decimal:
        hours.append(hour_start)
        return published.get(hour_start, card_rate)

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
    return quotes_for_window([car_park], start, end)[car_park.pk]


def quotes_for_window(car_parks: Iterable[CarPark], start: datetime, end: datetime) -> dict[int, Quote]:
    """Bulk form for search: one query for every car park's rate card and published rates."""
    car_parks = list(car_parks)
    found = _cards_and_rates(car_parks, start, end)
    now = clock.now()
    return {car_park.pk: _quote(car_park, *found[car_park.pk], start, end, now) for car_park in car_parks}
