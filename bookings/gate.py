"""The gate: entries and exits by booking code or plate, drive-ups, overstay charges, device tokens.

A booked car enters from ``start - entry_grace`` until its ``end`` and leaves whenever it likes; an
exit later than ``end + BOOKING_EXIT_GRACE_MINUTES`` owes the overstay at the car park's price. A
plate the gate cannot match to a booking is a drive-up: the event is recorded (and counted in the
real occupancy) but it takes nothing from the booking ledger, which only tracks what is sold.

Gate devices authenticate with a random token shown once; only its first characters and its
SHA-256 hash are stored.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from backend.accounts.models import User
from backend.api.errors import InvalidInput
from backend.audit.services import audit_record
from backend.carparks.models import CarPark
from backend.core import clock
from backend.core.clock import iso_utc
from bookings import ledger, occupancy, services
from bookings.exceptions import AlreadyInside, BookingNotActive, BookingNotFound, NotInside, TooEarly
from bookings.models import (
    Booking,
    BookingStatus,
    GateDevice,
    GateEvent,
    GateEventKind,
    Payment,
    PaymentKind,
    PaymentStatus,
    SavedCard,
)
from bookings.payments.gateway import get_provider
from bookings.payments.providers import PAYMENT_SUCCEEDED, PaymentProviderError
from pricing.selectors import quote_for_window

logger = logging.getLogger(__name__)

TOKEN_PREFIX_LENGTH = 8
# Whoever sets a payment's retry_open_at this far ahead owns the attempt: longer than the slowest
# provider call (the Stripe client retries twice, 10 s each) and its back-off.
OVERSTAY_LEASE = timedelta(minutes=5)
OVERSTAY_RETRY_FIRST = timedelta(minutes=2)
OVERSTAY_RETRY_LONGEST = timedelta(hours=2)


# --- refusals ----------------------------------------------------------------------------------


class InvalidDeviceToken(Exception):
    """A device token that is unknown (``code`` ``device_token_invalid``) or revoked (``device_token_revoked``)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overstay:
    minutes: int
    amount_minor: int
    currency: str
    payment: Payment


@dataclass(frozen=True, slots=True)
class GatePassage:
    """What the gate did: the event it recorded, the booking it matched (none for a drive-up)."""

    event: GateEvent
    booking: Booking | None
    overstay: Overstay | None = None

    @property
    def is_drive_up(self) -> bool:
        return self.event.is_drive_up


# --- device tokens -----------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def device_token_create(*, actor: User, car_park: CarPark, name: str) -> tuple[GateDevice, str]:
    """Register a gate device and return it with its token, the only time the token is seen."""
    token = secrets.token_urlsafe(32)
    device = GateDevice.objects.create(
        car_park=car_park, name=name, token_prefix=token[:TOKEN_PREFIX_LENGTH], token_hash=_token_hash(token)
    )
    audit_record(
        actor=actor,
        action="gate_device.create",
        target=device,
        before=None,
        after={"car_park": car_park.pk, "name": name, "token_prefix": device.token_prefix},
        company=car_park.company,
    )
    return device, token


def device_token_verify(token: str, *, now: datetime | None = None) -> GateDevice:
    """The live device holding ``token`` (its ``last_used_at`` set to now).

    Raises ``InvalidDeviceToken`` for an unknown or a revoked token.
    """
    now = now or clock.now()
    device = GateDevice.objects.filter(token_hash=_token_hash(token)).first()
    if device is None:
        raise InvalidDeviceToken("Unknown gate device token.", code="device_token_invalid")
    if device.revoked_at is not None:
        raise InvalidDeviceToken("This gate device token was revoked.", code="device_token_revoked")
    GateDevice.objects.filter(pk=device.pk).update(last_used_at=now)
    device.last_used_at = now
    return device


@transaction.atomic
def device_token_revoke(*, actor: User, device: GateDevice, now: datetime | None = None) -> GateDevice:
    """Revoke a device's token for good (revoking twice keeps the first time)."""
    now = now or clock.now()
    device = GateDevice.objects.select_for_update().select_related("car_park__company").get(pk=device.pk)
    if device.revoked_at is None:
        device.revoked_at = now
        device.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action="gate_device.revoke",
            target=device,
            before={"revoked_at": None},
            after={"revoked_at": now.isoformat()},
            company=device.car_park.company,
        )
    return device


