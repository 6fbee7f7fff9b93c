"""E-mails to drivers, each sent at most once per (booking, kind, discriminator).

A ``DriverMessage`` row is claimed under a row lock before sending and marked sent in the same
transaction, so a retried or duplicated task finds it sent and does nothing.
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from backend.core import clock
from backend.core.money import Money
from bookings.models import Booking, DriverMessage, Payment, PaymentStatus, Refund

logger = logging.getLogger(__name__)

SUBJECTS = {
    "confirmation": "Your parking at {car_park} is booked",
    "reminder": "Your parking at {car_park} starts soon",
    "cancellation": "Your booking at {car_park} is cancelled",
    "refund": "Your refund for {car_park}",
    "overstay": "Extra time at {car_park}",
}


def _context(booking: Booking, kind: str, discriminator: str) -> dict[str, object]:
    zone = ZoneInfo(booking.car_park.timezone)
    context: dict[str, object] = {
        "booking": booking,
        "car_park": booking.car_park,
        "start_local": booking.start.astimezone(zone),
        "end_local": booking.end.astimezone(zone),
        "amount": Money.from_minor(booking.amount_minor, booking.currency),
        "brand": settings.BOOKING_RECEIPT_BRAND,
    }
    if kind == "refund" and discriminator.isdigit():
        refund = Refund.objects.filter(pk=int(discriminator), payment__booking=booking).first()
        if refund is not None:
            context["refund"] = Money.from_minor(refund.amount_minor, refund.currency)
    if kind == "overstay":  # the discriminator is the overstay payment's id
        payment = Payment.objects.get(pk=discriminator, booking=booking)
        context["overstay"] = Money.from_minor(payment.amount_minor, payment.currency)
        context["overstay_paid"] = payment.status == PaymentStatus.SUCCEEDED
    return context


def send_once(booking_id: int, kind: str, discriminator: str = "") -> int:
    """Send the ``kind`` e-mail for a booking unless it was sent already. Returns 1 if sent now."""
    if kind not in SUBJECTS:
        raise ValueError(f"unknown driver message {kind!r}")
    DriverMessage.objects.get_or_create(booking_id=booking_id, kind=kind, discriminator=discriminator)
    with transaction.atomic():
        message = DriverMessage.objects.select_for_update().get(
            booking_id=booking_id, kind=kind, discriminator=discriminator
        )
        if message.sent_at is not None:
            return 0
        booking = Booking.objects.select_related("car_park", "driver").get(pk=booking_id)
        context = _context(booking, kind, discriminator)
        send_mail(
            subject=SUBJECTS[kind].format(car_park=booking.car_park.name),
            message=render_to_string(f"bookings/email/{kind}.txt", context),
            from_email=None,
            recipient_list=[booking.driver.email],
        )
        message.sent_at = clock.now()
        message.save(update_fields=["sent_at"])
    logger.info("sent %s e-mail for booking %s", kind, booking_id)
    return 1
