"""Bookings: the capacity ledger, bookings and their extensions, payments, refunds, webhooks, the gate."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from backend.accounts.models import Vehicle
from backend.carparks.models import BayType, CarPark

SLOT = timedelta(minutes=15)


class CapacitySlot(models.Model):
    """One bay type of one car park for one 15-minute slot: how many bays exist and are sold.

    ``reserved <= capacity`` is a database CHECK: the last line of defence against overselling.
    Rows are created on demand; a missing row means "all bays free".
    """

    # slot_unique (car_park, bay_type, starts_at) serves lookups by car park: no index of its own.
    car_park = models.ForeignKey(CarPark, on_delete=models.CASCADE, related_name="+", db_index=False)
    bay_type = models.CharField(max_length=16, choices=BayType.choices)
    starts_at = models.DateTimeField()
    capacity = models.PositiveIntegerField()
    reserved = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["car_park", "bay_type", "starts_at"], name="slot_unique"),
            models.CheckConstraint(condition=Q(reserved__lte=F("capacity")), name="slot_reserved_within_capacity"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="slot_reserved_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.car_park_id}/{self.bay_type} {self.starts_at:%Y-%m-%d %H:%M}: {self.reserved}/{self.capacity}"


class BookingStatus(models.TextChoices):
    HELD = "held", "Held (awaiting payment)"
    CONFIRMED = "confirmed", "Confirmed"
    CHECKED_IN = "checked_in", "Checked in"
    COMPLETED = "completed", "Completed"
    EXPIRED = "expired", "Expired (unpaid)"
    CANCELLED = "cancelled", "Cancelled"
    NO_SHOW = "no_show", "No show"


LIVE_STATUSES = (BookingStatus.HELD, BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN)


class Booking(models.Model):
    # Each hold writes a row into every index of this table: the composite indexes below start with
    # driver and car park and serve their lookups, so neither key has an index of its own.
    driver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings", db_index=False
    )
    car_park = models.ForeignKey(CarPark, on_delete=models.PROTECT, related_name="bookings", db_index=False)
    vehicle = models.ForeignKey(Vehicle, null=True, on_delete=models.SET_NULL, related_name="bookings")
    plate = models.CharField(max_length=10, help_text="The vehicle's plate when booked.")
    bay_type = models.CharField(max_length=16, choices=BayType.choices, default=BayType.STANDARD)
    start = models.DateTimeField()
    end = models.DateTimeField()
    ledger_start = models.DateTimeField(help_text="First slot held in the ledger (start rounded down).")
    ledger_end = models.DateTimeField(help_text="End of the last slot held (end rounded up).")
    status = models.CharField(max_length=16, choices=BookingStatus.choices, default=BookingStatus.HELD)
    amount_minor = models.PositiveIntegerField(help_text="Price fixed at hold time, tax included.")
    currency = models.CharField(max_length=3)
    tax_minor = models.PositiveIntegerField(default=0)
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4, default=0)
    price_lines = models.JSONField(default=list)
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    # NULL until confirmed: the unique constraint ignores NULLs, and would not ignore "".
    code = models.CharField(max_length=12, null=True, blank=True, help_text="Shown at the gate.")  # noqa: DJ001
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    checked_in_at = models.DateTimeField(null=True, blank=True)
    checked_out_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = models.CharField(max_length=200, blank=True)
    # The cancellation rule quoted when the bay was held: a later change of the car park's rule
    # does not apply to bookings already sold.
    free_cancellation_hours = models.PositiveSmallIntegerField(default=24, db_default=24)
    late_cancellation_refund_percent = models.PositiveSmallIntegerField(default=50, db_default=50)

    class Meta:
        ordering = ["-start", "-id"]
        indexes = [
            # Also counts a driver's unpaid holds (status held, hold not yet expired) in one range scan.
            models.Index(fields=["driver", "status", "hold_expires_at"], name="booking_driver_status_expiry"),
            models.Index(fields=["car_park", "status", "start"], name="booking_carpark_status_start"),
            models.Index(fields=["status", "hold_expires_at"], name="booking_status_expiry"),
            models.Index(fields=["status", "end"], name="booking_status_end"),
        ]
        constraints = [
            # A constraint rather than unique=True, which adds a LIKE index on PostgreSQL no query uses.
            models.UniqueConstraint(fields=["code"], name="booking_code_unique"),
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="booking_end_after_start"),
            models.CheckConstraint(
                condition=Q(ledger_start__lte=F("start"), ledger_end__gte=F("end")), name="booking_ledger_covers_stay"
            ),
        ]

    def __str__(self) -> str:
        return f"Booking {self.pk} {self.plate} @ {self.car_park_id} [{self.status}]"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class ExtensionStatus(models.TextChoices):
    HELD = "held", "Held (awaiting payment)"
    CONFIRMED = "confirmed", "Confirmed"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


class BookingExtension(models.Model):
    """A request to end later: extra slots held until the extra amount is paid."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="extensions")
    old_end = models.DateTimeField()
    new_end = models.DateTimeField()
    ledger_start = models.DateTimeField()
    ledger_end = models.DateTimeField()
    amount_minor = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=ExtensionStatus.choices, default=ExtensionStatus.HELD)
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(new_end__gt=F("old_end")), name="extension_moves_end_later"),
            models.UniqueConstraint(
                fields=["booking"], condition=Q(status="held"), name="extension_one_held_per_booking"
            ),
        ]

    def __str__(self) -> str:
        return f"Extension of {self.booking_id} to {self.new_end:%Y-%m-%d %H:%M} [{self.status}]"