# --- entry -------------------------------------------------------------------------------------


def _entry_opens(booking: Booking, car_park: CarPark) -> datetime:
    return booking.start - timedelta(minutes=car_park.entry_grace_minutes)


def _check_entry_allowed(booking: Booking, car_park: CarPark, at: datetime) -> None:
    if booking.status == BookingStatus.CHECKED_IN:
        raise AlreadyInside("This booking's vehicle is already inside.", extra={"booking_id": booking.pk})
    if booking.status != BookingStatus.CONFIRMED:
        raise BookingNotActive(
            f"A booking that is {booking.status} cannot enter.", extra={"booking_status": booking.status}
        )
    earliest = _entry_opens(booking, car_park)
    if at < earliest:
        raise TooEarly(
            f"This booking may enter from {earliest.isoformat()}.", extra={"earliest_entry": iso_utc(earliest)}
        )
    if at >= booking.end:
        raise BookingNotActive(
            "This booking has ended.", code="booking_ended", extra={"booking_status": booking.status}
        )


def _locked_booking_by_code(car_park: CarPark, code: str) -> Booking:
    try:
        return Booking.objects.select_for_update().get(code=code, car_park=car_park)
    except Booking.DoesNotExist:
        raise BookingNotFound("No booking with this code at this car park.") from None


def _locked_booking_entering_by_plate(car_park: CarPark, plate: str, at: datetime) -> Booking | None:
    """The confirmed booking for ``plate`` whose entry window holds ``at`` (earliest start first)."""
    grace = timedelta(minutes=car_park.entry_grace_minutes)
    candidates = Booking.objects.filter(
        car_park=car_park, plate=plate, status=BookingStatus.CONFIRMED, start__lte=at + grace, end__gt=at
    ).order_by("start", "pk")
    return candidates.select_for_update().first()


def gate_entry_record(
    *,
    car_park: CarPark,
    code: str | None = None,
    plate: str | None = None,
    occurred_at: datetime,
    device: GateDevice | None = None,
    staff: User | None = None,
) -> GatePassage:
    """Let a vehicle in by booking ``code`` or normalised ``plate``.

    A code must belong to a confirmed booking of this car park whose entry window
    (``start - entry_grace <= occurred_at < end``) holds ``occurred_at``: the booking is checked in.
    A plate checks in such a booking when there is one; otherwise it is a drive-up.

    Raises ``BookingNotFound`` (404) for a code unknown at this car park, ``TooEarly`` (409, with
    ``earliest_entry``), ``AlreadyInside`` (409) when the booking (or, by plate, a booking of that
    plate still running) is already checked in, ``BookingNotActive`` (409) for a booking that is not
    confirmed or has ended.
    """
    booking: Booking | None
    with transaction.atomic():
        if code is not None:
            booking = _locked_booking_by_code(car_park, code)
            _check_entry_allowed(booking, car_park, occurred_at)
        elif plate is not None:
            inside = Booking.objects.filter(
                car_park=car_park, plate=plate, status=BookingStatus.CHECKED_IN, end__gt=occurred_at
            ).first()
            if inside is not None:  # a second read of the same car: the gate must not count it twice
                raise AlreadyInside("A booking for this plate is already inside.", extra={"booking_id": inside.pk})
            booking = _locked_booking_entering_by_plate(car_park, plate, occurred_at)
        else:
            raise _code_or_plate_required()

        _close_stale_stays(car_park, booking.plate if booking else plate or "", occurred_at, entering=booking)
        if booking is None:
            event = _event_create(car_park, GateEventKind.ENTRY, occurred_at, plate or "", None, device, staff)
        else:
            booking.status = BookingStatus.CHECKED_IN
            booking.checked_in_at = occurred_at
            booking.save(update_fields=["status", "checked_in_at"])
            event = _event_create(car_park, GateEventKind.ENTRY, occurred_at, booking.plate, booking, device, staff)
            services._after_commit_occupancy(booking.pk)
        _after_commit_publish_gate_hour(car_park.pk, occurred_at)
    return GatePassage(event=event, booking=booking)


# --- exit --------------------------------------------------------------------------------------


