"""Provider events, stored by id before they are applied, so duplicates and reorderings are harmless.

Every handler is idempotent on its own (``payment_succeeded`` ignores a second success, a failure
never undoes a success, refunds are matched by id), and the event row is locked while it is
applied, so two deliveries of one event racing each other apply it once.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction

from backend.core import clock
from bookings import services
from bookings.models import Payment, PaymentStatus, Refund, RefundStatus, WebhookEvent

logger = logging.getLogger(__name__)

HANDLED = ("payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded")


def _store(event: dict[str, Any]) -> WebhookEvent:
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(
                event_id=event["id"], provider="stripe", type=event["type"], payload=event
            )
    except IntegrityError:
        return WebhookEvent.objects.get(event_id=event["id"])


def _payment_for_intent(intent: dict[str, Any]) -> Payment | None:
    payment = Payment.objects.filter(provider_payment_id=intent.get("id")).first()
    if payment is None:  # the event can outrun our own write of the intent id
        payment_id = (intent.get("metadata") or {}).get("payment_id")
        if payment_id:
            payment = Payment.objects.filter(pk=payment_id).first()
    return payment


def _apply(event: dict[str, Any]) -> str:
    obj = event["data"]["object"]
    if event["type"] == "charge.refunded":
        return _apply_charge_refunded(obj)
    payment = _payment_for_intent(obj)
    if payment is None:
        return "unknown payment"
    if event["type"] == "payment_intent.succeeded":
        return _apply_success(payment, obj.get("id") or "")
    error = obj.get("last_payment_error") or {}
    failure_code = error.get("decline_code") or error.get("code") or "failed"
    if obj.get("id") != payment.provider_payment_id:
        # Another intent of this payment (a declined off-session charge of an overstay, or an event
        # that outran our write of the id): the payment is still payable, only the reason is kept.
        Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PENDING).update(failure_code=failure_code[:64])
        return "attempt failed"
    services.payment_failed(payment=payment, failure_code=failure_code)
    return "payment failed"


def _apply_success(payment: Payment, intent_id: str) -> str:
    if payment.provider_payment_id is None:
        # Matched by metadata: the charge went through before we stored its intent (an off-session
        # charge whose answer was lost). Keep the id, so the payment can be refunded.
        Payment.objects.filter(pk=payment.pk, provider_payment_id__isnull=True).update(
            provider_payment_id=intent_id, retry_open_at=None
        )
        payment.refresh_from_db()
    elif payment.provider_payment_id != intent_id and payment.status == PaymentStatus.SUCCEEDED:
        logger.error(
            "payment %s succeeded twice: intent %s and %s; refund %s by hand",
            payment.pk,
            payment.provider_payment_id,
            intent_id,
            intent_id,
        )
        return "second success of a paid payment: refund by hand"
    services.payment_succeeded(payment=payment)
    return "payment succeeded"


def _apply_charge_refunded(charge: dict[str, Any]) -> str:
    """Mark our refunds that the provider reports as done (refunds made elsewhere are only logged)."""
    refund_ids = [refund["id"] for refund in (charge.get("refunds") or {}).get("data", [])]
    updated = Refund.objects.filter(provider_refund_id__in=refund_ids).exclude(status=RefundStatus.SUCCEEDED)
    count = updated.update(status=RefundStatus.SUCCEEDED, succeeded_at=clock.now())
    known = Refund.objects.filter(provider_refund_id__in=refund_ids).count()
    if known < len(refund_ids):
        logger.warning("charge %s has refunds not made by us: %s", charge.get("id"), refund_ids)
    return f"{count} refunds confirmed"


def stripe_event_receive(event: dict[str, Any]) -> WebhookEvent:
    """Store a verified event and apply it once."""
    stored = _store(event)
    with transaction.atomic():
        stored = WebhookEvent.objects.select_for_update().get(pk=stored.pk)
        if stored.processed_at is not None:
            return stored
        stored.outcome = _apply(event) if event["type"] in HANDLED else "ignored"
        stored.processed_at = clock.now()
        stored.save(update_fields=["outcome", "processed_at"])
    return stored
