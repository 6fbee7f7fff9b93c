"""Which payment provider this process uses, from settings (Stripe with a key, offline otherwise)."""

from __future__ import annotations

import functools

from django.conf import settings

from bookings.payments.offline_provider import OfflineProvider
from bookings.payments.providers import PaymentProvider
from bookings.payments.stripe_provider import StripeProvider


@functools.cache
def _provider(name: str, api_key: str, api_base: str) -> PaymentProvider:
    if name == "stripe":
        return StripeProvider(api_key, api_base=api_base or None)
    return OfflineProvider()


def get_provider() -> PaymentProvider:
    return _provider(settings.PAYMENT_PROVIDER, settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


def is_offline() -> bool:
    return settings.PAYMENT_PROVIDER != "stripe"