def _locked_booking_leaving_by_plate(car_park: CarPark, plate: str) -> Booking | None:
    """The checked-in booking for ``plate`` that entered last (an older one lost its exit event)."""
    inside = Booking.objects.filter(car_park=car_park, plate=plate, status=BookingStatus.CHECKED_IN)
    return inside.order_by("-checked_in_at", "-pk").select_for_update().first()


def overstay_minutes(booking: Booking, at: datetime) -> int:
    """Whole minutes (rounded up) past the booking's end, or 0 within the exit grace."""
    if at <= booking.end + timedelta(minutes=settings.BOOKING_EXIT_GRACE_MINUTES):
        return 0
    return math.ceil((at - booking.end).total_seconds() / 60)


def overstay_price_minor(car_park: CarPark, booking: Booking, left_at: datetime) -> int:
    """What staying on from the booking's end to ``left_at`` adds to the stay at the car park's rates,
    daily maximum included: a stay already capped for the day owes nothing more for that day.
    Both prices are today's, so a rate change since booking is not charged as overstay."""
    longer = quote_for_window(car_park, booking.start, left_at).amount_minor
    booked = quote_for_window(car_park, booking.start, booking.end).amount_minor
    return max(longer - booked, 0)


def gate_exit_record(
    *,
    car_park: CarPark,
    code: str | None = None,
    plate: str | None = None,
    occurred_at: datetime,
    device: GateDevice | None = None,
    staff: User | None = None,
) -> GatePassage:
    """Let a vehicle out by booking ``code`` or normalised ``plate``.

    A checked-in booking is completed and its bays are given back to the ledger (its whole span:
    a completed booking is no longer live). Leaving after ``end`` plus the exit grace owes the
    overstay (:func:`overstay_price_minor`): a pending overstay
    payment is recorded in the same transaction, then charged to the driver's saved card or opened
    for the driver to pay in the app (after commit; the gate opens either way). A plate with no
    booking inside is a drive-up exit.

    Raises ``BookingNotFound`` (404) for a code unknown at this car park, ``NotInside`` (409) for a
    booking that is not checked in, ``InvalidInput`` (400) for an exit before the booking's entry.
    """
    booking: Booking | None
    overstay_due: tuple[int, int] | None = None
    with transaction.atomic():
        if code is not None:
            booking = _locked_booking_by_code(car_park, code)
            if booking.status != BookingStatus.CHECKED_IN:
                raise NotInside(
                    f"A booking that is {booking.status} has no vehicle inside.",
                    extra={"booking_status": booking.status},
                )
        elif plate is not None:
            booking = _locked_booking_leaving_by_plate(car_park, plate)
        else:
            raise _code_or_plate_required()

        payment = None
        if booking is None:
            event = _event_create(car_park, GateEventKind.EXIT, occurred_at, plate or "", None, device, staff)
        else:
            if booking.checked_in_at is not None and occurred_at < booking.checked_in_at:
                raise InvalidInput("occurred_at", "The exit is before the booking's entry.", code="before_entry")
            minutes = overstay_minutes(booking, occurred_at)
            amount_minor = overstay_price_minor(car_park, booking, occurred_at) if minutes else 0
            _complete_stay(booking, left_at=occurred_at)
            was_taken_as_gone = _replace_inferred_exit(booking, occurred_at)
            event = _event_create(
                car_park, GateEventKind.EXIT, occurred_at, booking.plate, booking, device, staff, amount_minor
            )
            if amount_minor > 0:
                overstay_due = (minutes, amount_minor)
                # One overstay per booking: only this transition (checked in -> completed) creates one.
                payment = services.payment_create(
                    booking=booking,
                    kind=PaymentKind.OVERSTAY,
                    amount_minor=amount_minor,
                    retry_open_at=clock.now() + OVERSTAY_LEASE,  # this exit charges it; the sweep waits
                    # A car taken as gone may have left and come back unseen: the driver is asked
                    # to pay in the app rather than charged days of overstay without a word.
                    off_session_card=None if was_taken_as_gone else _saved_card_of(booking),
                )
            services._after_commit_occupancy(booking.pk)
        _after_commit_publish_gate_hour(car_park.pk, occurred_at)

    overstay = None
    if payment is not None and overstay_due is not None:
        payment = overstay_charge(payment=payment)
        overstay = Overstay(
            minutes=overstay_due[0], amount_minor=overstay_due[1], currency=payment.currency, payment=payment
        )
    return GatePassage(event=event, booking=booking, overstay=overstay)


