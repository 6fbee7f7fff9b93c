"""Background work of the bookings app: sweeps run by beat, and work queued on commit."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import Task, shared_task
from django.conf import settings

from backend.carparks.models import CarPark
from backend.core import clock
from bookings import gate, messages, occupancy, services
from bookings.models import Booking, BookingStatus, GateEvent, IdempotencyRecord
from bookings.payments.providers import PaymentGatewayError

logger = logging.getLogger(__name__)


@shared_task
def expire_holds() -> int:
    """Give back the bays of unpaid holds whose time is up (also done lazily before availability checks)."""
    return services.holds_expire()


@shared_task
def mark_no_shows() -> int:
    """Bookings never checked in by their end become no-shows and free their bays."""
    return services.no_shows_mark()


@shared_task
def retry_overstay_payments() -> int:
    """Overstay payments the provider could not take at the exit are charged or opened again."""
    return gate.overstay_payments_retry()


@shared_task
def infer_unreported_exits() -> int:
    """Cars checked in long past their booking's end with no exit stop counting as inside."""
    return gate.unreported_exits_infer()


@shared_task
def publish_gate_span(car_park_id: int, start: str, end: str) -> int:
    """Hand pricing the real occupancy of hours an exit changed after the fact (ISO times)."""
    return gate.publish_gate_span(car_park_id, datetime.fromisoformat(start), datetime.fromisoformat(end))


@shared_task
def send_reminders() -> int:
    """Remind drivers shortly before their stay starts (once per booking)."""
    now = clock.now()
    due = Booking.objects.filter(
        status=BookingStatus.CONFIRMED,
        start__gt=now,
        start__lte=now + timedelta(hours=settings.BOOKING_REMINDER_HOURS),
    ).exclude(messages__kind="reminder")
    sent = 0
    for booking_id in due.values_list("pk", flat=True):
        sent += messages.send_once(booking_id, "reminder")
    return sent


@shared_task(bind=True, max_retries=5, default_retry_delay=30)
def send_driver_message(self: Task, booking_id: int, kind: str, discriminator: str = "") -> int:
    try:
        return messages.send_once(booking_id, kind, discriminator)
    except OSError as exc:  # SMTP down: try again later; send_once never sends twice
        raise self.retry(exc=exc) from exc


@shared_task
def publish_booking_occupancy(booking_id: int) -> int:
    """Hand the hourly occupancy of the hours this booking touches to the pricing app."""
    return occupancy.publish_for_booking(booking_id)


@shared_task(bind=True, max_retries=8, default_retry_delay=60)
def execute_refund(self: Task, refund_id: int) -> str:
    """Send a booked refund to the provider; retried with the same idempotency key until it lands."""
    try:
        return services.refund_execute(refund_id=refund_id).status
    except PaymentGatewayError as exc:
        raise self.retry(exc=exc) from exc


@shared_task
def resend_unsent_refunds() -> int:
    """Queue again the refunds whose task was lost; log those too old to resend without risk."""
    resendable, too_old = services.refunds_unsent()
    for refund_id in resendable:
        execute_refund.delay(refund_id)
    if too_old:
        logger.error(
            "%s refunds never reached the payment provider within %s: settle them by hand",
            too_old,
            services.REFUND_RESEND_WITHIN,
        )
    return len(resendable)


@shared_task
def purge_idempotency_records() -> int:
    cutoff = clock.now() - timedelta(hours=settings.IDEMPOTENCY_RETENTION_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


@shared_task
def publish_gate_occupancy() -> int:
    """Real occupancy of the last and current local hours from gate counts, also for hours with no
    event (a car that stays counts in every hour it is inside)."""
    now = clock.now()
    recent = GateEvent.objects.filter(occurred_at__gte=now - occupancy.LONGEST_GATE_STAY)
    car_parks = CarPark.objects.filter(pk__in=recent.values("car_park_id").distinct())
    written = 0
    for car_park in car_parks:
        written += occupancy.publish_gate_hour(car_park, now - timedelta(hours=1))
        written += occupancy.publish_gate_hour(car_park, now)
    return written
