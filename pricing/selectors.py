"""Reads other apps use: quotes for a window, one car park or many at once.

Quotes read published hourly rates (``pricing.rates`` writes them) and fall back to the rate card
for hours without one; no model runs at request time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings

from backend.carparks.models import CarPark
from backend.core import clock
from pricing.models import PublishedRate, RateCard
from pricing.quotes import HOUR, CancellationPolicy, Quote, QuoteLine, Tariff, hour_segments, price_stay


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
    rows = PublishedRate.objects.filter(
        car_park_id__in=car_park_ids, hour_start__gt=start - HOUR, hour_start__lt=end
    ).values_list("car_park_id", "hour_start", "rate")
    for car_park_id, hour_start, rate in rows:
        found[car_park_id][hour_start.astimezone(UTC)] = rate
    return found


def _local_hour_start(moment: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant where the local hour containing ``moment`` starts."""
    local = moment.astimezone(zone)
    return (moment - timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)).astimezone(
        UTC
    )


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
    published = published or {}
    zone = car_park.zone
    card_rate = card.hourly_rate
    fallback = "rate_card" if card.pk else "platform_default"
    used: set[datetime] = set()
    seen: set[datetime] = set()

    def rate_at(segment_start: datetime) -> Decimal:
        hour = _local_hour_start(segment_start, zone)
        seen.add(hour)
        rate = published.get(hour)
        if rate is None:
            return card_rate
        used.add(hour)
        return rate

    quote = price_stay(
        car_park_id=car_park.pk,
        start=start,
        end=end,
        zone=zone,
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
    source = _source_label(len(used), len(seen), fallback)
    if source == fallback:
        return quote
    return replace(
        quote, rate_source=source, lines=tuple(_label_line(line, published, zone, fallback) for line in quote.lines)
    )


def _label_line(line: QuoteLine, published: Mapping[datetime, Decimal], zone: ZoneInfo, fallback: str) -> QuoteLine:
    if line.kind != "parking" or line.starts_at is None or line.ends_at is None:
        return line
    hours = {
        _local_hour_start(segment_start, zone) for segment_start, _ in hour_segments(line.starts_at, line.ends_at, zone)
    }
    label = _source_label(sum(hour in published for hour in hours), len(hours), fallback)
    return replace(line, description=f"{line.description} ({_describe_source(label)})")


def quote_for_window(car_park: CarPark, start: datetime, end: datetime) -> Quote:
    """The price of parking at ``car_park`` over ``[start, end)``, computed on the server.

    Reads published rates only (two queries: the rate card and the window's rates): no model
    runs here.
    """
    card = RateCard.objects.filter(car_park=car_park).first() or default_rate_card(car_park)
    published = published_rates_for([car_park.pk], start, end).get(car_park.pk)
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