# --- overstay payment --------------------------------------------------------------------------


def _payment_metadata(payment: Payment) -> dict[str, str]:
    return {"payment_id": str(payment.pk), "booking_id": str(payment.booking_id), "kind": payment.kind}


def overstay_charge(*, payment: Payment) -> Payment:
    """Collect an overstay: off-session from the saved card fixed on the payment, else opened for the app.

    Call outside any transaction (it calls the provider), holding the payment's lease
    (``retry_open_at`` in the future). Never raises for the provider:

    * a saved card the provider refuses (declined, detached...) leaves the payment pending with
      ``failure_code`` set, opened for the app;
    * an outage or a lost answer leaves it pending without a provider id, retried by
      ``overstay_payments_retry`` after a back-off with the same idempotency keys. An off-session
      charge that may have gone through is retried as such, with the same card, never followed by
      an app payment that could charge twice;
    * an app payment the provider refuses for good marks it failed, logged as an error.
    """
    try:
        if payment.off_session_method_ref and not payment.failure_code:
            charged = _charge_saved_card(payment)
            if charged is not None:
                return charged
        return _tell_driver(services.payment_open(payment=payment))
    except PaymentProviderError as exc:
        return _after_failed_attempt(payment, exc)


def _saved_card_of(booking: Booking) -> SavedCard | None:
    """The driver's card saved with the active provider: fixed on an overstay payment when it is
    written, so every attempt at it charges that very card."""
    return SavedCard.objects.filter(driver_id=booking.driver_id, provider=get_provider().name).first()


def _charge_saved_card(payment: Payment) -> Payment | None:
    """The off-session charge's outcome, or None when the provider refused it for good (the app
    pays instead). A retryable failure is raised: the same charge is tried again later."""
    try:
        result = get_provider().charge_off_session(
            customer_ref=payment.off_session_customer_ref,
            payment_method_ref=payment.off_session_method_ref,
            amount_minor=payment.amount_minor,
            currency=payment.currency.lower(),
            # Not the app's key: a declined off-session attempt must not block opening one.
            idempotency_key=f"{payment.idempotency_key}-off-session",
            metadata=_payment_metadata(payment),
        )
    except PaymentProviderError as exc:
        if exc.retryable:
            raise
        failure_code = (getattr(exc, "decline_code", None) or exc.code or "declined")[:64]
        Payment.objects.filter(pk=payment.pk).update(failure_code=failure_code)
        payment.failure_code = failure_code
        logger.info("overstay %s: saved card refused (%s); the driver pays in the app", payment.pk, failure_code)
        return None
    Payment.objects.filter(pk=payment.pk, provider_payment_id__isnull=True).update(
        provider_payment_id=result.id, retry_open_at=None
    )
    payment.provider_payment_id = result.id
    payment.retry_open_at = None
    if result.status == PAYMENT_SUCCEEDED:
        return _tell_driver(services.payment_succeeded(payment=payment))
    return payment  # processing: the provider's webhook settles it


def _after_failed_attempt(payment: Payment, exc: PaymentProviderError) -> Payment:
    attempts = payment.open_attempts + 1
    if exc.retryable:
        backoff = min(OVERSTAY_RETRY_FIRST * 2 ** min(attempts - 1, 10), OVERSTAY_RETRY_LONGEST)
        retry_at = clock.now() + backoff
        Payment.objects.filter(pk=payment.pk).update(open_attempts=attempts, retry_open_at=retry_at)
        payment.open_attempts, payment.retry_open_at = attempts, retry_at
        logger.warning(
            "overstay %s: the provider could not take it (attempt %s); retried from %s",
            payment.pk,
            attempts,
            retry_at.isoformat(),
            exc_info=True,
        )
        return payment
    failure_code = (exc.code or "provider_refused")[:64]
    Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PENDING).update(
        status=PaymentStatus.FAILED, failure_code=failure_code, open_attempts=attempts, retry_open_at=None
    )
    payment.status, payment.failure_code, payment.retry_open_at = PaymentStatus.FAILED, failure_code, None
    logger.error("overstay %s: the provider refused it for good (%s); collect it by hand", payment.pk, failure_code)
    return payment