class PaymentKind(models.TextChoices):
    BOOKING = "booking", "Booking"
    EXTENSION = "extension", "Extension"
    OVERSTAY = "overstay", "Overstay"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Payment(models.Model):
    """One amount a driver owes through a provider (a Stripe PaymentIntent, or offline)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="payments")
    extension = models.ForeignKey(
        BookingExtension, null=True, blank=True, on_delete=models.PROTECT, related_name="payments"
    )
    kind = models.CharField(max_length=16, choices=PaymentKind.choices, default=PaymentKind.BOOKING)
    provider = models.CharField(max_length=16)
    # NULL until the provider knows the payment: the unique constraint ignores NULLs, not "".
    provider_payment_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    client_secret = models.CharField(max_length=255, blank=True)
    amount_minor = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    refunded_minor = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=255)
    failure_code = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    # Collecting a payment the provider has not taken yet (an overstay after an outage): whoever
    # moves retry_open_at into the future owns the attempt until then; failures back off.
    open_attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    retry_open_at = models.DateTimeField(null=True, blank=True)
    # The saved card an off-session charge of this payment uses, fixed before the first attempt: a
    # retry after a lost answer repeats that very charge, whatever happens to the driver's card since.
    off_session_customer_ref = models.CharField(max_length=255, blank=True, default="", db_default="")
    off_session_method_ref = models.CharField(max_length=255, blank=True, default="", db_default="")

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # Constraints rather than unique=True, which adds LIKE indexes on PostgreSQL no query uses.
            models.UniqueConstraint(fields=["provider_payment_id"], name="payment_provider_id_unique"),
            models.UniqueConstraint(fields=["idempotency_key"], name="payment_idempotency_key_unique"),
            models.CheckConstraint(
                condition=Q(refunded_minor__lte=F("amount_minor")), name="payment_refund_within_amount"
            ),
        ]
        indexes = [
            models.Index(
                fields=["retry_open_at"], condition=Q(retry_open_at__isnull=False), name="payment_retry_open_due"
            ),
        ]

    def __str__(self) -> str:
        return f"Payment {self.id} {self.amount_minor} {self.currency} [{self.status}]"


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Refund(models.Model):
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount_minor = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=64)
    provider_refund_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    status = models.CharField(max_length=16, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Refund {self.amount_minor} {self.currency} of {self.payment_id} [{self.status}]"


class WebhookEvent(models.Model):
    """Every verified provider event, stored by id before it is applied (so duplicates are no-ops)."""

    event_id = models.CharField(max_length=255, unique=True)
    provider = models.CharField(max_length=16, default="stripe")
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class IdempotencyRecord(models.Model):
    """The first answer to a client's ``Idempotency-Key``, replayed for repeats of the same request."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    is_complete = models.BooleanField(default=False)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # Text, not JSON: jsonb reorders keys, and a replay must be byte-identical to the first answer.
    response_body = models.TextField(blank=True, default="")
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class GateDevice(models.Model):
    """A barrier or camera at one car park, with its own revocable API token (only the hash is kept)."""

    car_park = models.ForeignKey(CarPark, on_delete=models.CASCADE, related_name="gate_devices")
    name = models.CharField(max_length=100)
    token_prefix = models.CharField(max_length=12, db_index=True)
    token_hash = models.CharField(max_length=128, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.car_park_id}"


class GateEventKind(models.TextChoices):
    ENTRY = "entry", "Entry"
    EXIT = "exit", "Exit"


class GateEvent(models.Model):
    car_park = models.ForeignKey(CarPark, on_delete=models.PROTECT, related_name="gate_events")
    kind = models.CharField(max_length=8, choices=GateEventKind.choices)
    occurred_at = models.DateTimeField()
    booking = models.ForeignKey(Booking, null=True, blank=True, on_delete=models.PROTECT, related_name="gate_events")
    plate = models.CharField(max_length=10, blank=True)
    is_drive_up = models.BooleanField(default=False)
    device = models.ForeignKey(GateDevice, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    overstay_minor = models.PositiveIntegerField(default=0)
    # db_default: processes still running the previous release insert events without this column.
    is_inferred = models.BooleanField(
        default=False,
        db_default=False,
        help_text="An exit the gate never reported: the car's presence is closed at the booking's end "
        "(the real exit replaces it if one comes).",
    )

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [models.Index(fields=["car_park", "occurred_at"], name="gate_event_carpark_time")]

    def __str__(self) -> str:
        return f"{self.kind} {self.plate} @ {self.car_park_id} {self.occurred_at:%Y-%m-%d %H:%M}"


class SavedCard(models.Model):
    """A driver's card saved with the provider, for off-session overstay charges."""

    driver = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_card")
    provider = models.CharField(max_length=16)
    customer_ref = models.CharField(max_length=255)
    payment_method_ref = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Card of {self.driver_id} ({self.provider})"


class DriverMessage(models.Model):
    """An e-mail to a driver, recorded so that a retried task never sends it twice."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=32)  # confirmation, reminder, cancellation, refund
    discriminator = models.CharField(max_length=64, blank=True, help_text="e.g. the refund id")
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["booking", "kind", "discriminator"], name="driver_message_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.booking_id}"
