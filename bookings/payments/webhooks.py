"""Stripe webhook verification (and a signer for tests / local tooling).

In a Django view::

    try:
        event = parse_stripe_event(request.body, request.headers.get("Stripe-Signature"), secret)
    except InvalidWebhook:
        return HttpResponse(status=400)

Pass the RAW request body (``request.body``), never re-serialised JSON: the signature covers the
exact bytes Stripe sent.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import stripe

from .providers import PaymentConfigurationError

__all__ = ["DEFAULT_TOLERANCE_SECONDS", "InvalidWebhook", "parse_stripe_event", "sign_stripe_payload"]

DEFAULT_TOLERANCE_SECONDS = 300  # same default as stripe.Webhook


class InvalidWebhook(Exception):
    """Bad/missing signature, timestamp outside tolerance, or a body that is not a Stripe event.

    Answer HTTP 400; do not process the payload.
    """


def parse_stripe_event(
    payload: bytes,
    sig_header: str | None,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> stripe.Event:
    """Verify ``Stripe-Signature`` over the raw ``payload`` and return the :class:`stripe.Event`.

    Raises :class:`InvalidWebhook` for anything the sender got wrong, and
    :class:`~bookings.payments.providers.PaymentConfigurationError` if ``secret`` is empty (our
    misconfiguration: every webhook would be rejected, so it must surface as a server error).
    """
    if not isinstance(secret, str) or not secret.strip():
        raise PaymentConfigurationError("Stripe webhook signing secret (whsec_...) is not configured")
    if not sig_header:
        raise InvalidWebhook("missing Stripe-Signature header")
    try:
        event = stripe.Webhook.construct_event(payload, sig_header, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook(f"signature verification failed: {exc.user_message}") from exc
    except (ValueError, TypeError, AttributeError) as exc:  # undecodable bytes / not JSON / not an object
        raise InvalidWebhook(f"payload is not a valid Stripe event: {exc}") from exc
    if not isinstance(event, stripe.Event) or not _has_fields(event):
        raise InvalidWebhook("payload is not a Stripe event object")
    return event


def _has_fields(event: stripe.Event) -> bool:
    data = event.to_dict()
    return (
        data.get("object") == "event"
        and isinstance(data.get("id"), str)
        and isinstance(data.get("type"), str)
        and isinstance(data.get("data"), dict)
    )


def sign_stripe_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Return a ``Stripe-Signature`` header value for ``payload`` exactly as Stripe computes it:
    ``t=<unix ts>,v1=<hex HMAC-SHA256(secret, f"{t}.{payload}")>``.

    For tests and local tooling (e.g. replaying a stored event against a dev server).
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode("utf-8"), f"{ts}.".encode() + bytes(payload), hashlib.sha256)
    return f"t={ts},v1={mac.hexdigest()}"