def _tell_driver(payment: Payment) -> Payment:
    """E-mail the driver what the overstay cost and whether the saved card paid it (once per payment)."""
    services.after_commit_notify(payment.booking_id, "overstay", str(payment.pk))
    return payment


def overstay_payments_retry(*, now: datetime | None = None, batch: int = 20) -> int:
    """Overstay payments the provider could not take yet are tried again once their back-off is
    over. Each is claimed first (its lease moved forward only if nobody moved it since it was
    read, and only while nobody has settled it), so an exit still charging it, or another sweep,
    never charges it twice. Returns how many the provider took."""
    now = now or clock.now()
    due = Payment.objects.filter(
        Q(retry_open_at__lte=now) | Q(retry_open_at__isnull=True),  # null: left by an older release
        kind=PaymentKind.OVERSTAY,
        status=PaymentStatus.PENDING,
        provider_payment_id__isnull=True,
    ).order_by("retry_open_at")
    taken = 0
    for payment_id, retry_open_at in list(due.values_list("pk", "retry_open_at")[:batch]):
        if not _claim_overstay(payment_id, seen=retry_open_at):
            continue  # another sweep (or the exit) took it first
        payment = Payment.objects.select_related("booking").get(pk=payment_id)
        taken += bool(overstay_charge(payment=payment).provider_payment_id)
    return taken


def _claim_overstay(payment_id: uuid.UUID, *, seen: datetime | None) -> bool:
    """Move the lease forward only if nobody moved it since we read ``seen``: one winner. The
    lease starts now, not when the sweep started: earlier payments may have taken minutes."""
    unsettled = Payment.objects.filter(pk=payment_id, status=PaymentStatus.PENDING, provider_payment_id__isnull=True)
    unchanged = unsettled.filter(retry_open_at__isnull=True) if seen is None else unsettled.filter(retry_open_at=seen)
    return bool(unchanged.update(retry_open_at=clock.now() + OVERSTAY_LEASE))


# --- exits the gate never reported ------------------------------------------------------------------


def unreported_exits_infer(*, now: datetime | None = None, batch: int = 500) -> int:
    """Close the presence of cars checked in ``BOOKING_UNREPORTED_EXIT_HOURS`` past their booking's
    end with no exit (a camera missed the plate, a barrier was lifted by hand): an exit event marked
    ``is_inferred`` at the booking's end, so the real occupancy handed to pricing stops counting
    them. The booking stays checked in: if the car is in fact still there, its real exit replaces
    the inferred one and pays the whole overstay; if it comes back, its next entry proves it left
    and completes the booking (``_close_stale_stays``)."""
    now = now or clock.now()
    cutoff = now - timedelta(hours=settings.BOOKING_UNREPORTED_EXIT_HOURS)
    due = Booking.objects.filter(status=BookingStatus.CHECKED_IN, end__lte=cutoff).exclude(
        gate_events__kind=GateEventKind.EXIT
    )
    since: dict[int, datetime] = {}  # per car park, the earliest end whose hours change
    inferred = 0
    for booking_id in list(due.order_by("end").values_list("pk", flat=True)[:batch]):
        with transaction.atomic():
            booking = Booking.objects.select_for_update().get(pk=booking_id)
            if booking.status != BookingStatus.CHECKED_IN or _has_exit(booking):
                continue  # it left meanwhile
            _infer_exit(booking)
        since[booking.car_park_id] = min(since.get(booking.car_park_id, booking.end), booking.end)
        inferred += 1
        logger.warning(
            "booking %s: no exit reported %s after its end; presence closed at its end", booking_id, now - booking.end
        )
    for car_park_id, start in since.items():  # once per car park, however many cars
        publish_gate_span(car_park_id, start, now)
    return inferred


def _complete_stay(booking: Booking, *, left_at: datetime) -> None:
    """The car has left: the booking is completed and its bays (and any held extension) go back."""
    booking.status = BookingStatus.COMPLETED
    booking.checked_out_at = left_at
    booking.save(update_fields=["status", "checked_out_at"])
    ledger.release(booking.car_park_id, booking.bay_type, booking.ledger_start, booking.ledger_end)
    services._release_held_extensions(booking)


def _has_exit(booking: Booking) -> bool:
    return GateEvent.objects.filter(booking=booking, kind=GateEventKind.EXIT).exists()


def _infer_exit(booking: Booking) -> GateEvent:
    return GateEvent.objects.create(
        car_park_id=booking.car_park_id,
        kind=GateEventKind.EXIT,
        occurred_at=booking.end,
        booking=booking,
        plate=booking.plate,
        is_inferred=True,
    )


def _replace_inferred_exit(booking: Booking, occurred_at: datetime) -> bool:
    """The car was still there: the real exit replaces the inferred one, and the hours since its
    end count it again. True if the car had been taken as gone."""
    deleted, _ = GateEvent.objects.filter(booking=booking, is_inferred=True).delete()
    if deleted:
        _after_commit_publish_gate_span(booking.car_park_id, booking.end, occurred_at)
    return bool(deleted)


def _close_stale_stays(car_park: CarPark, plate: str, at: datetime, *, entering: Booking | None) -> None:
    """A car entering again left after its earlier stay, though no exit was reported: that
    booking is completed at its end (nothing charged: nobody knows when it left)."""
    if not plate:
        return
    stale = Booking.objects.select_for_update().filter(
        car_park=car_park, plate=plate, status=BookingStatus.CHECKED_IN, end__lte=at
    )
    if entering is not None:
        stale = stale.exclude(pk=entering.pk)
    for booking in stale.order_by("pk"):
        _complete_stay(booking, left_at=booking.end)
        if not _has_exit(booking):
            _infer_exit(booking)
            _after_commit_publish_gate_span(car_park.pk, booking.end, at)
        services._after_commit_occupancy(booking.pk)
        logger.warning("booking %s: completed at its end, its car entered again without an exit", booking.pk)


# --- shared ------------------------------------------------------------------------------------


def _code_or_plate_required() -> InvalidInput:
    return InvalidInput(None, "Give a booking code or a plate.", code="code_or_plate_required")


def _event_create(
    car_park: CarPark,
    kind: str,
    occurred_at: datetime,
    plate: str,
    booking: Booking | None,
    device: GateDevice | None,
    staff: User | None,
    overstay_minor: int = 0,
) -> GateEvent:
    return GateEvent.objects.create(
        car_park=car_park,
        kind=kind,
        occurred_at=occurred_at,
        booking=booking,
        plate=plate,
        is_drive_up=booking is None,
        device=device,
        staff=staff,
        overstay_minor=overstay_minor,
    )


def publish_gate_span(car_park_id: int, start: datetime, end: datetime) -> int:
    """Hand pricing the real occupancy of the car park's local hours touching ``[start, end)``."""
    car_park = CarPark.objects.filter(pk=car_park_id).first()
    if car_park is None:
        return 0
    try:
        return occupancy.publish_gate_span(car_park, start, end)
    except ImportError:  # the pricing app's occupancy_record is not deployed: the gate must still work
        logger.warning("gate occupancy of car park %s not published: pricing cannot record it", car_park_id)
        return 0


def _publish_gate_hour(car_park_id: int, moment: datetime) -> None:
    publish_gate_span(car_park_id, moment, moment + timedelta(seconds=1))


def _after_commit_publish_gate_span(car_park_id: int, start: datetime, end: datetime) -> None:
    """Hours since an exit the gate missed change after the fact: one background task recomputes
    them (days of hours), so the barrier's request never waits for it."""
    from bookings import tasks

    transaction.on_commit(
        lambda: tasks.publish_gate_span.delay(car_park_id, start.isoformat(), end.isoformat()), robust=True
    )


def _after_commit_publish_gate_hour(car_park_id: int, moment: datetime) -> None:
    # robust: a failure to publish occupancy is logged by Django and never fails an open gate.
    # A lambda, not functools.partial: Django names the failed callable by its __qualname__ when it
    # logs, and a partial has none, so the logging itself failed and turned a recorded passage into a 500.
    transaction.on_commit(lambda: _publish_gate_hour(car_park_id, moment), robust=True)
